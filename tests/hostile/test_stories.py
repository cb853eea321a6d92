"""A hostile feed against the stories stage: copies by the hundred, and a story too big to
send, must neither stop alerting nor grow without bound (texts in our own words)."""

from __future__ import annotations

import threading
from pathlib import Path

from pipeline.core.db import make_engine
from pipeline.core.messages import Alert, DeadLetter, decode, encode
from pipeline.core.settings import AmurSettings, StorySettings
from pipeline.core.topology import Topics
from pipeline.core.transport.embedded import EmbeddedTransport
from processors.gazetteer import load_gazetteer
from processors.stories import MAX_OUTLETS, StoryIndex, StoryStage
from tests.support.messages import make_article, make_classified
from tests.support.stages import stage_context

GAZETTEER = load_gazetteer(Path(__file__).resolve().parents[2] / "config" / "gazetteer")
TEXT = ("The Irkutsk region government and Heilongjiang province signed an agreement on timber processing. "
        "A joint sawmill will open near the border next spring, the two governments said.")


def _copies(count: int, source: str) -> list:
    return [
        make_classified(make_article(f"https://{source}.example/copy/{number}", source=source, text=TEXT,
                                     title=f"Timber accord, copy {number} " + "of a very long headline " * 40))
        for number in range(count)
    ]


def _stage(tmp_path: Path, log: EmbeddedTransport, topics: Topics) -> StoryStage:
    engine = make_engine(f"sqlite:///{tmp_path / 'amur.sqlite'}")
    settings = AmurSettings(batch_size=500)
    stage = StoryStage(stage_context(log, topics, "stories", settings=settings), index=StoryIndex(engine, StorySettings(), GAZETTEER))
    stage.setup()
    return stage


def _read(log: EmbeddedTransport, topics: Topics) -> tuple[list[Alert], list[DeadLetter]]:
    reader = log.consumer("reader", [topics.alerts, topics.dlq])
    records = reader.poll(1000, 0.1)
    reader.close()
    return ([decode(Alert, r.value) for r in records if r.topic == topics.alerts],
            [decode(DeadLetter, r.value) for r in records if r.topic == topics.dlq])


def test_120_copies_from_two_feeds_make_one_bounded_story(tmp_path):
    topics = Topics("t.")
    log = EmbeddedTransport(str(tmp_path / "log.sqlite"))
    log.ensure_topics(topics.all())
    producer = log.producer()
    for message in _copies(60, "mirror-a") + _copies(60, "mirror-b"):
        producer.produce(topics.classified, *encode(message))
    producer.flush()
    stage = _stage(tmp_path, log, topics)
    assert stage.run(threading.Event(), once=True) == 120
    stage.close()

    alerts, letters = _read(log, topics)
    assert letters == [] and len(alerts) == 120 and len({alert.id for alert in alerts}) == 1
    newest = alerts[-1]
    assert len(newest.outlets) == MAX_OUTLETS and newest.outlets_omitted == 70
    assert newest.version == MAX_OUTLETS  # copies past the cap that add nothing make no new version
    assert all(len(outlet.title) <= 500 for outlet in newest.outlets)
    # What the sinks keep per version (alert_versions) stays well under a megabyte for the story.
    versions = {alert.version: len(encode(alert)[1]) for alert in alerts}
    assert sum(versions.values()) < 1_000_000
    assert max(versions.values()) < 64_000


def test_a_story_too_big_for_its_topic_is_a_dead_letter_and_the_next_story_flows(tmp_path):
    topics = Topics("t.")
    log = EmbeddedTransport(str(tmp_path / "log.sqlite"))
    log.ensure_topics([topics.alerts], max_message_bytes=2_048)  # a topic configured small
    log.ensure_topics(topics.all())
    producer = log.producer()
    big = make_classified(make_article("https://mirror.example/big", text=TEXT, title="Timber " + "accord " * 400))
    small = make_classified(make_article("https://other.example/small", text="Amur Oblast and Jilin signed a ferry deal.",
                                         title="Ferry deal"))
    small = small.model_copy(update={"entities": []})
    for message in (big, small):
        producer.produce(topics.classified, *encode(message))
    producer.flush()
    stage = _stage(tmp_path, log, topics)
    assert stage.run(threading.Event(), once=True) == 2  # handled once each, not retried forever
    stage.close()

    alerts, letters = _read(log, topics)
    assert [alert.id for alert in alerts] == [small.id]
    assert len(letters) == 1 and letters[0].key == big.id
    assert f"story {big.id} version 1 would be a record of" in letters[0].reason and "t.alerts accepts" in letters[0].reason
