"""The connectors role: poll every source on its own schedule and emit new articles, at least once.

For each poll: the articles are produced and flushed as soon as the connector hands them
over, a few at a time (its ``emit``, the one way to the topic), and only then recorded as
emitted by the connector;
item failures it gave up on become dead letters; at the end of the poll the connector
commits (the feed's validators, once everything is emitted). Continuous mode
schedules one APScheduler job per source that reschedules itself after the interval the
connector asks for (its poll interval, a server's Retry-After, or a back-off after failures).

The sources file is watched while running: an edit adds, removes or replaces sources without
a restart, and an invalid edit is logged with its file, key and fix while the sources
already running go on unchanged.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

from apscheduler.executors.pool import ThreadPoolExecutor
from apscheduler.schedulers.background import BackgroundScheduler
from sqlalchemy.exc import SQLAlchemyError

from pipeline.core import metrics
from pipeline.core.connector import Connector
from pipeline.core.dead_letters import DeadLetters
from pipeline.core.errors import ConfigError, SourceError, SourceSilent, TransportError
from pipeline.core.messages import Article, encode, utc_now
from pipeline.core.redaction import redact
from pipeline.core.settings import SourceConfig, file_stamp, load_sources
from pipeline.core.state import StateStore
from pipeline.core.topology import Topics
from pipeline.core.transport.base import Producer

log = logging.getLogger(__name__)

WATCH_JOB = "amur:watch-sources"
FORGET_JOB = "amur:forget-old-seen"
WATCH_EXECUTOR = "watch"
# A poll cut short because the broker or the state database is away is tried again this
# soon, not after the source's interval: what it had not emitted yet waits for it.
OUTAGE_RETRY_SECONDS = 10.0


@dataclass
class PollSummary:
    """What one poll of one source did, for logs, ``--once`` output and tests."""

    source: str
    emitted: int = 0
    failed_items: int = 0
    error: str | None = None

    def describe(self) -> str:
        if self.error:
            return f"source {self.source}: FAILED: {self.error}"
        return f"source {self.source}: {self.emitted} new article(s), {self.failed_items} failed item(s)"


class ConnectorRunner:
    """Runs one connector per enabled source.

    :param make_connector: builds the connector of a source (through the registry, sharing
        one :class:`~pipeline.core.connector.ConnectorContext`).
    :param sources: the sources to run now.
    :param producer: where articles and dead letters go.
    :param sources_file: watched for edits while running; ``None`` turns reloading off.
    :param watch_interval: seconds between two checks of the sources file.
    :param on_stop: called last by :meth:`stop`, to release what the connectors shared.
    :param on_cancel: called by :meth:`stop` before waiting for the polls in flight, to end
        their requests (the connectors' shared fetcher closes its connections).
    :param state: the state store, to notice a source gone silent or unhealthy, and to forget
        old seen URLs once a day (``None``: none of that).
    :param unhealthy_after: failed polls in a row after which a source is reported unhealthy.
    :param poll_workers: sources polled at once.
    """

    def __init__(
        self,
        make_connector: Callable[[SourceConfig], Connector],
        sources: Sequence[SourceConfig],
        producer: Producer,
        topics: Topics,
        *,
        sources_file: Path | None = None,
        watch_interval: float = 5.0,
        on_stop: Callable[[], None] | None = None,
        on_cancel: Callable[[], None] | None = None,
        state: StateStore | None = None,
        unhealthy_after: int = 5,
        poll_workers: int = 4,
    ):
        self.make_connector = make_connector
        self.producer = producer
        self.topics = topics
        self.dead_letters = DeadLetters(producer, topics, "connectors")
        self.sources_file = sources_file
        self.watch_interval = watch_interval
        self.on_stop = on_stop
        self.on_cancel = on_cancel
        self.state = state
        self.unhealthy_after = unhealthy_after
        self.poll_workers = poll_workers
        self._reported_silent: set[str] = set()
        self._lock = threading.Lock()
        self._sources: dict[str, SourceConfig] = {}
        self._connectors: dict[str, Connector] = {}
        self._scheduler: BackgroundScheduler | None = None
        self._in_flight: set[str] = set()
        self._file_stamp = file_stamp(sources_file)
        self.apply([source for source in sources if source.enabled])

    @property
    def names(self) -> list[str]:
        with self._lock:
            return list(self._connectors)

    @property
    def in_flight(self) -> list[str]:
        """The sources being polled right now (continuous mode)."""
        with self._lock:
            return sorted(self._in_flight)

    def poll(self, name: str) -> tuple[PollSummary, float]:
        """Poll one source once; returns the summary and the seconds until its next poll."""
        with self._lock:
            connector = self._connectors[name]
        summary = PollSummary(name)

        def emit(articles: Sequence[Article]) -> None:
            for article in articles:
                self.producer.produce(self.topics.articles, *encode(article))
            self.producer.flush()
            summary.emitted += len(articles)

        try:
            result = connector.poll(emit)
        except (TransportError, SQLAlchemyError):
            raise  # an outage of the broker or the database, not of this source
        except Exception as exc:  # noqa: BLE001 - one source's failure, whatever it is, is that source's
            if not isinstance(exc, SourceError):
                log.error("source failed unexpectedly: source=%s", name, exc_info=exc)
            summary.error = redact(str(exc))  # a SourceError was logged by the connector, with its back-off
            metrics.SOURCE_POLLS.labels(name, "failed").inc()
            metrics.SOURCE_INTERVAL.labels(name).set(connector.next_poll_in)
            self._watch_health(name, connector.next_poll_in)
            return summary, connector.next_poll_in
        for failure in result.failures:
            if failure.gave_up:  # a retryable failure comes back on a later poll
                self.dead_letters.item(f"{name}:{failure.url}", failure.url, failure.error)
        self.producer.flush()
        connector.commit()
        if len(result.articles) > summary.emitted:  # a plugin's connector that forgot its emit: say so, loudly
            log.error("source %s returned %d article(s) but emitted %d: only emitted articles reach the topic",
                      name, len(result.articles), summary.emitted)
        summary.failed_items = len(result.failures)
        metrics.SOURCE_POLLS.labels(name, "not_modified" if result.not_modified else "changed").inc()
        metrics.SOURCE_NEW_ITEMS.labels(name).inc(summary.emitted)
        metrics.SOURCE_ITEM_FAILURES.labels(name).inc(summary.failed_items)
        metrics.SOURCE_INTERVAL.labels(name).set(result.next_poll_in)
        self._watch_silence(name, bool(result.articles))
        log.info("source polled: source=%s emitted=%d failed_items=%d next_poll_in=%.0fs",
                 name, summary.emitted, summary.failed_items, result.next_poll_in)
        return summary, result.next_poll_in

    def _watch_health(self, name: str, retry_in: float) -> None:
        """Say once, as an error, that a source has failed ``unhealthy_after`` polls in a row."""
        if self.state is None:
            return
        state = self.state.get(name)
        if state.consecutive_failures == self.unhealthy_after:
            log.error(
                "source unhealthy: source=%s failures=%d retry_in=%.0fs last_error=%s (still retried, backing off)",
                name, state.consecutive_failures, retry_in, state.last_error,
            )

    def forget_old_seen(self) -> None:
        """Forget seen URLs older than the state store's retention, so it stays bounded."""
        if self.state is not None:
            forgotten = self.state.forget_old()
            if forgotten:
                log.info("seen store pruned: forgotten=%d retention=%s", forgotten, self.state.retention)

    def _watch_silence(self, name: str, published: bool) -> None:
        """Report once (log and dead letter) a source that answers but publishes nothing for
        several times its usual gap; feed monitors are most often blamed for going quiet unseen."""
        if published or self.state is None:
            self._reported_silent.discard(name)
            metrics.SOURCE_SILENT.labels(name).set(0)
            return
        with self._lock:
            source = self._sources.get(name)
        if source is None or name in self._reported_silent:
            return
        silence = self.state.silence(name, source.poll_interval_seconds)
        now = utc_now()
        if silence is None or not silence.is_silent(now, source.poll_interval_seconds):
            return
        self._reported_silent.add(name)
        metrics.SOURCE_SILENT.labels(name).set(1)
        hours = silence.silent_for(now).total_seconds() / 3600
        usual = silence.usual_gap.total_seconds() / 3600
        reason = SourceSilent(
            f"source {name} answers but has published nothing new for {hours:.1f} h; "
            f"its usual gap is {usual:.1f} h — check that {source.location} is still the feed"
        )
        log.warning("source silent: source=%s silent_for=%.1fh usual_gap=%.1fh", name, hours, usual)
        self.dead_letters.item(f"{name}:silent", source.location, reason)
        self.producer.flush()

    def poll_all_once(self) -> list[PollSummary]:
        self.forget_old_seen()
        return [self.poll(name)[0] for name in self.names]

    def apply(self, sources: Sequence[SourceConfig]) -> None:
        """Make the running set of sources equal ``sources``: start new or changed ones, stop removed ones."""
        wanted = {source.name: source for source in sources if source.enabled}
        with self._lock:
            removed = [name for name in self._sources if name not in wanted]
            started = [name for name, source in wanted.items() if self._sources.get(name) != source]
            for name in removed:
                self._sources.pop(name)
                self._connectors.pop(name).close()
                if self._scheduler is not None and self._scheduler.get_job(name):
                    self._scheduler.remove_job(name)
            for name in started:
                if name in self._connectors:
                    self._connectors[name].close()
                self._sources[name] = wanted[name]
                self._connectors[name] = self.make_connector(wanted[name])
                if self._scheduler is not None:
                    self._connectors[name].start()
                    self._schedule(name, 0.0)  # a new or edited source is polled at once
        if removed or started:
            log.info("sources applied: started=%s stopped=%s", sorted(started), sorted(removed))

    def start(self) -> None:
        """Schedule every source (the first polls start right away) and the sources-file watch."""
        # The watch has a thread of its own: behind a pool busy with slow polls it would wait
        # for minutes, and an edit made and reverted meanwhile would never be seen.
        self._scheduler = BackgroundScheduler(
            executors={"default": ThreadPoolExecutor(self.poll_workers), WATCH_EXECUTOR: ThreadPoolExecutor(1)},
            timezone="UTC",
        )
        with self._lock:
            for name, connector in self._connectors.items():
                connector.start()  # picks up the schedule and back-off stored before a restart
                self._schedule(name, connector.next_poll_in)
        if self.sources_file is not None:
            self._scheduler.add_job(
                self.reload_if_changed, "interval", seconds=self.watch_interval, id=WATCH_JOB, executor=WATCH_EXECUTOR,
            )
        self._scheduler.add_job(
            self.forget_old_seen, "interval", days=1, id=FORGET_JOB, executor=WATCH_EXECUTOR, next_run_time=utc_now(),
        )
        self._scheduler.start()

    def reload_if_changed(self) -> bool:
        """Apply the sources file if it changed since the last look; returns whether it was applied."""
        stamp = file_stamp(self.sources_file)
        if stamp == self._file_stamp:
            return False
        self._file_stamp = stamp
        try:
            sources = load_sources(self.sources_file).sources
        except ConfigError as exc:
            for problem in exc.problems:
                log.error("sources file not reloaded, the running sources go on: %s", problem)
            return False
        self.apply(sources)
        return True

    def _schedule(self, name: str, delay: float) -> None:
        self._scheduler.add_job(
            self._poll_and_reschedule, "date", run_date=utc_now() + timedelta(seconds=delay),
            args=[name], id=name, replace_existing=True, max_instances=1, misfire_grace_time=None,
        )

    def _poll_and_reschedule(self, name: str) -> None:
        with self._lock:
            connector = self._connectors.get(name)
        if connector is None:
            return  # removed from the sources file while this poll waited
        with self._lock:
            self._in_flight.add(name)
        try:
            _, next_poll_in = self.poll(name)
        except (TransportError, SQLAlchemyError) as exc:
            log.error(
                "source=%s poll interrupted, the rest of it is polled again in %.0f s: %s",
                name, OUTAGE_RETRY_SECONDS, str(exc).splitlines()[0],
            )
            next_poll_in = OUTAGE_RETRY_SECONDS
        except Exception:  # noqa: BLE001 - a bug in one source's poll must not end its schedule
            log.exception("source=%s poll crashed", name)
            next_poll_in = connector.next_poll_in
        finally:
            with self._lock:
                self._in_flight.discard(name)
        with self._lock:
            # A source replaced during this poll was already scheduled afresh by apply().
            if self._connectors.get(name) is connector and self._scheduler is not None and self._scheduler.running:
                self._schedule(name, next_poll_in)

    def stop(self) -> None:
        """Cut the polls in flight short, keep what they emitted, and stop.

        Each connector stops at its next item; ``on_cancel`` (the shared fetcher's close)
        ends the requests still waiting on a server, so a stop takes seconds, not a timeout.
        """
        if self._scheduler is not None:
            in_flight = self.in_flight
            with self._lock:
                for connector in self._connectors.values():
                    connector.cancel()
            if in_flight:
                log.info("stopping: cutting short the polls of %s; what they emitted is kept", ", ".join(in_flight))
            if self.on_cancel is not None:
                self.on_cancel()
            self._scheduler.shutdown(wait=True)
            self._scheduler = None
        with self._lock:
            for connector in self._connectors.values():
                connector.close()
        self.producer.close()
        if self.on_stop is not None:
            self.on_stop()
