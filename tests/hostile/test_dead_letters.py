"""A poison record's bytes survive the dead-letter topic: a replay sends back exactly them."""

from __future__ import annotations

from typer.testing import CliRunner

from pipeline.app.cli import app
from pipeline.core.dead_letters import DeadLetters
from pipeline.core.errors import MessageError
from pipeline.core.messages import DeadLetter, decode
from pipeline.core.settings import load_settings
from pipeline.core.topology import Topics
from pipeline.core.transport import make_transport
from pipeline.core.transport.base import Record

NOT_TEXT = b"\xff\xfe{\"title\": \"\xd0\x9c\xd0\xbe\xd1\x81\x00\x80\x81\"}"  # Latin-1 bytes, a cut Cyrillic letter, a NUL


def test_a_value_that_is_not_utf8_is_replayed_byte_for_byte(tmp_path):
    config = tmp_path / "amur.yaml"
    config.write_text(
        f"database_url: 'sqlite:///{tmp_path / 'amur.sqlite'}'\nembedded:\n  path: {tmp_path / 'log.sqlite'}\n"
        "kafka:\n  topic_prefix: h.\n"
    )
    (tmp_path / "sources.yaml").write_text("sources: []\n")
    transport = make_transport(load_settings(config))
    topics = Topics("h.")
    transport.ensure_topics(topics.all())
    producer = transport.producer()
    DeadLetters(producer, topics, "processors").record(Record(topics.articles, 0, 4, b"k", NOT_TEXT), MessageError("not JSON"))
    producer.flush()

    reader = transport.consumer("letters", [topics.dlq])
    (letter,) = [decode(DeadLetter, record.value) for record in reader.poll(10, 1.0)]
    reader.close()
    assert letter.payload_encoding == "base64" and letter.value() == NOT_TEXT

    replayed = CliRunner().invoke(app, ["dlq", "replay", "--config", str(config)], catch_exceptions=False)
    assert "replayed 1," in replayed.output, replayed.output
    reader = transport.consumer("articles", [topics.articles])
    assert [record.value for record in reader.poll(10, 1.0)] == [NOT_TEXT]
    reader.close()
    transport.close()
