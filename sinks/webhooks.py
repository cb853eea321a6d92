"""Webhooks (``type: webhooks``): each subscription's ``webhook`` channels get its stories as signed POSTs.

A channel in subscriptions.yaml::

    channels:
      - type: webhook
        url: https://hooks.example.org/amur
        secret_env: AMUR_WEBHOOK_SECRET_PARTNERS   # the signing key, never written in YAML
        updates: true                              # story.updated too, not only story.created

**Outbox and delivery** (:mod:`sinks.outbox`). ``flush`` only records the deliveries a batch
calls for, in the ``webhook_deliveries`` table; a background thread sends them, retries them
with back-off and parks them on the dead-letter topic. A subscription gets ``story.created``
once per story, at the first version it matches, and ``story.updated`` for each later
version only if its channel asks for updates; a version not newer than the created one (a
replay) is never an update. When a story it got is merged into another, it gets
``story.merged`` (the retired story's last version, whose ``merged_into`` names the
survivor), whether or not it asks for updates.

**A POST** goes through the destination guard (:mod:`pipeline.core.guard`,
``fetch.allow_networks``) with no proxy from the environment, must be answered within
``timeout_seconds`` in all (a deadline, not a per-read timeout: an endpoint dripping a byte
at a time is cut off), follows no redirect, and its answer's body is never read; closing
the sink ends the POSTs in flight. Any answer but 2xx, a connection error or the deadline
is a failed attempt.

**Signature.** The Standard Webhooks convention: headers ``webhook-id`` (the delivery id,
the same on every attempt, so a receiver can drop a repeat), ``webhook-timestamp`` (Unix
seconds) and ``webhook-signature`` = ``v1,`` + base64 of HMAC-SHA256 over
``<id>.<timestamp>.<body>``, keyed by the secret (the bytes after ``whsec_`` base64-decoded,
or the secret's UTF-8 bytes). The body is ``{"type": "story.created"|"story.updated"|"story.merged",
"timestamp": …, "data": <the alert message>}``.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import os
import threading
import time
from collections.abc import Sequence

import httpx
import sqlalchemy as sa
from sqlalchemy import Engine

from pipeline.core.db import metadata
from pipeline.core.errors import ConfigError, SinkError
from pipeline.core.guard import AddressPolicy, GuardedTransport, Network
from pipeline.core.messages import Alert, utc_now
from pipeline.core.sink import SinkContext
from pipeline.core.subscriptions import Subscription, SubscriptionsWatcher, secret_problems, signing_key, subscriptions_path
from pipeline.core.topology import Topics
from pipeline.core.transport.base import Producer
from sinks.outbox import OutboxOptions, OutboxSink, delivery_columns

__all__ = ["WebhooksOptions", "WebhooksSink", "sign"]

webhook_deliveries = sa.Table(
    "webhook_deliveries", metadata,
    *delivery_columns(),
    sa.Column("url", sa.Text, nullable=False),
    sa.Column("body", sa.Text, nullable=False),
    sa.Index("ix_webhook_deliveries_due", "status", "next_attempt_at"),
    sa.Index("ix_webhook_deliveries_story", "subscription", "story_id", "event"),
)


class WebhooksOptions(OutboxOptions):
    """Options of ``- type: webhooks`` in amur.yaml's ``sinks:`` (``timeout_seconds``: for one
    POST, connecting and answering)."""


def sign(secret: str, delivery_id: str, timestamp: int, body: bytes) -> str:
    """The ``webhook-signature`` header of a delivery (Standard Webhooks, ``v1``)."""
    key = signing_key(secret)
    signed = f"{delivery_id}.{timestamp}.".encode() + body
    return "v1," + base64.b64encode(hmac.new(key, signed, hashlib.sha256).digest()).decode()


class WebhooksSink(OutboxSink):
    """Records webhook deliveries in an outbox and sends them in the background (see the module docstring)."""

    name = "webhooks"
    channel = "webhook"
    table = webhook_deliveries
    tells_merges = True
    Options = WebhooksOptions

    def __init__(
        self, engine: Engine, options: WebhooksOptions, subscriptions: SubscriptionsWatcher, producer: Producer,
        topics: Topics, allow_networks: Sequence[Network] = (),
    ):
        super().__init__(engine, options, subscriptions, producer, topics)
        self.policy = AddressPolicy(allow_networks)
        self._posting: set[GuardedTransport] = set()  # the transports of the POSTs in flight
        self._posting_lock = threading.Lock()

    @classmethod
    def from_config(cls, options: WebhooksOptions, context: SinkContext) -> WebhooksSink:
        if context.transport is None:
            raise SinkError("webhooks: needs a transport for its dead letters")
        # A reload naming a secret the environment lacks is refused; the webhooks go on as before.
        subscriptions = SubscriptionsWatcher(
            subscriptions_path(context.config_path, context.settings), context.settings, secrets=os.environ,
            vocabulary=context.vocabulary,
        )
        return cls(
            context.engine(), options, subscriptions, context.transport.producer(), context.topics,
            context.settings.fetch.allow_networks,
        )

    def setup(self) -> None:
        if problems := secret_problems(self.subscriptions.path, self.subscriptions.current(), os.environ):
            raise ConfigError(problems)
        super().setup()

    def contents(self, subscription: Subscription, alert: Alert, event: str) -> dict:
        """The POST's URL and body."""
        body = json.dumps({"type": event, "timestamp": utc_now().isoformat(), "data": alert.model_dump(mode="json")})
        return {"url": str(subscription.webhook.url), "body": body}

    def destination(self, row: dict) -> str:
        return row["url"]

    def payload(self, row: dict) -> str:
        return row["body"]

    def send(self, row: dict) -> str | None:
        """POST one delivery, signed; ``None`` when the endpoint took it, else why not."""
        body = row["body"].encode("utf-8")
        timestamp = int(time.time())
        secret = _secret(row["subscription"], self.subscriptions.current())
        if secret is None:
            return "no signing secret: the subscription or its webhook's secret_env variable is gone"
        try:
            signature = sign(secret, row["id"], timestamp, body)
        except ValueError as exc:
            return f"cannot sign: {exc}"
        headers = {
            "content-type": "application/json",
            "webhook-id": row["id"],
            "webhook-timestamp": str(timestamp),
            "webhook-signature": signature,
        }
        return self._send(row["url"], body, headers)

    def _send(self, url: str, body: bytes, headers: dict[str, str]) -> str | None:
        """POST through the guard within the deadline; ``None`` when answered 2xx, else why not.
        Each POST has a connection of its own, so cutting one off ends no other."""
        transport = GuardedTransport(self.policy)
        deadline_passed = threading.Event()

        def cut_off() -> None:
            deadline_passed.set()
            transport.backend.abort()

        timer = threading.Timer(self.options.timeout_seconds, cut_off)
        with self._posting_lock:
            self._posting.add(transport)
        timer.start()
        try:
            with httpx.Client(transport=transport, timeout=self.options.timeout_seconds, follow_redirects=False, trust_env=False) as client:
                with client.stream("POST", url, content=body, headers=headers) as response:
                    status = response.status_code  # the answer's body is never read: it may be anything
        except httpx.HTTPError as exc:
            if deadline_passed.is_set():
                return f"no answer within {self.options.timeout_seconds:g} s"
            if self.courier.stopping:
                return "cut short: the sinks role is stopping"
            return f"{type(exc).__name__}: {exc}"
        finally:
            timer.cancel()
            with self._posting_lock:
                self._posting.discard(transport)
        return None if 200 <= status < 300 else f"HTTP {status}"

    def cut_short(self) -> None:
        with self._posting_lock:
            posting = list(self._posting)
        for transport in posting:
            transport.backend.abort()


def _secret(subscription_name: str, subscriptions: Sequence[Subscription]) -> str | None:
    for subscription in subscriptions:
        if subscription.name == subscription_name and subscription.webhook is not None:
            return os.environ.get(subscription.webhook.secret_env) or None
    return None
