"""Words and phrases: a text split into words once, and lists of phrases found in it in one
pass over the words, longest first.

The gazetteer's names (:mod:`processors.gazetteer`) and the classifier's lexicons
(:mod:`processors.classify`) are both :class:`PhraseIndex` es over the same :class:`Tokens`.
Matching folds case and Latin diacritics; ``word*`` in a phrase matches any word it starts;
the words of a phrase must stand together in the text (:data:`_JOINER_RE`).
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Generic, TypeVar

from processors.languages import HAN_RANGES

# A CJK character is a word of its own (Chinese has no spaces); any other run of word
# characters is one word.
TOKEN_RE = re.compile(rf"[{HAN_RANGES}]|[^\W{HAN_RANGES}]+")
# What may stand between two words of one phrase: a short run of spaces, hyphens, dots,
# apostrophes, brackets or signs ("St. Petersburg", "People's", "Sakha (Yakutia)", "En+
# Group") — never a line break or clause punctuation, so a phrase does not run across
# sentences.
_JOINER_RE = re.compile(r"[ \t\u00a0\-\u2010-\u2014'\u2019.()&/+]{0,3}")


# Latin letters with diacritics (Latin-1 Supplement to Latin Extended-B) and their ASCII base letter.
_FOLDED = {
    code: base for code in range(0xC0, 0x250)
    if (base := unicodedata.normalize("NFD", chr(code))[0]).isascii() and base.isalpha() and base != chr(code)
}


class Tokens:
    """A text split into lower-cased words; each word's character offsets are worked out
    only when first asked for, because most texts of a news stream need none."""

    __slots__ = ("text", "lowered", "words", "_spans")

    def __init__(self, text: str):
        self.text = text
        lowered = text.lower()
        if len(lowered) != len(text):
            # A few characters lower-case to two ("İ"): keep those as they are, so that
            # offsets in ``lowered`` stay offsets in ``text``.
            lowered = "".join(c.lower() if len(c.lower()) == 1 else c for c in text)
        if not lowered.isascii():
            # Accented Latin letters read as their base letter, one for one: pinyin with tones
            # ("Hēilóngjiāng") and "Türkiye" match as written without.
            lowered = lowered.translate(_FOLDED)
        self.lowered = lowered
        self.words: list[str] = TOKEN_RE.findall(lowered)
        self._spans: list[tuple[int, int]] | None = None

    def __len__(self) -> int:
        return len(self.words)

    def span(self, index: int) -> tuple[int, int]:
        """Start and end offsets of word ``index`` in the text."""
        if self._spans is None:
            self._spans = [m.span() for m in TOKEN_RE.finditer(self.lowered)]
        return self._spans[index]


def tokenize(text: str) -> Tokens:
    """Split ``text`` into lower-cased words (offsets refer to ``text`` itself)."""
    return Tokens(text)


def phrase_key(phrase: str) -> tuple[str, ...]:
    """The words a phrase is matched by: "St. Petersburg" and "st petersburg" share one key.

    A trailing ``*`` stays on the last word ("invest*"), marking it as a prefix.
    """
    words = tuple(tokenize(phrase).words)
    return words[:-1] + (words[-1] + "*",) if words and phrase.rstrip().endswith("*") else words


V = TypeVar("V")


@dataclass(frozen=True, slots=True)
class PhraseHit(Generic[V]):
    """A phrase found in a text: word indices ``first``..``last`` (exclusive) and offsets."""

    first: int
    last: int
    start: int
    end: int
    value: V


class PhraseIndex(Generic[V]):
    """Leftmost-longest lookup of many phrases in a text's words.

    Phrases are indexed by their first word, so each word of a text costs one dict lookup;
    only where a phrase could start are its other words compared. A phrase's last word
    ending in ``*`` matches any word with that prefix ("invest*" → investment, investors).

    :param phrases: phrase → value; phrases with the same :func:`phrase_key` must carry
        the same value (the loaders check this and report the conflict).
    """

    def __init__(self, phrases: Mapping[str, V]):
        self._exact: dict[str, list[tuple[tuple[str, ...], V]]] = {}
        self._prefixed: dict[str, list[tuple[tuple[str, ...], V]]] = {}
        for phrase, value in phrases.items():
            key = phrase_key(phrase)
            if not key:
                raise ValueError(f"phrase {phrase!r} has no words")
            table = self._prefixed if len(key) == 1 and key[0].endswith("*") else self._exact
            first = key[0].rstrip("*")
            table.setdefault(first, []).append((key, value))
        for table in (self._exact, self._prefixed):
            for candidates in table.values():
                candidates.sort(key=lambda item: len(item[0]), reverse=True)
        self._prefix_lengths = sorted({len(prefix) for prefix in self._prefixed}, reverse=True)
        # One anchored alternation tells, at C speed, whether a word starts with any prefix.
        alternation = "|".join(re.escape(prefix) for prefix in sorted(self._prefixed, key=len, reverse=True))
        self._starts_with_prefix = re.compile(alternation).match if alternation else None

    def find(self, tokens: Tokens, accept: Callable[[V, Tokens, int, int], bool] | None = None) -> list[PhraseHit[V]]:
        """Every phrase in ``tokens``, leftmost-longest, not overlapping.

        :param accept: optional context check ``(value, tokens, first, last) -> bool``; when
            it refuses the longest phrase at a position, shorter ones are tried.
        """
        hits: list[PhraseHit[V]] = []
        exact, prefixed = self._exact, self._starts_with_prefix
        # Most words start no phrase: find the few that may, in one comprehension.
        starts = [i for i, word in enumerate(tokens.words) if word in exact or (prefixed and prefixed(word))]
        covered = 0
        for index in starts:
            if index < covered:
                continue
            hit = self._longest_at(tokens, index, accept)
            if hit is not None:
                hits.append(hit)
                covered = hit.last
        return hits

    def _longest_at(self, tokens: Tokens, index: int, accept) -> PhraseHit[V] | None:
        words = tokens.words
        word = words[index]
        candidates = self._exact.get(word, []) + [c for n in self._prefix_lengths for c in self._prefixed.get(word[:n], [])]
        for key, value in candidates:
            last = index + len(key)
            if last > len(words) or not all(_word_matches(p, w) for p, w in zip(key, words[index:last], strict=True)):
                continue
            if not _joined(tokens, index, last):
                continue
            if accept is not None and not accept(value, tokens, index, last):
                continue
            return PhraseHit(index, last, tokens.span(index)[0], tokens.span(last - 1)[1], value)
        return None


def _word_matches(pattern: str, word: str) -> bool:
    return word.startswith(pattern[:-1]) if pattern.endswith("*") else word == pattern


def _joined(tokens: Tokens, first: int, last: int) -> bool:
    """True when the words first..last stand together in the text, as one phrase would."""
    text = tokens.text
    return all(_JOINER_RE.fullmatch(text, tokens.span(i)[1], tokens.span(i + 1)[0]) for i in range(first, last - 1))
