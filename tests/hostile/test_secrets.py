"""Credentials an operator put in a URL never reach a log line, a health report, a page or a
dead letter: a feed behind basic auth and a webhook with a ``?token=`` both fail, and
everything Amur says about them is read back."""

from __future__ import annotations

import time

import pytest
import sqlalchemy as sa
from fastapi.testclient import TestClient
from typer.testing import CliRunner

from pipeline.app.cli import app
from pipeline.app.logs import configure_logging
from pipeline.app.web.app import create_app
from pipeline.core.db import make_engine
from pipeline.core.messages import DeadLetter, decode
from pipeline.core.redaction import redact
from pipeline.core.settings import load_settings
from sinks.webhooks import webhook_deliveries
from tests.support.local_site import LocalSite
from tests.support.webhook_receiver import WebhookReceiver
from tests.support.webhooks import FAST, STORY, TOPICS, embedded_log, secret, subscriptions_file, webhooks  # noqa: F401 - secret: the autouse signing key

FEED_PASSWORD = "feed-pa55word"
HOOK_TOKEN = "hook-t0ken-value"


@pytest.mark.parametrize(("text", "shown"), [
    ("GET https://reader:pw@feeds.example.org/rss failed", "GET https://reader:***@feeds.example.org/rss failed"),
    ("https://ghp_abc@git.example.org/x.", "https://***@git.example.org/x."),
    ("to https://h.example/hook?id=7&token=abc: HTTP 500", "to https://h.example/hook?id=7&token=***: HTTP 500"),
    ("(http://h.example/a?api_key=k&signature=s&page=2)", "(http://h.example/a?api_key=***&signature=***&page=2)"),
    ("http://h.example/news?q=trade", "http://h.example/news?q=trade"),
    ("no address here", "no address here"),
])
def test_a_url_keeps_its_place_and_loses_its_credentials(text, shown):
    assert redact(text) == shown


def test_a_feed_password_is_in_no_log_line_health_report_or_page(tmp_path, capfd, isolated_logging):
    with LocalSite() as site:  # nothing served: every request is a 404
        url = site.url("/private/feed.xml").replace("http://", f"http://reader:{FEED_PASSWORD}@") + f"?access_token={FEED_PASSWORD}"
        config = tmp_path / "amur.yaml"
        config.write_text(
            f"database_url: sqlite:///{tmp_path / 'amur.sqlite'}\nembedded:\n  path: {tmp_path / 'log.sqlite'}\n"
            "fetch:\n  per_host_delay_seconds: 0\n  allow_networks: [127.0.0.0/8]\n"
        )
        (tmp_path / "sources.yaml").write_text(f"sources:\n  - name: members\n    url: {url}\n")
        (tmp_path / "subscriptions.yaml").write_text("subscriptions: []\n")
        runner = CliRunner(env={"COLUMNS": "250"})
        amur = lambda *args: runner.invoke(app, [*args, "--config", str(config)])  # noqa: E731
        ran = amur("run", "connectors", "--once")
        assert ran.exit_code == 0, ran.output
        assert site.requests_to("/private/feed.xml"), "the feed was never asked for"
    logged = capfd.readouterr().err + ran.output
    assert "members" in logged and "404" in logged
    status = amur("sources", "status")
    listing = amur("sources", "list")
    assert "404" in status.output and "reader:***@" in listing.output
    with TestClient(create_app(load_settings(config), config), base_url="http://localhost") as client:
        page = client.get("/sources").text
    assert "404" in page
    for shown in (logged, status.output, listing.output, page):
        assert FEED_PASSWORD not in shown


def test_a_webhook_token_is_in_no_stored_error_log_line_or_dead_letter(database_url, tmp_path, capfd, isolated_logging):
    configure_logging("info")
    log = embedded_log(tmp_path)
    with WebhookReceiver(default_status=500) as receiver:
        sink = webhooks(
            database_url, subscriptions_file(tmp_path, f"{receiver.url}?token={HOOK_TOKEN}"), log,
            FAST.model_copy(update={"max_attempts": 1}),
        )
        sink.add(STORY)
        sink.flush()
        receiver.wait_for(requests=1)
        letters: list[DeadLetter] = []
        deadline = time.monotonic() + 20
        while not letters:
            assert time.monotonic() < deadline, "the parked delivery never reached the dead-letter topic"
            reader = log.consumer("reader", [TOPICS.dlq])
            letters = [decode(DeadLetter, record.value) for record in reader.poll(10, 0.2)]
            reader.close()
        sink.close()
    (letter,) = letters
    assert "token=***" in letter.reason and "HTTP 500" in letter.reason
    with make_engine(database_url).connect() as connection:
        stored = connection.execute(sa.select(webhook_deliveries.c.last_error)).scalar_one()
    logged = capfd.readouterr().err
    assert "dead letter" in logged
    for shown in (letter.reason, letter.id, stored or "", logged):
        assert HOOK_TOKEN not in shown
