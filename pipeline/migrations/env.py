"""Alembic's environment: migrations run on the connection :func:`upgrade_database` passes in."""

from alembic import context

connection = context.config.attributes["connection"]
context.configure(connection=connection)
with context.begin_transaction():
    context.run_migrations()
