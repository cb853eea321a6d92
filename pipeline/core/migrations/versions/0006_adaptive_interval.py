"""Each source's current polling interval, which adapts to how often it publishes.

Revision ID: 0006
Revises: 0005
"""

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("source_state") as source_state:
        source_state.add_column(sa.Column("interval_seconds", sa.Float))


def downgrade() -> None:
    with op.batch_alter_table("source_state") as source_state:
        source_state.drop_column("interval_seconds")
