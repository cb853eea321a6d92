"""Role ``briefs``: each story alert as a one-line brief on a topic of its own."""

from __future__ import annotations

from pipeline.core.errors import MessageError
from pipeline.core.messages import Alert, Message, decode, encode
from pipeline.core.stages import Stage


class Brief(Message):
    id: str
    line: str


class BriefStage(Stage):
    inputs = ("alerts",)
    outputs = {"briefs": Brief}

    def handle(self, records):
        for record in records:
            try:
                alert = decode(Alert, record.value)
            except MessageError as exc:
                self.dead_letters.record(record, exc)
                continue
            brief = Brief(id=alert.id, line=f"{alert.heading} ({', '.join(alert.regions)})")
            self.produce_output(record, self.topics.briefs, *encode(brief), what=f"brief {brief.id}")
