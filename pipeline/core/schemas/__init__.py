"""JSON Schemas of the topic messages, generated from each topic's model in :mod:`pipeline.core.topology`.

The ``*.schema.json`` files beside this module are what downstream consumers read; a test
fails when they drift from the models (regenerate with ``amur schemas export``).
"""

from __future__ import annotations

import json
from pathlib import Path

from pipeline.core.topology import topic_models

SCHEMA_DIR = Path(__file__).parent


def schema_for(topic_kind: str) -> dict:
    """The JSON Schema (draft 2020-12) of the messages of one topic kind (``articles``, …)."""
    model = topic_models()[topic_kind]
    schema = model.model_json_schema(mode="serialization")
    version = model.model_fields["schema_version"].default
    return {"$schema": "https://json-schema.org/draft/2020-12/schema", "$id": f"urn:amur:schema:{topic_kind}:v{version}", **schema}


def schema_path(topic_kind: str, directory: Path = SCHEMA_DIR) -> Path:
    return directory / f"{topic_kind}.schema.json"


def load_schema(topic_kind: str) -> dict:
    return json.loads(schema_path(topic_kind).read_text(encoding="utf-8"))


def export_schemas(directory: Path = SCHEMA_DIR, *, check: bool = False) -> list[str]:
    """Write every schema (or, with ``check``, only compare); returns the kinds that differed."""
    stale = []
    for kind in topic_models():
        path = schema_path(kind, directory)
        text = json.dumps(schema_for(kind), indent=2, ensure_ascii=False) + "\n"
        if not path.exists() or path.read_text(encoding="utf-8") != text:
            stale.append(kind)
            if not check:
                path.parent.mkdir(parents=True, exist_ok=True)
                path.write_text(text, encoding="utf-8")
    return stale
