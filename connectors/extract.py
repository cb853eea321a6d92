"""Main text and metadata of an article page, with trafilatura.

:func:`extract_article` runs ``trafilatura.bare_extraction`` in precision mode without
comments, so navigation, teasers and reader comments stay out of the text the processors
classify. A page whose main text is shorter than :data:`MIN_TEXT_CHARS` characters or
:data:`MIN_TEXT_WORDS` words (a gallery, a paywall teaser, an index page) raises
:class:`~pipeline.core.errors.ExtractionError` saying how much text the page had, or that its
paragraphs are all one text repeated (a placeholder or a broken template). Chinese and
Japanese characters count as one word each, as those scripts do not separate words.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass, field
from datetime import datetime
from urllib.parse import urlsplit

import lxml.html
import trafilatura
from lxml import etree

from connectors.dates import iso_datetime
from pipeline.core.errors import ExtractionError

__all__ = ["MIN_TEXT_CHARS", "MIN_TEXT_WORDS", "Extracted", "count_words", "extract_article"]

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
    words = count_words(text)
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


def _stated_site_name(name: str | None, url: str) -> str | None:
    """The outlet's name the page states; trafilatura's stand-in when it states none (the
    host name) is no name."""
    name = (name or "").strip()
    host = (urlsplit(url).hostname or "").removeprefix("www.")
    return name if name and name.lower().removeprefix("www.") != host else None


def count_words(text: str) -> int:
    """Words in ``text``: runs of non-space characters, each CJK character counted alone."""
    return len(_WORD.findall(text))


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
