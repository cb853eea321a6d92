"""Wiring of the three roles — connectors, processors, sinks — from settings.

``amur run`` starts all three in one process (the embedded quick start); ``amur run ROLE``
starts one, so each role scales out as more processes in the same consumer group. With
``once`` every source is polled one time and each stage drains its input, then exits.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Literal

from apscheduler.executors.pool import ThreadPoolExecutor
from apscheduler.schedulers.background import BackgroundScheduler

from connectors.base import Connector
from connectors.feed import FeedConnector
from connectors.fetch import Fetcher
from pipeline.db import make_engine
from pipeline.errors import SourceError
from pipeline.messages import Topics, encode, utc_now
from pipeline.settings import AmurSettings, SourceConfig, load_sources, sources_path
from pipeline.stages import DeadLetters, ProcessorStage, SinkStage
from pipeline.state import StateStore
from pipeline.transport.base import Producer, Transport
from sinks.alert_feed import AlertFeedSink
from sinks.records import RecordsSink

log = logging.getLogger(__name__)

Role = Literal["connectors", "processors", "sinks"]
ROLES: tuple[Role, ...] = ("connectors", "processors", "sinks")


def make_transport(settings: AmurSettings) -> Transport:
    if settings.transport == "kafka":
        from pipeline.transport.kafka import KafkaTransport

        return KafkaTransport(settings.kafka)
    from pipeline.transport.embedded import EmbeddedTransport

    return EmbeddedTransport(settings.embedded.path, settings.embedded.partitions)


def topics_for(settings: AmurSettings) -> Topics:
    return Topics(settings.kafka.topic_prefix)


@dataclass
class PollSummary:
    """What one poll of one source did, for logs, ``--once`` output and tests."""

    source: str
    emitted: int = 0
    failed_items: int = 0
    error: str | None = None


class ConnectorRunner:
    """Polls each source through its connector and emits new articles, at least once.

    For each poll: produce the articles, flush the producer, and only then let the connector
    record them as emitted; item failures become dead letters. Continuous mode schedules one
    APScheduler job per source that reschedules itself after the interval the connector asks for.
    """

    def __init__(self, connectors: Sequence[Connector], producer: Producer, topics: Topics):
        self.connectors = {connector.name: connector for connector in connectors}
        self.producer = producer
        self.topics = topics
        self.dead_letters = DeadLetters(producer, topics, "connectors")
        self._scheduler: BackgroundScheduler | None = None

    def poll(self, name: str) -> tuple[PollSummary, float]:
        """Poll one source once; returns the summary and the seconds until its next poll."""
        connector = self.connectors[name]
        summary = PollSummary(name)
        try:
            result = connector.poll()
        except SourceError as exc:
            log.error("source=%s poll failed: %s", name, exc)
            summary.error = str(exc)
            return summary, connector.next_poll_in
        for article in result.articles:
            self.producer.produce(self.topics.articles, *encode(article))
        for failure in result.failures:
            if failure.gave_up:  # a retryable failure comes back on a later poll
                self.dead_letters.item(f"{name}:{failure.url}", failure.url, failure.error)
        self.producer.flush()
        connector.commit(result.articles)
        summary.emitted, summary.failed_items = len(result.articles), len(result.failures)
        log.info("source=%s emitted=%d failed_items=%d", name, summary.emitted, summary.failed_items)
        return summary, result.next_poll_in

    def poll_all_once(self) -> list[PollSummary]:
        return [self.poll(name)[0] for name in self.connectors]

    def start(self) -> None:
        """Schedule every source; the first polls start right away."""
        self._scheduler = BackgroundScheduler(executors={"default": ThreadPoolExecutor(4)}, timezone="UTC")
        for connector in self.connectors.values():
            connector.start()
            self._schedule(connector.name, 0.0)
        self._scheduler.start()

    def _schedule(self, name: str, delay: float) -> None:
        self._scheduler.add_job(
            self._poll_and_reschedule, "date", run_date=utc_now() + timedelta(seconds=delay),
            args=[name], id=name, replace_existing=True, max_instances=1, misfire_grace_time=None,
        )

    def _poll_and_reschedule(self, name: str) -> None:
        try:
            _, next_poll_in = self.poll(name)
        except Exception:  # noqa: BLE001 - a bug in one source's poll must not end its schedule
            log.exception("source=%s poll crashed", name)
            next_poll_in = self.connectors[name].next_poll_in
        if self._scheduler is not None and self._scheduler.running:
            self._schedule(name, next_poll_in)

    def stop(self) -> None:
        if self._scheduler is not None:
            self._scheduler.shutdown(wait=True)
            self._scheduler = None
        for connector in self.connectors.values():
            connector.close()
        self.producer.close()


@dataclass
class Runtime:
    """Everything a role needs, built once from settings."""

    settings: AmurSettings
    config_path: Path
    transport: Transport
    topics: Topics

    @classmethod
    def from_settings(cls, settings: AmurSettings, config_path: Path) -> Runtime:
        transport = make_transport(settings)
        topics = topics_for(settings)
        transport.ensure_topics(topics.all())
        return cls(settings, config_path, transport, topics)

    def group(self, role: Role) -> str:
        return f"{self.settings.kafka.group_prefix}-{role}"

    def sources(self) -> list[SourceConfig]:
        return [source for source in load_sources(sources_path(self.config_path, self.settings)).sources if source.enabled]

    def connector_runner(self) -> ConnectorRunner:
        state = StateStore(make_engine(self.settings.database_url))
        state.setup()
        fetcher = Fetcher(self.settings.fetch)
        connectors = [FeedConnector(source, fetcher, state) for source in self.sources()]
        return ConnectorRunner(connectors, self.transport.producer(), self.topics)

    def processor_stage(self) -> ProcessorStage:
        from processors.analyze import Analyzer

        analyzer = Analyzer.from_settings(self.settings.model)
        return ProcessorStage(
            self.transport, self.topics, self.group("processors"), self.settings.batch_size,
            analyzer, self.settings.alerts.min_score,
        )

    def sink_stage(self) -> SinkStage:
        engine = make_engine(self.settings.database_url)
        stage = SinkStage(
            self.transport, self.topics, self.group("sinks"), self.settings.batch_size,
            [RecordsSink(engine), AlertFeedSink(engine, self.settings.alerts)],
        )
        stage.setup()
        return stage

    def close(self) -> None:
        self.transport.close()


def run_once(runtime: Runtime, roles: Sequence[Role], report: Callable[[str], None] = log.info) -> None:
    """Poll every source once, then drain each stage in flow order, then return."""
    if "connectors" in roles:
        runner = runtime.connector_runner()
        try:
            for summary in runner.poll_all_once():
                report(_describe(summary))
        finally:
            runner.stop()
    never = threading.Event()
    for role, build in (("processors", runtime.processor_stage), ("sinks", runtime.sink_stage)):
        if role in roles:
            stage = build()
            try:
                report(f"{role}: handled {stage.run(never, once=True)} record(s)")
            finally:
                stage.close()


def run_forever(runtime: Runtime, roles: Sequence[Role], stop: threading.Event) -> None:
    """Run the roles until ``stop`` is set (SIGINT/SIGTERM); a crashed stage stops the process."""
    runner = runtime.connector_runner() if "connectors" in roles else None
    stages = []
    if "processors" in roles:
        stages.append(runtime.processor_stage())
    if "sinks" in roles:
        stages.append(runtime.sink_stage())
    failures: list[BaseException] = []

    def guarded(stage) -> None:
        try:
            stage.run(stop)
        except BaseException as exc:
            failures.append(exc)
            log.exception("stage=%s stopped by an error", stage.name)
            stop.set()

    threads = [threading.Thread(target=guarded, args=(stage,), name=stage.name) for stage in stages]
    if runner is not None:
        runner.start()
    for thread in threads:
        thread.start()
    try:
        stop.wait()
    finally:
        if runner is not None:
            runner.stop()
        for thread in threads:
            thread.join()
        for stage in stages:
            stage.close()
    if failures:
        raise failures[0]


def _describe(summary: PollSummary) -> str:
    if summary.error:
        return f"source {summary.source}: FAILED: {summary.error}"
    return f"source {summary.source}: {summary.emitted} new article(s), {summary.failed_items} failed item(s)"
