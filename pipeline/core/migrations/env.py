"""Alembic's environment: migrations run on the connection :func:`upgrade_database` passes in."""

from alembic import context

connection = context.config.attributes["connection"]
# A transaction per revision: one that builds an index CONCURRENTLY on PostgreSQL commits
# what ran before it (on SQLite the caller's transaction holds them all).
context.configure(connection=connection, transaction_per_migration=True)
with context.begin_transaction():
    context.run_migrations()
