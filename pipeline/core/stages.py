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
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar, TypeVar

from pipeline.core import metrics, registry
from pipeline.core.dead_letters import DeadLetters
from pipeline.core.errors import EmbeddedLogBusy, MessageError, SinkBackpressure, SinkError, TransportError
from pipeline.core.failpoints import failpoint
from pipeline.core.messages import Message, decode
from pipeline.core.settings import DEFAULT_CONFIG_PATH, AmurSettings
from pipeline.core.sink import Sink, SinkContext
from pipeline.core.subscriptions import Vocabulary
from pipeline.core.topology import Topics
from pipeline.core.transport.base import Consumer, Headers, Producer, Record, Transport, next_offsets

log = logging.getLogger(__name__)

NO_PARTITIONS_TIMEOUT = 60.0
RETRY_DELAY = 1.0
# Once a database or broker is back, a stage writes again within this; a retry is one attempt, cheap to repeat.
MAX_RETRY_DELAY = 15.0
PAUSED_POLL_SECONDS = 1.0  # how often a paused stage polls to stay in its group
LAG_EVERY_SECONDS = 5.0  # how often the lag gauge is refreshed: on Kafka, asking costs a round trip
# A running member without partitions this long, while its group's backlog does not shrink, joins again.
STRANDED_SECONDS = 60.0


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


T = TypeVar("T")


def until_reachable(what: str, action: Callable[[], T], stop: threading.Event) -> T | None:
    """``action()``, tried again with back-off while the transport is unreachable (a broker
    restarting while a role starts or joins its group); ``None`` once ``stop`` is set."""
    delay = RETRY_DELAY
    while True:
        try:
            return action()
        except EmbeddedLogBusy:
            raise  # not an outage: waiting would not end it
        except TransportError as exc:
            log.error("%s: the transport is unreachable, retrying in %.0f s: %s", what, delay, exc)
        if stop.wait(delay):
            return None
        delay = min(delay * 2, MAX_RETRY_DELAY)


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
        consumer = until_reachable(f"stage={self.name} joining group {self.group}", lambda: self.transport.consumer(self.group, self.input_topics), stop)
        if consumer is None:
            return 0  # stopped before the broker came back
        handled = 0
        unassigned_since = time.monotonic()
        lag_measured = 0.0
        stranding = _Stranding()
        try:
            while not stop.is_set():
                try:
                    records = consumer.poll(self.batch_size, poll_timeout)
                except TransportError as exc:
                    log.error("stage=%s poll failed, retrying in %.0f s: %s", self.name, RETRY_DELAY, exc)
                    stop.wait(RETRY_DELAY)
                    continue
                if time.monotonic() - lag_measured > LAG_EVERY_SECONDS:
                    lag_measured = time.monotonic()
                    has_partitions = self._measure_lag(consumer)
                    if not once and has_partitions is not None:
                        consumer = self._rejoin_if_stranded(consumer, has_partitions, stranding, stop)
                if records:
                    self._checkpoint(consumer, records, stop)
                    handled += len(records)
                    continue
                if not once:
                    continue
                lag = consumer.lag()
                if lag == 0:
                    break
                if lag is None and time.monotonic() - unassigned_since > NO_PARTITIONS_TIMEOUT:
                    raise TransportError(f"{self.name}: no partitions assigned after {NO_PARTITIONS_TIMEOUT:.0f} s")
        finally:
            consumer.close()
        return handled

    def _measure_lag(self, consumer: Consumer) -> bool | None:
        """Update the lag gauge; returns whether the member has partitions, ``None`` when the
        lag could not be read. A failure leaves the gauge as it was: the records just polled
        are handled all the same (dropping them here would commit past them with the next batch)."""
        try:
            lag = consumer.lag()
        except TransportError as exc:
            log.warning("stage=%s lag not measured: %s", self.name, exc)
            return None
        if lag is None:
            return False
        metrics.STAGE_LAG.labels(self.name).set(lag)
        return True

    def _rejoin_if_stranded(
        self, consumer: Consumer, has_partitions: bool, stranding: _Stranding, stop: threading.Event,
    ) -> Consumer:
        """The consumer to go on with: a new member in place of one stranded without partitions.

        A kafka-python member has been seen to end up with no partitions for good after one
        broker of three was SIGKILLed (a fault drill): it never rejoined, and its input waited
        for ever while the other roles went on. A member with no partitions for
        :data:`STRANDED_SECONDS` while its group's backlog has not shrunk joins again. A spare
        member of a group that keeps up (more members than partitions) is left alone.
        """
        if has_partitions:
            stranding.since = None
            return consumer
        now = time.monotonic()
        if stranding.since is None:
            stranding.since, stranding.backlog = now, self._group_backlog()
            return consumer
        if now - stranding.since < STRANDED_SECONDS:
            return consumer
        backlog, before = self._group_backlog(), stranding.backlog
        stranding.since, stranding.backlog = now, backlog
        if not backlog or before is None or backlog < before:
            return consumer  # nothing waits, or the other members are working through it
        log.warning(
            "stage=%s had no partitions for %.0f s while %d record(s) waited: joining its group again as a new member",
            self.name, STRANDED_SECONDS, backlog,
        )
        try:
            consumer.close()
        except TransportError as exc:  # the lost member may not be able to leave cleanly
            log.warning("stage=%s stranded member did not leave cleanly: %s", self.name, exc)
        while True:
            try:
                return self.transport.consumer(self.group, self.input_topics)
            except TransportError as exc:
                log.error("stage=%s could not join its group again, retrying in %.0f s: %s", self.name, RETRY_DELAY, exc)
                if stop.wait(RETRY_DELAY):
                    return consumer  # closed; the stage is stopping and polls it no more

    def _group_backlog(self) -> int | None:
        """Records of the inputs that the group has not committed; ``None`` when not known."""
        try:
            return self.transport.group_lag(self.group, self.input_topics)
        except TransportError as exc:
            log.warning("stage=%s backlog not measured: %s", self.name, exc)
            return None

    def _checkpoint(self, consumer: Consumer, records: list[Record], stop: threading.Event) -> None:
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
                        consumer.pause()
                        paused = True
                    if self._wait_in_group(consumer, retry_after, stop):
                        return  # stopping: leave the batch uncommitted so the next member replays it
                    delay = min(delay * 2, MAX_RETRY_DELAY)
        finally:
            if paused:
                consumer.resume()
        failpoint(f"{self.name}.before_commit")
        try:
            consumer.commit(next_offsets(records))
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

    @staticmethod
    def _wait_in_group(consumer: Consumer, seconds: float, stop: threading.Event) -> bool:
        """Wait ``seconds`` polling the paused consumer; returns whether ``stop`` was set."""
        deadline = time.monotonic() + seconds
        while not stop.is_set():
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return False
            try:
                consumer.poll(0, min(remaining, PAUSED_POLL_SECONDS))
            except TransportError:
                stop.wait(min(remaining, PAUSED_POLL_SECONDS))  # the broker is away too
        return True

    def close(self) -> None:
        self.producer.close()


@dataclass
class _Stranding:
    """Since when a member has had no partitions, and its group's backlog then."""

    since: float | None = None
    backlog: int | None = None


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
