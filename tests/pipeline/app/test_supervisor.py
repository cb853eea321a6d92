"""The plan of `amur run --workers`: which processes, and which plans are refused."""

from __future__ import annotations

from pathlib import Path

import pytest

from pipeline.app.supervisor import check_plan, parse_workers
from pipeline.errors import ConfigError
from pipeline.settings import AmurSettings, KafkaSettings


def test_named_roles_get_their_workers_and_the_others_one():
    assert parse_workers("processors=2, sinks=1") == {"connectors": 1, "processors": 2, "stories": 1, "sinks": 1}


@pytest.mark.parametrize(("value", "message"), [
    ("parsers=2", "unknown role 'parsers'"),
    ("processors=0", "at least 1"),
    ("processors=two", "whole number"),
])
def test_a_bad_plan_says_what_is_wrong(value, message):
    with pytest.raises(ValueError, match=message):
        parse_workers(value)


def test_several_workers_need_kafka_and_a_partition_each():
    plan = parse_workers("processors=4")
    with pytest.raises(ConfigError, match="need the kafka transport"):
        check_plan(plan, AmurSettings(), Path("amur.yaml"))
    with pytest.raises(ConfigError) as caught:
        check_plan(plan, AmurSettings(transport="kafka", kafka=KafkaSettings(partitions=3)), Path("amur.yaml"))
    assert caught.value.problems[0].key == "kafka.partitions" and "at least 4" in caught.value.problems[0].hint
    check_plan(parse_workers("processors=3"), AmurSettings(transport="kafka"), Path("amur.yaml"))
