"""Sending what an outbox holds (:mod:`sinks.outbox`): in the background, retried, parked.

A :class:`Courier` looks at its sink's outbox every ``poll_seconds`` and sends the due
deliveries through a small thread pool, at most one at a time per subscription in one
process, so a slow or dead endpoint never holds up another subscription or the other sinks.
A worker first claims a delivery (a lease in ``claimed_until``, taken by one ``UPDATE …
WHERE`` no other worker can also win), so two sinks workers never send the same one; a
worker that dies mid-delivery leaves it to another once the lease runs out. A delivery that
fails is tried again after an exponential back-off with jitter (tenacity's
``wait_exponential_jitter``); after ``max_attempts`` it is parked: marked so, and sent to the
dead-letter topic with the subscription and the reason.
"""

from __future__ import annotations

import logging
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

import sqlalchemy as sa
from tenacity import RetryCallState, wait_exponential_jitter

from pipeline.core.errors import SinkError
from pipeline.core.messages import utc_now
from pipeline.core.metrics import CHANNEL_DELIVERIES
from pipeline.core.redaction import redact

if TYPE_CHECKING:
    from sinks.outbox import OutboxSink

__all__ = ["Courier"]

log = logging.getLogger(__name__)

PENDING, DELIVERED, PARKED = "pending", "delivered", "parked"
OUTBOX_MAX_WAIT_SECONDS = 5.0
# A claim outlasts the send's deadline by this much: time to record what the other end said.
CLAIM_MARGIN_SECONDS = 30.0
# How long a stopping sink lets the deliveries in flight finish: within the 10 s a stopping
# role has to flush and commit.
SHUTDOWN_GRACE_SECONDS = 5.0


class Courier:
    """Delivers what ``channel`` (a delivering sink) records in its outbox; see the module docstring."""

    def __init__(self, channel: OutboxSink):
        self.channel = channel
        self._stop = threading.Event()
        self._worker: threading.Thread | None = None
        self._pool = ThreadPoolExecutor(channel.options.workers, thread_name_prefix=channel.channel)
        self._in_flight: set[str] = set()
        self._lock = threading.Lock()

    @property
    def stopping(self) -> bool:
        """Whether :meth:`stop` has begun: a send cut off now was cut short, not refused."""
        return self._stop.is_set()

    def start(self) -> None:
        self._worker = threading.Thread(target=self._deliver_forever, name=self.channel.name, daemon=True)
        self._worker.start()

    def _deliver_forever(self) -> None:
        wait = self.channel.options.poll_seconds
        while not self._stop.wait(wait):
            if not self.channel.subscribed():
                continue
            try:
                self.channel.prepare_due()
                self._deliver_due()
            except sa.exc.SQLAlchemyError as exc:
                # The database is away: said once, then looked at less and less often, up to
                # OUTBOX_MAX_WAIT_SECONDS, instead of a traceback every poll.
                if wait == self.channel.options.poll_seconds:
                    log.error("sink=%s cannot read the outbox, trying again until it can: %s", self.channel.name, str(exc).splitlines()[0])
                wait = min(wait * 2, OUTBOX_MAX_WAIT_SECONDS)
            except Exception:  # noqa: BLE001 - a bug must not end the deliveries: the outbox is looked at again
                log.exception("sink=%s could not read the outbox; trying again", self.channel.name)
            else:
                if wait != self.channel.options.poll_seconds:
                    log.info("sink=%s reads the outbox again", self.channel.name)
                    wait = self.channel.options.poll_seconds

    def _deliver_due(self, due_by: datetime | None = None) -> int:
        """Send the deliveries due by ``due_by`` (now), one at a time per subscription; how many were due."""
        table = self.channel.table
        now = utc_now()
        unclaimed = sa.or_(table.c.claimed_until.is_(None), table.c.claimed_until < now)
        with self.channel.engine.connect() as connection:
            due = connection.execute(
                sa.select(table).where(table.c.status == PENDING, table.c.next_attempt_at <= (due_by or now), unclaimed)
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
        return len(due)

    def _claim(self, delivery_id: str) -> bool:
        """Take the delivery for this worker for a lease longer than one send can last."""
        table = self.channel.table
        now = utc_now()
        with self.channel.engine.begin() as connection:
            claimed = connection.execute(
                sa.update(table).where(
                    table.c.id == delivery_id, table.c.status == PENDING,
                    sa.or_(table.c.claimed_until.is_(None), table.c.claimed_until < now),
                ).values(claimed_until=now + timedelta(seconds=self.channel.options.timeout_seconds + CLAIM_MARGIN_SECONDS))
            )
        return claimed.rowcount == 1

    def _attempt(self, row: dict) -> None:
        try:
            error = self.channel.send(row)
            error = redact(error) if error else None  # stored and dead-lettered: no endpoint's token
            attempts = row["attempts"] + 1
            values: dict = {"attempts": attempts, "claimed_until": None}
            if error is None:
                values.update(status=DELIVERED, delivered_at=utc_now(), last_error=None)
            elif attempts >= self.channel.options.max_attempts:
                values.update(status=PARKED, last_error=error)
            else:
                values.update(last_error=error, next_attempt_at=utc_now() + timedelta(seconds=self._backoff(attempts)))
            outcome = "delivered" if error is None else "parked" if values.get("status") == PARKED else "retried"
            CHANNEL_DELIVERIES.labels(f"{self.channel.channel}:{row['subscription']}", outcome).inc()
            if values.get("status") == PARKED:
                self._park(row, error)
            with self.channel.engine.begin() as connection:
                connection.execute(sa.update(self.channel.table).where(self.channel.table.c.id == row["id"]).values(**values))
            if error is not None:
                log.warning("%s subscription=%s attempt=%d failed: %s", self.channel.channel, row["subscription"], attempts, error)
        except Exception:  # noqa: BLE001 - the row stays pending and is tried again
            log.exception("%s subscription=%s delivery could not be recorded", self.channel.channel, row["subscription"])
        finally:
            with self._lock:
                self._in_flight.discard(row["subscription"])

    def _backoff(self, attempts: int) -> float:
        """Seconds before the next attempt: ``first × 2^(attempts-1)`` plus up to ``first`` of jitter, capped."""
        first = self.channel.options.first_retry_seconds
        wait = wait_exponential_jitter(multiplier=first, jitter=first, max=self.channel.options.max_retry_seconds)
        state = RetryCallState(retry_object=None, fn=None, args=(), kwargs={})
        state.attempt_number = attempts
        return wait(state)

    def _park(self, row: dict, error: str) -> None:
        destination = self.channel.destination(row)
        reason = (f"subscription {row['subscription']}: {row['event']} not delivered to {destination} "
                  f"after {row['attempts'] + 1} attempts: {error}")
        self.channel.dead_letters.item(
            f"{self.channel.channel}:{row['subscription']}:{row['id']}", destination, SinkError(reason), sink=self.channel.name,
            payload=self.channel.payload(row),
        )
        self.channel.producer.flush()  # this thread's dead letter only: flush vouches for its caller's records

    def _deliver_due_until(self, due_by: datetime, deadline: float) -> None:
        # A subscription's deliveries go one after another: a single round would send only the
        # first of each and leave the rest for a next run that a cron job may not make. Only
        # what was due when the stop began: one failing now waits for its retry in the next run.
        while time.monotonic() < deadline:
            try:
                self.channel.prepare_due()
                due = self._deliver_due(due_by)
            except Exception:  # noqa: BLE001 - the outbox keeps them for the next run
                log.exception("sink=%s could not read the outbox while stopping", self.channel.name)
                return
            if not due and not self._in_flight:
                return
            time.sleep(0.05)

    def stop(self) -> None:
        """Stop, once the deliveries due now are done (``amur run --once`` delivers too), one at
        a time per subscription as ever. What is still due or in flight after
        :data:`SHUTDOWN_GRACE_SECONDS` is cut short and stays pending for the next run, so a
        slow endpoint cannot hold a shutdown."""
        due_by = utc_now()
        self._stop.set()
        if self._worker is not None:
            self._worker.join(timeout=10)
        grace_ends = time.monotonic() + SHUTDOWN_GRACE_SECONDS  # from the background loop's end
        if self._worker is not None:
            self._deliver_due_until(due_by, grace_ends)
        while self._in_flight and time.monotonic() < grace_ends:
            time.sleep(0.05)
        self.channel.cut_short()
        self._pool.shutdown(wait=True, cancel_futures=True)
