"""What only the embedded log has to get right: retention and single membership per group."""

import time

import pytest

from pipeline.core.errors import TransportError
from pipeline.core.transport.embedded import EmbeddedTransport


def test_expired_records_go_but_offsets_keep_counting(tmp_path):
    log = EmbeddedTransport(str(tmp_path / "log.sqlite"), retention_seconds=0.05)
    log.ensure_topics(["t"])
    producer = log.producer()
    for n in range(3):
        producer.produce("t", b"k", b"old-%d" % n)
    producer.flush()
    time.sleep(0.1)
    assert log.expire() == 3
    producer.produce("t", b"k", b"new")
    producer.flush()

    consumer = log.consumer("g", ["t"])
    assert consumer.lag() == 1  # the expired records are not waiting to be read
    (record,) = consumer.poll(10, 0.1)
    assert (record.offset, record.value) == (3, b"new")
    assert consumer.lag() == 0


def test_offsets_continue_after_reopening_the_file(tmp_path):
    path = str(tmp_path / "log.sqlite")
    first = EmbeddedTransport(path)
    first.ensure_topics(["t"])
    producer = first.producer()
    producer.produce("t", b"k", b"v")
    producer.flush()
    first.close()
    again = EmbeddedTransport(path)
    producer = again.producer()
    producer.produce("t", b"k", b"w")
    producer.flush()
    consumer = again.consumer("g", ["t"])
    assert [(r.offset, r.value) for r in consumer.poll(10, 0.1)] == [(0, b"v"), (1, b"w")]


def test_a_group_has_one_member_at_a_time():
    log = EmbeddedTransport()
    log.ensure_topics(["t"])
    member = log.consumer("g", ["t"])
    with pytest.raises(TransportError, match="already has a member"):
        log.consumer("g", ["t"])
    member.close()
    log.consumer("g", ["t"]).close()
