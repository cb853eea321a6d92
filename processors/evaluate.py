"""Measure the classifier against a labeled JSONL file.

Each line is one article::

    {"text": "...", "label": "positive", "title": "...", "url": "...",
     "level": "interregional", "sectors": ["trade", "transport_logistics"]}

``text`` and ``label`` ("positive" or "negative") are required; ``title`` and ``url`` help
the classifier like a feed's would; ``level`` and ``sectors`` are the expected values for a
positive and are scored only on the lines that carry them (and on every negative line,
which expects no level and no sector)::

    report = evaluate(Path("tests/data/labeled.jsonl"), analyzer)
    print(format_report(report))
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal, Protocol

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from pipeline.errors import ConfigError, ConfigProblem, error_key
from pipeline.messages import Article, Classified, Level
from processors.analyze import synthetic_article
from processors.classify import SECTORS

_BATCH = 64


class _Analyzer(Protocol):
    def analyze(self, articles: Sequence[Article]) -> list[Classified]: ...


class LabeledArticle(BaseModel):
    """One line of the labeled file."""

    model_config = ConfigDict(frozen=True, extra="ignore")

    text: str = Field(min_length=1)
    label: Literal["positive", "negative"]
    title: str = ""
    url: str = ""
    level: Level | None = None
    sectors: list[Literal[SECTORS]] | None = None  # type: ignore[valid-type]
    language: str | None = None  # as a feed would declare it; detected from the text otherwise


@dataclass
class Scores:
    """Counts of one binary decision, and the measures made from them."""

    tp: int = 0
    fp: int = 0
    fn: int = 0
    tn: int = 0

    def add(self, expected: bool, predicted: bool) -> None:
        if expected and predicted:
            self.tp += 1
        elif predicted:
            self.fp += 1
        elif expected:
            self.fn += 1
        else:
            self.tn += 1

    @property
    def precision(self) -> float:
        return self.tp / (self.tp + self.fp) if self.tp + self.fp else 0.0

    @property
    def recall(self) -> float:
        return self.tp / (self.tp + self.fn) if self.tp + self.fn else 0.0

    @property
    def f1(self) -> float:
        p, r = self.precision, self.recall
        return 2 * p * r / (p + r) if p + r else 0.0

    @property
    def total(self) -> int:
        return self.tp + self.fp + self.fn + self.tn


@dataclass
class EvalReport:
    """Precision, recall and F1 overall, per level and per sector, and the articles it got wrong."""

    path: Path
    classifier: str
    overall: Scores = field(default_factory=Scores)
    by_language: dict[str, Scores] = field(default_factory=dict)  # the language each article was read in
    by_level: dict[str, Scores] = field(default_factory=dict)
    by_sector: dict[str, Scores] = field(default_factory=dict)
    mistakes: list[tuple[int, str, float, str]] = field(default_factory=list)  # (line, expected, score, reason)


def read_labeled(path: Path) -> list[tuple[int, LabeledArticle]]:
    """The labeled lines with their line numbers; every malformed line is one :class:`ConfigProblem`."""
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError([ConfigProblem(str(path), "(file)", f"cannot read: {exc}", "check the path and that the file is UTF-8")]) from None
    examples, problems = [], []
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            examples.append((number, LabeledArticle.model_validate(json.loads(line))))
        except json.JSONDecodeError as exc:
            problems.append(ConfigProblem(str(path), f"line {number}", f"not JSON: {exc.msg} at column {exc.colno}", "write one JSON object per line"))
        except ValidationError as exc:
            first = exc.errors()[0]
            problems.append(ConfigProblem(str(path), f"line {number}", f"{error_key(first, '(line)')}: {first['msg']}", 'each line needs "text" and "label" ("positive" or "negative"); level and sectors use the taxonomy ids'))
    if problems:
        raise ConfigError(problems)
    return examples


def evaluate(path: Path, analyzer: _Analyzer) -> EvalReport:
    """Classify every line of ``path`` with ``analyzer`` and score the results.

    :raises ConfigError: the file cannot be read or has malformed lines (each named by number).
    """
    examples = read_labeled(path)
    results: list[Classified] = []
    for start in range(0, len(examples), _BATCH):
        batch = examples[start : start + _BATCH]
        results += analyzer.analyze([
            synthetic_article(ex.text, ex.title, ex.url or f"eval:{path.name}:{number}", source="eval").model_copy(update={"language": ex.language})
            for number, ex in batch
        ])
    report = EvalReport(path=path, classifier=results[0].classification.classifier if results else "")
    for (number, example), result in zip(examples, results, strict=True):
        found = result.classification
        expected = example.label == "positive"
        report.overall.add(expected, found.is_cooperation)
        report.by_language.setdefault(result.article.language or "unknown", Scores()).add(expected, found.is_cooperation)
        if expected != found.is_cooperation:
            report.mistakes.append((number, example.label, found.score, found.reason))
        if example.level is not None or not expected:
            for level in ("national", "interregional", "municipal", "corporate"):
                report.by_level.setdefault(level, Scores()).add(expected and example.level == level, found.is_cooperation and found.level == level)
        if example.sectors is not None or not expected:
            for sector in SECTORS:
                report.by_sector.setdefault(sector, Scores()).add(expected and sector in (example.sectors or []), found.is_cooperation and sector in found.sectors)
    return report


def format_report(report: EvalReport) -> str:
    """A plain-text table of the report, for a terminal."""
    header = f"{'':<28}{'n':>6}{'tp':>6}{'fp':>6}{'fn':>6}{'precision':>11}{'recall':>8}{'f1':>8}"

    def row(name: str, scores: Scores) -> str:
        return f"{name:<28}{scores.total:>6}{scores.tp:>6}{scores.fp:>6}{scores.fn:>6}{scores.precision:>11.3f}{scores.recall:>8.3f}{scores.f1:>8.3f}"

    lines = [f"Evaluation of {report.path} with {report.classifier}", header, row("overall", report.overall)]
    lines += [row(f"language {name}", scores) for name, scores in sorted(report.by_language.items())]
    lines += [row(f"level {name}", scores) for name, scores in report.by_level.items() if scores.tp + scores.fp + scores.fn]
    lines += [row(f"sector {name}", scores) for name, scores in report.by_sector.items() if scores.tp + scores.fp + scores.fn]
    if report.mistakes:
        lines.append(f"\n{len(report.mistakes)} misclassified:")
        lines += [f"  line {number}: expected {label}, score {score:.2f} — {reason}" for number, label, score, reason in report.mistakes]
    return "\n".join(lines)
