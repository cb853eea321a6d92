"""Stage mechanics on the embedded transport: dead letters, commit-after-flush, sink retries.

The analyzer here is a keyword rule so the tests pin the stage's behaviour, not the classifier's.
"""

import threading

from pipeline.errors import SinkBackpressure
from pipeline.messages import Alert, Classified, DeadLetter, Topics, decode, encode
from pipeline.stages import ProcessorStage, SinkStage, alert_for
from pipeline.transport.embedded import EmbeddedTransport
from sinks.base import BatchingSink
from tests.support.messages import make_article, make_classified

TOPICS = Topics("t.")


class KeywordAnalyzer:
    def analyze(self, articles):
        if any("explode" in article.text for article in articles):
            raise RuntimeError("analyzer bug triggered by one article")
        return [make_classified(article, cooperation="Heilongjiang" in article.text) for article in articles]


class ListSink(BatchingSink):
    topic = "alerts"

    def __init__(self, fail_times=0):
        super().__init__()
        self.written: list = []
        self.fail_times = fail_times

    def write(self, batch):
        if self.fail_times:
            self.fail_times -= 1
            raise SinkBackpressure("webhook answered 429", retry_after=0.01)
        self.written.extend(batch)


def transport():
    log = EmbeddedTransport(":memory:")
    log.ensure_topics(TOPICS.all())
    return log


def produce(log, topic, values):
    producer = log.producer()
    for key, value in values:
        producer.produce(topic, key, value)
    producer.flush()


def read_all(log, topic, group="reader"):
    consumer = log.consumer(group, [topic])
    records = consumer.poll(1000, 0.1)
    consumer.close()
    return records


def test_processor_sends_poison_and_crashing_articles_to_the_dlq_and_goes_on():
    log = transport()
    good = make_article("https://news.example/good")
    crashing = make_article("https://news.example/bad", text="this text will explode the analyzer")
    unrelated = make_article("https://news.example/other", text="Football results from the weekend.")
    produce(log, TOPICS.articles, [encode(good), (b"poison", b"{not json"), encode(crashing), encode(unrelated)])

    stage = ProcessorStage(log, TOPICS, "processors", 100, KeywordAnalyzer(), min_score=0.5)
    assert stage.run(threading.Event(), once=True) == 4

    classified = [decode(Classified, r.value) for r in read_all(log, TOPICS.classified)]
    assert sorted(c.article.url for c in classified) == ["https://news.example/good", "https://news.example/other"]
    alerts = [decode(Alert, r.value) for r in read_all(log, TOPICS.alerts)]
    assert [a.url for a in alerts] == ["https://news.example/good"]
    letters = [decode(DeadLetter, r.value) for r in read_all(log, TOPICS.dlq)]
    assert {(letter.offset, letter.error_type) for letter in letters} == {(1, "MessageError"), (2, "RuntimeError")}
    assert all(letter.topic == TOPICS.articles and letter.stage == "processors" for letter in letters)
    # Everything was committed: a restarted processor has nothing left to do.
    assert ProcessorStage(log, TOPICS, "processors", 100, KeywordAnalyzer(), 0.5).run(threading.Event(), once=True) == 0


def test_sink_stage_retries_a_batch_under_backpressure_and_commits_after_the_write():
    log = transport()
    produce(log, TOPICS.alerts, [encode(alert_for(make_classified(make_article(f"https://news.example/{n}")))) for n in range(3)])
    sink = ListSink(fail_times=2)
    stage = SinkStage(log, TOPICS, "sinks", 100, [sink])
    stage.setup()
    assert stage.run(threading.Event(), once=True) == 3
    assert len(sink.written) == 3
    assert SinkStage(log, TOPICS, "sinks", 100, [ListSink()]).run(threading.Event(), once=True) == 0


def test_a_stop_during_sink_retries_leaves_the_batch_uncommitted():
    log = transport()
    produce(log, TOPICS.alerts, [encode(alert_for(make_classified()))])
    stop = threading.Event()

    class StoppingSink(ListSink):
        def write(self, batch):
            stop.set()
            raise SinkBackpressure("down", retry_after=5)

    stage = SinkStage(log, TOPICS, "sinks", 100, [StoppingSink()])
    stage.run(stop)
    retry = ListSink()
    SinkStage(log, TOPICS, "sinks", 100, [retry]).run(threading.Event(), once=True)
    assert len(retry.written) == 1


def test_sink_stage_dead_letters_an_invalid_alert():
    log = transport()
    produce(log, TOPICS.alerts, [(b"k", b'{"id": "short"}'), encode(alert_for(make_classified()))])
    sink = ListSink()
    SinkStage(log, TOPICS, "sinks", 100, [sink]).run(threading.Event(), once=True)
    assert len(sink.written) == 1
    (letter,) = [decode(DeadLetter, r.value) for r in read_all(log, TOPICS.dlq)]
    assert letter.stage == "sinks" and letter.offset == 0 and '"short"' in letter.payload
