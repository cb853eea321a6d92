"""Records sink: every classified article as one row of the ``articles`` table, upserted by id."""

from __future__ import annotations

from sqlalchemy import JSON, Boolean, Column, Float, String, Table, Text

from pipeline.core.db import UTCDateTime, metadata
from pipeline.core.messages import Classified, utc_now
from pipeline.core.sink import NoOptions, SinkContext, SqlSink

articles = Table(
    "articles",
    metadata,
    Column("id", String(32), primary_key=True),
    Column("url", Text, nullable=False),
    Column("source", String(64), nullable=False),
    Column("title", Text, nullable=False),
    Column("text", Text, nullable=False),
    Column("published_at", UTCDateTime),
    Column("fetched_at", UTCDateTime, nullable=False),
    Column("classified_at", UTCDateTime, nullable=False),
    Column("is_cooperation", Boolean, nullable=False, index=True),
    Column("score", Float, nullable=False),
    Column("level", String(16)),
    Column("sectors", JSON, nullable=False),
    Column("russian_parties", JSON, nullable=False),
    Column("chinese_parties", JSON, nullable=False),
    Column("entities", JSON, nullable=False),
    Column("figures", JSON, nullable=False),
    Column("classification", JSON, nullable=False),
    Column("updated_at", UTCDateTime, nullable=False),
)


class RecordsSink(SqlSink):
    """Upserts classified articles into the SQL database (SQLite or PostgreSQL)."""

    topic = "classified"
    table = articles
    what = "article"
    name = "records"

    @classmethod
    def from_config(cls, options: NoOptions, context: SinkContext) -> RecordsSink:
        return cls(context.engine())

    def row(self, message: Classified) -> dict:
        article, verdict = message.article, message.classification
        return {
            "id": message.id,
            "url": article.url,
            "source": article.source,
            "title": article.title,
            "text": article.text,
            "published_at": article.published_at,
            "fetched_at": article.fetched_at,
            "classified_at": message.classified_at,
            "is_cooperation": verdict.is_cooperation,
            "score": verdict.score,
            "level": verdict.level,
            "sectors": verdict.sectors,
            "russian_parties": verdict.russian_parties,
            "chinese_parties": verdict.chinese_parties,
            "entities": [entity.model_dump() for entity in message.entities],
            "figures": [figure.model_dump() for figure in message.figures],
            "classification": verdict.model_dump(),
            "updated_at": utc_now(),
        }
