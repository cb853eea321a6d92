"""Two stories found to be one event: the retired one leaves every feed and list, its id
redirects to the survivor on the API and the dashboard, and a webhook subscriber gets one
``story.merged`` and the survivor's update."""

from __future__ import annotations

import json
import threading

import feedparser
from fastapi.testclient import TestClient

from pipeline.app.web.app import create_app
from pipeline.core.db import make_engine
from pipeline.core.messages import encode
from pipeline.core.settings import AmurSettings
from pipeline.core.stages import SinkStage
from sinks.alerts import AlertsSink
from sinks.subscription_feeds import FeedsOptions, SubscriptionFeedsSink
from sinks.webhooks import WebhooksSink
from tests.support.messages import make_story
from tests.support.stages import stage_context
from tests.support.webhook_receiver import WebhookReceiver
from tests.support.webhooks import FAST, LOOPBACK, TOPICS, embedded_log, secret, subscriptions_file  # noqa: F401 - secret: the autouse signing key

OLDER = make_story(
    "https://ru.desk.example/terminal", regions=["RU-AMU", "CN-HL"], sectors=["transport_logistics"], level="interregional",
    score=0.9, language="ru", sources=["ru-desk"], title="Газпром и Амурская область открыли терминал",
)
NEWER = make_story(
    "https://zh.desk.example/terminal", regions=["CN-HL"], sectors=["transport_logistics"], level="interregional",
    score=0.8, language="zh", sources=["zh-desk"], title="黑河大桥货运终端启用",
)
RETIRED = NEWER.model_copy(update={"version": 2, "merged_into": OLDER.id})
SURVIVOR = OLDER.model_copy(update={
    "version": 2, "merged_from": [NEWER.id], "outlets": [*OLDER.outlets, *NEWER.outlets],
    "headline": "Bridge freight terminal opens between Amur Oblast and Heilongjiang",
})


def _sink_stage(database_url, tmp_path, log, receiver_url):
    watcher = subscriptions_file(tmp_path, receiver_url, updates=True)
    engine = make_engine(database_url)
    sinks = [
        AlertsSink(engine),
        SubscriptionFeedsSink(engine, FeedsOptions(directory=str(tmp_path / "feeds")), watcher),
        WebhooksSink(engine, FAST, watcher, log.producer(), TOPICS, LOOPBACK),
    ]
    stage = SinkStage(stage_context(log, TOPICS, "sinks"), sinks=sinks)
    stage.setup()
    return stage


def _send(log, *alerts) -> None:
    producer = log.producer()
    for alert in alerts:
        producer.produce(TOPICS.alerts, *encode(alert))
    producer.flush()


def test_a_merge_leaves_one_entry_everywhere_a_redirect_and_one_merged_webhook(database_url, tmp_path):
    log = embedded_log(tmp_path)
    with WebhookReceiver() as receiver:
        stage = _sink_stage(database_url, tmp_path, log, receiver.url)
        _send(log, OLDER, NEWER)
        assert stage.run(threading.Event(), once=True) == 2
        receiver.wait_for(accepted=2)
        _send(log, RETIRED, SURVIVOR, RETIRED)  # the notice again: a replay after a crash
        assert stage.run(threading.Event(), once=True) == 3
        receiver.wait_for(accepted=4)
        stage.close()
    events = [(json.loads(request.body)["type"], json.loads(request.body)["data"]["id"]) for request in receiver.requests]
    assert sorted(events) == sorted([
        ("story.created", OLDER.id), ("story.created", NEWER.id), ("story.merged", NEWER.id), ("story.updated", OLDER.id),
    ])
    merged = next(json.loads(request.body) for request in receiver.requests if json.loads(request.body)["type"] == "story.merged")
    assert merged["data"]["merged_into"] == OLDER.id

    entries = feedparser.parse((tmp_path / "feeds" / "partners.atom").read_bytes()).entries
    assert [entry.id.rpartition(":")[2] for entry in entries] == [OLDER.id]

    settings = AmurSettings(database_url=database_url)
    client = TestClient(create_app(settings, tmp_path / "amur.yaml"), base_url="http://127.0.0.1", follow_redirects=False)
    listed = client.get("/api/stories").json()["stories"]
    assert [story["id"] for story in listed] == [OLDER.id] and listed[0]["headline"] == SURVIVOR.headline
    moved = client.get(f"/api/stories/{NEWER.id}")
    assert moved.status_code == 308 and moved.headers["location"] == f"/api/stories/{OLDER.id}"
    assert client.get(f"/stories/{NEWER.id}").headers["location"] == f"/stories/{OLDER.id}"
    assert client.get(f"/api/stories/{NEWER.id}", follow_redirects=True).json()["story"]["version"] == 2
