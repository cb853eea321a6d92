"""``amur status``: the pipeline's health on one screen.

Sources (status and last success, from the state store), what each role's consumer group
has yet to read (from the transport, without joining a group), dead letters by stage (from
the dead-letter topic) and the last alert (from the alerts sink's table) — the view an
operator wants first when something looks wrong.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import sqlalchemy as sa

from pipeline.app.dlq import read_letters
from pipeline.app.roles import Runtime, pipeline_lag
from pipeline.app.sources import SourceHealth, source_health
from pipeline.core.db import make_engine
from pipeline.core.migrations import upgrade_database
from sinks.alerts import alerts

__all__ = ["PipelineStatus", "format_status", "pipeline_status"]


@dataclass(frozen=True)
class PipelineStatus:
    sources: list[SourceHealth]
    lag: dict[str, int | None]  # role → records its group has not committed (None: no topic yet)
    dead_letters: Counter  # stage → letters on the dead-letter topic
    last_alert: tuple[datetime, str] | None  # when and which story


def pipeline_status(runtime: Runtime, config_path: Path) -> PipelineStatus:
    settings = runtime.settings
    engine = make_engine(settings.database_url)
    try:
        upgrade_database(engine)  # the alerts table is read below: the schema must be current
        sources = source_health(settings, config_path, engine=engine)
        with engine.connect() as connection:
            # The last alert written, a new story or a new version of one (an update counts).
            last = sa.func.coalesce(alerts.c.updated_at, alerts.c.alerted_at, type_=alerts.c.alerted_at.type)
            row = connection.execute(sa.select(last, alerts.c.title).order_by(last.desc()).limit(1)).first()
    finally:
        engine.dispose()
    letters = Counter(letter.stage for letter in read_letters(settings, runtime.transport, runtime.topics))
    return PipelineStatus(sources, pipeline_lag(settings, runtime.transport), letters, (row[0], row[1]) if row else None)


def format_status(status: PipelineStatus) -> str:
    by_status = Counter(row.status for row in status.sources)
    lines = [f"sources: {len(status.sources)} — " + ", ".join(f"{count} {name}" for name, count in sorted(by_status.items()))]
    attention = [row for row in status.sources if row.status not in ("ok", "disabled", "never polled")]
    lines += [f"  {row.source.name}: {row.status}" + (f" — {row.state.last_error}" if row.state.last_error else "") for row in attention]
    lines.append("lag (records not yet committed): " + ", ".join(
        f"{role} {'-' if lag is None else lag}" for role, lag in status.lag.items()
    ))
    total = sum(status.dead_letters.values())
    by_stage = ", ".join(f"{stage} {count}" for stage, count in sorted(status.dead_letters.items()))
    lines.append(f"dead letters: {total} — {by_stage}  (amur dlq list)" if total else "dead letters: 0")
    if status.last_alert:
        when, title = status.last_alert
        lines.append(f"last alert: {when.strftime('%Y-%m-%d %H:%M:%SZ')} {title}")
    else:
        lines.append("last alert: none yet")
    return "\n".join(lines)
