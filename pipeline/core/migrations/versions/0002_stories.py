"""Stories: the clustering index of the stories stage, and alerts that carry a whole story.

``stories``, ``story_bands`` and ``story_articles`` hold the open stories (see
processors/stories.py). Alerts gain ``version``, ``language``, ``regions``, ``names``, ``figures``,
``outlets`` and ``updated_at``; an alert stored before stories existed was a story of one article, which
is what the defaults say (its outlets are left empty: the row never named them apart).

Revision ID: 0002
Revises: 0001
"""

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

UTC_DATETIME = sa.DateTime(timezone=True)
EMPTY_LIST = sa.text("'[]'")


def upgrade() -> None:
    op.create_table(
        "stories",
        sa.Column("id", sa.String(32), primary_key=True),
        sa.Column("version", sa.Integer, nullable=False),
        sa.Column("signature", sa.JSON, nullable=False),
        sa.Column("alert", sa.JSON, nullable=False),
        sa.Column("created_at", UTC_DATETIME, nullable=False),
        sa.Column("updated_at", UTC_DATETIME, nullable=False),
    )
    op.create_index("ix_stories_updated_at", "stories", ["updated_at"])
    op.create_table(
        "story_bands",
        sa.Column("band", sa.BigInteger, primary_key=True),
        sa.Column("story_id", sa.String(32), primary_key=True),
    )
    op.create_table(
        "story_articles",
        sa.Column("article_id", sa.String(32), primary_key=True),
        sa.Column("story_id", sa.String(32), nullable=False),
    )
    op.create_index("ix_story_articles_story_id", "story_articles", ["story_id"])
    with op.batch_alter_table("alerts") as alerts:
        alerts.add_column(sa.Column("version", sa.Integer, nullable=False, server_default=sa.text("1")))
        alerts.add_column(sa.Column("language", sa.String(16)))
        alerts.add_column(sa.Column("regions", sa.JSON, nullable=False, server_default=EMPTY_LIST))
        alerts.add_column(sa.Column("figures", sa.JSON, nullable=False, server_default=EMPTY_LIST))
        alerts.add_column(sa.Column("names", sa.JSON, nullable=False, server_default=sa.text("'{}'")))
        alerts.add_column(sa.Column("outlets", sa.JSON, nullable=False, server_default=EMPTY_LIST))
        alerts.add_column(sa.Column("updated_at", UTC_DATETIME))


def downgrade() -> None:
    with op.batch_alter_table("alerts") as alerts:
        for column in ("updated_at", "outlets", "names", "figures", "regions", "language", "version"):
            alerts.drop_column(column)
    for table in ("story_articles", "story_bands", "stories"):
        op.drop_table(table)
