"""Figures an article states: money amounts, percentages and growth, counts of agreements.

Each becomes a :class:`pipeline.messages.Figure` with its value normalised and the
sentence it stands in::

    text = "Trade grew by 17% to USD 964 million, and eleven cooperation agreements were signed."
    [(f.kind, f.value, f.unit) for f in extract_figures(text, [(0, len(text))])]
    # [('money', 964000000.0, 'USD'), ('percent', 17.0, '% change'), ('count', 11.0, 'agreements')]

Units: money in ISO 4217 codes (USD, CNY, RUB, EUR — "$", "RMB", "yuan", "roubles" are
normalised); ``%`` for a share or level and ``% change`` for growth or decline (negative
for a decline; "6.5 times" growth is +550); counts in the noun's plural ("agreements",
"memoranda", "contracts", "deals", "documents", "projects"). "¥" is left alone: it is
the yen as often as the yuan.
"""

from __future__ import annotations

import re
from bisect import bisect_right
from collections.abc import Iterator, Sequence

from pipeline.messages import Figure

_NUMBER = r"(?P<number>\d{1,3}(?:[,\u00a0\u202f]\d{3})+(?:\.\d+)?|\d+(?:\.\d+)?)"
# A scale word after the number, or a one-letter scale glued to it ("$5m", "USD 2bn").
_SCALE = r"(?:\s?(?P<scale>trillion|trln|tn|billion|bln|bn|million|mln|mn|thousand)\b|(?P<short>[mbk])\b)?"

_CURRENCIES = {
    "USD": ("usd", "us$", "$", "dollar", "dollars", "usdollar", "usdollars", "u.s.dollar", "u.s.dollars"),
    "CNY": ("cny", "rmb", "yuan", "yuans", "renminbi"),
    "RUB": ("rub", "₽", "rouble", "roubles", "ruble", "rubles"),
    "EUR": ("eur", "€", "euro", "euros"),
}
# Spellings without spaces: "US dollars" and "US  dollars" are one key.
_CURRENCY_OF = {spelling: code for code, spellings in _CURRENCIES.items() for spelling in spellings}
_SCALES = {"thousand": 1e3, "k": 1e3, "million": 1e6, "mln": 1e6, "mn": 1e6, "m": 1e6,
           "billion": 1e9, "bln": 1e9, "bn": 1e9, "b": 1e9, "trillion": 1e12, "trln": 1e12, "tn": 1e12}  # fmt: skip

_MONEY_BEFORE = re.compile(rf"(?P<currency>US\$|USD|CNY|RMB|RUB|EUR|\$|€|₽)\s?{_NUMBER}{_SCALE}", re.IGNORECASE)
_MONEY_AFTER = re.compile(
    rf"{_NUMBER}{_SCALE}\s?(?P<currency>(?:US|U\.S\.)\s?dollars?|dollars?|yuans?|renminbi|roubles?|rubles?|euros?|USD|CNY|RMB|RUB|EUR)\b",
    re.IGNORECASE,
)
_PERCENT = re.compile(rf"{_NUMBER}\s?(?:%|per\s?cent\b|pct\b)", re.IGNORECASE)
_MULTIPLE = re.compile(rf"{_NUMBER}[-\s]?(?:fold|times)\b", re.IGNORECASE)

# Growth and decline words right before the figure ("grew by 21%") or right after it
# ("a 17% increase").
_GROWTH_BEFORE = re.compile(r"\b(?:increased?|increases|grew|grow|growth|rose|risen|rise|up|jump\w*|surge\w*|climb\w*|expand\w*|gain\w*)\s+(?:(?:by|of)\s+)?(?:(?:about|nearly|almost|over|some|more\s+than)\s+)?$", re.IGNORECASE)
_DECLINE_BEFORE = re.compile(r"\b(?:decreased?|decreases|declined?|fell|fall(?:en)?|drop(?:ped)?|down|shr[au]nk|contracted|slump\w*)\s+(?:(?:by|of)\s+)?(?:(?:about|nearly|almost|over|some|more\s+than)\s+)?$", re.IGNORECASE)
_GROWTH_AFTER = re.compile(r"^[\s-]*(?:increase|growth|rise|jump|gain|higher)\b", re.IGNORECASE)
_DECLINE_AFTER = re.compile(r"^[\s-]*(?:decrease|decline|drop|fall|lower)\b", re.IGNORECASE)

_UNITS = {"agreement": "agreements", "agreements": "agreements", "accords": "agreements", "treaties": "agreements",
          "memorandum": "memoranda", "memoranda": "memoranda", "memorandums": "memoranda", "mous": "memoranda",
          "contract": "contracts", "contracts": "contracts", "deals": "deals", "documents": "documents",
          "projects": "projects"}  # fmt: skip
_SINGULAR = {"agreement", "memorandum", "contract"}
_WORD_NUMBERS = {word: value for value, word in enumerate(
    "zero one two three four five six seven eight nine ten eleven twelve thirteen fourteen fifteen sixteen "
    "seventeen eighteen nineteen".split())} | {"twenty": 20, "thirty": 30, "forty": 40, "fifty": 50, "sixty": 60,
                                               "seventy": 70, "eighty": 80, "ninety": 90, "dozen": 12}  # fmt: skip
_TENS = "twenty|thirty|forty|fifty|sixty|seventy|eighty|ninety"
_COUNT_NUMBER = rf"(?P<number>\d+|(?:{_TENS})(?:[-\s](?:one|two|three|four|five|six|seven|eight|nine))?|{'|'.join(_WORD_NUMBERS)})"
# Up to four words may stand between the number and the noun ("eleven cooperation
# agreements", "30 trade and economic agreements"), but not words that start a new phrase.
_COUNT = re.compile(
    rf"\b{_COUNT_NUMBER}\s+(?P<between>(?:(?!(?:the|a|an|of|in|on|for|to|with|by|from|were|was|have|has|had|that|which)\b)[a-z][\w-]*\s+){{0,4}})"
    rf"(?P<noun>{'|'.join(_UNITS)})\b",
    re.IGNORECASE,
)


def extract_figures(text: str, sentences: Sequence[tuple[int, int]]) -> list[Figure]:
    """Money, percentages and counts in ``text``, in text order.

    :param sentences: the character spans of the text's sentences (from spaCy); a figure's
        ``sentence`` is the one that contains it.
    """
    found = sorted(_money(text), key=lambda item: item[0])
    taken = [(start, end) for start, end, _ in found]
    for start, end, figure in [*_percentages(text), *_counts(text)]:
        if not any(start < other_end and other_start < end for other_start, other_end in taken):
            found.append((start, end, figure))
    found.sort(key=lambda item: item[0])
    starts = [start for start, _ in sentences]
    figures = []
    for start, _, (kind, value, unit, figure_text) in found:
        index = bisect_right(starts, start) - 1
        sentence = text[slice(*sentences[index])] if index >= 0 else text
        figures.append(Figure(kind=kind, value=value, unit=unit, text=figure_text, sentence=sentence.strip()))
    return figures


_Found = tuple[int, int, tuple[str, float, str, str]]


def _money(text: str) -> Iterator[_Found]:
    seen: set[tuple[int, int]] = set()
    for pattern in (_MONEY_BEFORE, _MONEY_AFTER):
        for match in pattern.finditer(text):
            if any(start < match.end() and match.start() < end for start, end in seen):
                continue
            seen.add(match.span())
            currency = _CURRENCY_OF[re.sub(r"\s+", "", match.group("currency").lower())]
            scale = match.group("scale") or match.group("short") or ""
            value = _number(match.group("number")) * _SCALES.get(scale.lower(), 1.0)
            yield match.start(), match.end(), ("money", value, currency, match.group())


def _percentages(text: str) -> Iterator[_Found]:
    for match in _PERCENT.finditer(text):
        sign = _change(text, match.start(), match.end())
        value = _number(match.group("number"))
        unit = "% change" if sign else "%"
        yield match.start(), match.end(), ("percent", value * (sign or 1), unit, match.group())
    for match in _MULTIPLE.finditer(text):
        # "grew 6.5 times": growth of (6.5 − 1) × 100 %; without a growth word "times" is no figure.
        if _change(text, match.start(), match.end()) == 1:
            yield match.start(), match.end(), ("percent", (_number(match.group("number")) - 1) * 100, "% change", match.group())


def _change(text: str, start: int, end: int) -> int:
    """+1 after a growth word or before "increase", −1 likewise for a decline, else 0."""
    before, after = text[max(0, start - 60) : start], text[end : end + 20]
    if _GROWTH_BEFORE.search(before) or _GROWTH_AFTER.search(after):
        return 1
    if _DECLINE_BEFORE.search(before) or _DECLINE_AFTER.search(after):
        return -1
    return 0


def _counts(text: str) -> Iterator[_Found]:
    for match in _COUNT.finditer(text):
        number = match.group("number").lower()
        value = _word_number(number) if not number.isdigit() else float(number)
        singular = match.group("noun").lower() in _SINGULAR
        if (number.isdigit() and len(number) == 4 and 1900 <= value <= 2100) or (singular and value != 1):
            continue  # a year ("the 2019 agreements"), or "two agreement" which is no count
        yield match.start(), match.end(), ("count", value, _UNITS[match.group("noun").lower()], match.group())


def _number(digits: str) -> float:
    return float(re.sub(r"[,\u00a0\u202f]", "", digits))


def _word_number(words: str) -> float:
    parts = re.split(r"[-\s]+", words)
    return float(sum(_WORD_NUMBERS[part] for part in parts))
