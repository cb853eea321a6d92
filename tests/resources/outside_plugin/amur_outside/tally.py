"""``type: tally``: how many outlets reported each story, in a table of its own."""

from __future__ import annotations

import sqlalchemy as sa
from pydantic import BaseModel, ConfigDict, Field

from pipeline.core.db import metadata
from pipeline.core.sink import SqlSink

story_tallies = sa.Table(
    "outside_story_tallies", metadata,
    sa.Column("story_id", sa.String(32), primary_key=True),
    sa.Column("outlets", sa.Integer, nullable=False),
    sa.Column("label", sa.String(64), nullable=False),
)


class TallyOptions(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    label: str = Field("tally", max_length=64)


class TallySink(SqlSink):
    topic = "alerts"
    table = story_tallies
    key = ("story_id",)
    Options = TallyOptions

    def __init__(self, engine, options: TallyOptions):
        super().__init__(engine)
        self.options = options

    @classmethod
    def from_config(cls, options, context):
        return cls(context.engine(), options)

    def row(self, alert):
        return {"story_id": alert.id, "outlets": len(alert.outlets), "label": self.options.label}
