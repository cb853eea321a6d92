"""Where an article's dateline is: the place-and-date slug a wire story opens with, and where
its report begins past it (:func:`report_opening`).

"MOSCOW, December 21 /TASS/ –", "KHABAROVSK/HARBIN, May 5 (Reuters) -", "МОСКВА, 21 декабря.
/ТАСС/." and "新华社北京5月17日电（记者 王某）" name where the report was filed, not who takes
part in what it reports: a place named there is no party (:func:`processors.stories.regions_of`).

    >>> dateline_span("MOSCOW, December 21 /TASS/ - Amur Oblast and Heilongjiang signed ...", "")
    (0, 26)
"""

from __future__ import annotations

import re

# Capitals (at least two letters, slashes between places) at the start of the body, then
# a comma, an opening bracket or a dash; the slug ends at the first dash, "/TASS/." or
# closing bracket within a line's reach.
_CAPS = re.compile(
    r"\s*[A-ZА-ЯЁ][A-ZА-ЯЁ'’.\-]+(?:[ /][A-ZА-ЯЁ][A-ZА-ЯЁ'’.\-]+)*\s*(?:,|\(|\u2014|\u2013|-\s)"
    r"[^\n]{0,80}?(?:\s?[\u2014\u2013]\s?|\s-\s?|/[A-ZА-ЯЁ]+/\.?|\)\s*[\u2014\u2013-]?)"
)
# An agency or outlet, a place, a date and 电/讯: "新华社北京5月17日电", "中新网哈尔滨3月2日电（记者 …）".
_CHINESE = re.compile(r"\s*[^\s。，,]{1,8}?(?:社|网|报|台)[^\s。，,]{0,12}?\d{1,2}月\d{1,2}日(?:电|讯)(?:[（(][^）)]{0,30}[）)])?")


def dateline_span(text: str, title: str = "") -> tuple[int, int]:
    """The character span of the dateline that opens ``text``, or ``(0, 0)``; a leading copy of
    ``title`` (pages often repeat the headline above the body) is looked past."""
    start = 0
    stripped_title = title.strip()
    if stripped_title and text.lstrip().startswith(stripped_title):
        start = text.index(stripped_title) + len(stripped_title)
    for pattern in (_CAPS, _CHINESE):
        found = pattern.match(text, start) or pattern.match(text, _next_paragraph(text, start))
        if found:
            return found.start(), found.end()
    return 0, 0


def _next_paragraph(text: str, start: int) -> int:
    while start < len(text) and text[start].isspace():
        start += 1
    return start


# A wire's slug left at the start once its dateline is gone: "/TASS/. ", "/ТАСС/".
_WIRE_SLUG = re.compile(r"\A\s*/[A-ZА-ЯЁ]{2,}/\s*\.?\s*")
_OPENING_PUNCTUATION = " .:-–—"
_SENTENCE_PUNCTUATION = ".。!！?？"


def report_opening(text: str, title: str = "") -> str:
    """``text`` from where its report begins: past a copy of ``title`` run into its start (the
    headline atop the body), past its dateline and a wire slug. The evidence a reader sees
    and a story's lead both begin here."""
    headline = " ".join(title.split()).rstrip(_SENTENCE_PUNCTUATION).lower()
    if headline and " ".join(text.split()).lower().startswith(headline):
        text = _past_characters(text, sum(not char.isspace() for char in headline))
    start, end = dateline_span(text)
    return _WIRE_SLUG.sub("", text[:start] + text[end:]).lstrip(_OPENING_PUNCTUATION).strip()


def _past_characters(text: str, count: int) -> str:
    """``text`` after its first ``count`` characters that are not whitespace."""
    for index, char in enumerate(text):
        if count == 0:
            return text[index:]
        count -= not char.isspace()
    return ""
