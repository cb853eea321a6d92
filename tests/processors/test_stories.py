"""Story clustering over a real database: copies from several outlets are one story, updated."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest

from pipeline.db import make_engine
from pipeline.messages import Alert, Classified, DeadLetter, decode, encode
from pipeline.settings import StorySettings
from pipeline.topology import Topics
from pipeline.transport.embedded import EmbeddedTransport
from processors.gazetteer import load_gazetteer
from processors.stories import StoryIndex, StoryStage, shingles, signature
from tests.support.messages import make_article, make_classified

STORIES = Path(__file__).resolve().parents[1] / "resources" / "stories"
GAZETTEER = load_gazetteer(Path(__file__).resolve().parents[2] / "config" / "gazetteer")
CORRIDOR = (STORIES / "grain-corridor.txt").read_text(encoding="utf-8")
TOURISM = (STORIES / "tourism-season.txt").read_text(encoding="utf-8")
TITLE = "Amur Oblast and Heilongjiang agree a year-round grain corridor"


def copy_of(text: str, *, before: str = "", after: str = "", drop: int | None = None) -> str:
    paragraphs = text.split("\n\n")
    if drop is not None:
        del paragraphs[drop]
    return "\n\n".join(part for part in (before, *paragraphs, after) if part)


def reported(source: str, url: str, text: str, title: str = TITLE, score: float = 0.9) -> Classified:
    return make_classified(make_article(url, source=source, title=title, text=text), score=score)


THREE_OUTLETS = [
    reported("amur-pravda", "https://amurpravda.example/news/grain-corridor", CORRIDOR),
    reported("far-east-wire", "https://fewire.example/2026/12/01/amur-grain", copy_of(
        CORRIDOR, before="Far East Wire | Business | Subscribe to our morning briefing",
        after="Related: Heihe port reports record soybean arrivals. Follow us on Telegram.",
    ), score=0.95),
    reported("border-herald", "https://herald.example/a/77213", copy_of(CORRIDOR, drop=5),
             title="Grain will cross the Amur all year: regions sign terminal deal"),
]


@pytest.fixture
def index(database_url):
    engine = make_engine(database_url)
    story_index = StoryIndex(engine, StorySettings(), GAZETTEER)
    story_index.setup()
    yield story_index
    engine.dispose()


def test_copies_rewrites_and_a_cut_copy_from_three_outlets_are_one_story(index):
    alerts = index.add(THREE_OUTLETS)

    assert len({alert.id for alert in alerts}) == 1
    story = alerts[-1]
    assert story.id == THREE_OUTLETS[0].id and story.version == 3
    assert [outlet.source for outlet in story.outlets] == ["amur-pravda", "far-east-wire", "border-herald"]
    assert story.title == TITLE and story.source == "amur-pravda"  # the lead is the first report
    assert story.score == 0.95
    assert set(story.regions) >= {"RU-IRK", "CN-HL"}


def test_a_different_story_about_the_same_two_regions_stays_apart(index):
    corridor = index.add(THREE_OUTLETS[:1])[0]
    tourism = index.add([reported("amur-pravda", "https://amurpravda.example/news/tourism", TOURISM,
                                  title="Amur Oblast and Heilongjiang open a joint tourism season")])[0]
    assert tourism.id != corridor.id and tourism.version == 1


def test_a_replayed_article_changes_nothing(index):
    first = index.add(THREE_OUTLETS[:2])[-1]
    replayed = index.add(THREE_OUTLETS[1:2])[0]
    assert replayed == first and replayed.version == 2


def test_concurrent_members_do_not_open_one_story_twice(database_url):
    """Two members, each with its own connection pool, get copies of one story at once."""
    members = [StoryIndex(make_engine(database_url), StorySettings(), GAZETTEER) for _ in range(2)]
    members[0].setup()
    start = threading.Barrier(2)
    results: dict[int, Alert] = {}

    def add(number: int) -> None:
        start.wait()
        results[number] = members[number].add([THREE_OUTLETS[number]])[0]

    threads = [threading.Thread(target=add, args=(n,)) for n in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert results[0].id == results[1].id
    assert sorted(alert.version for alert in results.values()) == [1, 2]
    for member in members:
        member.engine.dispose()


def test_shingles_and_signatures():
    assert shingles("The grain corridor opens") == {"the grain corridor", "grain corridor opens"}
    assert len(shingles("黑龙江省与阿穆尔州签署协议")) == 11  # character 3-grams for Chinese
    assert signature(CORRIDOR).jaccard(signature(copy_of(CORRIDOR, drop=5))) > 0.7
    assert signature(CORRIDOR).jaccard(signature(TOURISM)) < 0.1


def test_the_stage_alerts_cooperation_stories_only_and_dead_letters_poison(tmp_path):
    topics = Topics("t.")
    log = EmbeddedTransport(str(tmp_path / "log.sqlite"))
    log.ensure_topics(topics.all())
    producer = log.producer()
    unrelated = make_classified(make_article("https://news.example/football", text="Football."), cooperation=False)
    for message in [*THREE_OUTLETS, unrelated]:
        producer.produce(topics.classified, *encode(message))
    producer.produce(topics.classified, b"poison", b"{broken")
    producer.flush()
    engine = make_engine(f"sqlite:///{tmp_path / 'amur.sqlite'}")
    stage = StoryStage(log, topics, "stories", 100, StoryIndex(engine, StorySettings(), GAZETTEER), min_score=0.5)
    stage.setup()

    assert stage.run(threading.Event(), once=True) == 5
    stage.close()

    reader = log.consumer("reader", [topics.alerts, topics.dlq])
    records = reader.poll(100, 0.1)
    alerts = [decode(Alert, r.value) for r in records if r.topic == topics.alerts]
    letters = [decode(DeadLetter, r.value) for r in records if r.topic == topics.dlq]
    assert [alert.version for alert in alerts] == [1, 2, 3] and len({alert.id for alert in alerts}) == 1
    assert [(letter.stage, letter.key) for letter in letters] == [("stories", "poison")]
