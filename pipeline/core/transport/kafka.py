"""The Kafka transport: the :class:`~pipeline.core.transport.base.Transport` contract over Apache Kafka.

This is the only module that imports kafka-python, so a client upgrade or swap touches one
file, and every kafka-python exception leaves it as a :class:`~pipeline.core.errors.TransportError`
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
import time
import warnings
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager, suppress
from typing import Any

# kafka-python 3.0 loads its protocol schemas at import through importlib.resources
# functions Python deprecates; the hundreds of identical warnings are its business, not ours.
with warnings.catch_warnings():
    warnings.filterwarnings("ignore", category=DeprecationWarning, message="(read|open)_text is deprecated")
    import kafka.errors as kafka_errors
    from kafka import KafkaAdminClient, KafkaConsumer, KafkaProducer
    from kafka import TopicPartition as KafkaTopicPartition
    from kafka.structs import OffsetAndMetadata

from pipeline.core.errors import TransportError
from pipeline.core.settings import KafkaSettings
from pipeline.core.transport.base import Consumer, Headers, PerThread, Producer, Record, TopicPartition, Transport

# kafka-python logs every reconnect and rebalance step at INFO; Amur's own logs say what
# matters. An operator who configured the "kafka" logger explicitly keeps that level.
_kafka_logger = logging.getLogger("kafka")
if _kafka_logger.level == logging.NOTSET:
    _kafka_logger.setLevel(logging.WARNING)

# How long the producer retries a batch before failing its records (kafka-python's default).
# Must be at least linger + request timeout, the rule the Java client enforces.
_DELIVERY_TIMEOUT_MS = 120_000
# A few ms lets a burst of records (one poll's articles) share a request, unnoticeably.
_LINGER_MS = 5
_HEARTBEAT_INTERVAL_MS = 1_000
_SESSION_TIMEOUT_MS = 10_000
# kafka-python requires request_timeout_ms > fetch_max_wait_ms (500 ms by default).
_MIN_TIMEOUT_MS = 1_000

_UNREACHABLE = (
    kafka_errors.KafkaTimeoutError,
    kafka_errors.KafkaConnectionError,
    kafka_errors.MetadataEmptyBrokerList,
)


def _topic_problem(error_code: int) -> str:
    if error_code == kafka_errors.UnknownTopicOrPartitionError.errno:
        return "does not exist"
    return kafka_errors.for_code(error_code).__name__


# The broker's message.max.bytes when the topics were created without a limit of their own.
BROKER_DEFAULT_MAX_MESSAGE_BYTES = 1_048_588


class KafkaTransport(Transport):
    """Producers, consumers and topic administration for one Kafka cluster.

    ``timeout`` (seconds) bounds every blocking call to the cluster — bootstrap, metadata,
    requests, topic creation — so a missing broker becomes a TransportError in that time
    instead of a hang. No connection is made until a producer, consumer or topic operation
    needs one, so building the transport never fails on a down broker.
    """

    name = "kafka"

    def __init__(self, settings: KafkaSettings, *, timeout: float | None = None):
        self.settings = settings
        self.timeout_ms = max(_MIN_TIMEOUT_MS, int((timeout or settings.timeout_seconds) * 1000))
        self._admin: KafkaAdminClient | None = None
        self._lock = threading.Lock()
        # Closed together with the transport, so a stage that stops abruptly (or a failing
        # test) does not leave client threads and group memberships behind. Held strongly: a
        # dropped consumer's IO thread would otherwise keep it in its group, unclosable.
        self._members: set[KafkaProducerClient | KafkaConsumerMember] = set()

    # -- client construction --------------------------------------------------------------
    def _client_config(self) -> dict[str, Any]:
        """Connection settings shared by the producer, consumer and admin clients."""
        config: dict[str, Any] = {
            "bootstrap_servers": self.settings.bootstrap_servers.split(","),
            "client_id": self.settings.client_id,
            "security_protocol": self.settings.security_protocol,
            "request_timeout_ms": self.timeout_ms,
            "bootstrap_timeout_ms": self.timeout_ms,
        }
        if self.settings.sasl_mechanism:
            config["sasl_mechanism"] = self.settings.sasl_mechanism
            config["sasl_plain_username"] = self.settings.sasl_username
            if self.settings.sasl_password is not None:
                config["sasl_plain_password"] = self.settings.sasl_password.get_secret_value()
        return config

    @contextmanager
    def _errors(self, action: str) -> Iterator[None]:
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

    def _admin_client(self) -> KafkaAdminClient:
        """The transport's one admin client, created on first use."""
        with self._lock:
            if self._admin is None:
                with self._errors("connecting the admin client"):
                    self._admin = KafkaAdminClient(**self._client_config())
            return self._admin

    def require_topics(self, topics: Sequence[str]) -> None:
        """Raise TransportError naming every topic of ``topics`` that cannot be used.

        Asked of the admin client because a producer only learns that a topic is missing by
        waiting out its whole metadata timeout, and a consumer never learns it: it just idles.
        """
        with self._errors("looking up topics"):
            described = self._admin_client().describe_topics(list(topics))
        problems = [
            f"{topic['name']!r} {_topic_problem(topic['error_code'])}" for topic in described if topic["error_code"]
        ]
        if problems:
            raise TransportError(f"unusable topics: {', '.join(problems)}; create them first (amur topics create)")

    def check_connection(self) -> None:
        """Raise TransportError unless the cluster answers a metadata request within the timeout."""
        with self._errors("checking the connection"):
            brokers = self._admin_client().describe_cluster()["brokers"]
        if not brokers:
            raise TransportError(f"Kafka at {self.settings.bootstrap_servers} reports no live brokers")

    # -- Transport ------------------------------------------------------------------------
    def ensure_topics(self, topics: Sequence[str], *, max_message_bytes: int | None = None) -> None:
        if not topics:
            return
        limit = max_message_bytes or self.settings.max_message_bytes
        configs = {"max.message.bytes": str(limit)} if limit else {}
        spec = {
            topic: {
                "num_partitions": self.settings.partitions, "replication_factor": self.settings.replication_factor,
                "configs": configs,
            }
            for topic in topics
        }
        with self._errors(f"creating topics {', '.join(topics)}"):
            result = self._admin_client().create_topics(spec, timeout_ms=self.timeout_ms, raise_errors=False)
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
        with self._errors("waiting for new topics to get partition leaders"):
            self._admin_client().wait_for_topics(list(topics), timeout_ms=self.timeout_ms)

    def record_limit(self, topic: str) -> int:
        return self.settings.max_message_bytes or BROKER_DEFAULT_MAX_MESSAGE_BYTES

    def producer(self) -> Producer:
        producer = KafkaProducerClient(self)
        with self._lock:
            self._members.add(producer)
        return producer

    def _kafka_producer(self) -> KafkaProducer:
        config = {
            **self._client_config(),
            "acks": "all",
            "enable_idempotence": True,
            "linger_ms": _LINGER_MS,
            "delivery_timeout_ms": max(_DELIVERY_TIMEOUT_MS, self.timeout_ms + _LINGER_MS),
            "max_block_ms": self.timeout_ms,
            "allow_auto_create_topics": False,
        }
        with self._errors("connecting the producer"):
            return KafkaProducer(**config)

    def consumer(self, group: str, topics: Sequence[str]) -> Consumer:
        self.require_topics(topics)
        config = {
            **self._client_config(),
            "group_id": group,
            "enable_auto_commit": False,
            "auto_offset_reset": "earliest",
            "allow_auto_create_topics": False,
            # Members learn of a rebalance from a heartbeat response, so the heartbeat sets
            # how long the group stalls when a processor joins or leaves; a member that
            # died without leaving holds its partitions for the session timeout. kafka-python
            # heartbeats from its IO thread, so a long batch counts against neither, only
            # against max_poll_interval_ms (5 minutes between polls).
            "heartbeat_interval_ms": _HEARTBEAT_INTERVAL_MS,
            "session_timeout_ms": _SESSION_TIMEOUT_MS,
            "max_poll_interval_ms": self.settings.max_poll_interval_ms,
        }
        with self._errors(f"joining consumer group {group!r}"):
            consumer = KafkaConsumerMember(self, KafkaConsumer(*topics, **config))
        with self._lock:
            self._members.add(consumer)
        return consumer

    def group_lag(self, group: str, topics: Sequence[str]) -> int | None:
        # A consumer with the group's id that subscribes to nothing reads the group's committed
        # offsets without joining it, so the members are not rebalanced by a health check.
        config = {**self._client_config(), "group_id": group, "enable_auto_commit": False}
        with self._errors(f"reading the lag of consumer group {group!r}"):
            reader = KafkaConsumer(**config)
            try:
                known = [reader.partitions_for_topic(topic) for topic in topics]
                if any(not partitions for partitions in known):
                    return None
                partitions = [KafkaTopicPartition(topic, number) for topic, numbers in zip(topics, known, strict=True) for number in numbers]
                ends = reader.end_offsets(partitions, timeout_ms=self.timeout_ms)
                starts = reader.beginning_offsets(partitions, timeout_ms=self.timeout_ms)
                committed = {partition: reader.committed(partition) for partition in partitions}
            finally:
                reader.close(autocommit=False)
        # Never committed: the group starts at the earliest record still kept.
        return sum(max(0, ends[tp] - max(committed[tp] or 0, starts[tp])) for tp in partitions)

    def group_members(self, group: str) -> int:
        """How many members ``group`` has once it is stable (0 while it is empty or rebalancing)."""
        with self._errors(f"describing consumer group {group!r}"):
            described = self._admin_client().describe_groups([group])[group]
        return len(described["members"]) if described["group_state"] == "Stable" else 0

    def _forget(self, member: KafkaProducerClient | KafkaConsumerMember) -> None:
        with self._lock:
            self._members.discard(member)

    def close(self) -> None:
        # Every client is closed even if one fails (a producer whose last flush fails), so
        # none keeps its threads or group membership; the first failure is reported after.
        failure: TransportError | None = None
        with self._lock:
            members = list(self._members)
        for member in members:
            try:
                member.close()
            except TransportError as exc:
                failure = failure or exc
        with self._lock:
            if self._admin is not None:
                self._admin.close()
                self._admin = None
        if failure is not None:
            raise failure


class KafkaProducerClient(Producer):
    """A kafka-python producer whose failures surface at ``flush``, where callers decide.

    ``send`` reports a failed delivery only on the record's future, so each thread's futures
    since its last flush are kept apart and checked once flush has waited for them: a thread
    returns from ``flush`` only when every record *it* produced was acknowledged.
    """

    def __init__(self, transport: KafkaTransport):
        self._transport = transport
        self._producer = transport._kafka_producer()
        self._futures = PerThread()
        self._known_topics: set[str] = set()
        self._lock = threading.Lock()
        self._closed = False

    def produce(self, topic: str, key: bytes, value: bytes, headers: Headers = ()) -> None:
        if topic not in self._known_topics:
            self._transport.require_topics([topic])
            self._known_topics.add(topic)
        with self._transport._errors(f"producing to {topic!r}"):
            future = self._producer.send(topic, key=key, value=value, headers=list(headers))
        self._futures.mine().append(future)

    def flush(self, timeout: float = 30.0) -> None:
        own = self._futures.mine()
        pending = list(own)
        own.clear()
        producer = self._producer
        deadline = time.monotonic() + timeout
        # Only the futures are trusted: kafka-python 3.0's flush raises UnknownError('Future
        # not done') when the broker makes it split a batch whose records are still retried.
        with suppress(kafka_errors.KafkaError):
            producer.flush(timeout=timeout)
        for future in pending:
            if not future.is_done:
                with suppress(kafka_errors.KafkaError):  # failed or unfinished: counted below
                    future.get(timeout=max(0.0, deadline - time.monotonic()))
        unfinished = [future for future in pending if not future.is_done]
        if unfinished:
            # Not acknowledged yet is not failed: this thread's next flush checks these again.
            own[:0] = unfinished
            raise TransportError(
                f"Kafka at {self._transport.settings.bootstrap_servers} did not acknowledge {len(unfinished)} "
                f"of {len(pending)} records within {timeout:g} s; is the broker down or overloaded?"
            )
        failed = [future.exception for future in pending if future.failed()]
        if failed:
            self._replace_producer(producer)
            raise TransportError(
                f"{len(failed)} of {len(pending)} records were not written to Kafka; first error: {failed[0]}"
            )

    def _replace_producer(self, broken: KafkaProducer) -> None:
        """Start over with a new producer after a failed delivery.

        An idempotent kafka-python producer treats errors such as a record too large for
        the topic as fatal and fails every later record too; the caller will retry the
        batch, and that retry needs a producer that can still write. Other threads' records
        still in the broken producer fail with it, so their flushes raise as well.
        """
        with self._lock:
            if self._producer is not broken:
                return  # another thread's flush replaced it already
            self._producer = self._transport._kafka_producer()
        broken.close(timeout=0)

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        self._transport._forget(self)
        try:
            self.flush(timeout=self._transport.timeout_ms / 1000)
        finally:
            self._producer.close(timeout=self._transport.timeout_ms / 1000)


class KafkaConsumerMember(Consumer):
    """One member of a consumer group; its partitions change as members join and leave."""

    def __init__(self, transport: KafkaTransport, consumer: KafkaConsumer):
        self._transport = transport
        self._consumer = consumer
        self._closed = False
        self._paused = False

    def poll(self, max_records: int = 500, timeout: float = 1.0) -> list[Record]:
        with self._transport._errors("polling"):
            if self._paused:
                self._poll_paused(timeout)
                return []
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
        to_commit = {
            KafkaTopicPartition(topic, partition): OffsetAndMetadata(offset)
            for (topic, partition), offset in offsets.items()
        }
        with self._transport._errors("committing offsets"):
            try:
                self._consumer.commit(to_commit, timeout_ms=self._transport.timeout_ms)
            except kafka_errors.CommitFailedError as exc:
                raise TransportError(
                    "commit refused: the group rebalanced and these partitions moved to another member, "
                    "which will process the uncommitted records again"
                ) from exc

    def _poll_paused(self, timeout: float) -> None:
        """Poll with every partition paused: the group sees a live member, nothing is consumed.

        A rebalance during the poll can assign partitions that are not paused yet, and their
        records come back from this very poll; each such partition is rewound to its first
        returned record and paused, so those records are delivered after ``resume``.
        """
        self._consumer.pause(*self._consumer.assignment())
        batches = self._consumer.poll(timeout_ms=int(timeout * 1000))
        for partition, messages in batches.items():
            self._consumer.seek(partition, min(message.offset for message in messages))
            self._consumer.pause(partition)

    def pause(self) -> None:
        self._paused = True
        self._consumer.pause(*self._consumer.assignment())

    def resume(self) -> None:
        self._paused = False
        self._consumer.resume(*self._consumer.paused())

    def lag(self) -> int | None:
        assigned = list(self._consumer.assignment())
        if not assigned:
            return None
        with self._transport._errors("reading end offsets"):
            ends = self._consumer.end_offsets(assigned, timeout_ms=self._transport.timeout_ms)
            positions = {tp: self._consumer.position(tp, timeout_ms=self._transport.timeout_ms) for tp in assigned}
        if None in positions.values():
            return None  # just assigned, start offsets not yet resolved: lag is not known
        return sum(max(0, ends[tp] - positions[tp]) for tp in assigned)

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        self._transport._forget(self)
        with self._transport._errors("leaving the consumer group"):
            self._consumer.close(autocommit=False, timeout_ms=self._transport.timeout_ms)
