"""Story clustering over a real database: copies from several outlets are one story, updated."""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from connectors.extract import extract_article
from pipeline.core.db import make_engine
from pipeline.core.messages import Alert, Classified, DeadLetter, Entity, decode, encode
from pipeline.core.settings import StorySettings
from pipeline.core.topology import Topics
from pipeline.core.transport.embedded import EmbeddedTransport
from processors.gazetteer import load_gazetteer
from processors.stories import (
    EventFacts,
    StoryIndex,
    StoryStage,
    entity_weight,
    event_facts,
    event_similarity,
    regions_of,
    shingles,
    signature,
)
from tests.support.messages import make_article, make_classified
from tests.support.stages import stage_context

STORIES = Path(__file__).resolve().parents[1] / "resources" / "stories"
RESOURCES_E2E = Path(__file__).resolve().parents[1] / "resources" / "e2e"
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


def stories_of(index: StoryIndex, results) -> list[Alert]:
    """The story each article went to, in order."""
    return [placement.story for placement in index.add(results)]


def test_copies_rewrites_and_a_cut_copy_from_three_outlets_are_one_story(index):
    alerts = stories_of(index, THREE_OUTLETS)

    assert len({alert.id for alert in alerts}) == 1
    story = alerts[-1]
    assert story.id == THREE_OUTLETS[0].id and story.version == 3
    assert [outlet.source for outlet in story.outlets] == ["amur-pravda", "far-east-wire", "border-herald"]
    assert story.title == TITLE and story.source == "amur-pravda"  # the lead is the first report
    assert story.score == 0.95
    assert set(story.regions) >= {"RU-IRK", "CN-HL"}


def test_a_different_story_about_the_same_two_regions_stays_apart(index):
    corridor = stories_of(index, THREE_OUTLETS[:1])[0]
    tourism = stories_of(index, [reported("amur-pravda", "https://amurpravda.example/news/tourism", TOURISM,
                                  title="Amur Oblast and Heilongjiang open a joint tourism season")])[0]
    assert tourism.id != corridor.id and tourism.version == 1


def test_a_replayed_article_changes_nothing(index):
    first = stories_of(index, THREE_OUTLETS[:2])[-1]
    replayed = stories_of(index, THREE_OUTLETS[1:2])[0]
    assert replayed == first and replayed.version == 2


def test_concurrent_members_do_not_open_one_story_twice(database_url):
    """Two members, each with its own connection pool, get copies of one story at once."""
    members = [StoryIndex(make_engine(database_url), StorySettings(), GAZETTEER) for _ in range(2)]
    members[0].setup()
    start = threading.Barrier(2)
    results: dict[int, Alert] = {}

    def add(number: int) -> None:
        start.wait()
        results[number] = stories_of(members[number], [THREE_OUTLETS[number]])[0]

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
    stage = StoryStage(stage_context(log, topics, "stories"), index=StoryIndex(engine, StorySettings(), GAZETTEER))
    stage.setup()

    assert stage.run(threading.Event(), once=True) == 5
    stage.close()

    reader = log.consumer("reader", [topics.alerts, topics.dlq])
    records = reader.poll(100, 0.1)
    alerts = [decode(Alert, r.value) for r in records if r.topic == topics.alerts]
    letters = [decode(DeadLetter, r.value) for r in records if r.topic == topics.dlq]
    assert [alert.version for alert in alerts] == [1, 2, 3] and len({alert.id for alert in alerts}) == 1
    assert [(letter.stage, letter.key) for letter in letters] == [("stories", "poison")]


# --- one event across languages ------------------------------------------------------------

CABLE_CAR = STORIES / "cable-car"
SIGNED_ON = datetime(2026, 11, 19, 9, 0, tzinfo=UTC)


def _report(analyzer, language: str, published_at: datetime, fetched_at: datetime | None = None, name: str = "") -> Classified:
    title, _, text = (CABLE_CAR / f"{language}.txt").read_text(encoding="utf-8").partition("\n\n")
    article = make_article(
        f"https://{language}.news.example/cable-car{name}", source=f"{language}-outlet", title=title, text=text,
        language=language, published_at=published_at, fetched_at=fetched_at or published_at + timedelta(hours=1),
    )
    return analyzer.analyze([article])[0]


@pytest.mark.slow
def test_reports_of_one_event_in_three_languages_are_one_story(index, analyzer):
    reports = [
        _report(analyzer, "ru", SIGNED_ON),
        _report(analyzer, "zh", SIGNED_ON + timedelta(hours=5)),
        _report(analyzer, "en", SIGNED_ON + timedelta(days=2)),
    ]
    alerts = stories_of(index, reports)
    assert len({alert.id for alert in alerts}) == 1 and alerts[-1].version == 3
    assert [outlet.source for outlet in alerts[-1].outlets] == ["ru-outlet", "zh-outlet", "en-outlet"]


@pytest.mark.slow
def test_the_same_parties_and_act_a_year_apart_are_two_events(index, analyzer):
    first = stories_of(index, [_report(analyzer, "ru", SIGNED_ON)])[0]
    a_year_later = stories_of(index, [_report(analyzer, "zh", SIGNED_ON + timedelta(days=365))])[0]
    assert a_year_later.id != first.id and a_year_later.version == 1


@pytest.mark.slow
def test_a_backfill_groups_articles_by_publication_time_not_arrival(index, analyzer):
    """A replay archive read today: the reports of 2024 join each other, not today's report."""
    today = datetime.now(UTC)
    old = stories_of(index, [
        _report(analyzer, "ru", SIGNED_ON - timedelta(days=700), fetched_at=today, name="-2024"),
        _report(analyzer, "en", SIGNED_ON - timedelta(days=699), fetched_at=today, name="-2024"),
    ])
    new = stories_of(index, [_report(analyzer, "zh", today - timedelta(hours=2), fetched_at=today)])[0]
    assert old[0].id == old[1].id and new.id != old[0].id


def test_an_event_matches_on_specific_shared_entities_figures_and_sectors():
    def facts(*entities, money=(), sectors=()):
        return EventFacts(frozenset(entities), frozenset(money), frozenset(sectors))

    def weight(entity_id):
        return entity_weight(GAZETTEER, entity_id)

    bridge = facts("RU-AMU", "CN-HL", "city:ru:blagoveshchensk", "city:cn:heihe", sectors={"transport_logistics"})
    assert event_similarity(facts("city:cn:heihe", "CN-HL", sectors={"transport_logistics"}), bridge, weight) >= StorySettings().event_threshold
    # One region, or the two presidents' offices alone with nothing else, do not make one event.
    assert event_similarity(facts("CN-HL"), bridge, weight) == 0.0
    assert event_similarity(facts("org:ru-president"), facts("org:ru-president", "CN-SH"), weight) == 0.0
    # A shared money figure counts; with no sector in common, two deals of the same parties.
    deal = facts("org:gazprom", "org:cnpc", "RU-AMU", money={(4e11, "USD")}, sectors={"energy"})
    same_deal = facts("org:gazprom", "org:cnpc", money={(4e11, "USD")}, sectors={"energy"})
    other_field = facts("org:gazprom", "org:cnpc", sectors={"education"})
    assert event_similarity(same_deal, deal, weight) > event_similarity(deal, deal, weight) - 0.01 > 0.7
    assert event_similarity(other_field, deal, weight) == 0.0
    # One terminal, reported once for its trade and once for its energy cargo: a sector in common is enough.
    terminal = ("RU-YEV", "CN-HL", "city:ru:nizhneleninskoye", "city:cn:tongjiang")
    assert event_similarity(facts(*terminal, sectors={"trade", "investment", "transport_logistics"}),
                            facts(*terminal, sectors={"energy", "transport_logistics"}), weight) >= StorySettings().event_threshold
    assert weight("org:ru-president") < weight("RU-AMU") < weight("city:cn:heihe")
    assert weight("org:cn-mfa") == weight("org:ru-president")  # the ministries speak on every event
    # The two leaders in a capital: a summit's events all name them; only sectors tell them apart.
    leaders = ("org:ru-president", "org:cn-president", "CN-BJ")
    assert event_similarity(facts(*leaders), facts(*leaders, sectors={"culture_humanitarian"}), weight) == 0.0
    assert event_similarity(facts(*leaders, sectors={"energy"}), facts(*leaders, sectors={"energy"}), weight) > 1.0


def test_a_city_brings_its_region_to_the_facts_of_an_event():
    """One report says Harbin, another Heilongjiang: they name the same place."""
    text = "Harbin and Khabarovsk signed a river port accord."
    result = _mentioning(text, ("Harbin", "city:cn:harbin", "CN"), ("Khabarovsk", "city:ru:khabarovsk", "RU"))
    assert event_facts(result, GAZETTEER).entities == {"city:cn:harbin", "CN-HL", "city:ru:khabarovsk", "RU-KHA"}


# --- regions: parties, not the places a report mentions in passing ------------------------------

def _mentioning(text: str, *names: tuple[str, str, str], title: str = "") -> Classified:
    """An article whose text names each (words, canonical id, country) where the words stand."""
    entities = [
        Entity(text=words, label="GPE", start=text.index(words), end=text.index(words) + len(words), canonical_id=canonical_id, country=country)
        for words, canonical_id, country in names
    ]
    classified = make_classified(make_article("https://news.example/regions", title=title, text=text))
    verdict = classified.classification.model_copy(update={"russian_parties": [], "chinese_parties": []})
    return classified.model_copy(update={"entities": entities, "classification": verdict})


def test_a_dateline_and_a_capital_standing_for_its_state_make_no_region():
    text = ("MOSCOW, March 3 /TASS/ - Khabarovsk and Harbin signed a river port accord; "
            "Moscow and Beijing welcomed it.")
    result = _mentioning(text, ("MOSCOW", "RU-MOW", "RU"), ("Khabarovsk", "city:ru:khabarovsk", "RU"),
                         ("Harbin", "city:cn:harbin", "CN"), ("Moscow and", "RU-MOW", "RU"), ("Beijing", "CN-BJ", "CN"))
    assert regions_of(result, GAZETTEER) == ["RU-KHA", "CN-HL"]


def test_studios_of_a_video_link_make_no_region():
    text = "Amur Oblast and Heilongjiang opened the bridge by video link from studios in Moscow, Vladivostok and Beijing."
    result = _mentioning(text, ("Amur Oblast", "RU-AMU", "RU"), ("Heilongjiang", "CN-HL", "CN"), ("Moscow", "RU-MOW", "RU"),
                         ("Vladivostok", "city:ru:vladivostok", "RU"), ("Beijing", "CN-BJ", "CN"))
    assert regions_of(result, GAZETTEER) == ["RU-AMU", "CN-HL"]


def test_a_university_gives_its_region():
    result = _mentioning("Harbin Institute of Technology and Ural Federal University signed an exchange agreement.",
                         ("Harbin Institute of Technology", "org:hit", "CN"), ("Ural Federal University", "org:urfu", "RU"))
    assert regions_of(result, GAZETTEER) == ["CN-HL", "RU-SVE"]


def test_a_capital_among_the_parties_is_its_region():
    """The city of Moscow's own government is a party (the classifier decides so), and its region counts."""
    result = _mentioning("The Moscow city government and Harbin agreed on a metro exchange.", ("Harbin", "city:cn:harbin", "CN"))
    result = result.model_copy(update={"classification": result.classification.model_copy(update={"russian_parties": ["RU-MOW"]})})
    assert regions_of(result, GAZETTEER) == ["RU-MOW", "CN-HL"]


@pytest.mark.slow
def test_two_deals_of_the_same_regions_on_one_day_in_one_language_stay_apart(index, analyzer):
    """The grain corridor and the bridge freight deal: Amur Oblast and Heilongjiang, Blagoveshchensk
    and Heihe, transport, the same morning; one story each. Their copies still join."""
    freight_page = extract_article((RESOURCES_E2E / "amur-heilongjiang-freight.html").read_text(encoding="utf-8"), "https://x.example/")
    corridor = make_article("https://amurpravda.example/corridor", title=TITLE, text=CORRIDOR, language="en",
                            published_at=SIGNED_ON, fetched_at=SIGNED_ON)
    freight = make_article("https://wire.example/freight", title=freight_page.title, text=freight_page.text, language="en",
                           published_at=SIGNED_ON, fetched_at=SIGNED_ON)
    mirror = freight.model_copy(update={"id": "a" * 32, "url": "https://mirror.example/freight", "source": "mirror"})
    first, second, copy = stories_of(index, analyzer.analyze([corridor, freight, mirror]))
    assert first.id != second.id and copy.id == second.id and copy.version == 2


def _in_english(url: str, text: str, title: str, acts: list[str]) -> Classified:
    names = [("Amur Oblast", "RU-AMU", "RU"), ("Blagoveshchensk", "city:ru:blagoveshchensk", "RU"), ("Heilongjiang", "CN-HL", "CN")]
    report = _reporting("en", url, text, *names, title=title)
    return report.model_copy(update={"classification": report.classification.model_copy(update={"acts": acts})})


def test_in_one_language_reports_of_one_visit_join_and_two_signings_stay_apart(index):
    """A visit happens once in a few days: two reports of it join, however unlike their
    headlines. Every visit signs several deals: two reports of signings need more."""
    visit = _in_english("https://a.example/visit", "Heilongjiang officials came to Blagoveshchensk to meet Amur Oblast leaders.",
                        "Heilongjiang delegation arrives in Blagoveshchensk", ["visit"])
    same_visit = _in_english("https://b.example/visit", "Amur Oblast received guests from Heilongjiang in Blagoveshchensk on Monday.",
                             "Amur hosts its neighbours for two days", ["visit", "talks"])
    signing = _in_english("https://c.example/deal", "In Blagoveshchensk, Amur Oblast and Heilongjiang signed a river port accord.",
                          "Amur Oblast and Heilongjiang sign a river port deal", ["signed"])
    other_signing = _in_english("https://d.example/deal", "Amur Oblast and Heilongjiang agreed new bus routes out of Blagoveshchensk.",
                                "Bus routes agreed across the river", ["signed"])
    first, second, third, fourth = stories_of(index, [visit, same_visit, signing, other_signing])
    assert first.id == second.id and second.version == 2
    assert len({first.id, third.id, fourth.id}) == 3



def test_in_one_language_a_report_naming_the_other_s_singular_act_second_joins_it(index):
    """One report leads with the opening of a route, another with the first cargo over it and
    names the opening after: one event. A shipment alone is no singular act, so a later cargo
    that opens nothing stays apart."""
    opening = _in_english("https://a.example/route", "Amur Oblast opened its market to Heilongjiang buyers via Blagoveshchensk.",
                          "Amur Oblast opens a route to Heilongjiang", ["opened"])
    first_cargo = _in_english("https://b.example/cargo", "The first Amur Oblast cargo left Blagoveshchensk for Heilongjiang after the route opened.",
                              "First cargo crosses from Blagoveshchensk", ["shipment", "opened"])
    later_cargo = _in_english("https://c.example/cargo", "Heilongjiang buyers took a second consignment from Amur Oblast via Blagoveshchensk.",
                              "A second consignment reaches its buyers", ["shipment"])
    first, second, third = stories_of(index, [opening, first_cargo, later_cargo])
    assert first.id == second.id and second.version == 2
    assert third.id != first.id


# --- merging: a report that shows two open stories are one event ------------------------------

def _reporting(language: str, url: str, text: str, *names: tuple[str, str, str], title: str) -> Classified:
    """A cooperation report in ``language`` naming each (words, canonical id, country), on the
    bridge day, about transport."""
    article = make_article(url, title=title, text=text, language=language, source=f"{language}-desk",
                           published_at=SIGNED_ON, fetched_at=SIGNED_ON + timedelta(hours=1))
    classified = make_classified(article)
    entities = [
        Entity(text=words, label="ORG", start=text.index(words), end=text.index(words) + len(words),
               canonical_id=canonical_id, country=country)
        for words, canonical_id, country in names
    ]
    verdict = classified.classification.model_copy(update={
        "sectors": ["transport_logistics"], "russian_parties": [], "chinese_parties": [],
    })
    return classified.model_copy(update={"entities": entities, "classification": verdict})


# The Russian desk names the Russian side, the Chinese desk the Chinese side: nothing in common.
RUSSIAN_SIDE = _reporting(
    "ru", "https://ru.desk.example/bridge", "Газпром и Амурская область открыли грузовой терминал у моста.",
    ("Газпром", "org:gazprom", "RU"), ("Амурская область", "RU-AMU", "RU"),
    title="Газпром и Амурская область открыли терминал",
)
CHINESE_SIDE = _reporting(
    "zh", "https://zh.desk.example/bridge", "黑河市与黑龙江省口岸部门启用大桥货运终端。",
    ("黑河市", "city:cn:heihe", "CN"), ("黑龙江省", "CN-HL", "CN"),
    title="黑河大桥货运终端启用",
)
# An English wire names both sides.
BOTH_SIDES = _reporting(
    "en", "https://en.wire.example/bridge",
    "Gazprom and Amur Oblast opened a freight terminal at the bridge with Heihe and Heilongjiang officials.",
    ("Gazprom", "org:gazprom", "RU"), ("Amur Oblast", "RU-AMU", "RU"), ("Heihe", "city:cn:heihe", "CN"),
    ("Heilongjiang", "CN-HL", "CN"),
    title="Bridge freight terminal opens between Amur Oblast and Heilongjiang",
)


def test_a_report_naming_what_two_stories_share_merges_them_into_the_older(index):
    russian, chinese = stories_of(index, [RUSSIAN_SIDE, CHINESE_SIDE])
    assert russian.id != chinese.id  # each desk's report alone shares no name with the other's

    (placement,) = index.add([BOTH_SIDES])
    survivor, (retired,) = placement.story, placement.retired
    assert survivor.id == russian.id and survivor.version == 2 and survivor.merged_from == [chinese.id]
    assert retired.id == chinese.id and retired.version == 2 and retired.merged_into == russian.id
    assert [(outlet.source, outlet.language) for outlet in survivor.outlets] == [
        ("ru-desk", "ru"), ("zh-desk", "zh"), ("en-desk", "en"),
    ]
    assert survivor.headline == BOTH_SIDES.article.title  # an English title, for the English reader
    assert survivor.title == RUSSIAN_SIDE.article.title  # the first article's own title stays

    # A replay of the merging report changes nothing and says the same again.
    assert index.add([BOTH_SIDES])[0] == placement
    # A later report of the retired story's side finds the survivor.
    later = CHINESE_SIDE.model_copy(update={
        "id": "c" * 32, "article": CHINESE_SIDE.article.model_copy(update={"id": "c" * 32, "url": "https://zh2.desk.example/bridge"}),
    })
    assert stories_of(index, [later])[0].id == russian.id


def test_a_story_reported_only_in_russian_is_headed_by_its_english_gist(index):
    (story,) = stories_of(index, [RUSSIAN_SIDE])
    assert story.headline == story.gist_en != "" and story.title == RUSSIAN_SIDE.article.title
