"""The transport contract (``pipeline/core/transport/base.py``), checked against both transports.

Every stage is written against these semantics only, so a stage tested on the embedded log
behaves the same on Kafka. Each test runs once per transport (the ``transport_factory``
fixture); the Kafka runs need the broker from ``scripts/kafka-dev start``.
"""

from __future__ import annotations

import socket
import threading
import time

import pytest

from pipeline.core.errors import TransportError
from pipeline.core.settings import KafkaSettings
from pipeline.core.transport.base import Consumer, Record, Transport, next_offsets
from pipeline.core.transport.kafka import KafkaTransport

POLL_TIMEOUT = 0.3
WAIT_FOR_RECORDS = 20.0


def poll_until(consumer: Consumer, count: int, max_records: int = 500) -> list[Record]:
    """Poll until ``count`` records arrived; a Kafka member's first polls also join its group."""
    records: list[Record] = []
    deadline = time.monotonic() + WAIT_FOR_RECORDS
    while len(records) < count and time.monotonic() < deadline:
        records.extend(consumer.poll(max_records=max_records, timeout=POLL_TIMEOUT))
    return records


def positions(records: list[Record]) -> set[tuple[str, int, int]]:
    return {(record.topic, record.partition, record.offset) for record in records}


def make_topic(transport: Transport, topic_prefix: str, name: str = "articles") -> str:
    topic = topic_prefix + name
    transport.ensure_topics([topic])
    return topic


def produce(transport: Transport, topic: str, keyed_values: list[tuple[bytes, bytes]]) -> None:
    producer = transport.producer()
    for key, value in keyed_values:
        producer.produce(topic, key, value)
    producer.flush(timeout=10)
    producer.close()


def numbered(count: int, start: int = 0) -> list[tuple[bytes, bytes]]:
    return [(b"key-%d" % n, b"value-%d" % n) for n in range(start, start + count)]


def test_polled_records_carry_key_value_and_headers(transport_factory, topic_prefix):
    transport = transport_factory()
    topic = make_topic(transport, topic_prefix)
    producer = transport.producer()
    producer.produce(topic, b"k1", b'{"n": 1}', headers=(("source", b"tass"), ("empty", b"")))
    producer.produce(topic, b"k2", b'{"n": 2}')
    producer.flush(timeout=10)

    records = poll_until(transport.consumer(topic_prefix + "g", [topic]), 2)

    by_key = {record.key: record for record in records}
    assert set(by_key) == {b"k1", b"k2"}
    assert by_key[b"k1"].value == b'{"n": 1}'
    assert by_key[b"k1"].headers == (("source", b"tass"), ("empty", b""))
    assert by_key[b"k2"].headers == ()
    assert all(record.topic == topic and record.timestamp_ms > 0 for record in records)


def test_a_key_keeps_its_partition_and_its_order(transport_factory, topic_prefix):
    transport = transport_factory()
    topic = make_topic(transport, topic_prefix)
    keys = [b"alpha", b"beta", b"gamma", b"delta"]
    produce(transport, topic, [(key, b"%s-%d" % (key, n)) for n in range(5) for key in keys])

    records = poll_until(transport.consumer(topic_prefix + "g", [topic]), 20)

    assert len(records) == 20
    for key in keys:
        of_key = [record for record in records if record.key == key]
        assert len({record.partition for record in of_key}) == 1
        assert [record.value for record in of_key] == [b"%s-%d" % (key, n) for n in range(5)]


def test_a_group_resumes_from_its_committed_offsets(transport_factory, topic_prefix):
    """Closing without committing everything must redeliver the rest: at-least-once."""
    transport = transport_factory()
    topic = make_topic(transport, topic_prefix)
    produce(transport, topic, numbered(12))
    group = topic_prefix + "processors"

    first = transport.consumer(group, [topic])
    records = poll_until(first, 12)
    processed = records[:5]
    first.commit(next_offsets(processed))
    first.close()

    committed = next_offsets(processed)
    unprocessed = {
        (r.topic, r.partition, r.offset) for r in records if r.offset >= committed.get((r.topic, r.partition), 0)
    }
    restarted = transport_factory().consumer(group, [topic])
    again = poll_until(restarted, len(unprocessed))

    assert len(records) == 12
    assert positions(again) == unprocessed
    assert restarted.poll(timeout=POLL_TIMEOUT) == []


def test_every_group_gets_every_record(transport_factory, topic_prefix):
    transport = transport_factory()
    topic = make_topic(transport, topic_prefix)
    produce(transport, topic, numbered(8))

    sinks = poll_until(transport.consumer(topic_prefix + "sinks", [topic]), 8)
    alerts = poll_until(transport.consumer(topic_prefix + "alerts", [topic]), 8)

    assert len(sinks) == len(alerts) == 8
    assert positions(sinks) == positions(alerts)


def test_lag_counts_records_not_yet_polled(transport_factory, topic_prefix):
    transport = transport_factory()
    topic = make_topic(transport, topic_prefix)
    produce(transport, topic, numbered(6))
    consumer = transport.consumer(topic_prefix + "g", [topic])

    assert len(poll_until(consumer, 1, max_records=1)) == 1
    assert consumer.lag() == 5
    assert len(poll_until(consumer, 5)) == 5
    assert consumer.lag() == 0


def test_group_lag_counts_uncommitted_records_from_outside_the_group(transport_factory, topic_prefix):
    transport = transport_factory()
    topic = make_topic(transport, topic_prefix)
    group = f"{topic_prefix}lagged"
    produce(transport, topic, numbered(7))
    assert transport.group_lag(group, [topic]) == 7  # never committed: everything is ahead
    consumer = transport.consumer(group, [topic])
    records = poll_until(consumer, 7)
    assert len(records) == 7
    first_partition = [record for record in records if record.partition == records[0].partition]
    consumer.commit(next_offsets(first_partition))
    consumer.close()
    assert transport.group_lag(group, [topic]) == 7 - len(first_partition)
    assert transport.group_lag(group, [topic_prefix + "missing"]) is None


def test_producing_to_a_missing_topic_raises(transport_factory, topic_prefix):
    producer = transport_factory().producer()
    with pytest.raises(TransportError, match="does not exist"):
        producer.produce(topic_prefix + "missing", b"k", b"v")
        producer.flush(timeout=5)


def test_consuming_a_missing_topic_raises(transport_factory, topic_prefix):
    with pytest.raises(TransportError, match="does not exist"):
        transport_factory().consumer(topic_prefix + "g", [topic_prefix + "missing"])


def test_ensure_topics_is_idempotent(transport_factory, topic_prefix):
    transport = transport_factory()
    topic = make_topic(transport, topic_prefix)
    produce(transport, topic, numbered(1))

    transport.ensure_topics([topic, topic_prefix + "alerts"])
    transport_factory().ensure_topics([topic])

    assert len(poll_until(transport.consumer(topic_prefix + "g", [topic]), 1)) == 1
    produce(transport, topic_prefix + "alerts", numbered(1))


def test_a_flush_returns_only_once_the_callers_own_records_are_written(transport_factory, topic_prefix):
    """Threads share one producer (the connectors' polls do) and flush at the same moments.

    In every round one thread's batch holds a record the topic refuses, so that append
    fails. A thread whose flush returned must find every record it produced on the topic; a
    flush that could not vouch for its caller's records raises. (With one queue for all
    threads, a thread whose records another thread's failing flush took returned as if they
    were written.)
    """
    transport = transport_factory()
    topic = topic_prefix + "shared"
    transport.ensure_topics([topic], max_message_bytes=2_000)
    producer = transport.producer()
    threads, rounds, per_round = 6, 12, 15
    failing = {(round_ % threads, round_) for round_ in range(rounds)}  # batches carrying a refused record
    outcome: dict[tuple[int, int], bool] = {}
    start_together = threading.Barrier(threads, timeout=60)

    def work(thread: int) -> None:
        for round_ in range(rounds):
            start_together.wait()
            try:
                for n in range(per_round):
                    producer.produce(topic, b"%d-%d-%d" % (thread, round_, n), b"v")
                if (thread, round_) in failing:
                    producer.produce(topic, b"too-large", b"x" * 5_000)
                producer.flush(timeout=20)
                outcome[(thread, round_)] = True
            except TransportError:
                outcome[(thread, round_)] = False

    workers = [threading.Thread(target=work, args=(n,)) for n in range(threads)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(timeout=120)
    assert len(outcome) == threads * rounds

    consumer = transport.consumer(topic_prefix + "reader", [topic])
    written: set[bytes] = set()
    deadline = time.monotonic() + WAIT_FOR_RECORDS
    while time.monotonic() < deadline:
        written.update(record.key for record in consumer.poll(timeout=POLL_TIMEOUT))
        if consumer.lag() == 0 and written:
            break
    assert not any(outcome[batch] for batch in failing)
    assert b"too-large" not in written
    for (thread, round_), returned in outcome.items():
        if returned:
            missing = [n for n in range(per_round) if b"%d-%d-%d" % (thread, round_, n) not in written]
            assert not missing, f"thread {thread} round {round_}: flush returned but records {missing} are not on the topic"
    assert sum(outcome.values()) > 0, "every flush failed: the test proved nothing"


def test_a_record_larger_than_the_topic_accepts_fails_its_flush(transport_factory, topic_prefix):
    transport = transport_factory()
    topic = topic_prefix + "small"
    transport.ensure_topics([topic], max_message_bytes=1_024)
    producer = transport.producer()
    producer.produce(topic, b"k", b"x" * 3_000)
    with pytest.raises(TransportError, match="not written|larger than"):
        producer.flush(timeout=10)
    producer.produce(topic, b"k", b"fits")
    producer.flush(timeout=10)
    assert [record.value for record in poll_until(transport.consumer(topic_prefix + "g", [topic]), 1)] == [b"fits"]


def test_a_paused_member_gets_nothing_and_resumes_where_it_left_off(transport_factory, topic_prefix):
    transport = transport_factory()
    topic = make_topic(transport, topic_prefix)
    consumer = transport.consumer(topic_prefix + "g", [topic])
    produce(transport, topic, numbered(3))
    first = poll_until(consumer, 3)
    consumer.pause()
    produce(transport, topic, numbered(3, start=3))
    deadline = time.monotonic() + 3
    while time.monotonic() < deadline:
        assert consumer.poll(timeout=POLL_TIMEOUT) == []
    consumer.resume()
    rest = poll_until(consumer, 3)
    assert sorted(record.value for record in first + rest) == sorted(value for _, value in numbered(6))


def test_an_unreachable_kafka_raises_transport_error():
    """No broker needed: the point is the error a missing broker gives, and how fast."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        closed_port = probe.getsockname()[1]
    transport = KafkaTransport(KafkaSettings(bootstrap_servers=f"127.0.0.1:{closed_port}"), timeout=1.0)
    started = time.monotonic()
    try:
        with pytest.raises(TransportError, match="scripts/kafka-dev start"):
            transport.producer()
        with pytest.raises(TransportError, match="cannot reach Kafka"):
            transport.ensure_topics(["amur.articles"])
    finally:
        transport.close()
    assert time.monotonic() - started < 10


@pytest.mark.kafka
def test_a_record_the_broker_refuses_fails_flush_and_the_producer_recovers(kafka_bootstrap, topic_prefix):
    """kafka-python's idempotent producer fails every later record after such an error."""
    transport = KafkaTransport(KafkaSettings(bootstrap_servers=kafka_bootstrap))
    topic = topic_prefix + "small-records"
    try:
        transport.ensure_topics([topic], max_message_bytes=1_024)
        producer = transport.producer()
        producer.produce(topic, b"k", b"x" * 5000)
        with pytest.raises(TransportError, match="not written to Kafka"):
            producer.flush(timeout=10)

        producer.produce(topic, b"k", b"fits")
        producer.flush(timeout=10)

        assert [record.value for record in poll_until(transport.consumer(topic_prefix + "g", [topic]), 1)] == [b"fits"]
    finally:
        transport.close()


@pytest.mark.kafka
def test_members_of_a_group_split_the_partitions(kafka_bootstrap, topic_prefix):
    """Scaling out: each record goes to one member, and a leaving member's commits hold."""
    transport = KafkaTransport(KafkaSettings(bootstrap_servers=kafka_bootstrap, partitions=3))
    try:
        topic = make_topic(transport, topic_prefix)
        group = topic_prefix + "processors"
        first, second = transport.consumer(group, [topic]), transport.consumer(group, [topic])
        members = {"first": first, "second": second}
        # Both join before anything is produced; otherwise the first to join reads it all.
        deadline = time.monotonic() + WAIT_FOR_RECORDS
        while any(member.lag() is None for member in members.values()) and time.monotonic() < deadline:
            for member in members.values():
                member.poll(timeout=0.2)
        produce(transport, topic, numbered(30))

        seen: dict[str, list[Record]] = {name: [] for name in members}
        deadline = time.monotonic() + WAIT_FOR_RECORDS
        while sum(map(len, seen.values())) < 30 and time.monotonic() < deadline:
            for name, member in members.items():
                records = member.poll(timeout=0.2)
                member.commit(next_offsets(records))
                seen[name].extend(records)

        all_seen = seen["first"] + seen["second"]
        assert len(all_seen) == 30 and len(positions(all_seen)) == 30
        partitions = {name: {record.partition for record in records} for name, records in seen.items()}
        assert partitions["first"] and partitions["second"]
        assert not partitions["first"] & partitions["second"]

        first.close()
        produce(transport, topic, numbered(30, start=30))
        after_rebalance = poll_until(second, 30)

        assert sorted(record.value for record in after_rebalance) == sorted(value for _, value in numbered(30, 30))
        assert second.poll(timeout=POLL_TIMEOUT) == []
    finally:
        transport.close()
