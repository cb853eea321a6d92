"""Webhooks (``type: webhooks``): each subscription's ``webhook`` channels get its stories as signed POSTs.

A channel in subscriptions.yaml::

    channels:
      - type: webhook
        url: https://hooks.example.org/amur
        secret_env: AMUR_WEBHOOK_SECRET_PARTNERS   # the signing key, never written in YAML
        updates: true                              # story.updated too, not only story.created

**Outbox.** ``flush`` only records the deliveries a batch calls for, in the
``webhook_deliveries`` table, keyed by (subscription, story, event, version): a replayed
alert — after a crash between delivery and commit, say — finds its row there and is not
delivered again. A subscription gets ``story.created`` once per story, at the first version
it matches, and ``story.updated`` for each later version only if its channel asks for
updates; a version not newer than the created one (a replay) is never an update. When a
story it got is merged into another, it gets ``story.merged`` (the retired story's last
version, whose ``merged_into`` names the survivor), whether or not it asks for updates.

**Delivery.** A background thread sends due deliveries from the outbox through a small
thread pool, at most one at a time per subscription, so a slow or dead endpoint never holds
up another subscription or the other sinks. A worker first claims a delivery (a lease in
``claimed_until``, taken by one ``UPDATE … WHERE`` no other worker can also win), so two
sinks workers never POST the same one; a worker that dies mid-delivery leaves it to another
once the lease runs out. Each POST goes through the destination guard
(:mod:`pipeline.guard`, ``fetch.allow_networks``) with no proxy from the environment, must
be answered within ``timeout_seconds`` in all (a deadline, not a per-read timeout: an
endpoint dripping a byte at a time is cut off), follows no redirect, and its answer's body
is never read; closing the sink ends the POSTs in flight. A delivery that fails (a connection error, a
timeout, any status but 2xx) is tried again after an exponential back-off with jitter
(tenacity's ``wait_exponential_jitter``); after ``max_attempts`` it is parked: marked so,
and sent to the dead-letter topic with the subscription and the reason.

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
import logging
import os
import threading
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta

import httpx
import sqlalchemy as sa
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy import Engine
from tenacity import RetryCallState, wait_exponential_jitter

from pipeline.db import UTCDateTime, insert_missing
from pipeline.dead_letters import DeadLetters
from pipeline.errors import ConfigError, SinkError
from pipeline.guard import AddressPolicy, GuardedTransport, Network
from pipeline.messages import Alert, utc_now
from pipeline.metrics import CHANNEL_DELIVERIES
from pipeline.migrations import upgrade_database
from pipeline.redaction import redact
from pipeline.sink import BatchingSink, SinkContext
from pipeline.subscriptions import Subscription, SubscriptionsWatcher, secret_problems, signing_key, subscriptions_path
from pipeline.topology import Topics
from pipeline.transport.base import Producer

__all__ = ["WebhooksOptions", "WebhooksSink", "sign"]

log = logging.getLogger(__name__)

PENDING, DELIVERED, PARKED = "pending", "delivered", "parked"
CREATED, UPDATED, MERGED = "story.created", "story.updated", "story.merged"
OUTBOX_MAX_WAIT_SECONDS = 5.0
# A claim outlasts the POST's deadline by this much: time to record what the endpoint said.
CLAIM_MARGIN_SECONDS = 30.0
# How long a stopping sink lets the deliveries in flight finish: within the 10 s a stopping
# role has to flush and commit.
SHUTDOWN_GRACE_SECONDS = 5.0

metadata = sa.MetaData()

webhook_deliveries = sa.Table(
    "webhook_deliveries", metadata,
    sa.Column("id", sa.String(32), primary_key=True),
    sa.Column("subscription", sa.String(64), nullable=False),
    sa.Column("story_id", sa.String(32), nullable=False),
    sa.Column("event", sa.String(16), nullable=False),
    sa.Column("version", sa.Integer, nullable=False),
    sa.Column("url", sa.Text, nullable=False),
    sa.Column("body", sa.Text, nullable=False),
    sa.Column("status", sa.String(16), nullable=False),
    sa.Column("attempts", sa.Integer, nullable=False),
    sa.Column("next_attempt_at", UTCDateTime, nullable=False),
    sa.Column("last_error", sa.Text),
    sa.Column("created_at", UTCDateTime, nullable=False),
    sa.Column("delivered_at", UTCDateTime),
    sa.Column("claimed_until", UTCDateTime),  # a worker's lease while it sends the delivery
    sa.Index("ix_webhook_deliveries_due", "status", "next_attempt_at"),
    sa.Index("ix_webhook_deliveries_story", "subscription", "story_id", "event"),
)


class WebhooksOptions(BaseModel):
    """Options of ``- type: webhooks`` in amur.yaml's ``sinks:``."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    max_attempts: int = Field(8, ge=1, le=50, description="Attempts before a delivery is parked on the dead-letter topic")
    first_retry_seconds: float = Field(2.0, gt=0, le=3600)
    max_retry_seconds: float = Field(600.0, gt=0, le=86_400)
    timeout_seconds: float = Field(10.0, gt=0, le=120, description="For one POST, connecting and answering")
    workers: int = Field(4, ge=1, le=64, description="Deliveries in flight at once (one per subscription at most)")
    poll_seconds: float = Field(0.5, gt=0, le=60, description="How often the outbox is looked at for due deliveries")


def sign(secret: str, delivery_id: str, timestamp: int, body: bytes) -> str:
    """The ``webhook-signature`` header of a delivery (Standard Webhooks, ``v1``)."""
    key = signing_key(secret)
    signed = f"{delivery_id}.{timestamp}.".encode() + body
    return "v1," + base64.b64encode(hmac.new(key, signed, hashlib.sha256).digest()).decode()


def _delivery_id(subscription: str, story_id: str, event: str, version: int) -> str:
    return hashlib.sha256(f"{subscription}\n{story_id}\n{event}\n{version}".encode()).hexdigest()[:32]


class WebhooksSink(BatchingSink):
    """Records webhook deliveries in an outbox and sends them in the background (see the module docstring)."""

    topic = "alerts"
    name = "webhooks"
    Options = WebhooksOptions

    def __init__(
        self, engine: Engine, options: WebhooksOptions, subscriptions: SubscriptionsWatcher, producer: Producer,
        topics: Topics, allow_networks: Sequence[Network] = (),
    ):
        super().__init__()
        self.engine = engine
        self.options = options
        self.subscriptions = subscriptions
        self.producer = producer
        self.dead_letters = DeadLetters(producer, topics, "sinks")
        self.policy = AddressPolicy(allow_networks)
        self._posting: set[GuardedTransport] = set()  # the transports of the POSTs in flight
        self._stop = threading.Event()
        self._worker: threading.Thread | None = None
        self._pool = ThreadPoolExecutor(options.workers, thread_name_prefix="webhook")
        self._in_flight: set[str] = set()
        self._lock = threading.Lock()

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
        try:
            upgrade_database(self.engine)
        except sa.exc.SQLAlchemyError as exc:
            raise SinkError(f"{self.name}: cannot prepare the database: {exc}") from exc
        self._worker = threading.Thread(target=self._deliver_forever, name="webhooks", daemon=True)
        self._worker.start()

    def write(self, batch: Sequence[Alert]) -> None:
        hooked = [subscription for subscription in self.subscriptions.current() if subscription.webhook is not None]
        wanted = [
            (subscription, alert) for subscription in hooked for alert in batch
            if alert.merged_into is None and subscription.match(alert)
        ]
        retired = [alert for alert in batch if alert.merged_into is not None]
        if not wanted and not (hooked and retired):
            return
        try:
            with self.engine.begin() as connection:
                # The version each subscription first got each story at: what is not newer than
                # it (a replay after a crash, the same version emitted again) is delivered already.
                created = {(row.subscription, row.story_id): row.version for row in connection.execute(
                    sa.select(webhook_deliveries.c.subscription, webhook_deliveries.c.story_id, webhook_deliveries.c.version)
                    .where(webhook_deliveries.c.event == CREATED, webhook_deliveries.c.story_id.in_(
                        {alert.id for _, alert in wanted} | {alert.id for alert in retired},
                    ))
                )}
                rows: dict[str, dict] = {}
                for subscription, alert in wanted:
                    first = created.setdefault((subscription.name, alert.id), alert.version)
                    if alert.version == first:
                        row = self._delivery(subscription, alert, CREATED)
                    elif alert.version > first and subscription.webhook.updates:
                        row = self._delivery(subscription, alert, UPDATED)
                    else:
                        continue
                    rows.setdefault(row["id"], row)
                # A retired story is news to whoever was told of it: it now continues as another.
                for alert in retired:
                    for subscription in hooked:
                        if (subscription.name, alert.id) in created:
                            row = self._delivery(subscription, alert, MERGED)
                            rows.setdefault(row["id"], row)
                if rows:
                    connection.execute(insert_missing(self.engine, webhook_deliveries, list(rows.values()), key=["id"]))
        except sa.exc.SQLAlchemyError as exc:
            raise SinkError(f"{self.name}: cannot record deliveries: {exc.__class__.__name__}: {exc}") from exc

    def _delivery(self, subscription: Subscription, alert: Alert, event: str) -> dict:
        """The outbox row of ``event`` for ``alert``. One story version is one delivery: its id
        is the same however often the alert comes (a creation's whatever version it came at)."""
        now = utc_now()
        body = json.dumps({"type": event, "timestamp": now.isoformat(), "data": alert.model_dump(mode="json")})
        return {
            "id": _delivery_id(subscription.name, alert.id, event, 1 if event == CREATED else alert.version),
            "subscription": subscription.name, "story_id": alert.id, "event": event, "version": alert.version,
            "url": str(subscription.webhook.url), "body": body,
            "status": PENDING, "attempts": 0, "next_attempt_at": now, "last_error": None, "created_at": now,
            "delivered_at": None,
        }

    # --- background delivery --------------------------------------------------------------

    def _deliver_forever(self) -> None:
        wait = self.options.poll_seconds
        while not self._stop.wait(wait):
            if not any(subscription.webhook for subscription in self.subscriptions.current()):
                continue
            try:
                self._deliver_due()
            except sa.exc.SQLAlchemyError as exc:
                # The database is away: said once, then looked at less and less often, up to
                # OUTBOX_MAX_WAIT_SECONDS, instead of a traceback every poll.
                if wait == self.options.poll_seconds:
                    log.error("sink=%s cannot read the outbox, trying again until it can: %s", self.name, str(exc).splitlines()[0])
                wait = min(wait * 2, OUTBOX_MAX_WAIT_SECONDS)
            except Exception:  # noqa: BLE001 - a bug must not end the deliveries: the outbox is looked at again
                log.exception("sink=%s could not read the outbox; trying again", self.name)
            else:
                if wait != self.options.poll_seconds:
                    log.info("sink=%s reads the outbox again", self.name)
                    wait = self.options.poll_seconds

    def _deliver_due(self) -> None:
        now = utc_now()
        unclaimed = sa.or_(webhook_deliveries.c.claimed_until.is_(None), webhook_deliveries.c.claimed_until < now)
        with self.engine.connect() as connection:
            due = connection.execute(
                sa.select(webhook_deliveries).where(
                    webhook_deliveries.c.status == PENDING, webhook_deliveries.c.next_attempt_at <= now, unclaimed,
                ).order_by(webhook_deliveries.c.next_attempt_at).limit(200)
            ).mappings().all()
        for row in due:
            with self._lock:
                if row["subscription"] in self._in_flight:
                    continue  # one delivery at a time per subscription
                self._in_flight.add(row["subscription"])
            if self._claim(row["id"]):
                self._pool.submit(self._attempt, dict(row))
            else:  # another sinks worker has it
                with self._lock:
                    self._in_flight.discard(row["subscription"])

    def _claim(self, delivery_id: str) -> bool:
        """Take the delivery for this worker for a lease longer than one POST can last."""
        now = utc_now()
        with self.engine.begin() as connection:
            claimed = connection.execute(
                sa.update(webhook_deliveries).where(
                    webhook_deliveries.c.id == delivery_id, webhook_deliveries.c.status == PENDING,
                    sa.or_(webhook_deliveries.c.claimed_until.is_(None), webhook_deliveries.c.claimed_until < now),
                ).values(claimed_until=now + timedelta(seconds=self.options.timeout_seconds + CLAIM_MARGIN_SECONDS))
            )
        return claimed.rowcount == 1

    def _attempt(self, row: dict) -> None:
        try:
            error = self._post(row)
            error = redact(error) if error else None  # stored and dead-lettered: no endpoint's token
            attempts = row["attempts"] + 1
            values: dict = {"attempts": attempts, "claimed_until": None}
            if error is None:
                values.update(status=DELIVERED, delivered_at=utc_now(), last_error=None)
            elif attempts >= self.options.max_attempts:
                values.update(status=PARKED, last_error=error)
            else:
                values.update(last_error=error, next_attempt_at=utc_now() + timedelta(seconds=self._backoff(attempts)))
            outcome = "delivered" if error is None else "parked" if values.get("status") == PARKED else "retried"
            CHANNEL_DELIVERIES.labels(f"webhook:{row['subscription']}", outcome).inc()
            if values.get("status") == PARKED:
                self._park(row, error)
            with self.engine.begin() as connection:
                connection.execute(sa.update(webhook_deliveries).where(webhook_deliveries.c.id == row["id"]).values(**values))
            if error is not None:
                log.warning("webhook subscription=%s attempt=%d failed: %s", row["subscription"], attempts, error)
        except Exception:  # noqa: BLE001 - the row stays pending and is tried again
            log.exception("webhook subscription=%s delivery could not be recorded", row["subscription"])
        finally:
            with self._lock:
                self._in_flight.discard(row["subscription"])

    def _post(self, row: dict) -> str | None:
        """Send one delivery; ``None`` when the endpoint took it, else why not."""
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
        with self._lock:
            self._posting.add(transport)
        timer.start()
        try:
            with httpx.Client(transport=transport, timeout=self.options.timeout_seconds, follow_redirects=False, trust_env=False) as client:
                with client.stream("POST", url, content=body, headers=headers) as response:
                    status = response.status_code  # the answer's body is never read: it may be anything
        except httpx.HTTPError as exc:
            if deadline_passed.is_set():
                return f"no answer within {self.options.timeout_seconds:g} s"
            if self._stop.is_set():
                return "cut short: the sinks role is stopping"
            return f"{type(exc).__name__}: {exc}"
        finally:
            timer.cancel()
            with self._lock:
                self._posting.discard(transport)
        return None if 200 <= status < 300 else f"HTTP {status}"

    def _backoff(self, attempts: int) -> float:
        """Seconds before the next attempt: ``first × 2^(attempts-1)`` plus up to ``first`` of jitter, capped."""
        first = self.options.first_retry_seconds
        wait = wait_exponential_jitter(multiplier=first, jitter=first, max=self.options.max_retry_seconds)
        state = RetryCallState(retry_object=None, fn=None, args=(), kwargs={})
        state.attempt_number = attempts
        return wait(state)

    def _park(self, row: dict, error: str) -> None:
        reason = f"subscription {row['subscription']}: {row['event']} not delivered to {row['url']} after {row['attempts'] + 1} attempts: {error}"
        self.dead_letters.item(
            f"webhook:{row['subscription']}:{row['id']}", row["url"], SinkError(reason), sink=self.name, payload=row["body"],
        )
        self.producer.flush()  # this thread's dead letter only: flush vouches for its caller's records

    def close(self) -> None:
        """Stop, after one last round of the deliveries due now (``amur run --once`` delivers
        too). What is still in flight after :data:`SHUTDOWN_GRACE_SECONDS` is cut short and
        stays pending for the next run, so a slow endpoint cannot hold a shutdown."""
        self._stop.set()
        if self._worker is not None:
            self._worker.join(timeout=10)
            try:
                self._deliver_due()
            except Exception:  # noqa: BLE001 - the outbox keeps them for the next run
                log.exception("sink=%s could not read the outbox while stopping", self.name)
        grace_ends = time.monotonic() + SHUTDOWN_GRACE_SECONDS
        while self._in_flight and time.monotonic() < grace_ends:
            time.sleep(0.05)
        with self._lock:
            posting = list(self._posting)
        for transport in posting:
            transport.backend.abort()
        self._pool.shutdown(wait=True, cancel_futures=True)
        self.producer.close()


def _secret(subscription_name: str, subscriptions: Sequence[Subscription]) -> str | None:
    for subscription in subscriptions:
        if subscription.name == subscription_name and subscription.webhook is not None:
            return os.environ.get(subscription.webhook.secret_env) or None
    return None
