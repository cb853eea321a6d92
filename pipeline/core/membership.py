"""Membership of a consumer group: joining it, staying in it and noticing being left out.

A stage (:mod:`pipeline.core.stages`) consumes through one :class:`GroupMember`. The member
joins riding out a broker that is away, keeps the lag gauge, polls while its stage has
paused its partitions (so that on Kafka it stays in its group through an outage of any
length instead of being evicted after ``max.poll.interval.ms``), and joins again as a new
member when it has been left without partitions while its group's backlog does not shrink.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TypeVar

from pipeline.core import metrics
from pipeline.core.errors import EmbeddedLogBusy, TransportError
from pipeline.core.transport.base import Consumer, Record, TopicPartition, Transport

log = logging.getLogger(__name__)

NO_PARTITIONS_TIMEOUT = 60.0
RETRY_DELAY = 1.0
# Once a database or broker is back, a stage writes again within this; a retry is one attempt, cheap to repeat.
MAX_RETRY_DELAY = 15.0
PAUSED_POLL_SECONDS = 1.0  # how often a paused member polls to stay in its group
LAG_EVERY_SECONDS = 5.0  # how often the lag gauge is refreshed: on Kafka, asking costs a round trip
# A running member without partitions this long, while its group's backlog does not shrink, joins again.
STRANDED_SECONDS = 60.0

T = TypeVar("T")


def until_reachable(what: str, action: Callable[[], T], stop: threading.Event) -> T | None:
    """``action()``, tried again with back-off while the transport is unreachable (a broker
    restarting while a role starts or joins its group); ``None`` once ``stop`` is set."""
    delay = RETRY_DELAY
    while True:
        try:
            return action()
        except EmbeddedLogBusy:
            raise  # not an outage: waiting would not end it
        except TransportError as exc:
            log.error("%s: the transport is unreachable, retrying in %.0f s: %s", what, delay, exc)
        if stop.wait(delay):
            return None
        delay = min(delay * 2, MAX_RETRY_DELAY)


class GroupMember:
    """One member of ``group`` over ``topics``, on behalf of the stage ``name`` (for logs and the lag gauge)."""

    def __init__(self, transport: Transport, group: str, topics: list[str], name: str):
        self.transport = transport
        self.group = group
        self.topics = topics
        self.name = name
        self.consumer: Consumer | None = None
        self._joined_at = time.monotonic()
        self._lag_measured = 0.0
        self._stranding = _Stranding()

    def join(self, stop: threading.Event) -> bool:
        """Join the group, waiting out an unreachable broker; ``False`` when stopped first."""
        self.consumer = until_reachable(f"stage={self.name} joining group {self.group}", lambda: self.transport.consumer(self.group, self.topics), stop)
        self._joined_at = time.monotonic()
        return self.consumer is not None

    def poll(self, max_records: int, timeout: float) -> list[Record]:
        return self.consumer.poll(max_records, timeout)

    def tend(self, stop: threading.Event, *, rejoin: bool) -> None:
        """Every :data:`LAG_EVERY_SECONDS`: refresh the lag gauge and, with ``rejoin``, join
        again if stranded without partitions."""
        if time.monotonic() - self._lag_measured <= LAG_EVERY_SECONDS:
            return
        self._lag_measured = time.monotonic()
        has_partitions = self._measure_lag()
        if rejoin and has_partitions is not None:
            self._rejoin_if_stranded(has_partitions, stop)

    def drained(self) -> bool:
        """Whether the member's partitions hold nothing more to read (``--once``).

        :raises TransportError: no partitions assigned after :data:`NO_PARTITIONS_TIMEOUT`.
        """
        lag = self.consumer.lag()
        if lag is None and time.monotonic() - self._joined_at > NO_PARTITIONS_TIMEOUT:
            raise TransportError(f"{self.name}: no partitions assigned after {NO_PARTITIONS_TIMEOUT:.0f} s")
        return lag == 0

    def pause(self) -> None:
        self.consumer.pause()

    def resume(self) -> None:
        self.consumer.resume()

    def commit(self, offsets: Mapping[TopicPartition, int]) -> None:
        self.consumer.commit(offsets)

    def close(self) -> None:
        if self.consumer is not None:
            self.consumer.close()

    def _measure_lag(self) -> bool | None:
        """Update the lag gauge; returns whether the member has partitions, ``None`` when the
        lag could not be read. A failure leaves the gauge as it was: the records just polled
        are handled all the same (dropping them here would commit past them with the next batch)."""
        try:
            lag = self.consumer.lag()
        except TransportError as exc:
            log.warning("stage=%s lag not measured: %s", self.name, exc)
            return None
        if lag is None:
            return False
        metrics.STAGE_LAG.labels(self.name).set(lag)
        return True

    def _rejoin_if_stranded(self, has_partitions: bool, stop: threading.Event) -> None:
        """Join again as a new member in place of one stranded without partitions.

        A kafka-python member has been seen to end up with no partitions for good after one
        broker of three was SIGKILLed (a fault drill): it never rejoined, and its input waited
        for ever while the other roles went on. A member with no partitions for
        :data:`STRANDED_SECONDS` while its group's backlog has not shrunk joins again. A spare
        member of a group that keeps up (more members than partitions) is left alone.
        """
        if has_partitions:
            self._stranding.since = None
            return
        now = time.monotonic()
        if self._stranding.since is None:
            self._stranding.since, self._stranding.backlog = now, self._group_backlog()
            return
        if now - self._stranding.since < STRANDED_SECONDS:
            return
        backlog, before = self._group_backlog(), self._stranding.backlog
        self._stranding.since, self._stranding.backlog = now, backlog
        if not backlog or before is None or backlog < before:
            return  # nothing waits, or the other members are working through it
        log.warning(
            "stage=%s had no partitions for %.0f s while %d record(s) waited: joining its group again as a new member",
            self.name, STRANDED_SECONDS, backlog,
        )
        try:
            self.consumer.close()
        except TransportError as exc:  # the lost member may not be able to leave cleanly
            log.warning("stage=%s stranded member did not leave cleanly: %s", self.name, exc)
        while True:
            try:
                self.consumer = self.transport.consumer(self.group, self.topics)
                return
            except TransportError as exc:
                log.error("stage=%s could not join its group again, retrying in %.0f s: %s", self.name, RETRY_DELAY, exc)
                if stop.wait(RETRY_DELAY):
                    return  # closed; the stage is stopping and polls it no more

    def _group_backlog(self) -> int | None:
        """Records of the inputs that the group has not committed; ``None`` when not known."""
        try:
            return self.transport.group_lag(self.group, self.topics)
        except TransportError as exc:
            log.warning("stage=%s backlog not measured: %s", self.name, exc)
            return None

    def wait_paused(self, seconds: float, stop: threading.Event) -> bool:
        """Wait ``seconds`` polling the paused consumer, so the member stays in its group;
        returns whether ``stop`` was set."""
        deadline = time.monotonic() + seconds
        while not stop.is_set():
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return False
            try:
                self.consumer.poll(0, min(remaining, PAUSED_POLL_SECONDS))
            except TransportError:
                stop.wait(min(remaining, PAUSED_POLL_SECONDS))  # the broker is away too
        return True


@dataclass
class _Stranding:
    """Since when a member has had no partitions, and its group's backlog then."""

    since: float | None = None
    backlog: int | None = None
