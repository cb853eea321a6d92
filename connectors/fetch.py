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

Text is decoded with the first charset that works, in order: a byte-order mark, the
``Content-Type`` charset, the document's own ``<meta charset>`` / XML declaration, UTF-8,
then detection by ``charset_normalizer``; the last resort is UTF-8 with replacement
characters, so a wrong or unknown charset never raises.
"""

from __future__ import annotations

import codecs
import logging
import re
import threading
import time
import zlib
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from http import HTTPStatus
from urllib.parse import unquote_plus, urlsplit, urlunsplit
from urllib.robotparser import RobotFileParser

import courlan
import httpx

from pipeline.core.connector import ConnectorContext
from pipeline.core.errors import FetchError
from pipeline.core.guard import AddressPolicy, AddressRefused, GuardedTransport
from pipeline.core.settings import FetchSettings

try:  # installed with trafilatura; detection is a fallback, so it stays optional
    import charset_normalizer
except ImportError:  # pragma: no cover
    charset_normalizer = None

__all__ = [
    "ACCEPT_FEED", "ACCEPT_HTML", "ACCEPT_JSON_FEED", "ACCEPT_SITEMAP", "TRACKING_PARAMETERS", "TRACKING_PREFIXES",
    "FetchResult", "Fetcher", "canonical_url", "decode_body", "parse_retry_after", "same_site", "shared_fetcher",
]

log = logging.getLogger(__name__)

ACCEPT_HTML = "text/html,application/xhtml+xml;q=0.9,*/*;q=0.5"
ACCEPT_FEED = (
    "application/rss+xml,application/atom+xml,application/feed+json,application/xml;q=0.9,text/xml;q=0.9,*/*;q=0.5"
)
ACCEPT_JSON_FEED = "application/feed+json,application/json;q=0.9,*/*;q=0.5"
ACCEPT_SITEMAP = "application/xml,text/xml;q=0.9,application/gzip;q=0.8,text/plain;q=0.5,*/*;q=0.3"

HTTP_SCHEMES = ("http", "https")
REDIRECT_STATUSES = {301, 302, 303, 307, 308}
ROBOTS_TTL_SECONDS = 86_400.0  # a host's robots.txt is read again after a day
ROBOTS_RETRY_SECONDS = 600.0  # or after ten minutes, when it could not be read
BODY_DEADLINE_FACTOR = 3  # whole body within 3 × timeout_seconds (see module docstring)
SNIFF_BYTES = 1024

# Query parameters that only say where a click came from; dropped so one article has one id.
TRACKING_PARAMETERS = frozenset({
    "fbclid", "gclid", "dclid", "gbraid", "wbraid", "msclkid", "yclid", "ysclid", "twclid",
    "igshid", "mc_cid", "mc_eid", "_ga", "_gl", "_openstat", "ref", "ref_src", "ref_url",
    "referrer", "from", "rss", "rss_source", "cmpid", "ocid", "smid", "spm", "share",
    "at_medium", "at_campaign", "at_custom1", "at_custom2", "oly_anon_id", "oly_enc_id",
    "vero_id", "wt.mc_id", "s_cid", "feature", "xtor",
})
TRACKING_PREFIXES = ("utm_", "mtm_", "pk_", "_hs", "hsa_")  # Google/Urchin, Matomo, Piwik, HubSpot

# A declared type that can never be an article or a feed.
BINARY_TYPE_PREFIXES = (
    "image/", "audio/", "video/", "font/", "application/octet-stream", "application/pdf",
    "application/zip", "application/x-zip", "application/gzip", "application/x-gzip",
    "application/x-tar", "application/x-7z", "application/x-rar", "application/x-bzip",
    "application/msword", "application/vnd.ms-", "application/vnd.openxmlformats",
    "application/vnd.oasis.opendocument", "application/java-archive", "application/wasm",
    "application/x-shockwave-flash", "application/x-msdownload",
)
GZIP_MAGIC = b"\x1f\x8b"
GZIP_FILE_TYPES = ("application/gzip", "application/x-gzip", "application/octet-stream")  # how .gz files are served
# Signatures of binary files served under a text type.
MAGIC_BYTES = (
    (b"%PDF-", "application/pdf"), (b"PK\x03\x04", "application/zip"),
    (b"\x89PNG", "image/png"), (b"GIF8", "image/gif"), (b"\xff\xd8\xff", "image/jpeg"),
    (b"\x1f\x8b", "application/gzip"), (b"Rar!", "application/x-rar"),
)

BOMS = (
    (codecs.BOM_UTF32_LE, "utf-32"), (codecs.BOM_UTF32_BE, "utf-32"),
    (codecs.BOM_UTF8, "utf-8-sig"), (codecs.BOM_UTF16_LE, "utf-16"), (codecs.BOM_UTF16_BE, "utf-16"),
)
_META_CHARSET = re.compile(rb"""<meta[^>]+charset\s*=\s*["']?\s*([a-zA-Z0-9_.:-]+)""", re.IGNORECASE)
_XML_ENCODING = re.compile(rb"""^\s*<\?xml[^>]+encoding\s*=\s*["']([a-zA-Z0-9_.:-]+)["']""", re.IGNORECASE)


def canonical_url(url: str) -> str:
    """The one spelling of ``url`` that Amur hashes into an article id.

    courlan normalises the URL (lower-cased scheme and host, no default port, sorted query
    parameters, its own list of tracking parameters); on top of that the fragment goes, so
    do the tracking parameters of :data:`TRACKING_PARAMETERS` and any starting with
    :data:`TRACKING_PREFIXES`, and an empty path becomes ``/``; other paths, trailing slash
    included, are kept as they are. Never raises: a URL it cannot understand comes back
    stripped and otherwise unchanged.

    >>> canonical_url("HTTPS://News.Example:443/a/?utm_source=x&b=2&a=1#top")
    'https://news.example/a/?a=1&b=2'
    """
    url = url.strip()
    parts = urlsplit(url)
    try:
        parts.port  # noqa: B018 - raises on a port that is not a number
        parts = urlsplit(courlan.normalize_url(url)) if parts.scheme in HTTP_SCHEMES and parts.netloc else parts
    except ValueError:
        return url
    netloc = parts.netloc
    default_port = {"http": ":80", "https": ":443"}.get(parts.scheme)
    if default_port and netloc.endswith("]" + default_port):  # courlan keeps it after an IPv6 literal
        netloc = netloc.removesuffix(default_port)
    path = parts.path or ("/" if netloc else "")
    kept = [pair for pair in parts.query.split("&") if pair and not _is_tracking(pair)]
    return urlunsplit((parts.scheme, netloc, path, "&".join(kept), ""))


def same_site(url: str, other: str) -> bool:
    """Whether two http(s) URLs belong to one site (one registered domain, www. or not)."""
    both_http = all(urlsplit(candidate).scheme in HTTP_SCHEMES for candidate in (url, other))
    return both_http and not courlan.is_external(url, other, ignore_suffix=False)


def shared_fetcher(context: ConnectorContext) -> Fetcher:
    """The one :class:`Fetcher` of a connectors process, made from ``context.settings.fetch``."""
    return context.shared("fetcher", lambda: Fetcher(context.settings.fetch))


def _is_tracking(pair: str) -> bool:
    name = unquote_plus(pair.partition("=")[0]).lower()
    return name in TRACKING_PARAMETERS or name.startswith(TRACKING_PREFIXES)


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
        self._lock = threading.Lock()
        self._next_start: dict[str, float] = {}  # host → earliest monotonic start of its next request
        self._host_slots: dict[str, threading.BoundedSemaphore] = {}
        self._robots: dict[str, tuple[float, RobotFileParser | str]] = {}  # scheme://host → (fetched at, rules or why unreadable)

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
            self._wait_turn(hop)
            try:
                with self._slot(hop), self._client.stream(
                    "GET", hop, headers=headers, timeout=self._timeout, follow_redirects=False,
                ) as response:
                    location = response.headers.get("location")
                    if response.status_code in REDIRECT_STATUSES and location:
                        chain.append(self._next_hop(url, chain, response.url, location))
                        continue
                    return self._result(url, response, gunzip=gunzip)
            except (httpx.HTTPError, httpx.InvalidURL) as exc:  # InvalidURL is not an HTTPError
                raise _transport_error(url, hop, exc, self.settings.timeout_seconds) from exc

    def _slot(self, url: str) -> threading.BoundedSemaphore:
        """The semaphore bounding the requests in flight to ``url``'s host."""
        host = urlsplit(url).hostname or ""
        with self._lock:
            if host not in self._host_slots:
                self._host_slots[host] = threading.BoundedSemaphore(self.settings.max_connections_per_host)
            return self._host_slots[host]

    def check_robots(self, url: str) -> None:
        """Refuse ``url`` unless the robots.txt of its host lets ``user_agent`` fetch it (cached
        per host for :data:`ROBOTS_TTL_SECONDS`). No robots.txt (4xx) allows everything. One
        that cannot be fetched now (a 5xx, a network error) disallows everything until it
        answers, as RFC 9309 asks, and is asked again sooner: the page waits, retryable.

        :raises FetchError: disallowed (not retryable), or robots.txt unreachable (retryable).
        """
        if not self.settings.respect_robots:
            return
        parts = urlsplit(url)
        site = f"{parts.scheme}://{parts.netloc}"
        now = time.monotonic()
        with self._lock:
            cached = self._robots.get(site)
        if cached is None or now - cached[0] > ROBOTS_TTL_SECONDS:
            rules, ttl_start = self._read_robots(site), now
            if isinstance(rules, str):
                ttl_start = now - ROBOTS_TTL_SECONDS + ROBOTS_RETRY_SECONDS
            with self._lock:
                self._robots[site] = (ttl_start, rules)
                if len(self._robots) > 10_000:
                    self._robots = {key: value for key, value in self._robots.items() if now - value[0] <= ROBOTS_TTL_SECONDS}
            cached = (ttl_start, rules)
        rules = cached[1]
        if isinstance(rules, str):
            raise FetchError(url, f"waiting: the site's robots.txt cannot be read now ({rules}), so nothing of it is fetched", retryable=True)
        if not rules.can_fetch(self.settings.user_agent, url):
            raise FetchError(url, "refused: the site's robots.txt disallows this page for our user agent")

    def _read_robots(self, site: str) -> RobotFileParser | str:
        """The rules of ``site``'s robots.txt, or why it cannot be read now."""
        rules = RobotFileParser()
        try:
            result = self.fetch(f"{site}/robots.txt", accept="text/plain,*/*;q=0.5")
        except FetchError as exc:
            if exc.retryable:
                log.info("robots.txt of %s unreadable for now (%s); none of its pages is fetched meanwhile", site, exc.reason)
                return exc.reason
            rules.parse([])  # 404 and the like: no rules, everything allowed
            return rules
        rules.parse(result.text.splitlines())
        return rules

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
            body = self._decompressed(url, body)
        _refuse_binary_sniff(url, body, mime or "no content type")
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

    def _decompressed(self, url: str, body: bytes) -> bytes:
        cap = self.settings.max_bytes
        inflater = zlib.decompressobj(wbits=16 + zlib.MAX_WBITS)  # gzip framing
        try:
            data = inflater.decompress(body, cap + 1)  # never more than the cap: a gzip bomb stops here
        except zlib.error as exc:
            raise FetchError(url, f"corrupt gzip file: {exc}") from None
        if len(data) > cap:
            raise FetchError(url, f"gzip file too large: more than {cap} bytes once decompressed (stopped)")
        return data

    def _wait_turn(self, url: str) -> None:
        """Block until this request may start without breaking the per-host delay."""
        delay = self.settings.per_host_delay_seconds
        if delay <= 0:
            return
        host = urlsplit(url).hostname or ""
        with self._lock:
            now = time.monotonic()
            start = max(now, self._next_start.get(host, now))
            # Reserve the slot before sleeping, so concurrent callers queue up behind it.
            self._next_start[host] = start + delay
            if len(self._next_start) > 10_000:  # forget hosts whose delay has long passed
                self._next_start = {h: t for h, t in self._next_start.items() if t > now}
        if start > now:
            time.sleep(start - now)


def decode_body(body: bytes, content_type: str | None) -> tuple[str, str]:
    """``body`` as text and the charset used, by the order in the module docstring. Never raises."""
    for bom, encoding in BOMS:
        if body.startswith(bom):
            return body.decode(encoding, errors="replace"), encoding
    candidates = [_header_charset(content_type), _document_charset(body), "utf-8"]
    for charset in candidates:
        if charset and _known_codec(charset):
            try:
                return body.decode(charset), charset
            except (UnicodeDecodeError, LookupError):
                continue
    if charset_normalizer is not None:
        best = charset_normalizer.from_bytes(body[:200_000]).best()
        if best is not None and best.encoding:
            return body.decode(best.encoding, errors="replace"), best.encoding
    return body.decode("utf-8", errors="replace"), "utf-8"


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


def _refuse_binary_sniff(url: str, body: bytes, mime: str) -> None:
    head = body[:SNIFF_BYTES]
    for magic, kind in MAGIC_BYTES:
        if head.startswith(magic):
            raise FetchError(url, f"binary body ({kind}, served as {mime}), not an article or feed")
    if b"\x00" in head and not head.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE, codecs.BOM_UTF32_LE, codecs.BOM_UTF32_BE)):
        raise FetchError(url, f"binary body (NUL bytes in a body served as {mime}), not an article or feed")


def _header_charset(content_type: str | None) -> str | None:
    if not content_type:
        return None
    for parameter in content_type.split(";")[1:]:
        name, _, value = parameter.partition("=")
        if name.strip().lower() == "charset":
            return value.strip().strip("\"'") or None
    return None


def _document_charset(body: bytes) -> str | None:
    head = body[:2048]
    match = _XML_ENCODING.search(head) or _META_CHARSET.search(head)
    return match.group(1).decode("ascii") if match else None


def _known_codec(charset: str) -> bool:
    try:
        codecs.lookup(charset)
    except LookupError:
        return False
    return True
