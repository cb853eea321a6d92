"""Figures an article states: money amounts, percentages and growth, counts of agreements.

Each becomes a :class:`pipeline.core.messages.Figure` with its value normalised and the
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

from pipeline.core.messages import Figure

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


def extract_figures(text: str, sentences: Sequence[tuple[int, int]], language: str = "en") -> list[Figure]:
    """Money, percentages and counts in ``text``, in text order.

    :param sentences: the character spans of the text's sentences (from spaCy); a figure's
        ``sentence`` is the one that contains it.
    :param language: the text's language: Russian and Chinese have their own patterns
        (:data:`FINDERS`); any other language is read with the English ones.
    """
    money, others = FINDERS.get(language, FINDERS["en"])
    found = sorted(money(text), key=lambda item: item[0])
    taken = [(start, end) for start, end, _ in found]
    for start, end, figure in [found_figure for finder in others for found_figure in finder(text)]:
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


# --- Russian --------------------------------------------------------------------------------
# "4 млрд долларов", "27,9 млрд юаней", "1 200 тонн", "на 38%", "в 2,5 раза", "11 соглашений",
# "два меморандума": a decimal comma, thousands apart by spaces, scale and currency words
# in any case.

_RU_NUMBER = r"(?P<number>\d{1,3}(?:[\u00a0\u202f ]\d{3})+(?:,\d+)?|\d+(?:[.,]\d+)?)"
_RU_SCALE = r"(?:\s?(?P<scale>трлн|триллион\w*|млрд|миллиард\w*|млн|миллион\w*|тыс\.?|тысяч\w*)(?![а-яё]))?"
_RU_SCALES = {"трлн": 1e12, "триллион": 1e12, "млрд": 1e9, "миллиард": 1e9, "млн": 1e6, "миллион": 1e6, "тыс": 1e3, "тысяч": 1e3}
_RU_CURRENCIES = (("долл", "USD"), ("$", "USD"), ("юан", "CNY"), ("рубл", "RUB"), ("руб", "RUB"), ("₽", "RUB"), ("евро", "EUR"))
_RU_MONEY = re.compile(
    rf"{_RU_NUMBER}{_RU_SCALE}\s?(?P<currency>долл(?:ар\w*|\.)?|юан\w*|рубл\w*|руб\.|₽|евро|\$)", re.IGNORECASE,
)
_RU_PERCENT = re.compile(rf"{_RU_NUMBER}\s?(?:%|процент\w*)", re.IGNORECASE)
_RU_MULTIPLE = re.compile(rf"\bв\s+{_RU_NUMBER}\s+раз[а]?\b", re.IGNORECASE)
_RU_GROWTH_BEFORE = re.compile(r"(?:вырос\w*|выросл\w*|увелич\w*|рост\w*|прирост\w*|повыс\w*|подскочил\w*|прибавил\w*)\s+(?:на\s+)?(?:(?:почти|около|более\s+чем|свыше|более)\s+)?$", re.IGNORECASE)
_RU_DECLINE_BEFORE = re.compile(r"(?:снизил\w*|сократил\w*|упал\w*|уменьш\w*|падени\w*|снижени\w*|сокращени\w*)\s+(?:на\s+)?(?:(?:почти|около|более\s+чем|свыше|более)\s+)?$", re.IGNORECASE)
_RU_GROWTH_AFTER = re.compile(r"^\s*(?:больше|выше|рост\w*|прирост\w*)\b", re.IGNORECASE)
_RU_DECLINE_AFTER = re.compile(r"^\s*(?:меньше|ниже|снижени\w*|падени\w*)\b", re.IGNORECASE)
_RU_UNITS = (("соглашени", "agreements"), ("договор", "agreements"), ("меморандум", "memoranda"), ("контракт", "contracts"),
             ("сделк", "deals"), ("сдело", "deals"), ("документ", "documents"), ("проект", "projects"))  # fmt: skip
_RU_WORD_NUMBERS = {
    "один": 1, "одно": 1, "одна": 1, "два": 2, "две": 2, "три": 3, "четыре": 4, "пять": 5, "шесть": 6, "семь": 7,
    "восемь": 8, "девять": 9, "десять": 10, "одиннадцать": 11, "двенадцать": 12, "тринадцать": 13, "четырнадцать": 14,
    "пятнадцать": 15, "шестнадцать": 16, "семнадцать": 17, "восемнадцать": 18, "девятнадцать": 19, "двадцать": 20,
    "тридцать": 30, "сорок": 40, "пятьдесят": 50, "шестьдесят": 60, "семьдесят": 70, "восемьдесят": 80, "девяносто": 90,
}
_RU_WORD = "|".join(sorted(_RU_WORD_NUMBERS, key=len, reverse=True))
_RU_COUNT = re.compile(
    rf"(?<![\w,.])(?P<number>\d+|(?:{_RU_WORD})(?:\s+(?:{_RU_WORD}))?)\s+(?P<between>(?:[а-яё-]+\s+){{0,3}}?)"
    rf"(?P<noun>(?:{'|'.join(stem for stem, _ in _RU_UNITS)})[а-яё]*)",
    re.IGNORECASE,
)


def _ru_number(digits: str) -> float:
    return float(re.sub(r"[\u00a0\u202f ]", "", digits).replace(",", "."))


def _ru_money(text: str) -> Iterator[_Found]:
    for match in _RU_MONEY.finditer(text):
        spelled = match.group("currency").lower()
        currency = next(code for prefix, code in _RU_CURRENCIES if spelled.startswith(prefix))
        scale = (match.group("scale") or "").lower().rstrip(".")
        factor = next((value for stem, value in _RU_SCALES.items() if scale.startswith(stem)), 1.0) if scale else 1.0
        yield match.start(), match.end(), ("money", _ru_number(match.group("number")) * factor, currency, match.group())


def _ru_change(text: str, start: int, end: int) -> int:
    before, after = text[max(0, start - 60) : start], text[end : end + 20]
    if _RU_GROWTH_BEFORE.search(before) or _RU_GROWTH_AFTER.search(after):
        return 1
    return -1 if _RU_DECLINE_BEFORE.search(before) or _RU_DECLINE_AFTER.search(after) else 0


def _ru_percentages(text: str) -> Iterator[_Found]:
    for match in _RU_PERCENT.finditer(text):
        # "на 38%": the preposition belongs to the change, which is read from what stands before it.
        sign = _ru_change(text, match.start(), match.end())
        value = _ru_number(match.group("number"))
        yield match.start(), match.end(), ("percent", value * (sign or 1), "% change" if sign else "%", match.group())
    for match in _RU_MULTIPLE.finditer(text):
        if _ru_change(text, match.start(), match.end()) == 1:  # "вырос в 2,5 раза": growth of 150 %
            yield match.start(), match.end(), ("percent", (_ru_number(match.group("number")) - 1) * 100, "% change", match.group())


def _ru_counts(text: str) -> Iterator[_Found]:
    for match in _RU_COUNT.finditer(text):
        number = match.group("number").lower()
        value = float(number) if number.isdigit() else float(sum(_RU_WORD_NUMBERS[word] for word in number.split()))
        if number.isdigit() and len(number) == 4 and 1900 <= value <= 2100:
            continue  # a year, not a count
        noun = match.group("noun").lower()
        unit = next(unit for stem, unit in _RU_UNITS if noun.startswith(stem))
        yield match.start(), match.end(), ("count", value, unit, match.group())


# --- Chinese -----------------------------------------------------------------------------------
# "27.9亿元", "46亿美元", "120万吨", "增长38%", "百分之十五", "签署11项合作协议", "十一份文件":
# 万 is ten thousand and 亿 a hundred million; 元 and 人民币 are the yuan.

_ZH_DIGITS = {"零": 0, "一": 1, "二": 2, "两": 2, "三": 3, "四": 4, "五": 5, "六": 6, "七": 7, "八": 8, "九": 9}
_ZH_NUMERAL = r"[零一二两三四五六七八九十百]+"
_ZH_NUMBER = rf"(?P<number>\d+(?:\.\d+)?|{_ZH_NUMERAL})"
_ZH_SCALES = {"万亿": 1e12, "亿": 1e8, "万": 1e4, "千": 1e3}
_ZH_CURRENCIES = {"美元": "USD", "元": "CNY", "人民币": "CNY", "卢布": "RUB", "欧元": "EUR"}
_ZH_MONEY = re.compile(rf"{_ZH_NUMBER}\s?(?P<scale>万亿|亿|万|千)?\s?(?P<currency>美元|人民币|卢布|欧元|元)")
_ZH_TONNES = re.compile(rf"{_ZH_NUMBER}\s?(?P<scale>万亿|亿|万|千)?\s?吨")
_ZH_PERCENT = re.compile(rf"{_ZH_NUMBER}\s?%|百分之(?P<spelled>{_ZH_NUMERAL}|\d+(?:\.\d+)?)")
_ZH_GROWTH = re.compile(r"(?:增长|增加|上升|提高|增幅|提升)(?:了)?(?:约|近|超过)?$")
_ZH_DECLINE = re.compile(r"(?:下降|减少|下跌|降低|下滑)(?:了)?(?:约|近|超过)?$")
_ZH_UNITS = {"协议": "agreements", "协定": "agreements", "备忘录": "memoranda", "合同": "contracts", "文件": "documents",
             "项目": "projects"}  # fmt: skip
_ZH_COUNT = re.compile(rf"{_ZH_NUMBER}\s?(?:项|份|个|批)(?P<between>[\u4e00-\u9fff]{{0,6}}?)(?P<noun>{'|'.join(_ZH_UNITS)})")


def _zh_number(spelled: str) -> float:
    """Arabic digits, or Chinese numerals up to the hundreds (十一 → 11, 二十三 → 23, 一百 → 100)."""
    if re.fullmatch(r"\d+(?:\.\d+)?", spelled):
        return float(spelled)
    total, digit = 0, 0
    for character in spelled:
        if character in _ZH_DIGITS:
            digit = _ZH_DIGITS[character]
        else:
            total += (digit or 1) * (10 if character == "十" else 100)
            digit = 0
    return float(total + digit)


def _zh_money(text: str) -> Iterator[_Found]:
    for match in _ZH_MONEY.finditer(text):
        value = _zh_number(match.group("number")) * _ZH_SCALES.get(match.group("scale") or "", 1.0)
        yield match.start(), match.end(), ("money", value, _ZH_CURRENCIES[match.group("currency")], match.group())


def _zh_percentages(text: str) -> Iterator[_Found]:
    for match in _ZH_PERCENT.finditer(text):
        before = text[max(0, match.start() - 8) : match.start()]
        sign = 1 if _ZH_GROWTH.search(before) else -1 if _ZH_DECLINE.search(before) else 0
        value = _zh_number(match.group("number") or match.group("spelled"))
        yield match.start(), match.end(), ("percent", value * (sign or 1), "% change" if sign else "%", match.group())


def _zh_counts(text: str) -> Iterator[_Found]:
    for match in _ZH_COUNT.finditer(text):
        yield match.start(), match.end(), ("count", _zh_number(match.group("number")), _ZH_UNITS[match.group("noun")], match.group())
    for match in _ZH_TONNES.finditer(text):
        value = _zh_number(match.group("number")) * _ZH_SCALES.get(match.group("scale") or "", 1.0)
        yield match.start(), match.end(), ("count", value, "tonnes", match.group())


# language → (the money finder, the other finders); money goes first, so a percentage or a
# count inside an amount is not read twice.
FINDERS = {
    "en": (_money, (_percentages, _counts)),
    "ru": (_ru_money, (_ru_percentages, _ru_counts)),
    "zh": (_zh_money, (_zh_percentages, _zh_counts)),
}
