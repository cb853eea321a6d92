"""Atom alert feed sink (``type: atom``): alerts stored by story id and published as an Atom file.

Alerts are upserted into the ``alerts`` table keyed by story id — the newest version wins —
so a story delivered twice (a replay after a crash, a broker restart) or updated as outlets
join stays one alert; the Atom document is then rendered from the table and replaced
atomically, so a reader never sees a half-written file. :class:`StoredAlertsSink` is the
storing half, shared with the feeds per subscription (:mod:`sinks.subscription_feeds`).

An alert the feed could not show — no title, a link that is not http(s) — is rejected
before it is stored (it goes to the dead-letter topic), so it can never break a later render.

A story merged into another (its last version names the survivor in ``merged_into``) leaves
``alerts`` and its tags, so every feed and list drops it; ``story_redirects`` keeps where it
went, for the API's and the dashboard's redirects, and a late older version of it is not
stored again.
"""

from __future__ import annotations

import logging
import re
from abc import abstractmethod
from collections.abc import Sequence
from pathlib import Path

from feedgen.feed import FeedGenerator
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy import JSON, Column, Connection, Engine, Float, Index, Integer, String, Table, Text, select, text
from sqlalchemy.exc import SQLAlchemyError

from pipeline.core.db import UTCDateTime, insert_missing, metadata
from pipeline.core.errors import MessageRejected, SinkError
from pipeline.core.files import replace_file
from pipeline.core.messages import Alert, utc_now
from pipeline.core.sink import SinkContext, SqlSink

log = logging.getLogger(__name__)

FEED_FILE_MODE = 0o644
_NOT_XML = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\ufffe\uffff\ud800-\udfff]")

alerts = Table(
    "alerts",
    metadata,
    Column("id", String(32), primary_key=True),
    Column("article_id", String(32), nullable=False),
    Column("url", Text, nullable=False),
    Column("source", String(64), nullable=False),
    Column("title", Text, nullable=False),
    Column("summary", Text, nullable=False),
    Column("language", String(16)),
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
    Column("version", Integer, nullable=False, server_default=text("1")),
    Column("regions", JSON, nullable=False, server_default=text("'[]'")),
    Column("figures", JSON, nullable=False, server_default=text("'[]'")),
    Column("names", JSON, nullable=False, server_default=text("'{}'")),
    Column("outlets", JSON, nullable=False, server_default=text("'[]'")),
    Column("outlets_omitted", Integer, nullable=False, server_default=text("0")),
    Column("acts", JSON, nullable=False, server_default=text("'[]'")),
    Column("gist_en", Text, nullable=False, server_default=text("''")),
    Column("headline", Text, nullable=False, server_default=text("''")),
    Column("updated_at", UTCDateTime),
    Column("story_at", UTCDateTime),
    Index("ix_alerts_story_at", "story_at", "id"),
)

# Every version of every story, as the alerts topic carried it: the story page's history.
alert_versions = Table(
    "alert_versions",
    metadata,
    Column("story_id", String(32), primary_key=True),
    Column("version", Integer, primary_key=True),
    Column("alert", JSON, nullable=False),
    Column("written_at", UTCDateTime, nullable=False),
)

# A story merged into another: its id answers with the survivor's (the newest survivor, when
# that one was merged in turn).
story_redirects = Table(
    "story_redirects",
    metadata,
    Column("story_id", String(32), primary_key=True),
    Column("merged_into", String(32), nullable=False),
    Column("merged_at", UTCDateTime, nullable=False),
)

# One row per region, Russian–Chinese pair of regions, sector, pair and sector, and outlet
# source of a story's newest version, with its date: what filtered pages and the cooperation
# map are read by, as index ranges instead of scans of the JSON columns.
alert_tags = Table(
    "alert_tags",
    metadata,
    Column("story_id", String(32), primary_key=True),
    Column("kind", String(16), primary_key=True),
    Column("value", String(96), primary_key=True),
    Column("story_at", UTCDateTime, nullable=False),
    Index("ix_alert_tags_lookup", "kind", "value", "story_at", "story_id"),
)

_PLACE = re.compile(r"^(RU|CN)-[A-Z]{2,3}$")


def story_tags(alert: Alert) -> dict[str, set[str]]:
    """The values a story is found by, per kind: ``region`` (a party that is itself a region
    counts), ``pair`` (each Russian region with each Chinese one, ``RU-PRI:CN-HL``), ``sector``,
    ``pair_sector`` (``RU-PRI:CN-HL:energy``, the map's cells) and ``source`` (its outlets)."""
    places = {*alert.regions, *alert.russian_parties, *alert.chinese_parties}
    regions = {place for place in places if _PLACE.match(place)}
    pairs = {
        f"{russian}:{chinese}" for russian in regions if russian.startswith("RU-")
        for chinese in regions if chinese.startswith("CN-")
    }
    return {
        "region": regions,
        "pair": pairs,
        "sector": set(alert.sectors),
        "pair_sector": {f"{pair}:{sector}" for pair in pairs for sector in alert.sectors},
        "source": {outlet.source for outlet in alert.outlets} or {alert.source},
    }


def story_date(alert: Alert):
    """When a story happened, as lists and the map order it: its first article's publication
    time, or its first alert's when the page gave none or one in the future."""
    if alert.published_at is not None and alert.published_at < alert.alerted_at:
        return alert.published_at
    return alert.alerted_at


class AtomFeedOptions(BaseModel):
    """Options of ``- type: atom`` in amur.yaml's ``sinks:``."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    path: str = Field("var/alerts.atom", examples=["/srv/www/amur/alerts.atom"])
    title: str = "Amur: Russia–China cooperation alerts"
    feed_id: str = "urn:amur:alerts"
    max_entries: int = Field(200, ge=1, le=10_000)


class StoredAlertsSink(SqlSink):
    """Stores alerts in the ``alerts`` table, then renders feeds from it (``render``).

    An alert the feeds could not show is rejected before it is stored, so it can never
    break a later render.
    """

    topic = "alerts"
    table = alerts
    what = "alert"
    # The first write of a story keeps its times: a replay or an update must not move it up
    # the feed; and an older version arriving late never overwrites a newer one.
    keep = ("alerted_at", "written_at", "story_at")
    newest = "version"

    def setup(self) -> None:
        super().setup()
        self.render()

    def check(self, alert: Alert) -> None:
        if not alert.title.strip():
            raise MessageRejected(f"alert {alert.id} has an empty title; a feed entry needs one")
        if not alert.url.startswith(("http://", "https://")):
            raise MessageRejected(f"alert {alert.id} links to {alert.url[:80]!r}, not an http(s) URL")

    def row(self, alert: Alert) -> dict:
        row = alert.model_dump(mode="json", exclude={"schema_version", "merged_into", "merged_from"})
        row.update(published_at=alert.published_at, fetched_at=alert.fetched_at, alerted_at=alert.alerted_at,
                   updated_at=alert.updated_at, written_at=utc_now(), story_at=story_date(alert))
        return row

    def write_related(self, connection: Connection, batch: Sequence[Alert]) -> None:
        """Keep every version, and the tags of each story's newest stored version."""
        self._keep_versions(connection, batch)
        # The stored row, not the batch, decides: an older version arriving late is not the story.
        ids = sorted({alert.id for alert in batch})
        stored = connection.execute(select(alerts).where(alerts.c.id.in_(ids))).mappings().all()
        connection.execute(alert_tags.delete().where(alert_tags.c.story_id.in_(ids)))
        tags = [
            {"story_id": row["id"], "kind": kind, "value": value, "story_at": row["story_at"]}
            for row in stored for kind, values in story_tags(Alert.model_validate(dict(row))).items()
            for value in sorted(values)
        ]
        if tags:
            connection.execute(alert_tags.insert(), tags)

    def write(self, batch: Sequence[Alert]) -> None:
        """Store the batch's stories; a retired one leaves the lists and feeds for a redirect."""
        retired = {alert.id: alert for alert in batch if alert.merged_into is not None}
        live = [alert for alert in batch if alert.id not in retired]
        try:
            if retired:
                self._retire(list(retired.values()))
            if live:
                with self.engine.connect() as connection:
                    gone = set(connection.execute(
                        select(story_redirects.c.story_id).where(story_redirects.c.story_id.in_({alert.id for alert in live}))
                    ).scalars())
                live = [alert for alert in live if alert.id not in gone]  # a late version of a retired story
        except SQLAlchemyError as exc:
            raise SinkError(f"{self.name}: cannot retire merged stories: {exc.__class__.__name__}: {exc}") from exc
        if live:
            super().write(live)
        self.render(batch)

    def _keep_versions(self, connection: Connection, batch: Sequence[Alert]) -> None:
        """Store each story version of ``batch`` once, as the alerts topic carried it."""
        now = utc_now()
        versions = {(alert.id, alert.version): alert for alert in batch}
        connection.execute(insert_missing(self.engine, alert_versions, [
            {"story_id": story_id, "version": version, "alert": alert.model_dump(mode="json"), "written_at": now}
            for (story_id, version), alert in versions.items()
        ], key=["story_id", "version"]))

    def _retire(self, notices: list[Alert]) -> None:
        now = utc_now()
        ids = sorted(alert.id for alert in notices)
        with self.engine.begin() as connection:
            self._keep_versions(connection, notices)
            connection.execute(insert_missing(self.engine, story_redirects, [
                {"story_id": alert.id, "merged_into": alert.merged_into, "merged_at": now} for alert in notices
            ], key=["story_id"]))
            for alert in notices:  # whoever pointed at the retired story now points at its survivor
                connection.execute(story_redirects.update().where(story_redirects.c.merged_into == alert.id)
                                   .values(merged_into=alert.merged_into))
            connection.execute(alert_tags.delete().where(alert_tags.c.story_id.in_(ids)))
            connection.execute(alerts.delete().where(alerts.c.id.in_(ids)))

    @abstractmethod
    def render(self, changed: Sequence[Alert] | None = None) -> None:
        """Write the feeds from the stored alerts: those the ``changed`` stories (a batch's new
        versions and retirements) appear in, or every feed (``None``, at start)."""

    def newest_rows(self, limit: int) -> Sequence:
        try:
            with self.engine.connect() as connection:
                return newest_alerts(connection, limit)
        except SQLAlchemyError as exc:
            raise SinkError(f"{self.name}: cannot read alerts: {exc}") from exc


class AlertFeedSink(StoredAlertsSink):
    """Keeps one Atom feed of the newest ``max_entries`` alerts up to date."""

    name = "atom"
    Options = AtomFeedOptions

    def __init__(self, engine: Engine, options: AtomFeedOptions):
        super().__init__(engine)
        self.options = options

    @classmethod
    def from_config(cls, options: AtomFeedOptions, context: SinkContext) -> AlertFeedSink:
        return cls(context.engine(), options)

    def render(self, changed: Sequence[Alert] | None = None) -> None:
        rows = self.newest_rows(self.options.max_entries)  # every story is in the one feed
        write_atomically(Path(self.options.path), render_atom(rows, self.options))


def newest_alerts(connection, limit: int) -> Sequence:
    """The ``limit`` alert rows written last, newest first (first writes: updates keep their place)."""
    return connection.execute(
        select(alerts).order_by(alerts.c.written_at.desc(), alerts.c.id).limit(limit)
    ).mappings().all()


def render_atom(rows: Sequence, options: AtomFeedOptions) -> bytes:
    """An Atom 1.0 document with one entry per alert row, newest first.

    A stored row the feed cannot show (written before alerts were checked) is left out
    with a warning rather than stopping every later render.
    """
    feed = FeedGenerator()
    feed.id(options.feed_id)
    feed.title(options.title)
    feed.link(href=options.feed_id, rel="self")
    feed.updated(rows[0]["written_at"] if rows else utc_now())
    # feedgen prepends entries, so add the oldest first.
    for row in reversed(rows):
        entry = feed.add_entry()
        try:
            _fill_entry(entry, row)
        except ValueError as exc:
            log.warning("alert %s left out of %s: %s", row["id"], options.path, exc)
            feed.remove_entry(entry)
    return feed.atom_str(pretty=True)


def _fill_entry(entry, row) -> None:
    entry.id(f"urn:amur:alert:{row['id']}")
    entry.title(xml_text(row.get("headline") or row["title"]))
    entry.link(href=xml_text(row["url"]))
    entry.published(row["published_at"] or row["alerted_at"])
    entry.updated(row["updated_at"] or row["written_at"])
    parties = ", ".join([*row["russian_parties"], *row["chinese_parties"]])
    summary = f"{row['summary']}\n\nscore {row['score']:.2f}; level {row['level'] or 'unknown'}; parties {parties}"
    if row.get("gist_en"):
        summary = f"In English: {row['gist_en']}\n\n{summary}"
    if row.get("headline") and row["headline"] != row["title"]:
        summary = f"Original title: {row['title']}\n\n{summary}"
    others = [
        f"{outlet['source']}{f' [{language}]' if (language := outlet.get('language')) else ''} ({outlet['url']})"
        for outlet in row["outlets"][1:]
    ]
    if others:
        summary += "\nalso reported by: " + ", ".join(others)
    entry.summary(xml_text(summary))
    for sector in row["sectors"]:
        entry.category(term=xml_text(sector), scheme="urn:amur:sector")
    for party in [*row["russian_parties"], *row["chinese_parties"]]:
        entry.category(term=xml_text(party), scheme="urn:amur:party")


def xml_text(text: str) -> str:
    """``text`` without the characters XML 1.0 cannot hold (control characters, NUL), which
    pages and feeds do carry and which would make the whole document unwritable."""
    return _NOT_XML.sub("", text)


def write_atomically(path: Path, content: bytes, mode: int = FEED_FILE_MODE) -> None:
    """Replace ``path`` with ``content`` at once, readable by other users (a web server)."""
    try:
        replace_file(path, content, mode)
    except OSError as exc:
        raise SinkError(f"cannot write {path}: {exc}") from exc
