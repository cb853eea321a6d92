"""The embedded transport: Kafka's log semantics in one SQLite file, for a single process.

Records survive a restart (unless the path is ``:memory:``), consumer groups keep committed
offsets, and uncommitted records are delivered again — so ``amur run`` on one machine is
at-least-once like the Kafka deployment. Only one member of a group may be open at a time,
and only one process may use a log file (an exclusive lock on ``<path>.lock``, which the
system drops when the process ends): a second ``amur run`` on the same files would handle
every record twice. Scaling out is what the Kafka transport is for.

As on Kafka, records are kept for a retention time and then deleted, so a quick start left
running does not grow its file forever; offsets keep counting up across deletions.
"""

from __future__ import annotations

import fcntl
import json
import os
import sqlite3
import threading
import time
import zlib
from collections.abc import Mapping, Sequence
from pathlib import Path

from pipeline.core.db import storage_hint
from pipeline.core.errors import EmbeddedLogBusy, StorageUnusable, TransportError
from pipeline.core.transport.base import Consumer, Headers, PerThread, Producer, Record, TopicPartition, Transport

_SCHEMA = """
CREATE TABLE IF NOT EXISTS topics (
    name TEXT PRIMARY KEY, partitions INTEGER NOT NULL, max_message_bytes INTEGER NOT NULL DEFAULT 1048588
);
CREATE TABLE IF NOT EXISTS records (
    topic TEXT NOT NULL, partition INTEGER NOT NULL, "offset" INTEGER NOT NULL,
    key BLOB, value BLOB NOT NULL, headers TEXT NOT NULL, timestamp_ms INTEGER NOT NULL,
    PRIMARY KEY (topic, partition, "offset")
);
CREATE TABLE IF NOT EXISTS log_ends (
    topic TEXT NOT NULL, partition INTEGER NOT NULL, next_offset INTEGER NOT NULL,
    PRIMARY KEY (topic, partition)
);
CREATE TABLE IF NOT EXISTS group_offsets (
    grp TEXT NOT NULL, topic TEXT NOT NULL, partition INTEGER NOT NULL, "offset" INTEGER NOT NULL,
    PRIMARY KEY (grp, topic, partition)
);
"""


DEFAULT_RETENTION_SECONDS = 7 * 24 * 3600
DEFAULT_MAX_MESSAGE_BYTES = 1_048_588  # Kafka's message.max.bytes default
EXPIRY_INTERVAL_SECONDS = 60.0


# The log files this process holds the lock of: resolved path → (lock file descriptor, transports using it).
_held: dict[str, tuple[int, int]] = {}
_held_lock = threading.Lock()


def _claim(path: str) -> str:
    """Take the log at ``path`` for this process (transports within it share it)."""
    key = str(Path(path).resolve())
    with _held_lock:
        if key in _held:
            descriptor, users = _held[key]
            _held[key] = (descriptor, users + 1)
            return key
        descriptor = os.open(f"{key}.lock", os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.read(descriptor, 32).decode("ascii", "replace").strip()
            os.close(descriptor)
            raise EmbeddedLogBusy(
                f"the embedded log {path} is in use by another process{f' (pid {holder})' if holder else ''}: the "
                "embedded transport serves one process, which runs every role; stop the other one, or set "
                "'transport: kafka' to run several processes"
            ) from None
        os.ftruncate(descriptor, 0)
        os.write(descriptor, str(os.getpid()).encode("ascii"))
        _held[key] = (descriptor, 1)
        return key


def _release(key: str) -> None:
    with _held_lock:
        descriptor, users = _held[key]
        if users > 1:
            _held[key] = (descriptor, users - 1)
            return
        del _held[key]
        os.close(descriptor)  # drops the lock


def partition_for(key: bytes, partitions: int) -> int:
    return zlib.crc32(key) % partitions


class EmbeddedTransport(Transport):
    """A durable log in the SQLite file at ``path`` (``:memory:`` for a throw-away one)."""

    name = "embedded"

    def __init__(
        self, path: str = ":memory:", default_partitions: int = 1, retention_seconds: float = DEFAULT_RETENTION_SECONDS,
        max_message_bytes: int = DEFAULT_MAX_MESSAGE_BYTES,
    ):
        self._path = path
        self._claimed: str | None = None
        try:
            if path != ":memory:":
                Path(path).parent.mkdir(parents=True, exist_ok=True)
                self._claimed = _claim(path)
            self._db = self._open(path)
        except (OSError, sqlite3.Error) as exc:
            if self._claimed is not None:
                _release(self._claimed)
            hint = storage_hint(exc)
            if hint is None:
                raise TransportError(f"cannot open the embedded log {path}: {exc}") from exc
            raise StorageUnusable(f"cannot open the embedded log {path}: {exc}; {hint} (embedded.path)") from None
        self._default_partitions = default_partitions
        self._default_max_message_bytes = max_message_bytes
        self._retention_ms = int(retention_seconds * 1000)
        self._last_expiry = time.monotonic()
        self._lock = threading.RLock()
        self._new_records = threading.Condition(self._lock)
        self._open_groups: set[str] = set()

    @staticmethod
    def _open(path: str) -> sqlite3.Connection:
        db = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
        db.execute("PRAGMA journal_mode=WAL")
        db.execute("PRAGMA synchronous=NORMAL")
        db.executescript(_SCHEMA)
        topic_columns = {row[1] for row in db.execute("PRAGMA table_info(topics)")}
        if "max_message_bytes" not in topic_columns:  # a log file written before the size limit existed
            db.execute(f"ALTER TABLE topics ADD COLUMN max_message_bytes INTEGER NOT NULL DEFAULT {DEFAULT_MAX_MESSAGE_BYTES}")
        return db

    # -- used by producers and consumers -------------------------------------------------
    def _scalar(self, sql: str, parameters: tuple, default: int | None = None) -> int | None:
        with self._lock:
            row = self._db.execute(sql, parameters).fetchone()
        return default if row is None else row[0]

    def partitions_of(self, topic: str) -> int:
        return self._topic(topic)[0]

    def record_limit(self, topic: str) -> int:
        return self._topic(topic)[1]

    def _topic(self, topic: str) -> tuple[int, int]:
        """``(partitions, max_message_bytes)`` of ``topic``."""
        with self._lock:
            row = self._db.execute("SELECT partitions, max_message_bytes FROM topics WHERE name = ?", (topic,)).fetchone()
        if row is None:
            raise TransportError(f"topic {topic!r} does not exist; create it first (amur topics create)")
        return row

    def end_offset(self, topic: str, partition: int) -> int:
        return self._scalar(
            "SELECT next_offset FROM log_ends WHERE topic = ? AND partition = ?", (topic, partition), default=0
        )

    def remaining(self, topic: str, partition: int, position: int) -> int:
        """Records at or after ``position`` (expired ones no longer count)."""
        return self._scalar(
            'SELECT COUNT(*) FROM records WHERE topic = ? AND partition = ? AND "offset" >= ?', (topic, partition, position)
        )

    def append(self, batch: list[tuple[str, bytes, bytes, Headers]]) -> None:
        with self._new_records:
            try:
                self._db.execute("BEGIN IMMEDIATE")
                for topic, key, value, headers in batch:
                    partitions, max_bytes = self._topic(topic)
                    if len(key) + len(value) > max_bytes:
                        raise TransportError(
                            f"record of {len(key) + len(value)} bytes is larger than {topic!r} accepts "
                            f"(max_message_bytes {max_bytes})"
                        )
                    partition = partition_for(key, partitions)
                    offset = self.end_offset(topic, partition)
                    self._db.execute(
                        "INSERT INTO records VALUES (?, ?, ?, ?, ?, ?, ?)",
                        (topic, partition, offset, key, value, _dump_headers(headers), int(time.time() * 1000)),
                    )
                    self._db.execute(
                        "INSERT INTO log_ends VALUES (?, ?, ?) "
                        "ON CONFLICT (topic, partition) DO UPDATE SET next_offset = excluded.next_offset",
                        (topic, partition, offset + 1),
                    )
                self._db.execute("COMMIT")
            except Exception as exc:
                # SQLite rolls back by itself on some failures (a full disk): a second ROLLBACK would hide the cause.
                if self._db.in_transaction:
                    self._db.execute("ROLLBACK")
                hint = storage_hint(exc)
                raise TransportError(
                    f"embedded log {self._path}: write failed, {len(batch)} record(s) not written: {exc}{f'; {hint}' if hint else ''}"
                ) from exc
            self._new_records.notify_all()
            if time.monotonic() - self._last_expiry >= EXPIRY_INTERVAL_SECONDS:
                self.expire()

    def expire(self) -> int:
        """Delete records older than the retention time; returns how many went."""
        cutoff = int(time.time() * 1000) - self._retention_ms
        with self._lock:
            self._last_expiry = time.monotonic()
            return self._db.execute("DELETE FROM records WHERE timestamp_ms < ?", (cutoff,)).rowcount

    def read(self, positions: dict[TopicPartition, int], max_records: int) -> list[Record]:
        records: list[Record] = []
        for (topic, partition), offset in positions.items():
            rows = self._db.execute(
                'SELECT "offset", key, value, headers, timestamp_ms FROM records '
                'WHERE topic = ? AND partition = ? AND "offset" >= ? ORDER BY "offset" LIMIT ?',
                (topic, partition, offset, max_records - len(records)),
            ).fetchall()
            records.extend(
                Record(topic, partition, row[0], row[1], row[2], _load_headers(row[3]), row[4]) for row in rows
            )
            if len(records) >= max_records:
                break
        return records

    def committed(self, group: str, topic: str, partition: int) -> int:
        return self._scalar(
            'SELECT "offset" FROM group_offsets WHERE grp = ? AND topic = ? AND partition = ?',
            (group, topic, partition), default=0,
        )

    def commit(self, group: str, offsets: Mapping[TopicPartition, int]) -> None:
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            self._db.executemany(
                'INSERT INTO group_offsets VALUES (?, ?, ?, ?) '
                'ON CONFLICT (grp, topic, partition) DO UPDATE SET "offset" = excluded."offset"',
                [(group, topic, partition, offset) for (topic, partition), offset in offsets.items()],
            )
            self._db.execute("COMMIT")

    def wait_for_records(self, timeout: float) -> None:
        with self._new_records:
            self._new_records.wait(timeout)

    def leave(self, group: str) -> None:
        with self._lock:
            self._open_groups.discard(group)

    # -- Transport ---------------------------------------------------------------------------
    def ensure_topics(self, topics: Sequence[str], *, max_message_bytes: int | None = None) -> None:
        limit = max_message_bytes or self._default_max_message_bytes
        with self._lock:
            self._db.executemany(
                "INSERT OR IGNORE INTO topics VALUES (?, ?, ?)", [(topic, self._default_partitions, limit) for topic in topics]
            )

    def producer(self) -> Producer:
        return EmbeddedProducer(self)

    def group_lag(self, group: str, topics: Sequence[str]) -> int | None:
        with self._lock:
            partitions = {topic: self._scalar("SELECT partitions FROM topics WHERE name = ?", (topic,)) for topic in topics}
            if None in partitions.values():
                return None
            return sum(
                self.remaining(topic, partition, self.committed(group, topic, partition))
                for topic, count in partitions.items() for partition in range(count)
            )

    def consumer(self, group: str, topics: Sequence[str]) -> Consumer:
        with self._lock:
            if group in self._open_groups:
                raise TransportError(
                    f"group {group!r} already has a member; the embedded transport runs one member "
                    "per group (use the kafka transport to scale out)"
                )
            for topic in topics:
                self.partitions_of(topic)
            self._open_groups.add(group)
            return EmbeddedConsumer(self, group, list(topics))

    def close(self) -> None:
        with self._lock:
            self._db.close()
            if self._claimed is not None:
                _release(self._claimed)
                self._claimed = None


class EmbeddedProducer(Producer):
    """Queues records per producing thread, so that ``flush`` writes exactly the caller's records.

    Threads share one producer (the connectors' polls do). With one queue, a thread could take
    another's records into its own write and the other's ``flush`` would return while they were
    still being written — or after that write had failed.
    """

    def __init__(self, log: EmbeddedTransport):
        self._log = log
        self._queues = PerThread()

    def produce(self, topic: str, key: bytes, value: bytes, headers: Headers = ()) -> None:
        self._log.partitions_of(topic)
        self._queues.mine().append((topic, key, value, tuple(headers)))

    def flush(self, timeout: float = 30.0) -> None:
        queue = self._queues.mine()
        batch = list(queue)
        # Cleared whether or not the write succeeds: a caller whose flush raised produces again.
        queue.clear()
        if batch:
            self._log.append(batch)

    def close(self) -> None:
        self.flush()


class EmbeddedConsumer(Consumer):
    def __init__(self, log: EmbeddedTransport, group: str, topics: list[str]):
        self._log = log
        self._group = group
        with log._lock:
            self._positions = {
                (topic, partition): log.committed(group, topic, partition)
                for topic in topics
                for partition in range(log.partitions_of(topic))
            }
        self._paused = False

    def poll(self, max_records: int = 500, timeout: float = 1.0) -> list[Record]:
        if self._paused:
            time.sleep(timeout)  # one member per group: there is no membership to keep alive
            return []
        deadline = time.monotonic() + timeout
        while True:
            with self._log._lock:
                records = self._log.read(self._positions, max_records)
            if records:
                for record in records:
                    self._positions[(record.topic, record.partition)] = record.offset + 1
                return records
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return []
            self._log.wait_for_records(remaining)

    def commit(self, offsets: Mapping[TopicPartition, int]) -> None:
        self._log.commit(self._group, offsets)

    def pause(self) -> None:
        self._paused = True

    def resume(self) -> None:
        self._paused = False

    def lag(self) -> int | None:
        with self._log._lock:
            return sum(self._log.remaining(t, p, offset) for (t, p), offset in self._positions.items())

    def close(self) -> None:
        self._log.leave(self._group)


def _dump_headers(headers: Headers) -> str:
    return json.dumps([[name, value.hex()] for name, value in headers])


def _load_headers(text: str) -> Headers:
    return tuple((name, bytes.fromhex(value)) for name, value in json.loads(text))
