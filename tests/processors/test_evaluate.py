"""Scoring the pipeline's verdicts and stories against labelled lines (the figures of ``amur eval``)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from pipeline.core.errors import ConfigError
from processors.evaluate import Outcome, StoryTags, format_report, read_labeled, score


def _labelled(tmp_path: Path, lines: list[dict]) -> Path:
    path = tmp_path / "labelled.jsonl"
    path.write_text("\n".join(json.dumps(line, ensure_ascii=False) for line in lines) + "\n", encoding="utf-8")
    return path


def _outcome(positive: bool, story: str | None = None, level: str | None = None, sectors=(), language=None) -> Outcome:
    return Outcome(positive, 0.9 if positive else 0.1, level, list(sectors), "test", language, story)


LINES = [
    {"id": "A1", "lang": "en", "text": "Amur and Heilongjiang open a bridge", "label": "positive", "level": "interregional",
     "regions": ["RU-AMU", "CN-HL"], "sectors": ["transport_logistics"], "event": "bridge", "date": "2022-06-10"},
    {"id": "A2", "lang": "ru", "text": "Амурская область и Хэйлунцзян открыли мост", "label": "positive", "level": "interregional",
     "regions": ["RU-AMU", "CN-HL"], "sectors": ["transport_logistics", "trade"], "event": "bridge", "date": "2022-06"},
    {"id": "B1", "lang": "en", "text": "Gazprom and CNPC sign a gas contract", "label": "positive", "level": "corporate",
     "regions": [], "sectors": ["energy"]},
    {"id": "N1", "lang": "zh", "text": "黑龙江天气", "label": "negative"},
    {"id": "N2", "lang": "en", "text": "A debatable one", "label": "positive", "ambiguous": True, "level": "national"},
]


def test_every_figure_comes_from_the_verdicts_and_the_stories(tmp_path):
    path = _labelled(tmp_path, LINES)
    examples = read_labeled(path)
    outcomes = [
        _outcome(True, "s1", "interregional", ["transport_logistics"]),
        _outcome(True, "s2", "national", ["transport_logistics", "trade"]),  # the event split in two stories
        _outcome(True, "s2", "corporate", ["energy"]),  # a different event joined to it
        _outcome(True, "s3", "municipal"),  # a false positive
        _outcome(False),  # ambiguous: no figure
    ]
    stories = {
        "s1": StoryTags(["RU-AMU", "CN-HL", "RU-MOW"], ["transport_logistics"]),
        "s2": StoryTags(["RU-AMU"], ["transport_logistics", "trade", "energy"]),
        "s3": StoryTags(["CN-HL"], []),
    }
    report = score(path, "test", examples, outcomes, stories)

    assert (report.overall.tp, report.overall.fp, report.overall.fn, report.overall.tn) == (3, 1, 0, 0)
    assert report.by_language["zh"].fp == 1 and report.by_language["ru"].tp == 1
    assert [name for name, *_ in report.mistakes] == ["N1"]
    assert report.ambiguous == [("N2", "positive", False, 0.1)]
    # Level: A1 right, A2 national for interregional, B1 right.
    assert report.level_confusion[("interregional", "national")] == 1 and report.level_accuracy == pytest.approx(2 / 3)
    assert report.level_macro_f1 == pytest.approx((2 / 3 + 1.0) / 2)  # the levels the labels use: interregional, corporate
    # Regions: s1 finds 2 of 2 with one extra; s2 (A2 + B1) finds RU-AMU of RU-AMU and CN-HL; s3 is no positive's story.
    regions = report.story_regions["all"]
    assert (regions.tp, regions.fp, regions.fn) == (3, 1, 1)
    sectors = report.story_sectors["all"]
    assert (sectors.tp, sectors.fp, sectors.fn) == (4, 0, 0)
    # Clustering over the four lines in stories: A1–A2 split, A2–B1 wrongly joined.
    clusters = report.clustering
    assert (clusters.pairs.tp, clusters.pairs.fp, clusters.pairs.fn) == (0, 1, 1)
    assert (clusters.cross_language.tp, clusters.cross_language.fn) == (0, 1)
    assert clusters.split == {"bridge": [["A1"], ["A2"]]} and clusters.alerts_per_event == 2.0
    assert [members for _, members in clusters.joined] == [["A2 (bridge)", "B1 (no event)"]]

    text = format_report(report)
    for expected in ("language zh", "macro-F1 0.833", "Story regions", "split: bridge: A1 | A2", "joined: story",
                     "N1 [zh]: expected negative", "1 ambiguous, counted in no figure", "alerts per event: 2.00"):
        assert expected in text


def test_a_month_alone_is_read_as_its_middle_and_no_date_as_none(tmp_path):
    examples = read_labeled(_labelled(tmp_path, LINES))
    assert examples[0][1].published_at().isoformat() == "2022-06-10T00:00:00+00:00"
    assert examples[1][1].published_at().isoformat() == "2022-06-15T00:00:00+00:00" and examples[1][1].language == "ru"
    assert examples[2][1].published_at() is None


def test_a_malformed_line_is_named_by_file_and_line_number(tmp_path):
    path = tmp_path / "labelled.jsonl"
    path.write_text('{"text": "ok", "label": "negative"}\n{"text": "no label"}\nnot json\n{"text": "x", "label": "negative", "date": "June"}\n', encoding="utf-8")
    with pytest.raises(ConfigError) as caught:
        read_labeled(path)
    assert [(p.file, p.key) for p in caught.value.problems] == [(str(path), "line 2"), (str(path), "line 3"), (str(path), "line 4")]
