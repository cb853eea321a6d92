"""``amur eval`` over a small labelled file of our own: the whole pipeline runs, and every
figure the development set is scored by is printed."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from pipeline.app.cli import app

REPO = Path(__file__).resolve().parents[3]
CABLE_CAR = REPO / "tests" / "resources" / "stories" / "cable-car"
SEASON = (REPO / "tests" / "resources" / "stories" / "tourism-season.txt").read_text(encoding="utf-8")


def _line(number: int, language: str, **labels) -> dict:
    title, _, text = (CABLE_CAR / f"{language}.txt").read_text(encoding="utf-8").partition("\n\n")
    return {"id": f"T{number}", "url": f"https://{language}.news.example/cable-car", "title": title, "text": text,
            "lang": language, "date": "2026-11-19", "label": "positive", "level": "interregional",
            "regions": ["RU-AMU", "CN-HL"], "sectors": ["transport_logistics"], "event": "cable-car", **labels}


@pytest.mark.slow
def test_eval_runs_the_pipeline_and_prints_every_figure(tmp_path, monkeypatch):
    monkeypatch.chdir(REPO)
    lines = [
        _line(1, "en"), _line(2, "ru"), _line(3, "zh"),
        {"id": "T4", "url": "https://news.example/weather", "title": "Snow in Harbin", "lang": "en", "date": "2026-11-19",
         "text": "Heavy snow closed schools in Harbin on Thursday; the airport stayed open.", "label": "negative"},
        {"id": "T5", "url": "https://news.example/season", "title": "A joint tourism season", "lang": "en", "date": "2026-11-19",
         "text": SEASON, "label": "positive", "ambiguous": True},
    ]
    path = tmp_path / "labelled.jsonl"
    path.write_text("\n".join(json.dumps(line, ensure_ascii=False) for line in lines) + "\n", encoding="utf-8")

    result = CliRunner().invoke(app, ["eval", str(path)], catch_exceptions=False)

    assert result.exit_code == 0, result.output
    output = result.output
    for heading in ("through the whole pipeline", "Classification", "language ru", "language zh", "Level (positives",
                    "Story regions", "Story sectors", "same-event pairs across languages", "alerts per event"):
        assert heading in output
    # The three reports of the cable-car signing are one story: three pairs, all joined.
    pairs = next(line for line in output.splitlines() if line.startswith("same-event pairs "))
    assert pairs.split()[2:5] == ["3", "3", "0"], pairs  # n, tp, fp
    assert "alerts per event: 1.00 (1 stories for 1 events)" in output
    assert "1 ambiguous, counted in no figure" in output and "T5: labelled positive" in output


def test_eval_names_a_malformed_line(tmp_path, monkeypatch):
    monkeypatch.chdir(REPO)
    path = tmp_path / "labelled.jsonl"
    path.write_text('{"text": "no label"}\n', encoding="utf-8")
    result = CliRunner().invoke(app, ["eval", str(path)])
    assert result.exit_code == 2 and f"{path}: line 1" in result.output
