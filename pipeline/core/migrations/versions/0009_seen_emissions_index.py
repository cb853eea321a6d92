"""A source's newest emissions in one index: silence is measured after every empty poll and at
every health read, and without it each read sorted all of the source's seen URLs.

Revision ID: 0009
Revises: 0008
"""

from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index("ix_seen_articles_source_emissions", "seen_articles", ["source", "status", "first_seen_at"])


def downgrade() -> None:
    op.drop_index("ix_seen_articles_source_emissions", table_name="seen_articles")
