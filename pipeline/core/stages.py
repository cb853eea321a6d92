"""Consuming stages: poll a batch, handle it, flush every output, and only then commit.

Each batch goes through the same checkpoint, in this order (the at-least-once contract):

1. decode each record into its message model; a poison record becomes a dead letter;
2. handle the batch (classify and produce outputs, or add to sinks);
3. flush the sinks, then flush the producer (outputs and dead letters);
4. commit the batch's offsets.

A crash anywhere before step 4 makes the group deliver the batch again; sinks are idempotent
and outputs are keyed by id, so the replay changes nothing downstream. A sink that raises
:class:`~pipeline.core.errors.SinkError`, or a transport that cannot flush (the broker is
restarting), makes the stage handle the same batch again after a delay — nothing is
committed past an unwritten record. While it waits the stage pauses its partitions and
keeps polling, so on Kafka it stays in its group through an outage of any length instead
of being evicted after ``max.poll.interval.ms`` and having its commit refused.

A stage is one class registered by its role in :data:`pipeline.core.registry.stages`; it
declares the topics it reads and writes (``inputs``, ``outputs``), from which
:mod:`pipeline.core.topology` assembles the graph, and is made from a :class:`StageContext`.
"""

from __future__ import annotations

import logging
import threading
import time
from abc import ABC, abstractmethod
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

from pipeline.core import metrics, registry
from pipeline.core.dead_letters import DeadLetters
from pipeline.core.errors import MessageError, SinkBackpressure, SinkError, TransportError
from pipeline.core.failpoints import failpoint
from pipeline.core.membership import MAX_RETRY_DELAY, RETRY_DELAY, GroupMember
from pipeline.core.messages import Message, decode
from pipeline.core.settings import DEFAULT_CONFIG_PATH, AmurSettings
from pipeline.core.sink import Sink, SinkContext
from pipeline.core.subscriptions import Vocabulary
from pipeline.core.topology import Topics
from pipeline.core.transport.base import Headers, Producer, Record, Transport, next_offsets

log = logging.getLogger(__name__)



@dataclass(frozen=True)
class StageContext:
    """What a stage is made from: the settings, the transport, its role and consumer group."""

    settings: AmurSettings
    transport: Transport
    topics: Topics
    role: str
    group: str
    config_path: Path = DEFAULT_CONFIG_PATH
    vocabulary: Vocabulary | None = None  # the regions and languages a subscription's filters may name


class Stage(ABC):
    """A consumer-group member that turns batches of input records into outputs.

    A subclass declares its place in the graph and takes nothing but the context; what it
    needs beyond that (a model, an index, sinks) it builds from ``context.settings``.

    :cvar inputs: the topic kinds it reads.
    :cvar outputs: the topic kinds it writes, each with its message model; a kind no other
        stage writes is a new topic.
    """

    inputs: ClassVar[tuple[str, ...]]
    outputs: ClassVar[Mapping[str, type[Message]]] = {}

    def __init__(self, context: StageContext):
        self.context = context
        self.transport = context.transport
        self.topics = context.topics
        self.group = context.group
        self.batch_size = context.settings.batch_size
        self.name = context.role
        self.reads = [context.topics.name(kind) for kind in self.inputs]
        self.producer = CountedProducer(context.transport.producer(), self.name)
        self.dead_letters = DeadLetters(self.producer, context.topics, self.name)

    @property
    def input_topics(self) -> list[str]:
        """The topics this stage consumes."""
        return self.reads

    def setup(self) -> None:
        """Prepare what the stage writes to (databases, files); called once before ``run``."""

    @abstractmethod
    def handle(self, records: Sequence[Record]) -> None:
        """Produce the outputs of one batch (not yet flushed)."""

    def flush_outputs(self) -> None:
        """Make the batch's outputs durable; stages with sinks flush them here first."""
        self.producer.flush()

    def produce_output(self, source: Record, topic: str, key: bytes, value: bytes, what: str) -> bool:
        """Produce one output of ``source``; an output larger than ``topic`` accepts is a
        permanent failure, not a transient one: retrying the batch would refuse it again
        forever, so ``source`` goes to the dead-letter topic naming ``what``, and the batch
        goes on. Returns whether the output was produced."""
        limit = self.transport.record_limit(topic)
        if len(key) + len(value) > limit:
            self.dead_letters.record(source, MessageError(
                f"{what} would be a record of {len(key) + len(value):,} bytes, over the {limit:,} {topic} accepts"
            ))
            return False
        self.producer.produce(topic, key, value)
        return True

    def run(self, stop: threading.Event, *, once: bool = False, poll_timeout: float = 1.0) -> int:
        """Consume until ``stop`` is set — or, with ``once``, until the input is drained.

        Returns the number of records handled.
        """
        member = GroupMember(self.transport, self.group, self.input_topics, self.name)
        if not member.join(stop):
            return 0  # stopped before the broker came back
        handled = 0
        try:
            while not stop.is_set():
                try:
                    records = member.poll(self.batch_size, poll_timeout)
                except TransportError as exc:
                    log.error("stage=%s poll failed, retrying in %.0f s: %s", self.name, RETRY_DELAY, exc)
                    stop.wait(RETRY_DELAY)
                    continue
                member.tend(stop, rejoin=not once)
                if records:
                    self._checkpoint(member, records, stop)
                    handled += len(records)
                    continue
                if once and member.drained():
                    break
        finally:
            member.close()
        return handled

    def _checkpoint(self, member: GroupMember, records: list[Record], stop: threading.Event) -> None:
        delay = RETRY_DELAY
        paused = False
        try:
            while True:
                try:
                    with metrics.STAGE_BATCH_SECONDS.labels(self.name).time():
                        self.handle(records)
                        self.flush_outputs()
                    break
                except (SinkError, TransportError) as exc:
                    # The whole batch is handled again: outputs already produced are produced
                    # twice, which downstream upserts absorb; nothing past the failure is committed.
                    retry_after = exc.retry_after if isinstance(exc, SinkBackpressure) else delay
                    self.written()  # what the failed attempt wrote is written again: report it once
                    log.error(
                        "stage=%s batch of %d not written, retrying in %.1f s: %s",
                        self.name, len(records), retry_after, exc,
                    )
                    if not paused:
                        member.pause()
                        paused = True
                    if member.wait_paused(retry_after, stop):
                        return  # stopping: leave the batch uncommitted so the next member replays it
                    delay = min(delay * 2, MAX_RETRY_DELAY)
        finally:
            if paused:
                member.resume()
        failpoint(f"{self.name}.before_commit")
        try:
            member.commit(next_offsets(records))
        except TransportError as exc:
            # The outputs are durable; an uncommitted batch is only delivered again (after a
            # rebalance or a broker restart), which the idempotent sinks absorb.
            log.warning("stage=%s commit failed, the batch may be delivered again: %s", self.name, exc)
        self._count(records)

    def written(self) -> Counter:
        """Where the last batch went and how much: records per output topic (a sink stage: per sink)."""
        return self.producer.take_batch_counts()

    def _count(self, records: list[Record]) -> None:
        written = self.written()
        log.info(
            "stage=%s committed %d record(s), wrote %s", self.name, len(records),
            ", ".join(f"{count} to {where}" for where, count in sorted(written.items())) or "nothing",
            extra={"stage": self.name},
        )
        metrics.STAGE_RECORDS_IN.labels(self.name).inc(len(records))
        now_ms = time.time() * 1000
        latency = metrics.STAGE_LATENCY.labels(self.name)
        for record in records:
            if record.timestamp_ms:
                latency.observe(max(0.0, (now_ms - record.timestamp_ms) / 1000))

    def close(self) -> None:
        self.producer.close()


class CountedProducer(Producer):
    """A stage's producer, counting what it produces per topic for ``amur_stage_records_out``."""

    def __init__(self, producer: Producer, stage: str):
        self._producer = producer
        self._stage = stage
        self._batch: Counter = Counter()  # topic → records produced since the last take

    def produce(self, topic: str, key: bytes, value: bytes, headers: Headers = ()) -> None:
        self._producer.produce(topic, key, value, headers)
        metrics.STAGE_RECORDS_OUT.labels(self._stage, topic).inc()
        self._batch[topic] += 1

    def take_batch_counts(self) -> Counter:
        """What was produced per topic since the last call."""
        counts, self._batch = self._batch, Counter()
        return counts

    def flush(self, timeout: float = 30.0) -> None:
        self._producer.flush(timeout)

    def close(self) -> None:
        self._producer.close()


class SinkStage(Stage):
    """Feeds classified articles and alerts to the sinks; commits after every sink flushed.

    A sink that rejects a message (bad data) has it sent to the dead-letter topic with the
    sink's name; the other sinks still get it, and the batch goes on.

    :param sinks: the sinks to feed; by default those under ``sinks:`` in the settings.
    """

    inputs = ("classified", "alerts")

    def __init__(self, context: StageContext, *, sinks: Sequence[Sink] | None = None):
        super().__init__(context)
        self.sinks = list(configured_sinks(context) if sinks is None else sinks)
        self._sinks_by_topic = {
            topic: [sink for sink in self.sinks if self.topics.name(sink.topic) == topic] for topic in self.reads
        }
        self._records: dict[int, Record] = {}  # id(message) → its record, for this batch's rejections
        self._added: Counter = Counter()  # sink name → messages added since the last report

    @property
    def input_topics(self) -> list[str]:
        return [topic for topic, sinks in self._sinks_by_topic.items() if sinks]

    def setup(self) -> None:
        for sink in self.sinks:
            sink.setup()

    def handle(self, records: Sequence[Record]) -> None:
        self._records = {}
        for record in records:
            try:
                message = decode(self.topics.model_for(record.topic), record.value)
            except MessageError as exc:
                self.dead_letters.record(record, exc)
                continue
            self._records[id(message)] = record
            for sink in self._sinks_by_topic[record.topic]:
                self._add(sink, message, record)

    def _add(self, sink: Sink, message: Message, record: Record) -> None:
        try:
            sink.add(message)
            self._added[f"sink {sink.name}"] += 1
        except SinkError:
            raise
        except Exception as exc:  # noqa: BLE001 - bad data for this sink: a dead letter, the rest goes on
            self.dead_letters.record(record, exc, sink=sink.name)

    def written(self) -> Counter:
        counts = self.producer.take_batch_counts() + self._added  # the dead-letter topic, and each sink
        self._added = Counter()
        return counts

    def flush_outputs(self) -> None:
        for sink in self.sinks:
            for rejection in sink.flush():
                self.dead_letters.record(self._records[id(rejection.message)], rejection.error, sink=sink.name)
        super().flush_outputs()

    def close(self) -> None:
        for sink in self.sinks:
            sink.close()
        super().close()


def configured_sinks(context: StageContext) -> list[Sink]:
    """The sinks under ``sinks:`` in the settings, in order, each made by its registered class."""
    sink_context = SinkContext(context.settings, context.config_path, context.transport, context.topics, context.vocabulary)
    sinks = []
    for config in context.settings.sinks:
        sink_class = registry.sinks.get(config.type)
        sink = sink_class.from_config(sink_class.Options.model_validate(config.options), sink_context)
        sink.name = config.name or config.type
        sinks.append(sink)
    return sinks
