"""The connectors' durable state, in the SQL database (SQLite by default, PostgreSQL in production).

Three tables, brought to the newest schema revision by :meth:`StateStore.setup`
(:mod:`pipeline.core.migrations`):

``source_state`` — one row per source: the validators for the next conditional GET
(``etag``, ``last_modified``), when it was polled and last succeeded, how many polls in a
row failed and why, and when to poll next (the runtime's schedule survives a restart).

``seen_articles`` — one row per (source, article id) the connector has dealt with:

============  =================================================================
``emitted``   produced to the topic and committed; never fetched again
``retrying``  failed ``attempts`` times so far with a retryable error; offered again
``failed``    gave up: a permanent error (404, no text), or ``max_attempts`` reached
============  =================================================================

An article is recorded as emitted only once the runtime has flushed the producer: a crash
in between means it is fetched and produced again (at-least-once), never lost. Every
timestamp is stored and returned as aware UTC.

``source_item_counts`` — how many of each source's articles have each status (emitted ones
whose page failed apart), changed in the same transaction as the rows they count, so that
health (:meth:`StateStore.item_tallies`) reads a few rows at any size of the store.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass
from datetime import datetime, timedelta

import sqlalchemy as sa
from sqlalchemy import Engine

from pipeline.core.db import UTCDateTime, accumulate, chunked, metadata, upsert
from pipeline.core.messages import utc_now
from pipeline.core.migrations import upgrade_database
from pipeline.core.redaction import redact

__all__ = [
    "MAX_ERROR_CHARS", "SourceState", "StateStore", "done_rows", "seen_articles", "source_item_counts", "source_state",
]

MAX_ERROR_CHARS = 2000  # a reason longer than this is cut; it is for people, not parsers


source_state = sa.Table(
    "source_state", metadata,
    sa.Column("name", sa.String(64), primary_key=True),
    sa.Column("etag", sa.Text),
    sa.Column("last_modified", sa.Text),
    sa.Column("last_polled_at", UTCDateTime),
    sa.Column("last_success_at", UTCDateTime),
    sa.Column("consecutive_failures", sa.Integer, nullable=False, default=0),
    sa.Column("last_error", sa.Text),
    sa.Column("next_poll_at", UTCDateTime),
    sa.Column("interval_seconds", sa.Float),
)

seen_articles = sa.Table(
    "seen_articles", metadata,
    sa.Column("source", sa.String(64), primary_key=True),
    sa.Column("article_id", sa.String(32), primary_key=True),
    sa.Column("url", sa.Text, nullable=False),
    sa.Column("status", sa.String(16), nullable=False),
    sa.Column("attempts", sa.Integer, nullable=False, default=0),
    sa.Column("last_error", sa.Text),
    sa.Column("first_seen_at", UTCDateTime, nullable=False),
    sa.Column("updated_at", UTCDateTime, nullable=False),
    sa.Column("last_listed_at", UTCDateTime),  # a source's listing showed it then: not to be forgotten yet
    sa.CheckConstraint("status IN ('emitted', 'retrying', 'failed')", name="seen_articles_status"),
    # Whether any source is done with an article is one lookup in this index alone (no table
    # row read), however many URLs are stored.
    sa.Index("ix_seen_articles_done", "article_id", "status", "source"),
    # A source's usual gap (:meth:`StateStore.silence`) reads its newest emissions, not all its URLs.
    sa.Index("ix_seen_articles_source_emissions", "source", "status", "first_seen_at"),
)

# How many of each source's articles have each tally, kept as the rows change: health reads a
# handful of rows here instead of counting every seen URL (millions after a year).
source_item_counts = sa.Table(
    "source_item_counts", metadata,
    sa.Column("source", sa.String(64), primary_key=True),
    sa.Column("tally", sa.String(32), primary_key=True),  # a status, or EMITTED_WITHOUT_PAGE
    sa.Column("articles", sa.Integer, nullable=False),
    sa.Column("latest", UTCDateTime),  # when an article last got this tally
)

EMITTED, RETRYING, FAILED = "emitted", "retrying", "failed"
# Not a stored status: the tally of emitted articles whose page failed, made from the feed's summary.
EMITTED_WITHOUT_PAGE = "emitted without page"
_DONE = (EMITTED, FAILED)


@dataclass(frozen=True)
class ItemTally:
    """How many of a source's articles have one status, and when the latest got it."""

    count: int
    latest: datetime | None


SILENCE_FACTOR = 4  # a source is silent after this many of its usual gaps without a new item
SILENCE_HISTORY = 20  # the newest emissions the usual gap is measured over
SILENCE_MIN_EMISSIONS = 4  # fewer, and a source has no usual gap yet
SOURCES_PER_READ = 100  # sources whose silence one statement reads (a UNION ALL of as many index ranges)


@dataclass(frozen=True)
class Silence:
    """How long a source has published nothing, against its usual gap between new items."""

    last_new_at: datetime
    usual_gap: timedelta

    def silent_for(self, now: datetime) -> timedelta:
        return now - self.last_new_at

    def is_silent(self, now: datetime, poll_interval_seconds: float) -> bool:
        # A source polled every hour cannot show a gap shorter than an hour.
        expected = max(self.usual_gap, timedelta(seconds=poll_interval_seconds))
        return self.silent_for(now) > SILENCE_FACTOR * expected


@dataclass(frozen=True)
class SourceState:
    """What the store knows of one source; a source never polled has the defaults."""

    name: str
    etag: str | None = None
    last_modified: str | None = None
    last_polled_at: datetime | None = None
    last_success_at: datetime | None = None
    consecutive_failures: int = 0
    last_error: str | None = None
    next_poll_at: datetime | None = None
    interval_seconds: float | None = None  # the interval the last poll chose (adaptive sources)


class StateStore:
    """Per-source polling state and the seen-article store, on ``engine``.

    :param engine: from :func:`pipeline.core.db.make_engine`; call :meth:`setup` once before use.
    :param retention: how long a seen URL is remembered once no listing shows it any more
        (:meth:`forget_old`); ``None`` remembers every URL for ever.

    Safe to share between threads (each call takes its own connection). One source is
    expected to be polled by one connector at a time.
    """

    def __init__(self, engine: Engine, retention: timedelta | None = None):
        self.engine = engine
        self.retention = retention

    def setup(self) -> None:
        """Migrate the database to the newest revision (creating the tables on first use)."""
        upgrade_database(self.engine)

    # --- per-source polling state ---------------------------------------------------------

    def get(self, name: str) -> SourceState:
        """The state of source ``name``; defaults when it was never polled."""
        with self.engine.connect() as connection:
            row = connection.execute(sa.select(source_state).where(source_state.c.name == name)).mappings().first()
        return SourceState(**row) if row else SourceState(name=name)

    def record_success(
        self, name: str, etag: str | None, last_modified: str | None, next_poll_at: datetime,
        interval_seconds: float | None = None,
    ) -> None:
        """A poll succeeded: keep the validators for the next conditional GET, reset the failures,
        and remember the interval chosen.

        On a 304 pass the validators sent (the server need not repeat them).
        """
        now = utc_now()
        row = dict(
            name=name, etag=etag, last_modified=last_modified, last_polled_at=now, last_success_at=now,
            consecutive_failures=0, last_error=None, next_poll_at=next_poll_at, interval_seconds=interval_seconds,
        )
        with self.engine.begin() as connection:
            connection.execute(upsert(self.engine, source_state, key=["name"]), [row])

    def set_validators(self, name: str, etag: str | None, last_modified: str | None) -> None:
        """Store the ETag / Last-Modified to send on the next poll of ``name`` (``None`` clears them).

        Connectors call it from ``commit``, once the feed version they describe is delivered.
        """
        with self.engine.begin() as connection:
            connection.execute(
                sa.update(source_state).where(source_state.c.name == name).values(etag=etag, last_modified=last_modified)
            )

    def record_failure(self, name: str, error: str, next_poll_at: datetime) -> SourceState:
        """A poll failed as a whole: count it, keep the reason; validators stay as they were.

        :returns: the state after the failure (``consecutive_failures`` includes this one).
        """
        with self.engine.begin() as connection:
            # Read-modify-write in one transaction: only one connector polls a source.
            previous = self._source_row(connection, name) or asdict(SourceState(name=name))
            row = {
                **previous, "last_polled_at": utc_now(), "last_error": _cut(error), "next_poll_at": next_poll_at,
                "consecutive_failures": previous["consecutive_failures"] + 1,
            }
            connection.execute(upsert(self.engine, source_state, key=["name"]), [row])
        return SourceState(**row)

    def health(self) -> list[SourceState]:
        """Every source's state, by name: for ``amur`` status commands and the operator view."""
        with self.engine.connect() as connection:
            rows = connection.execute(sa.select(source_state).order_by(source_state.c.name)).mappings().all()
        return [SourceState(**row) for row in rows]

    @staticmethod
    def _source_row(connection: sa.Connection, name: str) -> dict | None:
        row = connection.execute(sa.select(source_state).where(source_state.c.name == name)).mappings().first()
        return dict(row) if row else None

    # --- seen articles -------------------------------------------------------------------------

    def unseen(self, source: str, ids: Iterable[str]) -> set[str]:
        """The ``ids`` still to fetch: emitted by no source, and not given up by this one.

        An article is emitted once, by whichever source listed it first: a wire story that
        three feeds carry is fetched once. A failure stays the source's own (another source
        may link to a page that works).
        """
        wanted = set(ids)
        done: set[str] = set()
        with self.engine.connect() as connection:
            for chunk in chunked(sorted(wanted)):
                done.update(
                    article_id for article_id, by_source, status in connection.execute(done_rows(chunk))
                    if status == EMITTED or by_source == source
                )
        return wanted - done

    def mark_emitted(self, source: str, items: Sequence[tuple[str, str]], page_error: str | None = None) -> None:
        """Record ``(article_id, url)`` pairs as produced and flushed; they are not fetched again.

        :param page_error: why their page failed, when they were emitted from the feed's summary.
        """
        if not items:
            return
        now = utc_now()
        latest = dict(items)  # one row per id, or the upsert would touch a row twice
        with self.engine.begin() as connection:
            previous = self._seen_rows(connection, source, list(latest))
            rows = [
                {
                    "source": source, "article_id": article_id, "url": url, "status": EMITTED,
                    "attempts": previous.get(article_id, {}).get("attempts", 0),
                    "last_error": _cut(page_error) if page_error else None,
                    "first_seen_at": previous.get(article_id, {}).get("first_seen_at", now), "updated_at": now,
                }
                for article_id, url in latest.items()
            ]
            for chunk in chunked(rows):
                connection.execute(upsert(self.engine, seen_articles, key=["source", "article_id"]), chunk)
            self._count(connection, [(source, _tally(row)) for row in previous.values()], [(source, _tally(row)) for row in rows], now)

    def record_item_failure(
        self, source: str, article_id: str, url: str, error: str, permanent: bool, max_attempts: int = 3,
    ) -> bool:
        """Count a failed attempt at one article.

        :param permanent: the error cannot go away by retrying (``not SourceError.retryable``).
        :param max_attempts: attempts after which a retryable failure is given up as well.
        :returns: ``True`` when the article is now given up (status ``failed``).
        """
        now = utc_now()
        with self.engine.begin() as connection:
            previous = self._seen_rows(connection, source, [article_id]).get(article_id)
            if previous is not None and previous["status"] == EMITTED:
                return False  # already delivered; a later failure to refetch changes nothing
            attempts = (previous["attempts"] if previous else 0) + 1
            status = FAILED if permanent or attempts >= max_attempts else RETRYING
            row = {
                "source": source, "article_id": article_id, "url": url, "status": status, "attempts": attempts,
                "last_error": _cut(error), "first_seen_at": previous["first_seen_at"] if previous else now,
                "updated_at": now,
            }
            connection.execute(upsert(self.engine, seen_articles, key=["source", "article_id"]), [row])
            self._count(connection, [(source, _tally(previous))] if previous else [], [(source, _tally(row))], now)
        return status == FAILED

    def mark_listed(self, ids: Iterable[str]) -> None:
        """Note that a listing still shows these seen articles, so the retention keeps them."""
        listed = sorted(set(ids))
        if not listed:
            return
        now = utc_now()
        with self.engine.begin() as connection:
            for chunk in chunked(listed):
                connection.execute(
                    sa.update(seen_articles).where(seen_articles.c.article_id.in_(chunk)).values(last_listed_at=now)
                )

    def forget_old(self) -> int:
        """Delete the seen URLs that no listing has shown, and nothing has happened to, for the
        retention window; returns how many. Keeps the store, and so its lookups, bounded however
        long Amur runs, and never forgets an item a feed still lists (it would come back as new)."""
        if self.retention is None:
            return 0
        oldest = utc_now() - self.retention
        last_seen = sa.func.coalesce(seen_articles.c.last_listed_at, seen_articles.c.updated_at)
        with self.engine.begin() as connection:
            forgotten = connection.execute(
                sa.delete(seen_articles).where(seen_articles.c.updated_at < oldest, last_seen < oldest)
                .returning(seen_articles.c.source, seen_articles.c.status, seen_articles.c.last_error)
            ).mappings().all()
            self._count(connection, [(row["source"], _tally(row)) for row in forgotten], [], None)
        return len(forgotten)

    def item_statuses(self, source: str) -> dict[str, str]:
        """``article_id → status`` of every article recorded for ``source`` (operators, tests)."""
        with self.engine.connect() as connection:
            rows = connection.execute(
                sa.select(seen_articles.c.article_id, seen_articles.c.status).where(seen_articles.c.source == source)
            ).all()
        return {article_id: status for article_id, status in rows}

    def item_tallies(self) -> dict[str, dict[str, ItemTally]]:
        """``source → status → how many articles, and the latest change``: what each source has
        yielded, for operators. Emitted articles whose page failed are tallied apart, under
        :data:`EMITTED_WITHOUT_PAGE`."""
        tallies: dict[str, dict[str, ItemTally]] = {}
        with self.engine.connect() as connection:
            rows = connection.execute(sa.select(source_item_counts).where(source_item_counts.c.articles > 0)).all()
        for source, tally, count, latest in rows:
            tallies.setdefault(source, {})[tally] = ItemTally(count, latest)
        return tallies

    def _count(
        self, connection: sa.Connection, left: Sequence[tuple[str, str]], entered: Sequence[tuple[str, str]], now: datetime | None,
    ) -> None:
        """Move the counts of ``source_item_counts``: one article out of each ``(source, tally)``
        in ``left``, one into each in ``entered`` (whose ``latest`` becomes ``now``)."""
        changes = Counter(entered)
        changes.subtract(left)
        rows = [
            {"source": source, "tally": tally, "articles": change, "latest": now if (source, tally) in entered else None}
            for (source, tally), change in sorted(changes.items()) if change or (source, tally) in entered
        ]
        for chunk in chunked(rows):
            connection.execute(accumulate(self.engine, source_item_counts, key=["source", "tally"], total="articles", latest="latest"), chunk)

    def silence(self, source: str, poll_interval_seconds: float) -> Silence | None:
        """When ``source`` last had a new article and its usual gap between new articles (the
        median over its newest :data:`SILENCE_HISTORY`, gaps shorter than a poll interval being
        articles of one poll); ``None`` until it has such a history."""
        return self.silences({source: poll_interval_seconds})[source]

    def silences(self, poll_intervals: Mapping[str, float]) -> dict[str, Silence | None]:
        """:meth:`silence` of each source in ``poll_intervals`` (name → poll interval in
        seconds), read in one statement per :data:`SOURCES_PER_READ` sources: health shows every
        source at once, and a query each would cost a round trip each."""
        moments: dict[str, list[datetime]] = {source: [] for source in poll_intervals}
        with self.engine.connect() as connection:
            for chunk in chunked(sorted(poll_intervals), SOURCES_PER_READ):
                newest = [
                    sa.select(seen_articles.c.source, seen_articles.c.first_seen_at)
                    .where(seen_articles.c.source == source, seen_articles.c.status == EMITTED)
                    .order_by(seen_articles.c.first_seen_at.desc()).limit(SILENCE_HISTORY)
                    .subquery().select()  # each source its own index range, its own LIMIT
                    for source in chunk
                ]
                for source, moment in connection.execute(sa.union_all(*newest)):
                    moments[source].append(moment)
        return {source: _silence(sorted(found, reverse=True), poll_intervals[source]) for source, found in moments.items()}

    @staticmethod
    def _seen_rows(connection: sa.Connection, source: str, ids: list[str]) -> dict[str, dict]:
        found: dict[str, dict] = {}
        for chunk in chunked(ids):
            rows = connection.execute(
                sa.select(seen_articles).where(seen_articles.c.source == source, seen_articles.c.article_id.in_(chunk))
            ).mappings()
            found.update({row["article_id"]: dict(row) for row in rows})
        return found


def done_rows(ids: Sequence[str]) -> sa.Select:
    """The rows of ``ids`` that some source is done with, as ``(article_id, source, status)``.

    Which source matters is decided by the caller: asked in SQL ("emitted, or done by this
    source"), the OR lets the planner read the second branch from the (source, status) index,
    every row the source ever emitted, and the lookup grows with the store. This way it is one
    index lookup per id at any size.
    """
    return sa.select(seen_articles.c.article_id, seen_articles.c.source, seen_articles.c.status).where(
        seen_articles.c.article_id.in_(ids), seen_articles.c.status.in_(_DONE),
    )


def _silence(moments: list[datetime], poll_interval_seconds: float) -> Silence | None:
    """The silence shown by a source's newest emission times, newest first."""
    within_a_poll = timedelta(seconds=poll_interval_seconds)
    gaps = sorted(gap for newer, older in zip(moments, moments[1:], strict=False) if (gap := newer - older) >= within_a_poll)
    if len(gaps) < SILENCE_MIN_EMISSIONS - 1:
        return None
    return Silence(last_new_at=moments[0], usual_gap=gaps[len(gaps) // 2])


def _tally(row: Mapping) -> str:
    """The tally a seen row counts under: its status, emitted articles whose page failed apart."""
    return EMITTED_WITHOUT_PAGE if row["status"] == EMITTED and row["last_error"] is not None else row["status"]


def _cut(text: str) -> str:
    """An error as stored: credentials masked, at most MAX_ERROR_CHARS."""
    text = redact(text)
    return text if len(text) <= MAX_ERROR_CHARS else text[: MAX_ERROR_CHARS - 1] + "…"
