"""The lifecycle every connector shares: ``start → (poll → produce → flush → commit)* → close``.

Modelled on bytewax's ``SimplePollingSource`` (a non-blocking ``next_batch`` and a
``Retry`` delay instead of ``time.sleep``) and quix-streams' ``Source`` (``start``,
``stop``, cleanup that flushes only on success). A connector pulls new items from one
source and turns each into an :class:`~pipeline.messages.Article`; the runtime owns the
producer, the schedule and the loop.

The contract, step by step, for one poll of one connector:

1. ``result = connector.poll()`` fetches what is new since the last commit. It does not
   produce anything and does not mark anything as seen.
2. The runtime produces every ``result.articles`` to the ``articles`` topic (key = article
   id) and **flushes** the producer; a flush that raises ends this round here.
3. **Only then** the runtime calls ``connector.commit(result.articles)``, which records
   them as emitted in the state store, so the next poll skips them. Commit after every
   poll that returned, even with no articles: a connector may store more than articles
   then (the feed connector stores its ETag / Last-Modified only at commit).
4. The runtime logs ``result.failures`` and sends those it ``gave_up`` on to the
   dead-letter topic, and polls again after ``result.next_poll_in`` seconds.

A crash between 1 and 3 leaves the articles unrecorded: the next poll fetches and produces
them again. Delivery is at-least-once; nothing is lost, and the sinks upsert by id, so a
duplicate changes nothing. Commit before polling again, or the next poll returns the same
articles a second time. One connector is polled by one thread at a time; different
connectors may be polled in parallel (the fetcher and the state store are thread-safe).

Errors are split the bytewax way (``oks``/``errs``):

* one item failing (a page 404s, times out, has no text) is data: an :class:`ItemFailure` in
  ``PollResult.failures``; the other items go on;
* the whole source failing (feed unreachable, not a feed) raises
  :class:`~pipeline.errors.SourceError` from ``poll()``. The connector has already recorded
  the failure and its back-off; ``connector.next_poll_in`` says when to try again.

Example — the runtime loop for one connector::

    connector = FeedConnector(source, fetcher, state)
    connector.start()
    try:
        while running:
            try:
                result = connector.poll()
            except SourceError as exc:
                log.warning("source failed", extra={"source": connector.name, "reason": str(exc)})
                wait(connector.next_poll_in)
                continue
            for article in result.articles:
                producer.produce(topics.articles, *encode(article))
            producer.flush()
            connector.commit(result.articles)
            for failure in result.failures:
                if failure.gave_up:  # a retryable one comes back on a later poll
                    dead_letter(failure)
            wait(result.next_poll_in)
    finally:
        connector.close()
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass, field

from pipeline.errors import SourceError
from pipeline.messages import Article

__all__ = ["Connector", "ItemFailure", "PollResult"]


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


class Connector(ABC):
    """A source of articles, polled by the runtime. See the module docstring for the contract.

    Subclasses implement :meth:`poll` and :meth:`commit`; :meth:`start` and :meth:`close`
    default to doing nothing. A connector may be used as a context manager
    (``start`` on enter, ``close`` on exit).

    :ivar name: the source name, as in ``sources.yaml``; used in logs and state.
    :ivar next_poll_in: seconds until the next poll, as decided by the last poll — also when
        that poll raised.
    """

    name: str
    next_poll_in: float = 0.0

    def start(self) -> None:
        """Prepare to poll; called once, before the first scheduled poll.

        May set :attr:`next_poll_in` to when the first poll is due, so that a restart keeps
        a source's schedule and back-off instead of polling everything at once.
        """

    @abstractmethod
    def poll(self) -> PollResult:
        """Fetch what is new since the last commit; produce nothing, record nothing as seen.

        :raises SourceError: the whole source failed (recorded, with its back-off, first).
        """

    @abstractmethod
    def commit(self, articles: Sequence[Article]) -> None:
        """Record ``articles`` as delivered. Call only after the producer has flushed them."""

    def close(self) -> None:
        """Release what the connector holds. May be skipped after a crash, so keep no state here."""

    def __enter__(self) -> Connector:
        self.start()
        return self

    def __exit__(self, *_exc) -> None:
        self.close()
