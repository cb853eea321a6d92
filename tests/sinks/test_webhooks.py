"""Webhook channels: signed, retried with back-off, parked on the DLQ, never delivered twice."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import threading
import time

import feedparser
import pytest
import sqlalchemy as sa

from pipeline.core.db import make_engine
from pipeline.core.errors import ConfigError
from pipeline.core.messages import DeadLetter, decode, encode
from pipeline.core.stages import SinkStage
from sinks.alerts import AlertsSink
from sinks.subscription_feeds import FeedsOptions, SubscriptionFeedsSink
from sinks.webhooks import WebhooksSink, sign, webhook_deliveries
from tests.support.outbox import settled
from tests.support.stages import stage_context
from tests.support.webhook_receiver import WebhookReceiver
from tests.support.webhooks import FAST, LOOPBACK, SECRET, STORY, TOPICS, embedded_log, secret, subscriptions_file, webhooks  # noqa: F401 - secret: the autouse signing key


def valid_signature(request) -> bool:
    headers = request.headers
    expected = sign(SECRET, headers["webhook-id"], int(headers["webhook-timestamp"]), request.body)
    key = base64.b64decode(SECRET.removeprefix("whsec_"))
    recomputed = base64.b64encode(hmac.new(
        key, f"{headers['webhook-id']}.{headers['webhook-timestamp']}.".encode() + request.body, hashlib.sha256,
    ).digest()).decode()
    return headers["webhook-signature"] == expected == f"v1,{recomputed}"


def test_an_endpoint_that_fails_twice_gets_the_story_once_correctly_signed(database_url, tmp_path):
    with WebhookReceiver(statuses=[500, 503]) as receiver:
        sink = webhooks(database_url, subscriptions_file(tmp_path, receiver.url), embedded_log(tmp_path))
        sink.add(STORY)
        assert sink.flush() == []
        receiver.wait_for(accepted=1)
        settled(database_url, webhook_deliveries)  # nothing is left to send
        sink.close()
    assert [request.status for request in receiver.requests] == [500, 503, 200]
    assert len({request.headers["webhook-id"] for request in receiver.requests}) == 1  # one delivery, retried
    (delivered,) = receiver.accepted
    assert valid_signature(delivered)
    body = json.loads(delivered.body)
    assert body["type"] == "story.created" and body["data"]["id"] == STORY.id


def test_a_replayed_story_and_an_update_without_updates_asked_deliver_nothing_more(database_url, tmp_path):
    log = embedded_log(tmp_path)
    with WebhookReceiver() as receiver:
        watcher = subscriptions_file(tmp_path, receiver.url)
        sink = webhooks(database_url, watcher, log)
        sink.add(STORY)
        sink.flush()
        receiver.wait_for(accepted=1)
        sink.close()
        # A restarted sinks role meets the uncommitted alert again, then the story's next version.
        again = webhooks(database_url, watcher, log)
        for alert in (STORY, STORY.model_copy(update={"version": 2})):
            again.add(alert)
            again.flush()
        assert len(settled(database_url, webhook_deliveries)) == 1  # neither made a delivery
        again.close()
    assert len(receiver.requests) == 1


def test_updates_are_delivered_when_the_subscription_asks(database_url, tmp_path):
    with WebhookReceiver() as receiver:
        sink = webhooks(database_url, subscriptions_file(tmp_path, receiver.url, updates=True), embedded_log(tmp_path))
        for alert in (STORY, STORY.model_copy(update={"version": 2}), STORY.model_copy(update={"version": 2})):
            sink.add(alert)
            sink.flush()
        receiver.wait_for(accepted=2)
        assert len(settled(database_url, webhook_deliveries)) == 2  # the repeated version 2 made none
        sink.close()
    events = [(json.loads(r.body)["type"], json.loads(r.body)["data"]["version"]) for r in receiver.requests]
    assert events == [("story.created", 1), ("story.updated", 2)]


def test_a_stopping_sink_sends_every_delivery_due_one_after_another(database_url, tmp_path):
    """``amur run --once``: the outbox is never looked at in the background (a minute between
    looks), yet closing the sink sends each of the subscription's five versions, in turn."""
    with WebhookReceiver() as receiver:
        once = FAST.model_copy(update={"poll_seconds": 60})
        sink = webhooks(database_url, subscriptions_file(tmp_path, receiver.url, updates=True), embedded_log(tmp_path), options=once)
        for version in range(1, 6):
            sink.add(STORY.model_copy(update={"version": version}))
        assert sink.flush() == []
        sink.close()
        assert [json.loads(request.body)["data"]["version"] for request in receiver.accepted] == [1, 2, 3, 4, 5]


def test_a_dead_endpoint_parks_the_delivery_on_the_dlq_while_the_feeds_update(database_url, tmp_path):
    log = embedded_log(tmp_path)
    producer = log.producer()
    producer.produce(TOPICS.alerts, *encode(STORY))
    producer.flush()
    with WebhookReceiver(default_status=500) as receiver:
        watcher = subscriptions_file(tmp_path, receiver.url)
        store = AlertsSink(make_engine(database_url))
        feeds = SubscriptionFeedsSink(make_engine(database_url), FeedsOptions(directory=str(tmp_path / "feeds")), watcher)
        hooks = WebhooksSink(make_engine(database_url), FAST, watcher, log.producer(), TOPICS, LOOPBACK)
        stage = SinkStage(stage_context(log, TOPICS, "sinks"), sinks=[store, feeds, hooks])
        stage.setup()
        assert stage.run(threading.Event(), once=True) == 1
        assert [entry.link for entry in feedparser.parse((tmp_path / "feeds" / "partners.atom").read_bytes()).entries] == [
            "https://a.example/power"
        ]
        receiver.wait_for(requests=3)
        deadline = time.monotonic() + 10
        letters = []
        while not letters and time.monotonic() < deadline:
            reader = log.consumer("reader", [TOPICS.dlq])
            letters = [decode(DeadLetter, record.value) for record in reader.poll(10, 0.2)]
            reader.close()
        stage.close()
    (letter,) = letters
    assert letter.sink == "webhooks" and "subscription partners" in letter.reason and "HTTP 500" in letter.reason
    assert json.loads(letter.payload)["data"]["id"] == STORY.id
    assert len(receiver.requests) == 3  # max_attempts, then no more
    with make_engine(database_url).connect() as connection:
        assert connection.execute(sa.select(webhook_deliveries.c.status)).scalar_one() == "parked"


def test_a_webhook_without_its_secret_is_a_configuration_error(database_url, tmp_path, monkeypatch):
    monkeypatch.delenv("AMUR_TEST_HOOK_SECRET")
    with pytest.raises(ConfigError, match="AMUR_TEST_HOOK_SECRET is not set"):
        webhooks(database_url, subscriptions_file(tmp_path, "http://127.0.0.1:9/hook"), embedded_log(tmp_path))
