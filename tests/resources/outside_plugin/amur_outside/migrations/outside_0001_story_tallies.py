"""The tally sink's table.

Revision ID: outside_0001
"""

import sqlalchemy as sa
from alembic import op

revision = "outside_0001"
down_revision = None
branch_labels = ("amur_outside",)
depends_on = None


def upgrade() -> None:
    op.create_table(
        "outside_story_tallies",
        sa.Column("story_id", sa.String(32), primary_key=True),
        sa.Column("outlets", sa.Integer, nullable=False),
        sa.Column("label", sa.String(64), nullable=False),
    )


def downgrade() -> None:
    op.drop_table("outside_story_tallies")
