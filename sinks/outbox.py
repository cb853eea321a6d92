"""The outbox the delivering sinks share (webhooks, email): deliveries recorded with the batch,
sent in the background, retried with back-off, parked on the dead-letter topic.

**Outbox.** A sink's ``write`` only records the deliveries a batch calls for, in its table
(:meth:`OutboxSink.record`), keyed by an id made of what the delivery is (subscription,
story, event, version): a replayed alert — after a crash between delivery and commit, say —
finds its row there and is not delivered again.

**Delivery.** The sink's :class:`~sinks.delivery.Courier` sends the due deliveries in the
background, retries and parks them (see :mod:`sinks.delivery`); the sink says how one is
sent (``send``), where to (``destination``) and what a parked one carries (``payload``).

A table of deliveries has the columns :func:`delivery_columns` gives, and whatever else its
sink needs to send one.
"""

from __future__ import annotations

import hashlib
import logging
from abc import abstractmethod
from collections.abc import Sequence
from typing import ClassVar

import sqlalchemy as sa
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy import Engine

from pipeline.core.db import UTCDateTime, insert_missing
from pipeline.core.dead_letters import DeadLetters
from pipeline.core.errors import SinkError
from pipeline.core.messages import Alert, utc_now
from pipeline.core.sink import BatchingSink, prepare_database
from pipeline.core.subscriptions import Subscription, SubscriptionsWatcher
from pipeline.core.topology import Topics
from pipeline.core.transport.base import Producer
from sinks.delivery import DELIVERED, PARKED, PENDING, Courier

__all__ = [
    "CREATED", "DELIVERED", "MERGED", "PARKED", "PENDING", "UPDATED", "OutboxOptions", "OutboxSink", "delivery_columns",
    "matching", "outbox_row",
]

log = logging.getLogger(__name__)

CREATED, UPDATED, MERGED = "story.created", "story.updated", "story.merged"


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
        self.courier = Courier(self)

    def setup(self) -> None:
        prepare_database(self.name, self.engine)
        self.courier.start()

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
                    connection.execute(insert_missing(self.engine, self.table, key=["id"]), list(rows.values()))
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

    def close(self) -> None:
        """Stop delivering (see :meth:`Courier.stop`), then close the dead letters' producer."""
        self.courier.stop()
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
