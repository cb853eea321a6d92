"""The real seed articles in ../shared/seeds: four cooperation stories and one hard negative.

The seeds live beside the repository, not in it; without them these tests skip.
"""

from __future__ import annotations

from pathlib import Path

import pytest

SEEDS = Path(__file__).resolve().parents[3] / "shared" / "seeds"

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(not SEEDS.is_dir(), reason=f"seed articles not found at {SEEDS} (they live in shared/, beside the repository)"),
]


def classify_seed(analyzer, number: str):
    (path,) = SEEDS.glob(f"{number}_*.txt")
    return analyzer.analyze_text(path.read_text(encoding="utf-8")).classification


@pytest.mark.parametrize("number", ["000", "001", "002", "004"])
def test_cooperation_seeds_are_positive_with_parties_on_both_sides(analyzer, number):
    result = classify_seed(analyzer, number)
    assert result.is_cooperation, result.reason
    assert result.russian_parties and result.chinese_parties and result.evidence
    assert result.level is not None and result.sectors


def test_irkutsk_is_found_through_the_angara_region_too(analyzer, gazetteer):
    result = classify_seed(analyzer, "000")
    assert result.russian_parties[0] == "RU-IRK"
    assert result.chinese_parties == ["CN"]
    (path,) = SEEDS.glob("000_*.txt")
    angara = [m for m in gazetteer.matcher.find(path.read_text(encoding="utf-8")) if m.text.lower() == "angara region"]
    assert angara and {m.canonical_id for m in angara} == {"RU-IRK"}


def test_krasnoyarsk_and_inner_mongolia_cooperate_interregionally(analyzer):
    result = classify_seed(analyzer, "002")
    assert result.level == "interregional"
    assert result.russian_parties[0] == "RU-KYA"
    assert result.chinese_parties == ["CN-NM"]


def test_a_russian_region_dealing_with_a_russian_arms_exporter_is_not_cooperation_with_china(analyzer):
    result = classify_seed(analyzer, "003")
    assert not result.is_cooperation
    assert result.chinese_parties == []
    assert "no Chinese party" in result.reason
