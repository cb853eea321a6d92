"""A story's lead: the first real sentences of its article's body, as a subscriber reads them.

Extracted pages open with what is not the story: the headline again, a URL, a breadcrumb
("Home > Harbin Today > Economy"), an image's file name, a date or time on a line of its
own, a byline, a dateline. :func:`lead` looks past all of them and keeps whole sentences up
to ``limit`` characters; a first sentence longer than that is cut at a word (or, in Chinese,
a character) and ends with an ellipsis, never mid-word.

    >>> lead("Bridge opens\\n\\nHome > News > Region\\n\\nMOSCOW, May 5 /TASS/ - The bridge opened. It links two banks.", "Bridge opens")
    'The bridge opened. It links two banks.'
"""

from __future__ import annotations

import re

from processors.datelines import report_opening
from processors.languages import HAN

LEAD_CHARS = 300
ELLIPSIS = "…"

_URL = re.compile(r"(?:https?://|www\.)\S+", re.IGNORECASE)
_IMAGE_FILE = re.compile(r"\S+\.(?:jpe?g|png|gif|webp|svg|bmp)\b", re.IGNORECASE)
_BREADCRUMB = re.compile(r"[>›»|/]")
_MONTHS = (
    r"jan\w*|feb\w*|mar\w*|apr\w*|may|jun\w*|jul\w*|aug\w*|sep\w*|oct\w*|nov\w*|dec\w*|"
    r"январ\w*|феврал\w*|март\w*|апрел\w*|ма[йя]|июн\w*|июл\w*|август\w*|сентябр\w*|октябр\w*|ноябр\w*|декабр\w*"
)
# A line that is only a date, a time or both: "18.11.2022 12:30", "November 18, 2022", "18 ноября 2022 г.", "2022年11月18日 10:20".
_DATE_LINE = re.compile(
    rf"(?:\d{{1,4}}|{_MONTHS}|[年月日号時时分]|[\s.,:/\-–—]|г\.?|года?|am|pm|utc|gmt|msk|мск|updated|обновлено)+",
    re.IGNORECASE,
)
_BYLINE = re.compile(r"(?:by|from|source|photo|автор|текст|фото|источник|记者|作者|来源|编辑|责编)\b\s*[:：]?\s*\S", re.IGNORECASE)
_SENTENCE_END = re.compile(r"(?<=[.!?…])\s+|(?<=[。！？])")
_BYLINE_MAX = 80
_BREADCRUMB_MAX = 160


def lead(text: str, title: str = "", limit: int = LEAD_CHARS) -> str:
    """The opening sentences of ``text`` past its clutter, at most ``limit`` characters."""
    body = _past_clutter(text, title)
    if not body:
        return ""
    kept = ""
    for sentence in _SENTENCE_END.split(body):
        candidate = f"{kept} {sentence}".strip() if kept and not _is_cjk(sentence[:1]) else kept + sentence
        if len(candidate) > limit:
            break
        kept = candidate
    return kept or _cut(body, limit)


def _past_clutter(text: str, title: str) -> str:
    """The body from its first line of prose on, its dateline removed, on one line."""
    lines = [" ".join(line.split()) for line in text.splitlines()]
    title_key = _key(title)
    start = 0
    while start < len(lines) and _is_clutter(lines[start], title_key):
        start += 1
    return report_opening(" ".join(line for line in lines[start:] if line), title)


def _is_clutter(line: str, title_key: str) -> bool:
    if not line:
        return True
    if title_key and _key(line) == title_key:
        return True
    without = _IMAGE_FILE.sub("", _URL.sub("", line)).strip(" |•·-–—")
    if not without:
        return True  # only a link or a file name
    if _DATE_LINE.fullmatch(line):
        return True
    if len(line) <= _BREADCRUMB_MAX and len(_BREADCRUMB.findall(line)) >= 2 and not _SENTENCE_END.search(line):
        return True
    return len(line) <= _BYLINE_MAX and bool(_BYLINE.match(line)) and not line.endswith((".", "。"))


def _cut(text: str, limit: int) -> str:
    head = text[:limit - len(ELLIPSIS)]
    if not _is_cjk(head[-1:]) and " " in head and not text[len(head):len(head) + 1].isspace():
        head = head[: head.rfind(" ")]
    return head.rstrip(" ,;:-–—") + ELLIPSIS


def _is_cjk(char: str) -> bool:
    return bool(char) and HAN.fullmatch(char) is not None


def _key(text: str) -> str:
    return " ".join(text.lower().split())
