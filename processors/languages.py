"""Languages: which one an article is written in, and the profile the analyzer reads it with.

:func:`detect_language` settles ``Article.language`` for every article: the language the
page or feed declared when the text agrees with it (same script), else what py3langid
finds in the text. A text mostly in CJK characters is Chinese outright (py3langid would
split it into Chinese dialects).

A :class:`LanguageProfile` (``config/languages/<code>.yaml``) is what is particular to
one language: the spaCy pipeline that finds sentences, how the gazetteer's names in that
language are inflected, and the classifier's cue, context and sector lexicons. English is
the profile ``config/classifier.yaml`` itself holds; the weights and the places are shared,
so every language names the same canonical ids. :func:`russian_forms` makes the case forms
of a Russian name with pymorphy3 (``name_forms: russian_cases``).
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import json
import logging
import re
from collections.abc import Callable
from functools import lru_cache
from itertools import islice, product
from pathlib import Path
from typing import Literal

import iuliia
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from pipeline.core.errors import ConfigError, ConfigProblem
from pipeline.core.files import replace_file
from pipeline.core.messages import primary_language
from pipeline.core.settings import problems_from, read_yaml

__all__ = [
    "DEFAULT_LANGUAGE", "CachedForms", "LanguageProfile", "chinese_short_names", "detect_language", "load_language_profiles", "name_forms",
    "russian_forms",
]

log = logging.getLogger(__name__)

DEFAULT_LANGUAGE = "en"
NameForms = Literal["as_written", "russian_cases", "chinese_short_names"]

# Languages py3langid chooses among: the ones news about Russia and China is written in,
# and their neighbours, so that a Ukrainian or Kazakh text is not taken for Russian.
DETECTABLE = (
    "en", "ru", "zh", "uk", "be", "kk", "ky", "mn", "bg", "sr", "ja", "ko", "vi", "de", "fr", "es", "it", "pt",
    "nl", "pl", "cs", "sk", "tr", "ar", "fa", "hi", "id", "ms", "th", "fi", "sv", "no", "da", "hu", "ro", "el",
)
# Han characters (CJK Unified Ideographs, Extension A, Compatibility Ideographs): Chinese.
HAN_RANGES = "\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff"
HAN = re.compile(f"[{HAN_RANGES}]")
_KANA = re.compile(r"[\u3040-\u30ff]")
_HANGUL = re.compile(r"[\uac00-\ud7af]")
_CYRILLIC = re.compile(r"[\u0400-\u04ff]")
_SCRIPTS = {"ru": "cyrillic", "uk": "cyrillic", "be": "cyrillic", "kk": "cyrillic", "ky": "cyrillic", "mn": "cyrillic",
            "bg": "cyrillic", "sr": "cyrillic", "zh": "han", "ja": "han", "ko": "hangul"}  # fmt: skip
SAMPLE_CHARS = 3_000  # enough text to tell; detection stays cheap on long articles


class _Strict(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class LanguageProfile(_Strict):
    """``config/languages/<code>.yaml``: see the comments at the top of ``ru.yaml``."""

    language: str = Field(pattern=r"^[a-z]{2,3}$")
    pipeline: str = Field(
        "blank", description="A spaCy pipeline name; 'blank' for spaCy's tokenizer and a sentencizer; 'natasha' adds natasha's Russian NER",
    )
    name_forms: NameForms = "as_written"
    # The classifier's lexicons, validated by processors.classify (same shape as classifier.yaml's).
    cues: dict
    context: dict
    acts: dict
    sectors: dict

    def lexicons(self) -> dict[str, dict]:
        return {"cues": self.cues, "context": self.context, "acts": self.acts, "sectors": self.sectors}


def load_language_profiles(directory: Path | str) -> dict[str, LanguageProfile]:
    """Every ``*.yaml`` profile in ``directory``, by language code (none when the directory is absent).

    :raises ConfigError: a file is invalid, or names another language than its file name.
    """
    directory = Path(directory)
    profiles: dict[str, LanguageProfile] = {}
    problems: list[ConfigProblem] = []
    for path in sorted(directory.glob("*.yaml")) if directory.is_dir() else []:
        try:
            profile = LanguageProfile.model_validate(read_yaml(path))
        except ValidationError as exc:
            problems.extend(problems_from(path, exc))
            continue
        if profile.language != path.stem:
            problems.append(ConfigProblem(str(path), "language", f"{profile.language!r} in a file named {path.name}",
                                          f"name the file {profile.language}.yaml, or correct the code"))
            continue
        profiles[profile.language] = profile
    if problems:
        raise ConfigError(problems)
    return profiles


def detect_language(text: str, declared: str | None = None) -> str:
    """The language of ``text``: ``declared`` when the text is written in its script, else
    what the text itself says; :data:`DEFAULT_LANGUAGE` for a text with no letters."""
    sample = text[:SAMPLE_CHARS]
    letters = _letters(sample)
    declared = primary_language(declared)
    if not letters:
        return declared or DEFAULT_LANGUAGE
    script = _script_of(sample, letters)
    if declared and _SCRIPTS.get(declared, "latin") == script:
        return declared
    if script == "han":
        return "ja" if len(_KANA.findall(sample)) > letters * 0.05 else "zh"
    if script == "hangul":
        return "ko"
    language, _ = _identifier().classify(sample)
    return language


def _letters(text: str) -> int:
    # str.isalpha is what the pattern [^\W\d_] matches, bar numerals that are no digits (²,
    # ½), at a quarter of its cost: counting a sample's letters was half of the cheap pass.
    return sum(map(str.isalpha, text))


def _script_of(sample: str, letters: int) -> str:
    for pattern, script in ((HAN, "han"), (_HANGUL, "hangul"), (_CYRILLIC, "cyrillic")):
        if len(pattern.findall(sample)) > letters * 0.3:
            return script
    return "latin"


@lru_cache(maxsize=1)
def _identifier():
    from py3langid.langid import MODEL_FILE, LanguageIdentifier  # loads its model: once, when first needed

    identifier = LanguageIdentifier.from_model_file(MODEL_FILE)
    identifier.set_languages(list(DETECTABLE))
    return identifier


# --- Name forms -------------------------------------------------------------------------------


def name_forms(profiles: dict[str, LanguageProfile]) -> Callable[[str], set[str]]:
    """The forms of a gazetteer name, by the script it is written in and the ``name_forms`` of
    the profile of that script's language: Cyrillic names in Russian cases, Chinese names with
    their short names. A name of a script no loaded profile inflects is kept as written."""
    makers = {"russian_cases": russian_names, "chinese_short_names": chinese_short_names}
    by_script = {
        _SCRIPTS.get(profile.language, "latin"): makers[profile.name_forms]
        for profile in profiles.values() if profile.name_forms in makers
    }

    def forms(name: str) -> set[str]:
        letters = _letters(name)
        maker = by_script.get(_script_of(name, letters)) if letters else None
        return maker(name) if maker is not None else {name}

    return forms


class CachedForms:
    """:func:`name_forms` remembered in a file: making a name's Russian cases costs pymorphy3
    seconds at every start for the same answers. The file's name carries a digest of what the
    forms depend on (this module's code, the language profiles, pymorphy3's version), so a
    change to any of them starts a new file; names it does not hold are made and added.
    An unwritable directory only means the forms are made again next time."""

    def __init__(self, forms: Callable[[str], set[str]], directory: Path | str, languages_dir: Path | str):
        self._forms = forms
        self.path = Path(directory) / f"name-forms-{_forms_digest(Path(languages_dir))}.json"
        try:
            self._known: dict[str, list[str]] = json.loads(self.path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            self._known = {}
        self._added = False

    def __call__(self, name: str) -> set[str]:
        if name not in self._known:
            self._known[name] = sorted(self._forms(name))
            self._added = True
        return set(self._known[name])

    def save(self) -> None:
        """Write the forms made since the file was read (atomically: several processes start at once)."""
        if not self._added:
            return
        try:
            replace_file(self.path, json.dumps(self._known, ensure_ascii=False).encode("utf-8"))
        except OSError as exc:
            log.info("name forms not cached in %s: %s", self.path.parent, exc)


def _forms_digest(languages_dir: Path) -> str:
    digest = hashlib.sha256(Path(__file__).read_bytes())
    for profile in sorted(languages_dir.glob("*.yaml")):
        digest.update(profile.name.encode() + profile.read_bytes())
    digest.update(importlib.metadata.version("pymorphy3").encode())
    return digest.hexdigest()[:16]


# Administrative suffixes a Chinese name is also written without: 黑龙江省 → 黑龙江,
# 广西壮族自治区 → 广西, 哈尔滨市 → 哈尔滨. Longest first, so 壮族自治区 goes before 自治区.
CHINESE_SUFFIXES = ("壮族自治区", "回族自治区", "维吾尔自治区", "特别行政区", "自治区", "自治州", "省", "市")


@lru_cache(maxsize=1)
def _to_simplified():
    import opencc  # OpenCC's tables: loaded once, on the first Chinese article

    return opencc.OpenCC("t2s.json")


def simplified_chinese(text: str) -> str:
    """``text`` with Traditional Chinese characters and phrases in their Simplified forms
    (OpenCC ``t2s``), so that one set of names, cues and numerals reads both scripts. Text
    already Simplified, or in another script, comes back as it was. A conversion that would
    change the length (none of OpenCC's t2s phrases does today) is not made, so that offsets
    into the text stay true."""
    converted = _to_simplified().convert(text)
    return converted if len(converted) == len(text) else text


def chinese_short_names(name: str) -> set[str]:
    """``name`` and, for a province's or city's full name, its short name (at least two characters)."""
    for suffix in CHINESE_SUFFIXES:
        if name.endswith(suffix) and len(name) - len(suffix) >= 2:
            return {name, name.removesuffix(suffix)}
    return {name}


# --- Russian case forms ---------------------------------------------------------------------

CASES = ("nomn", "gent", "datv", "accs", "ablt", "loct")
_INFLECTED = {"NOUN", "ADJF", "PRTF"}
_WORDS = re.compile(r"[А-Яа-яЁё]+|[^А-Яа-яЁё]+")


@lru_cache(maxsize=1)
def _morph():
    import pymorphy3  # with pymorphy3-dicts-ru; loads the dictionary once

    return pymorphy3.MorphAnalyzer(lang="ru")


# The transliteration schemes newsrooms and registries write Russian names in, ASCII ones:
# "Хабаровский край" → Khabarovskiy kray (BGN/PCGN), Khabarovsky krai (Wikipedia), ...
TRANSLITERATIONS = (
    iuliia.BGN_PCGN, iuliia.WIKIPEDIA, iuliia.ICAO_DOC_9303, iuliia.MOSMETRO, iuliia.YANDEX_MAPS,
    iuliia.TELEGRAM, iuliia.GOST_52535, iuliia.UNGEGN_1987,
)
MAX_SPELLINGS = 64


def russian_names(name: str) -> set[str]:
    """A Russian name in its case forms and in the Latin spellings of its nominative."""
    return russian_forms(name) | latin_spellings(name)


@lru_cache(maxsize=None)
def latin_spellings(name: str) -> set[str]:
    """The ASCII spellings of a Cyrillic name by :data:`TRANSLITERATIONS`, word by word in
    every combination (a newsroom may follow one scheme for the name and another for "krai"),
    at most :data:`MAX_SPELLINGS`: "Хабаровский край" → khabarovskiy kray, khabarovsky krai, ..."""
    if name.isupper():
        return set()  # an acronym (ЕАО) is not written out in Latin letters
    words = name.lower().split()
    spellings_of_word = [
        sorted({spelling for schema in TRANSLITERATIONS if (spelling := schema.translate(word)).isascii() and spelling.strip()})
        for word in words
    ]
    if not all(spellings_of_word):
        return set()
    spellings = {" ".join(choice) for choice in islice(product(*spellings_of_word), MAX_SPELLINGS)}
    return {spelling for spelling in spellings if spelling != name.lower()}


@lru_cache(maxsize=None)
def russian_forms(name: str) -> set[str]:
    """``name`` in every case, singular and plural, lower-cased: "Иркутская область" →
    {"иркутской области", "иркутскую область", "иркутскими областями", ...}.

    Each case is made twice: with every inflecting word inflected, and with only the words up
    to the first noun ("провинции Хэйлунцзян", "Республики Саха (Якутия)": what follows the
    head noun stays as written). Words pymorphy3 does not inflect (acronyms, foreign names)
    stay as written. A name in capitals (ЕАО, КНР) is an acronym: it keeps only its own form.
    """
    if name.isupper():
        return {name}
    parts = _WORDS.findall(name)
    forms = {name.lower()}
    # A lone adjective ("китайский") is also said in every gender: "китайская сторона".
    lone_word = len([part for part in parts if part[0].isalpha()]) == 1
    lone_adjective = lone_word and not _is_noun(name.strip())
    genders = ("masc", "femn", "neut") if lone_adjective else (None,)
    # A city's one-word name has no plural worth matching, and its plural can be a surname:
    # "Орёл" → "орлов" (Governor Orlov).
    plurals = [] if lone_word and not lone_adjective else [(None, "plur")]
    for gender, number in [(gender, "sing") for gender in genders] + plurals:
        for case in CASES:
            whole, head, tail = [], [], []
            head_done = False
            for index, part in enumerate(parts):
                grammemes = {case, number} | ({gender} if gender else set())
                inflected = _inflect(part, grammemes) if _WORDS.fullmatch(part) and part[0].isalpha() else None
                whole.append(inflected or part)
                head.append(part if head_done else (inflected or part))
                tail.append(inflected or part if index == len(parts) - 1 else part)
                if inflected is not None and _is_noun(part):
                    head_done = True
            forms.update(("".join(whole).lower(), "".join(head).lower()))
            if "-" in name and " " not in name:
                # A hyphenated name may decline its last part only: Санкт-Петербурга, Южно-Сахалинска.
                forms.add("".join(tail).lower())
    return forms | _shared_head_forms(parts)


# Regions named two at a time share one plural head noun: "Свердловской и Амурской областей",
# "Хабаровский и Приморский края".
_SHARED_HEADS = ("область", "край", "округ")


def _shared_head_forms(parts: list[str]) -> set[str]:
    """The forms of an "adjective + область/край/округ" name when it shares its head noun with
    another: the adjective before "и" ("свердловской и"), and the adjective in the singular
    before the head in the plural ("амурской областей")."""
    words = [part for part in parts if part[0].isalpha()]
    if len(words) != 2 or words[1].lower() not in _SHARED_HEADS or _is_noun(words[0]):
        return set()
    forms = set()
    for case in CASES:
        adjective = _inflect(words[0], {case, "sing"})
        head = _inflect(words[1], {case, "plur"})
        if adjective and head:
            forms.update((f"{adjective} и".lower(), f"{adjective} {head}".lower()))
    return forms


def _inflect(word: str, grammemes: set[str]) -> str | None:
    if not re.fullmatch(r"[А-Яа-яЁё]+", word):
        return None
    parsed = next((p for p in _parses(word) if p.tag.POS in _INFLECTED and "nomn" in p.tag), None)
    if parsed is None:
        return None
    form = parsed.inflect(grammemes)
    return _like(word, form.word) if form is not None else None


def _is_noun(word: str) -> bool:
    return any(p.tag.POS == "NOUN" and "nomn" in p.tag for p in _parses(word))


@lru_cache(maxsize=4096)
def _parses(word: str) -> tuple:
    """pymorphy3's readings of ``word``: a name's words are inflected into a dozen forms each,
    and "область", "край", "республика" recur in most names."""
    return tuple(_morph().parse(word))


def _like(original: str, form: str) -> str:
    return form.capitalize() if original[:1].isupper() else form
