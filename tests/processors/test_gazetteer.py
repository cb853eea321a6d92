"""The gazetteer files, their validation, and the cheap-pass matcher."""

from __future__ import annotations

import re
from collections import Counter
from pathlib import Path

import pytest

from pipeline.core.errors import ConfigError
from processors.gazetteer import load_gazetteer


def ids(gazetteer, text: str) -> list[str]:
    return [mention.canonical_id for mention in gazetteer.matcher.find(text)]


# --- the data ----------------------------------------------------------------------------


def test_russia_has_its_89_federal_subjects_and_china_its_34_provincial_divisions(gazetteer):
    russian = [e for e in gazetteer.of_kind("federal_subject") if e.country == "RU"]
    chinese = [e for e in gazetteer.of_kind("province") if e.country == "CN"]
    assert len(russian) == 89
    assert len(chinese) == 34
    assert Counter(e.subtype for e in russian) == {
        "republic": 24, "krai": 9, "oblast": 48, "federal_city": 3, "autonomous_oblast": 1, "autonomous_okrug": 4,
    }
    assert Counter(e.subtype for e in chinese) == {"province": 23, "autonomous_region": 5, "municipality": 4, "sar": 2}


def test_place_ids_are_iso_codes_except_the_documented_made_up_ones(gazetteer):
    places = gazetteer.of_kind("federal_subject") + gazetteer.of_kind("province")
    made_up = sorted(e.id for e in places if not e.iso)
    assert made_up == ["RU-CRIMEA", "RU-DPR", "RU-KHERSON", "RU-LPR", "RU-SEVASTOPOL", "RU-ZAPOROZHYE"]
    for entry in places:
        if entry.iso:
            assert re.fullmatch(r"RU-[A-Z]{2,3}|CN-[A-Z]{2}", entry.id), entry.id
    assert {"CN-HL", "CN-NM", "CN-BJ", "CN-HK", "CN-TW", "RU-IRK", "RU-KYA", "RU-MOW"} <= gazetteer.entries.keys()


def test_every_subject_and_province_has_a_native_name_and_its_capital_among_its_cities(gazetteer):
    for entry in gazetteer.of_kind("federal_subject") + gazetteer.of_kind("province"):
        assert entry.native_name, entry.id
        latitude, longitude = entry.centre
        # Russia's centres from Kaliningrad to Chukotka, north of 41°; China's from Hainan to Heilongjiang, east of 73°.
        assert (41 < latitude < 70 and 20 < longitude < 178) if entry.country == "RU" else (18 < latitude < 54 and 73 < longitude < 135), entry.id
        capital_is_itself = entry.capital == entry.name
        assert capital_is_itself or entry.capital in {gazetteer[city].name for city in entry.cities}, entry.id


def test_border_and_port_cities_know_their_parent(gazetteer):
    parents = {
        "Blagoveshchensk": "RU-AMU", "Heihe": "CN-HL", "Suifenhe": "CN-HL", "Manzhouli": "CN-NM", "Harbin": "CN-HL",
        "Dalian": "CN-LN", "Hunchun": "CN-JL", "Tongjiang": "CN-HL", "Zabaykalsk": "RU-ZAB", "Vladivostok": "RU-PRI",
    }
    for name, parent in parents.items():
        (mention,) = gazetteer.matcher.find(name)
        city = gazetteer[mention.canonical_id]
        assert (city.kind, city.parent) == ("city", parent), name
        assert city.id in gazetteer[parent].cities


def test_institutions_and_companies_carry_their_country(gazetteer):
    expected = {
        "Rosatom": ("org:rosatom", "company", "RU"), "Gazprom": ("org:gazprom", "company", "RU"),
        "CNPC": ("org:cnpc", "company", "CN"), "Russian Direct Investment Fund": ("org:rdif", "institution", "RU"),
        "Rosoboronexport": ("org:rosoboronexport", "company", "RU"),
        "the Federation Council": ("org:federation-council", "institution", "RU"),
        "the NPC": ("org:npc", "institution", "CN"),
    }
    for text, (entry_id, kind, country) in expected.items():
        (mention,) = gazetteer.matcher.find(text)
        assert (mention.canonical_id, mention.kind, mention.country) == (entry_id, kind, country)


def test_every_alias_resolves_to_its_own_entry(gazetteer):
    for rule in gazetteer.rules:
        if rule.only_next or rule.only_previous:  # a name only beside given words (中 in 中俄): test_chinese_country_names_in_compounds
            continue
        found = gazetteer.matcher.find(rule.alias)
        assert [m.canonical_id for m in found] == [rule.entry_id], rule.alias
        assert (found[0].start, found[0].end) == (0, len(rule.alias.rstrip(").")))


# --- names that need context ----------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("Farmers in the Amur Region expect a record harvest.", ["RU-AMU"]),
        ("Amur governor Vasily Orlov opened the fair.", ["RU-AMU"]),
        ("Ice has covered the Amur River since November.", []),
        ("Barges crossed the Amur near the border.", []),
        ("Amur tigers were counted by rangers.", []),
        ("A pulp mill is planned in Amursk.", ["city:ru:amursk"]),
        ("The Jewish Autonomous Region borders Heilongjiang.", ["RU-YEV", "CN-HL"]),
        ("Heilongjiang River levels fell.", []),
        ("China patrols the South China Sea.", ["CN"]),
        ("Delegates from the Angara region arrived.", ["RU-IRK"]),
        ("Primorye and Trans-Baikal and Yakutia and IMAR", ["RU-PRI", "RU-ZAB", "RU-SA", "CN-NM"]),
        ("imar is not an acronym here", []),
        ("Inner Mongolia borders Mongolia.", ["CN-NM"]),
        ("The Krasnoyarsk Regional Government met guests.", ["RU-KYA"]),
        ("Vladimir Putin visited the city of Vladimir.", ["org:ru-president", "city:ru:vladimir"]),
        ("The Moscow Region and Moscow", ["RU-MOS", "RU-MOW"]),
        ("The Amur Regional Duma and the State Duma", ["RU-AMU", "org:state-duma"]),
        ("St. Petersburg and Sakha (Yakutia)", ["RU-SPE", "RU-SA"]),
        ("黑龙江省与阿穆尔州签署协议", ["CN-HL", "RU-AMU"]),
        ("Амурская область и Приамурье", ["RU-AMU", "RU-AMU"]),
        # The river crossed is not the region.
        ("The first train crosses Amur to China", ["CN"]),
        ("The Shanghai Cooperation Organization met in Shanghai", ["CN-SH"]),
        ("上海合作组织在上海开会", ["CN-SH"]),
        ("俄气总裁会见中俄气候专家", ["org:gazprom", "CN", "RU"]),
        ("珲春至马哈林诺铁路,卡梅绍瓦娅站", ["city:cn:hunchun", "city:ru:makhalino", "city:ru:kamyshovaya"]),
    ],
)
def test_ambiguous_names_resolve_by_context(gazetteer, text, expected):
    assert ids(gazetteer, text) == expected


def test_mentions_carry_offsets_into_the_original_text(gazetteer):
    text = "Talks in Harbin: the People’s Republic of China and the Russian Federation."
    for mention in gazetteer.matcher.find(text):
        assert text[mention.start : mention.end] == mention.text
    assert ids(gazetteer, text) == ["city:cn:harbin", "CN", "RU"]


def test_a_phrase_does_not_run_across_a_line_break_or_a_comma(gazetteer):
    assert ids(gazetteer, "trade with Amur\nRegion officials") == ["RU-AMU"]  # bare "Amur" only
    assert ids(gazetteer, "Inner, Mongolia") == []


# --- validation --------------------------------------------------------------------------


def write(directory: Path, name: str, text: str) -> Path:
    directory.mkdir(exist_ok=True)
    (directory / name).write_text(text, encoding="utf-8")
    return directory


def problems(directory: Path) -> list:
    with pytest.raises(ConfigError) as caught:
        load_gazetteer(directory)
    return caught.value.problems


def test_a_missing_capital_and_an_unknown_key_are_named_by_file_entry_and_key(tmp_path):
    directory = write(tmp_path / "g", "places.yaml", """
entries:
  - {id: RU-XX, name: Test Oblast, kind: federal_subject, country: RU, capital: Nowhere,
     cities: [{name: Somewhere}]}
  - {id: RU-YY, name: Other Oblast, kind: federal_subject, country: RU, capitol: Town}
""")
    found = {(p.key, p.message.split(":")[0]) for p in problems(directory)}
    assert ("entries[RU-XX].capital", "'Nowhere' is not one of this entry's cities") in found
    assert ("entries[RU-XX].centre", "missing") in found  # where the map would draw it
    assert any(key == "entries[RU-YY].capitol" for key, _ in found)
    assert all(p.file.endswith("places.yaml") and p.hint for p in problems(directory))


def test_an_institution_s_region_must_be_one_of_its_country_s(tmp_path):
    directory = write(tmp_path / "g", "a.yaml", """
entries:
  - {id: org:campus, name: Border University, kind: institution, country: RU, region: CN-HL}
  - {id: org:firm, name: Border Firm, kind: company, country: RU, region: RU-AMU}
  - {id: RU-AMU, name: Amur Oblast, kind: federal_subject, country: RU, capital: Blagoveshchensk, cities: [{name: Blagoveshchensk}]}
  - {id: CN-HL, name: Heilongjiang, kind: province, country: CN, capital: Harbin, cities: [{name: Harbin}]}
""")
    found = {(p.key, p.message) for p in problems(directory)}
    assert ("entries[org:campus].region", "'CN-HL' is no federal subject or province of the institution's country") in found
    assert ("entries[org:firm].region", "only an institution stands in a region") in found


def test_an_alias_shared_by_two_entries_and_a_repeated_id_are_refused(tmp_path):
    directory = write(tmp_path / "g", "a.yaml", """
entries:
  - {id: org:one, name: One Corp, kind: company, country: RU, aliases: [Unity]}
  - {id: org:two, name: Two Corp, kind: company, country: CN, aliases: [unity]}
""")
    write(directory, "b.yaml", "entries:\n  - {id: org:one, name: Again, kind: company, country: RU}\n")
    messages = [p.message for p in problems(directory)]
    assert any("'unity' of org:two also names org:one" in m for m in messages)
    assert any("id 'org:one' is already defined in" in m for m in messages)


def test_an_empty_directory_and_broken_yaml_are_config_errors(tmp_path):
    (tmp_path / "empty").mkdir()
    assert "no gazetteer" in problems(tmp_path / "empty")[0].message
    directory = write(tmp_path / "g", "bad.yaml", "entries: [\n")
    assert "invalid YAML" in problems(directory)[0].message
