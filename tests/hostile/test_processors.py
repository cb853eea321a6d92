"""An article whose classified record can never fit its topic is a dead letter, not a batch
retried forever; the articles beside it are classified (texts in our own words)."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest

from pipeline.core.messages import Classified, DeadLetter, decode, encode
from pipeline.core.settings import ModelSettings
from pipeline.core.topology import Topics
from pipeline.core.transport.embedded import EmbeddedTransport
from processors.analyze import Analyzer
from processors.stage import ClassifyStage
from tests.support.messages import make_article
from tests.support.stages import stage_context

REPO = Path(__file__).resolve().parents[2]


@pytest.mark.slow
def test_an_article_too_big_to_pass_on_is_a_dead_letter_and_the_rest_flows(tmp_path):
    topics = Topics("p.")
    log = EmbeddedTransport(str(tmp_path / "log.sqlite"))
    log.ensure_topics([topics.classified], max_message_bytes=8_192)  # the next topic configured small
    log.ensure_topics(topics.all())
    sentence = "The Amur Oblast government and Heilongjiang Province signed a protocol on a grain terminal. "
    huge = make_article("https://mirror.example/huge", text=sentence * 200)
    small = make_article("https://news.example/small", text=sentence)
    producer = log.producer()
    for article in (huge, small):
        producer.produce(topics.articles, *encode(article))
    producer.flush()
    analyzer = Analyzer.from_settings(ModelSettings(
        gazetteer_dir=str(REPO / "config" / "gazetteer"), classifier_config=str(REPO / "config" / "classifier.yaml"),
        languages_dir=str(REPO / "config" / "languages"),
    ))
    stage = ClassifyStage(stage_context(log, topics, "processors"), analyzer=analyzer)
    assert stage.run(threading.Event(), once=True) == 2  # handled once each, not retried forever
    stage.close()

    reader = log.consumer("reader", [topics.classified, topics.dlq])
    records = reader.poll(100, 0.5)
    reader.close()
    assert [decode(Classified, r.value).id for r in records if r.topic == topics.classified] == [small.id]
    (letter,) = [decode(DeadLetter, r.value) for r in records if r.topic == topics.dlq]
    assert letter.key == huge.id and f"article {huge.id} would be a record of" in letter.reason
