"""Dead letters: inputs a stage cannot handle go to the dead-letter topic, with where and why.

Every role writes them through :class:`DeadLetters` on its own producer, so they become
durable with the stage's outputs, before its input offsets are committed.
"""

from __future__ import annotations

import logging

from pipeline.messages import DeadLetter, encode, utc_now
from pipeline.metrics import DEAD_LETTERS
from pipeline.topology import DEAD_LETTER_TOPIC, Topics
from pipeline.transport.base import Producer, Record

log = logging.getLogger(__name__)

PAYLOAD_LIMIT = 64 * 1024


class DeadLetters:
    """Sends what ``stage`` could not handle to the dead-letter topic."""

    def __init__(self, producer: Producer, topics: Topics, stage: str):
        self._producer = producer
        self._topics = topics
        self._stage = stage

    def record(self, record: Record, error: Exception, *, sink: str | None = None) -> None:
        """A topic record the stage (or one of its sinks, ``sink``) could not handle."""
        log.warning(
            "dead letter stage=%s%s position=%s error=%s",
            self._stage, f" sink={sink}" if sink else "", record.position, error,
        )
        position = f"{record.topic}:{record.partition}:{record.offset}"
        self._send(DeadLetter(
            id=f"{position}:{sink}" if sink else position,
            stage=self._stage,
            sink=sink,
            error_type=type(error).__name__,
            reason=str(error),
            topic=record.topic,
            partition=record.partition,
            offset=record.offset,
            key=record.key.decode("utf-8", "replace") if record.key else None,
            payload=record.value[:PAYLOAD_LIMIT].decode("utf-8", "replace"),
            failed_at=utc_now(),
        ))

    def item(self, item_id: str, url: str, error: Exception, *, sink: str | None = None, payload: str | None = None) -> None:
        """Something not from a topic that was given up on: a source's item, a webhook delivery."""
        log.warning("dead letter stage=%s url=%s error=%s", self._stage, url, error)
        self._send(DeadLetter(
            id=item_id, stage=self._stage, sink=sink, error_type=type(error).__name__, reason=str(error),
            payload=(payload if payload is not None else url)[:PAYLOAD_LIMIT], failed_at=utc_now(),
        ))

    def _send(self, letter: DeadLetter) -> None:
        DEAD_LETTERS.labels(self._stage).inc()
        self._producer.produce(self._topics.name(DEAD_LETTER_TOPIC), *encode(letter))
