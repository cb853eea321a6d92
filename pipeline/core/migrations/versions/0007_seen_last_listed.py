"""When a source last listed each seen URL: the seen store forgets only what no listing still shows.

Revision ID: 0007
Revises: 0006
"""

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("seen_articles") as seen_articles:
        seen_articles.add_column(sa.Column("last_listed_at", sa.DateTime(timezone=True)))


def downgrade() -> None:
    with op.batch_alter_table("seen_articles") as seen_articles:
        seen_articles.drop_column("last_listed_at")
