"""The gazetteer: places, institutions and companies of Russia and China, and a fast matcher.

The data lives in ``config/gazetteer/*.yaml`` (schema at the top of ``russia.yaml``).
:func:`load_gazetteer` validates every file into frozen :class:`GazetteerEntry` objects and
reports each problem with the file, the key and the fix (:class:`~pipeline.core.errors.ConfigError`).

:class:`GazetteerMatcher` is the cascade's cheap pass: it finds every alias in a text in one
pass over its words — no spaCy — and returns :class:`Mention` objects with canonical ids and
character offsets::

    gazetteer = load_gazetteer("config/gazetteer")
    [m.canonical_id for m in gazetteer.matcher.find("Heihe faces Blagoveshchensk across the Amur")]
    # ['city:cn:heihe', 'city:ru:blagoveshchensk']   ("the Amur" is the river: no mention)

The matching machinery (:mod:`processors.phrases`) is shared with the classifier's cue
lexicons, so a text is split into words once per article.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, replace
from functools import cached_property
from pathlib import Path
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from pipeline.core.errors import ConfigError, ConfigProblem
from pipeline.core.messages import Country
from pipeline.core.settings import problems_from, read_yaml
from processors.phrases import PhraseIndex, Tokens, phrase_key, tokenize

Kind = Literal["country", "federal_subject", "province", "city", "institution", "company"]
# The kinds that are places within a country, and of those the regions (federal subjects and provinces).
REGION_KINDS: tuple[Kind, ...] = ("federal_subject", "province")
PLACE_KINDS: tuple[Kind, ...] = (*REGION_KINDS, "city")

# --- The YAML files ----------------------------------------------------------------------


class _Strict(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class _AmbiguousAlias(_Strict):
    alias: str
    unless_next: list[str] = Field(default_factory=list)
    unless_previous: list[str] = Field(default_factory=list)
    only_next: list[str] = Field(default_factory=list)
    only_previous: list[str] = Field(default_factory=list)


class _City(_Strict):
    name: str
    id: str | None = None
    native_name: str | None = None
    aliases: list[str] = Field(default_factory=list)
    ambiguous_aliases: list[_AmbiguousAlias] = Field(default_factory=list)
    tags: list[Literal["border", "port", "top_office"]] = Field(default_factory=list)
    match_name: bool = True


class _Entry(_City):
    id: str
    kind: Literal["country", "federal_subject", "province", "institution", "company"]
    country: Country
    subtype: str | None = None
    capital: str | None = None
    cities: list[_City] = Field(default_factory=list)
    metonym_of: Country | None = None
    # Where a local institution (a university) stands: the id of its federal subject or province.
    region: str | None = None
    # A region's administrative centre, [latitude, longitude]: where the map draws it.
    centre: tuple[Annotated[float, Field(ge=-90, le=90)], Annotated[float, Field(ge=-180, le=180)]] | None = None
    iso: bool = True
    note: str = ""


@dataclass(frozen=True, slots=True)
class GazetteerEntry:
    """One place, institution or company, with the names it goes by."""

    id: str
    name: str
    kind: Kind
    country: Country
    aliases: tuple[str, ...]
    native_name: str | None = None
    subtype: str | None = None
    capital: str | None = None
    cities: tuple[str, ...] = ()
    parent: str | None = None
    metonym_of: Country | None = None
    tags: tuple[str, ...] = ()
    iso: bool = True
    centre: tuple[float, float] | None = None  # a region's administrative centre (latitude, longitude)


@dataclass(frozen=True, slots=True)
class AliasRule:
    """What an alias resolves to, and when it must not (see ``ambiguous_aliases``)."""

    entry_id: str
    alias: str
    case_sensitive: bool = False
    unless_next: frozenset[str] = frozenset()
    unless_previous: frozenset[str] = frozenset()
    only_next: frozenset[str] = frozenset()
    only_previous: frozenset[str] = frozenset()


@dataclass(frozen=True, slots=True)
class Mention:
    """A gazetteer name found in a text."""

    start: int
    end: int
    text: str
    canonical_id: str
    kind: Kind
    country: Country


class Gazetteer:
    """Validated gazetteer entries and the alias rules that point at them."""

    def __init__(self, entries: Iterable[GazetteerEntry], rules: Iterable[AliasRule]):
        self.entries: Mapping[str, GazetteerEntry] = {entry.id: entry for entry in entries}
        self.rules: tuple[AliasRule, ...] = tuple(rules)

    def __getitem__(self, entry_id: str) -> GazetteerEntry:
        return self.entries[entry_id]

    def of_kind(self, kind: Kind) -> list[GazetteerEntry]:
        return [entry for entry in self.entries.values() if entry.kind == kind]

    @cached_property
    def matcher(self) -> GazetteerMatcher:
        return GazetteerMatcher(self)


class GazetteerMatcher:
    """The cheap pass: every gazetteer alias in a text, resolved to its entry."""

    def __init__(self, gazetteer: Gazetteer):
        self._gazetteer = gazetteer
        merged: dict[tuple[str, ...], AliasRule] = {}
        for rule in gazetteer.rules:
            key = phrase_key(rule.alias)
            previous = merged.get(key)
            # "Lukoil" and "LUKOIL" share a key: it is case-sensitive only if every spelling is.
            if previous is not None and not previous.case_sensitive:
                continue
            merged[key] = rule
        self._index = PhraseIndex({" ".join(key): rule for key, rule in merged.items()})

    def find(self, text: str, tokens: Tokens | None = None) -> list[Mention]:
        """Mentions in ``text``; pass ``tokens`` when the text is already tokenized."""
        tokens = tokens if tokens is not None else tokenize(text)
        mentions = []
        for hit in self._index.find(tokens, _in_context):
            entry = self._gazetteer.entries[hit.value.entry_id]
            mentions.append(Mention(hit.start, hit.end, text[hit.start : hit.end], entry.id, entry.kind, entry.country))
        return mentions


def _in_context(rule: AliasRule, tokens: Tokens, first: int, last: int) -> bool:
    if rule.case_sensitive and any(c.islower() for c in tokens.text[tokens.span(first)[0] : tokens.span(last - 1)[1]]):
        return False
    if rule.unless_next and last < len(tokens) and tokens.words[last] in rule.unless_next:
        return False
    if rule.only_next or rule.only_previous:  # only beside one of these words, on either side given
        after = last < len(tokens) and tokens.words[last] in rule.only_next
        before = first > 0 and tokens.words[first - 1] in rule.only_previous
        if not (after or before):
            return False
    return not (rule.unless_previous and first > 0 and tokens.words[first - 1] in rule.unless_previous)


# --- Loading and validation ----------------------------------------------------------


NameForms = Callable[[str], Iterable[str]]


def load_gazetteer(directory: Path | str, name_forms: NameForms | None = None) -> Gazetteer:
    """Read every ``*.yaml`` file in ``directory``; raise :class:`ConfigError` listing all problems.

    :param name_forms: the other forms a name is written in (its inflections, a short name),
        from the language profiles (:func:`processors.languages.name_forms`); each form is
        an alias too, unless another entry already has it. ``None``: names as written.
    """
    directory = Path(directory)
    files = sorted(directory.glob("*.yaml"))
    if not files:
        raise ConfigError([ConfigProblem(str(directory), "(directory)", "no gazetteer *.yaml files found", "set model.gazetteer_dir to the directory holding russia.yaml, china.yaml and institutions.yaml")])
    builder = _Builder(name_forms)
    for path in files:
        builder.add_file(path)
    return builder.build()


class _Builder:
    """Collects entries and alias rules from several files, and every problem on the way."""

    def __init__(self, name_forms: NameForms | None = None):
        self.entries: dict[str, GazetteerEntry] = {}
        self.rules: list[AliasRule] = []
        self.problems: list[ConfigProblem] = []
        self._defined_in: dict[str, str] = {}
        self._alias_owner: dict[tuple[str, ...], tuple[str, str]] = {}
        self._name_forms = name_forms
        self._forms: list[AliasRule] = []  # generated: added last, where no written alias claims them
        self._located: dict[str, tuple[Path, str, str]] = {}  # institution id → where its region is named

    def add_file(self, path: Path) -> None:
        raw = read_yaml(path)
        if not isinstance(raw, dict) or not isinstance(raw.get("entries"), list) or set(raw) != {"entries"}:
            self._problem(path, "(top level)", "expected one key, 'entries', holding a list", "start the file with 'entries:' and list one entry per '- '")
            return
        # Entry by entry, so that one broken entry does not hide the problems of the others.
        for position, item in enumerate(raw["entries"]):
            named = isinstance(item, dict) and isinstance(item.get("id"), str)
            key = f"entries[{item['id']}]" if named else f"entries.{position}"
            try:
                entry = _Entry.model_validate(item)
            except ValidationError as exc:
                self.problems.extend(replace(problem, key=f"{key}.{problem.key}") for problem in problems_from(path, exc))
                continue
            self._add_entry(path, key, entry)

    def _add_entry(self, path: Path, key: str, entry: _Entry) -> None:
        if entry.id in self._defined_in:
            self._problem(path, f"{key}.id", f"id {entry.id!r} is already defined in {self._defined_in[entry.id]}", "give every entry its own id")
            return
        if entry.kind in ("federal_subject", "province"):
            city_names = {city.name for city in entry.cities} | {entry.name}
            if entry.capital is None:
                self._problem(path, f"{key}.capital", "missing", "add the capital's name, and list the capital under cities")
            elif entry.capital not in city_names:
                self._problem(path, f"{key}.capital", f"{entry.capital!r} is not one of this entry's cities", "add it under cities, or correct the spelling")
            if entry.centre is None:
                self._problem(path, f"{key}.centre", "missing", "add the capital's [latitude, longitude], e.g. centre: [50.29, 127.53]")
        if entry.kind == "country" and entry.id != entry.country:
            self._problem(path, f"{key}.id", f"a country's id must be its code {entry.country!r}", f"set id: {entry.country}")
        if entry.region is not None:
            if entry.kind != "institution":
                self._problem(path, f"{key}.region", "only an institution stands in a region", "remove it, or make the entry an institution")
            else:
                self._located[entry.id] = (path, f"{key}.region", entry.region)
        city_ids = tuple(self._add_city(path, f"{key}.cities[{city.name}]", city, entry) for city in entry.cities)
        self._register(path, key, entry, GazetteerEntry(
            id=entry.id, name=entry.name, kind=entry.kind, country=entry.country, aliases=tuple(entry.aliases),
            native_name=entry.native_name, subtype=entry.subtype, capital=entry.capital, cities=city_ids,
            parent=entry.region, metonym_of=entry.metonym_of, tags=tuple(entry.tags), iso=entry.iso, centre=entry.centre,
        ))

    def _add_city(self, path: Path, key: str, city: _City, parent: _Entry) -> str:
        slug = re.sub(r"[\s'’]+", "-", city.name.strip().lower())
        city_id = city.id or f"city:{parent.country.lower()}:{slug}"
        if city_id in self._defined_in:
            self._problem(path, f"{key}.id", f"id {city_id!r} is already defined in {self._defined_in[city_id]}", "set an explicit, different id for one of the two cities")
            return city_id
        self._register(path, key, city, GazetteerEntry(
            id=city_id, name=city.name, kind="city", country=parent.country, aliases=tuple(city.aliases),
            native_name=city.native_name, parent=parent.id, tags=tuple(city.tags),
        ))
        return city_id

    def _register(self, path: Path, key: str, source: _City, entry: GazetteerEntry) -> None:
        self.entries[entry.id] = entry
        self._defined_in[entry.id] = f"{path} ({key})"
        names = list(source.aliases)
        if source.match_name:
            names += [source.name] + ([source.native_name] if source.native_name else [])
        for alias in names:
            self._add_rule(path, f"{key}.aliases", AliasRule(entry.id, alias, case_sensitive=_is_acronym(alias)))
            if self._name_forms is not None and not _is_acronym(alias):
                self._forms.extend(AliasRule(entry.id, form) for form in self._name_forms(alias) if form.lower() != alias.lower())
        for position, ambiguous in enumerate(source.ambiguous_aliases):
            where = f"{key}.ambiguous_aliases.{position}"
            if not (ambiguous.unless_next or ambiguous.unless_previous or ambiguous.only_next or ambiguous.only_previous):
                self._problem(path, where, "an ambiguous alias needs unless_next, unless_previous, only_next or only_previous", "add the context words, or move the name to aliases")
            self._add_rule(path, where, AliasRule(
                entry.id, ambiguous.alias, case_sensitive=_is_acronym(ambiguous.alias),
                unless_next=frozenset(w.lower() for w in ambiguous.unless_next),
                unless_previous=frozenset(w.lower() for w in ambiguous.unless_previous),
                only_next=frozenset(w.lower() for w in ambiguous.only_next),
                only_previous=frozenset(w.lower() for w in ambiguous.only_previous),
            ))

    def _add_rule(self, path: Path, key: str, rule: AliasRule) -> None:
        words = phrase_key(rule.alias)
        if not words:
            self._problem(path, key, f"alias {rule.alias!r} has no letters or digits", "remove it")
            return
        # "Irkutsk Region" also matches "Irkutsk Regional (Government)".
        variants = [rule] + ([replace(rule, alias=rule.alias + "al")] if words[-1] == "region" else [])
        for variant in variants:
            owner = self._alias_owner.setdefault(phrase_key(variant.alias), (variant.entry_id, f"{path} ({key})"))
            if owner[0] != variant.entry_id:
                self._problem(path, key, f"alias {variant.alias!r} of {variant.entry_id} also names {owner[0]} ({owner[1]})", "keep the alias on one entry, or make it an ambiguous alias with context words")
                continue
            self.rules.append(variant)

    def _problem(self, path: Path, key: str, message: str, hint: str) -> None:
        self.problems.append(ConfigProblem(str(path), key, message, hint))

    def build(self) -> Gazetteer:
        for entry_id, (path, key, region) in self._located.items():  # every file read: regions may come later
            found = self.entries.get(region)
            if found is None or found.kind not in REGION_KINDS or found.country != self.entries[entry_id].country:
                self._problem(path, key, f"{region!r} is no federal subject or province of the institution's country", "name its region's id, e.g. RU-PRI or CN-HL")
        if self.problems:
            raise ConfigError(self.problems)
        for form in self._forms:  # in entry order: a province's short name before its city's
            key = phrase_key(form.alias)
            if key and self._alias_owner.setdefault(key, (form.entry_id, "(generated)"))[0] == form.entry_id:
                self.rules.append(form)
        return Gazetteer(self.entries.values(), self.rules)


def _is_acronym(alias: str) -> bool:
    """An alias written in capitals (IMAR, P.R.C.) matches only in capitals."""
    letters = [c for c in alias if c.isalpha()]
    return len(letters) >= 2 and all(c.isupper() for c in letters)
