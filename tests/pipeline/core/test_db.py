"""Database helpers that need a real PostgreSQL server."""

from __future__ import annotations

import pytest
import sqlalchemy as sa

from pipeline.core.db import advisory_locks, make_engine
from tests.support.databases import postgres_schema_url

pytestmark = pytest.mark.postgres


def test_advisory_locks_are_all_held_until_the_transaction_ends():
    keys = [7, -3, 2**62, 7, 41]
    with postgres_schema_url() as url:
        engine = make_engine(url)
        try:
            with engine.begin() as holder, engine.connect() as other:
                advisory_locks(holder, keys)
                free = {key: other.execute(sa.text("SELECT pg_try_advisory_lock(:key)"), {"key": key}).scalar_one() for key in keys}
                assert free == dict.fromkeys(keys, False)
            with engine.connect() as other:
                taken = [other.execute(sa.text("SELECT pg_try_advisory_xact_lock(:key)"), {"key": key}).scalar_one() for key in keys]
                assert all(taken), "the locks outlived their transaction"
                other.rollback()
        finally:
            engine.dispose()


def test_no_keys_take_no_lock():
    with postgres_schema_url() as url:
        engine = make_engine(url)
        try:
            with engine.begin() as connection:
                advisory_locks(connection, [])
                held = connection.execute(sa.text("SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND pid = pg_backend_pid()"))
                assert held.scalar_one() == 0
        finally:
            engine.dispose()
