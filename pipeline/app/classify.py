"""Classifying articles outside the pipeline, for ``amur classify``: a file, a URL, stdin or JSONL.

No transport is involved: the input is read (HTML is reduced to its article text with the
same extraction the connectors use), analysed, and printed as the ``classified`` message.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from pathlib import Path

from connectors.extract import extract_article
from connectors.fetch import Fetcher
from pipeline.core.errors import AmurError
from pipeline.core.settings import AmurSettings
from processors.analyze import Analyzer, synthetic_article

JSONL_BATCH = 64


def _looks_like_html(text: str) -> bool:
    head = text.lstrip()[:512].lower()
    return head.startswith(("<!doctype html", "<html")) or "<body" in head or "<article" in head


def _read(source: str, settings: AmurSettings) -> tuple[str, str]:
    """The raw text of ``source`` and the URL to record for it."""
    if source == "-":
        return sys.stdin.read(), ""
    if source.startswith(("http://", "https://")):
        with Fetcher(settings.fetch) as fetcher:
            return fetcher.fetch(source).text, source
    path = Path(source)
    try:
        return path.read_text(encoding="utf-8", errors="replace"), ""
    except OSError as exc:
        raise AmurError(f"{source}: cannot read: {exc.strerror or exc}") from None


def classify_one(source: str, settings: AmurSettings) -> str:
    """The classified message of one article as indented JSON."""
    raw, url = _read(source, settings)
    title = ""
    if _looks_like_html(raw):
        extracted = extract_article(raw, url or "about:blank")
        raw, title = extracted.text, extracted.title or ""
    result = Analyzer.from_settings(settings.model).analyze_text(raw, title=title, url=url)
    return result.model_dump_json(indent=2)


def _jsonl_articles(path: Path) -> Iterator[tuple[int, dict]]:
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except OSError as exc:
        raise AmurError(f"{path}: cannot read: {exc.strerror or exc}") from None
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            item = json.loads(line)
        except json.JSONDecodeError as exc:
            raise AmurError(f"{path}:{number}: not JSON ({exc.msg}); each line must be one JSON object") from None
        if not isinstance(item, dict) or not isinstance(item.get("text"), str):
            raise AmurError(f"{path}:{number}: needs a string field 'text' (optional: 'title', 'url')")
        yield number, item


def classify_jsonl(path: Path, settings: AmurSettings) -> Iterator[str]:
    """One compact JSON line per input line, loading the model once and analysing in batches."""
    analyzer = Analyzer.from_settings(settings.model)
    batch = []
    for _, item in _jsonl_articles(path):
        batch.append(synthetic_article(item["text"], item.get("title") or "", item.get("url") or ""))
        if len(batch) == JSONL_BATCH:
            yield from (result.model_dump_json() for result in analyzer.analyze(batch))
            batch = []
    if batch:
        yield from (result.model_dump_json() for result in analyzer.analyze(batch))
