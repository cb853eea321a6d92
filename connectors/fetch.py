"""The one HTTP client of Amur: every feed and page is fetched through :class:`Fetcher`.

A fetch either returns a :class:`FetchResult` or raises :class:`~pipeline.core.errors.FetchError`
with a reason an operator can act on and ``retryable`` saying whether trying later may help.
The limits, all from :class:`~pipeline.core.settings.FetchSettings`:

=========================  ===============================================================
only ``http``/``https``    other schemes (file:, ftp:, data:, javascript:, mailto:) are
                           refused before any request, and so is a redirect to one
timeouts                   ``timeout_seconds`` for connecting and for each network read;
                           the whole body must arrive within ``3 × timeout_seconds`` so a
                           server dripping one byte at a time cannot hold a worker
redirects                  followed here, hop by hop, at most ``max_redirects``; a loop is
                           reported as ``redirect loop: A → B → A``
size                       a ``Content-Length`` above ``max_bytes`` is refused before
                           reading; otherwise the body is streamed and reading stops as soon
                           as it passes ``max_bytes``
binary bodies              images, audio, video, PDF, archives, office files and bodies
                           with NUL bytes or a binary signature in their first KiB; a
                           gzip file asked for with ``gunzip=True`` is decompressed
                           instead, to at most ``max_bytes``
destinations               loopback, private, link-local, multicast and reserved addresses
                           are refused, at every hop and connection, unless inside
                           ``allow_networks`` (:mod:`pipeline.core.guard`); proxies from the
                           environment are not used, since through one the guard could not
                           see where a request goes
robots.txt                 :meth:`Fetcher.check_robots` (article pages only) reads each
                           host's robots.txt once a day; ``respect_robots: false`` skips it
concurrency                at most ``max_connections_per_host`` requests in flight to a host
politeness                 at least ``per_host_delay_seconds`` between the starts of two
                           requests to one host name (redirect hops included), across
                           threads; the first request to a host does not wait
=========================  ===============================================================

HTTP statuses: 304 gives ``not_modified=True``; 404, 410 and other 4xx are permanent;
408, 429 and 5xx are retryable, and their ``Retry-After`` (seconds or HTTP date) is parsed
into ``FetchError.retry_after`` (``None`` when absent).

The pieces it is made of: the per-host delay, connection bound and robots.txt
(:mod:`connectors.politeness`), what a body is and how it becomes text
(:mod:`connectors.decoding`), and the canonical spelling of a URL (:mod:`connectors.urls`).
"""

from __future__ import annotations

import logging
import re
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from http import HTTPStatus
from urllib.parse import urlsplit

import httpx

from connectors.decoding import BINARY_TYPE_PREFIXES, GZIP_FILE_TYPES, GZIP_MAGIC, decode_body, gunzipped, refuse_binary
from connectors.politeness import HostTurns, RobotsRules
from connectors.urls import HTTP_SCHEMES
from pipeline.core.connector import ConnectorContext
from pipeline.core.errors import FetchError
from pipeline.core.guard import AddressPolicy, AddressRefused, GuardedTransport
from pipeline.core.settings import FetchSettings

__all__ = [
    "ACCEPT_FEED", "ACCEPT_HTML", "ACCEPT_JSON_FEED", "ACCEPT_SITEMAP", "FetchResult", "Fetcher", "parse_retry_after", "shared_fetcher",
]

log = logging.getLogger(__name__)

ACCEPT_HTML = "text/html,application/xhtml+xml;q=0.9,*/*;q=0.5"
ACCEPT_FEED = (
    "application/rss+xml,application/atom+xml,application/feed+json,application/xml;q=0.9,text/xml;q=0.9,*/*;q=0.5"
)
ACCEPT_JSON_FEED = "application/feed+json,application/json;q=0.9,*/*;q=0.5"
ACCEPT_SITEMAP = "application/xml,text/xml;q=0.9,application/gzip;q=0.8,text/plain;q=0.5,*/*;q=0.3"

REDIRECT_STATUSES = {301, 302, 303, 307, 308}
BODY_DEADLINE_FACTOR = 3  # whole body within 3 × timeout_seconds (see module docstring)

def shared_fetcher(context: ConnectorContext) -> Fetcher:
    """The one :class:`Fetcher` of a connectors process, made from ``context.settings.fetch``."""
    return context.shared("fetcher", lambda: Fetcher(context.settings.fetch))


@dataclass(frozen=True)
class FetchResult:
    """A successful fetch (2xx, or 304 when ``not_modified``)."""

    url: str  # as requested
    final_url: str  # after redirects
    status: int
    body: bytes
    text: str  # body decoded with ``encoding``; empty on 304
    encoding: str | None
    content_type: str | None = None
    etag: str | None = None
    last_modified: str | None = None
    retry_after: float | None = None  # seconds, parsed from Retry-After
    not_modified: bool = False
    max_age: float | None = None  # seconds, Cache-Control max-age: how long the server says it stays fresh

    def response_headers(self) -> dict[str, str]:
        """The headers a parser needs (feedparser's ``response_headers``), lower-case names."""
        headers = {"content-location": self.final_url, "content-type": self.content_type,
                   "etag": self.etag, "last-modified": self.last_modified}
        return {name: value for name, value in headers.items() if value}


class Fetcher:
    """Fetches URLs within the limits of ``settings`` (see the module docstring).

    :param settings: timeouts, size and redirect limits, User-Agent, politeness delay.
    :param client: an ``httpx.Client`` to send requests with (tests pass one on an
        ``httpx.MockTransport``, or on a :class:`~pipeline.core.guard.GuardedTransport` with a
        recording dialer); by default the fetcher makes its own, which connects only where
        ``settings.allow_networks`` and :mod:`pipeline.core.guard` allow, and closes it in
        :meth:`close`. Redirects are followed here, so the client's own setting is ignored.

    Thread-safe: one fetcher serves every connector.
    """

    def __init__(self, settings: FetchSettings, client: httpx.Client | None = None):
        self.settings = settings
        self._timeout = httpx.Timeout(settings.timeout_seconds)
        self._owns_client = client is None
        self._transport = GuardedTransport(AddressPolicy(settings.allow_networks)) if client is None else None
        self._client = client or httpx.Client(
            transport=self._transport, timeout=self._timeout, follow_redirects=False, trust_env=False,
        )
        self._turns = HostTurns(settings.per_host_delay_seconds, settings.max_connections_per_host)
        self._robots = RobotsRules(settings.user_agent, lambda url: self.fetch(url, accept="text/plain,*/*;q=0.5").text)

    def __enter__(self) -> Fetcher:
        return self

    def __exit__(self, *_exc) -> None:
        self.close()

    def cancel(self) -> None:
        """End the requests in flight now (they fail with a network error): shutting down.
        A client passed in (tests) is the caller's to end."""
        if self._transport is not None:
            self._transport.backend.abort()

    def close(self) -> None:
        """Close the HTTP client if this fetcher created it."""
        if self._owns_client:
            self._client.close()

    def fetch(
        self, url: str, *, etag: str | None = None, last_modified: str | None = None, accept: str = ACCEPT_HTML,
        gunzip: bool = False,
    ) -> FetchResult:
        """GET ``url``, conditionally when ``etag`` / ``last_modified`` are given.

        :param url: an absolute http(s) URL.
        :param etag: sent as ``If-None-Match``.
        :param last_modified: sent as ``If-Modified-Since``.
        :param accept: the ``Accept`` header (:data:`ACCEPT_HTML` or :data:`ACCEPT_FEED`).
        :param gunzip: a gzip file is the document itself (a ``.xml.gz`` sitemap), not a binary
            body: it is decompressed, and ``max_bytes`` bounds what it decompresses to.
        :raises FetchError: for every limit and failure listed in the module docstring.
        """
        _require_http(url, url, "refused non-http URL")
        headers = {"User-Agent": self.settings.user_agent, "Accept": accept}
        if etag:
            headers["If-None-Match"] = etag
        if last_modified:
            headers["If-Modified-Since"] = last_modified
        chain = [_normal(url)]
        while True:
            hop = chain[-1]
            self._turns.wait_turn(hop)
            try:
                with self._turns.slot(hop), self._client.stream(
                    "GET", hop, headers=headers, timeout=self._timeout, follow_redirects=False,
                ) as response:
                    location = response.headers.get("location")
                    if response.status_code in REDIRECT_STATUSES and location:
                        chain.append(self._next_hop(url, chain, response.url, location))
                        continue
                    return self._result(url, response, gunzip=gunzip)
            except (httpx.HTTPError, httpx.InvalidURL) as exc:  # InvalidURL is not an HTTPError
                raise _transport_error(url, hop, exc, self.settings.timeout_seconds) from exc

    def check_robots(self, url: str) -> None:
        """Refuse ``url`` unless its site's robots.txt lets ``user_agent`` fetch it
        (:class:`~connectors.politeness.RobotsRules`); ``respect_robots: false`` skips it.

        :raises FetchError: disallowed (not retryable), or robots.txt unreachable (retryable).
        """
        if self.settings.respect_robots:
            self._robots.check(url)

    def _next_hop(self, url: str, chain: list[str], current: httpx.URL, location: str) -> str:
        try:
            target = _normal(str(current.join(location)))
        except httpx.InvalidURL as exc:
            raise FetchError(url, f"redirect to an invalid URL {location!r}: {exc}") from None
        _require_http(url, target, f"redirect from {current} to a non-http URL refused")
        if target in chain:
            path = " → ".join(chain[chain.index(target):] + [target])
            raise FetchError(url, f"redirect loop: {path}")
        if len(chain) > self.settings.max_redirects:
            raise FetchError(url, f"too many redirects (more than {self.settings.max_redirects}): {' → '.join(chain + [target])}")
        return target

    def _result(self, url: str, response: httpx.Response, *, gunzip: bool = False) -> FetchResult:
        status = response.status_code
        content_type = response.headers.get("content-type")
        common = dict(
            url=url, final_url=str(response.url), status=status, content_type=content_type,
            etag=response.headers.get("etag"), last_modified=response.headers.get("last-modified"),
            retry_after=parse_retry_after(response.headers.get("retry-after")),
            max_age=_max_age(response.headers.get("cache-control")),
        )
        if status == 304:
            return FetchResult(body=b"", text="", encoding=None, not_modified=True, **common)
        if not 200 <= status < 300:
            raise _status_error(url, response, common["retry_after"])
        mime = (content_type or "").split(";")[0].strip().lower()
        maybe_gzip = gunzip and mime in GZIP_FILE_TYPES
        if mime.startswith(BINARY_TYPE_PREFIXES) and not maybe_gzip:
            raise FetchError(url, f"binary body ({mime}), not an article or feed")
        body = self._read_capped(url, response)
        if gunzip and body.startswith(GZIP_MAGIC):
            body = gunzipped(url, body, self.settings.max_bytes)
        refuse_binary(url, body, mime or "no content type")
        text, encoding = decode_body(body, content_type)
        return FetchResult(body=body, text=text, encoding=encoding, **common)

    def _read_capped(self, url: str, response: httpx.Response) -> bytes:
        cap = self.settings.max_bytes
        declared = response.headers.get("content-length", "")
        if declared.isdigit() and int(declared) > cap:
            raise FetchError(url, f"body too large: Content-Length is {int(declared)} bytes, the limit is {cap}")
        deadline = time.monotonic() + BODY_DEADLINE_FACTOR * self.settings.timeout_seconds
        chunks: list[bytes] = []
        size = 0
        for chunk in response.iter_bytes():
            size += len(chunk)
            if size > cap:  # leaving the `with` closes the connection: the rest is never read
                raise FetchError(url, f"body too large: more than {cap} bytes (stopped reading)")
            if time.monotonic() > deadline:
                raise FetchError(url, f"read timeout: body still incomplete after {BODY_DEADLINE_FACTOR * self.settings.timeout_seconds:g} s", retryable=True)
            chunks.append(chunk)
        return b"".join(chunks)


_MAX_AGE = re.compile(r"(?:^|[,\s])max-age\s*=\s*\"?(\d+)", re.IGNORECASE)


def _max_age(cache_control: str | None) -> float | None:
    found = _MAX_AGE.search(cache_control or "")
    return float(found.group(1)) if found else None


def parse_retry_after(value: str | None) -> float | None:
    """Seconds to wait from a ``Retry-After`` value (delta-seconds or HTTP date); ``None`` if unusable."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - datetime.now(UTC)).total_seconds())


def _normal(url: str) -> str:
    # httpx's spelling (lower-case host, no default port) so a loop is seen whatever the Location style.
    try:
        return str(httpx.URL(url))
    except httpx.InvalidURL:
        return url


def _require_http(url: str, target: str, what: str) -> None:
    scheme = urlsplit(target).scheme.lower()
    if scheme not in HTTP_SCHEMES:
        shown = target if len(target) <= 120 else target[:117] + "..."
        raise FetchError(url, f"{what}: {shown} (scheme {scheme + ':' if scheme else 'missing'}; only http: and https: are fetched)", refused=True)
    if not urlsplit(target).hostname:
        raise FetchError(url, f"{what}: {target} has no host", refused=True)


def _status_error(url: str, response: httpx.Response, retry_after: float | None) -> FetchError:
    status = response.status_code
    try:
        phrase = response.reason_phrase or HTTPStatus(status).phrase
    except ValueError:
        phrase = ""
    retryable = status in (408, 429) or status >= 500
    reason = f"HTTP {status} {phrase}".rstrip()
    if status in (404, 410):
        reason += ": the page is gone; not retried"
    elif 300 <= status < 400:
        reason += " without a usable Location header"
    elif retryable and retry_after is not None:
        reason += f" (retry after {retry_after:g} s)"
    return FetchError(url, reason, retryable=retryable, status=status, retry_after=retry_after if retryable else None)


def _transport_error(url: str, hop: str, exc: Exception, timeout: float) -> FetchError:
    where = urlsplit(hop)
    host = where.hostname or hop
    at = "" if hop == _normal(url) else f" (at {hop})"
    message = str(exc) or type(exc).__name__
    if isinstance(exc, httpx.ConnectTimeout):
        reason, retryable = f"connect timeout: no connection to {host} within {timeout:g} s", True
    elif isinstance(exc, httpx.ReadTimeout):
        reason, retryable = f"read timeout: {host} sent nothing for {timeout:g} s", True
    elif isinstance(exc, httpx.TimeoutException):
        reason, retryable = f"timeout after {timeout:g} s talking to {host}: {message}", True
    elif isinstance(exc, httpx.ConnectError) and isinstance(exc.__cause__, AddressRefused):
        return FetchError(url, message + at, refused=True)
    elif isinstance(exc, httpx.ConnectError):
        reason, retryable = _connect_reason(host, where.port, message)
    elif isinstance(exc, httpx.RemoteProtocolError):
        reason, retryable = f"connection dropped by {host}: {message}", True
    elif isinstance(exc, httpx.DecodingError):
        reason, retryable = f"cannot decode the body (bad Content-Encoding): {message}", False
    elif isinstance(exc, (httpx.UnsupportedProtocol, httpx.InvalidURL, httpx.LocalProtocolError)):
        reason, retryable = f"invalid request URL: {message}", False
    elif isinstance(exc, httpx.TransportError):
        reason, retryable = f"network error talking to {host}: {message}", True
    else:
        reason, retryable = f"HTTP error: {type(exc).__name__}: {message}", True
    return FetchError(url, reason + at, retryable=retryable)


def _connect_reason(host: str, port: int | None, message: str) -> tuple[str, bool]:
    lowered = message.lower()
    if any(sign in lowered for sign in ("name or service not known", "nodename nor servname", "name resolution", "getaddrinfo", "no address associated")):
        return f"DNS lookup failed for {host}: {message}", True
    if "refused" in lowered:
        return f"connection refused by {host}{f':{port}' if port else ''}: nothing listens there", True
    if "certificate" in lowered or "ssl" in lowered:
        return f"TLS handshake with {host} failed: {message}", False
    return f"cannot connect to {host}: {message}", True
