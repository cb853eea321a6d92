"""Webhook deliveries are claimed before they are sent: ``claimed_until`` is the lease of the
sinks worker sending one, so two workers never POST the same delivery, and a worker that
dies mid-delivery leaves it to another once the lease runs out.

Revision ID: 0011
Revises: 0010
"""

import sqlalchemy as sa
from alembic import op

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("webhook_deliveries") as deliveries:
        deliveries.add_column(sa.Column("claimed_until", sa.DateTime(timezone=True)))


def downgrade() -> None:
    with op.batch_alter_table("webhook_deliveries") as deliveries:
        deliveries.drop_column("claimed_until")
