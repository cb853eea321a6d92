"""Sitemap sources (``kind: sitemap``): sites without a feed, read through their sitemaps.

A poll GETs the source's URL conditionally, as a feed is, and reads it as one of:

* a **urlset** (https://www.sitemaps.org/protocol.html): one item per ``<url>``, dated by
  its ``<lastmod>``. A Google News sitemap's ``<news:news>`` adds the story's title,
  publication date and language, which then come first;
* a **sitemap index**: the children listed in it, newest ``<lastmod>`` first, at most
  :data:`MAX_CHILD_SITEMAPS` of them and none older than the source's age limit. An index
  inside an index is not followed (the protocol forbids it, and a loop must not be possible);
* a **text sitemap**: one http(s) URL per line;
* a site's **robots.txt**: its ``Sitemap:`` lines, read as an index.

Any of them may be a gzip file (``.xml.gz``, known by its content, not its name): it is
decompressed to at most ``fetch.max_bytes``. Every item's page is fetched and extracted as a
feed entry's is.

Sitemaps list a site's whole archive, so items dated more than ``max_age_days`` ago (3 days
unless the source says otherwise) are skipped; undated ones are kept, within the per-poll cap.

The XML is read with lxml, without DTDs, entities or network access, so an entity-expansion
bomb is refused rather than expanded. A document cut short (a truncated download) yields the
entries before the cut, with a warning; nothing readable at all is a
:class:`~pipeline.core.errors.FeedParseError` naming the line. When a child sitemap fails, the
others are read and the index's validators are not stored, so the next poll reads it again.
"""

from __future__ import annotations

import io
import logging
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from urllib.parse import urljoin, urlsplit

from lxml import etree

from connectors.dates import iso_datetime
from connectors.fetch import ACCEPT_SITEMAP, FetchResult
from connectors.pages import PageConnector
from connectors.urls import canonical_url
from pipeline.core.connector import Item, Listing, newest_first
from pipeline.core.errors import FeedParseError, SourceError
from pipeline.core.messages import primary_language, utc_now
from pipeline.core.settings import UrlOptions

__all__ = ["MAX_CHILD_SITEMAPS", "Sitemap", "SitemapConnector", "SitemapEntry", "parse_sitemap"]

MAX_CHILD_SITEMAPS = 5
NEWS_NAMESPACE = "http://www.google.com/schemas/sitemap-news/0.9"
FEED_ROOTS = {"rss": "an RSS feed", "RDF": "an RSS 1.0 feed", "feed": "an Atom feed"}

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class SitemapEntry:
    """One ``<url>`` of a urlset, one ``<sitemap>`` of an index, or one line of a text sitemap."""

    url: str
    modified: datetime | None = None  # <lastmod>
    title: str = ""  # <news:title>
    published: datetime | None = None  # <news:publication_date>
    language: str | None = None  # <news:language>

    @property
    def dated(self) -> datetime | None:
        return self.published or self.modified


@dataclass(frozen=True)
class Sitemap:
    """A parsed sitemap: ``kind`` is ``urlset``, ``index`` or ``text``."""

    kind: str
    entries: list[SitemapEntry] = field(default_factory=list)
    problem: str | None = None  # why reading stopped early, when the document is cut short


class SitemapConnector(PageConnector):
    """Polls one sitemap or sitemap index (see the module docstring)."""

    Options = UrlOptions

    default_max_age_days = 3

    def list_items(self, etag: str | None, last_modified: str | None) -> Listing:
        top = self.fetcher.fetch(self.url, etag=etag, last_modified=last_modified, accept=ACCEPT_SITEMAP, gunzip=True)
        if top.not_modified:
            return Listing(retry_after=top.retry_after, not_modified=True, update_hint=top.max_age)
        sitemap = self._read(top)
        complete = sitemap.problem is None
        entries = sitemap.entries
        if sitemap.kind == "index":
            entries, complete = self._children(sitemap.entries, complete)
        items = [
            Item(url=canonical_url(entry.url), title=entry.title, published_at=entry.dated, language=entry.language)
            for entry in entries
        ]
        # A child that failed, or a document cut short, is read again in full next time: no 304 for it.
        validators = (top.etag, top.last_modified) if complete else (None, None)
        return Listing(items, *validators, retry_after=top.retry_after, update_hint=top.max_age)

    def _read(self, fetched: FetchResult) -> Sitemap:
        sitemap = parse_sitemap(fetched.body, fetched.final_url)
        if sitemap.problem:
            log.warning(
                "sitemap cut short, using its %d entries: source=%s url=%s reason=%s",
                len(sitemap.entries), self.name, fetched.final_url, sitemap.problem,
            )
        return sitemap

    def _children(self, listed: list[SitemapEntry], complete: bool) -> tuple[list[SitemapEntry], bool]:
        """The pages of the newest children of an index, and whether every child was read."""
        max_age_days = self.source.max_age_days or self.default_max_age_days
        oldest = utc_now() - timedelta(days=max_age_days)
        recent = newest_first(
            [entry for entry in listed if entry.modified is None or entry.modified >= oldest], lambda entry: entry.modified,
        )
        pages: list[SitemapEntry] = []
        for child in recent[:MAX_CHILD_SITEMAPS]:
            try:
                sitemap = self._read(self.fetcher.fetch(child.url, accept=ACCEPT_SITEMAP, gunzip=True))
            except SourceError as exc:
                log.warning("child sitemap failed, the others are read: source=%s url=%s reason=%s", self.name, child.url, exc.reason)
                complete = False
                continue
            if sitemap.kind == "index":
                log.warning("sitemap index inside an index not followed: source=%s url=%s", self.name, child.url)
                continue
            complete = complete and sitemap.problem is None
            pages.extend(sitemap.entries)
        return pages, complete


def parse_sitemap(body: bytes, url: str) -> Sitemap:
    """The entries of a sitemap document (already decompressed) fetched from ``url``.

    :raises FeedParseError: nothing in it can be read as a sitemap; the reason says why
        (not XML at the first element, a feed rather than a sitemap, another root element).
    """
    if body.lstrip(b"\xef\xbb\xbf \t\r\n")[:1] != b"<":
        return _text_sitemap(body, url)
    entries: list[SitemapEntry] = []
    kind: str | None = None
    fields: dict[str, str] = {}
    parser = etree.iterparse(
        io.BytesIO(body), events=("start", "end"), resolve_entities=False, no_network=True, load_dtd=False,
        huge_tree=False, remove_comments=True,
    )
    try:
        for event, element in parser:
            name = etree.QName(element).localname
            if kind is None:  # the root element decides what the document is
                kind = _root_kind(name, url)
                continue
            if event == "start":
                if name in ("url", "sitemap"):
                    fields = {}
                continue
            if name in ("url", "sitemap"):
                entry = _entry(fields, url)
                if entry is not None:
                    entries.append(entry)
                element.clear()
            elif name in _ENTRY_FIELDS and etree.QName(element.getparent()).localname in ("url", "sitemap"):
                fields[_ENTRY_FIELDS[name]] = (element.text or "").strip()
            elif name in _NEWS_FIELDS and etree.QName(element).namespace == NEWS_NAMESPACE:
                fields[_NEWS_FIELDS[name]] = (element.text or "").strip()
    except etree.XMLSyntaxError as exc:
        reason = f"XML error at line {exc.lineno}: {exc.msg}"
        if not entries:
            raise FeedParseError(url, f"not a sitemap: {reason}") from None
        return Sitemap(kind or "urlset", entries, problem=reason)
    if kind is None:
        raise FeedParseError(url, "not a sitemap: empty document")
    return Sitemap(kind, entries)


# Element local names → SitemapEntry fields: the protocol's, children of <url>/<sitemap> (an
# image sitemap's <image:loc> is not the page), and Google News's, in its own namespace.
_ENTRY_FIELDS = {"loc": "url", "lastmod": "modified"}
_NEWS_FIELDS = {"title": "title", "publication_date": "published", "language": "language"}


def _root_kind(name: str, url: str) -> str:
    if name == "urlset":
        return "urlset"
    if name == "sitemapindex":
        return "index"
    if name in FEED_ROOTS:
        raise FeedParseError(url, f"not a sitemap: {FEED_ROOTS[name]} (<{name}> root); list it with kind: rss")
    raise FeedParseError(url, f"not a sitemap: <{name}> root element, not <urlset> or <sitemapindex>")


def _entry(fields: dict[str, str], base: str) -> SitemapEntry | None:
    location = fields.get("url", "")
    if not location:
        return None
    link = urljoin(base, location)
    if not link.startswith(("http://", "https://")):
        log.warning("sitemap entry without an http(s) location skipped: sitemap=%s loc=%r", base, location[:120])
        return None
    return SitemapEntry(
        url=link, modified=iso_datetime(fields.get("modified")), title=" ".join(fields.get("title", "").split()),
        published=iso_datetime(fields.get("published")), language=primary_language(fields.get("language")),
    )


def _text_sitemap(body: bytes, url: str) -> Sitemap:
    text = body.decode("utf-8-sig", errors="replace")
    if urlsplit(url).path.endswith("/robots.txt"):  # its Sitemap: lines make an index
        links = [line.split(":", 1)[1].strip() for line in text.splitlines() if line.lower().startswith("sitemap:")]
        if not links:
            raise FeedParseError(url, "not a sitemap: this robots.txt has no Sitemap: line")
        return Sitemap("index", [SitemapEntry(url=urljoin(url, link)) for link in links])
    links = [line.strip() for line in text.splitlines() if line.strip().startswith(("http://", "https://"))]
    if not links:
        raise FeedParseError(url, "not a sitemap: neither XML nor lines of http(s) URLs")
    return Sitemap("text", [SitemapEntry(url=link) for link in links])
