"""One SQLAlchemy engine per database URL: SQLite by default, PostgreSQL in production.

Tables are SQLAlchemy Core tables, each defined once, by the module that uses them
(:mod:`pipeline.core.state`, :mod:`sinks.records`, a plugin's own module), on the one shared
:data:`metadata`; the migrations create them (:mod:`pipeline.core.migrations`, which checks
that the two agree). Upserts use the dialect's ``INSERT … ON CONFLICT`` so replays change nothing.
"""

from __future__ import annotations

import errno
import sqlite3
from collections.abc import Iterable
from datetime import UTC, datetime
from pathlib import Path

import sqlalchemy as sa
from sqlalchemy import Engine, Table, create_engine, event
from sqlalchemy.dialects import postgresql, sqlite

from pipeline.core.errors import ConfigError, ConfigProblem, StorageUnusable

# Every table of Amur and of its plugins, declared where it is used; Alembic compares this
# with what the revisions build.
metadata = sa.MetaData()

IN_CLAUSE_SIZE = 500  # values per IN (...) clause, well below every driver's parameter limit


def chunked(items: list, size: int = IN_CLAUSE_SIZE):
    """``items`` in slices of at most ``size``: one IN clause (or one batch of rows) each."""
    for start in range(0, len(items), size):
        yield items[start:start + size]


# What a storage failure's message says, and what the operator does about it. SQLite reports
# a directory it may not write as "unable to open database file", without the path.
_FULL = "the disk is full: free space on it (or move the file to a larger one); what was not written is written again then"
_NOT_WRITABLE = "the user running amur cannot write there: make the directory writable by it, or configure another path"
_STORAGE_HINTS = (
    ("database or disk is full", _FULL),
    ("disk i/o error", "the disk failed a write: check that it has space and is healthy"),
    ("unable to open database file", _NOT_WRITABLE),
    ("readonly database", _NOT_WRITABLE),  # "attempt to write a readonly database"
)


def storage_hint(exc: BaseException) -> str | None:
    """How to fix a failure to open or write a local file (a full disk, a read-only place);
    ``None`` when ``exc`` is anything else, such as a database server that is down."""
    while exc is not None:
        if isinstance(exc, OSError) and exc.errno in (errno.ENOSPC, errno.EDQUOT):
            return _FULL
        if isinstance(exc, OSError) and exc.errno in (errno.EACCES, errno.EPERM, errno.EROFS, errno.ENOTDIR):
            return _NOT_WRITABLE
        if isinstance(exc, sqlite3.Error):
            message = str(exc).lower()
            for words, hint in _STORAGE_HINTS:
                if words in message:
                    return hint
        exc = exc.__cause__ or getattr(exc, "orig", None)
    return None


def sqlite_path(database_url: str) -> Path | None:
    """The file of a SQLite URL; ``None`` for an in-memory database or another dialect."""
    if database_url.startswith("sqlite:///") and not database_url.startswith("sqlite:///:memory:"):
        return Path(database_url.removeprefix("sqlite:///"))
    return None


def make_engine(database_url: str) -> Engine:
    """An engine for ``database_url``; creates the directory of a SQLite file.

    :raises StorageUnusable: that directory cannot be created.
    """
    path = sqlite_path(database_url)
    if path is not None:
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise StorageUnusable(
                f"cannot create {path.parent} for the database {path}: {exc.strerror}; {storage_hint(exc) or _NOT_WRITABLE}"
            ) from None
    try:
        engine = create_engine(database_url, pool_pre_ping=True)
    except ModuleNotFoundError as exc:
        raise ConfigError([ConfigProblem(
            "amur.yaml", "database_url", f"driver package {exc.name!r} is missing",
            'run pip install "amur[postgres]" for PostgreSQL',
        )]) from None
    if engine.dialect.name == "sqlite":
        event.listen(engine, "connect", _sqlite_pragmas)
    return engine


def _sqlite_pragmas(dbapi_connection, _record) -> None:
    # WAL lets the sinks write while the HTTP server and `amur` commands read.
    # The wait for another process's lock first: switching to WAL takes that lock too, and a
    # process opening the database while another migrates it would otherwise fail at once.
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA busy_timeout=10000")
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.close()


# The statements below take their rows at execution, ``connection.execute(statement, rows)``
# (never an empty list): SQLAlchemy then sends them as multi-row INSERTs from one compiled,
# cached statement. Rows written into the statement (``.values(rows)``) make it compile anew
# for every batch: 0.35 ms of CPU a row for the records sink's, against 0.07.


def upsert(engine: Engine, table: Table, key: list[str], keep: tuple[str, ...] = (), newest: str | None = None):
    """An INSERT into ``table`` that, on a ``key`` conflict, updates every column but the key
    and those in ``keep`` (values that must stay as first written) — and, with ``newest``,
    only when the row's ``newest`` column is not greater than the new value's."""
    statement = _insert(engine, table)
    updates = {
        column.name: statement.excluded[column.name]
        for column in table.columns
        if column.name not in key and column.name not in keep
    }
    where = table.c[newest] <= statement.excluded[newest] if newest else None
    return statement.on_conflict_do_update(index_elements=key, set_=updates, where=where)


def accumulate(engine: Engine, table: Table, key: list[str], total: str, latest: str):
    """An INSERT into ``table`` that, on a ``key`` conflict, adds the row's ``total`` to the
    stored one and takes its ``latest`` unless that is null: counters kept in one statement,
    so concurrent writers never lose an increment."""
    statement = _insert(engine, table)
    return statement.on_conflict_do_update(index_elements=key, set_={
        total: table.c[total] + statement.excluded[total],
        latest: sa.func.coalesce(statement.excluded[latest], table.c[latest]),
    })


def insert_missing(engine: Engine, table: Table, key: list[str]):
    """An INSERT into ``table`` that skips the rows whose ``key`` is there already."""
    return _insert(engine, table).on_conflict_do_nothing(index_elements=key)


def _insert(engine: Engine, table: Table):
    """The dialect's INSERT, which knows ``ON CONFLICT``."""
    return (postgresql if engine.dialect.name == "postgresql" else sqlite).insert(table)


def advisory_locks(connection: sa.Connection, keys: Iterable[int]) -> None:
    """Hold PostgreSQL's advisory locks ``keys`` until the connection's transaction ends.

    They are taken in ascending order (so two holders of overlapping sets cannot deadlock), in
    one round trip: ``unnest`` yields the array's elements in order, and each row takes its lock.
    """
    ordered = sorted(set(keys))
    if ordered:
        connection.execute(
            sa.text("SELECT count(pg_advisory_xact_lock(key)) FROM unnest(CAST(:keys AS bigint[])) AS key"), {"keys": ordered},
        )


class UTCDateTime(sa.types.TypeDecorator):
    """An aware UTC datetime on every database; SQLite keeps no offset, so it is restored here."""

    impl = sa.DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError(f"naive datetime {value!r}: pass an aware datetime (pipeline.core.messages.utc_now())")
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)
