"""Russian and Chinese, read natively: language detection, names in every case, and the analyzer.

The articles in tests/resources/languages are ours: the seeds' facts restated in Russian,
and short Russian and Chinese news items with hard negatives among them.
"""

from __future__ import annotations

from pathlib import Path

import opencc
import pytest

from pipeline.core.errors import ConfigError
from processors.analyze import synthetic_article
from processors.gazetteer import load_gazetteer
from processors.languages import CachedForms, chinese_short_names, detect_language, load_language_profiles, name_forms
from tests.processors.conftest import GAZETTEER_DIR, LANGUAGES_DIR

ARTICLES = Path(__file__).resolve().parents[1] / "resources" / "languages"
SEEDS = Path(__file__).resolve().parents[3] / "shared" / "seeds"


@pytest.fixture(scope="module")
def gazetteer():
    """The gazetteer with every name in the forms the language profiles make."""
    return load_gazetteer(GAZETTEER_DIR, name_forms(load_language_profiles(LANGUAGES_DIR)))


def found(gazetteer, text: str) -> list[str]:
    return [mention.canonical_id for mention in gazetteer.matcher.find(text)]


def article(name: str, language: str | None = None):
    title, _, body = (ARTICLES / name).read_text(encoding="utf-8").partition("\n\n")
    return synthetic_article(body.strip(), title.strip()).model_copy(update={"language": language})


# --- which language --------------------------------------------------------------------------


@pytest.mark.parametrize(("text", "declared", "expected"), [
    ("Приморский край и провинция Хэйлунцзян подписали соглашение о сотрудничестве", None, "ru"),
    ("Приморский край и провинция Хэйлунцзян подписали соглашение о сотрудничестве", "en", "ru"),  # a template's lang=en
    ("黑龙江省与俄罗斯滨海边疆区签署合作协议", None, "zh"),  # not one of py3langid's Chinese dialects
    ("Primorye and Heilongjiang signed an agreement on grain exports this week", None, "en"),
    ("Primorye and Heilongjiang signed an agreement on grain exports this week", "en-GB", "en"),
    ("Уряд України підписав угоду з китайською компанією про будівництво заводу", None, "uk"),  # not taken for Russian
    ("Die Regionen vereinbarten eine engere Zusammenarbeit beim Getreidehandel", None, "de"),
    ("12 345 — 2026", "ru", "ru"),  # no letters: what the page said
])
def test_every_article_gets_a_language(text, declared, expected):
    assert detect_language(text, declared) == expected


# --- Russian names in every case -------------------------------------------------------------------

# Written out by hand, not generated: nominative, genitive, dative, accusative, instrumental, prepositional.
RUSSIAN_CASES = {
    "RU-IRK": ["Иркутская область", "Иркутской области", "Иркутской области", "Иркутскую область", "Иркутской областью", "Иркутской области"],
    "RU-KHA": ["Хабаровский край", "Хабаровского края", "Хабаровскому краю", "Хабаровский край", "Хабаровским краем", "Хабаровском крае"],
    "RU-PRI": ["Приморье", "Приморья", "Приморью", "Приморье", "Приморьем", "Приморье"],
    "RU-ZAB": ["Забайкальский край", "Забайкальского края", "Забайкальскому краю", "Забайкальский край", "Забайкальским краем", "Забайкальском крае"],
    "RU-AMU": ["Амурская область", "Амурской области", "Амурской области", "Амурскую область", "Амурской областью", "Амурской области"],
    "RU-BU": ["Республика Бурятия", "Республики Бурятия", "Республике Бурятия", "Республику Бурятия", "Республикой Бурятия", "Бурятии"],
    "RU-YEV": ["Еврейская автономная область", "Еврейской автономной области", "Еврейской автономной области",
               "Еврейскую автономную область", "Еврейской автономной областью", "ЕАО"],
    "RU-SAK": ["Сахалинская область", "Сахалинской области", "Сахалинской области", "Сахалинскую область", "Сахалинской областью", "Сахалинской области"],
    "RU-KYA": ["Красноярский край", "Красноярского края", "Красноярскому краю", "Красноярский край", "Красноярским краем", "Красноярском крае"],
    "RU-NVS": ["Новосибирская область", "Новосибирской области", "Новосибирской области", "Новосибирскую область", "Новосибирской областью", "Новосибирской области"],
    "RU-SA": ["Якутия", "Якутии", "Якутии", "Якутию", "Якутией", "Республике Саха (Якутия)"],
    "RU-KAM": ["Камчатский край", "Камчатского края", "Камчатскому краю", "Камчатский край", "Камчатским краем", "Камчатском крае"],
    "RU": ["Россия", "России", "России", "Россию", "Россией", "российской стороне"],
    # Chinese provinces and places, in Russian.
    "CN-HL": ["провинция Хэйлунцзян", "провинции Хэйлунцзян", "провинции Хэйлунцзян", "провинцию Хэйлунцзян", "провинцией Хэйлунцзян", "Хэйлунцзяне"],
    "CN-JL": ["провинция Цзилинь", "провинции Цзилинь", "провинции Цзилинь", "провинцию Цзилинь", "провинцией Цзилинь", "провинции Цзилинь"],
    "CN-NM": ["Внутренняя Монголия", "Внутренней Монголии", "Внутренней Монголии", "Внутреннюю Монголию", "Внутренней Монголией", "АРВМ"],
    "CN-LN": ["провинция Ляонин", "провинции Ляонин", "провинции Ляонин", "провинцию Ляонин", "провинцией Ляонин", "провинции Ляонин"],
    "CN-XJ": ["Синьцзян", "Синьцзяна", "Синьцзяну", "Синьцзян", "Синьцзяном", "Синьцзяне"],
    "CN-BJ": ["Пекин", "Пекина", "Пекину", "Пекин", "Пекином", "Пекине"],
    "city:cn:harbin": ["Харбин", "Харбина", "Харбину", "Харбин", "Харбином", "Харбине"],
    "city:cn:manzhouli": ["Маньчжурия", "Маньчжурии", "Маньчжурии", "Маньчжурию", "Маньчжурией", "Маньчжурии"],
    "CN": ["Китай", "Китая", "Китаю", "Китай", "Китаем", "КНР"],
    # A hyphenated name that declines its last part only.
    "RU-SPE": ["Санкт-Петербург", "Санкт-Петербурга", "Санкт-Петербургу", "Санкт-Петербург", "Санкт-Петербургом", "Санкт-Петербурге"],
}


@pytest.mark.parametrize("entry_id", sorted(RUSSIAN_CASES))
def test_russian_names_match_in_every_case(gazetteer, entry_id):
    for form in RUSSIAN_CASES[entry_id]:
        assert found(gazetteer, f"Речь шла о том, что {form} и партнёры") == [entry_id], form


def test_two_regions_sharing_one_head_noun_are_both_found(gazetteer):
    assert found(gazetteer, "губернаторы Свердловской и Амурской областей") == ["RU-SVE", "RU-AMU"]
    assert found(gazetteer, "делегации Хабаровского и Забайкальского краёв") == ["RU-KHA", "RU-ZAB"]


def test_a_governor_s_surname_is_not_the_plural_of_a_city(gazetteer):
    assert found(gazetteer, "Губернатор Василий Орлов приехал в Орёл и в Орле встретился с гостями") == ["city:ru:oryol"] * 2


def test_country_adjectives_and_compounds_name_both_sides(gazetteer):
    assert found(gazetteer, "китайская сторона и российские компании") == ["CN", "RU"]
    assert found(gazetteer, "российско-китайских отношений") == ["RU", "CN"]
    assert found(gazetteer, "в Хабаровском крае, в Забайкалье и в ЕАО") == ["RU-KHA", "RU-ZAB", "RU-YEV"]


def test_a_border_crossing_is_not_the_town_called_border(gazetteer):
    assert found(gazetteer, "через пограничный переход Пограничный — Суйфэньхэ") == ["city:cn:suifenhe"]
    assert found(gazetteer, "в посёлке Пограничный") == ["city:ru:pogranichny"]


# --- Chinese names --------------------------------------------------------------------------------


def test_chinese_names_with_and_without_their_suffix(gazetteer):
    assert chinese_short_names("广西壮族自治区") == {"广西壮族自治区", "广西"}
    assert found(gazetteer, "黑龙江省和黑龙江") == ["CN-HL", "CN-HL"]
    assert found(gazetteer, "内蒙古满洲里口岸") == ["CN-NM", "city:cn:manzhouli"]
    assert found(gazetteer, "吉林省与吉林市") == ["CN-JL", "city:cn:jilin-city"]  # the province keeps the short name


def test_pinyin_with_and_without_tones_names_the_place(gazetteer):
    assert found(gazetteer, "Hēilóngjiāng and Hā'ěrbīn signed with Jílín") == ["CN-HL", "city:cn:harbin", "CN-JL"]


def test_russian_regions_in_chinese(gazetteer):
    assert found(gazetteer, "滨海边疆区、哈巴罗夫斯克边疆区、阿穆尔州和外贝加尔边疆区") == ["RU-PRI", "RU-KHA", "RU-AMU", "RU-ZAB"]
    assert found(gazetteer, "符拉迪沃斯托克和海兰泡") == ["city:ru:vladivostok", "city:ru:blagoveshchensk"]


def test_chinese_country_names_in_compounds(gazetteer):
    assert found(gazetteer, "中俄博览会") == ["CN", "RU"]
    assert found(gazetteer, "俄中两国") == ["RU", "CN"]
    assert found(gazetteer, "白俄罗斯和埃塞俄比亚") == []  # Belarus and Ethiopia are not Russia
    assert found(gazetteer, "中心城市") == []  # 中 alone is "middle"


def test_a_profile_for_another_language_than_its_file_name_says_so(tmp_path):
    (tmp_path / "ru.yaml").write_text((LANGUAGES_DIR / "zh.yaml").read_text(encoding="utf-8"), encoding="utf-8")
    with pytest.raises(ConfigError) as caught:
        load_language_profiles(tmp_path)
    [problem] = caught.value.problems
    assert problem.key == "language" and "'zh' in a file named ru.yaml" in problem.message


# --- the analyzer -------------------------------------------------------------------------------------


@pytest.mark.slow
def test_russian_and_chinese_articles_are_read_in_their_language(analyzer):
    results = {name: analyzer.analyze([article(name)])[0] for name in (
        "zh-heilongjiang-amur.txt", "zh-hunchun-primorye.txt", "zh-smuggling.txt", "zh-belarus.txt",
        "ru-japan-lng.txt", "ru-smuggling.txt",
    )}
    amur = results["zh-heilongjiang-amur.txt"]
    assert amur.article.language == "zh" and amur.article.title.startswith("黑龙江省")  # kept as written
    verdict = amur.classification
    assert verdict.is_cooperation and verdict.level == "interregional"
    assert (verdict.russian_parties, verdict.chinese_parties) == (["RU-AMU"], ["CN-HL"])
    assert {"transport_logistics", "trade"} <= set(verdict.sectors)
    assert [(figure.value, figure.unit) for figure in amur.figures] == [(38.0, "% change"), (2.79e9, "CNY")]
    hunchun = results["zh-hunchun-primorye.txt"].classification
    assert hunchun.is_cooperation and hunchun.russian_parties == ["RU-PRI"] and "tourism" in hunchun.sectors
    for negative in ("zh-smuggling.txt", "zh-belarus.txt", "ru-japan-lng.txt", "ru-smuggling.txt"):
        assert not results[negative].classification.is_cooperation, (negative, results[negative].classification.reason)
    assert "no Russian party" in results["zh-belarus.txt"].classification.reason
    assert "dispute cues" in results["ru-smuggling.txt"].classification.reason


@pytest.mark.slow
@pytest.mark.parametrize("variant", ["s2t.json", "s2hk.json", "s2tw.json"])
def test_chinese_in_traditional_characters_reads_as_in_simplified(analyzer, variant):
    """Our Heilongjiang–Amur report written in Traditional characters (as a Hong Kong or Taiwan
    outlet, or many provincial sites, would): the same parties, sectors and figures (億 is 亿)."""
    simplified = article("zh-heilongjiang-amur.txt")
    converter = opencc.OpenCC(variant)
    traditional = simplified.model_copy(update={
        "id": "7" * 32, "title": converter.convert(simplified.title), "text": converter.convert(simplified.text),
    })
    assert traditional.text != simplified.text and "億" in traditional.text
    expected, found = analyzer.analyze([simplified, traditional])
    assert found.article.text == simplified.text  # read, and quoted, in Simplified
    assert (found.classification.russian_parties, found.classification.chinese_parties) == (["RU-AMU"], ["CN-HL"])
    assert found.classification.sectors == expected.classification.sectors
    assert found.classification.level == expected.classification.level
    assert [(figure.value, figure.unit) for figure in found.figures] == [(38.0, "% change"), (2.79e9, "CNY")]


@pytest.mark.slow
def test_russian_entities_the_gazetteer_does_not_know_come_from_natasha(analyzer):
    text = ("Генеральный директор ООО «Дальлеспром» Иван Петров и харбинская компания «Хуатай» подписали в Приморье "
            "соглашение о поставках древесины в Китай.")
    entities = {(entity.text, entity.label, entity.canonical_id) for entity in analyzer.analyze([synthetic_article(text)])[0].entities}
    assert {("ООО «Дальлеспром»", "ORG", None), ("Иван Петров", "PERSON", None), ("Хуатай", "ORG", None)} <= entities
    assert ("Приморье", "federal_subject", "RU-PRI") in entities  # the gazetteer's, with its id, wins where both see a name


@pytest.mark.slow
@pytest.mark.skipif(not SEEDS.is_dir(), reason=f"seed articles not found at {SEEDS}")
@pytest.mark.parametrize("number", ["000", "001", "002", "003", "004"])
def test_the_seeds_restated_in_russian_classify_like_the_english_originals(analyzer, number):
    (seed,) = SEEDS.glob(f"{number}_*.txt")
    english = analyzer.analyze_text(seed.read_text(encoding="utf-8")).classification
    russian_result = analyzer.analyze([article(f"ru-seed-{number}.txt", language="en")])[0]
    russian = russian_result.classification
    assert russian_result.article.language == "ru"
    assert russian.is_cooperation == english.is_cooperation, russian.reason
    if number == "001":  # the Russian text restates three of the original's many speakers
        assert set(russian.russian_parties) <= set(english.russian_parties)
        assert set(russian.chinese_parties) <= set(english.chinese_parties)
    else:
        assert set(russian.russian_parties) == set(english.russian_parties)
        assert set(russian.chinese_parties) == set(english.chinese_parties)
    if number in ("000", "002"):
        assert russian.level == english.level


@pytest.mark.parametrize(("text", "expected"), [
    ("Khabarovskiy Kray signed a ferry protocol with Heilongjiang.", ["RU-KHA", "CN-HL"]),
    ("The Khabarovsky Krai government and Harbin met.", ["RU-KHA", "city:cn:harbin"]),
    ("Officials of Primorskiy Kray and Jilin agreed.", ["RU-PRI", "CN-JL"]),
    ("Yevreyskaya Avtonomnaya Oblast and Heilongjiang", ["RU-YEV", "CN-HL"]),
    ("A train crossed at Nizhneleninskoe.", ["city:ru:nizhneleninskoye"]),
    ("Губернатор провинции Хейлунцзян и Хейлунцзян", ["CN-HL", "CN-HL"]),  # a Russian newsroom's other spelling
])
def test_a_russian_name_matches_in_the_spellings_of_every_transliteration_scheme(gazetteer, text, expected):
    assert found(gazetteer, text) == expected


def test_name_forms_are_made_once_and_read_back_from_the_cache(tmp_path):
    made: list[str] = []
    forms = name_forms(load_language_profiles(LANGUAGES_DIR))

    def counted(name: str) -> set[str]:
        made.append(name)
        return forms(name)

    first = CachedForms(counted, tmp_path, LANGUAGES_DIR)
    assert first("Хабаровский край") == forms("Хабаровский край") and "хабаровском крае" in first("Хабаровский край")
    first.save()
    second = CachedForms(counted, tmp_path, LANGUAGES_DIR)
    assert second("Хабаровский край") == forms("Хабаровский край")
    assert made == ["Хабаровский край"]  # the second start read it
    assert second.path == first.path and second.path.exists()

    edited = tmp_path / "languages"
    edited.mkdir()
    for profile in Path(LANGUAGES_DIR).glob("*.yaml"):
        (edited / profile.name).write_text(profile.read_text(encoding="utf-8") + "\n# edited\n", encoding="utf-8")
    assert CachedForms(counted, tmp_path, edited).path != first.path  # what the forms depend on changed: a new file


def test_an_unwritable_cache_only_means_forms_are_made_again(tmp_path):
    blocked = tmp_path / "file"
    blocked.write_text("not a directory")
    forms = CachedForms(name_forms(load_language_profiles(LANGUAGES_DIR)), blocked, LANGUAGES_DIR)
    assert "амурской области" in forms("Амурская область")
    forms.save()  # logs, raises nothing
