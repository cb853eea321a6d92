"""Poison on every input topic mid-stream — invalid JSON, a newer schema version, a 10 MB value —
sits on the dead-letter topic with its reason, once per reader, and the stream goes on."""

from __future__ import annotations

import json

import pytest
from kafka import KafkaProducer

from tests.faults.conftest import SETTLE_SECONDS, running
from tests.support.webhook_receiver import WebhookReceiver

pytestmark = [pytest.mark.faults, pytest.mark.kafka, pytest.mark.postgres, pytest.mark.slow]

TEN_MB = 10 * 1024 * 1024
# Who reads each input topic: classified is read by the stories role and the records sink.
READERS = {"articles": ["processors"], "classified": ["stories", "sinks"], "alerts": ["sinks"]}


def poison() -> dict[str, bytes]:
    huge = json.dumps({"schema_version": 1, "id": "h" * 32, "text": "x" * TEN_MB}).encode()
    newer = json.dumps({"schema_version": 99, "id": "f" * 32, "note": "from a later Amur"}).encode()
    return {"json": b'{"id": "cut short', "newer": newer, "huge": huge}


def test_poison_on_every_input_topic_mid_stream_is_dead_lettered_and_the_stream_goes_on(make_drill, kafka_bootstrap, database):
    with WebhookReceiver() as receiver:
        drill = make_drill(kafka_bootstrap, database, receiver.url)
        with running(drill):
            drill.wait_for(lambda: drill.recorded() >= 4, 120, "the stream under way")
            # A foreign producer, allowed the large records these topics accept (kafka.max_message_bytes).
            producer = KafkaProducer(bootstrap_servers=kafka_bootstrap, max_request_size=16 * 1024 * 1024, acks="all")
            for kind in READERS:
                for name, value in poison().items():
                    producer.send(drill.topics.name(kind), key=f"{name}-{kind}".encode(), value=value)
            producer.flush()
            producer.close()
            drill.wait_for(lambda: drill.settled(receiver), SETTLE_SECONDS, "the stream to finish past the poison")
        expected = sum(len(readers) for readers in READERS.values()) * len(poison())
        drill.assert_exactly_once(receiver, dead_letters=expected)

    letters = drill.dead_letters()
    assert sorted((letter["stage"], letter["key"]) for letter in letters) == sorted(
        (reader, f"{name}-{kind}") for kind, readers in READERS.items() for reader in readers for name in poison()
    )
    for letter in letters:
        assert letter["topic"] == drill.topics.name(letter["key"].split("-", 1)[1]) and letter["offset"] is not None
        if letter["key"].startswith("newer-"):
            assert "schema version 99 is newer than this reader's" in letter["reason"]
        if letter["key"].startswith("huge-"):
            assert len(letter["payload"]) == 64 * 1024, "a dead letter keeps the start of a huge value, not all of it"
