"""Main text and metadata of an article page, with trafilatura.

:func:`extract_article` runs ``trafilatura.bare_extraction`` in precision mode without
comments, so navigation, teasers and reader comments stay out of the text the processors
classify. A page whose main text is shorter than :data:`MIN_TEXT_CHARS` characters or
:data:`MIN_TEXT_WORDS` words (a gallery, a paywall teaser, an index page) raises
:class:`~pipeline.core.errors.ExtractionError` saying how much text the page had, or that its
paragraphs are all one text repeated (a placeholder or a broken template). Chinese and
Japanese characters count as one word each, as those scripts do not separate words.

Extraction is most of a connector's CPU, and the poll threads of one process share one
interpreter lock: :class:`ExtractorProcesses` runs it in worker processes
(``connectors.extract_processes``), so fetching goes on while pages are read, on every core.
"""

from __future__ import annotations

import itertools
import logging
import multiprocessing
import os
import re
import select
import signal
import threading
from collections.abc import Callable
from concurrent.futures import CancelledError, ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass, field
from datetime import datetime
from urllib.parse import urlsplit

import lxml.html
import trafilatura
from lxml import etree

from connectors.dates import iso_datetime
from pipeline.core.connector import ConnectorContext
from pipeline.core.errors import ExtractionError

__all__ = [
    "MIN_TEXT_CHARS", "MIN_TEXT_WORDS", "Extracted", "ExtractorProcesses", "count_words", "extract_article", "shared_extractor",
]

MIN_TEXT_CHARS = 200
MIN_TEXT_WORDS = 30
MIN_REPEATS = 3  # this many identical paragraphs and nothing else: a placeholder page, said as such

# htmldate options: only dates the page states in its markup (no guessing from body text),
# the original publication date rather than an update, with the time and offset when known.
DATE_OPTIONS = {"original_date": True, "extensive_search": False, "outputformat": "%Y-%m-%dT%H:%M:%S%z"}

_WORD = re.compile(r"[\u3040-\u30ff\u3400-\u9fff\uf900-\ufaff]|[^\s\u3040-\u30ff\u3400-\u9fff\uf900-\ufaff]+")
_HTML_LANG = re.compile(r"""<html\b[^>]*?\blang\s*=\s*["']?([a-zA-Z]{2,3})(?:[-_][a-zA-Z0-9]+)*""", re.IGNORECASE)

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Extracted:
    """What a page says about itself; any field may be empty except ``text``."""

    title: str
    text: str
    summary: str = ""
    authors: list[str] = field(default_factory=list)
    published_at: datetime | None = None  # aware, UTC
    language: str | None = None  # ISO 639 code from <html lang>, e.g. "en", "ru", "zh"
    canonical_url: str | None = None  # what the page says its address is (rel=canonical, og:url)
    site_name: str | None = None  # og:site_name, or what trafilatura reads as the outlet's name


def extract_article(html: str, url: str) -> Extracted:
    """The main text and metadata of the page ``html`` fetched from ``url``.

    :param html: the decoded page (``FetchResult.text``).
    :param url: the page's URL, used to resolve relative links and as the extraction label.
    :raises ExtractionError: when the page has no main text of at least
        :data:`MIN_TEXT_CHARS` characters and :data:`MIN_TEXT_WORDS` words.
    """
    try:
        document = trafilatura.bare_extraction(
            html, url=url, with_metadata=True, favor_precision=True, include_comments=False,
            include_images=False, include_links=False, date_extraction_params=DATE_OPTIONS,
        )
    except Exception as exc:  # a third-party parser on hostile input: a crash is this page's problem
        log.warning("trafilatura failed on %s: %r", url, exc)
        raise ExtractionError(url, f"extractor failed: {type(exc).__name__}: {exc}") from exc
    text = (document.text or "").strip() if document is not None else ""
    words = count_words(text, up_to=MIN_TEXT_WORDS)
    if not text or len(text) < MIN_TEXT_CHARS or words < MIN_TEXT_WORDS:
        raise ExtractionError(url, _why_no_text(html, text, words))
    return Extracted(
        title=(document.title or "").strip(),
        text=text,
        summary=(document.description or "").strip(),
        authors=_authors(document.author),
        published_at=iso_datetime(document.date),
        language=document.language or _html_language(html),
        canonical_url=document.url if document.url and document.url != url else None,
        site_name=_stated_site_name(document.sitename, url),
    )


def shared_extractor(context: ConnectorContext) -> ExtractorProcesses:
    """The one :class:`ExtractorProcesses` of a connectors process (``connectors.extract_processes``),
    its workers starting as soon as the first connector that reads pages is built."""

    def start() -> ExtractorProcesses:
        extractor = ExtractorProcesses(context.settings.connectors.extract_processes)
        extractor.start()
        return extractor

    return context.shared("extractor", start)


class ExtractorProcesses:
    """:func:`extract_article` in ``processes`` worker processes, started by :meth:`start` or
    at the first page (0: on the calling thread). Thread-safe: every poll thread of a
    connectors process shares it.

    :param extract: what the workers run, a module-level function (pickled by its name).

    The workers are forked from a server process that has imported the extractor once, so a
    worker starts in milliseconds. A worker that dies on a page (lxml crashing, the kernel
    killing it) breaks the pool and fails the pages it held: the pool is replaced, and each of
    them is tried once more on the new one, so only a page that kills a worker twice fails,
    with an :class:`~pipeline.core.errors.ExtractionError` saying so.
    """

    def __init__(self, processes: int, extract: Callable[[str, str], Extracted] = extract_article):
        self.processes = processes
        self._extract = extract
        self._pool: ProcessPoolExecutor | None = None
        self._closed = False
        self._lock = threading.Lock()

    def extract(self, html: str, url: str) -> Extracted:
        """:func:`extract_article` of the page, in a worker process.

        :raises ExtractionError: the page has no article text, a worker died on it twice, or
            the extractor was closed (the connectors are shutting down).
        """
        if self.processes == 0:
            return self._extract(html, url)
        broken = 0
        while broken < 2:
            pool = self._running_pool()
            if pool is None:
                raise self._closing(url)
            try:
                future = pool.submit(self._extract, html, url)
            except BrokenProcessPool:
                broken += 1
                self._replace(pool)
                continue
            except RuntimeError:  # the pool was shut down since: replaced by another thread, or closed
                if self._closed:
                    raise self._closing(url) from None
                continue
            try:
                return future.result()
            except BrokenProcessPool:
                broken += 1
                self._replace(pool)
            except CancelledError as exc:
                raise self._closing(url) from exc
        raise ExtractionError(url, "the extractor process died reading this page, twice")

    def start(self) -> None:
        """Start the workers now, in the background, so that the first page does not wait the
        second or so it takes a new server process to import the extractor."""
        if self.processes:
            threading.Thread(target=self._start_workers, name="extractor-start", daemon=True).start()

    def _start_workers(self) -> None:
        pool = self._running_pool()
        if pool is None:
            return
        try:
            for _ in range(self.processes):  # the pool forks a worker for each task no idle one takes
                pool.submit(os.getpid)
        except (BrokenProcessPool, RuntimeError):  # broken or closed since: extract() deals with that
            pass

    def close(self) -> None:
        """Stop the workers; pages still waiting fail as not extracted."""
        with self._lock:
            pool, self._pool, self._closed = self._pool, None, True
        if pool is not None:
            pool.shutdown(wait=True, cancel_futures=True)

    def _running_pool(self) -> ProcessPoolExecutor | None:
        """The pool, made if need be; ``None`` once closed."""
        with self._lock:
            if self._closed:
                return None
            if self._pool is None:
                self._pool = ProcessPoolExecutor(
                    self.processes, mp_context=_worker_context(), initializer=_end_with, initargs=(os.getpid(),),
                )
            return self._pool

    @staticmethod
    def _closing(url: str) -> ExtractionError:
        return ExtractionError(url, "not extracted: the connectors are shutting down")

    def _replace(self, broken: ProcessPoolExecutor) -> None:
        with self._lock:
            if self._pool is broken:  # the first of the threads that saw it break
                log.warning("an extractor process died; starting new ones")
                self._pool = None
        broken.shutdown(wait=False, cancel_futures=True)


def _worker_context() -> multiprocessing.context.BaseContext:
    # Forked from a server process with nothing but the extractor imported: not from the
    # connectors process, whose threads (Kafka's, the polls') a fork would copy mid-lock.
    context = multiprocessing.get_context("forkserver")
    context.set_forkserver_preload([__name__])
    return context


def _end_with(connectors: int) -> None:
    """In each worker: exit once the connectors process has ended, and only then or when it
    says so. Killed (SIGKILL, the OOM killer), it cannot stop its workers, and they would wait
    for pages for ever, keeping their server process alive, and the output pipes they share
    with it open. Ctrl-C reaches the whole process group: the connectors process stops its
    polls, and a worker dying under a page would only look like a page that kills it."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    try:
        ended = os.pidfd_open(connectors)  # readable once the process has ended, reaped or not
    except ProcessLookupError:
        os._exit(0)
    except OSError as exc:  # a kernel before Linux 5.3
        log.warning("extractor process cannot watch the connectors process (%s): it ends when told only", exc)
        return

    def watch() -> None:
        select.select([ended], [], [])
        os._exit(0)

    threading.Thread(target=watch, name="end-with-connectors", daemon=True).start()


def _stated_site_name(name: str | None, url: str) -> str | None:
    """The outlet's name the page states; trafilatura's stand-in when it states none (the
    host name) is no name."""
    name = (name or "").strip()
    host = (urlsplit(url).hostname or "").removeprefix("www.")
    return name if name and name.lower().removeprefix("www.") != host else None


def count_words(text: str, up_to: int | None = None) -> int:
    """Words in ``text``: runs of non-space characters, each CJK character counted alone;
    counting stops at ``up_to``, all that a threshold needs."""
    return sum(1 for _ in itertools.islice(_WORD.finditer(text), up_to))


def _authors(value: str | None) -> list[str]:
    # trafilatura joins several authors with "; ".
    return [name.strip() for name in (value or "").split(";") if name.strip()]


def _html_language(html: str) -> str | None:
    match = _HTML_LANG.search(html[:5000])
    return match.group(1).lower() if match else None


def _why_no_text(html: str, text: str, words: int) -> str:
    """The reason a page has no article text: how little there was, or that its paragraphs
    are one text repeated (the extractor keeps one copy, so the count alone would mislead)."""
    tree = _visible_tree(html)
    if tree is not None:
        paragraphs = [" ".join(paragraph.text_content().split()) for paragraph in tree.iter("p")]
        paragraphs = [paragraph for paragraph in paragraphs if paragraph]
        if len(paragraphs) >= MIN_REPEATS and len(set(paragraphs)) == 1:
            shown = paragraphs[0] if len(paragraphs[0]) <= 80 else paragraphs[0][:77] + "..."
            return f"no article text found: the page's {len(paragraphs)} paragraphs are all the same text ({shown!r})"
    if not text:
        return f"no article text found (page has {count_words(tree.text_content()) if tree is not None else 0} words of text)"
    return (
        f"no article text found (main text has {words} words, {len(text)} characters; "
        f"at least {MIN_TEXT_WORDS} words and {MIN_TEXT_CHARS} characters needed)"
    )


def _visible_tree(html: str) -> lxml.html.HtmlElement | None:
    """The page without scripts, styles and templates; ``None`` when lxml cannot read it."""
    try:
        # bytes, because lxml refuses a str that carries an XML encoding declaration
        tree = lxml.html.fromstring(html.encode("utf-8"), parser=lxml.html.HTMLParser(encoding="utf-8"))
    except (ValueError, etree.ParserError):
        return None
    for element in tree.xpath("//script|//style|//noscript|//template"):
        element.drop_tree()
    return tree
