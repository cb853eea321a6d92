"""The analyzer: its warm-up before a processor joins its group, and what the model reads."""

import pytest

from processors import languages


@pytest.mark.slow
def test_warm_up_loads_the_language_identifier_so_the_first_article_does_not_wait_for_it(analyzer):
    languages._identifier.cache_clear()
    analyzer.warm_up()
    assert languages._identifier.cache_info().currsize == 1
    loads = languages._identifier.cache_info().misses
    analyzer.analyze_text("A trade fair opened in the harbour town on Monday.")
    assert languages._identifier.cache_info().misses == loads


@pytest.mark.slow
def test_the_model_s_entities_are_recognised_in_cooperation_articles_only(analyzer):
    signed = analyzer.analyze_text(
        "Officials of Amur Oblast and Heilongjiang Province signed an agreement on Tuesday to build a grain "
        "terminal in Blagoveshchensk. Ivan Sorokin, head of the regional trade ministry, said shipments would "
        "start next year.",
        "Amur Oblast and Heilongjiang sign grain deal",
    )
    collapsed = analyzer.analyze_text(
        "Officials of Amur Oblast said on Tuesday that talks with Heilongjiang on a grain terminal had collapsed "
        "and that no agreement would be signed. Ivan Sorokin, head of the regional trade ministry, said the "
        "project had been cancelled after the Chinese side withdrew.",
        "Talks end without a deal",
    )

    assert signed.classification.is_cooperation
    assert ("Ivan Sorokin", "PERSON") in {(entity.text, entity.label) for entity in signed.entities}
    # A candidate (past the cheap pass) the classifier turned away: its gazetteer mentions only.
    assert not collapsed.classification.is_cooperation
    assert not collapsed.classification.reason.startswith("cheap pass")
    assert [entity.canonical_id for entity in collapsed.entities] == ["RU-AMU", "CN-HL", "CN"]
