"""Webhook deliveries a crash replay or a busy batch must not repeat under a new id."""

from __future__ import annotations

import json
import time

import pytest
import sqlalchemy as sa

from pipeline.core.db import make_engine
from pipeline.core.errors import ConfigError
from pipeline.core.settings import AmurSettings
from pipeline.core.subscriptions import SubscriptionsWatcher
from sinks.webhooks import webhook_deliveries
from tests.support.outbox import settled
from tests.support.webhook_receiver import WebhookReceiver
from tests.support.webhooks import FAST, STORY, embedded_log, secret, subscriptions_file, webhooks  # noqa: F401 - secret: the autouse signing key


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
        assert len(settled(database_url, webhook_deliveries)) == 2  # version 1 again made no delivery
        again.close()
    events = _events(receiver)
    assert [(kind, version) for kind, version, _ in events] == [("story.created", 1), ("story.updated", 2)]
    assert len({webhook_id for _, _, webhook_id in events}) == 2
    assert "gist_en" in json.loads(receiver.requests[0].body)["data"]  # the English line travels with the story


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


# --- what a delivery may reach, and how long and how much it may take --------------------------

def _subscriptions(tmp_path, endpoints: dict[str, str]):
    path = tmp_path / "subscriptions.yaml"
    path.write_text("subscriptions:\n" + "".join(
        f"  - name: {name}\n    filters: {{regions: [CN-HL]}}\n    channels:\n"
        f"      - type: webhook\n        url: {url}\n        secret_env: AMUR_TEST_HOOK_SECRET\n"
        for name, url in endpoints.items()
    ))
    return SubscriptionsWatcher(path, AmurSettings())


def _last_errors(database_url) -> dict[str, str | None]:
    engine = make_engine(database_url)
    with engine.connect() as connection:
        rows = connection.execute(sa.select(webhook_deliveries.c.subscription, webhook_deliveries.c.last_error)).all()
    engine.dispose()
    return dict(rows)


def _until(condition, seconds: float = 30.0) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, "the condition never held"
        time.sleep(0.05)


def test_a_delivery_goes_through_the_destination_guard_and_no_proxy(database_url, tmp_path, monkeypatch):
    """Allowed 127.0.0.1 only, a webhook on 127.0.0.2 is refused; a proxy in the environment is not used."""
    with WebhookReceiver(host="127.0.0.2") as outside, WebhookReceiver() as proxy, WebhookReceiver() as inside:
        monkeypatch.setenv("HTTP_PROXY", proxy.url.removesuffix("/hook"))
        monkeypatch.setenv("http_proxy", proxy.url.removesuffix("/hook"))
        sink = webhooks(database_url, _subscriptions(tmp_path, {"outside": outside.url, "inside": inside.url}), embedded_log(tmp_path))
        sink.add(STORY)
        sink.flush()
        inside.wait_for(accepted=1)
        _until(lambda: _last_errors(database_url)["outside"] is not None)
        refusal = _last_errors(database_url)["outside"]  # read before closing, which cuts a retry short
        sink.close()
    assert outside.requests == [] and proxy.requests == []
    assert "refused: 127.0.0.2 is a loopback address (fetch.allow_networks to allow)" in refusal


def _drip(request, status: int) -> None:
    """Begin an answer and never finish it: a byte every half second."""
    request.wfile.write(b"HTTP/1.1 200 OK\r\nX-Slow: ")
    request.wfile.flush()
    for _ in range(240):
        time.sleep(0.5)
        request.wfile.write(b"a")
        request.wfile.flush()


HUGE = 400 * 1024 * 1024
sent_of_huge: list[int] = []


def _huge(request, status: int) -> None:
    """Answer 200 with a body of 400 MB, written a megabyte at a time."""
    request.send_response(200)
    request.send_header("Content-Length", str(HUGE))
    request.end_headers()
    chunk, sent = b"x" * (1024 * 1024), 0
    try:
        while sent < HUGE:
            request.wfile.write(chunk)
            sent += len(chunk)
    finally:
        sent_of_huge.append(sent)


def test_a_dripping_and_a_huge_endpoint_delay_neither_a_healthy_one_nor_the_shutdown(database_url, tmp_path):
    options = FAST.model_copy(update={"timeout_seconds": 2.0, "max_attempts": 5, "first_retry_seconds": 30.0})
    with WebhookReceiver(answer=_drip) as dripping, WebhookReceiver(answer=_huge) as huge, WebhookReceiver() as healthy:
        endpoints = {"dripping": dripping.url, "huge": huge.url, "healthy": healthy.url}
        sink = webhooks(database_url, _subscriptions(tmp_path, endpoints), embedded_log(tmp_path), options)
        sink.add(STORY)
        flushed = time.monotonic()
        sink.flush()
        healthy.wait_for(accepted=1)
        assert time.monotonic() - flushed < 5
        _until(lambda: all(_last_errors(database_url)[name] for name in ("dripping",)) and sent_of_huge)
        # A second story while the first attempt at the dripping endpoint may still be in flight.
        second = STORY.model_copy(update={"id": "f" * 32})
        sink.add(second)
        sink.flush()
        healthy.wait_for(accepted=2)
        closing = time.monotonic()
        sink.close()
        assert time.monotonic() - closing < 10
    errors = _last_errors(database_url)
    assert "no answer within 2 s" in errors["dripping"]
    assert errors["huge"] is None  # answered 200: delivered, its body never read
    assert sent_of_huge[0] < HUGE


def test_two_sinks_workers_never_post_the_same_delivery(database_url, tmp_path):
    """Two workers over one outbox (``--workers sinks=2``), polling it at once: each delivery is claimed by one."""
    log = embedded_log(tmp_path)
    options = FAST.model_copy(update={"poll_seconds": 0.01})
    with WebhookReceiver() as receiver:
        watcher = _subscriptions(tmp_path, {f"partner-{n}": receiver.url for n in range(4)})
        first, second = (webhooks(database_url, watcher, log, options) for _ in range(2))
        stories = [STORY.model_copy(update={"id": f"{n:032x}"}) for n in range(15)]
        for story in stories:
            first.add(story)
        first.flush()
        receiver.wait_for(accepted=len(stories) * 4, timeout=60)
        time.sleep(0.5)  # anything sent twice would have come by now
        first.close()
        second.close()
    ids = [request.headers["webhook-id"] for request in receiver.requests]
    assert len(ids) == len(stories) * 4 == len(set(ids))


def test_a_malformed_whsec_secret_stops_the_sink_at_start_with_the_key_and_the_fix(database_url, tmp_path, monkeypatch):
    monkeypatch.setenv("AMUR_TEST_HOOK_SECRET", "whsec_not base64!")
    with pytest.raises(ConfigError) as caught:
        webhooks(database_url, subscriptions_file(tmp_path, "http://127.0.0.1:9/hook"), embedded_log(tmp_path))
    (problem,) = caught.value.problems
    assert problem.key == "subscriptions.0.channels (webhook).secret_env"
    assert "holds no usable secret: a whsec_ secret must go on in base64" in problem.message
