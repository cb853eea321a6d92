"""Synthetic news-length articles for benchmarks and the fault drills, written from templates in our own words.

``synthetic_articles(n, candidate_share)`` returns ``(title, text, is_candidate)`` triples: a
share of Russia–China cooperation stories (each about one Russian region and one Chinese
province) among general news that mentions neither country, each 350–600 words in paragraphs
separated by newlines. Deterministic for a given seed.
"""

from __future__ import annotations

import random

RUSSIAN_REGIONS = ["Irkutsk Oblast", "the Amur Region", "Primorsky Krai", "Khabarovsk Krai", "Zabaykalsky Krai",
                   "the Republic of Buryatia", "Novosibirsk Oblast", "Tatarstan", "Krasnoyarsk Krai", "Sakhalin"]
CHINESE_PROVINCES = ["Heilongjiang", "Jilin", "Liaoning", "Inner Mongolia", "Shandong", "Zhejiang",
                     "Guangdong", "Jiangsu", "Sichuan", "Xinjiang"]
COOPERATION = [
    "The government of {ru} and the provincial government of {cn} signed {count} agreements on {sector} during a visit of a delegation to {cn}.",
    "Officials from {ru} said trade with partners in {cn} rose by {pct} percent last year, reaching {money} billion dollars.",
    "A joint venture between companies from {ru} and {cn} will build a {sector} plant worth {money} billion yuan.",
    "The two sides agreed to open a new freight route across the border and to settle payments in roubles and yuan.",
    "Universities in {ru} and {cn} will exchange students and researchers under a memorandum signed this week.",
    "Tour operators expect more Chinese visitors in {ru} after direct flights from {cn} resume in the spring.",
]
SECTORS = ["timber processing", "agriculture", "energy", "logistics", "tourism", "education", "machinery"]
GENERAL = [
    "The city council approved a budget that raises spending on roads and public transport by {pct} percent.",
    "Local farmers reported a strong harvest after a mild summer, although prices for wheat remained low.",
    "The home team won the weekend match by two goals, lifting it to third place in the league table.",
    "Shares of technology companies rose on Tuesday as investors welcomed better than expected quarterly results.",
    "Forecasters warned of heavy rain along the coast, and schools in several districts closed early.",
    "A new exhibition of modern sculpture opened at the museum and will run until the end of March.",
    "Hospital managers said waiting times for routine operations had fallen for the first time in three years.",
    "The regional airport plans to add {count} routes next summer, most of them to holiday destinations in the south.",
    "Engineers began repairs on the old river bridge, which will stay closed to heavy lorries until the autumn.",
    "A survey of small businesses found that energy bills remain their biggest worry going into the winter.",
]
FILLER = [
    "Analysts said the outcome would depend on how quickly the plans can be financed and approved.",
    "Residents interviewed on Monday were cautiously optimistic about the changes.",
    "The announcement followed several months of consultations with industry groups and local officials.",
    "Further details are expected to be published before the end of the month.",
    "Critics argued that the timetable was ambitious, but supporters pointed to earlier successes.",
    "The figures have not yet been independently verified, a spokesperson noted.",
]


def _fill(template: str, rng: random.Random, parties: tuple[str, str]) -> str:
    russian, chinese = parties
    return template.format(
        ru=russian, cn=chinese,
        sector=rng.choice(SECTORS), count=rng.randint(2, 12), pct=rng.randint(3, 40), money=rng.randint(1, 9),
    )


def _article(rng: random.Random, candidate: bool) -> tuple[str, str, bool]:
    # A story is about one pair of regions, as a real report is; a story naming every region
    # would share its places with every other and make one event of them all.
    parties = (rng.choice(RUSSIAN_REGIONS), rng.choice(CHINESE_PROVINCES))
    paragraphs = []
    for _ in range(rng.randint(7, 11)):
        pool = COOPERATION if candidate and rng.random() < 0.5 else GENERAL
        sentences = [_fill(rng.choice(pool), rng, parties) for _ in range(2)] + [rng.choice(FILLER) for _ in range(2)]
        rng.shuffle(sentences)
        paragraphs.append(" ".join(sentences))
    if candidate:
        paragraphs[0] = _fill(COOPERATION[0], rng, parties) + " " + paragraphs[0]
    title = paragraphs[0].split(".")[0][:90]
    return title, "\n".join(paragraphs), candidate


def synthetic_articles(count: int, candidate_share: float, seed: int = 1) -> list[tuple[str, str, bool]]:
    """``count`` articles of which ``round(count * candidate_share)`` are Russia–China stories, shuffled."""
    rng = random.Random(seed)
    candidates = round(count * candidate_share)
    corpus = [_article(rng, index < candidates) for index in range(count)]
    rng.shuffle(corpus)
    return corpus
