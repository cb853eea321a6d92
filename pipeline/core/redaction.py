"""Credentials out of everything Amur shows: logs, health, dead letters, stored errors.

Operators put secrets in URLs (``https://user:pass@host/feed``, ``…/hook?token=…``), and an
HTTP library quotes the URL it failed on in its error. :func:`redact` masks the password of
a URL's user information and the value of every query parameter whose name says it is a
secret, wherever such a URL appears in a text; the rest of the URL stays, so an operator
still sees which source or endpoint is meant.
"""

from __future__ import annotations

import re
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

__all__ = ["MASK", "redact"]

MASK = "***"
# A URL ends before the punctuation that closes the sentence or clause quoting it.
URL = re.compile(r"\b[a-zA-Z][a-zA-Z0-9+.-]*://[^\s\"'<>]*[^\s\"'<>.,:;)\]]")
# Parts of a query parameter's name that mark its value as a credential.
SECRET_NAMES = re.compile(r"token|key|secret|pass|pwd|auth|sig|credential|session|jwt", re.IGNORECASE)


def redact(text: str) -> str:
    """``text`` with the credentials of every URL in it masked."""
    if "://" not in text:
        return text
    return URL.sub(lambda match: _redact_url(match.group()), text)


def _redact_url(url: str) -> str:
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 - raises for a malformed netloc, which is then masked whole
    except ValueError:
        return MASK
    netloc = parts.netloc
    if "@" in netloc:
        userinfo, _, host = netloc.rpartition("@")
        # A user alone may be a token too (https://<token>@host); with a password, the user name stays.
        user, has_password, _ = userinfo.partition(":")
        netloc = f"{user}:{MASK}@{host}" if has_password and user else f"{MASK}@{host}"
    query = parts.query
    if query and SECRET_NAMES.search(query):
        pairs = parse_qsl(query, keep_blank_values=True)
        query = urlencode(
            [(name, MASK if SECRET_NAMES.search(name) else value) for name, value in pairs], safe="*",
        )
    return urlunsplit((parts.scheme, netloc, parts.path, query, parts.fragment))
