"""The interface every sink implements: ``setup`` → (``add`` … ``flush``)* → ``close``.

The sinks stage (:class:`pipeline.core.stages.SinkStage`) feeds each decoded message of a batch
to the sinks that read its topic with ``add``, then calls ``flush`` on every sink, and only
when all flushes returned does it commit the batch's offsets. Two kinds of failure are kept
apart, because they call for opposite reactions:

* **the sink is down** (database unreachable, endpoint timing out): ``flush`` raises
  :class:`~pipeline.core.errors.SinkError`; nothing of the batch is committed, the stage pauses
  its partitions and retries (:class:`~pipeline.core.errors.SinkBackpressure` says when);
* **one message is bad** (an alert with an empty title, a value the database refuses):
  ``add`` raises :class:`~pipeline.core.errors.MessageRejected`, or ``flush`` returns the message
  among its :class:`Rejection` s. The stage sends it to the dead-letter topic with its topic,
  partition, offset and the sink's name; the other messages and sinks go on.

A message can arrive twice (after a crash, a retry or a broker restart), so writes must be
idempotent: upsert by id, never append.

Sinks are built from amur.yaml's ``sinks:`` list through :data:`pipeline.core.registry.sinks`::

    sinks:
      - type: records
      - type: alerts
      - type: feeds
        directory: var/feeds

Most sinks subclass :class:`BatchingSink` and implement ``write(batch)``; SQL sinks subclass
:class:`SqlSink` and implement only ``row(message)``::

    class PrintSink(BatchingSink):
        topic = "alerts"

        @classmethod
        def from_config(cls, options, context):
            return cls()

        def write(self, batch):
            for alert in batch:
                print(alert.id, alert.title)
"""

from __future__ import annotations

import logging
import threading
from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import ClassVar

from pydantic import BaseModel, ConfigDict
from sqlalchemy import Connection, Engine, Table
from sqlalchemy.exc import DataError, IntegrityError, SQLAlchemyError

from pipeline.core.db import make_engine, upsert
from pipeline.core.errors import MessageRejected, SinkError
from pipeline.core.messages import Message
from pipeline.core.migrations import upgrade_database
from pipeline.core.settings import DEFAULT_CONFIG_PATH, AmurSettings
from pipeline.core.subscriptions import Vocabulary
from pipeline.core.topology import Topics
from pipeline.core.transport.base import Transport

log = logging.getLogger(__name__)


class NoOptions(BaseModel):
    """A sink that takes no options under its ``- type:`` entry."""

    model_config = ConfigDict(frozen=True, extra="forbid")


@dataclass
class SinkContext:
    """What sinks are built with: the settings (and the amur.yaml they came from, whose
    directory other configuration files are relative to), and one SQL engine shared by
    every SQL sink."""

    settings: AmurSettings
    config_path: Path = DEFAULT_CONFIG_PATH
    transport: Transport | None = None  # for sinks that write to a topic themselves (dead letters)
    topics: Topics = field(default_factory=Topics)
    vocabulary: Vocabulary | None = None  # the regions and languages a subscription's filters may name
    _engine: Engine | None = field(default=None, repr=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def engine(self) -> Engine:
        with self._lock:
            if self._engine is None:
                self._engine = make_engine(self.settings.database_url)
            return self._engine


@dataclass(frozen=True)
class Rejection:
    """A message a sink will never write, and why."""

    message: Message
    error: Exception


class Sink(ABC):
    """Receives the messages of one topic kind (``topic``: ``classified`` or ``alerts``).

    :ivar name: the sink's name in logs and dead letters (amur.yaml's ``name``, else its type).
    """

    topic: ClassVar[str]
    Options: ClassVar[type[BaseModel]] = NoOptions
    # Sink types that must come before this one under ``sinks:``: what they write in a batch,
    # this one reads in the same batch (sinks flush in the order listed).
    needs: ClassVar[tuple[str, ...]] = ()
    name: str = ""

    @classmethod
    @abstractmethod
    def from_config(cls, options: BaseModel, context: SinkContext) -> Sink:
        """Build the sink from its validated ``Options`` and the shared context."""

    def setup(self) -> None:
        """Connect and create what the sink needs; called once before the first ``add``."""

    @abstractmethod
    def add(self, message: Message) -> None:
        """Accept one message; it need not be written before ``flush``.

        :raises MessageRejected: the message can never be written by this sink.
        """

    @abstractmethod
    def flush(self) -> list[Rejection]:
        """Durably write everything added since the last flush; return the messages refused.

        :raises SinkError: the sink is down; nothing of the batch may count as written.
        """

    def close(self) -> None:
        """Release connections; called once, after the last flush."""


class BatchingSink(Sink):
    """Keeps added messages in memory and hands them to ``write`` as one batch on flush.

    When ``write`` fails with anything but :class:`SinkError`, the batch is written again
    one message at a time, so the messages that cause the failure are found and rejected
    while the rest are written: one bad message never holds up, or crash-loops, the others.
    """

    def __init__(self) -> None:
        self._batch: list[Message] = []

    def add(self, message: Message) -> None:
        self.check(message)
        self._batch.append(message)

    def check(self, message: Message) -> None:
        """Raise :class:`MessageRejected` for a message this sink could never write."""

    def flush(self) -> list[Rejection]:
        # A failed batch is delivered again from the uncommitted offsets, so keeping it
        # here would write it twice.
        batch, self._batch = self._batch, []
        if not batch:
            return []
        try:
            self.write(batch)
            return []
        except SinkError:
            raise
        except Exception as exc:  # noqa: BLE001 - bad data or a bug: find the messages below
            if len(batch) == 1:
                return [Rejection(batch[0], exc)]
            log.warning("sink=%s batch of %d failed (%s); writing one by one", self.name, len(batch), exc)
        rejections = []
        for message in batch:
            try:
                self.write([message])
            except SinkError:
                raise
            except Exception as exc:  # noqa: BLE001 - this message goes to the DLQ with its error
                rejections.append(Rejection(message, exc))
        return rejections

    @abstractmethod
    def write(self, batch: Sequence[Message]) -> None:
        """Write the whole batch idempotently; raise SinkError when the sink is down."""


class SqlSink(BatchingSink):
    """A sink that upserts one row per message into ``table``, on SQLite or PostgreSQL.

    Subclasses give the ``table``, its ``key`` columns, the ``keep`` columns that stay as
    first written (a replay must not move an alert up the feed), optionally a ``newest``
    version column, and ``row(message)``.
    Errors are mapped once, here: a value the database refuses (``DataError``,
    ``IntegrityError``) rejects the message; anything else means the database is down.
    """

    table: ClassVar[Table]
    key: ClassVar[tuple[str, ...]] = ("id",)
    keep: ClassVar[tuple[str, ...]] = ()
    what: ClassVar[str] = "row"  # what a row is, for messages: "article", "alert"
    newest: ClassVar[str | None] = None  # a version column: a row is never replaced by an older one

    def __init__(self, engine: Engine):
        super().__init__()
        self.engine = engine

    def setup(self) -> None:
        prepare_database(self.name, self.engine)

    @abstractmethod
    def row(self, message: Message) -> dict:
        """The table row of one message."""

    def write(self, batch: Sequence[Message]) -> None:
        # The last delivery of a key in a batch wins, as it would across batches.
        rows = list({tuple(row[column] for column in self.key): row for row in map(self.row, batch)}.values())
        try:
            with self.engine.begin() as connection:
                connection.execute(upsert(self.engine, self.table, key=list(self.key), keep=self.keep, newest=self.newest), rows)
                self.write_related(connection, batch)
        except (DataError, IntegrityError) as exc:
            raise MessageRejected(f"{self.name}: the database refused the row: {exc.orig}") from exc
        except SQLAlchemyError as exc:
            raise SinkError(f"{self.name}: cannot write {len(rows)} {self.what}(s): {exc.__class__.__name__}: {exc}") from exc

    def write_related(self, connection: Connection, batch: Sequence[Message]) -> None:
        """Rows of other tables that must change with the batch's, in the same transaction."""

    def close(self) -> None:
        self.engine.dispose()


def prepare_database(sink: str, engine: Engine) -> None:
    """Bring the database a sink writes or reads to the newest revision; a database that
    cannot be reached or migrated is the sink being down (:class:`SinkError`)."""
    try:
        upgrade_database(engine)
    except SQLAlchemyError as exc:
        raise SinkError(f"{sink}: cannot prepare the database: {exc.__class__.__name__}: {exc}") from exc
