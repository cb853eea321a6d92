"""Each source's item tallies kept as counters: source health read them with a GROUP BY over
every seen URL (130 ms a scrape at 1M URLs). Filled once here from the rows there are.

Revision ID: 0013
Revises: 0012
"""

import sqlalchemy as sa
from alembic import op

revision = "0013"
down_revision = "0012"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "source_item_counts",
        sa.Column("source", sa.String(64), primary_key=True),
        sa.Column("tally", sa.String(32), primary_key=True),
        sa.Column("articles", sa.Integer, nullable=False),
        sa.Column("latest", sa.DateTime(timezone=True)),
    )
    # The tally names are pipeline.state's: a status, or "emitted without page".
    op.execute("""
        INSERT INTO source_item_counts (source, tally, articles, latest)
        SELECT source,
               CASE WHEN status = 'emitted' AND last_error IS NOT NULL THEN 'emitted without page' ELSE status END,
               COUNT(*), MAX(updated_at)
        FROM seen_articles
        GROUP BY source, CASE WHEN status = 'emitted' AND last_error IS NOT NULL THEN 'emitted without page' ELSE status END
    """)


def downgrade() -> None:
    op.drop_table("source_item_counts")
