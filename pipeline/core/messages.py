"""The messages on Amur's topics: one versioned pydantic model per topic.

Every message is JSON (UTF-8), keyed on Kafka by its ``id``; timestamps are UTC ISO-8601.
``schema_version`` grows when a field is removed or changes meaning; new optional fields
do not bump it. Which model each topic carries is declared in :mod:`pipeline.core.topology`; the
JSON Schemas in ``pipeline/core/schemas/`` are generated from these models
(``amur schemas export``) and documented in ``docs/topics.md``.

========================  ======================  ==================================================
topic (default prefix)    model                   written by → read by
========================  ======================  ==================================================
``amur.articles``         :class:`Article`        connectors → processors
``amur.classified``       :class:`Classified`     processors → stories, sinks (records), consumers
``amur.alerts``           :class:`Alert`          stories → sinks (feeds, webhooks), consumers
``amur.dlq``              :class:`DeadLetter`     any stage → operators
========================  ======================  ==================================================
"""

from __future__ import annotations

import base64
import hashlib
import re
from datetime import UTC, datetime
from typing import Literal, TypeVar

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, ValidationError, field_validator

from pipeline.core.errors import MessageError, error_key

SCHEMA_VERSION = 1

Level = Literal["national", "interregional", "municipal", "corporate"]
# The fixed sector taxonomy: what a story's ``sectors`` hold and what subscribers filter by.
# The classifier's keyword lexicons (config/classifier.yaml) carry exactly these ids.
SECTORS: tuple[str, ...] = (
    "trade", "investment", "energy", "transport_logistics", "agriculture", "forestry_timber", "industry", "tourism",
    "education", "science_space", "culture_humanitarian", "health", "environment", "finance_payments", "defence",
    "digital", "legal_parliamentary",
)
Sector = Literal[SECTORS]  # type: ignore[valid-type]
# What a reader sees of each sector.
SECTOR_LABELS: dict[str, str] = {
    "trade": "trade", "investment": "investment", "energy": "energy", "transport_logistics": "transport and logistics",
    "agriculture": "agriculture", "forestry_timber": "forestry and timber", "industry": "industry", "tourism": "tourism",
    "education": "education", "science_space": "science and space", "culture_humanitarian": "culture and people-to-people ties",
    "health": "health", "environment": "environment", "finance_payments": "finance and payments", "defence": "defence",
    "digital": "digital economy", "legal_parliamentary": "law and parliaments",
}
Country = Literal["RU", "CN"]


def utc_now() -> datetime:
    return datetime.now(UTC)


def primary_language(tag: str | None) -> str | None:
    """The primary subtag of a language tag, lower-cased, as ``Article.language`` holds it
    ("ru-RU" → "ru", "zh_Hans" → "zh"); ``None`` for none."""
    if not tag:
        return None
    return re.split(r"[-_]", tag.strip())[0].lower() or None


def article_id(canonical_url: str) -> str:
    """The stable id of an article: the first 32 hex digits of SHA-256 of its canonical URL."""
    return hashlib.sha256(canonical_url.encode("utf-8")).hexdigest()[:32]


class Message(BaseModel):
    model_config = ConfigDict(frozen=True, extra="ignore")

    schema_version: int = SCHEMA_VERSION

    @field_validator("schema_version", mode="after")
    @classmethod
    def _known_version(cls, version: int) -> int:
        # A newer writer may have removed a field or changed its meaning: reading it as if it
        # were this version could be silently wrong, so it is refused (a dead letter) instead.
        known = cls.model_fields["schema_version"].default
        if version > known:
            raise ValueError(f"schema version {version} is newer than this reader's {known}: upgrade Amur to read it")
        return version

    @field_validator("*", mode="after")
    @classmethod
    def _to_utc(cls, value):
        if isinstance(value, datetime):
            return value.astimezone(UTC)
        return value


class Article(Message):
    """A fetched article with its extracted text (topic ``articles``)."""

    id: str = Field(description="article_id(url): hash of the canonical URL", min_length=32, max_length=32)
    url: str = Field(description="Canonical URL of the article page")
    source: str = Field(description="Name of the source in sources.yaml")
    title: str
    text: str = Field(description="Main text extracted from the page")
    summary: str = ""
    language: str | None = None
    authors: list[str] = Field(default_factory=list)
    site_name: str | None = Field(None, description="The outlet's name as its page states it", examples=["TASS"])
    published_at: AwareDatetime | None = None
    fetched_at: AwareDatetime = Field(description="When the connector emitted the article")
    page_error: str | None = Field(
        None, description="Why the page could not be fetched or read; the text is then the feed's summary",
        examples=["HTTP 404 Not Found: the page is gone; not retried"],
    )


class Entity(BaseModel):
    """A mention in the article, resolved to a canonical id where the gazetteer knows it."""

    model_config = ConfigDict(frozen=True)

    text: str
    label: str = Field(description="spaCy label (GPE, ORG, PERSON, MONEY, ...) or gazetteer kind")
    start: int = Field(description="Character offset in the article text")
    end: int
    canonical_id: str | None = Field(None, examples=["RU-IRK", "CN-NM", "org:rosatom"])
    country: Country | None = None


class Figure(BaseModel):
    """A number the article states: money, a percentage or a count of agreements."""

    model_config = ConfigDict(frozen=True)

    kind: Literal["money", "percent", "count"]
    value: float
    unit: str = Field(examples=["USD", "CNY", "RUB", "%", "agreements"])
    text: str
    sentence: str


class Classification(BaseModel):
    """Whether the article is a Russia–China cooperation story, and why."""

    model_config = ConfigDict(frozen=True)

    is_cooperation: bool
    score: float = Field(ge=0, le=1)
    level: Level | None = None
    sectors: list[str] = Field(default_factory=list)
    russian_parties: list[str] = Field(default_factory=list)
    chinese_parties: list[str] = Field(default_factory=list)
    evidence: list[str] = Field(default_factory=list, description="Sentences that decided it")
    acts: list[str] = Field(
        default_factory=list, description="What happened, as the evidence names it, most named first",
        examples=[["signed", "construction"]],
    )
    reason: str = Field(description="Why the classifier decided so, in one line")
    classifier: str = Field(description="Name and version of the classifier", examples=["amur.rules.v1"])


class Classified(Message):
    """An article with its entities, figures and classification (topic ``classified``)."""

    id: str = Field(min_length=32, max_length=32)
    article: Article
    entities: list[Entity] = Field(default_factory=list)
    figures: list[Figure] = Field(default_factory=list)
    classification: Classification
    classified_at: AwareDatetime


class Outlet(BaseModel):
    """One outlet's article of a story."""

    model_config = ConfigDict(frozen=True)

    article_id: str
    source: str = Field(description="Name of the source in sources.yaml")
    url: str
    title: str = Field(description="The article's own title, in its language")
    language: str | None = Field(None, description="The article's language (ISO 639-1)", examples=["zh"])
    published_at: AwareDatetime | None = None


ALERT_SCHEMA_VERSION = 4


class Alert(Message):
    """A cooperation story worth telling subscribers about (topic ``alerts``), in its latest version.

    ``id`` is the story id: every article of the story — copies, rewrites and translations
    from several outlets — yields an alert with the same id and a higher ``version``, so every
    sink upserts it and subscribers see one entry per story, updated (past 50 outlets, an
    article that adds no fact only raises ``outlets_omitted``, under the same version). The lead fields (``url``,
    ``source``, ``title``, ``summary``, ``article_id``) are the story's first article;
    parties, regions, sectors and figures are merged over all of them; ``level`` and
    ``evidence`` come from the best-scoring one.

    When an article shows that two open stories report one event, they merge: the older story
    absorbs the other (its outlets and facts, its id in ``merged_from``) in a new version,
    and the other is retired by a last version of its own whose ``merged_into`` names the
    survivor. A consumer drops a story whose ``merged_into`` is set and follows the survivor.

    Version 2 added ``version``, ``outlets``, ``regions``, ``figures``, ``language``, ``names`` and ``updated_at``;
    ``id`` became the story id rather than the article id. Version 3: ``outlets`` lists at
    most 50 articles, ``outlets_omitted`` counts the rest; ``gist_en`` and ``acts`` are new.
    Version 4: ``headline``, ``merged_into``, ``merged_from``, and each outlet's ``language``.
    """

    schema_version: int = ALERT_SCHEMA_VERSION
    id: str = Field(min_length=32, max_length=32, description="Story id")
    version: int = Field(1, ge=1, description="1 when the story is new; one more with each article that adds to it")
    article_id: str = Field(description="The story's first article")
    url: str
    source: str
    title: str = Field(description="The first article's own title, in its language")
    headline: str = Field(
        "", description="The title to show a subscriber: an English outlet's title when the story has one, "
                        "else gist_en, else title",
    )
    summary: str
    language: str | None = Field(None, description="The first article's language (ISO 639-1)", examples=["ru"])
    score: float = Field(ge=0, le=1, description="The best score of the story's articles")
    level: Level | None = None
    sectors: list[str] = Field(default_factory=list)
    russian_parties: list[str] = Field(default_factory=list)
    chinese_parties: list[str] = Field(default_factory=list)
    regions: list[str] = Field(
        default_factory=list,
        description="ISO 3166-2 ids of every Russian federal subject and Chinese province taking part",
        examples=[["RU-PRI", "CN-HL"]],
    )
    names: dict[str, str] = Field(
        default_factory=dict, description="Display names of the ids in the parties and regions",
        examples=[{"RU-PRI": "Primorsky Krai", "CN-HL": "Heilongjiang"}],
    )
    figures: list[Figure] = Field(default_factory=list)
    evidence: list[str] = Field(default_factory=list)
    acts: list[str] = Field(default_factory=list, description="What happened, as the evidence names it, most named first")
    gist_en: str = Field(
        "", description="One English line of the story's extracted facts: parties, what happened, sectors, the main figure",
        examples=["Amur Oblast and Heilongjiang: agreement signed (transport, trade; CNY 3 billion)"],
    )
    outlets: list[Outlet] = Field(
        default_factory=list, description="The story's articles, first first, up to 50; outlets_omitted counts the rest",
    )
    outlets_omitted: int = Field(0, ge=0, description="Articles of the story beyond those listed in outlets")
    merged_into: str | None = Field(
        None, min_length=32, max_length=32,
        description="Set on a retired story's last version: the story it is now part of",
    )
    merged_from: list[str] = Field(default_factory=list, description="Ids of the stories this one absorbed")
    published_at: AwareDatetime | None = None
    fetched_at: AwareDatetime
    alerted_at: AwareDatetime = Field(description="When the story's first alert was made")
    updated_at: AwareDatetime | None = Field(None, description="When this version was made")

    @property
    def heading(self) -> str:
        """What a feed entry or a page is titled: the headline (empty in alerts made before version 4), else the title."""
        return self.headline or self.title


class DeadLetter(Message):
    """An input a stage could not handle, with where it came from and why (topic ``dlq``)."""

    id: str = Field(description="'<topic>:<partition>:<offset>' (':<sink>' when a sink rejected it) or '<source>:<url>'")
    stage: str = Field(examples=["processors", "sinks", "connectors"])
    sink: str | None = Field(None, description="The sink that rejected the message, when a sink did", examples=["webhooks"])
    error_type: str = Field(examples=["MessageError", "FetchError"])
    reason: str
    topic: str | None = None
    partition: int | None = None
    offset: int | None = None
    key: str | None = None
    payload: str = Field("", description="The original value as text (see payload_encoding), cut to 64 KiB")
    payload_encoding: Literal["utf-8", "base64"] = Field(
        "utf-8", description="utf-8: the value was text; base64: it was not, and its bytes are kept base64-encoded",
    )
    failed_at: AwareDatetime

    def value(self) -> bytes:
        """The original value's bytes (as far as the payload kept them), as they were on the topic."""
        return base64.b64decode(self.payload) if self.payload_encoding == "base64" else self.payload.encode("utf-8")


M = TypeVar("M", bound=Message)


def encode(message: Message) -> tuple[bytes, bytes]:
    """The Kafka key and value of a message."""
    return message.id.encode("utf-8"), message.model_dump_json().encode("utf-8")


def decode(model: type[M], value: bytes) -> M:
    """Parse a topic value into its model; a poison value raises :class:`MessageError`."""
    try:
        return model.model_validate_json(value)
    except ValidationError as exc:
        first = exc.errors()[0]
        raise MessageError(f"not a valid {model.__name__} message: {error_key(first, '(message)')}: {first['msg']} ({exc.error_count()} error(s))") from None
