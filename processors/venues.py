"""Places named as where something happened, not as who took part in it, and capitals
named as their city rather than their state.

A venue: "the signing ceremony in Shanghai", "the Eastern Economic Forum in Vladivostok",
"переговоры состоялись в Благовещенске", "在哈尔滨举行". The seat of a foreign mission: "the
Chinese Consulate General in Khabarovsk", "Генконсульство КНР в Хабаровске",
"中国驻符拉迪沃斯托克总领事馆". A region named only so takes no part: the consulate speaks for its
country, the forum's host city for nobody. A place named as a venue and elsewhere as an actor
("Khabarovsk Krai officials met ... in Khabarovsk") still counts, through the other mention.

    >>> text = "Gazprom and CNPC signed the contract at a ceremony in Shanghai."
    >>> is_venue(text, text.index("Shanghai"), len(text) - 1)
    True

A capital stands for its state ("Moscow said", and the venue of every state visit), except
when it is named with an institution of its own: the Moscow Zoo, Moscow's Synergy
University, 莫斯科动物园, the mayor of Moscow (:func:`names_city_body`).
"""

from __future__ import annotations

import re

# How far before a place its clause is read. The event word stands at most three words before
# the "in": "the signing ceremony in Shanghai", not "signed a deal to build a refinery in Tianjin",
# where the place is the project's site.
_REACH = 60
_NEAR = r"(?:\s+\S+){0,3}?\s+"
_CLAUSE_END = re.compile(r"[.!?;。！？；\n]")

# An event word, then at most three words and "in"/"at" right before the place.
_EVENT_WORDS_EN = (
    r"ceremony|ceremonies|forum|summit|talks|meeting|meetings|conference|expo|exhibition|fair|session|congress|"
    r"festival|signing|held|hosted|convened|met|studio|studios|video link|videoconference"
)
# The place may be the second or third of a list after the "in": "from studios in Moscow,
# Vladivostok and Beijing".
_LISTED = r"(?:[A-ZА-ЯЁ][\w'’-]*(?:\s+[A-ZА-ЯЁ][\w'’-]*)*(?:,\s*|\s+and\s+|\s+и\s+)){0,3}"
_EVENT_EN = re.compile(rf"\b(?:{_EVENT_WORDS_EN}){_NEAR}(?:in|at)\s+(?:the\s+(?:city\s+of\s+)?)?{_LISTED}$", re.IGNORECASE)
_MISSION_EN = re.compile(rf"\b(?:consulate|consul|consul-general|embassy)(?:\s+general)?{_NEAR}(?:in|at)\s+(?:the\s+)?$", re.IGNORECASE)
_EVENT_RU = re.compile(
    r"(?:форум|саммит|переговор|встреч|церемони|конференци|выставк|ярмарк|фестивал|заседани|состоял|состоит|"
    rf"прош[её]л|прошл|проход|пройд|студи|видеосвяз)\w*{_NEAR}(?:в|во)\s+{_LISTED}$",
    re.IGNORECASE,
)
_MISSION_RU = re.compile(rf"(?:консульств|генконсульств|консул|генконсул|посольств)\w*{_NEAR}(?:в|во)\s+$", re.IGNORECASE)
# Chinese: "驻…总领事馆" around the place; "在…举行/召开" around it.
_MISSION_ZH_BEFORE = re.compile(r"驻(?:俄罗斯|俄|中国|华)?$")
_MISSION_ZH_AFTER = re.compile(r"(?:总领事|领事|总领馆)")
_EVENT_ZH_BEFORE = re.compile(r"(?:[在于]|演播室[:：]?)$")
_EVENT_ZH_AFTER = re.compile(r"\S{0,6}?(?:举行|举办|召开|开幕|闭幕)")


def is_venue(text: str, start: int, end: int) -> bool:
    """Whether the place at ``text[start:end]`` is named as a venue or a foreign mission's seat."""
    clause_start = max(start - _REACH, 0)
    for found in _CLAUSE_END.finditer(text, clause_start, start):
        clause_start = found.end()
    before = text[clause_start:start]
    after = text[end:end + 12]
    if any(pattern.search(before) for pattern in (_EVENT_EN, _MISSION_EN, _EVENT_RU, _MISSION_RU)):
        return True
    if _MISSION_ZH_BEFORE.search(before) and _MISSION_ZH_AFTER.match(after):
        return True
    return bool(_EVENT_ZH_BEFORE.search(before) and _EVENT_ZH_AFTER.match(after))


# A city's own institutions, right after its name, or after its possessive and a name of two
# words at most ("Moscow's Synergy University"); before it, a mayor's office.
_BODY_AFTER = re.compile(
    r"(?:['’]s\s+(?:[A-Z][\w-]*\s+){0,2}|\s*)(?:city\s+)?(?:zoo|university|museum|theatre|theater|metro|city hall|mayor|municipal|"
    r"зоопарк|университет|музе|театр|метро|мэри|"
    r"动物园|大学|博物馆|剧院|地铁|市政府|市长)",
    re.IGNORECASE,
)
_BODY_BEFORE = re.compile(r"(?:mayor\s+of\s+(?:the\s+city\s+of\s+)?|мэр\w*\s+|правительств\w*\s+)$", re.IGNORECASE)


def names_city_body(text: str, start: int, end: int) -> bool:
    """Whether the capital at ``text[start:end]`` is named with an institution of its own
    city ("the Moscow Zoo", "мэра Москвы", "莫斯科动物园"), so it is the city taking part."""
    return bool(_BODY_AFTER.match(text, end) or _BODY_BEFORE.search(text, max(start - 30, 0), start))
