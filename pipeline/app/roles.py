"""Wiring of the roles — connectors and the stages of :mod:`pipeline.core.topology` — from settings.

``amur run`` starts every role in one process (the embedded quick start); ``amur run ROLE``
starts one, so each role scales out as more processes in the same consumer group. With
``once`` every source is polled one time and each stage drains its input in flow order,
then exits. Connectors, stages and sinks are found by name in :mod:`pipeline.core.registry`.
"""

from __future__ import annotations

import gc
import logging
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import timedelta
from functools import partial
from pathlib import Path

from pipeline.app.vocabulary import vocabulary
from pipeline.core import registry
from pipeline.core.connector import ConnectorContext
from pipeline.core.db import make_engine
from pipeline.core.membership import until_reachable
from pipeline.core.polling import ConnectorRunner
from pipeline.core.settings import AmurSettings, SourceConfig, load_sources, sources_path
from pipeline.core.stages import Stage, StageContext
from pipeline.core.state import StateStore
from pipeline.core.topology import CONNECTORS_ROLE, Topics, flow_order
from pipeline.core.transport import make_transport
from pipeline.core.transport.base import Transport

log = logging.getLogger(__name__)


def topics_for(settings: AmurSettings) -> Topics:
    return Topics(settings.kafka.topic_prefix)


def group_name(settings: AmurSettings, role: str) -> str:
    """The consumer group of a role's members."""
    return f"{settings.kafka.group_prefix}-{role}"


def pipeline_lag(settings: AmurSettings, transport: Transport) -> dict[str, int | None]:
    """Per role, the records on its input topics its group has not committed yet (``None``
    while a topic does not exist), read without joining any group."""
    topics = topics_for(settings)
    return {
        spec.role: transport.group_lag(group_name(settings, spec.role), [topics.name(kind) for kind in spec.inputs])
        for spec in flow_order()
    }


def make_connector_factory(context: ConnectorContext) -> Callable[[SourceConfig], object]:
    """Builds the connector of a source by its ``kind``, through the registry."""

    def make(source: SourceConfig):
        return registry.connectors.get(source.kind).from_source(source, context)

    return make


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
        try:
            transport.ensure_topics(topics.all())
        except BaseException:
            transport.close()
            raise
        return cls(settings, config_path, transport, topics)

    def group(self, role: str) -> str:
        return group_name(self.settings, role)

    def connector_runner(self) -> ConnectorRunner:
        connectors = self.settings.connectors
        state = StateStore(make_engine(self.settings.database_url), retention=timedelta(days=connectors.seen_retention_days))
        state.setup()
        context = ConnectorContext(self.settings, state)
        path = sources_path(self.config_path, self.settings)
        return ConnectorRunner(
            make_connector_factory(context), load_sources(path).sources, self.transport.producer(), self.topics,
            sources_file=path, on_stop=context.close, on_cancel=context.cancel, state=state,
            unhealthy_after=connectors.unhealthy_after_failures, poll_workers=connectors.poll_workers,
        )

    def stage(self, role: str) -> Stage:
        """The stage of ``role``, made by its registered class and set up."""
        context = StageContext(
            self.settings, self.transport, self.topics, role, self.group(role), self.config_path, vocabulary(self.settings),
        )
        stage = registry.stages.get(role)(context)
        stage.setup()
        return stage

    def close(self) -> None:
        self.transport.close()


def run_once(runtime: Runtime, roles: Sequence[str], report: Callable[[str], None] = log.info) -> None:
    """Poll every source once, then drain each stage in flow order, then return."""
    if CONNECTORS_ROLE in roles:
        runner = runtime.connector_runner()
        try:
            for summary in runner.poll_all_once():
                report(summary.describe())
        finally:
            runner.stop()
    never = threading.Event()
    for spec in flow_order():
        if spec.role in roles:
            stage = runtime.stage(spec.role)
            try:
                report(f"{spec.role}: handled {stage.run(never, once=True)} record(s)")
            finally:
                stage.close()


def run_forever(runtime: Runtime, roles: Sequence[str], stop: threading.Event) -> None:
    """Run the roles until ``stop`` is set (SIGINT/SIGTERM); a crashed stage stops the process."""
    # A broker restarting while the roles start is ridden out like one restarting later.
    runner = until_reachable("connectors", runtime.connector_runner, stop) if CONNECTORS_ROLE in roles else None
    if runner is not None and not stop.is_set():
        runner.start()  # the first poll runs while the other roles load their models: its articles wait on the topic
    try:
        stages = [until_reachable(spec.role, partial(runtime.stage, spec.role), stop) for spec in flow_order() if spec.role in roles]
    except BaseException:
        if runner is not None:
            runner.stop()
        raise
    if stop.is_set():  # stopped before the broker came back
        if runner is not None:
            runner.stop()
        for stage in stages:
            if stage is not None:
                stage.close()
        return
    failures: list[BaseException] = []

    def guarded(stage: Stage) -> None:
        try:
            stage.run(stop)
        except BaseException as exc:
            failures.append(exc)
            log.exception("stage=%s stopped by an error", stage.name)
            stop.set()

    threads = [threading.Thread(target=guarded, args=(stage,), name=stage.name) for stage in stages]
    # What is loaded by now (a spaCy model, the gazetteer) lives as long as the process; left
    # out of the collector's scans, a full collection no longer pauses a batch for ~0.1 s.
    gc.freeze()
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
