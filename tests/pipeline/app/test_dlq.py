"""`amur dlq list` and `amur dlq replay`, over the embedded log and a real Kafka broker."""

from __future__ import annotations

import time
from datetime import timedelta

import pytest
from typer.testing import CliRunner

from pipeline.app.cli import app
from pipeline.app.dlq import parse_since
from pipeline.core.dead_letters import PAYLOAD_LIMIT, DeadLetters
from pipeline.core.errors import MessageError, SinkError
from pipeline.core.messages import Article, article_id, encode, utc_now
from pipeline.core.settings import load_settings
from pipeline.core.topology import Topics
from pipeline.core.transport import make_transport
from pipeline.core.transport.base import Record


@pytest.fixture(params=["embedded", pytest.param("kafka", marks=pytest.mark.kafka)])
def deployment(request, tmp_path, topic_prefix):
    """A config of one transport, with three dead letters on its topic: an article a stage
    refused, a poison value, a source's item, and one whose value was too long to keep."""
    bootstrap = request.getfixturevalue("kafka_bootstrap") if request.param == "kafka" else "127.0.0.1:9"
    config = tmp_path / "amur.yaml"
    config.write_text(
        f"transport: {request.param}\ndatabase_url: 'sqlite:///{tmp_path / 'amur.sqlite'}'\n"
        f"kafka:\n  bootstrap_servers: {bootstrap}\n  topic_prefix: {topic_prefix}\n  group_prefix: {topic_prefix}g\n"
        f"embedded:\n  path: {tmp_path / 'log.sqlite'}\n"
    )
    (tmp_path / "sources.yaml").write_text("sources: []\n")
    settings = load_settings(config)
    topics = Topics(topic_prefix)
    transport = make_transport(settings)
    transport.ensure_topics(topics.all())
    producer = transport.producer()
    letters = DeadLetters(producer, topics, "processors")
    article = Article(id=article_id("https://news.example/a"), url="https://news.example/a", source="wire",
                      title="Harbin fair opens", text="Text of the story.", fetched_at=utc_now())
    key, value = encode(article)
    letters.record(Record(topics.articles, 0, 7, key, value), SinkError("the database was down"))
    letters.record(Record(topics.articles, 0, 8, b"poison", b"{not json"), MessageError("not JSON"))
    DeadLetters(producer, topics, "connectors").item("wire:https://news.example/gone", "https://news.example/gone", SinkError("HTTP 404"))
    letters.record(Record(topics.classified, 0, 3, b"big", b"x" * (PAYLOAD_LIMIT + 10)), MessageError("too large"))
    producer.flush()
    producer.close()
    yield config, transport, topics, article
    transport.close()


def amur(*args: str):
    return CliRunner().invoke(app, list(args), catch_exceptions=False)


def articles_on_the_topic(transport, topics) -> list[bytes]:
    reader = transport.consumer(f"check-{time.monotonic_ns()}", [topics.articles])
    values, deadline = [], time.monotonic() + 30
    while time.monotonic() < deadline:
        values += [record.value for record in reader.poll(100, 1.0)]
        if reader.lag() == 0:
            break
    reader.close()
    return values


def test_list_shows_each_letter_s_stage_error_and_position_and_filters(deployment):
    config, _, topics, _ = deployment

    everything = amur("dlq", "list", "--config", str(config))
    by_stage = amur("dlq", "list", "--stage", "connectors", "--config", str(config))
    by_topic = amur("dlq", "list", "--topic", "articles", "--since", "1h", "--config", str(config))
    future = amur("dlq", "list", "--since", (utc_now() + timedelta(hours=1)).isoformat(), "--config", str(config))

    assert everything.exit_code == 0, everything.output
    assert "4 letter(s)" in everything.output
    assert f"{topics.articles}:0:7" in everything.output and "SinkError" in everything.output
    assert "the database was down" in everything.output
    assert "1 letter(s)" in by_stage.output and "HTTP 404" in by_stage.output
    assert "2 letter(s)" in by_topic.output and topics.classified not in by_topic.output
    assert "0 letter(s)" in future.output


def test_replay_sends_each_value_back_once_and_says_what_it_cannot_replay(deployment):
    config, transport, topics, article = deployment
    before = articles_on_the_topic(transport, topics)

    first = amur("dlq", "replay", "--config", str(config))
    second = amur("dlq", "replay", "--config", str(config))
    again = amur("dlq", "replay", "--id", f"{topics.articles}:0:7", "--again", "--config", str(config))

    assert first.exit_code == 0, first.output
    assert "replayed 2, already replayed 0, not replayable 2" in first.output
    assert "is not a topic record" in first.output and "64 KiB" in first.output
    assert "replayed 0, already replayed 2, not replayable 2" in second.output  # twice changes nothing
    assert "replayed 1," in again.output
    replayed = articles_on_the_topic(transport, topics)[len(before):]
    assert replayed == [encode(article)[1], b"{not json", encode(article)[1]]


def test_since_takes_durations_and_times():
    now = utc_now()
    assert parse_since("24h", now) == now - timedelta(hours=24)
    assert parse_since("7d", now) == now - timedelta(days=7)
    assert parse_since("2026-12-01T08:00", now).isoformat() == "2026-12-01T08:00:00+00:00"
    with pytest.raises(ValueError, match="give a duration such as 30m"):
        parse_since("yesterday", now)
