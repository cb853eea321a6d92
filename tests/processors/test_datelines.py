"""Datelines in the three languages, in our own words: where the report was filed is no party."""

import pytest

from processors.datelines import dateline_span, report_opening


@pytest.mark.parametrize(("text", "title", "dateline"), [
    ("MOSCOW, March 3 /TASS/ - The Amur region and Heilongjiang agreed ...", "", "MOSCOW, March 3 /TASS/"),
    ("KHABAROVSK/HARBIN, May 5 (Wire) - Officials on both banks ...", "", "KHABAROVSK/HARBIN, May 5 (Wire) -"),
    ("ВЛАДИВОСТОК, 4 июня. /ТАСС/. Власти Приморья и провинции Цзилинь ...", "", "ВЛАДИВОСТОК, 4 июня. /ТАСС/."),
    ("新华社哈尔滨6月2日电（记者 李某）黑龙江省与阿穆尔州 ...", "", "新华社哈尔滨6月2日电（记者 李某）"),
    ("Ferry season opens\n\nBLAGOVESHCHENSK, April 20 (Agency) - The first ferry ...", "Ferry season opens",
     "BLAGOVESHCHENSK, April 20 (Agency) -"),
])
def test_a_dateline_is_found_after_a_repeated_title_too(text, title, dateline):
    start, end = dateline_span(text, title)
    assert text[start:end].strip() == dateline


@pytest.mark.parametrize("text", [
    "The Moscow Zoo welcomed two pandas on Tuesday.",
    "TASS reported that the two regions signed an accord.",
    "黑龙江省与阿穆尔州签署协议。",
    "",
])
def test_a_body_without_a_dateline_has_none(text):
    assert dateline_span(text) == (0, 0)


@pytest.mark.parametrize(("text", "title", "opening"), [
    ("Bridge opens  MOSCOW, May 5 /TASS/ - The bridge opened.", "Bridge opens.", "The bridge opened."),
    ("BRIDGE\nOPENS: the bridge opened.", "Bridge opens", "the bridge opened."),
    ("/TASS/. The bridge opened.", "", "The bridge opened."),
    ("The bridge opened.", "Another headline", "The bridge opened."),
])
def test_a_report_opens_past_its_headline_dateline_and_wire_slug(text, title, opening):
    assert report_opening(text, title) == opening
