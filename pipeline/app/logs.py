"""Logging of the long-running commands (``amur run``, ``amur serve``): one line per event.

Amur's own loggers log each event once; the libraries that would log every HTTP request or
scheduler tick at INFO are held at WARNING unless the level asked for is DEBUG. With
``--log-format json`` each line is one JSON object (``time``, ``level``, ``logger``,
``message``, and ``error`` with the traceback when there is one), for log shippers.
"""

from __future__ import annotations

import json
import logging
import sys
from datetime import UTC, datetime

__all__ = ["LEVELS", "QUIET_LIBRARIES", "configure_logging"]

LEVELS = ("debug", "info", "warning", "error")
# Given with extra= by the log calls that concern one of these: the JSON lines carry them as fields.
CONTEXT_FIELDS = ("stage", "source", "article_id", "story_id")
QUIET_LIBRARIES = ("httpx", "httpcore", "apscheduler", "kafka", "trafilatura", "urllib3", "uvicorn", "pymorphy3")


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
        return json.dumps(line, ensure_ascii=False)


def configure_logging(level: str = "info", log_format: str = "text") -> None:
    """Log to standard error at ``level`` (one of :data:`LEVELS`) as ``text`` or ``json``."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(
        JsonFormatter() if log_format == "json" else logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s")
    )
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    quiet = logging.NOTSET if level == "debug" else logging.WARNING
    for name in QUIET_LIBRARIES:
        logging.getLogger(name).setLevel(quiet)
