"""The tables of the first release: connector state, seen articles, records and alerts.

Each table is created only where it is missing, so a database whose tables an earlier Amur
created directly (before migrations) is adopted as it is, rows and all.

Revision ID: 0001
Revises:
"""

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

UTC_DATETIME = sa.DateTime(timezone=True)


def upgrade() -> None:
    existing = set(sa.inspect(op.get_bind()).get_table_names())
    if "source_state" not in existing:
        op.create_table(
            "source_state",
            sa.Column("name", sa.String(64), primary_key=True),
            sa.Column("etag", sa.Text),
            sa.Column("last_modified", sa.Text),
            sa.Column("last_polled_at", UTC_DATETIME),
            sa.Column("last_success_at", UTC_DATETIME),
            sa.Column("consecutive_failures", sa.Integer, nullable=False),
            sa.Column("last_error", sa.Text),
            sa.Column("next_poll_at", UTC_DATETIME),
        )
    if "seen_articles" not in existing:
        op.create_table(
            "seen_articles",
            sa.Column("source", sa.String(64), primary_key=True),
            sa.Column("article_id", sa.String(32), primary_key=True),
            sa.Column("url", sa.Text, nullable=False),
            sa.Column("status", sa.String(16), nullable=False),
            sa.Column("attempts", sa.Integer, nullable=False),
            sa.Column("last_error", sa.Text),
            sa.Column("first_seen_at", UTC_DATETIME, nullable=False),
            sa.Column("updated_at", UTC_DATETIME, nullable=False),
            sa.CheckConstraint("status IN ('emitted', 'retrying', 'failed')", name="seen_articles_status"),
        )
    if "articles" not in existing:
        op.create_table(
            "articles",
            sa.Column("id", sa.String(32), primary_key=True),
            sa.Column("url", sa.Text, nullable=False),
            sa.Column("source", sa.String(64), nullable=False),
            sa.Column("title", sa.Text, nullable=False),
            sa.Column("text", sa.Text, nullable=False),
            sa.Column("published_at", UTC_DATETIME),
            sa.Column("fetched_at", UTC_DATETIME, nullable=False),
            sa.Column("classified_at", UTC_DATETIME, nullable=False),
            sa.Column("is_cooperation", sa.Boolean, nullable=False),
            sa.Column("score", sa.Float, nullable=False),
            sa.Column("level", sa.String(16)),
            sa.Column("sectors", sa.JSON, nullable=False),
            sa.Column("russian_parties", sa.JSON, nullable=False),
            sa.Column("chinese_parties", sa.JSON, nullable=False),
            sa.Column("entities", sa.JSON, nullable=False),
            sa.Column("figures", sa.JSON, nullable=False),
            sa.Column("classification", sa.JSON, nullable=False),
            sa.Column("updated_at", UTC_DATETIME, nullable=False),
        )
        op.create_index("ix_articles_is_cooperation", "articles", ["is_cooperation"])
    if "alerts" not in existing:
        op.create_table(
            "alerts",
            sa.Column("id", sa.String(32), primary_key=True),
            sa.Column("article_id", sa.String(32), nullable=False),
            sa.Column("url", sa.Text, nullable=False),
            sa.Column("source", sa.String(64), nullable=False),
            sa.Column("title", sa.Text, nullable=False),
            sa.Column("summary", sa.Text, nullable=False),
            sa.Column("score", sa.Float, nullable=False),
            sa.Column("level", sa.String(16)),
            sa.Column("sectors", sa.JSON, nullable=False),
            sa.Column("russian_parties", sa.JSON, nullable=False),
            sa.Column("chinese_parties", sa.JSON, nullable=False),
            sa.Column("evidence", sa.JSON, nullable=False),
            sa.Column("published_at", UTC_DATETIME),
            sa.Column("fetched_at", UTC_DATETIME, nullable=False),
            sa.Column("alerted_at", UTC_DATETIME, nullable=False),
            sa.Column("written_at", UTC_DATETIME, nullable=False),
        )
        op.create_index("ix_alerts_written_at", "alerts", ["written_at"])


def downgrade() -> None:
    for table in ("alerts", "articles", "seen_articles", "source_state"):
        op.drop_table(table)
