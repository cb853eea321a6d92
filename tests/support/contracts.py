"""Checks that a produced message matches its published JSON Schema."""

from __future__ import annotations

import json

import jsonschema

from pipeline.core.schemas import load_schema


def assert_matches_schema(topic_kind: str, value: bytes) -> dict:
    document = json.loads(value)
    jsonschema.validate(document, load_schema(topic_kind), format_checker=jsonschema.FormatChecker())
    return document
