"""Consuming stages: poll a batch, handle it, flush every output, and only then commit.

Each batch goes through the same checkpoint, in this order (the at-least-once contract):

1. decode each record into its message model; a poison record becomes a dead letter;
2. handle the batch (classify and produce outputs, or add to sinks);
3. flush the sinks, then flush the producer (outputs and dead letters);
4. commit the batch's offsets.

A crash anywhere before step 4 makes the group deliver the batch again; sinks are idempotent
and outputs are keyed by id, so the replay changes nothing downstream. A sink that raises
:class:`~pipeline.errors.SinkError`, or a transport that cannot flush (the broker is
restarting), makes the stage handle the same batch again after a delay — nothing is
committed past an unwritten record, and the process rides out the outage instead of dying.
"""

from __future__ import annotations

import logging
import threading
import time
from abc import ABC, abstractmethod
from collections.abc import Sequence

from pipeline.errors import MessageError, SinkBackpressure, SinkError, TransportError
from pipeline.failpoints import failpoint
from pipeline.messages import Alert, Article, Classified, DeadLetter, Topics, decode, encode, utc_now
from pipeline.transport.base import Consumer, Producer, Record, Transport, next_offsets
from sinks.base import Sink

log = logging.getLogger(__name__)

PAYLOAD_LIMIT = 64 * 1024
NO_PARTITIONS_TIMEOUT = 60.0
RETRY_DELAY = 1.0
MAX_RETRY_DELAY = 60.0


class DeadLetters:
    """Sends inputs a stage cannot handle to the dead-letter topic, with where and why."""

    def __init__(self, producer: Producer, topics: Topics, stage: str):
        self._producer = producer
        self._topics = topics
        self._stage = stage

    def record(self, record: Record, error: Exception) -> None:
        log.warning("dead letter stage=%s position=%s error=%s", self._stage, record.position, error)
        self._send(DeadLetter(
            id=f"{record.topic}:{record.partition}:{record.offset}",
            stage=self._stage,
            error_type=type(error).__name__,
            reason=str(error),
            topic=record.topic,
            partition=record.partition,
            offset=record.offset,
            key=record.key.decode("utf-8", "replace") if record.key else None,
            payload=record.value[:PAYLOAD_LIMIT].decode("utf-8", "replace"),
            failed_at=utc_now(),
        ))

    def item(self, item_id: str, url: str, error: Exception) -> None:
        log.warning("dead letter stage=%s url=%s error=%s", self._stage, url, error)
        self._send(DeadLetter(
            id=item_id, stage=self._stage, error_type=type(error).__name__,
            reason=str(error), payload=url, failed_at=utc_now(),
        ))

    def _send(self, letter: DeadLetter) -> None:
        key, value = encode(letter)
        self._producer.produce(self._topics.dlq, key, value)


class Stage(ABC):
    """A consumer-group member that turns batches of input records into outputs."""

    name: str

    def __init__(self, transport: Transport, topics: Topics, group: str, batch_size: int):
        self.transport = transport
        self.topics = topics
        self.group = group
        self.batch_size = batch_size
        self.producer = transport.producer()
        self.dead_letters = DeadLetters(self.producer, topics, self.name)

    @property
    @abstractmethod
    def input_topics(self) -> list[str]:
        """The topics this stage consumes."""

    @abstractmethod
    def handle(self, records: Sequence[Record]) -> None:
        """Produce the outputs of one batch (not yet flushed)."""

    def flush_outputs(self) -> None:
        """Make the batch's outputs durable; stages with sinks flush them here first."""
        self.producer.flush()

    def run(self, stop: threading.Event, *, once: bool = False, poll_timeout: float = 1.0) -> int:
        """Consume until ``stop`` is set — or, with ``once``, until the input is drained.

        Returns the number of records handled.
        """
        consumer = self.transport.consumer(self.group, self.input_topics)
        handled = 0
        unassigned_since = time.monotonic()
        try:
            while not stop.is_set():
                try:
                    records = consumer.poll(self.batch_size, poll_timeout)
                except TransportError as exc:
                    log.error("stage=%s poll failed, retrying in %.0f s: %s", self.name, RETRY_DELAY, exc)
                    stop.wait(RETRY_DELAY)
                    continue
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

    def _checkpoint(self, consumer: Consumer, records: list[Record], stop: threading.Event) -> None:
        delay = RETRY_DELAY
        while True:
            try:
                self.handle(records)
                self.flush_outputs()
                break
            except (SinkError, TransportError) as exc:
                # The whole batch is handled again: outputs already produced are produced
                # twice, which downstream upserts absorb; nothing past the failure is committed.
                retry_after = exc.retry_after if isinstance(exc, SinkBackpressure) else delay
                log.error("stage=%s batch of %d not written, retrying in %.1f s: %s", self.name, len(records), retry_after, exc)
                if stop.wait(retry_after):
                    # Stopping: leave the batch uncommitted so the next member replays it.
                    return
                delay = min(delay * 2, MAX_RETRY_DELAY)
        failpoint(f"{self.name}.before_commit")
        try:
            consumer.commit(next_offsets(records))
        except TransportError as exc:
            # The outputs are durable; an uncommitted batch is only delivered again (after a
            # rebalance or a broker restart), which the idempotent sinks absorb.
            log.warning("stage=%s commit failed, the batch may be delivered again: %s", self.name, exc)

    def close(self) -> None:
        self.producer.close()


class ProcessorStage(Stage):
    """Classifies articles; writes every result to ``classified`` and cooperation stories to ``alerts``."""

    name = "processors"

    def __init__(self, transport: Transport, topics: Topics, group: str, batch_size: int, analyzer, min_score: float):
        super().__init__(transport, topics, group, batch_size)
        self.analyzer = analyzer
        self.min_score = min_score

    @property
    def input_topics(self) -> list[str]:
        return [self.topics.articles]

    def handle(self, records: Sequence[Record]) -> None:
        articles: list[tuple[Record, Article]] = []
        for record in records:
            try:
                articles.append((record, decode(Article, record.value)))
            except MessageError as exc:
                self.dead_letters.record(record, exc)
        for result in self._analyze(articles):
            self._emit(result)

    def _analyze(self, articles: list[tuple[Record, Article]]) -> list[Classified]:
        try:
            return self.analyzer.analyze([article for _, article in articles])
        except Exception:  # noqa: BLE001 - one bad article must not stop the batch: find it below
            log.exception("stage=processors batch analysis failed; retrying article by article")
        results = []
        for record, article in articles:
            try:
                results.append(self.analyzer.analyze([article])[0])
            except Exception as exc:  # noqa: BLE001 - the article goes to the DLQ with its error
                self.dead_letters.record(record, exc)
        return results

    def _emit(self, result: Classified) -> None:
        self.producer.produce(self.topics.classified, *encode(result))
        verdict = result.classification
        if verdict.is_cooperation and verdict.score >= self.min_score:
            self.producer.produce(self.topics.alerts, *encode(alert_for(result)))


def alert_for(result: Classified) -> Alert:
    """The alert of a cooperation story; its id is the story id (the article's, until clustering)."""
    article, verdict = result.article, result.classification
    summary = article.summary or article.text[:400]
    return Alert(
        id=result.id,
        article_id=article.id,
        url=article.url,
        source=article.source,
        title=article.title,
        summary=summary,
        score=verdict.score,
        level=verdict.level,
        sectors=verdict.sectors,
        russian_parties=verdict.russian_parties,
        chinese_parties=verdict.chinese_parties,
        evidence=verdict.evidence,
        published_at=article.published_at,
        fetched_at=article.fetched_at,
        alerted_at=utc_now(),
    )


class SinkStage(Stage):
    """Feeds classified articles and alerts to the sinks; commits after every sink flushed."""

    name = "sinks"

    def __init__(self, transport: Transport, topics: Topics, group: str, batch_size: int, sinks: Sequence[Sink]):
        super().__init__(transport, topics, group, batch_size)
        self.sinks = list(sinks)
        self._models = {topics.classified: Classified, topics.alerts: Alert}
        self._sinks_by_topic = {
            topic: [sink for sink in self.sinks if getattr(topics, sink.topic) == topic] for topic in self._models
        }

    @property
    def input_topics(self) -> list[str]:
        return [topic for topic, sinks in self._sinks_by_topic.items() if sinks]

    def setup(self) -> None:
        for sink in self.sinks:
            sink.setup()

    def handle(self, records: Sequence[Record]) -> None:
        for record in records:
            try:
                message = decode(self._models[record.topic], record.value)
            except MessageError as exc:
                self.dead_letters.record(record, exc)
                continue
            for sink in self._sinks_by_topic[record.topic]:
                sink.add(message)

    def flush_outputs(self) -> None:
        for sink in self.sinks:
            sink.flush()
        super().flush_outputs()

    def close(self) -> None:
        for sink in self.sinks:
            sink.close()
        super().close()
