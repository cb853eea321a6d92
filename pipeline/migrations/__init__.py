"""Schema migrations of Amur's SQL database (records, alerts, connector state), with Alembic.

:func:`upgrade_database` brings a database to the newest revision and is called before any
table is used: by every SQL sink's ``setup``, the state store's ``setup``, the roles at
start-up and ``amur db upgrade``. It is idempotent and safe when several processes start at
once: on PostgreSQL a transaction-scoped advisory lock lets one process migrate while the
others wait, then find nothing left to do.

A database made before migrations existed (its tables created directly by an earlier Amur)
is brought forward without losing rows: the first revision creates only the tables that
are missing.

A new revision goes in ``versions/`` as ``NNNN_what_it_does.py`` with ``down_revision`` set
to the previous one; ``tests/pipeline/test_migrations.py`` checks that the revisions create
exactly the tables the code defines, on SQLite and on PostgreSQL.
"""

from __future__ import annotations

import threading
import weakref
from pathlib import Path

import sqlalchemy as sa
from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Engine

__all__ = ["current_revision", "head_revision", "upgrade_database"]

SCRIPT_LOCATION = Path(__file__).parent
_ADVISORY_LOCK_KEY = 0x616D7572  # "amur": one key for every Amur process on the server
_upgraded: weakref.WeakSet[Engine] = weakref.WeakSet()  # engines already at head in this process
_lock = threading.Lock()


def _config() -> Config:
    config = Config()
    config.set_main_option("script_location", str(SCRIPT_LOCATION))
    return config


def head_revision() -> str:
    """The newest revision the code knows."""
    return ScriptDirectory.from_config(_config()).get_current_head()


def current_revision(engine: Engine) -> str | None:
    """The revision the database is at; ``None`` before the first upgrade."""
    with engine.connect() as connection:
        return MigrationContext.configure(connection).get_current_revision()


def upgrade_database(engine: Engine, revision: str = "head") -> None:
    """Migrate the database of ``engine`` to ``revision`` (the newest by default)."""
    with _lock:
        if revision == "head" and engine in _upgraded:
            return
        config = _config()
        with engine.begin() as connection:
            if connection.dialect.name == "postgresql":
                connection.execute(sa.text("SELECT pg_advisory_xact_lock(:key)"), {"key": _ADVISORY_LOCK_KEY})
            config.attributes["connection"] = connection
            command.upgrade(config, revision)
        if revision == "head":
            _upgraded.add(engine)
