"""Operator views of the sources: their health from the state store, and a dry run of one.

A dry run polls a source with a throw-away in-memory state store, so every entry counts as
new, nothing is produced to a topic and the real state (seen articles, ETags, failure
counts) is left as it was.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

from sqlalchemy import Engine

from pipeline.app.roles import make_connector_factory
from pipeline.core.connector import ConnectorContext
from pipeline.core.db import make_engine
from pipeline.core.errors import ConfigError, ConfigProblem
from pipeline.core.messages import Article, Classification, utc_now
from pipeline.core.redaction import redact
from pipeline.core.settings import AmurSettings, SourceConfig, load_sources, sources_path
from pipeline.core.state import EMITTED, EMITTED_WITHOUT_PAGE, FAILED, RETRYING, ItemTally, Silence, SourceState, StateStore

_PAGE_FAILED = (FAILED, RETRYING, EMITTED_WITHOUT_PAGE)


@dataclass(frozen=True)
class SourceHealth:
    """A configured source and what the state store knows of it."""

    source: SourceConfig
    state: SourceState
    items: dict[str, ItemTally] = field(default_factory=dict)  # StateStore.item_tallies() of the source
    silence: Silence | None = None
    unhealthy_after: int = 5  # connectors.unhealthy_after_failures

    @property
    def status(self) -> str:
        if not self.source.enabled:
            return "disabled"
        if self.state.last_polled_at is None:
            return "never polled"
        if self.state.consecutive_failures >= self.unhealthy_after:
            return "unhealthy"
        if self.state.consecutive_failures:
            return "failing"
        if self._items_failing:
            return "items failing"
        return "silent" if self.silent else "ok"

    @property
    def silent(self) -> bool:
        """Nothing new for several times the source's usual gap (:class:`~pipeline.core.state.Silence`)."""
        return self.silence is not None and self.silence.is_silent(utc_now(), self.source.poll_interval_seconds)

    @property
    def last_new_at(self) -> datetime | None:
        moments = [self.items[status].latest for status in (EMITTED, EMITTED_WITHOUT_PAGE) if status in self.items]
        return max((moment for moment in moments if moment is not None), default=None)

    @property
    def item_failure_rate(self) -> float | None:
        """Items whose page failed (given up, waiting for a retry, or emitted from the feed's
        summary), among every item the source listed."""
        failed = sum(self.items[status].count for status in _PAGE_FAILED if status in self.items)
        return failed / self.items_seen if self.items_seen else None

    @property
    def _items_failing(self) -> bool:
        """The feed answers, but no item's page has become an article since pages began to fail."""
        failed = [self.items[status].latest for status in _PAGE_FAILED if status in self.items]
        if not failed:
            return False
        emitted = self.items.get(EMITTED)
        return emitted is None or emitted.latest < max(moment for moment in failed if moment is not None)

    @property
    def interval_seconds(self) -> float:
        """The current interval: what the last poll chose for an adaptive source, else the configured one."""
        return self.state.interval_seconds or float(self.source.poll_interval_seconds)

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
    silences = store.silences({source.name: source.poll_interval_seconds for source in sources})
    return [
        SourceHealth(
            source, known.get(source.name, SourceState(name=source.name)), tallies.get(source.name, {}),
            silences[source.name], settings.connectors.unhealthy_after_failures,
        )
        for source in sources
    ]


def format_health(rows: list[SourceHealth]) -> str:
    def when(value: datetime | None) -> str:
        return value.strftime("%Y-%m-%d %H:%M:%SZ") if value else "-"

    def rate(value: float | None) -> str:
        return f"{value:.0%}" if value is not None else "-"

    def gap(silence: Silence | None) -> str:
        return f"{silence.usual_gap.total_seconds() / 3600:.1f}h" if silence else "-"

    lines = [
        f"{'source':24} {'status':13} {'last success':21} {'failures':>8} {'items':>6} {'failed':>6} {'every':>6}  "
        f"{'last new item':21} {'usual gap':>9}  {'next poll':21} last error"
    ]
    for row in rows:
        state = row.state
        lines.append(
            f"{row.source.name:24} {row.status:13} {when(state.last_success_at):21} {state.consecutive_failures:>8} "
            f"{row.items_seen:>6} {rate(row.item_failure_rate):>6} {row.interval_seconds:>5.0f}s  "
            f"{when(row.last_new_at):21} {gap(row.silence):>9}  {when(state.next_poll_at):21} {state.last_error or ''}"
        )
    return "\n".join(lines)


def format_sources(sources: list[SourceConfig]) -> str:
    """The configured sources, in file order: what ``amur sources list`` prints."""
    lines = [f"{'source':24} {'kind':9} {'every':>7} {'enabled':8} url or path"]
    lines += [
        f"{source.name:24} {source.kind:9} {source.poll_interval_seconds:>6}s {'yes' if source.enabled else 'no':8} "
        f"{redact(source.location)}"
        for source in sources
    ]
    return "\n".join(lines)


@dataclass(frozen=True)
class DryRun:
    """What one poll of a source would emit, which items would fail, and (optionally) the verdicts."""

    source: SourceConfig
    articles: list[Article]
    failures: list[tuple[str, str]]
    verdicts: dict[str, Classification] = field(default_factory=dict)


def dry_run(
    settings: AmurSettings, config_path: Path, name: str, *, classify: bool = False,
    progress: Callable[[str], None] = lambda line: None,
) -> DryRun:
    """Poll source ``name`` once without producing or recording anything; ``classify`` adds verdicts.
    ``progress`` hears what the poll is doing as it goes: a feed's pages take seconds each to
    fetch, politely, and a silent minute looks like a hang.

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
    source = sources[name]
    progress(f"polling {name}: {redact(source.location)} (at least {settings.fetch.per_host_delay_seconds:g} s between pages of one host)")

    def show(articles) -> None:
        for article in articles:
            progress(f"  extracted: {article.title}")

    try:
        # The scratch state takes what the poll marks emitted as it goes: nothing is kept.
        result = make_connector_factory(context)(source).poll(show)
    finally:
        context.close()
    verdicts = {}
    if classify and result.articles:
        progress(f"classifying {len(result.articles)} article(s); the language models load first")
        from processors.analyze import Analyzer  # loads the spaCy model: only when asked

        analyzed = Analyzer.from_settings(settings.model).analyze(result.articles)
        verdicts = {item.id: item.classification for item in analyzed}
    failures = [(failure.url, str(failure.error)) for failure in result.failures]
    return DryRun(sources[name], result.articles, failures, verdicts)


def format_dry_run(result: DryRun) -> str:
    lines = [f"source {result.source.name}: {len(result.articles)} article(s), {len(result.failures)} failed item(s)"]
    for article in result.articles:
        lines += [f"  + {article.title} ({len(article.text.split())} words)", f"    {article.url}"]
        if article.page_error:
            lines.append(f"    text from the feed's summary; the page failed: {article.page_error}")
        verdict = result.verdicts.get(article.id)
        if verdict is not None:
            parties = ", ".join([*verdict.russian_parties, *verdict.chinese_parties]) or "-"
            lines.append(f"    cooperation={verdict.is_cooperation} score={verdict.score:.2f} parties={parties}")
    for url, error in result.failures:
        lines += [f"  ! {redact(url)}", f"    {redact(error)}"]
    return "\n".join(lines)
