"""The metrics of the role processes, and the Grafana dashboard that reads them."""

from __future__ import annotations

import json
import re
from pathlib import Path

from pipeline.core.metrics import REGISTRY

DASHBOARD = Path(__file__).resolve().parents[3] / "docs" / "grafana-dashboard.json"


def test_the_grafana_dashboard_asks_only_for_series_the_roles_export():
    exported = {sample_name for family in REGISTRY.collect() for sample_name in _names(family)}
    dashboard = json.loads(DASHBOARD.read_text(encoding="utf-8"))
    asked = {name for panel in dashboard["panels"] for target in panel["targets"] for name in re.findall(r"\bamur_\w+", target["expr"])}
    assert asked and asked <= exported, asked - exported
    assert len({panel["id"] for panel in dashboard["panels"]}) == len(dashboard["panels"])


def _names(family) -> set[str]:
    # A histogram is asked for by its _bucket series, a counter by its _total one.
    suffixes = {"counter": ("_total",), "histogram": ("_bucket", "_count", "_sum"), "gauge": ("",)}[family.type]
    return {family.name + suffix for suffix in suffixes}
