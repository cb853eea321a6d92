"""Feed sources: list the feed's entries, fetch each new entry's page.

``kind: rss`` reads RSS 0.9x/1.0/2.0 and Atom 0.3/1.0 with feedparser, and a JSON Feed when
the source serves one; ``kind: jsonfeed`` (:class:`JsonFeedConnector`) expects JSON Feed 1.0
or 1.1 and says so when the body is anything else (:mod:`connectors.jsonfeed`).

:class:`FeedConnector` says only how to list a feed and how to turn an entry into an
article; dedup, the per-poll cap, retries, back-off and the validators are
:class:`~pipeline.core.connector.PollingConnector`'s. Listing:

1. GETs the feed conditionally (``If-None-Match`` / ``If-Modified-Since``); a 304 ends the
   poll with nothing new.
2. Parses the body with feedparser. A body it cannot read (HTML, empty, broken XML with no
   entries) raises :class:`~pipeline.core.errors.FeedParseError` with the reason; a feed that is
   not well-formed but still yields entries is used, with a warning.
3. Makes one :class:`~pipeline.core.connector.Item` per entry with a link, in its canonical
   spelling; an entry without one is skipped with a warning.

Each new entry's page is fetched and extracted by :func:`connectors.pages.article_from_page`.
"""

from __future__ import annotations

import calendar
import codecs
import io
import logging
import re
from datetime import UTC, datetime

import feedparser
import lxml.html
from lxml import etree

from connectors.fetch import ACCEPT_FEED, ACCEPT_JSON_FEED, FetchResult
from connectors.jsonfeed import is_json_feed, json_feed_items
from connectors.pages import PageConnector
from connectors.urls import canonical_url
from pipeline.core.connector import Item, Listing
from pipeline.core.errors import FeedParseError
from pipeline.core.messages import primary_language
from pipeline.core.settings import UrlOptions

__all__ = ["FeedConnector", "JsonFeedConnector", "parse_feed"]

_HTML_START = re.compile(rb"^\s*(?:<!--.*?-->\s*)*(?:<!doctype\s+html|<html[\s>])", re.IGNORECASE | re.DOTALL)
_XML_DECLARED_ENCODING = re.compile(r"""^(\s*<\?xml[^>]*?encoding\s*=\s*)["'][^"']*["']""")
_ENCODING_PROBLEMS = (feedparser.CharacterEncodingOverride, feedparser.CharacterEncodingUnknown)

log = logging.getLogger(__name__)


class FeedConnector(PageConnector):
    """Polls one RSS/Atom source (see the module docstring); built as a :class:`PageConnector`."""

    Options = UrlOptions

    accept = ACCEPT_FEED

    def list_items(self, etag: str | None, last_modified: str | None) -> Listing:
        feed = self.fetcher.fetch(self.url, etag=etag, last_modified=last_modified, accept=self.accept)
        if feed.not_modified:
            return Listing(retry_after=feed.retry_after, not_modified=True, update_hint=feed.max_age)
        items, hint = self.items(feed)
        hints = [moment for moment in (hint, feed.max_age) if moment is not None]
        return Listing(
            items, etag=feed.etag, last_modified=feed.last_modified, retry_after=feed.retry_after,
            update_hint=max(hints) if hints else None,
        )

    def items(self, feed: FetchResult) -> tuple[list[Item], float | None]:
        """The entries of a fetched feed, RSS, Atom or JSON Feed, and the feed's own hint of
        how often it changes (RSS ``ttl``, ``sy:updatePeriod``/``sy:updateFrequency``), in seconds."""
        if is_json_feed(feed):
            return json_feed_items(feed, source=self.name), None
        parsed = parse_feed(feed, source=self.name)
        language = primary_language(parsed.feed.get("language"))
        items = []
        for entry in parsed.entries:
            link = _entry_link(entry)
            if not link:  # nothing to fetch, and no id to remember it by: it would recur every poll
                log.warning("entry without a link skipped: source=%s title=%r", self.name, entry.get("title", "")[:80])
                continue
            items.append(Item(
                url=canonical_url(link), title=_plain(entry.get("title", "")), summary=_plain(entry.get("summary", "")),
                published_at=_entry_time(entry), authors=tuple(_entry_authors(entry)), language=language,
            ))
        return items, _update_hint(parsed.feed)


class JsonFeedConnector(FeedConnector):
    """``kind: jsonfeed``: a JSON Feed source; any other body is a clear error, not a guess."""

    accept = ACCEPT_JSON_FEED

    def items(self, feed: FetchResult) -> tuple[list[Item], float | None]:
        return json_feed_items(feed, source=self.name), None


def parse_feed(feed: FetchResult, *, source: str = "") -> feedparser.FeedParserDict:
    """Parse a fetched feed; raise :class:`FeedParseError` when it yields no feed at all.

    feedparser gets the raw bytes and the response headers, so it applies the feed's own
    charset rules. When it had to override or guess the charset, the feed is parsed again
    from ``FetchResult.text`` (the fetcher's decoding, which also tries charset detection).
    """
    parsed = _parse(feed.body, feed.response_headers())
    if isinstance(parsed.get("bozo_exception"), _ENCODING_PROBLEMS):
        text = _XML_DECLARED_ENCODING.sub(r'\1"utf-8"', feed.text, count=1)
        headers = {**feed.response_headers(), "content-type": "application/xml; charset=utf-8"}
        reparsed = _parse(text.encode("utf-8"), headers)
        if len(reparsed.entries) >= len(parsed.entries):
            parsed = reparsed
    if not parsed.entries:
        problem = _not_a_feed(parsed, feed)
        if problem:
            raise FeedParseError(feed.url, problem)
    elif parsed.get("bozo"):
        log.warning(
            "feed is not well-formed, using its %d entries: source=%s feed_url=%s reason=%s",
            len(parsed.entries), source, feed.url, _bozo_reason(parsed["bozo_exception"], feed.body),
        )
    return parsed


def _parse(body: bytes, headers: dict[str, str]) -> feedparser.FeedParserDict:
    try:
        # BytesIO, never the bytes themselves: feedparser treats a string as a URL or path.
        return feedparser.parse(io.BytesIO(body), response_headers=headers)
    except Exception as exc:  # a third-party parser on hostile input
        raise FeedParseError(headers.get("content-location", ""), f"feedparser failed: {type(exc).__name__}: {exc}") from exc


def _not_a_feed(parsed: feedparser.FeedParserDict, feed: FetchResult) -> str | None:
    """Why a parse without entries is no feed; ``None`` for a real feed that is just empty."""
    mime = (feed.content_type or "no content type").split(";")[0].strip()
    if not feed.body.strip():
        return "not a feed: empty body"
    if _HTML_START.match(feed.body[:4096]):
        return f"not a feed: <html> document (served as {mime})"
    if parsed.get("bozo"):
        return _bozo_reason(parsed["bozo_exception"], feed.body)
    if not parsed.get("version"):
        return f"not a feed: no RSS or Atom root element (served as {mime})"
    return None


def _bozo_reason(exc: Exception, body: bytes) -> str:
    if hasattr(exc, "getLineNumber") and hasattr(exc, "getMessage"):  # xml.sax.SAXParseException
        # feedparser puts a line with an XML declaration before a body that has none.
        added = 0 if body.removeprefix(codecs.BOM_UTF8).startswith(b"<?xml") else 1
        return f"XML error at line {max(1, exc.getLineNumber() - added)}: {exc.getMessage()}"
    if isinstance(exc, feedparser.NonXMLContentType):
        return f"not a feed: {exc}"
    return f"not a feed: {type(exc).__name__}: {exc}"


def _entry_timestamp(entry: feedparser.FeedParserDict) -> float | None:
    moment = entry.get("published_parsed") or entry.get("updated_parsed")
    return float(calendar.timegm(moment)) if moment else None


def _entry_time(entry: feedparser.FeedParserDict) -> datetime | None:
    timestamp = _entry_timestamp(entry)  # feedparser's parsed times are UTC
    return datetime.fromtimestamp(timestamp, UTC) if timestamp is not None else None


def _entry_link(entry: feedparser.FeedParserDict) -> str | None:
    link = entry.get("link")
    if link and link == entry.get("id") and not link.startswith(("http://", "https://")):
        # feedparser stands an Atom entry's id (a tag: URI) in for a missing text/html link
        alternates = [each.get("href") for each in entry.get("links", []) if each.get("rel") == "alternate" and each.get("href")]
        link = alternates[0] if alternates else None
    if not link:  # RSS <guid isPermaLink="true"> without <link>
        guid = entry.get("id") or ""
        link = guid if guid.startswith(("http://", "https://")) else None
    if link and link.startswith("file://") and not link.startswith("file:///"):
        # feedparser drops the slashes after "scheme://", so file:///etc/passwd arrives as
        # file://etc/passwd; the refusal must name the link as the feed wrote it.
        link = "file:///" + link.removeprefix("file://")
    return link.strip() if link else None


def _entry_authors(entry: feedparser.FeedParserDict) -> list[str]:
    names = [author.get("name", "").strip() for author in entry.get("authors", [])]
    return [name for name in names if name] or ([entry["author"].strip()] if entry.get("author") else [])


def _plain(html: str) -> str:
    """Text of a feed field that may hold HTML (summaries often do), on one line."""
    if "<" in html:
        try:
            html = lxml.html.fromstring(f"<div>{html}</div>").text_content()
        except (ValueError, etree.ParserError):
            pass
    return " ".join(html.split())


SYNDICATION_PERIODS = {"hourly": 3_600, "daily": 86_400, "weekly": 604_800, "monthly": 2_592_000, "yearly": 31_536_000}


# A hint of more than a year (in minutes, or updates per period) is no hint but a feed's absurdity.
MAX_HINT_COUNT = 525_600


def _count(value: object) -> int | None:
    """A positive whole number a feed states, or None when it states none or an absurd one."""
    text = str(value).strip()
    if not text.isdigit() or len(text) > len(str(MAX_HINT_COUNT)):
        return None
    number = int(text)
    return number if 0 < number <= MAX_HINT_COUNT else None


def _update_hint(channel: feedparser.FeedParserDict) -> float | None:
    """Seconds between updates the feed announces: RSS ``<ttl>`` minutes, or the syndication
    module's period divided by its frequency; ``None`` when it says nothing usable."""
    hints = []
    ttl = _count(channel.get("ttl", ""))
    if ttl:
        hints.append(ttl * 60.0)
    period = SYNDICATION_PERIODS.get(str(channel.get("sy_updateperiod", "")).strip().lower())
    if period:
        hints.append(period / (_count(channel.get("sy_updatefrequency", "1")) or 1))
    return max(hints) if hints else None


