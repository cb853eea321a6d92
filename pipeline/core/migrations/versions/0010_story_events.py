"""Stories match on what crosses languages: the entities a story names, by time bucket, and the
time span of its articles (publication time where known).

``story_entities`` holds one row per canonical entity of a story and time bucket of its
articles, so the stories naming an entity near an article's time are an index range, as
``story_bands`` is for text. ``stories.entities`` is the union of its articles' entities;
``stories.first_at`` and ``last_at`` bound its articles' times: a story takes an article
whose time is within the window of that span. A story stored before them spans its
creation and its last update. ``alerts.outlets_omitted`` counts a story's articles beyond
the 50 outlets an alert lists, ``alerts.acts`` says what happened and ``alerts.gist_en`` is
the story's English line (alerts version 3).

Revision ID: 0010
Revises: 0009
"""

import sqlalchemy as sa
from alembic import op

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None

UTC_DATETIME = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "story_entities",
        sa.Column("entity_id", sa.String(96), primary_key=True),
        sa.Column("bucket", sa.Integer, primary_key=True),
        sa.Column("story_id", sa.String(32), primary_key=True),
    )
    with op.batch_alter_table("stories") as stories:
        stories.add_column(sa.Column("entities", sa.JSON))
        stories.add_column(sa.Column("first_at", UTC_DATETIME))
        stories.add_column(sa.Column("last_at", UTC_DATETIME))
    op.execute("UPDATE stories SET entities = '[]', first_at = created_at, last_at = updated_at")
    with op.batch_alter_table("alerts") as alerts:
        alerts.add_column(sa.Column("outlets_omitted", sa.Integer, nullable=False, server_default=sa.text("0")))
        alerts.add_column(sa.Column("acts", sa.JSON, nullable=False, server_default=sa.text("'[]'")))
        alerts.add_column(sa.Column("gist_en", sa.Text, nullable=False, server_default=sa.text("''")))
    with op.batch_alter_table("stories") as stories:
        stories.alter_column("entities", existing_type=sa.JSON, nullable=False)
        stories.alter_column("first_at", existing_type=UTC_DATETIME, nullable=False)
        stories.alter_column("last_at", existing_type=UTC_DATETIME, nullable=False)


def downgrade() -> None:
    with op.batch_alter_table("alerts") as alerts:
        alerts.drop_column("gist_en")
        alerts.drop_column("acts")
        alerts.drop_column("outlets_omitted")
    with op.batch_alter_table("stories") as stories:
        stories.drop_column("last_at")
        stories.drop_column("first_at")
        stories.drop_column("entities")
    op.drop_table("story_entities")
