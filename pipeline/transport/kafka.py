"""The Kafka transport: the :class:`~pipeline.transport.base.Transport` contract over Apache Kafka.

This is the only module that imports kafka-python, so a client upgrade or swap touches one
file, and every kafka-python exception leaves it as a :class:`~pipeline.errors.TransportError`
that says what to do about it.

Topic and group names are used exactly as given (callers apply ``topic_prefix`` and
``group_prefix``), as with the embedded transport.

Choices that carry the at-least-once contract:

* producers wait for every in-sync replica (``acks='all'``) and are idempotent, so a
  retried batch is neither lost nor written twice;
* consumers never auto-commit: only :meth:`KafkaConsumerMember.commit` moves a group's
  offsets, after the caller has processed the records, and ``close`` commits nothing;
* topics are never auto-created: a misspelt topic fails fast instead of creating an
  empty one that nothing reads.
"""

from __future__ import annotations

import logging
import threading
import weakref
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import Any

import kafka.errors as kafka_errors
from kafka import KafkaAdminClient, KafkaConsumer, KafkaProducer
from kafka import TopicPartition as KafkaTopicPartition
from kafka.structs import OffsetAndMetadata

from pipeline.errors import TransportError
from pipeline.settings import KafkaSettings
from pipeline.transport.base import Consumer, Headers, Producer, Record, TopicPartition, Transport

# kafka-python logs every reconnect and rebalance step at INFO; Amur's own logs say what
# matters. An operator who configured the "kafka" logger explicitly keeps that level.
_kafka_logger = logging.getLogger("kafka")
if _kafka_logger.level == logging.NOTSET:
    _kafka_logger.setLevel(logging.WARNING)

# A lost-and-found record batch in the producer is retried until this bound; it must
# exceed linger + request timeout (the Java client rejects smaller values, so we keep that
# rule here too).
_DELIVERY_TIMEOUT_MS = 120_000
_LINGER_MS = 5
# kafka-python requires request_timeout_ms > fetch_max_wait_ms (500 ms by default).
_MIN_TIMEOUT_MS = 1_000

_UNREACHABLE = (
    kafka_errors.KafkaTimeoutError,
    kafka_errors.NoBrokersAvailable,
    kafka_errors.KafkaConnectionError,
)


class KafkaTransport(Transport):
    """Producers, consumers and topic administration for one Kafka cluster.

    ``timeout`` (seconds) bounds every blocking call to the cluster — bootstrap, metadata,
    requests, topic creation — so a missing broker becomes a TransportError in that time
    instead of a hang. No connection is made until a producer, consumer or topic operation
    needs one, so building the transport never fails on a down broker.
    """

    name = "kafka"

    def __init__(self, settings: KafkaSettings, *, timeout: float = 30.0):
        self.settings = settings
        self._timeout_ms = max(_MIN_TIMEOUT_MS, int(timeout * 1000))
        self._admin: KafkaAdminClient | None = None
        self._lock = threading.Lock()
        # Closed together with the transport, so a stage that stops abruptly (or a failing
        # test) does not leave client threads and group memberships behind.
        self._members: weakref.WeakSet[KafkaProducerClient | KafkaConsumerMember] = weakref.WeakSet()

    # -- client construction --------------------------------------------------------------
    def client_config(self) -> dict[str, Any]:
        """Connection settings shared by the producer, consumer and admin clients."""
        config: dict[str, Any] = {
            "bootstrap_servers": self.settings.bootstrap_servers.split(","),
            "client_id": self.settings.client_id,
            "security_protocol": self.settings.security_protocol,
            "request_timeout_ms": self._timeout_ms,
            "bootstrap_timeout_ms": self._timeout_ms,
        }
        if self.settings.sasl_mechanism:
            config["sasl_mechanism"] = self.settings.sasl_mechanism
            config["sasl_plain_username"] = self.settings.sasl_username
            if self.settings.sasl_password is not None:
                config["sasl_plain_password"] = self.settings.sasl_password.get_secret_value()
        return config

    @contextmanager
    def errors(self, action: str) -> Iterator[None]:
        """Turn kafka-python's exceptions into TransportErrors that name the fix."""
        try:
            yield
        except _UNREACHABLE as exc:
            raise TransportError(
                f"{action}: cannot reach Kafka at {self.settings.bootstrap_servers}: {exc} — start it with "
                "scripts/kafka-dev start or set AMUR_KAFKA_BOOTSTRAP_SERVERS"
            ) from exc
        except kafka_errors.KafkaError as exc:
            raise TransportError(f"{action}: Kafka at {self.settings.bootstrap_servers} failed: {exc}") from exc

    def admin(self) -> KafkaAdminClient:
        """The transport's one admin client, created on first use."""
        with self._lock:
            if self._admin is None:
                with self.errors("connecting the admin client"):
                    self._admin = KafkaAdminClient(**self.client_config())
            return self._admin

    def missing_topics(self, topics: Sequence[str]) -> list[str]:
        """The topics of ``topics`` the cluster does not have.

        Asked of the admin client because a producer or consumer only learns that a topic is
        missing by waiting out its whole metadata timeout.
        """
        with self.errors("looking up topics"):
            described = self.admin().describe_topics(list(topics))
        unknown = kafka_errors.UnknownTopicOrPartitionError.errno
        return [topic["name"] for topic in described if topic["error_code"] == unknown]

    def check_connection(self) -> None:
        """Raise TransportError unless the cluster answers a metadata request within the timeout."""
        with self.errors("checking the connection"):
            brokers = self.admin().describe_cluster()["brokers"]
        if not brokers:
            raise TransportError(f"Kafka at {self.settings.bootstrap_servers} reports no live brokers")

    # -- Transport ------------------------------------------------------------------------
    def ensure_topics(self, topics: Sequence[str]) -> None:
        if not topics:
            return
        spec = {
            topic: {"num_partitions": self.settings.partitions, "replication_factor": self.settings.replication_factor}
            for topic in topics
        }
        with self.errors(f"creating topics {', '.join(topics)}"):
            result = self.admin().create_topics(spec, timeout_ms=self._timeout_ms, raise_errors=False)
        already_exists = kafka_errors.TopicAlreadyExistsError.errno
        failures = [
            f"{topic['name']}: {topic.get('error_message') or kafka_errors.for_code(topic['error_code']).__name__}"
            for topic in result["topics"]
            if topic["error_code"] not in (0, already_exists)
        ]
        if failures:
            raise TransportError("cannot create Kafka topics: " + "; ".join(failures))
        # The create response only means the controller accepted the topics; producers and
        # consumers fail until every partition has a leader in the brokers' metadata.
        with self.errors("waiting for new topics to get partition leaders"):
            self.admin().wait_for_topics(list(topics), timeout_ms=self._timeout_ms)

    def producer(self) -> Producer:
        config = {
            **self.client_config(),
            "acks": "all",
            "enable_idempotence": True,
            "linger_ms": _LINGER_MS,
            "delivery_timeout_ms": max(_DELIVERY_TIMEOUT_MS, self._timeout_ms + _LINGER_MS),
            "max_block_ms": self._timeout_ms,
            "allow_auto_create_topics": False,
        }
        with self.errors("connecting the producer"):
            producer = KafkaProducerClient(self, KafkaProducer(**config))
        self._members.add(producer)
        return producer

    def consumer(self, group: str, topics: Sequence[str]) -> Consumer:
        missing = self.missing_topics(topics)
        if missing:
            raise TransportError(f"topics {', '.join(missing)} do not exist; create them first (amur topics create)")
        config = {
            **self.client_config(),
            "group_id": group,
            "enable_auto_commit": False,
            "auto_offset_reset": "earliest",
            "allow_auto_create_topics": False,
        }
        with self.errors(f"joining consumer group {group!r}"):
            consumer = KafkaConsumerMember(self, KafkaConsumer(*topics, **config))
        self._members.add(consumer)
        return consumer

    def close(self) -> None:
        for member in list(self._members):
            member.close()
        with self._lock:
            if self._admin is not None:
                self._admin.close()
                self._admin = None


class KafkaProducerClient(Producer):
    """A kafka-python producer whose failures surface at ``flush``, where callers decide.

    ``send`` reports a failed delivery only on the record's future, so every future since
    the last flush is kept and checked once flush has waited for them.
    """

    def __init__(self, transport: KafkaTransport, producer: KafkaProducer):
        self._transport = transport
        self._producer = producer
        self._pending: list[Any] = []
        self._known_topics: set[str] = set()
        self._lock = threading.Lock()
        self._closed = False

    def produce(self, topic: str, key: bytes, value: bytes, headers: Headers = ()) -> None:
        if topic not in self._known_topics:
            if self._transport.missing_topics([topic]):
                raise TransportError(f"topic {topic!r} does not exist; create it first (amur topics create)")
            self._known_topics.add(topic)
        with self._transport.errors(f"producing to {topic!r}"):
            future = self._producer.send(topic, key=key, value=value, headers=list(headers))
        with self._lock:
            self._pending.append(future)

    def flush(self, timeout: float = 30.0) -> None:
        with self._lock:
            pending, self._pending = self._pending, []
        try:
            with self._transport.errors("flushing the producer"):
                self._producer.flush(timeout=timeout)
        except TransportError:
            # Not delivered yet is not failed: the next flush checks these again.
            with self._lock:
                self._pending[:0] = [future for future in pending if not future.is_done]
            raise
        failed = [future.exception for future in pending if future.failed()]
        if failed:
            raise TransportError(
                f"{len(failed)} of {len(pending)} records were not written to Kafka; first error: {failed[0]}"
            )

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        try:
            self.flush()
        finally:
            self._producer.close(timeout=self._transport._timeout_ms / 1000)


class KafkaConsumerMember(Consumer):
    """One member of a consumer group; its partitions change as members join and leave."""

    def __init__(self, transport: KafkaTransport, consumer: KafkaConsumer):
        self._transport = transport
        self._consumer = consumer
        self._closed = False

    def poll(self, max_records: int = 500, timeout: float = 1.0) -> list[Record]:
        with self._transport.errors("polling"):
            batches = self._consumer.poll(timeout_ms=int(timeout * 1000), max_records=max_records)
        return [
            Record(
                topic=message.topic,
                partition=message.partition,
                offset=message.offset,
                key=message.key,
                value=message.value,
                headers=tuple(message.headers or ()),
                timestamp_ms=message.timestamp,
            )
            for messages in batches.values()
            for message in messages
        ]

    def commit(self, offsets: Mapping[TopicPartition, int]) -> None:
        if not offsets:
            return
        to_commit = {KafkaTopicPartition(topic, partition): OffsetAndMetadata(offset) for (topic, partition), offset in offsets.items()}
        try:
            with self._transport.errors("committing offsets"):
                self._consumer.commit(to_commit)
        except TransportError as exc:
            if isinstance(exc.__cause__, kafka_errors.CommitFailedError):
                raise TransportError(
                    "commit refused: the group rebalanced and these partitions moved to another member, "
                    "which will process the uncommitted records again"
                ) from exc.__cause__
            raise

    def seek(self, offsets: Mapping[TopicPartition, int]) -> None:
        # A partition that moved to another member in a rebalance is skipped: its new owner
        # starts from the committed offset, which is what a retry must read from anyway.
        assigned = self._consumer.assignment()
        for (topic, partition), offset in offsets.items():
            tp = KafkaTopicPartition(topic, partition)
            if tp in assigned:
                self._consumer.seek(tp, offset)

    def lag(self) -> int | None:
        assigned = list(self._consumer.assignment())
        if not assigned:
            return None
        with self._transport.errors("reading end offsets"):
            ends = self._consumer.end_offsets(assigned)
            positions = {tp: self._consumer.position(tp) for tp in assigned}
        return sum(max(0, ends[tp] - (positions[tp] or 0)) for tp in assigned)

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        with self._transport.errors("leaving the consumer group"):
            self._consumer.close(autocommit=False, timeout_ms=self._transport._timeout_ms)
