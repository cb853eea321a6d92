"""Schema migrations of Amur's SQL database (records, alerts, connector state), with Alembic.

:func:`upgrade_database` brings a database to the newest revision and is called before any
table is used: by every SQL sink's ``setup``, the state store's ``setup``, the roles at
start-up and ``amur db upgrade``. It is idempotent and safe when several processes start at
once: on PostgreSQL a session's advisory lock (each revision in a transaction of its own, so
that an index on a large table can be built without blocking writes), on SQLite the
database's write lock taken before anything is read, lets one process migrate while the
others wait, then find nothing left to do.

A database made before migrations existed (its tables created directly by an earlier Amur)
is brought forward without losing rows: the first revision creates only the tables that
are missing.

A table is defined once, on the shared :data:`pipeline.core.db.metadata`, by the module
that uses it; a revision creates it. Amur's revisions go in ``versions/`` as
``NNNN_what_it_does.py`` with ``down_revision`` set to the previous one. A plugin with tables
of its own keeps its revisions in a package of its own, named under the ``amur.migrations``
entry points, as a branch (``branch_labels``) of its own: the database is brought to every
branch's head. ``tests/pipeline/core/test_migrations.py`` checks, with Alembic's
autogenerate comparison against :func:`declared_metadata`, that the revisions create exactly
the tables the code defines, on SQLite and on PostgreSQL.
"""

from __future__ import annotations

import logging
import os
import threading
import time
import weakref
from collections.abc import Sequence
from pathlib import Path

import sqlalchemy as sa
from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Engine

from pipeline.core import registry
from pipeline.core.db import metadata, storage_hint
from pipeline.core.errors import StorageUnusable

__all__ = ["current_revision", "declared_metadata", "head_revision", "upgrade_database"]

SCRIPT_LOCATION = Path(__file__).parent
# Alembic tells at INFO what dialect it found, at every start-up; upgrade_database logs the
# revisions it applied instead. An operator who configured the "alembic" logger keeps that level.
_alembic_logger = logging.getLogger("alembic")
if _alembic_logger.level == logging.NOTSET:
    _alembic_logger.setLevel(logging.WARNING)
_ADVISORY_LOCK_KEY = 0x616D7572  # "amur": one key for every Amur process on the server
LOCK_RETRY_SECONDS = 0.1  # how often a process waiting to migrate tries the lock again
log = logging.getLogger(__name__)
_upgraded: weakref.WeakSet[Engine] = weakref.WeakSet()  # engines already at head in this process
_lock = threading.Lock()


def version_locations() -> list[Path]:
    """Amur's revisions, then each installed plugin's (``amur.migrations`` entry points)."""
    locations = [SCRIPT_LOCATION / "versions"]
    for name in registry.migrations.names():
        package = registry.migrations.get(name)
        locations.append(Path(package.__file__).parent)
    return locations


def _config() -> Config:
    config = Config()
    config.set_main_option("script_location", str(SCRIPT_LOCATION))
    config.set_main_option("path_separator", "os")
    config.set_main_option("version_locations", os.pathsep.join(str(path) for path in version_locations()))
    return config


def declared_metadata() -> sa.MetaData:
    """Every table the code defines: the core's and those of every installed plugin, whose
    modules declare them on the shared metadata when loaded."""
    from pipeline.core import dead_letters, state  # noqa: F401 - the core's own tables

    for plugins in (registry.connectors, registry.stages, registry.sinks):
        for name in plugins.names():
            plugins.get(name)
    return metadata


def _revision(heads: Sequence[str]) -> str | None:
    # One branch's head as before ("0015"); with a plugin's branch too, every head ("0015+digest_0001").
    return "+".join(sorted(heads)) or None


def head_revision() -> str:
    """The newest revision the code knows (of every branch)."""
    return _revision(ScriptDirectory.from_config(_config()).get_heads())


def current_revision(engine: Engine) -> str | None:
    """The revision the database is at; ``None`` before the first upgrade."""
    with engine.connect() as connection:
        return _revision(MigrationContext.configure(connection).get_current_heads())


def upgrade_database(engine: Engine) -> None:
    """Migrate the database of ``engine`` to the newest revision."""
    with _lock:
        if engine in _upgraded:
            return
        config = _config()
        try:
            if engine.dialect.name == "postgresql":
                before, after = _upgrade_postgresql(engine, config)
            else:
                with engine.begin() as connection:
                    # The write lock first, or two processes both create the first tables.
                    connection.exec_driver_sql("BEGIN IMMEDIATE")
                    before, after = _upgrade(connection, config)
        except sa.exc.OperationalError as exc:
            hint = storage_hint(exc)
            if hint is None:
                raise  # a server away, for one: the caller waits it out
            raise StorageUnusable(f"cannot open or write the database {engine.url.database}: {exc.orig}; {hint}") from None
        if after != before:
            log.info("database %s migrated from revision %s to %s", engine.url.render_as_string(), before or "(empty)", after)
        _upgraded.add(engine)


def _upgrade(connection: sa.Connection, config: Config, *, transaction_per_revision: bool = False) -> tuple[str | None, str | None]:
    """Run the revisions on ``connection``; the revision before and after. With
    ``transaction_per_revision`` the read of the revision is committed first, or Alembic takes
    its transaction for the caller's and runs every revision in it."""
    before = _revision(MigrationContext.configure(connection).get_current_heads())
    if transaction_per_revision:
        connection.commit()
    config.attributes["connection"] = connection
    command.upgrade(config, "heads")
    return before, _revision(MigrationContext.configure(connection).get_current_heads())


def _upgrade_postgresql(engine: Engine, config: Config) -> tuple[str | None, str | None]:
    """On PostgreSQL each revision runs in a transaction of its own, under an advisory lock
    held by the session: an index on a large table is built ``CONCURRENTLY``, which must run
    outside any transaction and so ends the one before it (see ``autocommit_block`` in the
    revisions), while the other processes starting up wait for the lock.

    They wait by trying it again and again, each try a statement of its own: one blocked in
    ``pg_advisory_lock`` would hold a snapshot all along, and ``CREATE INDEX CONCURRENTLY``
    waits for every older snapshot to end — for the very process that waits for it.
    """
    with engine.connect() as connection:
        connection.execution_options(isolation_level="AUTOCOMMIT")
        while not connection.execute(sa.text("SELECT pg_try_advisory_lock(:key)"), {"key": _ADVISORY_LOCK_KEY}).scalar_one():
            time.sleep(LOCK_RETRY_SECONDS)
        connection.commit()  # ends SQLAlchemy's own transaction object, a no-op in AUTOCOMMIT
        connection.execution_options(isolation_level=connection.default_isolation_level)
        try:
            before, after = _upgrade(connection, config, transaction_per_revision=True)
            connection.commit()
        finally:
            connection.rollback()
            connection.execution_options(isolation_level="AUTOCOMMIT")
            connection.execute(sa.text("SELECT pg_advisory_unlock(:key)"), {"key": _ADVISORY_LOCK_KEY})
    return before, after
