import feedparser
import sqlalchemy as sa

from pipeline.core.db import make_engine
from pipeline.core.messages import Outlet
from processors.stories import alert_for
from sinks.alert_feed import AlertFeedSink, AtomFeedOptions, alerts
from tests.support.messages import make_article, make_classified


def make_sink(database_url, tmp_path, **settings):
    engine = make_engine(database_url)
    sink = AlertFeedSink(engine, AtomFeedOptions(path=str(tmp_path / "alerts.atom"), **settings))
    sink.setup()
    return sink, engine


def test_an_empty_feed_is_valid_atom_from_the_start(database_url, tmp_path):
    make_sink(database_url, tmp_path)
    parsed = feedparser.parse((tmp_path / "alerts.atom").read_bytes())
    assert not parsed.bozo and parsed.version == "atom10" and parsed.entries == []


def test_one_entry_per_story_even_when_delivered_again(database_url, tmp_path):
    sink, engine = make_sink(database_url, tmp_path)
    first = alert_for(make_classified(make_article("https://news.example/bridge")))
    second = alert_for(make_classified(make_article("https://news.example/yuan")))
    sink.add(first)
    sink.add(second)
    sink.flush()
    sink.add(alert_for(make_classified(make_article("https://news.example/bridge"))))  # a replay
    sink.flush()

    parsed = feedparser.parse((tmp_path / "alerts.atom").read_bytes())
    assert not parsed.bozo
    assert sorted(entry.link for entry in parsed.entries) == ["https://news.example/bridge", "https://news.example/yuan"]
    entry = parsed.entries[0]
    assert {tag.term for tag in entry.tags} >= {"forestry_timber", "RU-IRK", "CN-HL"}
    with engine.connect() as connection:
        stored = connection.execute(sa.select(alerts.c.alerted_at).where(alerts.c.id == first.id)).scalar_one()
    assert stored == first.alerted_at


def test_the_feed_keeps_only_the_newest_entries(database_url, tmp_path):
    sink, _ = make_sink(database_url, tmp_path, max_entries=3)
    for number in range(5):
        sink.add(alert_for(make_classified(make_article(f"https://news.example/story-{number}"))))
        sink.flush()
    parsed = feedparser.parse((tmp_path / "alerts.atom").read_bytes())
    assert [entry.link for entry in parsed.entries] == [f"https://news.example/story-{n}" for n in (4, 3, 2)]


def test_a_story_update_replaces_its_entry_and_a_late_older_version_is_ignored(database_url, tmp_path):
    sink, engine = make_sink(database_url, tmp_path)
    first = alert_for(make_classified(make_article("https://news.example/bridge")))
    other = Outlet(article_id="b" * 32, source="border-herald", url="https://herald.example/a/1", title="Bridge deal")
    updated = first.model_copy(update={"version": 2, "outlets": [*first.outlets, other]})
    for alert in (first, updated, first):  # the last one: version 1 delivered again, late
        sink.add(alert)
        sink.flush()

    parsed = feedparser.parse((tmp_path / "alerts.atom").read_bytes())
    assert not parsed.bozo and len(parsed.entries) == 1
    assert "also reported by: border-herald (https://herald.example/a/1)" in parsed.entries[0].summary
    with engine.connect() as connection:
        assert connection.execute(sa.select(alerts.c.version)).scalar_one() == 2
