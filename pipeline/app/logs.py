"""Logging of the long-running commands (``amur run``, ``amur serve``): one line per event.

Amur's own loggers log each event once; the libraries that would log every HTTP request or
scheduler tick at INFO are held at WARNING unless the level asked for is DEBUG. With
``--log-format json`` each line is one JSON object (``time``, ``level``, ``logger``,
``message``, and ``error`` with the traceback when there is one), for log shippers.

A library line repeated word for word is written once per :data:`REPEAT_WINDOW_SECONDS`,
with the count of the copies dropped: kafka-python, for one, writes the same warning
thousands of times a minute while a broker of its cluster is down.
"""

from __future__ import annotations

import json
import logging
import sys
import threading
import time
from datetime import UTC, datetime

from pipeline.core.redaction import redact

__all__ = ["LEVELS", "QUIET_LIBRARIES", "configure_logging"]

LEVELS = ("debug", "info", "warning", "error")
# Given with extra= by the log calls that concern one of these: the JSON lines carry them as fields.
CONTEXT_FIELDS = ("stage", "source", "article_id", "story_id")
QUIET_LIBRARIES = ("httpx", "httpcore", "apscheduler", "kafka", "trafilatura", "urllib3", "uvicorn", "pymorphy3")
REPEAT_WINDOW_SECONDS = 30.0


class LibraryRepeats(logging.Filter):
    """Drops a library's line seen in the last window; the next copy let through says how many were dropped."""

    def __init__(self, window: float = REPEAT_WINDOW_SECONDS, clock=time.monotonic):
        super().__init__()
        self.window = window
        self.clock = clock
        self._seen: dict[tuple[str, int, str], tuple[float, int]] = {}  # line → (last written, dropped since)
        self._lock = threading.Lock()

    def filter(self, record: logging.LogRecord) -> bool:
        if record.name.split(".", 1)[0] not in QUIET_LIBRARIES:
            return True  # Amur's own lines are one per event already
        key = (record.name, record.levelno, record.getMessage())
        now = self.clock()
        with self._lock:
            written, dropped = self._seen.get(key, (None, 0))
            if written is not None and now - written < self.window:
                self._seen[key] = (written, dropped + 1)
                return False
            if len(self._seen) > 10_000:
                self._seen.clear()
            self._seen[key] = (now, 0)
        if dropped:
            record.msg, record.args = f"{record.getMessage()} (and {dropped} more like it in {self.window:.0f} s)", None
        return True


class RedactingFormatter(logging.Formatter):
    """A line, traceback included, with the credentials of every URL in it masked."""

    def format(self, record: logging.LogRecord) -> str:
        return redact(super().format(record))


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        line = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        for field in CONTEXT_FIELDS:  # what the event is about, for a log shipper to index
            value = getattr(record, field, None)
            if value is not None:
                line[field] = value
        if record.exc_info:
            line["error"] = self.formatException(record.exc_info)
        return redact(json.dumps(line, ensure_ascii=False))


def configure_logging(level: str = "info", log_format: str = "text") -> None:
    """Log to standard error at ``level`` (one of :data:`LEVELS`) as ``text`` or ``json``."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(
        JsonFormatter() if log_format == "json" else RedactingFormatter("%(asctime)s %(levelname)s %(name)s: %(message)s")
    )
    handler.addFilter(LibraryRepeats())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    quiet = logging.NOTSET if level == "debug" else logging.WARNING
    for name in QUIET_LIBRARIES:
        logging.getLogger(name).setLevel(quiet)
