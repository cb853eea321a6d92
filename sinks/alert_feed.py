"""Alert feed sink: alerts stored by story id and published as an Atom file.

Alerts are upserted into the ``alerts`` table keyed by story id, so a story delivered twice
(a replay after a crash, a broker restart, two outlets of one story) stays one alert; the
Atom document is then rendered from the table and replaced atomically, so a reader never
sees a half-written file.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Sequence
from pathlib import Path

from feedgen.feed import FeedGenerator
from sqlalchemy import JSON, Column, Engine, Float, MetaData, String, Table, Text, select
from sqlalchemy.exc import SQLAlchemyError

from pipeline.db import UTCDateTime, upsert
from pipeline.errors import SinkError
from pipeline.messages import Alert, utc_now
from pipeline.settings import AlertSettings
from sinks.base import BatchingSink

metadata = MetaData()

alerts = Table(
    "alerts",
    metadata,
    Column("id", String(32), primary_key=True),
    Column("article_id", String(32), nullable=False),
    Column("url", Text, nullable=False),
    Column("source", String(64), nullable=False),
    Column("title", Text, nullable=False),
    Column("summary", Text, nullable=False),
    Column("score", Float, nullable=False),
    Column("level", String(16)),
    Column("sectors", JSON, nullable=False),
    Column("russian_parties", JSON, nullable=False),
    Column("chinese_parties", JSON, nullable=False),
    Column("evidence", JSON, nullable=False),
    Column("published_at", UTCDateTime),
    Column("fetched_at", UTCDateTime, nullable=False),
    Column("alerted_at", UTCDateTime, nullable=False),
    Column("written_at", UTCDateTime, nullable=False, index=True),
)


def _row(alert: Alert) -> dict:
    row = alert.model_dump(exclude={"schema_version"})
    row["written_at"] = utc_now()
    return row


class AlertFeedSink(BatchingSink):
    """Stores alerts in SQL and keeps an Atom feed of the newest ``max_entries`` up to date."""

    topic = "alerts"

    def __init__(self, engine: Engine, settings: AlertSettings):
        super().__init__()
        self._engine = engine
        self._settings = settings

    def setup(self) -> None:
        metadata.create_all(self._engine)
        self._render()

    def write(self, batch: Sequence[Alert]) -> None:
        rows = list({alert.id: _row(alert) for alert in batch}.values())
        try:
            with self._engine.begin() as connection:
                # The first write of a story keeps its times: a replay must not move it up the feed.
                connection.execute(upsert(self._engine, alerts, rows, key=["id"], keep=("alerted_at", "written_at")))
        except SQLAlchemyError as exc:
            raise SinkError(f"alert feed: cannot store {len(rows)} alert(s): {exc.__class__.__name__}: {exc}") from exc
        self._render()

    def _render(self) -> None:
        try:
            with self._engine.connect() as connection:
                newest = connection.execute(
                    select(alerts).order_by(alerts.c.written_at.desc(), alerts.c.id).limit(self._settings.max_entries)
                ).mappings().all()
        except SQLAlchemyError as exc:
            raise SinkError(f"alert feed: cannot read alerts: {exc}") from exc
        _write_atomically(Path(self._settings.atom_path), render_atom(newest, self._settings))

    def close(self) -> None:
        self._engine.dispose()


def render_atom(rows: Sequence, settings: AlertSettings) -> bytes:
    """An Atom 1.0 document with one entry per alert row, newest first."""
    feed = FeedGenerator()
    feed.id(settings.feed_id)
    feed.title(settings.feed_title)
    feed.link(href=settings.feed_id, rel="self")
    feed.updated(rows[0]["written_at"] if rows else utc_now())
    # feedgen prepends entries, so add the oldest first.
    for row in reversed(rows):
        entry = feed.add_entry()
        entry.id(f"urn:amur:alert:{row['id']}")
        entry.title(row["title"])
        entry.link(href=row["url"])
        entry.published(row["published_at"] or row["alerted_at"])
        entry.updated(row["written_at"])
        parties = ", ".join([*row["russian_parties"], *row["chinese_parties"]])
        entry.summary(f"{row['summary']}\n\nscore {row['score']:.2f}; level {row['level'] or 'unknown'}; parties {parties}")
        for sector in row["sectors"]:
            entry.category(term=sector, scheme="urn:amur:sector")
        for party in [*row["russian_parties"], *row["chinese_parties"]]:
            entry.category(term=party, scheme="urn:amur:party")
    return feed.atom_str(pretty=True)


def _write_atomically(path: Path, content: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        with os.fdopen(handle, "wb") as file:
            file.write(content)
        os.replace(temporary, path)
    except OSError as exc:
        Path(temporary).unlink(missing_ok=True)
        raise SinkError(f"alert feed: cannot write {path}: {exc}") from exc
