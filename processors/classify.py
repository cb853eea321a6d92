"""The rules classifier: is an article a story about Russia–China cooperation?

It reads an article sentence by sentence. A sentence counts when it names a Russian party
and a Chinese party (gazetteer mentions) together with a cooperation cue; dispute cues,
other countries and multilateral bodies lower it. The best sentences become the
evidence, and a logistic curve turns the article's raw score into ``score`` in [0, 1].
``docs/classifier.md`` explains the features and weights, which live in
``config/classifier.yaml``.

:meth:`RulesClassifier.screen` is the cascade's cheap pass (no spaCy); :meth:`classify`
needs the sentence boundaries the model finds::

    classifier = RulesClassifier(load_classifier_config("config/classifier.yaml"), gazetteer)
    reason = classifier.screen(title, body)          # None: worth the model
    result = classifier.classify(title, body, sentences, figures) if reason is None else classifier.reject(reason)
"""

from __future__ import annotations

import math
import re
from bisect import bisect_left, bisect_right
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, ValidationError, create_model

from pipeline.core.errors import ConfigError, ConfigProblem
from pipeline.core.messages import SECTORS, Classification, Country, Figure, Level
from pipeline.core.settings import problems_from, read_yaml
from processors.datelines import dateline_span, report_opening
from processors.gazetteer import PLACE_KINDS, Gazetteer, Mention
from processors.phrases import PhraseHit, PhraseIndex, Tokens, phrase_key, tokenize
from processors.venues import is_venue

# --- config/classifier.yaml ------------------------------------------------------------


class _Strict(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class CascadeConfig(_Strict):
    pair_window_chars: int = Field(gt=0)


class ScoringConfig(_Strict):
    pair_base: float
    pair_specificity: float
    strong_cue: float
    weak_cue: float
    extra_cue: float
    extra_cue_cap: int = Field(ge=0)
    negative_cue: float = Field(le=0)
    other_country: float = Field(le=0)
    other_country_cap: int = Field(ge=0)
    multilateral: float = Field(le=0)
    neighbour_factor: float = Field(ge=0, le=1)
    support: float = Field(ge=0)
    support_cap: int = Field(ge=0)
    dispute_share: float = Field(le=0)
    evidence_min: float
    max_evidence: int = Field(ge=1)
    midpoint: float
    steepness: float = Field(gt=0)
    threshold: float = Field(ge=0, le=1)


class CuesConfig(_Strict):
    strong: list[str]
    weak: list[str]
    negative: list[str]


class ContextConfig(_Strict):
    other_countries: list[str]
    place_names: list[str]
    multilateral: list[str]
    regional_words: list[str]
    municipal_words: list[str]
    company_words: list[str]
    border_crossings: list[str]
    figures_of_speech: list[str]


class ActsConfig(_Strict):
    """Words per act (what happened), for the English gist. The fields are the fixed ids."""

    signed: list[str]
    opened: list[str]
    construction: list[str]
    shipment: list[str]
    visit: list[str]
    talks: list[str]
    event: list[str]


ACTS: tuple[str, ...] = tuple(ActsConfig.model_fields)


class SectorRulesConfig(_Strict):
    evidence_weight: float = Field(gt=0)
    topical_weight: float = Field(ge=0)
    other_weight: float = Field(ge=0)
    min_weight: float = Field(gt=0)
    min_share: float = Field(ge=0, le=1)


# Keywords per sector; the fields are the fixed taxonomy (pipeline.core.messages.SECTORS), so an
# unknown or missing id is a config error.
SectorsConfig = create_model(
    "SectorsConfig", __base__=_Strict, **{sector: (list[str], ...) for sector in SECTORS},  # type: ignore[call-overload]
)


class ClassifierConfig(_Strict):
    name: str = Field(pattern=r"^[a-z0-9_.-]+$")
    cascade: CascadeConfig
    scoring: ScoringConfig
    cues: CuesConfig
    context: ContextConfig
    acts: ActsConfig
    sector_rules: SectorRulesConfig
    sectors: SectorsConfig


def load_classifier_config(path: Path | str) -> ClassifierConfig:
    """Read and validate ``config/classifier.yaml``; every problem names the key and the fix."""
    path = Path(path)
    return _validated(path, read_yaml(path))


def language_config(base: ClassifierConfig, path: Path | str, language: str, lexicons: dict[str, dict]) -> ClassifierConfig:
    """``base`` with the ``cues``, ``context``, ``acts`` and ``sectors`` of a language profile read from
    ``path``; the weights stay the base's, so every language is scored alike.

    :raises ConfigError: a lexicon is missing, misspelt, or repeats a phrase within its group.
    """
    path = Path(path)
    data = {**base.model_dump(), **lexicons, "name": f"{base.name}.{language}"}
    return _validated(path, data)


def _validated(path: Path, data: object) -> ClassifierConfig:
    """``data`` as a classifier configuration read from ``path``, no phrase twice within a group."""
    try:
        config = ClassifierConfig.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(problems_from(path, exc)) from None
    problems = [problem for group in ("cues", "context", "acts", "sectors") for problem in _repeated_phrases(path, group, getattr(config, group).model_dump())]
    if problems:
        raise ConfigError(problems)
    return config


def _repeated_phrases(path: Path, group: str, lists: dict[str, list[str]]) -> list[ConfigProblem]:
    """A phrase may stand in only one list of a group, so that it counts once."""
    seen: dict[tuple[str, ...], str] = {}
    problems = []
    for name, phrases in lists.items():
        for phrase in phrases:
            key = phrase_key(phrase)
            if not key:
                problems.append(ConfigProblem(str(path), f"{group}.{name}", f"{phrase!r} has no letters or digits", "remove it"))
            elif seen.setdefault(key, name) != name:
                problems.append(ConfigProblem(str(path), f"{group}.{name}", f"{phrase!r} is also listed under {group}.{seen[key]}", "keep it in one list"))
    return problems


# --- What the classifier reads -----------------------------------------------------------


@dataclass(frozen=True)
class Passage:
    """The title or the body of an article, with its words and its gazetteer mentions."""

    text: str
    tokens: Tokens
    mentions: Sequence[Mention]

    @classmethod
    def of(cls, text: str, gazetteer: Gazetteer) -> Passage:
        tokens = tokenize(text)
        return cls(text, tokens, gazetteer.matcher.find(text, tokens))


@dataclass(frozen=True)
class _Party:
    country: Country
    canonical_id: str
    tier: str  # city, region, company or national — how local the party is
    specificity: float  # 1 below the national level or for a named institution, 0 for the country itself
    top_office: bool = False  # a head of state or government, or the office speaking for them


@dataclass
class _Sentence:
    text: str
    parties: list[_Party]
    cues: list[tuple[str, str]]  # (strong / weak / negative, the words as written)
    context: Counter
    sector_hits: Counter
    act_hits: Counter
    factor: float = 1.0  # below 1 for a pair made of two neighbouring sentences
    score: float = 0.0
    in_title: bool = False  # scored like the body's sentences, never shown as evidence
    states_sum: bool = False  # states a sum of money

    @property
    def is_pair(self) -> bool:
        """Names both sides and carries at least one cooperation cue."""
        return {p.country for p in self.parties} == {"RU", "CN"} and any(kind != "negative" for kind, _ in self.cues)

    def side(self, country: Country) -> list[_Party]:
        return [party for party in self.parties if party.country == country]

    def count(self, kind: str) -> int:
        return sum(1 for cue_kind, _ in self.cues if cue_kind == kind)

    def cue_words(self, *kinds: str) -> list[str]:
        return sorted({words.lower() for cue_kind, words in self.cues if cue_kind in kinds})


# Which party sets a side's level. A named company is the actor of its side: the region
# next to it is usually only where it works ("a Khabarovsk sawmill and a Heilongjiang
# importer"). A region named next to one of its cities ("the bridge between Nizhneleninskoye
# and Tongjiang links the Jewish Autonomous Region and Heilongjiang") makes the side
# regional; the cities alone make it municipal.
_SIDE_TIERS = ("company", "region", "city", "national")
# Gaps that tie a country name to a generic word: "Russian regions", "China's provinces",
# "Russian and Chinese companies" (after the name); "regions of the Russian Federation",
# "northeast China" (before it). Chinese writes no space: "中国企业".
_GAP_AFTER = re.compile(r"(?:['’]s)?\s*(?:and\s+\w+\s+)?", re.IGNORECASE)
_GAP_BEFORE = re.compile(r"\s+of\s+(?:the\s+)?|[\s-]+", re.IGNORECASE)
# A wire's slug left at a sentence's start once the splitter cut the dateline off: "/TASS/.", "/ТАСС/."


class RulesClassifier:
    """Scores articles with the lexicons and weights of a :class:`ClassifierConfig`."""

    def __init__(self, config: ClassifierConfig, gazetteer: Gazetteer):
        self.config = config
        self.name = config.name
        self._gazetteer = gazetteer
        self._cues = PhraseIndex({p: kind for kind, phrases in config.cues.model_dump().items() for p in phrases})
        self._context = PhraseIndex({p: kind for kind, phrases in config.context.model_dump().items() for p in phrases})
        self._sectors = PhraseIndex({p: sector for sector, phrases in config.sectors.model_dump().items() for p in phrases})
        self._acts = PhraseIndex({p: act for act, phrases in config.acts.model_dump().items() for p in phrases})

    # --- the cheap pass ---

    def screen(self, title: Passage, body: Passage) -> str | None:
        """None when the article is worth the model; otherwise why it is not a cooperation story."""
        mentions = [*title.mentions, *body.mentions]
        sides = {country: sorted({m.canonical_id for m in mentions if m.country == country}) for country in ("RU", "CN")}
        if not sides["RU"] and not sides["CN"]:
            return "names neither a Russian nor a Chinese party"
        for missing, present in (("RU", "CN"), ("CN", "RU")):
            if not sides[missing]:
                named = ", ".join(sides[present][:5])
                return f"names no {'Russian' if missing == 'RU' else 'Chinese'} party (only {named})"
        if not self._sides_meet(title, body):
            return f"Russian and Chinese parties are never within {self.config.cascade.pair_window_chars} characters of each other"
        if not any(hit.value != "negative" for passage in (title, body) for hit in self._cues.find(passage.tokens)):
            return "no cooperation cue anywhere in the article"
        return None

    def _sides_meet(self, title: Passage, body: Passage) -> bool:
        title_sides = {m.country for m in title.mentions}
        if title_sides == {"RU", "CN"} or (title_sides and {m.country for m in body.mentions} - title_sides):
            return True
        last_seen: dict[str, int] = {}
        for mention in body.mentions:
            other = "CN" if mention.country == "RU" else "RU"
            if other in last_seen and mention.start - last_seen[other] <= self.config.cascade.pair_window_chars:
                return True
            last_seen[mention.country] = mention.end
        return False

    def reject(self, reason: str) -> Classification:
        """The negative classification of an article the cheap pass turned away."""
        return Classification(is_cooperation=False, score=0.0, reason=f"cheap pass: {reason}", classifier=self.name)

    # --- the full classification ---

    def classify(
        self, title: Passage, body: Passage, sentences: Sequence[tuple[int, int]], figures: Sequence[Figure] = (),
    ) -> Classification:
        """Classify an article whose body is split into ``sentences`` (character spans), stating
        ``figures`` (its sums tell which sentences say what a deal is worth)."""
        headline = self._sentences(title, [(0, len(title.text))])
        for unit in headline:
            unit.in_title = True
        priced = {figure.sentence for figure in figures if figure.kind == "money"}
        # The dateline says where and by whom the report was filed ("俄罗斯卫星通讯社北京6月6日电":
        # Sputnik is the "satellite" agency): the fields named there are not the cooperation's.
        units = headline + self._sentences(body, sentences, unread=dateline_span(body.text, title.text))
        for unit in units:
            unit.states_sum = unit.text in priced
        pairs = [unit for unit in units if unit.is_pair] + self._neighbour_pairs(units)
        for unit in pairs:
            unit.score = self._score(unit)
        return self._decide(units, pairs)

    def _sentences(self, passage: Passage, spans: Sequence[tuple[int, int]], unread: tuple[int, int] = (0, 0)) -> list[_Sentence]:
        """The sentences of ``passage`` at ``spans``; no field is read in the ``unread`` span."""
        cues, context, sectors, acts = (index.find(passage.tokens) for index in (self._cues, self._context, self._sectors, self._acts))
        mentions = list(passage.mentions)
        # A country named inside a multilateral body's or programme's name ("the China-Mongolia-
        # Russia corridor", "中蒙俄") is not a party: the body is.
        multilateral = _Spans((hit.start, hit.end) for hit in context if hit.value == "multilateral")
        mentions = [m for m in mentions if not multilateral.holds(m.start, m.end)]
        # A name is not a topic: the Export-Import Bank of China lends, it does not trade.
        names = _Spans((m.start, m.end) for m in mentions if m.kind in ("company", "institution"))
        figures = _Spans((hit.start, hit.end) for hit in context if hit.value == "figures_of_speech")
        sectors = [
            hit for hit in sectors
            if not names.holds(hit.start, hit.start + 1) and not figures.holds(hit.start, hit.start + 1) and not unread[0] <= hit.start < unread[1]
        ]
        units = []
        for start, end in spans:
            text = passage.text[start:end].strip()
            if not text:
                continue
            in_span = [m for m in _within(mentions, start, end) if m.country in ("RU", "CN")]
            context_hits = _within(context, start, end)
            units.append(_Sentence(
                text=text,
                parties=[self._party(m, context_hits, passage.text) for m in in_span],
                cues=[(hit.value, passage.text[hit.start : hit.end]) for hit in _within(cues, start, end)],
                context=Counter(hit.value for hit in context_hits),
                sector_hits=Counter(hit.value for hit in _within(sectors, start, end)),
                act_hits=Counter(hit.value for hit in _within(acts, start, end)),
            ))
        return units

    def _party(self, mention: Mention, context: list[PhraseHit[str]], text: str) -> _Party:
        entry = self._gazetteer[mention.canonical_id]
        local = any(hit.value == "municipal_words" for hit in context)
        if entry.kind == "country":
            generic = _generic_tier(mention, context, text)
            return _Party(entry.country, entry.id, generic or "national", 1.0 if generic else 0.0)
        if entry.metonym_of and not local:  # "Moscow said", "Beijing agreed": the government
            return _Party(entry.country, entry.metonym_of, "national", 0.0)
        if entry.kind in PLACE_KINDS and is_venue(text, mention.start, mention.end):
            # "The ceremony in Shanghai": a side is there, the place takes no part.
            return _Party(entry.country, entry.country, "national", 0.0)
        # A local institution (a university, with its region in the gazetteer) takes part as its region does.
        tier = {"city": "city", "company": "company", "institution": "region" if entry.parent else "national"}.get(entry.kind, "region")
        if tier == "region" and local and entry.subtype in ("federal_city", "municipality"):
            tier = "city"
        elif tier == "city" and not local:
            # A city named without its own government (a mayor, a city hall) is where a
            # bridge ends or a plant stands: it speaks for its region, not for a municipality.
            tier = "region"
        # Subscribers filter by region: a city stands for its region among the parties (the
        # city itself stays in the entities, and its tier still makes the level municipal).
        party_id = entry.parent if entry.kind == "city" and entry.parent else entry.id
        return _Party(entry.country, party_id, tier, 1.0, top_office="top_office" in entry.tags)

    def _score(self, unit: _Sentence) -> float:
        weights = self.config.scoring
        strong, weak, negative = (unit.count(kind) for kind in ("strong", "weak", "negative"))
        specificity = sum(max(p.specificity for p in unit.side(country)) for country in ("RU", "CN"))
        score = weights.pair_base + weights.pair_specificity * specificity
        score += (weights.strong_cue if strong else weights.weak_cue) + weights.extra_cue * min(strong + weak - 1, weights.extra_cue_cap)
        score += weights.negative_cue * negative
        score += weights.other_country * min(unit.context["other_countries"], weights.other_country_cap)
        if unit.context["multilateral"]:
            score += weights.multilateral
        return score * unit.factor

    def _neighbour_pairs(self, units: list[_Sentence]) -> list[_Sentence]:
        """One side in a sentence and the other in the next: the pair at a discount."""
        pairs = []
        for first, second in zip(units, units[1:], strict=False):
            sides = [{p.country for p in unit.parties} for unit in (first, second)]
            if len(sides[0]) == 1 and len(sides[1]) == 1 and sides[0] != sides[1]:
                joined = _Sentence(f"{first.text} {second.text}", first.parties + second.parties, first.cues + second.cues,
                                   first.context + second.context, first.sector_hits + second.sector_hits,
                                   first.act_hits + second.act_hits,
                                   factor=self.config.scoring.neighbour_factor, in_title=first.in_title)
                if joined.is_pair:
                    pairs.append(joined)
        return pairs

    def _decide(self, units: list[_Sentence], pairs: list[_Sentence]) -> Classification:
        weights = self.config.scoring
        evidence = sorted((u for u in pairs if u.score >= weights.evidence_min), key=lambda u: u.score, reverse=True)
        best = max(pairs, key=lambda u: u.score, default=None)
        raw = best.score if best else 0.0
        raw += weights.support * min(max(len(evidence) - 1, 0), weights.support_cap)
        disputed = sum(1 for unit in pairs if unit.count("negative"))
        if pairs:
            raw += weights.dispute_share * disputed / len(pairs)
        score = 1.0 / (1.0 + math.exp(-weights.steepness * (raw - weights.midpoint)))
        positive = score >= weights.threshold
        # The parties, level and sectors of a negative come from its best pair, if any.
        deciding = evidence or ([best] if best else [])
        headline = units[0] if units and units[0].in_title else None
        return Classification(
            is_cooperation=positive,
            score=round(score, 4),
            level=_article_level(deciding, headline) if deciding else None,
            sectors=self._sectors_of(deciding, units, headline) if deciding else [],
            acts=_acts_of(deciding, headline),
            russian_parties=_parties(deciding, "RU"),
            chinese_parties=_parties(deciding, "CN"),
            evidence=_shown(evidence, title_text=headline.text if headline else "", limit=weights.max_evidence),
            reason=_reason(positive, best, evidence, disputed, len(pairs)),
            classifier=self.name,
        )

    def _sectors_of(self, evidence: list[_Sentence], units: list[_Sentence], headline: _Sentence | None) -> list[str]:
        # The headline says what the article is about, even naming one side only ("Putin and
        # Xi visit the Moscow Zoo"): its fields count as the evidence's do.
        topical = [*evidence, *([headline] if headline is not None and headline not in evidence else [])]
        rules = self.config.sector_rules
        weights: Counter = Counter()
        for unit in units + [u for u in topical if u not in units]:
            if unit in topical:
                weight = rules.evidence_weight
            elif unit.cue_words("strong", "weak"):
                weight = rules.topical_weight
            else:
                weight = rules.other_weight
            for sector, hits in unit.sector_hits.items():
                weights[sector] += weight * hits
        if not weights:
            return []
        # A field named in passing (a quote, a biography, a related headline) weighs little
        # beside what the parties cooperate on: it counts only at a share of the main field.
        floor = max(rules.min_weight, rules.min_share * max(weights.values()))
        chosen = {s for s, weight in weights.items() if weight >= floor}
        # A sentence stating a sum says what a deal is worth and in what field ("the Chinese
        # side invests 2.6 billion yuan"): its fields count, though named once.
        chosen |= {s for u in units if u.states_sum for s in u.sector_hits}
        # A company of one side building with or on the other's side ("a Chinese corporation
        # will build a logistics complex in the Jewish Autonomous Region") invests there.
        if any(unit.act_hits["construction"] and _company_on_one_side_only(unit) for unit in evidence):
            chosen.add("investment")
        return sorted(chosen, key=lambda s: (-weights[s], SECTORS.index(s)))


def _shown(evidence: list[_Sentence], title_text: str, limit: int) -> list[str]:
    """The evidence a reader sees: distinct sentences of the body, best first, without the
    headline (alone or repeated atop the body) and without a dateline or wire slug."""
    title_key = _sentence_key(title_text)
    shown: list[str] = []
    seen = {title_key}
    for unit in evidence:
        if unit.in_title:
            continue
        text = report_opening(unit.text, title_text)
        key = _sentence_key(text)
        if key and key not in seen:
            seen.add(key)
            shown.append(text)
        if len(shown) == limit:
            break
    return shown


def _sentence_key(text: str) -> str:
    return " ".join(text.lower().split()).rstrip(".。!！?？")


def _acts_of(evidence: list[_Sentence], headline: _Sentence | None) -> list[str]:
    """What happened, as the headline and the evidence say it: the acts they name, most named
    first (the headline's even when it names one side only: "Russia completes its part of the bridge")."""
    counts = sum((unit.act_hits for unit in evidence if unit is not headline), headline.act_hits.copy() if headline else Counter())
    return sorted(counts, key=lambda act: (-counts[act], ACTS.index(act)))


class _Spans:
    """Non-overlapping character spans (phrase matches), asked whether one holds a given span."""

    def __init__(self, spans: Iterable[tuple[int, int]]):
        self._spans = sorted(spans)
        self._starts = [start for start, _ in self._spans]

    def holds(self, start: int, end: int) -> bool:
        index = bisect_right(self._starts, start) - 1
        return index >= 0 and end <= self._spans[index][1]


def _within(hits: list, start: int, end: int) -> list:
    """The hits (sorted by offset) that start inside [start, end)."""
    starts = [hit.start for hit in hits]
    return hits[bisect_left(starts, start) : bisect_left(starts, end)]


def _company_on_one_side_only(unit: _Sentence) -> bool:
    """A company on one side, and on the other a place or a government but no company (two
    companies building together are a joint project, invested in or not)."""
    companies = {country: any(party.tier == "company" for party in unit.side(country)) for country in ("RU", "CN")}
    return companies["RU"] != companies["CN"]


def _generic_tier(mention: Mention, context: list[PhraseHit[str]], text: str) -> str | None:
    """"region" for "Russian regions", "company" for "Chinese companies", else None."""
    for hit in context:
        if hit.value not in ("regional_words", "company_words"):
            continue
        after = hit.start >= mention.end and _GAP_AFTER.fullmatch(text, mention.end, hit.start)
        before = hit.end <= mention.start and _GAP_BEFORE.fullmatch(text, hit.end, mention.start)
        if after or before:
            return "region" if hit.value == "regional_words" else "company"
    return None


def _article_level(evidence: list[_Sentence], headline: _Sentence | None) -> Level:
    """The level of the article: who leads across its evidence, else its best sentence's parties."""
    if _named_on_both_sides(evidence, "company"):
        # Gazprom and CNPC sign while the presidents look on: the companies lead.
        return "corporate"
    said_in_headline = headline is not None and (
        headline.context["border_crossings"] or any(party.top_office for party in headline.parties)
    )
    if said_in_headline or _named_on_both_sides(evidence, "national"):
        # A ministry, agency or state bank on each side acts for its state, whatever regions
        # the corridor or plant they discuss lies in. A head of state or government in the
        # headline is its actor: launching the units, opening the year, visiting the campus.
        # A crossing of the border itself (a bridge over the border river, a rail crossing, a
        # checkpoint) is built under an agreement of the two governments and run by their
        # federal agencies, whoever is named beside it.
        return "national"
    return _level(evidence[0])


def _named_on_both_sides(evidence: list[_Sentence], tier: str) -> bool:
    """Whether each side names a party of ``tier`` (not the bare country, not a head of state
    or government, who take part in every kind of event) in some evidence sentence."""
    return all(
        any(p.tier == tier and p.canonical_id != country and not p.top_office for unit in evidence for p in unit.side(country))
        for country in ("RU", "CN")
    )


def _level(unit: _Sentence) -> Level:
    """How local the cooperation is, from the parties named on each side."""
    ru, cn = (min((p.tier for p in unit.side(c)), key=_SIDE_TIERS.index, default="national") for c in ("RU", "CN"))
    tiers = {ru, cn}
    if tiers == {"city"}:
        return "municipal"
    if tiers <= {"city", "region"}:
        return "interregional"
    if "company" in tiers:  # a company on one side: a business deal, even with a region
        return "corporate"
    if tiers & {"region", "city"} and any(p.top_office for p in unit.parties if p.tier == "national"):
        # The heads of state launching a project at a site ("Putin and Xi launched the units
        # at Tianwan"): they act, the site is where. A region with the other side's ministry
        # or consulate stays interregional.
        return "national"
    if "region" in tiers:  # a region with the other country at large ("Chinese partners")
        return "interregional"
    if "city" in tiers:
        return "municipal"
    return "corporate" if unit.context["company_words"] else "national"


def _parties(units: list[_Sentence], country: Country) -> list[str]:
    """Canonical ids on one side, most named first; the bare country only when nothing more precise is."""
    counts = Counter(p.canonical_id for unit in units for p in unit.side(country))
    precise = [party_id for party_id, _ in counts.most_common() if party_id != country]
    return precise or ([country] if counts else [])


def _reason(positive: bool, best: _Sentence | None, evidence: list[_Sentence], disputed: int, pairs: int) -> str:
    if best is None:
        return "not cooperation: no sentence names a Russian and a Chinese party together with a cooperation cue"
    summary = f"{len(evidence)} evidence sentence(s), the best scoring {best.score:.2f} (cues: {', '.join(best.cue_words('strong', 'weak')[:5])})"
    if positive:
        return f"cooperation: {summary}"
    if disputed:
        disputes = ", ".join(best.cue_words("negative")[:3]) or "in other sentences"
        return f"not cooperation: {disputed} of {pairs} pair sentence(s) carry dispute cues ({disputes}); {summary}"
    return f"not cooperation: the evidence is too weak; {summary}"
