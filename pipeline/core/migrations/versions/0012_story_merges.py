"""Stories merge: when an article shows two open stories are one event, the older one
absorbs the other. ``stories.merged_into`` names the survivor of a retired story and
``merged_by`` the article that joined them (a replay re-emits the notice); the sinks keep
``story_redirects`` (a retired id answers with its survivor) and each alert's ``headline``.

Revision ID: 0012
Revises: 0011
"""

import sqlalchemy as sa
from alembic import op

revision = "0012"
down_revision = "0011"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("stories") as stories:
        stories.add_column(sa.Column("merged_into", sa.String(32)))
        stories.add_column(sa.Column("merged_by", sa.String(32)))
    op.create_index("ix_stories_merged_by", "stories", ["merged_by"])
    with op.batch_alter_table("alerts") as alerts:
        alerts.add_column(sa.Column("headline", sa.Text, nullable=False, server_default=sa.text("''")))
    op.create_table(
        "story_redirects",
        sa.Column("story_id", sa.String(32), primary_key=True),
        sa.Column("merged_into", sa.String(32), nullable=False),
        sa.Column("merged_at", sa.DateTime(timezone=True), nullable=False),
    )


def downgrade() -> None:
    op.drop_table("story_redirects")
    with op.batch_alter_table("alerts") as alerts:
        alerts.drop_column("headline")
    op.drop_index("ix_stories_merged_by", "stories")
    with op.batch_alter_table("stories") as stories:
        stories.drop_column("merged_by")
        stories.drop_column("merged_into")
