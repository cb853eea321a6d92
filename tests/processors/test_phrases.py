"""Phrases found in a text's words: the longest first, ``word*`` as a prefix, diacritics folded."""

from __future__ import annotations

from processors.phrases import PhraseIndex, tokenize


def test_phrase_index_prefers_the_longest_phrase_and_honours_prefixes():
    index = PhraseIndex({"joint": "weak", "joint venture*": "strong", "invest*": "weak"})
    hits = index.find(tokenize("A joint ventures deal, joint plans and investors."))
    assert [(hit.value, hit.first, hit.last) for hit in hits] == [("strong", 1, 3), ("weak", 4, 5), ("weak", 7, 8)]


def test_phrases_fold_diacritics_and_stay_within_a_clause():
    index = PhraseIndex({"sao paulo": "city", "amur oblast": "region"})
    assert [hit.value for hit in index.find(tokenize("São Paulo, and later Amur Oblast"))] == ["city", "region"]
    assert index.find(tokenize("along the Amur, oblast officials said")) == []
