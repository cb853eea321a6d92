"""Operator views of the dead-letter topic: list the letters, and replay them after a fix.

:func:`read_letters` reads the whole topic with a consumer group of its own that never
commits, so listing changes nothing for anyone. :func:`replay` re-sends each chosen letter's
original value to its original topic, under its original key, and records the replay in the
database (``dead_letter_replays``): a letter replayed once is not sent again unless asked
(``again``), so running the same replay twice changes nothing. What cannot be replayed says
why: a letter of a source's item or a webhook delivery has no topic to go back to, and a
value longer than the letter could hold (64 KiB) was cut.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta

import sqlalchemy as sa
from sqlalchemy import Engine

from pipeline.app.roles import group_name
from pipeline.core.db import chunked, upsert
from pipeline.core.dead_letters import PAYLOAD_LIMIT, RAW_PAYLOAD_LIMIT, dead_letter_replays
from pipeline.core.errors import MessageError
from pipeline.core.messages import DeadLetter, decode, utc_now
from pipeline.core.settings import AmurSettings
from pipeline.core.topology import Topics
from pipeline.core.transport.base import Transport

__all__ = ["LetterFilter", "ReplayReport", "format_letters", "parse_since", "read_letters", "replay"]

READ_TIMEOUT_SECONDS = 60.0

@dataclass(frozen=True)
class LetterFilter:
    """Which letters: by stage, original topic, time of failure and id (all optional)."""

    stage: str | None = None
    topic: str | None = None
    since: datetime | None = None
    ids: frozenset[str] = frozenset()

    def __call__(self, letter: DeadLetter) -> bool:
        return (
            (self.stage is None or letter.stage == self.stage)
            and (self.topic is None or letter.topic == self.topic)
            and (self.since is None or letter.failed_at >= self.since)
            and (not self.ids or letter.id in self.ids)
        )


@dataclass
class ReplayReport:
    """What a replay did with each chosen letter."""

    sent: list[DeadLetter] = field(default_factory=list)
    already: list[DeadLetter] = field(default_factory=list)  # replayed before; sent again only with `again`
    refused: list[tuple[DeadLetter, str]] = field(default_factory=list)  # and why

    def describe(self) -> str:
        lines = [f"replayed {len(self.sent)}, already replayed {len(self.already)}, not replayable {len(self.refused)}"]
        lines += [f"  sent {letter.id} → {letter.topic}" for letter in self.sent]
        lines += [f"  skipped {letter.id}: replayed before (--again to send it once more)" for letter in self.already]
        lines += [f"  refused {letter.id}: {why}" for letter, why in self.refused]
        return "\n".join(lines)


def parse_since(value: str | None, now: datetime | None = None) -> datetime | None:
    """"30m", "24h", "7d" ago, or an ISO 8601 time (UTC when it has no offset).

    :raises ValueError: neither, with what is accepted.
    """
    if not value:
        return None
    now = now or utc_now()
    relative = re.fullmatch(r"(\d+)\s*([mhd])", value.strip())
    if relative:
        unit = {"m": "minutes", "h": "hours", "d": "days"}[relative.group(2)]
        return now - timedelta(**{unit: int(relative.group(1))})
    try:
        moment = datetime.fromisoformat(value.strip())
    except ValueError:
        raise ValueError(f"--since {value!r}: give a duration such as 30m, 24h or 7d, or a time such as 2026-12-01T08:00") from None
    return moment if moment.tzinfo else moment.replace(tzinfo=now.tzinfo)


def read_letters(settings: AmurSettings, transport: Transport, topics: Topics, keep: LetterFilter | None = None) -> list[DeadLetter]:
    """Every letter on the dead-letter topic that ``keep`` accepts, oldest first.

    A letter that is itself unreadable is skipped (it cannot be listed or replayed).
    """
    reader = transport.consumer(f"{group_name(settings, 'dlq-reader')}-{uuid.uuid4().hex[:12]}", [topics.dlq])
    letters: list[DeadLetter] = []
    started = utc_now()
    try:
        while (utc_now() - started).total_seconds() < READ_TIMEOUT_SECONDS:
            records = reader.poll(500, 1.0)
            for record in records:
                try:
                    letters.append(decode(DeadLetter, record.value))
                except MessageError:
                    continue
            if not records and reader.lag() == 0:
                break
    finally:
        reader.close()  # never committed: the next reader starts from the beginning again
    letters.sort(key=lambda letter: letter.failed_at)
    return [letter for letter in letters if keep is None or keep(letter)]


def replay(
    letters: Sequence[DeadLetter], transport: Transport, engine: Engine, topics: Topics, *, again: bool = False,
) -> ReplayReport:
    """Send each letter's value back to its topic, once (see the module docstring)."""
    report = ReplayReport()
    done = _replayed(engine, [letter.id for letter in letters])
    producer = transport.producer()
    try:
        for letter in letters:
            why = _not_replayable(letter, topics)
            if why:
                report.refused.append((letter, why))
            elif letter.id in done and not again:
                report.already.append(letter)
            else:
                producer.produce(letter.topic, (letter.key or "").encode("utf-8"), letter.value())
                report.sent.append(letter)
        producer.flush()
    finally:
        producer.close()
    if report.sent:  # only once the broker has them: a failed flush replays nothing twice
        now = utc_now()
        rows = [{"letter_id": letter.id, "topic": letter.topic, "replayed_at": now} for letter in report.sent]
        with engine.begin() as connection:
            connection.execute(upsert(engine, dead_letter_replays, key=["letter_id"]), rows)
    return report


def _not_replayable(letter: DeadLetter, topics: Topics) -> str | None:
    if letter.topic is None:
        return "it is not a topic record (a source's item or a webhook delivery): fix the source, it is fetched again"
    if letter.topic not in topics.all():
        return f"its topic {letter.topic} is not one of this deployment's ({', '.join(topics.all())})"
    limit = RAW_PAYLOAD_LIMIT if letter.payload_encoding == "base64" else PAYLOAD_LIMIT
    if len(letter.value()) >= limit:
        return f"its value was longer than the {limit // 1024} KiB a letter keeps, so only part of it is there"
    return None


def _replayed(engine: Engine, ids: Iterable[str]) -> set[str]:
    found: set[str] = set()
    with engine.connect() as connection:
        for chunk in chunked(sorted(set(ids))):
            found.update(connection.execute(
                sa.select(dead_letter_replays.c.letter_id).where(dead_letter_replays.c.letter_id.in_(chunk))
            ).scalars())
    return found


def format_letters(letters: Sequence[DeadLetter]) -> str:
    """One line per letter, oldest first: what ``amur dlq list`` prints."""
    lines = [f"{'failed at':20} {'stage':11} {'error':17} {'from':34} {'id':40} reason"]
    for letter in letters:
        origin = f"{letter.topic}:{letter.partition}:{letter.offset}" if letter.topic else "-"
        stage = f"{letter.stage}/{letter.sink}" if letter.sink else letter.stage
        reason = letter.reason if len(letter.reason) <= 160 else letter.reason[:157] + "..."
        lines.append(
            f"{letter.failed_at.strftime('%Y-%m-%d %H:%M:%SZ'):20} {stage:11} {letter.error_type:17} {origin:34} "
            f"{letter.id[:40]:40} {reason}"
        )
    lines.append(f"{len(letters)} letter(s)")
    return "\n".join(lines)
