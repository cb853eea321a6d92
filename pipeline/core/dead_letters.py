"""Dead letters: inputs a stage cannot handle go to the dead-letter topic, with where and why.

Every role writes them through :class:`DeadLetters` on its own producer, so they become
durable with the stage's outputs, before its input offsets are committed. ``amur dlq
replay`` keeps the letters it sent back in :data:`dead_letter_replays`.
"""

from __future__ import annotations

import base64
import logging

import sqlalchemy as sa

from pipeline.core.db import UTCDateTime, metadata
from pipeline.core.messages import DeadLetter, encode, utc_now
from pipeline.core.metrics import DEAD_LETTERS
from pipeline.core.redaction import redact
from pipeline.core.topology import DEAD_LETTER_TOPIC, Topics
from pipeline.core.transport.base import Producer, Record

log = logging.getLogger(__name__)

PAYLOAD_LIMIT = 64 * 1024
# Bytes of a value that is not text which a letter keeps: base64 makes them PAYLOAD_LIMIT.
RAW_PAYLOAD_LIMIT = PAYLOAD_LIMIT // 4 * 3

# The letters replayed, so that one is not sent back twice unless asked.
dead_letter_replays = sa.Table(
    "dead_letter_replays", metadata,
    sa.Column("letter_id", sa.String(512), primary_key=True),
    sa.Column("topic", sa.String(255), nullable=False),
    sa.Column("replayed_at", UTCDateTime, nullable=False),
)


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
            reason=redact(str(error)),
            topic=record.topic,
            partition=record.partition,
            offset=record.offset,
            key=record.key.decode("utf-8", "replace") if record.key else None,
            **_payload(record.value),
            failed_at=utc_now(),
        ))

    def item(self, item_id: str, url: str, error: Exception, *, sink: str | None = None, payload: str | None = None) -> None:
        """Something not from a topic that was given up on: a source's item, a webhook delivery.

        Nothing replays such a letter, so its URLs are kept with their credentials masked.
        """
        url = redact(url)
        log.warning("dead letter stage=%s url=%s error=%s", self._stage, url, error)
        self._send(DeadLetter(
            id=redact(item_id), stage=self._stage, sink=sink, error_type=type(error).__name__, reason=redact(str(error)),
            payload=(payload if payload is not None else url)[:PAYLOAD_LIMIT], failed_at=utc_now(),
        ))

    def _send(self, letter: DeadLetter) -> None:
        DEAD_LETTERS.labels(self._stage).inc()
        self._producer.produce(self._topics.name(DEAD_LETTER_TOPIC), *encode(letter))


def _payload(value: bytes) -> dict[str, str]:
    """A value as a letter keeps it: as text when it is UTF-8, else its bytes in base64, so
    that a replay sends back the very bytes (a poison record's are often not text)."""
    try:
        return {"payload": value[:PAYLOAD_LIMIT].decode("utf-8"), "payload_encoding": "utf-8"}
    except UnicodeDecodeError as exc:
        if len(value) > PAYLOAD_LIMIT and exc.start >= PAYLOAD_LIMIT - 3:  # text cut inside a character
            return {"payload": value[:exc.start].decode("utf-8"), "payload_encoding": "utf-8"}
        return {"payload": base64.b64encode(value[:RAW_PAYLOAD_LIMIT]).decode("ascii"), "payload_encoding": "base64"}
