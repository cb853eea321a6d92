"""The feeds as a subscriber sees them in a real reader: Debian's newsboat (2.21, which reads
Atom and RSS; it cannot parse JSON Feed at all, whose files the JSON Feed schema tests check)."""

from __future__ import annotations

import pytest

from pipeline.core.db import make_engine
from pipeline.core.settings import AmurSettings
from pipeline.core.subscriptions import SubscriptionsWatcher
from sinks.subscription_feeds import FeedsOptions
from tests.support.feeds import StoredFeeds
from tests.support.messages import make_story
from tests.support.newsboat import first_entry_as_shown

pytestmark = pytest.mark.reader

NAMES = {"RU-PRI": "Primorsky Krai", "CN-HL": "Heilongjiang"}
STORY = make_story(
    "https://a.example/power", regions=["RU-PRI", "CN-HL"], sectors=["energy", "transport_logistics"], level="interregional",
    score=0.9, language="en", sources=["tass", "xinhua"], names=NAMES,
    title="Primorye & Heilongjiang agree a <b>power</b> line", summary="The two regions signed a grid link on Tuesday.",
)


def test_a_reader_shows_the_names_sectors_and_links_of_an_entry_titled_with_amp_and_lt(tmp_path):
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
    shown = first_entry_as_shown(tmp_path / "feeds" / "heilongjiang.atom", tmp_path)

    assert "Title: Primorye & Heilongjiang agree a <b>power</b> line" in shown  # the title as written, as text
    assert "Feed: Amur" in shown
    for line in ("Russian side", "Chinese side", "Regions", "Sectors"):
        assert line in shown, shown
    assert "Primorsky Krai" in shown and "Heilongjiang" in shown and "RU-PRI" not in shown
    assert "energy, transport and logistics" in shown
    assert "The two regions signed a grid link on Tuesday." in shown
    assert "https://a.example/power" in shown
