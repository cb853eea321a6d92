"""Reading stories for the dashboard, the JSON API and the HTTP feeds.

Everything here reads the tables the sinks write — ``alerts`` (the newest version of each
story), ``alert_versions``, ``alert_tags`` (:mod:`sinks.alerts`) and ``articles``
(:mod:`sinks.records`) — and never writes. A :class:`StoryFilter` is the one description
of "which stories" that the pages, the API and the ad-hoc feeds share; it is turned into
SQL here, so a filtered page is an index range over ``alert_tags`` rather than a scan.

Pages are cut by a cursor (the last story's date and id), not an offset, so a page stays
cheap however deep it is and a story alerted meanwhile does not shift the next page.
"""

from __future__ import annotations

import base64
import binascii
from collections import defaultdict
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from typing import Annotated

import sqlalchemy as sa
from pydantic import BaseModel, ConfigDict, Field, model_validator

from pipeline.core.messages import Alert, Level, Sector
from pipeline.core.settings import SourceName
from pipeline.core.subscriptions import Filters, Region, Subscription, Vocabulary
from sinks.alerts import alert_tags, alert_versions, alerts, filter_conditions, story_redirects
from sinks.records import articles

__all__ = [
    "CursorError", "PairCount", "StoryFilter", "StoryPage", "count_stories", "every_week", "find_stories", "get_article",
    "get_story", "pair_counts", "sector_counts", "story_versions", "weekly_counts", "weekly_main_sectors",
]

Pair = Annotated[str, Field(pattern=r"^RU-[A-Z]{2,3}:CN-[A-Z]{2}$", examples=["RU-PRI:CN-HL"])]
Language = Annotated[str, Field(pattern=r"^[a-z]{2,3}$", examples=["ru"])]
# A story's (and an article's) id: 32 hex digits.
ID_PATTERN = r"^[0-9a-f]{32}$"
# Bounds on what one request may ask, so that none can burn minutes of the server's time: a
# list filter's values, the days a range may name, the weeks a timeline draws.
MAX_FILTER_VALUES = 100
FIRST_DAY, LAST_DAY = date(1990, 1, 1), date(2100, 12, 31)
Day = Annotated[date, Field(ge=FIRST_DAY, le=LAST_DAY)]
MAX_TIMELINE_WEEKS = 520


class CursorError(ValueError):
    """A ``cursor`` that no page of this API handed out."""


class StoryFilter(BaseModel):
    """Which stories: every filter given must hold; within one filter, any listed value will do."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    region: list[Region] = Field(default_factory=list, max_length=MAX_FILTER_VALUES, description="A federal subject or province taking part")
    pair: list[Pair] = Field(default_factory=list, max_length=MAX_FILTER_VALUES, description="Both regions of a RU-…:CN-… pair take part")
    sector: list[Sector] = Field(default_factory=list, max_length=MAX_FILTER_VALUES)
    level: list[Level] = Field(default_factory=list, max_length=MAX_FILTER_VALUES)
    min_score: float | None = Field(None, ge=0, le=1)
    language: list[Language] = Field(default_factory=list, max_length=MAX_FILTER_VALUES)
    source: list[SourceName] = Field(default_factory=list, max_length=MAX_FILTER_VALUES, description="One of the story's outlets is this source")
    since: Day | None = Field(None, description="Stories dated on or after this day (UTC)")
    until: Day | None = Field(None, description="Stories dated on or before this day (UTC)")
    q: str | None = Field(None, min_length=1, max_length=200, description="Words in the title or the lead")

    @model_validator(mode="after")
    def _ordered_dates(self) -> StoryFilter:
        if self.since and self.until and self.since > self.until:
            raise ValueError("since must not be after until")
        return self

    @classmethod
    def of_subscription(cls, subscription: Subscription) -> StoryFilter:
        """What SQL can select of a subscription's filters (its keywords and excluded sources
        are then checked by :meth:`Subscription.match`)."""
        filters = subscription.filters
        return cls(
            region=filters.regions, pair=[f"{russian}:{chinese}" for russian, chinese in filters.pairs],
            sector=filters.sectors, level=filters.levels, min_score=filters.min_score,
            language=filters.languages, source=filters.sources,
        )

    def as_filters(self) -> Filters:
        """The query as a subscription's filters (the inverse of :meth:`of_subscription`)."""
        return Filters(
            regions=self.region, pairs=[tuple(pair.split(":")) for pair in self.pair], sectors=self.sector,
            levels=self.level, min_score=self.min_score, languages=self.language, sources=self.source,
        )

    def conditions(
        self, story_id: sa.ColumnElement = alerts.c.id, story_at: sa.ColumnElement = alerts.c.story_at,
    ) -> list[sa.ColumnElement[bool]]:
        """The WHERE clauses that select exactly the filtered stories, over rows whose story id
        and date are ``story_id`` and ``story_at`` (the ``alerts`` table's, or a tag's); with
        :meth:`needs_story_row`, ``alerts`` must be joined in too."""
        where = filter_conditions(self.as_filters(), story_id)
        if self.since:
            where.append(story_at >= _day_start(self.since))
        if self.until:
            where.append(story_at < _day_start(self.until + timedelta(days=1)))
        if self.q:
            words = self.q.strip().lower()
            where.append(sa.or_(
                sa.func.lower(alerts.c.title).contains(words, autoescape=True),
                sa.func.lower(alerts.c.headline).contains(words, autoescape=True),
                sa.func.lower(alerts.c.summary).contains(words, autoescape=True),
            ))
        return where

    def unknown_values(self, vocabulary: Vocabulary) -> list[tuple[str, str]]:
        """``(parameter, why)`` for each region, pair side and language that does not exist."""
        return [
            *((name, why) for name, values in (("region", self.region), ("pair", [side for pair in self.pair for side in pair.split(":")]))
              for value in values if (why := vocabulary.unknown_region(value))),
            *(("language", why) for value in self.language if (why := vocabulary.unknown_language(value))),
        ]

    def needs_story_row(self) -> bool:
        """Whether a condition reads a column of ``alerts`` rather than tags and dates."""
        return bool(self.level or self.min_score is not None or self.language or self.q)

    def driving_tag(self) -> tuple[str, str] | None:
        """A tag every filtered story has, if the filter names one: a page is then read in date
        order from that tag's index range, and stops after a page of matches."""
        for kind, values in (("pair", self.pair), ("region", self.region), ("sector", self.sector), ("source", self.source)):
            if len(values) == 1:
                return kind, values[0]
        return None

    def query_pairs(self) -> list[tuple[str, str]]:
        """The filter as URL query pairs, for links that keep it (a page, a feed, a map cell)."""
        pairs = []
        for name, value in self.model_dump(exclude_defaults=True).items():
            for item in value if isinstance(value, list) else [value]:
                pairs.append((name, item.isoformat() if isinstance(item, date) else str(item)))
        return pairs



def _day_start(day: date) -> datetime:
    return datetime.combine(day, time(), tzinfo=UTC)


@dataclass(frozen=True)
class StoryPage:
    """One page of stories, newest first, and the cursor of the next page (``None`` at the end)."""

    stories: list[tuple[Alert, datetime]]  # each with its date
    next_cursor: str | None


def encode_cursor(story_at: datetime, story_id: str) -> str:
    return base64.urlsafe_b64encode(f"{story_at.isoformat()}|{story_id}".encode()).decode().rstrip("=")


def decode_cursor(cursor: str) -> tuple[datetime, str]:
    """:raises CursorError: ``cursor`` is not one :func:`encode_cursor` made."""
    try:
        text = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
        moment, story_id = text.split("|")
        story_at = datetime.fromisoformat(moment)
    except (binascii.Error, UnicodeDecodeError, ValueError):
        raise CursorError("not a cursor this API handed out; use next_cursor of the previous page") from None
    if story_at.tzinfo is None or len(story_id) != 32 or not FIRST_DAY <= story_at.date() <= LAST_DAY:
        raise CursorError("not a cursor this API handed out; use next_cursor of the previous page")
    return story_at, story_id


def find_stories(
    connection: sa.Connection, story_filter: StoryFilter, *, limit: int = 50, cursor: str | None = None,
) -> StoryPage:
    """The filtered stories after ``cursor``, newest first, at most ``limit``.

    :raises CursorError: a cursor this API did not hand out.
    """
    query, dated, key = sa.select(alerts), alerts.c.story_at, alerts.c.id
    driving = story_filter.driving_tag()
    if driving:
        kind, value = driving
        tag = alert_tags.alias("driving")
        query = query.select_from(tag.join(alerts, alerts.c.id == tag.c.story_id))
        # The driving tag's range is that filter: checking it again per story would only cost.
        where = [tag.c.kind == kind, tag.c.value == value, *story_filter.model_copy(update={kind: []}).conditions()]
        dated, key = tag.c.story_at, tag.c.story_id
    else:
        where = story_filter.conditions()
    if cursor:
        story_at, story_id = decode_cursor(cursor)
        where.append(sa.or_(dated < story_at, sa.and_(dated == story_at, key < story_id)))
    rows = connection.execute(
        query.where(*where).order_by(dated.desc(), key.desc()).limit(limit + 1)
    ).mappings().all()
    stories = [(Alert.model_validate(dict(row)), row["story_at"]) for row in rows[:limit]]
    more = len(rows) > limit
    return StoryPage(stories, encode_cursor(rows[limit - 1]["story_at"], rows[limit - 1]["id"]) if more else None)


def count_stories(connection: sa.Connection, story_filter: StoryFilter) -> int:
    """How many stories the filter selects."""
    return connection.execute(sa.select(sa.func.count()).select_from(alerts).where(*story_filter.conditions())).scalar_one()


def get_story(connection: sa.Connection, story_id: str) -> tuple[Alert, datetime] | None:
    """A story's newest version and its date, or ``None``."""
    row = connection.execute(sa.select(alerts).where(alerts.c.id == story_id)).mappings().first()
    return (Alert.model_validate(dict(row)), row["story_at"]) if row else None


MAX_REDIRECTS = 20


def survivor_of(connection: sa.Connection, story_id: str) -> str | None:
    """The story a merged story now continues as (following merges of merges), or ``None``."""
    survivor = None
    for _ in range(MAX_REDIRECTS):
        following = connection.execute(
            sa.select(story_redirects.c.merged_into).where(story_redirects.c.story_id == (survivor or story_id))
        ).scalar_one_or_none()
        if following is None:
            break
        survivor = following
    return survivor


def story_versions(connection: sa.Connection, story_id: str) -> list[tuple[Alert, datetime]]:
    """Every version of a story the sinks wrote, with when; the first first."""
    rows = connection.execute(
        sa.select(alert_versions.c.alert, alert_versions.c.written_at)
        .where(alert_versions.c.story_id == story_id).order_by(alert_versions.c.version)
    ).all()
    return [(Alert.model_validate(alert), written_at) for alert, written_at in rows]


def get_article(connection: sa.Connection, article_id: str) -> dict | None:
    """The record of one article as the records sink wrote it, or ``None``."""
    row = connection.execute(sa.select(articles).where(articles.c.id == article_id)).mappings().first()
    return dict(row) if row else None


@dataclass(frozen=True)
class PairCount:
    """How many stories one Russian region and one Chinese province share, and in which sectors."""

    russian: str
    chinese: str
    stories: int
    sectors: dict[str, int]


def pair_counts(connection: sa.Connection, story_filter: StoryFilter) -> list[PairCount]:
    """Every RU × CN pair of regions taking part in a filtered story, busiest first."""
    per_kind = {kind: _tag_counts(connection, story_filter, kind) for kind in ("pair", "pair_sector")}
    sectors: dict[str, dict[str, int]] = defaultdict(dict)
    for value, count in per_kind["pair_sector"]:
        russian, chinese, sector = value.split(":")
        sectors[f"{russian}:{chinese}"][sector] = count
    pairs = [
        PairCount(*value.split(":"), count, dict(sorted(sectors[value].items(), key=lambda item: (-item[1], item[0]))))
        for value, count in per_kind["pair"]
    ]
    return sorted(pairs, key=lambda found: (-found.stories, found.russian, found.chinese))


def sector_counts(connection: sa.Connection, story_filter: StoryFilter) -> dict[str, int]:
    """Filtered stories per sector, busiest first (a story counts once in each of its sectors)."""
    return dict(sorted(_tag_counts(connection, story_filter, "sector"), key=lambda row: (-row[1], row[0])))


def _tag_counts(connection: sa.Connection, story_filter: StoryFilter, kind: str) -> list[tuple[str, int]]:
    """``(value, stories)`` of every tag of ``kind`` the filtered stories carry."""
    tag = alert_tags.alias(kind)
    source = tag.join(alerts, alerts.c.id == tag.c.story_id) if story_filter.needs_story_row() else tag
    return [tuple(row) for row in connection.execute(
        sa.select(tag.c.value, sa.func.count()).select_from(source)
        .where(tag.c.kind == kind, *story_filter.conditions(tag.c.story_id, tag.c.story_at))
        .group_by(tag.c.value)
    )]


def _day(value: date | str) -> date:
    """A date column's value: PostgreSQL gives a date, SQLite its ISO text."""
    return value if isinstance(value, date) else date.fromisoformat(value)


def _story_week(connection: sa.Connection) -> sa.ColumnElement:
    """The Monday of a story's ISO week (UTC)."""
    if connection.dialect.name == "postgresql":
        return sa.cast(sa.func.date_trunc("week", sa.func.timezone("UTC", alerts.c.story_at)), sa.Date)
    return sa.func.date(alerts.c.story_at, "weekday 0", "-6 days")  # SQLite stores UTC: the Monday on or before


def weekly_main_sectors(connection: sa.Connection, story_filter: StoryFilter) -> dict[date, dict[str, int]]:
    """Filtered stories per ISO week and main sector (its first, the one most named; ``none``
    for a story without one): each story counted once, so a week's sectors add up to its stories."""
    week = _story_week(connection)
    main = sa.func.coalesce(alerts.c.sectors[0].as_string(), "none")
    rows = connection.execute(
        sa.select(week.label("week"), main.label("sector"), sa.func.count())
        .where(*story_filter.conditions()).group_by("week", "sector")
    ).all()
    weeks: dict[date, dict[str, int]] = defaultdict(dict)
    for value, sector, count in rows:
        weeks[_day(value)][sector] = count
    return dict(weeks)


def weekly_counts(connection: sa.Connection, story_filter: StoryFilter) -> list[tuple[date, int]]:
    """Filtered stories per ISO week (by its Monday), every week from the first to the last,
    at most the last :data:`MAX_TIMELINE_WEEKS`."""
    week = _story_week(connection)
    rows = connection.execute(
        sa.select(week.label("week"), sa.func.count()).where(*story_filter.conditions()).group_by("week")
    ).all()
    return every_week({_day(value): count for value, count in rows})


def every_week(counts: Mapping[date, int]) -> list[tuple[date, int]]:
    """``counts`` (Monday → stories) for every week from the first to the last, at most the
    last :data:`MAX_TIMELINE_WEEKS`, a week without stories counting 0."""
    if not counts:
        return []
    last = max(counts)
    first = max(min(counts), last - timedelta(weeks=MAX_TIMELINE_WEEKS - 1))
    weeks = [first + timedelta(weeks=index) for index in range((last - first).days // 7 + 1)]
    return [(monday, counts.get(monday, 0)) for monday in weeks]
