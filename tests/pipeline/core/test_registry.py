"""The registries find Amur's own classes by their configured names, and classes added at run time."""

from __future__ import annotations

import pytest
from pydantic import Field, HttpUrl, ValidationError

from pipeline.core import registry
from pipeline.core.messages import Alert, Classified, Message
from pipeline.core.settings import SourceConfig, SourceOptions, SourcesFile
from pipeline.core.stages import Stage
from pipeline.core.topology import StageSpec, Topics, TopologyError, flow_order, roles, stage_specs, topic_models


def test_the_shipped_names_are_declared_as_entry_points():
    assert registry.connectors.names() == ["jsonfeed", "replay", "rss", "sitemap"]
    assert registry.sinks.names() == ["alerts", "email", "feeds", "records", "webhooks"]
    assert registry.stages.names() == ["processors", "sinks", "stories"]
    assert registry.connectors.get("rss").__name__ == "FeedConnector"
    assert registry.sinks.get("alerts").__name__ == "AlertsSink"
    assert registry.stages.get("processors").__name__ == "ClassifyStage"


def test_an_unknown_name_lists_the_known_ones():
    with pytest.raises(registry.UnknownName, match="no sink type named 'fax'; known: alerts, email, feeds, records, webhooks"):
        registry.sinks.get("fax")


def test_a_class_registered_at_run_time_is_a_valid_kind_with_its_own_options():
    class StaticListOptions(SourceOptions):
        items: list[HttpUrl] = Field(min_length=1)

    @registry.connectors.register("static-list")
    class StaticList:
        Options = StaticListOptions

    @registry.connectors.register("clock")
    class Clock:  # no options, so no location: two of its sources are not one listed twice
        pass

    try:
        assert len(SourcesFile.model_validate({"sources": [{"name": "a", "kind": "clock"}, {"name": "b", "kind": "clock"}]}).sources) == 2
        source = SourceConfig(name="x", kind="static-list", items=["https://a.example/1", "https://a.example/2"])
        assert [str(url) for url in source.options.items] == ["https://a.example/1", "https://a.example/2"]
        assert registry.connectors.get("static-list") is StaticList
        with pytest.raises(ValidationError) as refused:
            SourceConfig(name="x", kind="static-list", items=[], url="https://a.example/")
        assert {(error["loc"], error["type"]) for error in refused.value.errors()} == {
            (("items",), "too_short"), (("url",), "extra_forbidden"),
        }
    finally:
        registry.connectors.unregister("static-list")
        registry.connectors.unregister("clock")
    with pytest.raises(ValueError, match="unknown connector kind 'static-list'; known kinds: 'jsonfeed', 'replay', 'rss', 'sitemap'"):
        SourceConfig(name="x", kind="static-list", items=["https://a.example/1"])


def test_the_graph_is_assembled_from_what_the_stages_declare():
    assert {spec.role: (spec.inputs, dict(spec.outputs)) for spec in stage_specs()} == {
        "processors": (("articles",), {"classified": Classified}),
        "stories": (("classified",), {"alerts": Alert}),
        "sinks": (("classified", "alerts"), {}),
    }
    assert list(topic_models()) == ["articles", "classified", "alerts", "dlq"]
    assert roles() == ("connectors", "processors", "stories", "sinks")


class Digest(Message):
    schema_version: int = 1
    story_ids: list[str]


def test_a_stage_registered_at_run_time_adds_its_topic_and_finds_its_place():
    @registry.stages.register("digests")
    class DigestStage(Stage):
        inputs = ("alerts",)
        outputs = {"digests": Digest}

        def handle(self, records):
            pass

    try:
        assert roles() == ("connectors", "processors", "stories", "digests", "sinks")
        assert Topics("t.").all() == ["t.articles", "t.classified", "t.alerts", "t.digests", "t.dlq"]
        assert Topics("t.").model_for("t.digests") is Digest
    finally:
        registry.stages.unregister("digests")
    assert "digests" not in topic_models()


def test_a_stage_that_declares_no_topics_is_named():
    @registry.stages.register("vague")
    class Vague(Stage):
        def handle(self, records):
            pass

    try:
        with pytest.raises(TopologyError, match=r"stage 'vague' \(.*Vague\) must declare 'inputs'"):
            stage_specs()
    finally:
        registry.stages.unregister("vague")


def test_a_topic_read_by_none_written_twice_or_in_a_cycle_is_refused():
    stories = StageSpec(role="stories", inputs=("classified",), outputs={"alerts": Alert})
    classify = StageSpec(role="processors", inputs=("articles",), outputs={"classified": Classified})
    sinks = StageSpec(role="sinks", inputs=("classified", "alerts"))
    assert [spec.role for spec in flow_order((sinks, stories, classify))] == ["processors", "stories", "sinks"]
    echo = StageSpec(role="echo", inputs=("alerts",), outputs={"classified": Classified})
    with pytest.raises(TopologyError, match="cycle among: stories, echo"):
        flow_order((stories, echo))
    with pytest.raises(TopologyError, match="stage 'sinks' reads 'alerts', which no stage writes"):
        topic_models((classify, sinks))
    other = StageSpec(role="other", inputs=("articles",), outputs={"alerts": Classified})
    with pytest.raises(TopologyError, match="topic 'alerts' is declared with two models: Classified and Alert"):
        topic_models((stories, other, classify))
