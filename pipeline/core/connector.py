"""The lifecycle every connector shares: ``start → (poll → produce → flush → commit)* → close``.

Modelled on bytewax's ``SimplePollingSource`` (a non-blocking ``next_batch`` and a
``Retry`` delay instead of ``time.sleep``) and quix-streams' ``Source`` (``start``,
``stop``, cleanup that flushes only on success). A connector pulls new items from one
source and turns each into an :class:`~pipeline.core.messages.Article`; the runtime owns the
producer, the schedule and the loop.

The contract, step by step, for one poll of one connector:

1. ``result = connector.poll(emit)`` fetches what is new since the last commit and hands its
   articles to ``emit`` a few at a time, as soon as it has them: ``emit(articles)`` produces
   them to the ``articles`` topic (key = article id) and returns only once the producer has
   **flushed** them, and only then does the connector record those articles as emitted.
   :class:`PollingConnector` hands over at most :data:`EMIT_BATCH` articles at once, and an
   article waits at most :data:`EMIT_WAIT_SECONDS` for others: one flush and one write of
   the seen store serve them all, and the first alert does not wait for the last page of a
   poll. ``emit`` is the one way an article reaches the topic, and the connector the one
   writer of what is seen.
2. The runtime sends the failures the connector ``gave_up`` on to the dead-letter topic and
   **flushes** the producer; a flush that raises ends this round here.
3. **Only then** the runtime calls ``connector.commit()``, which records what the poll dealt
   with besides its articles — listed items that turned out to be an article already emitted
   — and the listing's validators (ETag / Last-Modified), so the next poll skips them all.
   Commit after every poll that returned, even with no articles.
4. The runtime polls again after ``result.next_poll_in`` seconds.

A dry run (``amur sources test``) polls with ``emit=None``: the connector only returns its
articles, records nothing as seen, and is never committed.

Most connectors subclass :class:`PollingConnector`, which does everything above that every
source shares — the conditional request's validators, dedup against the seen store, the
per-poll cap, item retries and giving up, back-off after failures, Retry-After, and storing
the validators only once every item of the listing is dealt with. A subclass only says how
to list a source's items (:meth:`PollingConnector.list_items`) and how to turn one item into
an article (:meth:`PollingConnector.fetch_article`).

A crash inside ``emit`` (before its flush returned) or before 3 leaves what was not yet
recorded unrecorded: the next poll fetches and produces it again. Delivery is at-least-once; nothing is lost, and the sinks upsert by id, so a
duplicate changes nothing. Commit before polling again, or the next poll returns the same
articles a second time. One connector is polled by one thread at a time; different
connectors may be polled in parallel (the fetcher and the state store are thread-safe).

Errors are split the bytewax way (``oks``/``errs``):

* one item failing (a page 404s, times out, has no text) is data: an :class:`ItemFailure` in
  ``PollResult.failures``; the other items go on;
* the whole source failing (feed unreachable, not a feed) raises
  :class:`~pipeline.core.errors.SourceError` from ``poll()``. The connector has already recorded
  the failure and its back-off; ``connector.next_poll_in`` says when to try again.

Example — the runtime loop for one connector::

    connector = registry.connectors.get(source.kind).from_source(source, context)

    def emit(articles):
        for article in articles:
            producer.produce(topics.articles, *encode(article))
        producer.flush()

    connector.start()
    try:
        while running:
            try:
                result = connector.poll(emit)
            except SourceError as exc:
                log.warning("source failed", extra={"source": connector.name, "reason": str(exc)})
                wait(connector.next_poll_in)
                continue
            for failure in result.failures:
                if failure.gave_up:  # a retryable one comes back on a later poll
                    dead_letter(failure)
            producer.flush()
            connector.commit()
            wait(result.next_poll_in)
    finally:
        connector.close()
"""

from __future__ import annotations

import logging
import random
import threading
import time
from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import Any, ClassVar, TypeVar

from sqlalchemy.exc import SQLAlchemyError

from pipeline.core.errors import FetchError, SourceError, TransportError
from pipeline.core.failpoints import failpoint
from pipeline.core.messages import Article, article_id, utc_now
from pipeline.core.settings import AmurSettings, SourceConfig, SourceOptions
from pipeline.core.state import StateStore

__all__ = [
    "BACKLOG_POLL_SECONDS", "MAX_INTERVAL_SECONDS", "MIN_RETRY_AFTER_SECONDS", "Connector", "ConnectorContext", "Emit", "Item",
    "ItemFailure", "Listing", "PollResult", "PollingConnector", "newest_first",
]

MIN_RETRY_AFTER_SECONDS = 30.0
BACKLOG_POLL_SECONDS = 1.0
MAX_INTERVAL_SECONDS = 86_400.0
ADAPT_SLOWER, ADAPT_FASTER = 1.5, 0.5  # interval × this after a poll with no new item / several
JITTER = 0.1  # ± this share of the interval

log = logging.getLogger(__name__)

# A publication date is believed between the first news sites and now, give or take a clock
# or a time zone a little off: "Mon, 01 Jan 0001" and a date next year are a feed's mistakes.
EARLIEST_PUBLICATION = datetime(1990, 1, 1, tzinfo=timezone.utc)
CLOCK_SKEW = timedelta(hours=1)


def plausible_publication(moment: datetime | None, now: datetime) -> datetime | None:
    """``moment`` when it can be a publication date, else None."""
    return moment if moment is not None and EARLIEST_PUBLICATION <= moment <= now + CLOCK_SKEW else None


R = TypeVar("R")
T = TypeVar("T")
# Produces the articles and returns once they are flushed to the topic (see the module docstring).
Emit = Callable[[Sequence[Article]], None]
# Articles handed to ``emit`` at once, and the longest one waits for others before it goes.
EMIT_BATCH = 16
EMIT_WAIT_SECONDS = 0.5


@dataclass(frozen=True)
class ItemFailure:
    """One item of a source that could not become an article, and why.

    ``gave_up`` is false when the connector will offer the item again on a later poll (a
    retryable error with attempts left): log it, and send it to the dead-letter topic only
    once ``gave_up`` is true.
    """

    url: str
    error: SourceError
    gave_up: bool = True

    @property
    def reason(self) -> str:
        return self.error.reason


@dataclass(frozen=True)
class PollResult:
    """What one poll found: new articles, failed items, and when to poll next."""

    articles: list[Article] = field(default_factory=list)
    failures: list[ItemFailure] = field(default_factory=list)
    next_poll_in: float = 300.0  # seconds
    not_modified: bool = False  # the listing answered 304: nothing was read


class ConnectorContext:
    """What connectors are built with: the settings, the state store, and shared resources.

    Resources that every connector of a process should share (one HTTP client with its
    per-host politeness, say) are made once by :meth:`shared` and closed by :meth:`close`.
    """

    def __init__(self, settings: AmurSettings, state: StateStore):
        self.settings = settings
        self.state = state
        self._shared: dict[str, Any] = {}
        self._lock = threading.Lock()

    def shared(self, name: str, make: Callable[[], R]) -> R:
        """The resource called ``name``, made by ``make`` on first use."""
        with self._lock:
            if name not in self._shared:
                self._shared[name] = make()
            return self._shared[name]

    def cancel(self) -> None:
        """End what the shared resources are waiting on (the fetcher's requests): shutting down."""
        with self._lock:
            resources = list(self._shared.values())
        for resource in resources:
            cancel = getattr(resource, "cancel", None)
            if cancel is not None:
                cancel()

    def close(self) -> None:
        with self._lock:
            resources, self._shared = list(self._shared.values()), {}
        for resource in resources:
            close = getattr(resource, "close", None)
            if close is not None:
                close()


class Connector(ABC):
    """A source of articles, polled by the runtime. See the module docstring for the contract.

    Subclasses implement :meth:`from_source`, :meth:`poll` and :meth:`commit`; :meth:`start`
    and :meth:`close` default to doing nothing. A connector may be used as a context manager
    (``start`` on enter, ``close`` on exit).

    :ivar name: the source name, as in ``sources.yaml``; used in logs and state.
    :ivar next_poll_in: seconds until the next poll, as decided by the last poll — also when
        that poll raised.
    """

    name: str
    next_poll_in: float = 0.0
    # The kind's own keys under a source's entry (``url:``, ``path:``, …), validated with the
    # source; the connector reads them as ``source.options``.
    Options: ClassVar[type[SourceOptions]] = SourceOptions

    @classmethod
    @abstractmethod
    def from_source(cls, source: SourceConfig, context: ConnectorContext) -> Connector:
        """Build the connector of one ``sources.yaml`` entry."""

    def start(self) -> None:
        """Prepare to poll; called once, before the first scheduled poll.

        May set :attr:`next_poll_in` to when the first poll is due, so that a restart keeps
        a source's schedule and back-off instead of polling everything at once.
        """

    @abstractmethod
    def poll(self, emit: Emit | None = None) -> PollResult:
        """Fetch what is new since the last commit; return it, and hand each article to
        ``emit`` as soon as it is extracted if given (``emit`` returns once it is flushed).

        :raises SourceError: the whole source failed (recorded, with its back-off, first).
        """

    def cancel(self) -> None:
        """Stop the poll in progress soon: the runtime is shutting down. What was emitted stays emitted."""

    @abstractmethod
    def commit(self) -> None:
        """Record what the last poll dealt with besides the articles it emitted (and its
        validators). Call only after the producer has flushed the poll's dead letters."""

    def close(self) -> None:
        """Release what the connector holds. May be skipped after a crash, so keep no state here."""

    def __enter__(self) -> Connector:
        self.start()
        return self

    def __exit__(self, *_exc) -> None:
        self.close()


@dataclass(frozen=True)
class Item:
    """One entry of a source's listing: a link, and what the listing says about it.

    :ivar url: the link in its canonical spelling; the seen store knows the item by
        ``article_id(url)``, so it is not fetched again once dealt with.
    """

    url: str
    title: str = ""
    summary: str = ""
    published_at: datetime | None = None
    authors: tuple[str, ...] = ()
    language: str | None = None


@dataclass(frozen=True)
class Listing:
    """What listing a source returned: its items and the validators for the next request.

    ``not_modified`` is a 304 (nothing new); ``retry_after`` a delay the server asked for.
    """

    items: list[Item] = field(default_factory=list)
    etag: str | None = None
    last_modified: str | None = None
    retry_after: float | None = None
    not_modified: bool = False
    update_hint: float | None = None  # seconds the source says it changes at most every (ttl, sy:updatePeriod, max-age)


@dataclass
class _Delivery:
    """What :meth:`PollingConnector.commit` records for the poll before it."""

    item_urls: dict[str, str]  # seen-store id → url of every item dealt with by emitting it
    validators: tuple[str | None, str | None]


class PollingConnector(Connector):
    """A connector that lists a source's items and fetches the new ones (see the module docstring).

    A poll takes the listing's items newest first, skips those emitted or given up (by
    ``article_id(item.url)``), fetches at most ``max_articles_per_poll`` of them, and counts
    each failure in the state store: a permanent one, or the ``max_item_attempts``-th
    retryable one, gives the item up. The article a page turns out to be may have another id
    than its link (a redirect, a ``rel=canonical``): one already emitted through another link
    is not emitted again.

    The validators (ETag, Last-Modified) of a changed listing are stored only by
    :meth:`commit`, and only when the poll dealt with every item (none left over by the
    per-poll limit, none waiting for a retry): otherwise a crash before commit, or a 304 next
    time, would hide items that still need work.

    Next poll: ``poll_interval_seconds`` — or, for a source with ``min_interval_seconds`` and
    ``max_interval_seconds``, the interval :func:`adapted_interval` makes of how much the
    poll found and of the feed's own hints, ±10 % — or the server's ``Retry-After`` clamped to
    [30 s, 1 day]; after a failed poll, ``interval × 2^failures`` capped at 1 day, so a
    failing source keeps being tried, slowly, and recovers on its own.
    """

    max_item_attempts = 3
    default_max_age_days: int | None = None  # SourceConfig.max_age_days when the source sets none
    drains_backlog = False  # poll again after BACKLOG_POLL_SECONDS while the per-poll cap leaves items (archives)

    def __init__(self, source: SourceConfig, state: StateStore):
        self.source = source
        self.name = source.name
        self.url = source.location
        self.state = state
        self.next_poll_in = float(source.poll_interval_seconds)
        self._delivery: _Delivery | None = None
        self._cancelled = threading.Event()

    @abstractmethod
    def list_items(self, etag: str | None, last_modified: str | None) -> Listing:
        """The source's current listing, asked for conditionally with the stored validators.

        :raises SourceError: the listing cannot be fetched or read.
        """

    @abstractmethod
    def fetch_article(self, item: Item) -> Article:
        """The article behind one item (``source`` set to this connector's name).

        :raises SourceError: this item failed; ``retryable`` says if a later poll may succeed.
        """

    def start(self) -> None:
        due = self.state.get(self.name).next_poll_at
        self.next_poll_in = max(0.0, (due - utc_now()).total_seconds()) if due else 0.0

    def cancel(self) -> None:
        self._cancelled.set()

    def poll(self, emit: Emit | None = None) -> PollResult:
        previous = self.state.get(self.name)
        try:
            return self._poll(previous, emit)
        except (TransportError, SQLAlchemyError):
            raise  # the broker or the database is out: no fault of the source
        except Exception as exc:
            # Whatever else one source's bytes make go wrong is that source's failure: recorded
            # with its back-off, and the other sources are polled as usual.
            error = exc if isinstance(exc, SourceError) else SourceError(
                self.url, f"unexpected {type(exc).__name__} while reading the source: {exc}"[:1_000],
            )
            if not isinstance(exc, SourceError):
                log.error("source failed unexpectedly: source=%s", self.name, exc_info=exc)
            if not self._cancelled.is_set():  # a fetch cut short by shutdown is no failure of the source
                self._record_failure(error, previous.consecutive_failures + 1)
            if error is exc:
                raise
            raise error from exc

    def _poll(self, previous, emit: Emit | None) -> PollResult:
        self._delivery = None
        sent = (None, None) if self.source.ignore_validators else (previous.etag, previous.last_modified)
        listing = self.list_items(*sent)
        todo = [] if listing.not_modified else self._unseen_items(listing.items)
        interval = adapted_interval(self.source, previous.interval_seconds, len(todo), listing.update_hint)
        self.next_poll_in = _interval(interval, listing.retry_after, jitter=self.source.adaptive)
        if self.drains_backlog and len(todo) > self.source.max_articles_per_poll:
            self.next_poll_in = BACKLOG_POLL_SECONDS
        # Until commit, keep the validators that were sent: a crash now must not turn into a 304.
        self.state.record_success(self.name, previous.etag, previous.last_modified, _at(self.next_poll_in), interval)
        if listing.not_modified:
            log.debug("source not modified: source=%s url=%s", self.name, self.url)
            return PollResult(next_poll_in=self.next_poll_in, not_modified=True)
        articles, failures, item_urls, complete = self._new_articles(todo, emit)
        # Validators only when nothing is left for later; else the next poll must see the items again.
        validators = (listing.etag, listing.last_modified) if complete else (None, None)
        self._delivery = _Delivery(item_urls, validators) if emit is not None else None
        log.debug("source polled: source=%s items=%d new=%d", self.name, len(listing.items), len(todo))
        return PollResult(articles=articles, failures=failures, next_poll_in=self.next_poll_in)

    def commit(self) -> None:
        if self._delivery is None:  # a dry run, or a poll that failed
            return
        self.state.mark_emitted(self.name, list(self._delivery.item_urls.items()))
        self.state.set_validators(self.name, *self._delivery.validators)
        self._delivery = None

    def _unseen_items(self, items: list[Item]) -> list[tuple[str, Item]]:
        """``(seen-store id, item)`` of the listing's items still to fetch, newest first; items
        dated before the source's age limit are not looked at. The others already seen are
        marked as still listed, so the seen store's retention keeps them."""
        max_age_days = self.source.max_age_days or self.default_max_age_days
        oldest = utc_now() - timedelta(days=max_age_days) if max_age_days else None
        by_id: dict[str, Item] = {}
        for item in newest_first(items, lambda item: item.published_at):
            if oldest is not None and item.published_at is not None and item.published_at < oldest:
                continue
            by_id.setdefault(article_id(item.url), item)  # newest first: a repeated link keeps its newest item
        unseen = self.state.unseen(self.name, list(by_id))
        self.state.mark_listed(key for key in by_id if key not in unseen)
        return [(key, item) for key, item in by_id.items() if key in unseen]  # dicts keep the newest-first order

    def _new_articles(
        self, todo: list[tuple[str, Item]], emit: Emit | None,
    ) -> tuple[list[Article], list[ItemFailure], dict[str, str], bool]:
        limit = self.source.max_articles_per_poll
        complete = len(todo) <= limit
        articles: dict[str, Article] = {}
        item_urls: dict[str, str] = {}
        failures: list[ItemFailure] = []
        batch = _EmitBatch(self, emit)
        # Pages are fetched on a thread of their own, so that the articles already fetched go
        # out on time while a slow page is awaited; the poll's thread alone produces and flushes.
        with ThreadPoolExecutor(max_workers=1, thread_name_prefix=f"fetch-{self.name}") as fetching:
            for key, item in todo[:limit]:
                if self._cancelled.is_set():
                    log.info("poll cut short by shutdown: source=%s; the rest comes next time", self.name)
                    complete = False
                    break
                page_error = None
                try:
                    article = batch.sending_while(fetching.submit(self.fetch_article, item))
                except SourceError as exc:
                    if self._cancelled.is_set():
                        complete = False
                        break
                    gave_up = self.state.record_item_failure(
                        self.name, key, item.url, str(exc), permanent=not exc.retryable, max_attempts=self.max_item_attempts,
                    )
                    complete = complete and gave_up
                    failures.append(ItemFailure(item.url, exc, gave_up=gave_up))
                    log.warning("item failed: source=%s url=%s gave_up=%s reason=%s", self.name, item.url, gave_up, exc.reason)
                    fallback = self.article_without_page(item, exc) if gave_up else None
                    if fallback is None:
                        continue
                    article, page_error = fallback, exc.reason
                if article.id != key and (article.id in articles or not self.state.unseen(self.name, [article.id])):
                    log.info("item is an article already emitted: source=%s url=%s article=%s", self.name, item.url, article.url)
                    item_urls[key] = item.url
                    continue
                articles[article.id] = article
                if emit is not None:  # else a dry run: nothing is recorded
                    batch.add(article, [(key, item.url), (article.id, article.url)], page_error)
        batch.send()  # what was fetched before a shutdown cut the poll short is kept too
        return list(articles.values()), failures, item_urls, complete

    def article_without_page(self, item: Item, error: SourceError) -> Article | None:
        """The article an item's listing alone makes once its page has failed for good: the
        listing's title and summary as the text, and ``page_error`` saying why. ``None`` when
        the listing has no title or no summary to classify, or when the link was refused (a
        link into a private network or to a non-http scheme is passed on in no form)."""
        if isinstance(error, FetchError) and error.refused:
            return None
        if not item.title.strip() or not item.summary.strip():
            return None
        return Article(
            id=article_id(item.url), url=item.url, source=self.name, title=item.title, text=item.summary,
            summary=item.summary, language=item.language, authors=list(item.authors),
            published_at=plausible_publication(item.published_at, utc_now()), fetched_at=utc_now(), page_error=error.reason,
        )

    def _record_failure(self, exc: SourceError, failures: int) -> None:
        retry_after = exc.retry_after if isinstance(exc, FetchError) else None
        if retry_after is not None:
            self.next_poll_in = _interval(self.source.poll_interval_seconds, retry_after)
        else:
            self.next_poll_in = min(self.source.poll_interval_seconds * 2.0 ** min(failures, 20), MAX_INTERVAL_SECONDS)
        self.state.record_failure(self.name, str(exc), _at(self.next_poll_in))
        log.warning(
            "source failed: source=%s url=%s failures=%d retry_in=%.0fs reason=%s",
            self.name, self.url, failures, self.next_poll_in, exc.reason,
        )


class _EmitBatch:
    """A poll's articles on their way to ``emit``, recorded as emitted once flushed: they go
    :data:`EMIT_BATCH` at a time, when the first has waited :data:`EMIT_WAIT_SECONDS`, and at
    the poll's end."""

    def __init__(self, connector: PollingConnector, emit: Emit | None):
        self.connector = connector
        self.emit = emit
        self.articles: list[Article] = []
        self.marks: dict[str | None, list[tuple[str, str]]] = {}  # (id, url) to record, by page error
        self.since = 0.0

    def sending_while(self, fetch: Future[Article]) -> Article:
        """The fetched article (or the fetch's error), sending what has waited long enough meanwhile."""
        while True:
            wait = max(0.0, self.since + EMIT_WAIT_SECONDS - time.monotonic()) if self.articles else None
            try:
                return fetch.result(timeout=wait)
            except FutureTimeout:
                self.send()

    def add(self, article: Article, marks: list[tuple[str, str]], page_error: str | None) -> None:
        if not self.articles:
            self.since = time.monotonic()
        self.articles.append(article)
        self.marks.setdefault(page_error, []).extend(marks)
        if len(self.articles) >= EMIT_BATCH:
            self.send()

    def send(self) -> None:
        if not self.articles or self.emit is None:
            return
        self.emit(self.articles)  # returns once the articles are flushed to the topic
        failpoint("connectors.before_commit")
        for page_error, marks in self.marks.items():
            self.connector.state.mark_emitted(self.connector.name, marks, page_error=page_error)
        self.articles, self.marks = [], {}


def newest_first(items: Sequence[T], moment: Callable[[T], datetime | None]) -> list[T]:
    """``items`` by ``moment(item)``, newest first; undated ones after the dated, in their order."""
    # sorted() is stable, so undated items keep the listing's order.
    return sorted(items, key=lambda item: moment(item).timestamp() if moment(item) else float("-inf"), reverse=True)


def adapted_interval(source: SourceConfig, current: float | None, new_items: int, hint: float | None) -> float:
    """The interval before the next poll of ``source``, from how much this poll found.

    Fixed sources (no ``min_interval_seconds``/``max_interval_seconds``) keep
    ``poll_interval_seconds``. Adaptive ones halve the interval when a poll finds more than one
    new item (items may be slipping past), stretch it by half when it finds none, keep it for
    one; never shorter than the source's own hint of how often it changes; always within
    the configured range.
    """
    low, high = source.interval_range
    if not source.adaptive:
        return low
    interval = current or float(source.poll_interval_seconds)
    if new_items == 0:
        interval *= ADAPT_SLOWER
    elif new_items > 1:
        interval *= ADAPT_FASTER
    if hint is not None:
        interval = max(interval, hint)
    return min(max(interval, low), high)


def _interval(base: float, retry_after: float | None, *, jitter: bool = False) -> float:
    if retry_after is not None:
        return min(max(retry_after, MIN_RETRY_AFTER_SECONDS), MAX_INTERVAL_SECONDS)
    # Jitter spreads adaptive sources that converged together, so they do not poll in one burst;
    # a fixed interval stays exactly what the operator wrote.
    return base * random.uniform(1 - JITTER, 1 + JITTER) if jitter else float(base)  # noqa: S311 - jitter, not a secret


def _at(seconds: float) -> datetime:
    return utc_now() + timedelta(seconds=seconds)
