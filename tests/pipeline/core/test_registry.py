"""The registries find Amur's own classes by their configured names, and classes added at run time."""

from __future__ import annotations

import pytest

from pipeline.core import registry
from pipeline.core.settings import SourceConfig
from pipeline.core.topology import STAGES, StageSpec, flow_order, roles


def test_the_shipped_names_are_declared_as_entry_points():
    assert registry.connectors.names() == ["jsonfeed", "replay", "rss", "sitemap"]
    assert registry.sinks.names() == ["atom", "email", "feeds", "records", "webhooks"]
    assert registry.stages.names() == ["classify", "sinks", "stories"]
    assert registry.connectors.get("rss").__name__ == "FeedConnector"
    assert registry.sinks.get("atom").__name__ == "AlertFeedSink"
    assert registry.stages.get("classify").__name__ == "ClassifyStage"


def test_an_unknown_name_lists_the_known_ones():
    with pytest.raises(registry.UnknownName, match="no sink type named 'fax'; known: atom, email, feeds, records, webhooks"):
        registry.sinks.get("fax")


def test_a_class_registered_at_run_time_is_a_valid_kind():
    @registry.connectors.register("static-list")
    class StaticList:
        pass

    try:
        assert SourceConfig(name="x", kind="static-list", url="https://a.example/").kind == "static-list"
        assert registry.connectors.get("static-list") is StaticList
    finally:
        registry.connectors.unregister("static-list")
    with pytest.raises(ValueError, match="unknown connector kind 'static-list'; known kinds: 'jsonfeed', 'replay', 'rss', 'sitemap'"):
        SourceConfig(name="x", kind="static-list", url="https://a.example/")


def test_every_declared_stage_is_registered():
    assert {spec.stage for spec in STAGES} <= set(registry.stages.names())


def test_roles_come_in_flow_order_and_a_new_stage_finds_its_place():
    assert roles() == ("connectors", "processors", "stories", "sinks")
    stories = StageSpec(role="stories", stage="stories", inputs=("classified",), outputs=("alerts",))
    classify = StageSpec(role="processors", stage="classify", inputs=("articles",), outputs=("classified",))
    sinks = StageSpec(role="sinks", stage="sinks", inputs=("classified", "alerts"))
    assert [spec.role for spec in flow_order((sinks, stories, classify))] == ["processors", "stories", "sinks"]
    echo = StageSpec(role="echo", stage="echo", inputs=("alerts",), outputs=("classified",))
    with pytest.raises(ValueError, match="cycle among: stories, echo"):
        flow_order((stories, echo))
