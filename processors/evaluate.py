"""Scoring what the pipeline decided against a labelled JSONL file.

Each line is one article, in the development set's format (``../shared/devset/README.md``)::

    {"id": "D001", "text": "...", "label": "positive", "title": "...", "url": "...",
     "lang": "en", "date": "2022-11-18", "level": "interregional",
     "regions": ["RU-AMU", "CN-HL"], "sectors": ["trade"], "event": "2022-11-bridge-opening",
     "ambiguous": false}

``text`` and ``label`` ("positive" or "negative") are required; every other key is
optional and scored only on the lines that carry it. This module only scores:
:mod:`pipeline.app.evaluate` runs the articles through the whole pipeline and hands over, per
line, the article's verdict and the story it ended in::

    report = score(examples, outcomes, stories)
    print(format_report(report))

The figures:

* **classification** precision, recall and F1, overall and per language (the labelled
  language, else the one the pipeline read);
* **level**: per level and macro-F1 over the levels the gold labels use, with the confusion,
  on the positive lines that carry a level (the verdict's level whether or not it passed);
* **story regions and sectors**: micro precision, recall and F1 of each story's tags against
  the union of the gold tags of its positive members;
* **clustering**: pairwise precision, recall and F1 over the lines that ended in a story (two
  lines of one ``event`` belong in one story, two others apart), the same for pairs across
  languages, alerts per event, and the events split or wrongly joined.

Ambiguous lines count in no figure; they are listed apart with their verdicts.
"""

from __future__ import annotations

import json
from collections import Counter, defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, timezone
from itertools import combinations
from pathlib import Path
from typing import Literal

from pydantic import AliasChoices, BaseModel, ConfigDict, Field, ValidationError

from pipeline.core.errors import ConfigError, ConfigProblem, error_key
from pipeline.core.messages import SECTORS, Level, Sector

LEVELS: tuple[str, ...] = ("national", "interregional", "municipal", "corporate")


class LabeledArticle(BaseModel):
    """One line of the labelled file."""

    model_config = ConfigDict(frozen=True, extra="ignore")

    id: str | None = None
    text: str = Field(min_length=1)
    label: Literal["positive", "negative"]
    title: str = ""
    url: str = ""
    date: str | None = Field(None, pattern=r"^\d{4}-\d{2}(-\d{2})?$")
    level: Level | None = None
    regions: list[str] | None = None
    sectors: list[Sector] | None = None
    event: str | None = None
    ambiguous: bool = False
    # As a feed would declare it; detected from the text otherwise.
    language: str | None = Field(None, validation_alias=AliasChoices("language", "lang"))

    @property
    def positive(self) -> bool:
        return self.label == "positive"

    def published_at(self) -> datetime | None:
        """The publication date, as a feed would give it. A line that names only the month is
        read as its 15th, the day nearest to every day of it; a line with no date has none, and
        the pipeline uses its arrival."""
        if self.date is None:
            return None
        day = date.fromisoformat(self.date if len(self.date) == 10 else f"{self.date}-15")
        return datetime.combine(day, datetime.min.time(), tzinfo=timezone.utc)


def read_labeled(path: Path) -> list[tuple[int, LabeledArticle]]:
    """The labelled lines with their line numbers; every malformed line is one :class:`ConfigProblem`."""
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


@dataclass(frozen=True)
class Outcome:
    """What the pipeline made of one labelled line: the article's verdict and its story."""

    is_cooperation: bool
    score: float
    level: str | None
    sectors: Sequence[str]
    reason: str
    language: str | None
    story_id: str | None


@dataclass(frozen=True)
class StoryTags:
    """What a subscriber filters a story by."""

    regions: Sequence[str]
    sectors: Sequence[str]


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

    def add_sets(self, expected: Iterable[str], predicted: Iterable[str]) -> None:
        """Micro-averaged counts of two tag sets (no true negatives)."""
        expected, predicted = set(expected), set(predicted)
        self.tp += len(expected & predicted)
        self.fp += len(predicted - expected)
        self.fn += len(expected - predicted)

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
class Clustering:
    """Pairwise figures of the stories against the labelled events, and where they differ."""

    pairs: Scores = field(default_factory=Scores)
    cross_language: Scores = field(default_factory=Scores)
    events: int = 0  # events with at least one member in a story
    alerts: int = 0  # stories those events' members are in, summed over the events
    split: dict[str, list[list[str]]] = field(default_factory=dict)  # event → the members of each of its stories
    joined: list[tuple[str, list[str]]] = field(default_factory=list)  # story → members of different events

    @property
    def alerts_per_event(self) -> float:
        return self.alerts / self.events if self.events else 0.0


@dataclass
class EvalReport:
    """Every figure of one evaluation; see the module docstring."""

    path: Path
    classifier: str
    overall: Scores = field(default_factory=Scores)
    by_language: dict[str, Scores] = field(default_factory=dict)
    by_level: dict[str, Scores] = field(default_factory=dict)
    level_confusion: Counter = field(default_factory=Counter)  # (gold, predicted) → count
    by_sector: dict[str, Scores] = field(default_factory=dict)  # per article verdict
    story_regions: dict[str, Scores] = field(default_factory=dict)  # language → scores; "all" overall
    story_sectors: dict[str, Scores] = field(default_factory=dict)
    clustering: Clustering = field(default_factory=Clustering)
    mistakes: list[tuple[str, str, str, float, str]] = field(default_factory=list)  # (line, language, expected, score, reason)
    tag_mistakes: list[tuple[str, str, str]] = field(default_factory=list)  # (line, what, expected → got)
    ambiguous: list[tuple[str, str, bool, float]] = field(default_factory=list)  # (line, expected, found, score)

    @property
    def level_macro_f1(self) -> float:
        used = [scores for scores in self.by_level.values() if scores.tp + scores.fn]
        return sum(scores.f1 for scores in used) / len(used) if used else 0.0

    @property
    def level_accuracy(self) -> float:
        total = sum(self.level_confusion.values())
        return sum(n for (gold, found), n in self.level_confusion.items() if gold == found) / total if total else 0.0


def _name(number: int, example: LabeledArticle) -> str:
    return example.id or f"line {number}"


def score(
    path: Path, classifier: str, examples: Sequence[tuple[int, LabeledArticle]], outcomes: Sequence[Outcome],
    stories: Mapping[str, StoryTags],
) -> EvalReport:
    """Every figure of the module docstring, from the pipeline's ``outcomes`` (one per example, in order)."""
    report = EvalReport(path=path, classifier=classifier)
    scored: list[tuple[str, LabeledArticle, Outcome]] = []
    for (number, example), outcome in zip(examples, outcomes, strict=True):
        name = _name(number, example)
        if example.ambiguous:
            report.ambiguous.append((name, example.label, outcome.is_cooperation, outcome.score))
            continue
        scored.append((name, example, outcome))
        _score_verdict(report, name, example, outcome)
    _score_stories(report, scored, stories)
    report.clustering = _clustering(scored)
    return report


def _score_verdict(report: EvalReport, name: str, example: LabeledArticle, outcome: Outcome) -> None:
    expected, found = example.positive, outcome.is_cooperation
    language = example.language or outcome.language or "unknown"
    report.overall.add(expected, found)
    report.by_language.setdefault(language, Scores()).add(expected, found)
    if expected != found:
        report.mistakes.append((name, language, example.label, outcome.score, outcome.reason))
    if expected and example.level is not None:
        report.level_confusion[(example.level, outcome.level or "none")] += 1
        for level in LEVELS:
            report.by_level.setdefault(level, Scores()).add(example.level == level, outcome.level == level)
        if outcome.level != example.level:
            report.tag_mistakes.append((name, "level", f"{example.level} → {outcome.level or 'none'}"))
    if example.sectors is not None or not expected:
        for sector in SECTORS:
            report.by_sector.setdefault(sector, Scores()).add(expected and sector in (example.sectors or []), found and sector in outcome.sectors)


def _score_stories(report: EvalReport, scored: Sequence[tuple[str, LabeledArticle, Outcome]], stories: Mapping[str, StoryTags]) -> None:
    """Each story's regions and sectors against the union of its positive members' gold tags."""
    members: dict[str, list[tuple[str, LabeledArticle, Outcome]]] = defaultdict(list)
    for item in scored:
        if item[2].story_id is not None:
            members[item[2].story_id].append(item)
    for story_id, items in members.items():
        positives = [example for _, example, _ in items if example.positive]
        if not positives or story_id not in stories:
            continue  # a story of negatives is the classifier's mistake, counted there
        language = items[0][1].language or items[0][2].language or "unknown"
        names = ", ".join(name for name, _, _ in items)
        tags = stories[story_id]
        for what, gold_of, found, table in (
            ("regions", lambda e: e.regions, tags.regions, report.story_regions),
            ("sectors", lambda e: e.sectors, tags.sectors, report.story_sectors),
        ):
            labelled = [gold_of(example) for example in positives if gold_of(example) is not None]
            if not labelled:
                continue
            gold = {tag for tags_of_one in labelled for tag in tags_of_one}
            for key in ("all", language):
                table.setdefault(key, Scores()).add_sets(gold, found)
            if gold != set(found):
                report.tag_mistakes.append((names, f"story {what}", f"{sorted(gold)} → {sorted(found)}"))


def _clustering(scored: Sequence[tuple[str, LabeledArticle, Outcome]]) -> Clustering:
    result = Clustering()
    in_stories = [(name, example, outcome) for name, example, outcome in scored if outcome.story_id is not None]
    for (_, a, found_a), (_, b, found_b) in combinations(in_stories, 2):
        same_event = a.event is not None and a.event == b.event
        same_story = found_a.story_id == found_b.story_id
        result.pairs.add(same_event, same_story)
        if (a.language or found_a.language) != (b.language or found_b.language):
            result.cross_language.add(same_event, same_story)
    by_event: dict[str, dict[str, list[str]]] = defaultdict(lambda: defaultdict(list))
    by_story: dict[str, list[tuple[str, str | None]]] = defaultdict(list)
    for name, example, outcome in in_stories:
        if example.event is not None:
            by_event[example.event][outcome.story_id].append(name)
        by_story[outcome.story_id].append((name, example.event))
    for event, stories_of_event in sorted(by_event.items()):
        result.events += 1
        result.alerts += len(stories_of_event)
        if len(stories_of_event) > 1:
            result.split[event] = sorted(stories_of_event.values())
    for story_id, members in sorted(by_story.items()):
        events = {event for _, event in members}
        if len(members) > 1 and (len(events) > 1 or None in events):
            result.joined.append((story_id, [f"{name} ({event or 'no event'})" for name, event in members]))
    return result


def format_report(report: EvalReport) -> str:
    """A plain-text report, for a terminal."""
    header = f"{'':<30}{'n':>6}{'tp':>6}{'fp':>6}{'fn':>6}{'precision':>11}{'recall':>8}{'f1':>8}"

    def row(name: str, scores: Scores) -> str:
        return f"{name:<30}{scores.total:>6}{scores.tp:>6}{scores.fp:>6}{scores.fn:>6}{scores.precision:>11.3f}{scores.recall:>8.3f}{scores.f1:>8.3f}"

    lines = [f"Evaluation of {report.path} through the whole pipeline ({report.classifier})", "", "Classification", header, row("overall", report.overall)]
    lines += [row(f"language {name}", scores) for name, scores in sorted(report.by_language.items())]
    lines += ["", f"Level (positives with a gold level): macro-F1 {report.level_macro_f1:.3f}, accuracy {report.level_accuracy:.3f}", header]
    lines += [row(f"level {name}", scores) for name, scores in report.by_level.items() if scores.tp + scores.fp + scores.fn]
    found_levels = [*LEVELS, "none"]
    used = [level for level in LEVELS if any(report.level_confusion[(level, f)] for f in found_levels)]
    if used:
        lines.append("confusion (rows gold, columns found): " + " ".join(f"{level[:8]:>9}" for level in found_levels))
        lines += [f"  {gold:<36}" + " ".join(f"{report.level_confusion[(gold, found)]:>9}" for found in found_levels) for gold in used]
    for title, table in (("Story regions", report.story_regions), ("Story sectors", report.story_sectors)):
        lines += ["", f"{title} (each story against its positive members' gold tags, micro)", header]
        lines += [row("overall" if key == "all" else f"language {key}", scores) for key, scores in sorted(table.items(), key=lambda kv: kv[0] != "all")]
    lines += ["", "Article sectors (the verdict's sectors per line)", header]
    lines += [row(f"sector {name}", scores) for name, scores in report.by_sector.items() if scores.tp + scores.fp + scores.fn]
    clusters = report.clustering
    lines += [
        "", "Stories against the labelled events (pairs of lines that ended in stories)", header,
        row("same-event pairs", clusters.pairs), row("same-event pairs across languages", clusters.cross_language),
        f"alerts per event: {clusters.alerts_per_event:.2f} ({clusters.alerts} stories for {clusters.events} events)",
    ]
    lines += [f"  split: {event}: " + " | ".join(", ".join(members) for members in parts) for event, parts in clusters.split.items()]
    lines += [f"  joined: story {story_id[:12]}: {', '.join(members)}" for story_id, members in clusters.joined]
    if report.mistakes:
        lines.append(f"\n{len(report.mistakes)} misclassified:")
        lines += [f"  {name} [{language}]: expected {label}, score {score_:.2f} — {reason}" for name, language, label, score_, reason in report.mistakes]
    if report.tag_mistakes:
        lines.append(f"\n{len(report.tag_mistakes)} wrong tags:")
        lines += [f"  {name}: {what} {detail}" for name, what, detail in report.tag_mistakes]
    if report.ambiguous:
        lines.append(f"\n{len(report.ambiguous)} ambiguous, counted in no figure:")
        lines += [f"  {name}: labelled {label}, found {'positive' if found else 'negative'} at {score_:.2f}" for name, label, found, score_ in report.ambiguous]
    return "\n".join(lines)
