"""The outbox the delivering sinks share (webhooks, email): deliveries recorded with the batch,
sent in the background, retried with back-off, parked on the dead-letter topic.

**Outbox.** A sink's ``write`` only records the deliveries a batch calls for, in its table
(:meth:`OutboxSink.record`), keyed by an id made of what the delivery is (subscription,
story, event, version): a replayed alert — after a crash between delivery and commit, say —
finds its row there and is not delivered again.

**Delivery.** A background thread sends due deliveries from the table through a small
thread pool, at most one at a time per subscription in one process, so a slow or dead
endpoint never holds up another subscription or the other sinks. A worker first claims a
delivery (a lease in ``claimed_until``, taken by one ``UPDATE … WHERE`` no other worker can
also win), so two sinks workers never send the same one; a worker that dies mid-delivery
leaves it to another once the lease runs out. A delivery that fails is tried again after an
exponential back-off with jitter (tenacity's ``wait_exponential_jitter``); after
``max_attempts`` it is parked: marked so, and sent to the dead-letter topic with the
subscription and the reason.

A table of deliveries has the columns :func:`delivery_columns` gives, and whatever else its
sink needs to send one.
"""

from __future__ import annotations

import hashlib
import logging
import threading
import time
from abc import abstractmethod
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta
from typing import ClassVar

import sqlalchemy as sa
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy import Engine
from tenacity import RetryCallState, wait_exponential_jitter

from pipeline.core.db import UTCDateTime, insert_missing
from pipeline.core.dead_letters import DeadLetters
from pipeline.core.errors import SinkError
from pipeline.core.messages import Alert, utc_now
from pipeline.core.metrics import CHANNEL_DELIVERIES
from pipeline.core.migrations import upgrade_database
from pipeline.core.redaction import redact
from pipeline.core.sink import BatchingSink
from pipeline.core.subscriptions import Subscription, SubscriptionsWatcher
from pipeline.core.topology import Topics
from pipeline.core.transport.base import Producer

__all__ = [
    "CREATED", "DELIVERED", "MERGED", "PARKED", "PENDING", "UPDATED", "OutboxOptions", "OutboxSink", "delivery_columns",
    "matching", "outbox_row",
]

log = logging.getLogger(__name__)

PENDING, DELIVERED, PARKED = "pending", "delivered", "parked"
CREATED, UPDATED, MERGED = "story.created", "story.updated", "story.merged"
OUTBOX_MAX_WAIT_SECONDS = 5.0
# A claim outlasts the send's deadline by this much: time to record what the other end said.
CLAIM_MARGIN_SECONDS = 30.0
# How long a stopping sink lets the deliveries in flight finish: within the 10 s a stopping
# role has to flush and commit.
SHUTDOWN_GRACE_SECONDS = 5.0


def delivery_columns() -> list[sa.Column]:
    """The columns every outbox table has (new ones for each table)."""
    return [
        sa.Column("id", sa.String(32), primary_key=True),
        sa.Column("subscription", sa.String(64), nullable=False),
        sa.Column("story_id", sa.String(32), nullable=False),
        sa.Column("event", sa.String(16), nullable=False),
        sa.Column("version", sa.Integer, nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("attempts", sa.Integer, nullable=False),
        sa.Column("next_attempt_at", UTCDateTime, nullable=False),
        sa.Column("last_error", sa.Text),
        sa.Column("created_at", UTCDateTime, nullable=False),
        sa.Column("delivered_at", UTCDateTime),
        sa.Column("claimed_until", UTCDateTime),  # a worker's lease while it sends the delivery
    ]


class OutboxOptions(BaseModel):
    """The retry and concurrency options every delivering sink has."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    max_attempts: int = Field(8, ge=1, le=50, description="Attempts before a delivery is parked on the dead-letter topic")
    first_retry_seconds: float = Field(2.0, gt=0, le=3600)
    max_retry_seconds: float = Field(600.0, gt=0, le=86_400)
    timeout_seconds: float = Field(10.0, gt=0, le=120, description="For one delivery, connecting and answering")
    workers: int = Field(4, ge=1, le=64, description="Deliveries in flight at once (one per subscription at most)")
    poll_seconds: float = Field(0.5, gt=0, le=60, description="How often the outbox is looked at for due deliveries")


class OutboxSink(BatchingSink):
    """Records deliveries in :attr:`table` and sends them in the background (see the module docstring)."""

    topic = "alerts"
    table: ClassVar[sa.Table]
    channel: ClassVar[str]  # the subscriptions' channel type it delivers: metrics label, logs
    tells_merges: ClassVar[bool] = False  # whether a subscriber told of a story hears that it was merged

    def __init__(self, engine: Engine, options: OutboxOptions, subscriptions: SubscriptionsWatcher, producer: Producer, topics: Topics):
        super().__init__()
        self.engine = engine
        self.options = options
        self.subscriptions = subscriptions
        self.producer = producer
        self.dead_letters = DeadLetters(producer, topics, "sinks")
        self._stop = threading.Event()
        self._worker: threading.Thread | None = None
        self._pool = ThreadPoolExecutor(options.workers, thread_name_prefix=self.channel)
        self._in_flight: set[str] = set()
        self._lock = threading.Lock()

    def setup(self) -> None:
        try:
            upgrade_database(self.engine)
        except sa.exc.SQLAlchemyError as exc:
            raise SinkError(f"{self.name}: cannot prepare the database: {exc}") from exc
        self._worker = threading.Thread(target=self._deliver_forever, name=self.name, daemon=True)
        self._worker.start()

    def subscribed(self) -> list[Subscription]:
        """The subscriptions with a channel of this sink's type."""
        return [subscription for subscription in self.subscriptions.current() if subscription.channel(self.channel) is not None]

    def write(self, batch: Sequence[Alert]) -> None:
        self.record_events(batch, self.subscribed())

    def record_events(self, batch: Sequence[Alert], subscribed: Sequence[Subscription]) -> None:
        """Record the deliveries ``batch`` calls for: a subscription gets ``story.created`` once
        per story, at the first version it matches, and ``story.updated`` for each later version
        if its channel asks for updates (a version not newer than the created one, a replay, is
        never an update); with :attr:`tells_merges`, ``story.merged`` when a story it got is
        retired into another."""
        wanted = matching(batch, subscribed)
        retired = [alert for alert in batch if alert.merged_into is not None] if self.tells_merges else []
        if not wanted and not (subscribed and retired):
            return
        try:
            with self.engine.begin() as connection:
                # The version each subscription first got each story at: what is not newer than
                # it (a replay after a crash, the same version emitted again) is delivered already.
                created = self._first_versions(connection, {alert.id for _, alert in wanted} | {alert.id for alert in retired})
                rows: dict[str, dict] = {}
                for subscription, alert in wanted:
                    first = created.setdefault((subscription.name, alert.id), alert.version)
                    if alert.version == first:
                        row = self._delivery(subscription, alert, CREATED)
                    elif alert.version > first and subscription.channel(self.channel).updates:
                        row = self._delivery(subscription, alert, UPDATED)
                    else:
                        continue
                    rows.setdefault(row["id"], row)
                # A retired story is news to whoever was told of it: it now continues as another.
                for alert in retired:
                    for subscription in subscribed:
                        if (subscription.name, alert.id) in created:
                            row = self._delivery(subscription, alert, MERGED)
                            rows.setdefault(row["id"], row)
                if rows:
                    connection.execute(insert_missing(self.engine, self.table, list(rows.values()), key=["id"]))
        except sa.exc.SQLAlchemyError as exc:
            raise SinkError(f"{self.name}: cannot record deliveries: {exc.__class__.__name__}: {exc}") from exc

    def _first_versions(self, connection: sa.Connection, story_ids: set[str]) -> dict[tuple[str, str], int]:
        table = self.table
        return {(row.subscription, row.story_id): row.version for row in connection.execute(
            sa.select(table.c.subscription, table.c.story_id, table.c.version)
            .where(table.c.event == CREATED, table.c.story_id.in_(story_ids))
        )}

    def _delivery(self, subscription: Subscription, alert: Alert, event: str) -> dict:
        """The outbox row of ``event`` for ``alert``. One story version is one delivery: its id
        is the same however often the alert comes (a creation's whatever version it came at)."""
        return outbox_row(
            subscription.name, alert.id, event, alert.version, key_version=1 if event == CREATED else alert.version,
            **self.contents(subscription, alert, event),
        )

    @abstractmethod
    def contents(self, subscription: Subscription, alert: Alert, event: str) -> dict:
        """The columns of a delivery of ``event`` for ``alert`` that say what to send where."""

    @abstractmethod
    def send(self, row: dict) -> str | None:
        """Send one delivery; ``None`` when the other end took it, else why not."""

    @abstractmethod
    def destination(self, row: dict) -> str:
        """Where a delivery goes, as an operator reads it (a URL, addresses)."""

    @abstractmethod
    def payload(self, row: dict) -> str:
        """What a parked delivery carries to the dead-letter topic."""

    def cut_short(self) -> None:
        """End the sends still in flight when a stop's grace has run out."""

    def prepare_due(self) -> None:
        """Record the deliveries that fall due by the clock rather than by a batch (before each
        look at the outbox)."""

    # --- background delivery --------------------------------------------------------------

    def _deliver_forever(self) -> None:
        wait = self.options.poll_seconds
        while not self._stop.wait(wait):
            if not self.subscribed():
                continue
            try:
                self.prepare_due()
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
        table = self.table
        now = utc_now()
        unclaimed = sa.or_(table.c.claimed_until.is_(None), table.c.claimed_until < now)
        with self.engine.connect() as connection:
            due = connection.execute(
                sa.select(table).where(table.c.status == PENDING, table.c.next_attempt_at <= now, unclaimed)
                .order_by(table.c.next_attempt_at).limit(200)
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
        """Take the delivery for this worker for a lease longer than one send can last."""
        table = self.table
        now = utc_now()
        with self.engine.begin() as connection:
            claimed = connection.execute(
                sa.update(table).where(
                    table.c.id == delivery_id, table.c.status == PENDING,
                    sa.or_(table.c.claimed_until.is_(None), table.c.claimed_until < now),
                ).values(claimed_until=now + timedelta(seconds=self.options.timeout_seconds + CLAIM_MARGIN_SECONDS))
            )
        return claimed.rowcount == 1

    def _attempt(self, row: dict) -> None:
        try:
            error = self.send(row)
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
            CHANNEL_DELIVERIES.labels(f"{self.channel}:{row['subscription']}", outcome).inc()
            if values.get("status") == PARKED:
                self._park(row, error)
            with self.engine.begin() as connection:
                connection.execute(sa.update(self.table).where(self.table.c.id == row["id"]).values(**values))
            if error is not None:
                log.warning("%s subscription=%s attempt=%d failed: %s", self.channel, row["subscription"], attempts, error)
        except Exception:  # noqa: BLE001 - the row stays pending and is tried again
            log.exception("%s subscription=%s delivery could not be recorded", self.channel, row["subscription"])
        finally:
            with self._lock:
                self._in_flight.discard(row["subscription"])

    def _backoff(self, attempts: int) -> float:
        """Seconds before the next attempt: ``first × 2^(attempts-1)`` plus up to ``first`` of jitter, capped."""
        first = self.options.first_retry_seconds
        wait = wait_exponential_jitter(multiplier=first, jitter=first, max=self.options.max_retry_seconds)
        state = RetryCallState(retry_object=None, fn=None, args=(), kwargs={})
        state.attempt_number = attempts
        return wait(state)

    def _park(self, row: dict, error: str) -> None:
        destination = self.destination(row)
        reason = (f"subscription {row['subscription']}: {row['event']} not delivered to {destination} "
                  f"after {row['attempts'] + 1} attempts: {error}")
        self.dead_letters.item(
            f"{self.channel}:{row['subscription']}:{row['id']}", destination, SinkError(reason), sink=self.name,
            payload=self.payload(row),
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
                self.prepare_due()
                self._deliver_due()
            except Exception:  # noqa: BLE001 - the outbox keeps them for the next run
                log.exception("sink=%s could not read the outbox while stopping", self.name)
        grace_ends = time.monotonic() + SHUTDOWN_GRACE_SECONDS
        while self._in_flight and time.monotonic() < grace_ends:
            time.sleep(0.05)
        self.cut_short()
        self._pool.shutdown(wait=True, cancel_futures=True)
        self.producer.close()


def matching(batch: Sequence[Alert], subscriptions: Sequence[Subscription]) -> list[tuple[Subscription, Alert]]:
    """Each live story of ``batch`` with each of ``subscriptions`` it matches (a retired
    story is news of a merge, not a story to send)."""
    return [
        (subscription, alert) for subscription in subscriptions for alert in batch
        if alert.merged_into is None and subscription.match(alert)
    ]


def outbox_row(subscription: str, story_id: str, event: str, version: int, *, key_version: int, **contents) -> dict:
    """A pending delivery, due now, whose id is made of what it is (``key_version`` standing
    for the version), so recording it again changes nothing."""
    now = utc_now()
    return {
        "id": hashlib.sha256(f"{subscription}\n{story_id}\n{event}\n{key_version}".encode()).hexdigest()[:32],
        "subscription": subscription, "story_id": story_id, "event": event, "version": version,
        "status": PENDING, "attempts": 0, "next_attempt_at": now, "last_error": None, "created_at": now,
        "delivered_at": None, **contents,
    }
