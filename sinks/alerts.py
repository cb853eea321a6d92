"""The alerts store (``type: alerts``): every story's newest version, written once per batch.

Alerts are upserted into the ``alerts`` table keyed by story id — the newest version wins —
so a story delivered twice (a replay after a crash, a broker restart) or updated as outlets
join stays one alert. In the same transaction every version is kept (``alert_versions``: the
story page's history) and the story's tags replaced (``alert_tags``: what filtered pages and
the cooperation map read). The feeds (:mod:`sinks.subscription_feeds`), the dashboard, the
API, ``amur status`` and ``amur subscriptions test`` all read from here.

An alert no feed could show — no title, a link that is not http(s) — is rejected before it
is stored (it goes to the dead-letter topic), so it can never break a later render.

A story merged into another (its last version names the survivor in ``merged_into``) leaves
``alerts`` and its tags, so every feed and list drops it; ``story_redirects`` keeps where it
went, for the API's and the dashboard's redirects, and a late older version of it is not
stored again.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from sqlalchemy import JSON, Column, ColumnElement, Connection, Float, Index, Integer, String, Table, Text, and_, exists, or_, select, text
from sqlalchemy.exc import SQLAlchemyError

from pipeline.core.db import UTCDateTime, insert_missing, metadata
from pipeline.core.errors import MessageRejected, SinkError
from pipeline.core.messages import Alert, utc_now
from pipeline.core.sink import NoOptions, SinkContext, SqlSink
from pipeline.core.subscriptions import Filters

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


class AlertsSink(SqlSink):
    """Stores each batch's alerts once: rows, versions, tags and retirements (see the module docstring)."""

    topic = "alerts"
    table = alerts
    what = "alert"
    name = "alerts"
    # The first write of a story keeps its times: a replay or an update must not move it up
    # the feed; and an older version arriving late never overwrites a newer one.
    keep = ("alerted_at", "written_at", "story_at")
    newest = "version"

    @classmethod
    def from_config(cls, options: NoOptions, context: SinkContext) -> AlertsSink:
        return cls(context.engine())

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

    def _keep_versions(self, connection: Connection, batch: Sequence[Alert]) -> None:
        """Store each story version of ``batch`` once, as the alerts topic carried it."""
        now = utc_now()
        versions = {(alert.id, alert.version): alert for alert in batch}
        connection.execute(insert_missing(self.engine, alert_versions, key=["story_id", "version"]), [
            {"story_id": story_id, "version": version, "alert": alert.model_dump(mode="json"), "written_at": now}
            for (story_id, version), alert in versions.items()
        ])

    def _retire(self, notices: list[Alert]) -> None:
        now = utc_now()
        ids = sorted(alert.id for alert in notices)
        with self.engine.begin() as connection:
            self._keep_versions(connection, notices)
            connection.execute(insert_missing(self.engine, story_redirects, key=["story_id"]), [
                {"story_id": alert.id, "merged_into": alert.merged_into, "merged_at": now} for alert in notices
            ])
            for alert in notices:  # whoever pointed at the retired story now points at its survivor
                connection.execute(story_redirects.update().where(story_redirects.c.merged_into == alert.id)
                                   .values(merged_into=alert.merged_into))
            connection.execute(alert_tags.delete().where(alert_tags.c.story_id.in_(ids)))
            connection.execute(alerts.delete().where(alerts.c.id.in_(ids)))


MATCHING_PAGE = 200  # rows read at a time when words or excluded sources are checked on each


def tagged(kind: str, values: Sequence[str], story_id: ColumnElement = alerts.c.id) -> ColumnElement[bool]:
    """The story ``story_id`` has a tag of ``kind`` with one of ``values``."""
    # Correlated, so each candidate story costs one probe of the tags' primary key.
    return exists().where(alert_tags.c.story_id == story_id, alert_tags.c.kind == kind, alert_tags.c.value.in_(list(values)))


def filter_conditions(filters: Filters, story_id: ColumnElement = alerts.c.id) -> list[ColumnElement[bool]]:
    """The WHERE clauses that select the stories passing ``filters``, but for their keywords and
    excluded sources, which only :meth:`Filters.match` checks; ``alerts`` must be in the query
    when a level, a score or a language is filtered."""
    where = [tagged(kind, values, story_id) for kind, values in (
        ("region", filters.regions), ("pair", [f"{russian}:{chinese}" for russian, chinese in filters.pairs]),
        ("sector", filters.sectors), ("source", filters.sources)) if values]
    if filters.levels:
        where.append(alerts.c.level.in_(filters.levels))
    if filters.min_score is not None:
        where.append(alerts.c.score >= filters.min_score)
    if filters.languages:
        where.append(alerts.c.language.in_(filters.languages))
    return where


def newest_matching(connection: Connection, filters: Filters, limit: int, page: int | None = None) -> list[Alert]:
    """The ``limit`` stories passing ``filters`` written first most recently, newest first (an
    update keeps a story's place). SQL selects by the tags and columns; the keywords and
    excluded sources are checked on each row, ``page`` rows at a time (``limit`` when SQL
    decides alone), until ``limit`` pass."""
    found: list[Alert] = []
    after: tuple | None = None
    where = filter_conditions(filters)
    page = page or (limit if not (filters.keywords or filters.exclude_sources) else max(limit, MATCHING_PAGE))
    while len(found) < limit:
        query = select(alerts).where(*where).order_by(alerts.c.written_at.desc(), alerts.c.id).limit(page)
        if after is not None:
            written_at, story_id = after
            query = query.where(or_(alerts.c.written_at < written_at, and_(alerts.c.written_at == written_at, alerts.c.id > story_id)))
        rows = connection.execute(query).mappings().all()
        found += [story for story in map(Alert.model_validate, map(dict, rows)) if filters.match(story)]
        if len(rows) < page:
            break
        after = (rows[-1]["written_at"], rows[-1]["id"])
    return found[:limit]
