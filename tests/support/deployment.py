"""Reading back what a deployment of ``amur`` running in other processes wrote: its database
rows and the records on its topics, through the deployment's own configuration file."""

from __future__ import annotations

import sys
import time
from pathlib import Path

import sqlalchemy as sa

from pipeline.core.settings import load_settings
from pipeline.core.transport import make_transport

# The amur command as this interpreter runs it, whatever is on PATH.
AMUR = [sys.executable, "-c", "from pipeline.app.cli import app; app()"]


def query(database_url: str, sql: str) -> list:
    """The rows of ``sql``, on a connection of its own (the deployment may be mid-write)."""
    engine = sa.create_engine(database_url)
    try:
        with engine.connect() as connection:
            return connection.execute(sa.text(sql)).all()
    finally:
        engine.dispose()


def read_topic(config: Path, topic: str, group: str, seconds: float = 60) -> list[bytes]:
    """Every value on ``topic`` up to its end, read as the new consumer group ``group``."""
    transport = make_transport(load_settings(config))
    consumer = transport.consumer(group, [topic])
    values: list[bytes] = []
    deadline = time.monotonic() + seconds
    try:
        while time.monotonic() < deadline:
            values.extend(record.value for record in consumer.poll(500, 1.0))
            if consumer.lag() == 0:
                break
    finally:
        consumer.close()
        transport.close()
    return values
