"""Webhook sinks as the tests build them: a signing key in the environment, a subscriptions
file with one webhook channel, fast retry options and a story to deliver."""

from __future__ import annotations

import base64
from ipaddress import ip_network

import pytest

from pipeline.core.db import make_engine
from pipeline.core.settings import AmurSettings
from pipeline.core.subscriptions import SubscriptionsWatcher
from pipeline.core.topology import Topics
from pipeline.core.transport.embedded import EmbeddedTransport
from sinks.webhooks import WebhooksOptions, WebhooksSink
from tests.support.messages import make_story

TOPICS = Topics("t.")
SECRET = "whsec_" + base64.b64encode(b"a test signing key of 24b").decode()
FAST = WebhooksOptions(max_attempts=3, first_retry_seconds=0.05, max_retry_seconds=0.2, poll_seconds=0.05, timeout_seconds=2)
STORY = make_story(
    "https://a.example/power", regions=["RU-PRI", "CN-HL"], sectors=["energy"], level="interregional", score=0.9,
    language="en", sources=["tass"], title="Primorye and Heilongjiang agree a power line",
)


@pytest.fixture(autouse=True)
def secret(monkeypatch):
    monkeypatch.setenv("AMUR_TEST_HOOK_SECRET", SECRET)


def subscriptions_file(tmp_path, url: str, *, updates: bool = False):
    path = tmp_path / "subscriptions.yaml"
    path.write_text(
        "subscriptions:\n  - name: partners\n    filters: {regions: [CN-HL]}\n    channels:\n"
        f"      - type: webhook\n        url: {url}\n        secret_env: AMUR_TEST_HOOK_SECRET\n"
        f"        updates: {'true' if updates else 'false'}\n"
        "      - type: atom\n"
    )
    return SubscriptionsWatcher(path, AmurSettings())


LOOPBACK = [ip_network("127.0.0.1/32")]  # the receivers' address, outside what the guard allows by default


def webhooks(database_url, watcher, log, options=FAST, allow_networks=LOOPBACK) -> WebhooksSink:
    sink = WebhooksSink(make_engine(database_url), options, watcher, log.producer(), TOPICS, allow_networks)
    sink.setup()
    return sink


def embedded_log(tmp_path) -> EmbeddedTransport:
    log = EmbeddedTransport(str(tmp_path / "log.sqlite"))
    log.ensure_topics(TOPICS.all())
    return log
