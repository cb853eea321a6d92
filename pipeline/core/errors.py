"""Every error Amur raises on purpose, as one tree.

    AmurError
    ├── ConfigError            a settings or sources file is wrong; stops the program
    ├── SourceError            one source or one item of it failed; the loop goes on
    │   ├── FetchError         HTTP failure, timeout, refused URL, too large, redirect loop
    │   ├── FeedParseError     the body is not a feed feedparser can read
    │   └── ExtractionError    no article text could be extracted from a page
    ├── MessageError           a topic message is not valid JSON of its schema (poison)
    │   └── MessageRejected    valid, but a sink can never write it (bad data)
    ├── TransportError         the broker or the embedded log failed
    │   └── EmbeddedLogBusy    another process uses the embedded log; stops the program
    └── SinkError              a sink could not write; nothing is committed
        └── SinkBackpressure   a sink asks to retry later (``retry_after`` seconds)

A per-item error (``SourceError``, ``MessageError``) is data: it is logged with the
source or topic position, counted, and the item is skipped or sent to the dead-letter
topic. ``SinkError`` is the opposite of ``MessageRejected``: the sink's database or endpoint
is down, every message waits and is retried. Only ``ConfigError`` and ``EmbeddedLogBusy``
end the program.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any


class AmurError(Exception):
    """Base of every error Amur raises on purpose."""


@dataclass(frozen=True)
class ConfigProblem:
    """One problem in a configuration file: where it is and how to fix it."""

    file: str
    key: str
    message: str
    hint: str = ""

    def __str__(self) -> str:
        text = f"{self.file}: {self.key}: {self.message}"
        return f"{text} (hint: {self.hint})" if self.hint else text


def error_key(error: Mapping[str, Any], whole: str = "(top level)") -> str:
    """The dotted key one pydantic validation error is about (``sinks.0.path``), or ``whole``
    when it is about the value itself: how every error message names the key."""
    return ".".join(str(part) for part in error["loc"]) or whole


def nearest(value: str, choices: Iterable[str], limit: int = 3) -> list[str]:
    """The ``choices`` most like ``value`` (at most ``limit``, best first), ignoring case: what
    an error about an unknown value offers instead."""
    by_folded: dict[str, str] = {}
    for choice in choices:
        by_folded.setdefault(choice.casefold(), choice)
    return [by_folded[match] for match in difflib.get_close_matches(value.casefold(), list(by_folded), n=limit, cutoff=0.5)]


def allowed_like(error: Mapping[str, Any]) -> list[str]:
    """For a pydantic error about a value outside a fixed set ("transport" for a sector), the
    allowed values most like it; empty for any other error."""
    if error["type"] != "literal_error" or not isinstance(error.get("input"), str):
        return []
    return nearest(error["input"], re.findall(r"'([^']*)'", error["ctx"]["expected"]))


class ConfigError(AmurError):
    """A configuration file is missing, unreadable or invalid.

    Carries every problem found, so ``amur config check`` can print them all at once.
    """

    def __init__(self, problems: list[ConfigProblem]):
        self.problems = problems
        super().__init__("\n".join(str(problem) for problem in problems))


class SourceError(AmurError):
    """One source, or one item of a source, failed. ``retryable`` says if trying later may help."""

    retryable = False

    def __init__(self, url: str, reason: str):
        self.url = url
        self.reason = reason
        super().__init__(f"{url}: {reason}")

    def __reduce__(self):
        # Rebuilt from its fields, so that it crosses from an extractor process: by default
        # pickle would pass __init__ the message alone.
        return type(self), (self.url, self.reason), self.__dict__


class FetchError(SourceError):
    """An HTTP fetch failed: refused URL, status, timeout, oversized or binary body.

    ``retry_after`` is the delay in seconds a server asked for (429/503 Retry-After), if any.
    ``refused`` marks a URL Amur will not fetch at all (not http(s), or a destination the
    address guard refuses): nothing from it is passed on, not even the feed's summary.
    """

    def __init__(
        self, url: str, reason: str, *, retryable: bool = False, status: int | None = None,
        retry_after: float | None = None, refused: bool = False,
    ):
        super().__init__(url, reason)
        self.retryable = retryable
        self.status = status
        self.retry_after = retry_after
        self.refused = refused


class FeedParseError(SourceError):
    """The fetched body is not a feed that feedparser can read."""


class ExtractionError(SourceError):
    """No article text could be extracted from a page."""


class SourceSilent(AmurError):
    """A source that answers but has published nothing for several times its usual gap."""


class MessageError(AmurError):
    """A message on a topic cannot be decoded into its model (a poison message)."""


class MessageRejected(MessageError):
    """A sink refuses one message it can never write (an empty title, a NUL byte for
    PostgreSQL): that message goes to the dead-letter topic, the others are written."""


class TransportError(AmurError):
    """The transport (Kafka or the embedded log) failed to produce, poll or commit."""


class EmbeddedLogBusy(TransportError):
    """Another process uses the embedded log: no outage to wait out, but a second deployment
    on the same files, which would handle every record twice."""


class StorageUnusable(AmurError):
    """A file Amur must write (the SQLite database, the embedded log) cannot be opened or
    created where it is configured: a read-only or missing place, or a full disk. Nothing
    to wait out at start-up; the message names the file and the fix."""


class SinkError(AmurError):
    """A sink failed to write or flush a batch; the batch's offsets are not committed."""


class SinkBackpressure(SinkError):
    """A sink is temporarily unable to accept writes; retry the batch after ``retry_after`` s."""

    def __init__(self, message: str, retry_after: float):
        super().__init__(message)
        self.retry_after = retry_after
