"""Webhook deliveries a crash replay or a busy batch must not repeat under a new id."""

from __future__ import annotations

import json
import time

from tests.sinks.test_webhooks import STORY, embedded_log, secret, subscriptions_file, webhooks  # noqa: F401 - secret: the autouse signing key
from tests.support.webhook_receiver import WebhookReceiver


def _events(receiver) -> list[tuple[str, int, str]]:
    return [(json.loads(r.body)["type"], json.loads(r.body)["data"]["version"], r.headers["webhook-id"]) for r in receiver.requests]


def test_a_replayed_first_version_is_not_an_update_under_a_new_id(database_url, tmp_path):
    log = embedded_log(tmp_path)
    with WebhookReceiver() as receiver:
        watcher = subscriptions_file(tmp_path, receiver.url, updates=True)
        sink = webhooks(database_url, watcher, log)
        sink.add(STORY)
        sink.flush()
        receiver.wait_for(accepted=1)
        sink.close()
        # The sinks role was killed before it committed: the restarted one meets version 1 again.
        again = webhooks(database_url, watcher, log)
        for alert in (STORY, STORY.model_copy(update={"version": 2})):
            again.add(alert)
            again.flush()
        receiver.wait_for(accepted=2)
        time.sleep(0.5)  # anything more would have come by now
        again.close()
    events = _events(receiver)
    assert [(kind, version) for kind, version, _ in events] == [("story.created", 1), ("story.updated", 2)]
    assert len({webhook_id for _, _, webhook_id in events}) == 2


def test_two_versions_in_one_batch_are_a_creation_and_an_update(database_url, tmp_path):
    with WebhookReceiver() as receiver:
        sink = webhooks(database_url, subscriptions_file(tmp_path, receiver.url, updates=True), embedded_log(tmp_path))
        for alert in (STORY, STORY.model_copy(update={"version": 2}), STORY.model_copy(update={"version": 2})):
            sink.add(alert)
        sink.flush()
        receiver.wait_for(accepted=2)
        time.sleep(0.5)
        sink.close()
    assert sorted((kind, version) for kind, version, _ in _events(receiver)) == [("story.created", 1), ("story.updated", 2)]
