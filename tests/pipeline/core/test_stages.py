"""Stage mechanics on the embedded transport: dead letters, commit-after-flush, sink retries.

The analyzer here is a keyword rule so the tests pin the stage's behaviour, not the classifier's.
"""

import logging
import threading

import sqlalchemy as sa

from pipeline.core.db import make_engine
from pipeline.core.errors import SinkBackpressure, TransportError
from pipeline.core.messages import Classified, DeadLetter, decode, encode
from pipeline.core.stages import SinkStage
from pipeline.core.topology import Topics
from pipeline.core.transport.embedded import EmbeddedTransport
from processors.stage import ClassifyStage
from processors.stories import alert_for
from sinks.alerts import AlertsSink, alerts
from sinks.records import RecordsSink, articles
from tests.support.messages import make_article, make_classified
from tests.support.stages import ListSink, produce, stage_context

TOPICS = Topics("t.")


class KeywordAnalyzer:
    def analyze(self, articles):
        if any("explode" in article.text for article in articles):
            raise RuntimeError("analyzer bug triggered by one article")
        return [make_classified(article, cooperation="Heilongjiang" in article.text) for article in articles]


def transport():
    log = EmbeddedTransport(":memory:")
    log.ensure_topics(TOPICS.all())
    return log


def read_all(log, topic, group="reader"):
    consumer = log.consumer(group, [topic])
    records = consumer.poll(1000, 0.1)
    consumer.close()
    return records


def test_processor_sends_poison_and_crashing_articles_to_the_dlq_and_goes_on(caplog):
    caplog.set_level(logging.INFO, logger="pipeline.core.stages")
    log = transport()
    good = make_article("https://news.example/good")
    crashing = make_article("https://news.example/bad", text="this text will explode the analyzer")
    unrelated = make_article("https://news.example/other", text="Football results from the weekend.")
    produce(log, TOPICS.articles, [encode(good), (b"poison", b"{not json"), encode(crashing), encode(unrelated)])

    stage = ClassifyStage(stage_context(log, TOPICS, "processors"), analyzer=KeywordAnalyzer())
    assert stage.run(threading.Event(), once=True) == 4

    classified = [decode(Classified, r.value) for r in read_all(log, TOPICS.classified)]
    assert sorted(c.article.url for c in classified) == ["https://news.example/good", "https://news.example/other"]
    assert read_all(log, TOPICS.alerts) == []  # alerts are the stories stage's
    letters = [decode(DeadLetter, r.value) for r in read_all(log, TOPICS.dlq)]
    assert {(letter.offset, letter.error_type) for letter in letters} == {(1, "MessageError"), (2, "RuntimeError")}
    assert all(letter.topic == TOPICS.articles and letter.stage == "processors" for letter in letters)
    # Everything was committed: a restarted processor has nothing left to do.
    assert ClassifyStage(stage_context(log, TOPICS, "processors"), analyzer=KeywordAnalyzer()).run(threading.Event(), once=True) == 0
    # What the batch wrote is said once, at INFO, with the stage as a field for log shippers.
    [report] = [record for record in caplog.records if "committed" in record.getMessage()]
    assert report.getMessage() == f"stage=processors committed 4 record(s), wrote 2 to {TOPICS.classified}, 2 to {TOPICS.dlq}"
    assert report.stage == "processors"


def test_sink_stage_retries_a_batch_under_backpressure_and_commits_after_the_write(caplog):
    caplog.set_level(logging.INFO, logger="pipeline.core.stages")
    log = transport()
    produce(log, TOPICS.alerts, [encode(alert_for(make_classified(make_article(f"https://news.example/{n}")))) for n in range(3)])
    sink = ListSink(fail_times=2)
    stage = SinkStage(stage_context(log, TOPICS, "sinks"), sinks=[sink])
    stage.setup()
    assert stage.run(threading.Event(), once=True) == 3
    assert len(sink.written) == 3
    assert SinkStage(stage_context(log, TOPICS, "sinks"), sinks=[ListSink()]).run(threading.Event(), once=True) == 0
    # The report counts what the batch wrote, not what each attempt tried to.
    [report] = [record.getMessage() for record in caplog.records if "committed" in record.getMessage()]
    assert report == "stage=sinks committed 3 record(s), wrote 3 to sink list"


class EndOffsetsTimeOutOnce(EmbeddedTransport):
    """As on Kafka just after a partition leader is lost: polls go on, the first read of end offsets times out."""

    def consumer(self, group, topics):
        consumer = super().consumer(group, topics)
        measure = consumer.lag
        failed = []

        def lag():
            if not failed:
                failed.append(True)
                raise TransportError("reading end offsets: KafkaTimeoutError: Failed to get offsets by times in 30000 ms")
            return measure()

        consumer.lag = lag
        return consumer


def test_records_polled_when_the_lag_cannot_be_measured_are_still_handled(caplog):
    log = EndOffsetsTimeOutOnce(":memory:")
    log.ensure_topics(TOPICS.all())
    produce(log, TOPICS.alerts, [encode(alert_for(make_classified(make_article(f"https://news.example/{n}")))) for n in range(3)])
    sink = ListSink()
    stage = SinkStage(stage_context(log, TOPICS, "sinks"), sinks=[sink])
    stage.setup()
    assert stage.run(threading.Event(), once=True) == 3
    assert len(sink.written) == 3
    assert "lag not measured" in caplog.text


def test_a_stop_during_sink_retries_leaves_the_batch_uncommitted():
    log = transport()
    produce(log, TOPICS.alerts, [encode(alert_for(make_classified()))])
    stop = threading.Event()

    class StoppingSink(ListSink):
        def write(self, batch):
            stop.set()
            raise SinkBackpressure("down", retry_after=5)

    stage = SinkStage(stage_context(log, TOPICS, "sinks"), sinks=[StoppingSink()])
    stage.run(stop)
    retry = ListSink()
    SinkStage(stage_context(log, TOPICS, "sinks"), sinks=[retry]).run(threading.Event(), once=True)
    assert len(retry.written) == 1


def test_sink_stage_dead_letters_an_invalid_alert():
    log = transport()
    produce(log, TOPICS.alerts, [(b"k", b'{"id": "short"}'), encode(alert_for(make_classified()))])
    sink = ListSink()
    SinkStage(stage_context(log, TOPICS, "sinks"), sinks=[sink]).run(threading.Event(), once=True)
    assert len(sink.written) == 1
    (letter,) = [decode(DeadLetter, r.value) for r in read_all(log, TOPICS.dlq)]
    assert letter.stage == "sinks" and letter.offset == 0 and '"short"' in letter.payload


# --- sinks that reject one message: dead letters, not a crash loop --------------------------


def real_sinks(database_url, tmp_path):
    engine = make_engine(database_url)
    return [RecordsSink(engine), AlertsSink(engine)]


def test_alerts_the_feed_cannot_show_are_dead_lettered_and_the_rest_is_written(database_url, tmp_path):
    log = transport()
    good = alert_for(make_classified(make_article("https://news.example/bridge")))
    untitled = alert_for(make_classified(make_article("https://news.example/untitled", title="")))
    scripted = alert_for(make_classified(make_article("javascript:alert(1)")))
    produce(log, TOPICS.alerts, [encode(untitled), encode(good), encode(scripted)])
    produce(log, TOPICS.classified, [encode(make_classified(make_article("https://news.example/bridge")))])

    stage = SinkStage(stage_context(log, TOPICS, "sinks"), sinks=real_sinks(database_url, tmp_path))
    stage.setup()
    assert stage.run(threading.Event(), once=True) == 4
    stage.close()

    letters = {letter.offset: letter for letter in (decode(DeadLetter, r.value) for r in read_all(log, TOPICS.dlq))}
    assert set(letters) == {0, 2}
    assert all(letter.sink == "alerts" and letter.topic == TOPICS.alerts and letter.partition == 0 for letter in letters.values())
    assert "empty title" in letters[0].reason and "not an http(s) URL" in letters[2].reason
    with make_engine(database_url).connect() as connection:
        assert connection.execute(sa.select(alerts.c.url)).scalars().all() == ["https://news.example/bridge"]
        assert connection.execute(sa.select(sa.func.count()).select_from(articles)).scalar_one() == 1
    # Everything was committed: a restarted sinks role does not meet the bad alerts again.
    again = SinkStage(stage_context(log, TOPICS, "sinks"), sinks=real_sinks(database_url, tmp_path))
    again.setup()
    assert again.run(threading.Event(), once=True) == 0


def test_a_value_the_database_refuses_rejects_only_that_article(database_url, tmp_path):
    log = transport()
    with_nul = make_classified(make_article("https://news.example/nul", text="A page with a \x00 byte in it."))
    fine = make_classified(make_article("https://news.example/fine"))
    produce(log, TOPICS.classified, [encode(with_nul), encode(fine)])

    stage = SinkStage(stage_context(log, TOPICS, "sinks"), sinks=real_sinks(database_url, tmp_path))
    stage.setup()
    assert stage.run(threading.Event(), once=True) == 2

    with make_engine(database_url).connect() as connection:
        stored = set(connection.execute(sa.select(articles.c.url)).scalars())
    letters = [decode(DeadLetter, r.value) for r in read_all(log, TOPICS.dlq)]
    if database_url.startswith("postgresql"):  # PostgreSQL text cannot hold NUL; SQLite's can
        assert stored == {"https://news.example/fine"}
        assert [(letter.sink, letter.offset, letter.error_type) for letter in letters] == [("records", 0, "MessageRejected")]
    else:
        assert stored == {"https://news.example/nul", "https://news.example/fine"} and letters == []


def test_a_sink_that_crashes_on_one_message_gets_it_dead_lettered():
    log = transport()
    alerts = [alert_for(make_classified(make_article(f"https://news.example/{n}"))) for n in range(3)]
    produce(log, TOPICS.alerts, [encode(alert) for alert in alerts])

    class BuggySink(ListSink):
        def write(self, batch):
            if any(alert.url.endswith("/1") for alert in batch):
                raise KeyError("a bug met by one alert")
            super().write(batch)

    sink = BuggySink()
    assert SinkStage(stage_context(log, TOPICS, "sinks"), sinks=[sink]).run(threading.Event(), once=True) == 3
    assert sorted(alert.url for alert in sink.written) == ["https://news.example/0", "https://news.example/2"]
    (letter,) = [decode(DeadLetter, r.value) for r in read_all(log, TOPICS.dlq)]
    assert (letter.offset, letter.error_type, letter.sink) == (1, "KeyError", "list")
