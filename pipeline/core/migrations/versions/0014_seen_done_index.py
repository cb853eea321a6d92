"""Whether an article is done answered from the index alone: (article_id, status, source), so
that the lookup of a listing reads no table row, however large the store. On PostgreSQL both
the new index and the drop of the old one run CONCURRENTLY, outside a transaction: a large
seen store keeps taking writes while they are built.

Revision ID: 0014
Revises: 0013
"""

from contextlib import AbstractContextManager, nullcontext

from alembic import op

revision = "0014"
down_revision = "0013"
branch_labels = None
depends_on = None


def _outside_a_transaction_on_postgresql() -> AbstractContextManager:
    """CONCURRENTLY runs on PostgreSQL outside any transaction; SQLite builds the index in the
    migration's own (the write lock blocks its writers either way)."""
    context = op.get_context()
    return context.autocommit_block() if context.dialect.name == "postgresql" else nullcontext()


def upgrade() -> None:
    with _outside_a_transaction_on_postgresql():
        op.create_index("ix_seen_articles_done", "seen_articles", ["article_id", "status", "source"], postgresql_concurrently=True)
        op.drop_index("ix_seen_articles_article", table_name="seen_articles", postgresql_concurrently=True)


def downgrade() -> None:
    with _outside_a_transaction_on_postgresql():
        op.create_index("ix_seen_articles_article", "seen_articles", ["article_id", "status"], postgresql_concurrently=True)
        op.drop_index("ix_seen_articles_done", table_name="seen_articles", postgresql_concurrently=True)
