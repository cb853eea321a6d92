"""Operator views of the sources: their health from the state store, and a dry run of one.

A dry run polls a source with a throw-away in-memory state store, so every entry counts as
new, nothing is produced to a topic and the real state (seen articles, ETags, failure
counts) is left as it was.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

from sqlalchemy import Engine

from pipeline.app.roles import make_connector_factory
from pipeline.connector import ConnectorContext
from pipeline.db import make_engine
from pipeline.errors import ConfigError, ConfigProblem
from pipeline.messages import Article, Classification
from pipeline.settings import AmurSettings, SourceConfig, load_sources, sources_path
from pipeline.state import EMITTED, FAILED, RETRYING, ItemTally, SourceState, StateStore


@dataclass(frozen=True)
class SourceHealth:
    """A configured source and what the state store knows of it."""

    source: SourceConfig
    state: SourceState
    items: dict[str, ItemTally] = field(default_factory=dict)  # status (emitted, retrying, failed) → tally

    @property
    def status(self) -> str:
        if not self.source.enabled:
            return "disabled"
        if self.state.last_polled_at is None:
            return "never polled"
        if self.state.consecutive_failures:
            return "failing"
        return "items failing" if self._items_failing else "ok"

    @property
    def _items_failing(self) -> bool:
        """The feed answers, but no item has become an article since items began to fail."""
        failed = [self.items[status].latest for status in (FAILED, RETRYING) if status in self.items]
        if not failed:
            return False
        emitted = self.items.get(EMITTED)
        return emitted is None or emitted.latest < max(moment for moment in failed if moment is not None)

    @property
    def items_seen(self) -> int:
        return sum(tally.count for tally in self.items.values())


def source_health(settings: AmurSettings, config_path: Path, engine: Engine | None = None) -> list[SourceHealth]:
    """Every source of the sources file with its polling state and item counts, in file order.

    With an ``engine`` given, its database is read as it is (the read-only server checked its
    schema); without one, the configured database is brought to the current schema first.
    """
    store = StateStore(engine or make_engine(settings.database_url))
    if engine is None:
        store.setup()
    known = {state.name: state for state in store.health()}
    tallies = store.item_tallies()
    sources = load_sources(sources_path(config_path, settings)).sources
    return [
        SourceHealth(source, known.get(source.name, SourceState(name=source.name)), tallies.get(source.name, {}))
        for source in sources
    ]


def format_health(rows: list[SourceHealth]) -> str:
    def when(value: datetime | None) -> str:
        return value.strftime("%Y-%m-%d %H:%M:%SZ") if value else "-"

    lines = [
        f"{'source':24} {'status':13} {'last success':21} {'failures':>8} {'items':>6} {'every':>6}  "
        f"{'next poll':21} last error"
    ]
    for row in rows:
        state = row.state
        lines.append(
            f"{row.source.name:24} {row.status:13} {when(state.last_success_at):21} {state.consecutive_failures:>8} "
            f"{row.items_seen:>6} {row.source.poll_interval_seconds:>5}s  {when(state.next_poll_at):21} "
            f"{state.last_error or ''}"
        )
    return "\n".join(lines)


@dataclass(frozen=True)
class DryRun:
    """What one poll of a source would emit, which items would fail, and (optionally) the verdicts."""

    source: SourceConfig
    articles: list[Article]
    failures: list[tuple[str, str]]
    verdicts: dict[str, Classification] = field(default_factory=dict)


def dry_run(settings: AmurSettings, config_path: Path, name: str, *, classify: bool = False) -> DryRun:
    """Poll source ``name`` once without producing or recording anything; ``classify`` adds verdicts.

    :raises ConfigError: no source of that name.
    :raises SourceError: the feed itself cannot be fetched or parsed.
    """
    path = sources_path(config_path, settings)
    sources = {source.name: source for source in load_sources(path).sources}
    if name not in sources:
        known = ", ".join(sorted(sources)) or "none"
        raise ConfigError([ConfigProblem(str(path), "sources", f"no source named {name!r}", f"known sources: {known}")])
    scratch = StateStore(make_engine("sqlite://"))
    scratch.setup()
    context = ConnectorContext(settings, scratch)
    try:
        result = make_connector_factory(context)(sources[name]).poll()
    finally:
        context.close()
    verdicts = {}
    if classify and result.articles:
        from processors.analyze import Analyzer  # loads the spaCy model: only when asked

        analyzed = Analyzer.from_settings(settings.model).analyze(result.articles)
        verdicts = {item.id: item.classification for item in analyzed}
    failures = [(failure.url, str(failure.error)) for failure in result.failures]
    return DryRun(sources[name], result.articles, failures, verdicts)


def format_dry_run(result: DryRun) -> str:
    lines = [f"source {result.source.name}: {len(result.articles)} article(s), {len(result.failures)} failed item(s)"]
    for article in result.articles:
        lines += [f"  + {article.title} ({len(article.text.split())} words)", f"    {article.url}"]
        verdict = result.verdicts.get(article.id)
        if verdict is not None:
            parties = ", ".join([*verdict.russian_parties, *verdict.chinese_parties]) or "-"
            lines.append(f"    cooperation={verdict.is_cooperation} score={verdict.score:.2f} parties={parties}")
    for url, error in result.failures:
        lines += [f"  ! {url}", f"    {error}"]
    return "\n".join(lines)
