"""A story's English gist: one line a subscriber reads whatever the language of its reports.

Composed only from what the pipeline extracted — the parties' English names (the
gazetteer's), what happened (the act the evidence names most, :data:`ACT_PHRASES`), the
sectors and the largest money figure — so nothing in it is invented; a fact not found is
left out rather than guessed::

    Amur Oblast and Heilongjiang: agreement signed (transport, trade; CNY 3 billion)
    Russia and China: opening (culture)
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from pipeline.core.messages import Figure

# What each act of processors.classify.ACTS reads as, after the parties.
ACT_PHRASES = {
    "signed": "agreement signed",
    "opened": "opening",
    "construction": "construction",
    "shipment": "shipment",
    "visit": "visit",
    "talks": "talks",
    "event": "joint event",
}
WITHOUT_ACT = "cooperation"
# Short English names of the sectors, for a line that must stay short.
SECTOR_WORDS = {
    "trade": "trade", "investment": "investment", "energy": "energy", "transport_logistics": "transport",
    "agriculture": "agriculture", "forestry_timber": "timber", "industry": "industry", "tourism": "tourism",
    "education": "education", "science_space": "science", "culture_humanitarian": "culture", "health": "health",
    "environment": "environment", "finance_payments": "finance", "defence": "defence", "digital": "digital",
    "legal_parliamentary": "law",
}
COUNTRY_NAMES = {"RU": "Russia", "CN": "China"}
MAX_PARTIES_PER_SIDE = 2
MAX_SECTORS = 3
SCALES = ((1e12, "trillion"), (1e9, "billion"), (1e6, "million"))


def gist(
    russian_parties: Sequence[str], chinese_parties: Sequence[str], names: Mapping[str, str], acts: Sequence[str],
    sectors: Sequence[str], figures: Sequence[Figure],
) -> str:
    """The English line of a story's facts (see the module docstring)."""
    sides = [_side(parties, names, country) for parties, country in ((russian_parties, "RU"), (chinese_parties, "CN"))]
    happened = ACT_PHRASES.get(acts[0], WITHOUT_ACT) if acts else WITHOUT_ACT
    details = [", ".join(SECTOR_WORDS.get(sector, sector) for sector in sectors[:MAX_SECTORS])]
    money = [figure for figure in figures if figure.kind == "money"]
    if money:
        details.append(amount(max(money, key=lambda figure: figure.value)))
    detail = "; ".join(part for part in details if part)
    return f"{' and '.join(sides)}: {happened}" + (f" ({detail})" if detail else "")


def _side(parties: Sequence[str], names: Mapping[str, str], country: str) -> str:
    shown = [names.get(party, COUNTRY_NAMES.get(party, party)) for party in parties[:MAX_PARTIES_PER_SIDE]]
    return ", ".join(shown) if shown else COUNTRY_NAMES[country]


def amount(figure: Figure) -> str:
    """A money figure as a reader writes it: "USD 2.1 billion", "CNY 500 million"."""
    for scale, word in SCALES:
        if figure.value >= scale:
            return f"{figure.unit} {figure.value / scale:.3g} {word}"
    return f"{figure.unit} {figure.value:,.0f}"
