"""PostgreSQL, a webhook endpoint or the SMTP server away: the pipeline waits for them and then
delivers everything once; an email digest over Kafka collects its period's stories once."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta

import pytest

from tests.faults.conftest import SETTLE_SECONDS, running
from tests.support.ports import free_port
from tests.support.smtp import SmtpServer
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


def _pending(drill, table: str) -> int:
    return drill.query(f"SELECT COUNT(*) FROM {table} WHERE status = 'pending'")[0][0]  # noqa: S608 - the test's own table name


def test_an_smtp_server_down_for_the_whole_run_blocks_no_other_channel_and_gets_every_story_once_when_back(
    make_drill, kafka_bootstrap, database,
):
    smtp_port = free_port()
    with WebhookReceiver() as receiver:
        drill = make_drill(kafka_bootstrap, database, receiver.url, smtp_port=smtp_port, email="- type: email\n  to: [desk@example.org]")
        with running(drill):
            # Records, feeds and the webhook do not wait for the mail server.
            drill.wait_for(lambda: drill.settled(receiver), SETTLE_SECONDS, "every channel but email while the SMTP server is down")
            drill.wait_for(
                lambda: drill.query("SELECT COALESCE(MIN(attempts), 0) FROM email_deliveries WHERE status = 'pending'")[0][0] >= 3, 60,
                "every message tried and failed a few times",
            )
            stories = len(drill.stream.outlets_per_story)
            with SmtpServer(port=smtp_port) as mailbox:
                drill.wait_for(lambda: _pending(drill, "email_deliveries") == 0, 60, "every message sent once the server is back")
                messages = list(mailbox.messages)
        drill.assert_exactly_once(receiver)
    message_ids = [message["Message-ID"] for message in messages]
    assert len(message_ids) == len(set(message_ids)) == stories, message_ids
    assert drill.query("SELECT COUNT(*) FROM email_deliveries WHERE status = 'delivered'") == [(stories,)]
    assert "email subscription=partners attempt=3 failed" in drill.log.read_text(errors="replace")


def test_a_digest_over_kafka_sends_its_period_s_stories_in_one_message_once(make_drill, kafka_bootstrap, database):
    def digest_at(moment: datetime) -> str:
        return f"- type: email\n  to: [desk@example.org]\n  mode: digest\n  schedule: {{every: day, at: '{moment:%H:%M}', timezone: UTC}}"

    with SmtpServer() as mailbox, WebhookReceiver() as receiver:
        # The day's period ended an hour ago: every story of the stream waits for the next one.
        ended = datetime.now(UTC) - timedelta(hours=1)
        drill = make_drill(kafka_bootstrap, database, receiver.url, smtp_port=mailbox.port, email=digest_at(ended))
        with running(drill):
            drill.wait_for(lambda: drill.settled(receiver), SETTLE_SECONDS, "the stream recorded, alerted and collected")
            stories = len(drill.stream.outlets_per_story)
            drill.wait_for(lambda: drill.query("SELECT COUNT(DISTINCT story_id) FROM email_digest_items") == [(stories,)], 60,
                           "every story collected for the digest")
            assert mailbox.messages == []  # the period they came in has not ended
            # The operator moves the digest to the coming minute; the running sinks read the edit.
            subscriptions = drill.root / "subscriptions.yaml"
            due = datetime.now(UTC) + timedelta(minutes=1)
            subscriptions.write_text(subscriptions.read_text().replace(f"at: '{ended:%H:%M}'", f"at: '{due:%H:%M}'"))
            [digest] = mailbox.wait_for(1, timeout=180)
            drill.wait_for(lambda: _pending(drill, "email_deliveries") == 0, 60, "the digest marked sent")
        sent = list(mailbox.messages)
    assert len(sent) == 1, [message["Subject"] for message in sent]
    text = digest.get_body(("plain",)).get_content()
    for headline, title, url in drill.query("SELECT headline, title, url FROM alerts"):
        assert (headline or title) in text and url in text
    assert drill.query("SELECT COUNT(*) FROM email_digest_items WHERE digest IS NULL") == [(0,)]

