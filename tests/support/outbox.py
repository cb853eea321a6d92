"""Waiting on a delivering sink's outbox instead of on the clock."""

from __future__ import annotations

import time

import sqlalchemy as sa

from pipeline.core.db import make_engine
from sinks.outbox import PENDING


def settled(database_url: str, table: sa.Table, timeout: float = 20.0) -> list[dict]:
    """The outbox's rows once none is pending any more (each delivered or parked): from then on
    the sink has nothing left to send, so what a receiver got is all it will get."""
    engine = make_engine(database_url)
    deadline = time.monotonic() + timeout
    while True:
        with engine.connect() as connection:
            rows = [dict(row) for row in connection.execute(sa.select(table)).mappings()]
        if not any(row["status"] == PENDING for row in rows):
            return rows
        if time.monotonic() > deadline:
            raise AssertionError(f"within {timeout} s the outbox {table.name} still has pending deliveries: {rows}")
        time.sleep(0.05)
