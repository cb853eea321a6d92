"""Replay sources (``kind: replay``): backfill from an archive instead of the web.

The source's ``path:`` is one of:

* a **folder** of saved pages: every ``*.html``/``*.htm`` file in it and below, in name order.
  An article's address is the page's own canonical link (``<link rel=canonical>``/``og:url``),
  as the site that served it declared it, or else the file's ``file:`` URI;
* a **JSONL file**, one article per line: a JSON object with ``url``, ``title`` and ``text``
  (or ``html``, which is then extracted like a fetched page), and optionally ``summary``,
  ``published_at`` (ISO 8601), ``language`` and ``authors``;
* a **WARC file** (``.warc`` or ``.warc.gz``, read with warcio): every ``response`` record of
  an HTML page answered 200, at its ``WARC-Target-URI``.

Nothing is fetched from the network. Everything else is a feed's: each article is emitted once
(the seen store knows the archive's entries as it knows a feed's items, so replaying an archive
again, or after a crash, emits nothing twice), and a bad entry — a line that is not JSON, a
page with no text — is an item failure naming the line or file, while the rest goes on. An
archive unchanged since the last poll is not read again: its files' sizes and modification
times serve as its ETag. Each poll emits at most ``max_articles_per_poll``; while entries are
left over, the next poll comes after :data:`~pipeline.core.connector.BACKLOG_POLL_SECONDS`, so a
large archive is read through at full speed instead of one batch per interval.
"""

from __future__ import annotations

import hashlib
import logging
from dataclasses import dataclass
from pathlib import Path

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, ValidationError, model_validator
from warcio.archiveiterator import ArchiveIterator
from warcio.exceptions import ArchiveLoadFailed

from connectors.decoding import decode_body
from connectors.extract import extract_article
from connectors.pages import article_url, publication_date
from connectors.urls import canonical_url
from pipeline.core.connector import ConnectorContext, Item, Listing, PollingConnector
from pipeline.core.errors import ExtractionError, FeedParseError, SourceError, error_key
from pipeline.core.messages import Article, article_id, utc_now
from pipeline.core.settings import SourceConfig, SourceOptions
from pipeline.core.state import StateStore

__all__ = ["ArchivedArticle", "ReplayConnector"]

PAGE_SUFFIXES = (".html", ".htm")
HTML_TYPES = ("text/html", "application/xhtml+xml")

log = logging.getLogger(__name__)


class ArchivedArticle(BaseModel):
    """One line of a JSONL archive."""

    model_config = ConfigDict(extra="ignore")

    url: str = Field(pattern=r"^https?://")
    title: str = Field(min_length=1)
    text: str | None = None
    html: str | None = None
    summary: str = ""
    published_at: AwareDatetime | None = None
    language: str | None = None
    authors: list[str] = Field(default_factory=list)

    @model_validator(mode="after")
    def _has_content(self) -> ArchivedArticle:
        if not (self.text or self.html):
            raise ValueError("give the article's 'text' or its page's 'html'")
        return self


@dataclass(frozen=True)
class _Entry:
    """Where one listed item is in the archive: a file, or a byte offset in the JSONL/WARC file."""

    file: Path
    offset: int = 0
    line: int = 0


class ReplayOptions(SourceOptions):
    path: Path = Field(
        examples=["archive/2026-11.warc.gz"],
        description="What a replay source reads: a folder of saved HTML pages, a .jsonl file of articles, or a .warc/.warc.gz file",
    )

    @property
    def location(self) -> str:
        return str(self.path)


class ReplayConnector(PollingConnector):
    """Reads one archive: a folder of pages, a JSONL file or a WARC file (see the module docstring)."""

    Options = ReplayOptions
    drains_backlog = True

    def __init__(self, source: SourceConfig, state: StateStore, max_bytes: int):
        super().__init__(source, state)
        self.path = source.options.path
        self.max_bytes = max_bytes
        self._entries: dict[str, _Entry] = {}  # item url → where it is
        self._listed: tuple[str, list[Item]] | None = None  # the last listing and the stamp it was made at

    @classmethod
    def from_source(cls, source: SourceConfig, context: ConnectorContext) -> ReplayConnector:
        return cls(source, context.state, context.settings.fetch.max_bytes)

    def list_items(self, etag: str | None, last_modified: str | None) -> Listing:
        files = self._files()
        stamp = _stamp(files)
        if etag == stamp:
            return Listing(not_modified=True)
        if self._listed is not None and self._listed[0] == stamp:  # a backlog: the archive is read once
            return Listing(self._listed[1], etag=stamp)
        if self.path.is_dir():
            entries = {file.as_uri(): _Entry(file) for file in files}
            items = [Item(url=url) for url in entries]
        elif self.path.suffix == ".jsonl":
            items, entries = self._jsonl_items()
        else:
            items, entries = self._warc_items()
        self._entries, self._listed = entries, (stamp, items)
        return Listing(items, etag=stamp)

    def fetch_article(self, item: Item) -> Article:
        entry = self._entries[item.url]
        if self.path.is_dir():
            return self._page_article(item.url, self._read_file(entry.file, item.url), None, fallback_url=item.url)
        if self.path.suffix == ".jsonl":
            return self._jsonl_article(item.url, entry)
        return self._warc_article(item.url, entry)

    # --- listing -------------------------------------------------------------------------------

    def _files(self) -> list[Path]:
        if self.path.is_dir():
            return sorted(file for file in self.path.rglob("*") if file.suffix.lower() in PAGE_SUFFIXES and file.is_file())
        if self.path.is_file():
            if self.path.suffix != ".jsonl" and not self.path.name.endswith((".warc", ".warc.gz")):
                raise SourceError(str(self.path), "not a replay archive: give a folder of .html pages, a .jsonl file or a .warc/.warc.gz file")
            return [self.path]
        raise SourceError(str(self.path), "replay archive not found: no such file or folder (check the source's path:)")

    def _jsonl_items(self) -> tuple[list[Item], dict[str, _Entry]]:
        items: list[Item] = []
        entries: dict[str, _Entry] = {}
        with self.path.open("rb") as lines:
            offset, number = 0, 0
            for raw in lines:
                number += 1
                where = offset
                offset += len(raw)
                if not raw.strip():
                    continue
                try:
                    record = self._record(raw, number)
                except FeedParseError:
                    url = f"{self.path.resolve().as_uri()}#line={number}"  # fails again, for its item failure
                    entries[url] = _Entry(self.path, where, number)
                    items.append(Item(url=url))
                    continue
                url = canonical_url(record.url)
                entries[url] = _Entry(self.path, where, number)
                items.append(Item(url=url, title=record.title, summary=record.summary, published_at=record.published_at))
        return items, entries

    def _warc_items(self) -> tuple[list[Item], dict[str, _Entry]]:
        items: list[Item] = []
        entries: dict[str, _Entry] = {}
        try:
            with self.path.open("rb") as stream:
                records = ArchiveIterator(stream)
                for record in records:
                    target = _html_response_target(record)
                    offset = records.get_record_offset()  # reads the rest of the record
                    if not record.format.startswith("warc"):  # warcio reads any text as an old ARC record
                        raise ArchiveLoadFailed(f"the record at byte {offset} has no WARC/1.x header")
                    if target is None:
                        continue
                    url = canonical_url(target)
                    entries.setdefault(url, _Entry(self.path, offset))
                    items.append(Item(url=url))
        except ArchiveLoadFailed as exc:
            raise SourceError(str(self.path), f"not a readable WARC file: {exc}") from None
        return items, entries

    # --- articles ------------------------------------------------------------------------------

    def _record(self, raw: bytes, number: int) -> ArchivedArticle:
        try:
            return ArchivedArticle.model_validate_json(raw)
        except ValidationError as exc:
            first = exc.errors()[0]
            problem = "not JSON" if first["type"] == "json_invalid" else f"{error_key(first, '(line)')}: {first['msg']}"
            raise FeedParseError(str(self.path), f"line {number}: {problem}") from None

    def _jsonl_article(self, url: str, entry: _Entry) -> Article:
        with entry.file.open("rb") as lines:
            lines.seek(entry.offset)
            record = self._record(lines.readline(), entry.line)
        if record.text is not None:
            return Article(
                id=article_id(url), url=url, source=self.name, title=record.title, text=record.text,
                summary=record.summary, language=record.language, authors=record.authors,
                published_at=publication_date(record.published_at, None, utc_now()), fetched_at=utc_now(),
            )
        listed = Item(url=url, title=record.title, summary=record.summary, published_at=record.published_at,
                      authors=tuple(record.authors), language=record.language)
        return self._page_article(url, record.html, listed)

    def _warc_article(self, url: str, entry: _Entry) -> Article:
        with entry.file.open("rb") as stream:
            stream.seek(entry.offset)
            record = next(iter(ArchiveIterator(stream)))
            body = record.content_stream().read(self.max_bytes + 1)
        if len(body) > self.max_bytes:
            raise ExtractionError(url, f"archived page too large: more than {self.max_bytes} bytes (fetch.max_bytes)")
        html, _ = decode_body(body, record.http_headers.get_header("Content-Type"))
        return self._page_article(url, html, None)

    def _read_file(self, file: Path, url: str) -> str:
        try:
            body = file.read_bytes()
        except OSError as exc:
            raise SourceError(url, f"cannot read the saved page: {exc.strerror}") from None
        if len(body) > self.max_bytes:
            raise ExtractionError(url, f"saved page too large: {len(body)} bytes, the limit is {self.max_bytes} (fetch.max_bytes)")
        return decode_body(body, None)[0]

    def _page_article(self, url: str, html: str, listed: Item | None, *, fallback_url: str | None = None) -> Article:
        """An article from an archived page; a saved file's address is the canonical link it declares."""
        extracted = extract_article(html, url)
        if fallback_url is not None:
            declared = extracted.canonical_url or ""
            address = canonical_url(declared) if declared.startswith(("http://", "https://")) else fallback_url
        else:
            address = article_url(url, extracted.canonical_url)
        listed = listed or Item(url=url)
        return Article(
            id=article_id(address), url=address, source=self.name, title=extracted.title or listed.title,
            text=extracted.text, summary=listed.summary or extracted.summary, language=extracted.language or listed.language,
            authors=extracted.authors or list(listed.authors), site_name=extracted.site_name,
            published_at=publication_date(listed.published_at, extracted.published_at, utc_now()), fetched_at=utc_now(),
        )


def _html_response_target(record) -> str | None:
    """The URL of a WARC record holding an HTML page answered 200, else ``None``."""
    if record.rec_type != "response" or record.http_headers is None:
        return None
    if record.http_headers.get_statuscode() != "200":
        return None
    mime = (record.http_headers.get_header("Content-Type") or "").split(";")[0].strip().lower()
    target = record.rec_headers.get_header("WARC-Target-URI") or ""
    return target if mime in HTML_TYPES and target.startswith(("http://", "https://")) else None


def _stamp(files: list[Path]) -> str:
    """A fingerprint of the archive's files (names, sizes, modification times): its ETag."""
    digest = hashlib.sha256()
    for file in files:
        status = file.stat()
        digest.update(f"{file}\0{status.st_size}\0{status.st_mtime_ns}\n".encode())
    return f"replay-{digest.hexdigest()[:32]}"

