"""A sinks role rides out a database outage without losing its place in the Kafka group.

The sinks write to a real PostgreSQL server through a TCP proxy that the test cuts. The
group's ``max.poll.interval.ms`` is shortened to 6 s and the outage lasts 24 s: four times
the interval, as a 20-minute outage would be under the default 5 minutes. A member that
stopped polling while it retried would be evicted, its commit refused and the batch
delivered again; a paused member that keeps polling commits once the database is back.
"""

from __future__ import annotations

import logging
import threading
import time

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import make_url

from pipeline.core.db import make_engine
from pipeline.core.messages import encode
from pipeline.core.settings import KafkaSettings
from pipeline.core.stages import SinkStage
from pipeline.core.topology import Topics
from pipeline.core.transport.kafka import KafkaTransport
from sinks.records import RecordsSink, articles
from tests.support.databases import postgres_schema_url
from tests.support.messages import make_article, make_classified
from tests.support.proxy import TcpProxy
from tests.support.stages import stage_context

pytestmark = [pytest.mark.kafka, pytest.mark.postgres, pytest.mark.slow]

MAX_POLL_INTERVAL_MS = 6_000
OUTAGE_SECONDS = 24


def count_rows(database_url: str) -> int:
    engine = make_engine(database_url)
    try:
        with engine.connect() as connection:
            return connection.execute(sa.select(sa.func.count()).select_from(articles)).scalar_one()
    finally:
        engine.dispose()


def test_a_database_outage_longer_than_the_poll_interval_keeps_the_member_in_its_group(
    kafka_bootstrap, topic_prefix, caplog,
):
    settings = KafkaSettings(
        bootstrap_servers=kafka_bootstrap, topic_prefix=topic_prefix, max_poll_interval_ms=MAX_POLL_INTERVAL_MS,
    )
    topics = Topics(topic_prefix)
    transport = KafkaTransport(settings)
    transport.ensure_topics(topics.all())
    group = topic_prefix + "sinks"
    stop = threading.Event()
    with postgres_schema_url() as direct_url:
        url = make_url(direct_url)
        with TcpProxy((url.host, url.port)) as proxy:
            proxied_url = url.set(port=proxy.port).render_as_string(hide_password=False)
            sink = RecordsSink(make_engine(proxied_url))
            sink.setup()
            stage = SinkStage(stage_context(transport, topics, "sinks", group=group), sinks=[sink])
            proxy.cut()
            producer = transport.producer()
            for n in range(3):
                producer.produce(topics.classified, *encode(make_classified(make_article(f"https://news.example/outage-{n}"))))
            producer.flush()

            handled: list[int] = []
            with caplog.at_level(logging.WARNING):
                runner = threading.Thread(target=lambda: handled.append(stage.run(stop)), name="sinks")
                runner.start()
                time.sleep(OUTAGE_SECONDS)
                assert count_rows(direct_url) == 0  # the outage was real
                proxy.restore()
                deadline = time.monotonic() + 90
                while count_rows(direct_url) < 3 and time.monotonic() < deadline:
                    time.sleep(0.5)
                assert count_rows(direct_url) == 3
                while transport.group_lag(group, [topics.classified]) and time.monotonic() < deadline:
                    time.sleep(0.1)  # the commit follows the write
                stop.set()
                runner.join(timeout=60)
            stage.close()

            refused = [record.getMessage() for record in caplog.records if "commit failed" in record.getMessage()]
            assert refused == [], "the member was evicted during the outage"
            assert "not written, retrying" in caplog.text
            # The group's offsets moved past the batch: a new member has nothing to do.
            again = SinkStage(stage_context(transport, topics, "sinks", group=group), sinks=[RecordsSink(make_engine(direct_url))])
            assert again.run(threading.Event(), once=True) == 0
            again.close()
    transport.close()
