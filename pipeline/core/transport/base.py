"""The transport interface every stage talks to: a partitioned, durable log with consumer groups.

Two implementations share these semantics and one contract test suite
(``tests/pipeline/core/transport/test_contract.py``):

* :mod:`pipeline.core.transport.kafka` — Apache Kafka through kafka-python (the only module that
  imports it);
* :mod:`pipeline.core.transport.embedded` — a log in one SQLite file, for single-machine runs.

Semantics, as Kafka has them:

* ``produce`` is asynchronous; ``flush`` returns only once every record the calling thread
  produced is durably written, and raises :class:`~pipeline.core.errors.TransportError` otherwise.
  Threads may share a producer: one thread's flush never vouches for another's records.
* A record larger than its topic's ``max_message_bytes`` is refused (at ``produce`` or at
  ``flush``), with a TransportError; ``record_limit`` tells that size beforehand, so that a
  stage can send a record that will never fit to the dead-letter topic instead.
* A consumer belongs to a group; the group's committed offset per partition is where a new
  member of the group starts. Records polled but not committed are delivered again to the
  next member after a crash or ``close`` — delivery is at-least-once.
* ``commit`` takes the *next* offset to read per partition (last processed + 1).
* ``pause`` stops delivery without leaving the group: while paused, ``poll`` returns no
  records but keeps the membership alive (on Kafka, past ``max.poll.interval.ms``), so a
  stage waiting for a sink to come back keeps its partitions. ``resume`` goes on from the
  records after the last ones polled.

Example::

    transport = EmbeddedTransport(":memory:")
    producer = transport.producer()
    producer.produce("amur.articles", b"key", b"{}")
    producer.flush()
    consumer = transport.consumer("amur-processors", ["amur.articles"])
    records = consumer.poll(max_records=10, timeout=1.0)
    consumer.commit(next_offsets(records))
"""

from __future__ import annotations

import threading
from abc import ABC, abstractmethod
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

Headers = tuple[tuple[str, bytes], ...]
TopicPartition = tuple[str, int]


@dataclass(frozen=True)
class Record:
    """One record read from a topic."""

    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes
    headers: Headers = field(default=())
    timestamp_ms: int = 0

    @property
    def position(self) -> str:
        """Where the record sits, as logs and dead letters name it: ``topic[partition]@offset``."""
        return f"{self.topic}[{self.partition}]@{self.offset}"


def next_offsets(records: Iterable[Record]) -> dict[TopicPartition, int]:
    """The offsets to commit after processing ``records``: last offset + 1 per partition."""
    offsets: dict[TopicPartition, int] = {}
    for record in records:
        tp = (record.topic, record.partition)
        offsets[tp] = max(offsets.get(tp, 0), record.offset + 1)
    return offsets


class PerThread:
    """A list of its own for every thread: what a shared producer keeps for each caller."""

    def __init__(self) -> None:
        self._local = threading.local()

    def mine(self) -> list[Any]:
        """The calling thread's list (empty on its first call)."""
        items = getattr(self._local, "items", None)
        if items is None:
            items = self._local.items = []
        return items


class Producer(ABC):
    """Writes records to topics."""

    @abstractmethod
    def produce(self, topic: str, key: bytes, value: bytes, headers: Headers = ()) -> None:
        """Queue one record; the partition is chosen from ``key``."""

    @abstractmethod
    def flush(self, timeout: float = 30.0) -> None:
        """Block until every record this thread queued is durably written; raise TransportError if not."""

    @abstractmethod
    def close(self) -> None:
        """Flush what is queued and release the connection."""


class Consumer(ABC):
    """Reads records of some topics as one member of a consumer group."""

    @abstractmethod
    def poll(self, max_records: int = 500, timeout: float = 1.0) -> list[Record]:
        """Up to ``max_records`` records, waiting at most ``timeout`` s; empty when there are none."""

    @abstractmethod
    def commit(self, offsets: Mapping[TopicPartition, int]) -> None:
        """Commit the next offset to read per partition for this consumer's group."""

    @abstractmethod
    def pause(self) -> None:
        """Stop delivering records, staying in the group; ``poll`` keeps the membership alive."""

    @abstractmethod
    def resume(self) -> None:
        """Deliver records again, from where the last poll before ``pause`` left off."""

    @abstractmethod
    def lag(self) -> int | None:
        """Records on this member's partitions not yet polled; ``None`` before it has partitions."""

    @abstractmethod
    def close(self) -> None:
        """Leave the group without committing anything more."""


class Transport(ABC):
    """Makes producers and consumers over one log (a Kafka cluster or an embedded file)."""

    name: str

    @abstractmethod
    def ensure_topics(self, topics: Sequence[str], *, max_message_bytes: int | None = None) -> None:
        """Create the topics that do not exist yet; existing ones are left as they are.

        :param max_message_bytes: the largest record the new topics accept; ``None`` for the
            transport's default.
        """

    @abstractmethod
    def producer(self) -> Producer:
        """A new producer."""

    @abstractmethod
    def record_limit(self, topic: str) -> int:
        """The largest record (key and value) ``topic`` accepts, as far as Amur configured it."""

    @abstractmethod
    def group_lag(self, group: str, topics: Sequence[str]) -> int | None:
        """Records of ``topics`` that ``group`` has not committed yet, read from outside the
        group (nobody joins it); ``None`` when a topic does not exist."""

    @abstractmethod
    def consumer(self, group: str, topics: Sequence[str]) -> Consumer:
        """A new member of ``group`` subscribed to ``topics``."""

    def close(self) -> None:
        """Release resources shared by this transport's producers and consumers."""
