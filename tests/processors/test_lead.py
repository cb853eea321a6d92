"""A story's lead, past the clutter pages open with (texts in our own words)."""

import pytest

from processors.lead import LEAD_CHARS, lead

TITLE = "Amur and Heilongjiang agree on a winter ice road"


@pytest.mark.parametrize("clutter", [
    "https://border-news.example/2026/12/ice-road",
    "Home > Harbin Today > Economy",
    "Главная » Новости » Экономика",
    "ice-road-2026_main.jpg",
    "18.11.2026 12:30",
    "November 18, 2026",
    "18 ноября 2026 г.",
    "2026年11月18日 10:20",
    "By Anna Petrova",
    "记者 王明",
    TITLE,
])
def test_the_lead_starts_past_urls_breadcrumbs_files_dates_bylines_and_the_title(clutter):
    text = f"{clutter}\n\nBLAGOVESHCHENSK, Nov 18 (Wire) - The two regions will open the ice road in January. Trucks up to 20 tonnes may use it."
    assert lead(text, TITLE) == "The two regions will open the ice road in January. Trucks up to 20 tonnes may use it."


def test_a_long_lead_is_cut_at_a_sentence_or_a_word_with_an_ellipsis():
    sentence = "The regional governments signed a protocol on the crossing. "
    assert lead(sentence * 10) == (sentence * 5).strip()
    long_sentence = "The crossing " + "will carry grain and timber and containers " * 20 + "from January."
    cut = lead(long_sentence)
    assert len(cut) <= LEAD_CHARS and cut.endswith("…") and cut[:-1].rstrip() in long_sentence
    assert long_sentence[len(cut) - 1] == " "  # ends at a word: "…containers…" never "…contai…"


def test_chinese_is_cut_at_a_sentence_end():
    text = "黑龙江省与阿穆尔州签署冰上通道合作协议。" * 30
    result = lead(text)
    assert result.endswith("。") and len(result) <= LEAD_CHARS


def test_a_body_of_clutter_alone_has_no_lead():
    assert lead("https://example.org/a\n\nHome > News > Region") == ""
