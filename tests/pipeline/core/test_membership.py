"""Group membership on the embedded transport: a member left without partitions while records
wait joins again; one without partitions while nothing waits stays."""

import threading
import time

from pipeline.core import membership
from pipeline.core.messages import encode
from pipeline.core.stages import SinkStage
from pipeline.core.topology import Topics
from pipeline.core.transport.embedded import EmbeddedTransport
from processors.stories import alert_for
from tests.support.messages import make_article, make_classified
from tests.support.stages import ListSink, produce, stage_context

TOPICS = Topics("t.")


class FirstMemberStranded(EmbeddedTransport):
    """As kafka-python once left a member after one broker of three was SIGKILLed: the first
    member of each group holds no partitions and never gets any; members made later work."""

    def __init__(self, path):
        super().__init__(path)
        self.members: list[str] = []

    def consumer(self, group, topics):
        consumer = super().consumer(group, topics)
        if group not in self.members:
            consumer.poll = lambda max_records=500, timeout=1.0: time.sleep(min(timeout, 0.01)) or []
            consumer.lag = lambda: None
        self.members.append(group)
        return consumer


def run_until(stage, condition, seconds=10):
    stop = threading.Event()
    worker = threading.Thread(target=stage.run, args=(stop,), kwargs={"poll_timeout": 0.01})
    worker.start()
    deadline = time.monotonic() + seconds
    while not condition() and time.monotonic() < deadline:
        time.sleep(0.01)
    stop.set()
    worker.join(10)


def test_a_member_stranded_without_partitions_while_records_wait_joins_again(monkeypatch, caplog):
    monkeypatch.setattr(membership, "LAG_EVERY_SECONDS", 0.05)
    monkeypatch.setattr(membership, "STRANDED_SECONDS", 0.2)
    log = FirstMemberStranded(":memory:")
    log.ensure_topics(TOPICS.all())
    produce(log, TOPICS.alerts, [encode(alert_for(make_classified(make_article(f"https://news.example/{n}")))) for n in range(3)])
    sink = ListSink()
    stage = SinkStage(stage_context(log, TOPICS, "sinks"), sinks=[sink])
    stage.setup()
    run_until(stage, lambda: len(sink.written) == 3)
    assert len(sink.written) == 3
    assert log.members == ["sinks", "sinks"]
    assert "had no partitions for 0 s while 3 record(s) waited: joining its group again" in caplog.text
    assert log.group_lag("sinks", [TOPICS.alerts]) == 0


def test_a_member_without_partitions_stays_when_nothing_waits(monkeypatch):
    monkeypatch.setattr(membership, "LAG_EVERY_SECONDS", 0.05)
    monkeypatch.setattr(membership, "STRANDED_SECONDS", 0.2)
    log = FirstMemberStranded(":memory:")
    log.ensure_topics(TOPICS.all())
    stage = SinkStage(stage_context(log, TOPICS, "sinks"), sinks=[ListSink()])
    stage.setup()
    run_until(stage, lambda: False, seconds=1)  # five stranding windows
    assert log.members == ["sinks"]
