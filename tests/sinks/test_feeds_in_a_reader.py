"""The feeds as a subscriber sees them in real readers: the Atom feed in Debian's newsboat (2.21,
which cannot parse JSON Feed), the JSON Feed through the ``reader`` library (the feed reader
library apps are built on), fetched over HTTP from loopback."""

from __future__ import annotations

import pytest
from reader import make_reader

from pipeline.core.db import make_engine
from pipeline.core.settings import AmurSettings
from pipeline.core.subscriptions import SubscriptionsWatcher
from sinks.subscription_feeds import FeedsOptions
from tests.support.feeds import StoredFeeds
from tests.support.local_site import LocalSite
from tests.support.messages import make_story
from tests.support.newsboat import first_entry_as_shown

pytestmark = pytest.mark.reader

NAMES = {"RU-PRI": "Primorsky Krai", "CN-HL": "Heilongjiang"}
STORY = make_story(
    "https://a.example/power", regions=["RU-PRI", "CN-HL"], sectors=["energy", "transport_logistics"], level="interregional",
    score=0.9, language="en", sources=["tass", "xinhua"], names=NAMES,
    title="Primorye & Heilongjiang agree a <b>power</b> line", summary="The two regions signed a grid link on Tuesday.",
)


def stored_feeds(tmp_path):
    """The heilongjiang subscription's Atom and JSON Feed files, holding STORY."""
    (tmp_path / "subscriptions.yaml").write_text(
        "subscriptions:\n  - name: heilongjiang\n    filters: {regions: [CN-HL]}\n    channels: [{type: atom}, {type: jsonfeed}]\n"
    )
    sink = StoredFeeds(
        make_engine(f"sqlite:///{tmp_path / 'amur.sqlite'}"), FeedsOptions(directory=str(tmp_path / "feeds")),
        SubscriptionsWatcher(tmp_path / "subscriptions.yaml", AmurSettings()),
    )
    sink.setup()
    sink.add(STORY)
    assert sink.flush() == []
    sink.close()
    return tmp_path / "feeds"


def test_a_reader_shows_the_names_sectors_and_links_of_an_entry_titled_with_amp_and_lt(tmp_path):
    feeds = stored_feeds(tmp_path)
    shown = first_entry_as_shown(feeds / "heilongjiang.atom", tmp_path)

    assert "Title: Primorye & Heilongjiang agree a <b>power</b> line" in shown  # the title as written, as text
    assert "Feed: Amur" in shown
    for line in ("Russian side", "Chinese side", "Regions", "Sectors"):
        assert line in shown, shown
    assert "Primorsky Krai" in shown and "Heilongjiang" in shown and "RU-PRI" not in shown
    assert "energy, transport and logistics" in shown
    assert "The two regions signed a grid link on Tuesday." in shown
    assert "https://a.example/power" in shown


def test_a_json_feed_reader_shows_the_title_as_written_and_the_story_s_names_sectors_and_links(tmp_path):
    feeds = stored_feeds(tmp_path)
    with LocalSite() as site:
        url = site.add("/feeds/heilongjiang.json", (feeds / "heilongjiang.json").read_bytes(), "application/feed+json")
        reader = make_reader(str(tmp_path / "reader.sqlite"))
        reader.add_feed(url)
        reader.update_feeds()
        [feed] = reader.get_feeds()
        [entry] = reader.get_entries()
        reader.close()

    assert feed.last_exception is None and feed.title.startswith("Amur: heilongjiang")
    assert entry.title == "Primorye & Heilongjiang agree a <b>power</b> line"  # the title as written, as text
    assert entry.link == "https://a.example/power"
    shown = {content.type: content.value for content in entry.content}
    for text in (shown["text/plain"], shown["text/html"]):
        assert "Primorsky Krai" in text and "Heilongjiang" in text and "RU-PRI" not in text
        assert "energy, transport and logistics" in text
        assert "The two regions signed a grid link on Tuesday." in text

