"""Story clustering: copies and rewrites of one story from several outlets become one alert.

The ``stories`` stage reads ``classified`` and writes ``alerts``. Each cooperation article
(at or above ``alerts.min_score``) is matched against the stories open at its time: those
with an article within ``stories.window_days`` of it. An article's time is its publication
time where the page gave one, and its arrival otherwise, so that a backfill or a replay
archive groups articles as the live stream would have. A story is found in two ways:

1. **By text, for copies and rewrites.** The article's text is cut into word 3-grams
   (character 3-grams for Chinese and Japanese) and summarised as a 128-value MinHash
   (datasketch). The signature is split into 32 bands of 4 values; a story whose stored bands
   share at least one band with the article is a candidate (two texts with Jaccard similarity
   0.5 share a band with probability 0.87, texts at 0.2 with probability 0.05). It matches
   when the estimated Jaccard similarity of the texts is at least ``stories.text_threshold``,
   or at least half of it with titles that share at least ``stories.title_threshold`` of
   their words (a rewrite under a new headline).
2. **By the event, in any language.** The gazetteer gives every place, body and company
   one canonical id whatever the language, and figures are normalised to value and unit, so
   "USD 500 million", "500 млн долларов" and "5亿美元" agree. A story naming at least one of
   the article's entities in a time bucket near it is a candidate (an entity that over
   :data:`MAX_ENTITY_POSTINGS` stories near it name finds none); it matches when
   :func:`event_similarity` reaches ``stories.event_threshold`` (see there for the weights)
   and, in the story's own language, their headlines share ``stories.title_threshold`` of
   their words, they state the same sum, or the act one of them names most is singular (a
   visit, an opening, a construction milestone: :data:`SINGULAR_ACTS`) and the other names it
   too: the same two regions' grain corridor and bridge freight deal on one day share every
   name, a sector and many words, but neither a headline nor a sum, and a signing is not
   singular.

A match adds the article to the story: its outlet, merged parties, regions, sectors and
figures, the better evidence, and one more ``version``; no match opens a new story whose
id is the article's id. The alert carries the whole story, so every sink upserts it by id.

An article that matches several open stories shows that they report one event (a Russian
report opened one story, a Chinese one another, and an English one names what both share):
they merge. The oldest keeps its id and absorbs the others' outlets and facts (their ids in
``merged_from``); each other story is retired with a last version naming the survivor in
``merged_into``, and its articles, bands and entities become the survivor's, so later
reports find the survivor. The sinks drop a retired story from every list and feed, the API
redirects its id, and webhook subscribers get ``story.merged``.

Each story's ``headline`` is what a subscriber reads first: the title of its first English
article, else its English gist (see :func:`headline`).

The clustering state lives in the database (tables ``stories``, ``story_bands``,
``story_entities``, ``story_articles``), not in a process: reports of one event arrive on
different partitions, and a restart must remember every open story. Band and entity rows
are indexed (entities by time bucket), so the cost per article does not grow with the
number of stories. Each batch is one transaction; on PostgreSQL it first takes a
transaction-scoped advisory lock for each of its bands and of its entities in each bucket it
reads, in order, so two members handling reports of one event one after the other see each
other's story instead of both opening one; members with unrelated batches do not wait for
each other. On SQLite the batch's transaction takes the database's write lock before it reads
(``BEGIN IMMEDIATE``), which serialises members the same way.

An article already in a story (a replay after a crash) re-emits the story as it is, with no
new version, after the last versions of the stories its arrival retired: the alerts are the
same, and so is every sink's row.
"""

from __future__ import annotations

import hashlib
import logging
import re
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

import sqlalchemy as sa
from sqlalchemy import Engine

from pipeline.core.db import UTCDateTime, advisory_locks, insert_missing, make_engine, metadata
from pipeline.core.errors import MessageError, SinkError
from pipeline.core.messages import Alert, Classified, Entity, Figure, Outlet, decode, encode, utc_now
from pipeline.core.migrations import upgrade_database
from pipeline.core.settings import StorySettings
from pipeline.core.stages import Stage, StageContext
from pipeline.core.transport.base import Record
from processors.datelines import dateline_span
from processors.gazetteer import REGION_KINDS, Gazetteer, load_gazetteer
from processors.gist import gist
from processors.languages import HAN_RANGES
from processors.lead import lead
from processors.venues import is_venue, names_city_body

if TYPE_CHECKING:
    from datasketch import MinHash

__all__ = ["EventFacts", "Placement", "StoryIndex", "StoryStage", "alert_for", "entity_overlap", "event_facts", "event_similarity", "regions_of", "signature"]

log = logging.getLogger(__name__)

NUM_PERM = 128
BANDS = 32
ROWS = NUM_PERM // BANDS
SHINGLE = 3
# Named, so that signatures stored in the database stay comparable across datasketch releases.
MINHASH_SCHEME = "affine32"
MAX_EVIDENCE = 3
# A story's size is bounded whatever its sources send: the outlets it lists (the rest are
# counted), the figures it keeps, and each title and evidence sentence it carries. An alert
# then stays far below a topic's 1 MB, and so does each of its stored versions.
MAX_OUTLETS = 50
MAX_FIGURES = 20
MAX_TEXT_CHARS = 500
# Entity rows are kept per week of article time; a story window of W days reads the
# buckets that [t - W, t + W] touches (5 for the default two weeks' window).
BUCKET_DAYS = 7
# How much an entity shared by an article and a story says that they report one event. The
# offices at the top of each state and the capitals standing for them take part in events of
# every kind; a region narrows it down; a city, a company or a named body narrows it most.
WEIGHT_TOP_OFFICE = 0.3
WEIGHT_REGION = 1.0
WEIGHT_SPECIFIC = 1.5
# An entity that this many stories near the article's time name already (the head of state in
# a busy week) finds no candidates: it says little, and reading all of them would make the
# cost per article grow with the stream. It still counts in the similarity of the candidates
# the other entities and the text find.
MAX_ENTITY_POSTINGS = 200
# A money figure stated by both (same value and unit) is nearly a fingerprint of the deal.
SHARED_MONEY_BONUS = 0.3
# Sectors in common add at most this much (by their Jaccard similarity).
SECTOR_WEIGHT = 0.2
# Acts the same parties perform once in a few days: a visit, an opening, a construction
# milestone. Two reports in one language of the same parties telling one of them tell one
# event. Not a signing, a shipment, talks or a forum: one visit signs a dozen deals, each its
# own story.
SINGULAR_ACTS = ("visit", "opened", "construction")
# Matching again after a concurrent member merged the matched story away: each attempt finds
# the story it joined, so a second attempt settles it; more mean something else is wrong.
MATCH_ATTEMPTS = 3

_WORD = re.compile(r"\w+")
# Kana and Han: Japanese and Chinese, written without spaces between words.
_CJK = re.compile(f"[\u3040-\u30ff{HAN_RANGES}]")

stories = sa.Table(
    "stories", metadata,
    sa.Column("id", sa.String(32), primary_key=True),
    sa.Column("version", sa.Integer, nullable=False),
    sa.Column("signature", sa.JSON, nullable=False),
    sa.Column("alert", sa.JSON, nullable=False),
    sa.Column("created_at", UTCDateTime, nullable=False),
    sa.Column("updated_at", UTCDateTime, nullable=False, index=True),
    sa.Column("entities", sa.JSON, nullable=False),
    sa.Column("first_at", UTCDateTime, nullable=False),
    sa.Column("last_at", UTCDateTime, nullable=False),
    sa.Column("merged_into", sa.String(32)),  # set when the story was retired into another
    sa.Column("merged_by", sa.String(32), index=True),  # the article whose match merged it
)

story_bands = sa.Table(
    "story_bands", metadata,
    sa.Column("band", sa.BigInteger, primary_key=True),
    sa.Column("story_id", sa.String(32), primary_key=True),
)

story_entities = sa.Table(
    "story_entities", metadata,
    sa.Column("entity_id", sa.String(96), primary_key=True),
    sa.Column("bucket", sa.Integer, primary_key=True),
    sa.Column("story_id", sa.String(32), primary_key=True),
)

story_articles = sa.Table(
    "story_articles", metadata,
    sa.Column("article_id", sa.String(32), primary_key=True),
    sa.Column("story_id", sa.String(32), nullable=False, index=True),
)


def shingles(text: str) -> set[str]:
    """Word 3-grams of ``text`` (character 3-grams where the text is mostly CJK)."""
    lowered = text.lower()
    if len(_CJK.findall(lowered)) * 2 > len(lowered.replace(" ", "")):
        units = [char for char in lowered if not char.isspace()]
    else:
        units = _WORD.findall(lowered)
    if len(units) < SHINGLE:
        return {" ".join(units)} if units else set()
    return {" ".join(units[index:index + SHINGLE]) for index in range(len(units) - SHINGLE + 1)}


def minhash_of(hashvalues: Sequence[int] | None = None) -> MinHash:
    """An empty signature, or the stored one of ``hashvalues``."""
    # Imported here: every role reads the stages' specs from their classes, and the connectors
    # and the sinks need not load the story index's numerics (datasketch brings numpy and
    # scipy, some 50 MB a process).
    from datasketch import MinHash

    return MinHash(num_perm=NUM_PERM, hashvalues=hashvalues, scheme=MINHASH_SCHEME)


def signature(text: str) -> MinHash:
    minhash = minhash_of()
    minhash.update_batch([shingle.encode("utf-8") for shingle in shingles(text)])
    return minhash


def bands(minhash: MinHash) -> list[int]:
    """The LSH band keys of a signature: a signed 64-bit hash of each band's number and rows.

    Integers keep the band index small (it holds ``BANDS`` rows per story), and they double
    as PostgreSQL advisory lock keys.
    """
    values = minhash.hashvalues
    return [
        int.from_bytes(
            hashlib.blake2b(values[number * ROWS:(number + 1) * ROWS].tobytes(), digest_size=8, person=b"band%04d" % number)
            .digest(), "big", signed=True,
        )
        for number in range(BANDS)
    ]


def _title_words(title: str) -> set[str]:
    return {word for word in _WORD.findall(title.lower()) if len(word) > 2}


def title_similarity(first: str, second: str) -> float:
    a, b = _title_words(first), _title_words(second)
    return len(a & b) / len(a | b) if a and b else 0.0


def regions_of(result: Classified, gazetteer: Gazetteer) -> list[str]:
    """Every federal subject and province the article involves: its parties' regions, and
    each region named in the text, or through a city of its, except where the naming says
    nothing of who takes part: in the dateline ("MOSCOW, May 5 (TASS) –"), as a venue or a
    foreign mission's seat (:func:`processors.venues.is_venue`), or a capital, which news
    uses as shorthand for its state and as the venue of every state visit, unless it is named
    with an institution of its own ("the Moscow Zoo"; a capital's own government is a party,
    through the classifier)."""
    text = result.article.text
    dateline_start, dateline_end = dateline_span(text, result.article.title)

    def takes_part(entity: Entity) -> bool:
        if dateline_start <= entity.start < dateline_end or is_venue(text, entity.start, entity.end):
            return False
        return not _stands_for_state(entity.canonical_id, gazetteer) or names_city_body(text, entity.start, entity.end)

    mentioned = [entity.canonical_id for entity in result.entities if entity.canonical_id and takes_part(entity)]
    found: list[str] = []
    for candidate in [*result.classification.russian_parties, *result.classification.chinese_parties, *mentioned]:
        region = _region(candidate, gazetteer)
        if region and region not in found:
            found.append(region)
    return found


def _stands_for_state(entry_id: str, gazetteer: Gazetteer) -> bool:
    try:
        return gazetteer[entry_id].metonym_of is not None
    except KeyError:
        return False


def _region(entry_id: str, gazetteer: Gazetteer) -> str | None:
    try:
        entry = gazetteer[entry_id]
    except KeyError:
        return None
    if entry.kind in REGION_KINDS:
        return entry.id
    if entry.kind in ("city", "institution") and entry.parent:  # a city's, or a university's
        return _region(entry.parent, gazetteer)
    return None


@dataclass(frozen=True)
class EventFacts:
    """What an article or a story says about its event that reads the same in every language."""

    entities: frozenset[str]  # canonical ids, the countries themselves left out
    money: frozenset[tuple[float, str]]  # (value, unit)
    sectors: frozenset[str]

    @classmethod
    def of_story(cls, entities: Iterable[str], alert: dict) -> EventFacts:
        return cls(
            frozenset(entities),
            frozenset((figure["value"], figure["unit"]) for figure in alert.get("figures", []) if figure["kind"] == "money"),
            frozenset(alert.get("sectors", [])),
        )


def event_facts(result: Classified, gazetteer: Gazetteer) -> EventFacts:
    """The facts of ``result``; a city brings its region too, since one report names the
    place ("Harbin") where another names its province ("Heilongjiang")."""
    named = {entity.canonical_id for entity in result.entities if entity.canonical_id and entity.canonical_id != entity.country}
    regions = {region for entity_id in named if (region := _region(entity_id, gazetteer)) is not None}
    return EventFacts(
        frozenset(named | regions),
        frozenset((figure.value, figure.unit) for figure in result.figures if figure.kind == "money"),
        frozenset(result.classification.sectors),
    )


def entity_overlap(article: frozenset[str], story: frozenset[str], weight: Callable[[str], float]) -> float:
    """The weighted overlap of two sets of entities: the weight of those in common over the
    smaller side's total, so a short report naming two of a long report's ten places still
    matches it; 0 unless they share two entities, or one that is specific (a city, a company
    or a named body), since one region or one head of state alone is named by too many events."""
    shared = article & story
    if len(shared) < 2 and not any(weight(entity_id) >= WEIGHT_SPECIFIC for entity_id in shared):
        return 0.0
    return sum(map(weight, shared)) / min(sum(map(weight, article)), sum(map(weight, story)))


def event_similarity(article: EventFacts, story: EventFacts, weight: Callable[[str], float]) -> float:
    """How surely ``article`` reports the event of ``story``.

    The base is their :func:`entity_overlap`. A money figure both state adds
    :data:`SHARED_MONEY_BONUS`; the sectors add up to :data:`SECTOR_WEIGHT` by their
    Jaccard similarity, and when they have no sector in common, they are two deals of the
    same parties: 0 (not a sector each names most: one report of a transshipment terminal
    counts its trade, another its energy cargo). When all they share is heads of state and
    capitals (the two leaders in a capital, which every event of a summit names), only what each
    report is about can tell one of the summit's events from another: 0 unless both have
    sectors to compare.
    """
    similarity = entity_overlap(article.entities, story.entities, weight)
    if not similarity:
        return 0.0
    state_level_only = all(weight(entity_id) < WEIGHT_REGION for entity_id in article.entities & story.entities)
    if state_level_only and not (article.sectors and story.sectors):
        return 0.0
    if article.money & story.money:
        similarity += SHARED_MONEY_BONUS
    if article.sectors and story.sectors:
        common = article.sectors & story.sectors
        if not common:
            return 0.0  # what each is about, the other is not: two deals of the same parties
        similarity += SECTOR_WEIGHT * len(common) / len(article.sectors | story.sectors)
    return similarity


def _tell_one_singular_act(first: Sequence[str], second: Sequence[str]) -> bool:
    """Whether the act one names most is singular and the other names it too."""
    return any(acts[:1] and acts[0] in SINGULAR_ACTS and acts[0] in other for acts, other in ((first, second), (second, first)))


def bucket(moment: datetime) -> int:
    return int(moment.timestamp() // (BUCKET_DAYS * 86_400))


def _buckets_around(moment: datetime, window: timedelta) -> range:
    return range(bucket(moment - window), bucket(moment + window) + 1)


def _lock_key(entity_id: str, number: int) -> int:
    return int.from_bytes(hashlib.blake2b(f"{entity_id}|{number}".encode(), digest_size=8, person=b"entity").digest(), "big", signed=True)


def article_time(result: Classified) -> datetime:
    """When the article's event happened, as far as the stream knows: its publication time,
    unless the page gave none or one after the article arrived; its arrival otherwise."""
    article = result.article
    published = article.published_at
    return published if published is not None and published <= article.fetched_at else article.fetched_at


def entity_weight(gazetteer: Gazetteer, entity_id: str) -> float:
    """How much sharing ``entity_id`` says (see :data:`WEIGHT_TOP_OFFICE` and the others)."""
    try:
        entry = gazetteer[entity_id]
    except KeyError:
        return WEIGHT_SPECIFIC
    if entry.metonym_of or "top_office" in entry.tags:
        return WEIGHT_TOP_OFFICE
    if entry.kind in REGION_KINDS:
        return WEIGHT_REGION
    return WEIGHT_SPECIFIC


def _merged(first: Sequence, second: Sequence) -> list:
    return [*first, *(item for item in second if item not in first)]


@dataclass(frozen=True)
class Placement:
    """Where an article went: its story's new (or, on a replay, current) version, and the
    last versions of the stories that story absorbed because of it."""

    story: Alert
    retired: tuple[Alert, ...] = ()

    @property
    def alerts(self) -> list[Alert]:
        """What goes on the alerts topic, the retired stories first."""
        return [*self.retired, self.story]


class StoryIndex:
    """The open stories in the database, and how an article joins one (see the module docstring)."""

    def __init__(self, engine: Engine, settings: StorySettings, gazetteer: Gazetteer):
        self.engine = engine
        self.settings = settings
        self.gazetteer = gazetteer
        self._weights: dict[str, float] = {}

    def setup(self) -> None:
        upgrade_database(self.engine)
        minhash_of()  # the numerics load now, not while the first story's article waits

    def add(self, results: Sequence[Classified]) -> list[Placement]:
        """Put each article in its story; returns where each went, in order."""
        window = timedelta(days=self.settings.window_days)
        prepared = [(result, signature(result.article.text), event_facts(result, self.gazetteer), article_time(result)) for result in results]
        with self.engine.begin() as connection:
            if connection.dialect.name == "postgresql":
                keys = {band for _, minhash, _, _ in prepared for band in bands(minhash)}
                keys |= {
                    _lock_key(entity_id, number)
                    for _, _, facts, moment in prepared for entity_id in facts.entities for number in _buckets_around(moment, window)
                }
                advisory_locks(connection, keys)
            else:  # SQLite: take the write lock before reading, not at the first write
                connection.exec_driver_sql("BEGIN IMMEDIATE")
            return [self._add_one(connection, *item) for item in prepared]

    def entity_weight(self, entity_id: str) -> float:
        weight = self._weights.get(entity_id)
        if weight is None:
            weight = self._weights[entity_id] = entity_weight(self.gazetteer, entity_id)
        return weight

    def _add_one(
        self, connection: sa.Connection, result: Classified, minhash: MinHash, facts: EventFacts, moment: datetime,
    ) -> Placement:
        known = connection.execute(
            sa.select(stories.c.alert).join(story_articles, story_articles.c.story_id == stories.c.id)
            .where(story_articles.c.article_id == result.id)
        ).scalar_one_or_none()
        if known is not None:  # a replay: the story as it stands, after what this article merged into it
            retired = connection.execute(
                sa.select(stories.c.alert).where(stories.c.merged_by == result.id).order_by(stories.c.id)
            ).scalars().all()
            return Placement(Alert.model_validate(known), tuple(Alert.model_validate(alert) for alert in retired))
        keys = bands(minhash)
        now = utc_now()
        for _ in range(MATCH_ATTEMPTS):
            matches = self._matches(connection, result, minhash, keys, facts, moment)
            if not matches:
                alert, retired = self._new_story(result, now), []
                connection.execute(sa.insert(stories).values(
                    id=alert.id, version=1, signature=[int(value) for value in minhash.hashvalues],
                    alert=alert.model_dump(mode="json"), created_at=now, updated_at=now,
                    entities=sorted(facts.entities), first_at=moment, last_at=moment,
                ))
                break
            placed = self._join(connection, result, facts, moment, matches, now)
            if placed is not None:
                alert, retired = placed
                break
        else:
            raise SinkError(f"stories: article {result.id} kept matching stories other members merged away; the batch is handled again")
        band_rows = [{"band": key, "story_id": alert.id} for key in keys]
        connection.execute(insert_missing(self.engine, story_bands, key=["band", "story_id"]), band_rows)
        if facts.entities:
            entity_rows = [{"entity_id": entity_id, "bucket": bucket(moment), "story_id": alert.id} for entity_id in sorted(facts.entities)]
            connection.execute(insert_missing(self.engine, story_entities, key=["entity_id", "bucket", "story_id"]), entity_rows)
        connection.execute(sa.insert(story_articles).values(article_id=result.id, story_id=alert.id))
        return Placement(alert, tuple(retired))

    def _join(
        self, connection: sa.Connection, result: Classified, facts: EventFacts, moment: datetime, matches: list, now,
    ) -> tuple[Alert, list[Alert]] | None:
        """Add ``result`` to the stories it matches: they report one event, so the oldest (whose
        subscribers have seen it longest) keeps its id and absorbs the others. Returns its new
        version and the others' last ones; ``None`` when another stories member retired the
        survivor since it was read (its story is then found again under the one it joined)."""
        survivor, *others = sorted(matches, key=lambda match: (match["created_at"], match["id"]))
        story = Alert.model_validate(survivor["alert"])
        entities, first_at, last_at = set(survivor["entities"]) | facts.entities, survivor["first_at"], survivor["last_at"]
        for other in others:
            absorbed = Alert.model_validate(other["alert"])
            story = _absorbed(story, absorbed).model_copy(
                update={"merged_from": _merged(story.merged_from, [absorbed.id, *absorbed.merged_from])},
            )
            entities |= set(other["entities"])
            first_at, last_at = min(first_at, other["first_at"]), max(last_at, other["last_at"])
        alert = self._joined(story, result, now)
        if others and alert.version == story.version:  # a merge is news even past the outlet cap
            alert = alert.model_copy(update={"version": story.version + 1, "updated_at": now})
        updated = connection.execute(sa.update(stories).where(stories.c.id == alert.id, stories.c.merged_into.is_(None)).values(
            version=alert.version, alert=alert.model_dump(mode="json"), updated_at=now,
            entities=sorted(entities), first_at=min(first_at, moment), last_at=max(last_at, moment),
        ))
        if updated.rowcount != 1:
            return None
        retired = [self._retire(connection, Alert.model_validate(other["alert"]), alert.id, result.id, now) for other in others]
        return alert, [notice for notice in retired if notice is not None]

    def _retire(self, connection: sa.Connection, story: Alert, survivor_id: str, article_id: str, now) -> Alert | None:
        """Retire ``story`` into ``survivor_id``: its articles, bands and entities become the
        survivor's; returns its last version, which names the survivor (``None`` when another
        member retired it first)."""
        last = story.model_copy(update={"version": story.version + 1, "merged_into": survivor_id, "updated_at": now})
        updated = connection.execute(sa.update(stories).where(stories.c.id == story.id, stories.c.merged_into.is_(None)).values(
            version=last.version, alert=last.model_dump(mode="json"), updated_at=now,
            merged_into=survivor_id, merged_by=article_id,
        ))
        if updated.rowcount != 1:
            return None
        connection.execute(sa.update(story_articles).where(story_articles.c.story_id == story.id).values(story_id=survivor_id))
        for table, key in ((story_bands, ["band", "story_id"]), (story_entities, ["entity_id", "bucket", "story_id"])):
            rows = connection.execute(sa.select(table).where(table.c.story_id == story.id)).mappings().all()
            if rows:
                moved = [{**row, "story_id": survivor_id} for row in rows]
                connection.execute(insert_missing(self.engine, table, key=key), moved)
                connection.execute(table.delete().where(table.c.story_id == story.id))
        return last

    def _matches(
        self, connection: sa.Connection, result: Classified, minhash: MinHash, keys: list[int], facts: EventFacts, moment: datetime,
    ) -> list:
        settings = self.settings
        window = timedelta(days=settings.window_days)
        in_window = (stories.c.first_at <= moment + window, stories.c.last_at >= moment - window)
        by_text = connection.execute(sa.select(story_bands.c.story_id).where(story_bands.c.band.in_(keys))).scalars().all()
        by_event = self._stories_naming(connection, facts.entities, list(_buckets_around(moment, window))) - set(by_text)
        if by_event:
            # Read a story whole only when its entities alone, with the most the figures and
            # sectors could add, can reach the threshold: most that share one place cannot.
            ceiling = settings.event_threshold - SECTOR_WEIGHT - (SHARED_MONEY_BONUS if facts.money else 0.0)
            light = connection.execute(
                sa.select(stories.c.id, stories.c.entities).where(stories.c.id.in_(sorted(by_event)), *in_window)
            ).all()
            by_event = {
                story_id for story_id, entities in light
                if entity_overlap(facts.entities, frozenset(entities), self.entity_weight) >= ceiling
            }
        candidate_ids = {*by_text, *by_event}
        candidates = connection.execute(
            sa.select(
                stories.c.id, stories.c.signature, stories.c.alert, stories.c.entities, stories.c.first_at, stories.c.last_at,
                stories.c.created_at,
            ).where(stories.c.id.in_(sorted(candidate_ids)), stories.c.merged_into.is_(None), *in_window)
        ).mappings().all() if candidate_ids else []
        article_acts = result.classification.acts
        matched = []
        for candidate in candidates:
            stored = minhash_of(candidate["signature"])
            text = minhash.jaccard(stored)
            title = max(
                title_similarity(result.article.title, outlet["title"]) for outlet in candidate["alert"]["outlets"]
            )
            # The same parties' other deals share as many names as a second report does, and in
            # one language as many words (two Amur–Heilongjiang transport deals on one day). So in
            # the story's own language, where the text already finds copies and rewrites, the
            # facts join a report only with a headline sharing title_threshold of its words, the
            # same sum of money, or the same singular act named most (both tell a visit); across
            # languages, where no text can be compared, they do.
            across = result.article.language != candidate["alert"].get("language")
            story_facts = EventFacts.of_story(candidate["entities"], candidate["alert"])
            same_act = _tell_one_singular_act(article_acts, candidate["alert"].get("acts", []))
            same_subject = across or same_act or title >= settings.title_threshold or bool(facts.money & story_facts.money)
            event = event_similarity(facts, story_facts, self.entity_weight) if same_subject else 0.0
            matches = (
                text >= settings.text_threshold
                or (text >= settings.text_threshold / 2 and title >= settings.title_threshold)
                or event >= settings.event_threshold
            )
            if matches:
                matched.append(candidate)
        return matched

    def _stories_naming(self, connection: sa.Connection, entities: Iterable[str], buckets: list[int]) -> set[str]:
        """The stories that name one of ``entities`` in ``buckets``, each entity read up to
        :data:`MAX_ENTITY_POSTINGS` stories and left out beyond (an index range each)."""
        found: set[str] = set()
        for entity_id in sorted(entities):
            naming = connection.execute(
                sa.select(story_entities.c.story_id)
                .where(story_entities.c.entity_id == entity_id, story_entities.c.bucket.in_(buckets))
                .limit(MAX_ENTITY_POSTINGS + 1)
            ).scalars().all()
            if len(naming) <= MAX_ENTITY_POSTINGS:
                found.update(naming)
        return found

    def _new_story(self, result: Classified, now) -> Alert:
        return self._finished(alert_for(result, regions=regions_of(result, self.gazetteer), now=now))

    def _finished(self, story: Alert) -> Alert:
        """``story`` with the display names of its parties and regions, and its English gist."""
        names = {}
        for entry_id in [*story.russian_parties, *story.chinese_parties, *story.regions]:
            try:
                names[entry_id] = self.gazetteer[entry_id].name
            except KeyError:
                names[entry_id] = entry_id
        gist_en = gist(story.russian_parties, story.chinese_parties, names, story.acts, story.sectors, story.figures)
        return story.model_copy(update={"names": names, "gist_en": gist_en, "headline": headline(story, gist_en)})

    def _joined(self, story: Alert, result: Classified, now) -> Alert:
        """``story`` with ``result`` added: a new version, unless the story lists
        :data:`MAX_OUTLETS` outlets already and the article adds no fact to it, when only
        its count of further outlets grows (the same version, emitted again)."""
        incoming = alert_for(result, regions=regions_of(result, self.gazetteer), now=now)
        joined = _absorbed(story, incoming)
        adds_nothing = incoming.score <= story.score and all(
            getattr(joined, name) == getattr(story, name) for name in _FACTS
        )
        if len(story.outlets) >= MAX_OUTLETS and adds_nothing:
            return story.model_copy(update={"outlets_omitted": story.outlets_omitted + 1})
        return self._finished(joined.model_copy(update={"version": story.version + 1, "updated_at": now}))


# What an article or an absorbed story can add to a story, beside its outlets.
_FACTS = ("sectors", "russian_parties", "chinese_parties", "regions", "figures")


def _absorbed(story: Alert, other: Alert) -> Alert:
    """``story`` with the outlets and facts of ``other`` (a new article's alert, or a story it
    absorbs): facts merged, level and evidence from the better-scoring, at most
    :data:`MAX_OUTLETS` outlets listed and the rest counted. The version is the caller's."""
    better = other.score > story.score
    outlets = [*story.outlets, *other.outlets]
    published = [moment for moment in (story.published_at, other.published_at) if moment]
    return story.model_copy(update={
        "sectors": _merged(story.sectors, other.sectors),
        "russian_parties": _merged(story.russian_parties, other.russian_parties),
        "chinese_parties": _merged(story.chinese_parties, other.chinese_parties),
        "regions": _merged(story.regions, other.regions),
        "figures": _merged_figures(story.figures, other.figures),
        "score": max(story.score, other.score),
        "level": other.level if better and other.level else story.level,
        "evidence": other.evidence if better and other.evidence else story.evidence,
        "acts": _merged(other.acts, story.acts) if better else _merged(story.acts, other.acts),
        "outlets": outlets[:MAX_OUTLETS],
        "outlets_omitted": story.outlets_omitted + other.outlets_omitted + max(0, len(outlets) - MAX_OUTLETS),
        "published_at": min(published) if published else None,
    })


def alert_for(result: Classified, *, regions: Sequence[str] = (), now=None) -> Alert:
    """The first version of the story that ``result`` opens; its id is the article's."""
    article, verdict = result.article, result.classification
    now = now or utc_now()
    return Alert(
        id=result.id, version=1, article_id=article.id, url=article.url, source=article.source,
        title=_clip(article.title), summary=lead(article.text, article.title) or lead(article.summary, article.title),
        language=article.language,
        score=verdict.score,
        level=verdict.level, sectors=verdict.sectors, acts=verdict.acts, russian_parties=verdict.russian_parties,
        chinese_parties=verdict.chinese_parties, regions=list(regions), figures=result.figures[:MAX_FIGURES],
        evidence=_evidence(verdict.evidence), outlets=[_outlet(result)],
        published_at=article.published_at, fetched_at=article.fetched_at, alerted_at=now, updated_at=now,
    )


def headline(story: Alert, gist_en: str) -> str:
    """What a subscriber reads first: the title of the story's first English article, since
    most subscribers read English; for a story reported only in Russian or Chinese, its
    English gist; the first article's own title when even the gist is empty."""
    english = next((outlet.title for outlet in story.outlets if outlet.language == "en" and outlet.title.strip()), None)
    return english or gist_en or story.title


def _merged_figures(first: Sequence[Figure], second: Sequence[Figure]) -> list[Figure]:
    """Figures of both, a figure stated by several outlets (same kind, value and unit) once."""
    seen = {(figure.kind, figure.value, figure.unit) for figure in first}
    return [*first, *(figure for figure in second if (figure.kind, figure.value, figure.unit) not in seen)][:MAX_FIGURES]


def _clip(text: str) -> str:
    return text if len(text) <= MAX_TEXT_CHARS else text[: MAX_TEXT_CHARS - 1].rstrip() + "…"


def _evidence(sentences: Sequence[str]) -> list[str]:
    return [_clip(sentence) for sentence in sentences[:MAX_EVIDENCE]]


def _outlet(result: Classified) -> Outlet:
    article = result.article
    return Outlet(
        article_id=article.id, source=article.source, url=article.url, title=_clip(article.title),
        language=article.language, published_at=article.published_at,
    )


class StoryStage(Stage):
    """Turns cooperation articles into story alerts through a :class:`StoryIndex`.

    :param index: the story index; by default one on the settings' database and gazetteer.
    """

    inputs = ("classified",)
    outputs = {"alerts": Alert}

    def __init__(self, context: StageContext, *, index: StoryIndex | None = None):
        super().__init__(context)
        settings = context.settings
        if index is None:
            index = StoryIndex(make_engine(settings.database_url), settings.stories, load_gazetteer(settings.model.gazetteer_dir))
        self.index = index
        self.min_score = settings.alerts.min_score

    def setup(self) -> None:
        self.index.setup()

    def handle(self, records: Sequence[Record]) -> None:
        stories_of: list[tuple[Record, Classified]] = []
        for record in records:
            try:
                result = decode(Classified, record.value)
            except MessageError as exc:
                self.dead_letters.record(record, exc)
                continue
            verdict = result.classification
            if verdict.is_cooperation and verdict.score >= self.min_score:
                stories_of.append((record, result))
        if not stories_of:
            return
        try:
            placements = self.index.add([result for _, result in stories_of])
        except sa.exc.SQLAlchemyError as exc:
            # Like a sink's database: the stage pauses and handles the batch again.
            raise SinkError(f"stories: the story index is unavailable: {exc.__class__.__name__}: {exc}") from exc
        for (record, _), placement in zip(stories_of, placements, strict=True):
            for alert in placement.alerts:
                if not self.produce_output(record, self.topics.alerts, *encode(alert), what=f"story {alert.id} version {alert.version}"):
                    continue
                happened = "merged" if alert.merged_into else "opened" if alert.version == 1 else "updated"
                log.info(
                    "story %s: story=%s version=%d article=%s source=%s%s", happened, alert.id, alert.version,
                    alert.article_id, alert.source, f" into={alert.merged_into}" if alert.merged_into else "",
                    extra={"story_id": alert.id, "article_id": alert.article_id, "source": alert.source},
                )

    def close(self) -> None:
        super().close()
        self.index.engine.dispose()
