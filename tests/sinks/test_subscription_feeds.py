"""Feeds per subscription: the matching stories as Atom 1.0 and JSON Feed 1.1 files."""

from __future__ import annotations

import json
import logging
import stat
import time

import feedparser
import jsonschema
import pytest

from pipeline.core.db import make_engine
from pipeline.core.settings import AmurSettings
from pipeline.core.subscriptions import SubscriptionsWatcher
from sinks.subscription_feeds import FeedsOptions
from tests.support.feeds import StoredFeeds
from tests.support.messages import make_story

NAMES = {"RU-PRI": "Primorsky Krai", "CN-HL": "Heilongjiang", "CN-JL": "Jilin", "RU-AMU": "Amur Oblast"}
POWER_LINE = make_story(
    "https://a.example/power", regions=["RU-PRI", "CN-HL"], sectors=["energy"], level="interregional", score=0.9,
    language="en", sources=["tass", "xinhua"], title="Primorye and Heilongjiang agree a <script>alert(1)</script> power line",
    summary="The two regions signed on Tuesday.", names=NAMES,
)
TOUR_BUSES = make_story(
    "https://a.example/buses", regions=["RU-PRI", "CN-JL"], sectors=["tourism"], level="municipal", score=0.6,
    language="ru", sources=["vl-news"], title="Туристические автобусы пойдут в Хуньчунь", names=NAMES,
)
RAIL_BRIDGE = make_story(
    "https://a.example/bridge", regions=["RU-AMU", "CN-HL"], sectors=["transport"], level="national", score=0.4,
    language="en", sources=["kremlin"], title="A second rail bridge over the Amur", names=NAMES,
)

SUBSCRIPTIONS = """\
subscriptions:
  - name: all
    filters: {min_score: 0.5}
  - name: heilongjiang
    filters: {regions: [CN-HL]}
    channels: [{type: atom}]
"""

# What JSON Feed 1.1 requires (https://www.jsonfeed.org/version/1.1/), as a schema.
JSON_FEED_1_1 = {
    "type": "object",
    "required": ["version", "title", "items"],
    "properties": {
        "version": {"const": "https://jsonfeed.org/version/1.1"},
        "title": {"type": "string"},
        "feed_url": {"type": "string", "format": "uri"},
        "authors": {"type": "array", "items": {"type": "object", "minProperties": 1}},
        "items": {"type": "array", "items": {
            "type": "object",
            "required": ["id"],
            "anyOf": [{"required": ["content_text"]}, {"required": ["content_html"]}],
            "properties": {
                "id": {"type": "string"}, "url": {"type": "string"}, "title": {"type": "string"},
                "content_text": {"type": "string"}, "summary": {"type": "string"},
                "date_published": {"type": "string", "format": "date-time"},
                "date_modified": {"type": "string", "format": "date-time"},
                "tags": {"type": "array", "items": {"type": "string"}}, "language": {"type": "string"},
            },
        }},
    },
}


@pytest.fixture
def feeds(database_url, tmp_path):
    subscriptions = tmp_path / "subscriptions.yaml"
    subscriptions.write_text(SUBSCRIPTIONS)
    options = FeedsOptions(directory=str(tmp_path / "feeds"), base_url="https://amur.example.org/feeds/")
    sink = StoredFeeds(make_engine(database_url), options, SubscriptionsWatcher(subscriptions, AmurSettings()))
    sink.setup()
    for story in (POWER_LINE, TOUR_BUSES, RAIL_BRIDGE):
        sink.add(story)
    assert sink.flush() == []
    yield sink, tmp_path / "feeds", subscriptions
    sink.close()


def test_each_subscription_gets_exactly_its_stories_as_atom(feeds):
    _, directory, _ = feeds
    everything = feedparser.parse((directory / "all.atom").read_bytes())
    heilongjiang = feedparser.parse((directory / "heilongjiang.atom").read_bytes())
    assert not everything.bozo and everything.version == "atom10" and not heilongjiang.bozo
    assert sorted(entry.link for entry in everything.entries) == ["https://a.example/buses", "https://a.example/power"]
    # No min_score in that subscription: the low-scoring bridge story is in it too, newest first.
    assert [entry.link for entry in heilongjiang.entries] == ["https://a.example/bridge", "https://a.example/power"]
    assert not (directory / "heilongjiang.json").exists()  # that subscription asked for Atom only
    assert everything.feed.links[0].href == "https://amur.example.org/feeds/all.atom"
    assert everything.feed.author == "Amur news monitor"


def test_an_entry_names_parties_and_regions_and_lists_every_outlet(feeds):
    _, directory, _ = feeds
    raw = (directory / "heilongjiang.atom").read_text(encoding="utf-8")
    (entry,) = [entry for entry in feedparser.parse(raw).entries if entry.link == "https://a.example/power"]
    (content,) = entry.content
    page = content.value
    assert content.type == "text/html"  # a reader lays it out: a table of facts, lists, links
    assert "<th>Russian side</th><td>Primorsky Krai</td>" in page.replace(' align="left"', "")
    assert "<th>Chinese side</th><td>Heilongjiang</td>" in page.replace(' align="left"', "")
    assert "CN-HL" not in page
    assert "<td>energy</td>" in page and "<td>interregional</td>" in page and "<td>0.90</td>" in page
    assert 'xinhua: <a href="https://a.example/power/1">' in page
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page  # the title an outlet gave, as text
    assert entry.summary == "The two regions signed on Tuesday."  # the lead, not page clutter
    assert "<script>" not in raw and "&lt;script&gt;" in raw  # web text is escaped


def test_a_json_feed_item_carries_the_story_as_html_and_as_text(feeds):
    _, directory, _ = feeds
    document = json.loads((directory / "all.json").read_text(encoding="utf-8"))
    (item,) = [item for item in document["items"] if item["url"] == "https://a.example/power"]
    assert "Russian side: Primorsky Krai" in item["content_text"]
    assert "<td>Primorsky Krai</td>" in item["content_html"] and "<script>" not in item["content_html"]


def test_the_json_feed_is_valid_json_feed_1_1(feeds):
    _, directory, _ = feeds
    document = json.loads((directory / "all.json").read_text(encoding="utf-8"))
    jsonschema.validate(document, JSON_FEED_1_1, format_checker=jsonschema.FormatChecker())
    assert document["feed_url"] == "https://amur.example.org/feeds/all.json"
    languages = {item["url"]: item.get("language") for item in document["items"]}
    assert languages == {"https://a.example/power": "en", "https://a.example/buses": "ru"}


def test_feed_files_are_readable_by_other_users(feeds):
    _, directory, _ = feeds
    for path in directory.iterdir():
        assert stat.S_IMODE(path.stat().st_mode) == 0o644, path


def test_an_edited_subscriptions_file_is_applied_and_a_bad_edit_keeps_the_old_ones(feeds, caplog):
    sink, directory, subscriptions = feeds
    time.sleep(0.01)
    subscriptions.write_text(SUBSCRIPTIONS + "  - name: jilin\n    filters: {regions: [CN-JL]}\n")
    sink.add(RAIL_BRIDGE)
    sink.flush()
    assert [entry.link for entry in feedparser.parse((directory / "jilin.atom").read_bytes()).entries] == [
        "https://a.example/buses"
    ]
    time.sleep(0.01)
    subscriptions.write_text("subscriptions:\n  - name: Bad Name\n")
    with caplog.at_level(logging.ERROR, logger="pipeline.core.subscriptions"):
        sink.add(RAIL_BRIDGE)
        sink.flush()
    assert "subscriptions not reloaded" in caplog.text and "subscriptions.0.name" in caplog.text
    assert [subscription.name for subscription in sink.subscriptions.current()] == ["all", "heilongjiang", "jilin"]


def test_a_batch_rewrites_only_the_feeds_of_the_subscriptions_its_stories_match(feeds):
    """Files are replaced whole (a new inode each time): the untouched feed keeps its inode."""
    sink, directory, _ = feeds
    before = {path.name: path.stat().st_ino for path in directory.iterdir()}
    sink.add(RAIL_BRIDGE.model_copy(update={"version": 2, "score": 0.45}))  # Heilongjiang's, under "all"'s minimum
    sink.flush()
    after = {path.name: path.stat().st_ino for path in directory.iterdir()}
    assert after["heilongjiang.atom"] != before["heilongjiang.atom"]
    assert (after["all.atom"], after["all.json"]) == (before["all.atom"], before["all.json"])
