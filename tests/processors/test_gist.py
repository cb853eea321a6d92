"""The English gist: composed from extracted facts only, in every language (reports in our own words)."""

from __future__ import annotations

import pytest

from pipeline.core.messages import Figure
from processors.gist import amount, gist
from tests.processors.test_stories import SIGNED_ON, _report, index, stories_of  # noqa: F401 - index: the story index fixture

NAMES = {"RU-AMU": "Amur Oblast", "CN-HL": "Heilongjiang"}


def test_parties_act_sectors_and_the_largest_sum_make_the_line():
    figures = [Figure(kind="money", value=3e9, unit="CNY", text="3 bn yuan", sentence="..."),
               Figure(kind="money", value=5e8, unit="CNY", text="500 m yuan", sentence="..."),
               Figure(kind="percent", value=40.0, unit="%", text="40%", sentence="...")]
    line = gist(["RU-AMU"], ["CN-HL"], NAMES, ["signed", "opened"], ["transport_logistics", "trade"], figures)
    assert line == "Amur Oblast and Heilongjiang: agreement signed (transport, trade; CNY 3 billion)"


def test_what_was_not_found_is_left_out_not_guessed():
    assert gist(["RU"], [], {}, [], [], []) == "Russia and China: cooperation"
    assert gist([], ["CN-HL"], NAMES, ["visit"], ["culture_humanitarian"], []) == "Russia and Heilongjiang: visit (culture)"


@pytest.mark.parametrize(("value", "written"), [(7.2e9, "RUB 7.2 billion"), (6e5, "RUB 600,000"), (1.5e12, "RUB 1.5 trillion")])
def test_amounts_read_as_a_reader_writes_them(value, written):
    assert amount(Figure(kind="money", value=value, unit="RUB", text="", sentence="")) == written


@pytest.mark.slow
@pytest.mark.parametrize("language", ["ru", "zh", "en"])
def test_a_report_in_any_language_gets_one_english_line_of_its_facts(index, analyzer, language):
    alert = stories_of(index, [_report(analyzer, language, SIGNED_ON)])[0]
    assert alert.gist_en.startswith("Amur Oblast and Heilongjiang Province: agreement signed ("), alert.gist_en
    assert "transport" in alert.gist_en and alert.gist_en.endswith("RUB 7.2 billion)")
