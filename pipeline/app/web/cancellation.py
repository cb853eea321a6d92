"""Work for a request stops when its client leaves, and no query runs past a deadline.

Routes are synchronous and run in worker threads; what costs is their database query. The
ASGI middleware :class:`CancelOnDisconnect` listens for the client's disconnect while the
route runs and cancels the request's :class:`Cancellation`, which the route's thread sees
through a context variable (the thread pool copies the context). :func:`cancellable`
attaches the running query to it: SQLite checks a progress handler every few thousand
virtual-machine steps, PostgreSQL gets a cancel request from the listening task. Either
way a query also ends after :data:`QUERY_SECONDS`, whether or not the client waits.
"""

from __future__ import annotations

import asyncio
import contextvars
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager

import sqlalchemy as sa

__all__ = ["QUERY_SECONDS", "CancelOnDisconnect", "Cancellation", "QueryCancelled", "cancellable"]

QUERY_SECONDS = 10.0
# SQLite virtual-machine instructions between two checks: well under a millisecond of work.
PROGRESS_STEPS = 10_000


class QueryCancelled(Exception):
    """A query stopped because its client left or it ran past :data:`QUERY_SECONDS`."""


class Cancellation:
    """One request's cancel signal: an event, and what to call when it is set."""

    def __init__(self) -> None:
        self.event = threading.Event()
        self._callbacks: list[Callable[[], None]] = []
        self._lock = threading.Lock()

    def cancel(self) -> None:
        with self._lock:
            self.event.set()
            callbacks, self._callbacks = self._callbacks, []
        for callback in callbacks:
            callback()

    @contextmanager
    def calling(self, callback: Callable[[], None]) -> Iterator[None]:
        """Call ``callback`` on cancel while the block runs (at once if cancelled already)."""
        with self._lock:
            cancelled = self.event.is_set()
            if not cancelled:
                self._callbacks.append(callback)
        if cancelled:
            callback()
        try:
            yield
        finally:
            with self._lock:
                if callback in self._callbacks:
                    self._callbacks.remove(callback)


current: contextvars.ContextVar[Cancellation | None] = contextvars.ContextVar("amur_request_cancellation", default=None)


@contextmanager
def cancellable(connection: sa.Connection, seconds: float = QUERY_SECONDS) -> Iterator[sa.Connection]:
    """``connection`` with its queries ended by the current request's cancel or by the deadline.

    :raises QueryCancelled: (on leaving the block) a query was stopped.
    """
    cancellation = current.get() or Cancellation()
    raw = connection.connection.dbapi_connection
    try:
        if connection.dialect.name == "sqlite":
            with _sqlite_watch(raw, cancellation, seconds):
                yield connection
        elif connection.dialect.name == "postgresql":
            with _postgres_watch(connection, raw, cancellation, seconds):
                yield connection
        else:
            yield connection
    except sa.exc.OperationalError as exc:
        if cancellation.event.is_set() or _is_interruption(exc):
            raise QueryCancelled("the query was stopped: its client left, or it ran too long") from exc
        raise


def _is_interruption(exc: sa.exc.OperationalError) -> bool:
    original = exc.orig
    if isinstance(original, sqlite3.OperationalError):
        return str(original) == "interrupted"
    return type(original).__name__ == "QueryCanceled"  # psycopg's errors.QueryCanceled


@contextmanager
def _sqlite_watch(raw: sqlite3.Connection, cancellation: Cancellation, seconds: float) -> Iterator[None]:
    deadline = time.monotonic() + seconds
    raw.set_progress_handler(lambda: cancellation.event.is_set() or time.monotonic() > deadline, PROGRESS_STEPS)
    try:
        yield
    finally:
        raw.set_progress_handler(None, 0)


@contextmanager
def _postgres_watch(connection: sa.Connection, raw, cancellation: Cancellation, seconds: float) -> Iterator[None]:
    # SET is transactional: the rollback at the end puts the pooled connection's timeout back.
    connection.exec_driver_sql(f"SET statement_timeout = {int(seconds * 1000)}")
    try:
        with cancellation.calling(raw.cancel_safe):
            yield
    finally:
        if not connection.invalidated:
            connection.rollback()


class CancelOnDisconnect:
    """ASGI middleware: a request's :class:`Cancellation` is cancelled when its client disconnects.

    The request's body is read first (the API takes none worth waiting for) and handed to the
    application as it came; after that, the server's next message can only be the disconnect.
    """

    def __init__(self, app) -> None:
        self.app = app

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        body_messages = []
        while True:
            message = await receive()
            body_messages.append(message)
            if message["type"] != "http.request" or not message.get("more_body"):
                break
        cancellation = Cancellation()
        if body_messages[-1]["type"] == "http.disconnect":
            cancellation.cancel()

        async def replay():
            if body_messages:
                return body_messages.pop(0)
            await cancellation_done.wait()
            return {"type": "http.disconnect"}

        cancellation_done = asyncio.Event()

        async def listen() -> None:
            if (await receive())["type"] == "http.disconnect":
                cancellation.cancel()
                cancellation_done.set()

        listener = asyncio.create_task(listen())
        token = current.set(cancellation)
        try:
            await self.app(scope, replay, send)
        finally:
            current.reset(token)
            listener.cancel()
