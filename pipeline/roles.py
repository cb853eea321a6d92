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
from pathlib import Path
from typing import Literal

from connectors.feed import FeedConnector
from connectors.fetch import Fetcher
from pipeline.db import make_engine
from pipeline.messages import Topics
from pipeline.polling import ConnectorRunner
from pipeline.settings import AmurSettings, load_sources, sources_path
from pipeline.stages import ProcessorStage, SinkStage
from pipeline.state import StateStore
from pipeline.transport.base import Transport
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

    embedded = settings.embedded
    return EmbeddedTransport(embedded.path, embedded.partitions, retention_seconds=embedded.retention_hours * 3600)


def topics_for(settings: AmurSettings) -> Topics:
    return Topics(settings.kafka.topic_prefix)


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

    def connector_runner(self) -> ConnectorRunner:
        state = StateStore(make_engine(self.settings.database_url))
        state.setup()
        fetcher = Fetcher(self.settings.fetch)
        path = sources_path(self.config_path, self.settings)
        return ConnectorRunner(
            lambda source: FeedConnector(source, fetcher, state),
            load_sources(path).sources, self.transport.producer(), self.topics, sources_file=path,
        )

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
                report(summary.describe())
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

