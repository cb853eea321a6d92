"""A plugin from outside Amur's tree — its own package, entry points only — adds a connector
with an option of its own, a stage between two topics and a sink with a table of its own
(and the revision that makes it), and runs end to end on the embedded transport without a
line of the core changed."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import sqlalchemy as sa

from pipeline.core.transport.embedded import EmbeddedTransport
from tests.support.deployment import AMUR

pytestmark = pytest.mark.slow

PLUGIN = Path(__file__).resolve().parents[1] / "resources" / "outside_plugin"
BRIDGE = (
    "Amur Oblast and Heilongjiang Province signed an agreement on Monday to open a second road bridge between "
    "Blagoveshchensk and Heihe. The governor of Amur Oblast and the vice-governor of Heilongjiang agreed that "
    "trucks will cross the new bridge from next spring, and both regions will share the cost of its customs posts."
)
WEATHER = "Light snow is expected across the Amur valley this weekend, with temperatures near minus twenty at night."


@pytest.fixture(scope="module")
def plugin_path(tmp_path_factory) -> Path:
    """The plugin installed into a directory of its own, put on the path of the amur processes only."""
    site = tmp_path_factory.mktemp("site")
    subprocess.run(
        [sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--no-build-isolation", "--target", str(site), str(PLUGIN)],
        check=True, capture_output=True, text=True, timeout=300,
    )
    return site


def configure(root: Path, memos: list[dict]) -> Path:
    config = root / "amur.yaml"
    config.write_text(
        "transport: embedded\n"
        f"database_url: 'sqlite:///{root / 'amur.sqlite'}'\n"
        f"embedded:\n  path: {root / 'log.sqlite'}\n"
        "sinks:\n  - type: records\n  - type: alerts\n  - type: tally\n    label: outside\n"
        f"  - type: feeds\n    directory: {root / 'feeds'}\n"
    )
    (root / "sources.yaml").write_text(json.dumps({"sources": [{"name": "memos", "kind": "memo", "memos": memos}]}))
    return config


def amur(plugin_path: Path, *args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(plugin_path), os.environ.get("PYTHONPATH")]))}
    return subprocess.run([*AMUR, *args], env=env, capture_output=True, text=True, timeout=300)


def test_a_plugin_from_outside_adds_a_connector_a_stage_and_a_sink_end_to_end(plugin_path, tmp_path):
    config = configure(tmp_path, [
        {"slug": "bridge", "title": "Amur Oblast and Heilongjiang agree a second bridge", "text": BRIDGE},
        {"slug": "weather", "title": "Snow in the valley", "text": WEATHER},
    ])

    checked = amur(plugin_path, "config", "check", str(config))
    assert checked.returncode == 0, checked.stdout + checked.stderr
    ran = amur(plugin_path, "run", "--once", "--config", str(config))
    assert ran.returncode == 0, ran.stdout + ran.stderr

    assert "briefs: handled 1 record(s)" in ran.stdout + ran.stderr  # the plugin's role ran, after the stories
    engine = sa.create_engine(f"sqlite:///{tmp_path / 'amur.sqlite'}")
    with engine.connect() as connection:
        [story_id] = connection.execute(sa.text("SELECT id FROM alerts")).scalars()
        tallies = connection.execute(sa.text("SELECT story_id, outlets, label FROM outside_story_tallies")).all()
        heads = set(connection.execute(sa.text("SELECT version_num FROM alembic_version")).scalars())
    engine.dispose()
    assert tallies == [(story_id, 1, "outside")]
    assert "outside_0001" in heads  # the plugin's own revision, a branch beside Amur's
    log = EmbeddedTransport(str(tmp_path / "log.sqlite"))
    try:
        consumer = log.consumer("test-reader", ["amur.briefs"])
        [brief] = [json.loads(record.value) for record in consumer.poll(100, 1.0)]
        consumer.close()
    finally:
        log.close()
    assert brief["id"] == story_id
    assert brief["line"].startswith("Amur Oblast and Heilongjiang agree a second bridge (") and "CN-HL" in brief["line"]


def test_the_plugin_connector_s_own_option_is_validated_with_the_source(plugin_path, tmp_path):
    config = configure(tmp_path, [{"slug": "Not A Slug", "title": "x", "text": "y"}])
    checked = amur(plugin_path, "config", "check", str(config))
    assert checked.returncode != 0
    assert "sources.0.memos.0.slug" in checked.stdout + checked.stderr
