"""RSS and Atom sources: poll the feed, fetch each new entry's page, extract its article.

One :class:`FeedConnector` per enabled source in ``sources.yaml``. A poll:

1. GETs the feed conditionally (``If-None-Match`` / ``If-Modified-Since`` from the state
   store); a 304 ends the poll with nothing new.
2. Parses the body with feedparser. A body it cannot read (HTML, empty, broken XML with no
   entries) raises :class:`~pipeline.errors.FeedParseError` with the reason; a feed that is
   not well-formed but still yields entries is used, with a warning.
3. Takes the entries newest first, skips those already emitted or given up (by article id,
   the hash of the canonical link) and fetches at most ``max_articles_per_poll`` pages.
   A page that fails is an :class:`~connectors.base.ItemFailure` and is counted in the
   state store; it never stops the other entries.

The validators (ETag, Last-Modified) of a changed feed are stored only by :meth:`commit`,
and only when the poll dealt with every entry (none left over by the per-poll limit, none
waiting for a retry): otherwise a crash before commit, or a 304 next time, would hide
entries that still need work.

Next poll: ``poll_interval_seconds``, or the server's ``Retry-After`` clamped to
[30 s, 1 day]; after a failed poll, ``interval × 2^failures`` capped at 1 day.
"""

from __future__ import annotations

import calendar
import codecs
import io
import logging
import re
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta

import feedparser
import lxml.html
from lxml import etree

from connectors.base import Connector, ItemFailure, PollResult
from connectors.extract import extract_article
from connectors.fetch import ACCEPT_FEED, ACCEPT_HTML, Fetcher, FetchResult, canonical_url
from pipeline.errors import FeedParseError, FetchError, SourceError
from pipeline.messages import Article, article_id, utc_now
from pipeline.settings import SourceConfig
from pipeline.state import StateStore

__all__ = ["MAX_INTERVAL_SECONDS", "MIN_RETRY_AFTER_SECONDS", "FeedConnector", "parse_feed"]

MIN_RETRY_AFTER_SECONDS = 30.0
MAX_INTERVAL_SECONDS = 86_400.0
MAX_ITEM_ATTEMPTS = 3

_HTML_START = re.compile(rb"^\s*(?:<!--.*?-->\s*)*(?:<!doctype\s+html|<html[\s>])", re.IGNORECASE | re.DOTALL)
_XML_DECLARED_ENCODING = re.compile(r"""^(\s*<\?xml[^>]*?encoding\s*=\s*)["'][^"']*["']""")
_ENCODING_PROBLEMS = (feedparser.CharacterEncodingOverride, feedparser.CharacterEncodingUnknown)

log = logging.getLogger(__name__)


class FeedConnector(Connector):
    """Polls one RSS/Atom source (see the module docstring).

    :param source: the source's entry in ``sources.yaml``.
    :param fetcher: the shared HTTP client.
    :param state: the shared state store (tables set up).
    """

    def __init__(self, source: SourceConfig, fetcher: Fetcher, state: StateStore):
        self.source = source
        self.name = source.name
        self.url = str(source.url)
        self.fetcher = fetcher
        self.state = state
        self.next_poll_in = float(source.poll_interval_seconds)
        self._validators: tuple[str | None, str | None] | None = None  # to store on commit

    def start(self) -> None:
        due = self.state.get(self.name).next_poll_at
        self.next_poll_in = max(0.0, (due - utc_now()).total_seconds()) if due else 0.0

    def poll(self) -> PollResult:
        previous = self.state.get(self.name)
        self._validators = None
        try:
            feed = self.fetcher.fetch(self.url, etag=previous.etag, last_modified=previous.last_modified, accept=ACCEPT_FEED)
            parsed = None if feed.not_modified else parse_feed(feed, source=self.name)
        except SourceError as exc:
            self._record_failure(exc, previous.consecutive_failures + 1)
            raise
        self.next_poll_in = _interval(self.source.poll_interval_seconds, feed.retry_after)
        # Until commit, keep the validators that were sent: a crash now must not turn into a 304.
        self.state.record_success(self.name, previous.etag, previous.last_modified, _at(self.next_poll_in))
        if parsed is None:
            log.info("feed not modified: source=%s feed_url=%s", self.name, self.url)
            return PollResult(next_poll_in=self.next_poll_in)
        articles, failures, complete = self._new_articles(parsed)
        # Validators only when nothing is left for later; else the next poll must see the entries again.
        self._validators = (feed.etag, feed.last_modified) if complete else (None, None)
        log.info(
            "feed polled: source=%s feed_url=%s entries=%d articles=%d failures=%d",
            self.name, self.url, len(parsed.entries), len(articles), len(failures),
        )
        return PollResult(articles=articles, failures=failures, next_poll_in=self.next_poll_in)

    def commit(self, articles: Sequence[Article]) -> None:
        self.state.mark_emitted(self.name, [(article.id, article.url) for article in articles])
        if self._validators is not None:
            self.state.set_validators(self.name, *self._validators)
            self._validators = None

    def _new_articles(self, parsed: feedparser.FeedParserDict) -> tuple[list[Article], list[ItemFailure], bool]:
        by_id: dict[str, tuple[str, feedparser.FeedParserDict]] = {}
        failures: list[ItemFailure] = []
        for entry in _newest_first(parsed.entries):
            link = _entry_link(entry)
            if not link:  # nothing to fetch, and no id to remember it by: it would recur every poll
                log.warning("entry without a link skipped: source=%s title=%r", self.name, entry.get("title", "")[:80])
                continue
            url = canonical_url(link)
            by_id.setdefault(article_id(url), (url, entry))  # newest first: a repeated link keeps its newest entry
        unseen = self.state.unseen(self.name, list(by_id))
        todo = [(key, *by_id[key]) for key in by_id if key in unseen]  # dicts keep the newest-first order
        limit = self.source.max_articles_per_poll
        complete = len(todo) <= limit
        feed_language = _language(parsed.feed.get("language"))
        articles: list[Article] = []
        for key, url, entry in todo[:limit]:
            try:
                articles.append(self._article(key, url, entry, feed_language))
            except SourceError as exc:
                gave_up = self.state.record_item_failure(self.name, key, url, str(exc), permanent=not exc.retryable, max_attempts=MAX_ITEM_ATTEMPTS)
                complete = complete and gave_up
                failures.append(ItemFailure(url, exc, gave_up=gave_up))
                log.warning("entry failed: source=%s url=%s gave_up=%s reason=%s", self.name, url, gave_up, exc.reason)
        return articles, failures, complete

    def _article(self, key: str, url: str, entry: feedparser.FeedParserDict, feed_language: str | None) -> Article:
        page = self.fetcher.fetch(url, accept=ACCEPT_HTML)
        extracted = extract_article(page.text, page.final_url)
        return Article(
            id=key,
            url=url,
            source=self.name,
            title=extracted.title or _plain(entry.get("title", "")),
            text=extracted.text,
            summary=_plain(entry.get("summary", "")) or extracted.summary,
            language=extracted.language or feed_language,
            authors=extracted.authors or _entry_authors(entry),
            published_at=_entry_time(entry) or extracted.published_at,
            fetched_at=utc_now(),
        )

    def _record_failure(self, exc: SourceError, failures: int) -> None:
        retry_after = exc.retry_after if isinstance(exc, FetchError) else None
        if retry_after is not None:
            self.next_poll_in = _interval(self.source.poll_interval_seconds, retry_after)
        else:
            self.next_poll_in = min(self.source.poll_interval_seconds * 2.0 ** min(failures, 20), MAX_INTERVAL_SECONDS)
        self.state.record_failure(self.name, str(exc), _at(self.next_poll_in))
        log.warning(
            "feed failed: source=%s feed_url=%s failures=%d retry_in=%.0fs reason=%s",
            self.name, self.url, failures, self.next_poll_in, exc.reason,
        )


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


def _newest_first(entries: list) -> list:
    # Undated entries keep their feed order, after the dated ones (sorted() is stable).
    return sorted(entries, key=lambda entry: _entry_timestamp(entry) or float("-inf"), reverse=True)


def _entry_timestamp(entry: feedparser.FeedParserDict) -> float | None:
    moment = entry.get("published_parsed") or entry.get("updated_parsed")
    return float(calendar.timegm(moment)) if moment else None


def _entry_time(entry: feedparser.FeedParserDict) -> datetime | None:
    timestamp = _entry_timestamp(entry)  # feedparser's parsed times are UTC
    return datetime.fromtimestamp(timestamp, UTC) if timestamp is not None else None


def _entry_link(entry: feedparser.FeedParserDict) -> str | None:
    link = entry.get("link")
    if not link:  # RSS <guid isPermaLink="true"> without <link>
        guid = entry.get("id") or ""
        link = guid if guid.startswith(("http://", "https://")) else None
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


def _language(value: str | None) -> str | None:
    """The primary language subtag of a feed's ``<language>`` ("en-us" → "en")."""
    if not value:
        return None
    return re.split(r"[-_]", value.strip())[0].lower() or None


def _interval(base: int, retry_after: float | None) -> float:
    if retry_after is None:
        return float(base)
    return min(max(retry_after, MIN_RETRY_AFTER_SECONDS), MAX_INTERVAL_SECONDS)


def _at(seconds: float) -> datetime:
    return utc_now() + timedelta(seconds=seconds)
