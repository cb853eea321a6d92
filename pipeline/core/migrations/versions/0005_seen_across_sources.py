"""Seen articles are looked up by article across sources: an article is emitted once,
whichever source listed it first.

Revision ID: 0005
Revises: 0004
"""

from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index("ix_seen_articles_article", "seen_articles", ["article_id", "status"])


def downgrade() -> None:
    op.drop_index("ix_seen_articles_article", "seen_articles")
