"""JSON Feed sources (``kind: jsonfeed``): JSON Feed 1.0 and 1.1, https://www.jsonfeed.org/.

The listing is read with pydantic models of the published spec; everything else — the
conditional GET, dedup, retries, back-off, fetching each new item's page — is the RSS
connector's, whose ``kind: rss`` also reads a JSON Feed when a source serves one
(:func:`is_json_feed`). An item's page is its ``url`` (or ``external_url``); an item with
neither is skipped with a warning, as an RSS entry without a link is.
"""

from __future__ import annotations

import json
import logging
from datetime import datetime
from urllib.parse import urljoin

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from connectors.dates import iso_datetime
from connectors.fetch import FetchResult
from connectors.urls import canonical_url
from pipeline.core.connector import Item
from pipeline.core.errors import FeedParseError, error_key
from pipeline.core.messages import primary_language

__all__ = ["is_json_feed", "json_feed_items"]

VERSIONS = ("https://jsonfeed.org/version/1", "https://jsonfeed.org/version/1.1")
# Early feeds wrote the version URL with http:, which readers have always accepted.
_KNOWN_VERSIONS = {*VERSIONS, *(version.replace("https:", "http:", 1) for version in VERSIONS)}

log = logging.getLogger(__name__)


class _Loose(BaseModel):
    # Feeds carry extensions (keys starting with "_") and fields newer than this reader.
    model_config = ConfigDict(extra="ignore")


class _Author(_Loose):
    name: str | None = None


class _Entry(_Loose):
    id: str | int | None = None  # required by the spec, missing in some real feeds: the url stands in
    url: str | None = None
    external_url: str | None = None
    title: str | None = None
    summary: str | None = None
    content_text: str | None = None
    date_published: str | None = None  # RFC 3339; a bad one is dropped, not the whole feed
    date_modified: str | None = None
    author: _Author | None = None  # 1.0
    authors: list[_Author] = Field(default_factory=list)  # 1.1
    language: str | None = None  # 1.1


class _Document(_Loose):
    version: str
    title: str | None = None
    home_page_url: str | None = None
    language: str | None = None  # 1.1
    items: list[_Entry]


def is_json_feed(feed: FetchResult) -> bool:
    """Whether a fetched body is a JSON Feed (by its type, or by a JSON object naming a version)."""
    mime = (feed.content_type or "").split(";")[0].strip().lower()
    return mime in ("application/feed+json", "application/json") or feed.text.lstrip()[:1] == "{"


def json_feed_items(feed: FetchResult, *, source: str = "") -> list[Item]:
    """The items of a JSON Feed, each with its page's canonical URL.

    :raises FeedParseError: not JSON, not a JSON Feed of a known version, or an invalid one
        (the reason names the first bad field).
    """
    try:
        data = json.loads(feed.text)
    except json.JSONDecodeError as exc:
        raise FeedParseError(feed.url, f"not a JSON Feed: invalid JSON at line {exc.lineno}, column {exc.colno}: {exc.msg}") from None
    if not isinstance(data, dict) or data.get("version") not in _KNOWN_VERSIONS:
        version = data.get("version") if isinstance(data, dict) else None
        raise FeedParseError(feed.url, f"not a JSON Feed: version {version!r} is none of {', '.join(VERSIONS)}")
    try:
        document = _Document.model_validate(data)
    except ValidationError as exc:
        first = exc.errors()[0]
        raise FeedParseError(feed.url, f"invalid JSON Feed: {error_key(first, '(document)')}: {first['msg']}") from None
    # Relative item URLs are relative to the site (the spec's home_page_url), else to the feed.
    base = urljoin(feed.final_url, document.home_page_url.strip()) if document.home_page_url else feed.final_url
    items = []
    for entry in document.items:
        link = (entry.url or entry.external_url or "").strip()
        if not link:
            log.warning("item without a url skipped: source=%s id=%r", source, str(entry.id)[:80])
            continue
        authors = [author.name for author in [*entry.authors, *([entry.author] if entry.author else [])] if author.name]
        items.append(Item(
            url=canonical_url(urljoin(base, link)), title=" ".join((entry.title or "").split()),
            summary=" ".join((entry.summary or entry.content_text or "").split())[:2_000],
            published_at=_first(iso_datetime(entry.date_published, naive_is_utc=False), iso_datetime(entry.date_modified, naive_is_utc=False)), authors=tuple(authors),
            language=primary_language(entry.language or document.language),
        ))
    return items


def _first(*moments: datetime | None) -> datetime | None:
    return next((moment for moment in moments if moment is not None), None)
