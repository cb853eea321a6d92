"""PostgreSQL and a webhook endpoint away: the pipeline waits for them and then delivers everything once."""

from __future__ import annotations

import time

import pytest

from tests.faults.conftest import SETTLE_SECONDS, running
from tests.support.ports import free_port
from tests.support.webhook_receiver import WebhookReceiver

pytestmark = [pytest.mark.faults, pytest.mark.kafka, pytest.mark.postgres, pytest.mark.slow]

DATABASE_OUTAGE_SECONDS = 20


def test_postgresql_stopped_and_restarted_mid_stream_loses_and_doubles_nothing(own_postgres, make_drill, kafka_bootstrap):
    postgres, database_url = own_postgres
    with WebhookReceiver() as receiver:
        drill = make_drill(kafka_bootstrap, database_url, receiver.url)
        with running(drill):
            drill.wait_for(lambda: drill.recorded() >= 4, 120, "the stream under way")
            postgres("stop")
            time.sleep(DATABASE_OUTAGE_SECONDS)
            postgres("start")
            drill.wait_for(lambda: drill.settled(receiver), SETTLE_SECONDS, "the stream to finish after the outage")
        drill.assert_exactly_once(receiver)
    # Waited out, and said so once: no crashed polls, no traceback for every look at the outbox.
    log = drill.log.read_text(errors="replace")
    assert "poll crashed" not in log and "could not read the outbox" not in log
    assert 1 <= log.count("sink=webhooks cannot read the outbox, trying again until it can") <= 2


def test_a_webhook_down_for_the_whole_run_gets_every_story_once_when_it_is_back(make_drill, kafka_bootstrap, database):
    port = free_port()
    drill = make_drill(kafka_bootstrap, database, f"http://127.0.0.1:{port}/hook")
    with running(drill):
        # Records and feeds do not wait for the webhook.
        drill.wait_for(lambda: drill.settled(None), SETTLE_SECONDS, "records and feeds while the webhook is down")
        drill.wait_for(
            lambda: drill.query("SELECT MIN(attempts) FROM webhook_deliveries WHERE status = 'pending'")[0][0] >= 3, 60,
            "every delivery tried and failed a few times",
        )
        with WebhookReceiver(port=port) as receiver:
            stories = len(drill.stream.outlets_per_story)
            drill.wait_for(lambda: len(receiver.accepted) >= stories, 60, "the deliveries once the webhook is back")
            time.sleep(3)  # long enough for a second delivery of any of them to arrive
            assert len(receiver.requests) == stories
    drill.assert_exactly_once(receiver)
    assert "webhook subscription=partners attempt=3 failed: ConnectError" in drill.log.read_text(errors="replace")
