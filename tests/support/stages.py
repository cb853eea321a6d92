"""Stages made in a test, from the same context ``amur run`` gives them."""

from __future__ import annotations

from pipeline.core.errors import SinkBackpressure
from pipeline.core.settings import AmurSettings
from pipeline.core.sink import BatchingSink
from pipeline.core.stages import StageContext
from pipeline.core.topology import Topics
from pipeline.core.transport.base import Transport


def stage_context(transport: Transport, topics: Topics, role: str, *, group: str | None = None, settings: AmurSettings | None = None) -> StageContext:
    """The context of ``role``'s stage on ``transport``, with default settings; its consumer group is the role's name unless given."""
    return StageContext(settings or AmurSettings(), transport, topics, role, group or role)


class ListSink(BatchingSink):
    """Keeps what it is given; answers 429 ``fail_times`` times first."""

    topic = "alerts"
    name = "list"

    def __init__(self, fail_times=0):
        super().__init__()
        self.written: list = []
        self.fail_times = fail_times

    @classmethod
    def from_config(cls, options, context):
        return cls()

    def write(self, batch):
        if self.fail_times:
            self.fail_times -= 1
            raise SinkBackpressure("webhook answered 429", retry_after=0.01)
        self.written.extend(batch)


def produce(log: Transport, topic: str, values) -> None:
    """Put ``(key, value)`` pairs on ``topic`` and flush them."""
    producer = log.producer()
    for key, value in values:
        producer.produce(topic, key, value)
    producer.flush()
