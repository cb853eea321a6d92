"""A careless or hostile configuration file gets a clear error, never a traceback."""

import pytest

from pipeline.app.config_check import check_config
from pipeline.core import registry as registry_module
from pipeline.core.errors import ConfigError
from pipeline.core.settings import load_sources


@pytest.mark.parametrize("nested", ["[" * 5_000 + "]" * 5_000, "a:\n" + "".join(" " * n + f"k{n}:\n" for n in range(1, 3_000))])
def test_yaml_nested_beyond_reason_is_a_config_error(tmp_path, nested):
    path = tmp_path / "sources.yaml"
    path.write_text(nested, encoding="utf-8")
    with pytest.raises(ConfigError) as caught:
        load_sources(path)
    problem = caught.value.problems[0]
    assert problem.file == str(path) and "invalid YAML" in problem.message and problem.hint
    assert [p.file for p in check_config(path)] == [str(path)]  # amur config check says the same


def test_a_sources_file_of_fifty_thousand_reads_the_installed_plugins_once(tmp_path, monkeypatch):
    """Each source's kind is checked against the registry; the entry points are read once, not per source."""
    path = tmp_path / "sources.yaml"
    path.write_text("sources:\n" + "".join(
        f"  - name: s{n}\n    url: https://feeds{n % 500}.example.org/rss/{n}.xml\n" for n in range(50_000)
    ) + "  - name: s7\n    url: https://elsewhere.example.org/rss\n", encoding="utf-8")
    scans = []
    real = registry_module.entry_points
    monkeypatch.setattr(registry_module, "entry_points", lambda **kwargs: scans.append(kwargs) or real(**kwargs))
    monkeypatch.setattr(registry_module.connectors, "_declared", None)
    (problem,) = check_config(path)
    assert "repeated: s7" in problem.message  # the one repeated name among 50,001, found without comparing every pair
    assert len(scans) <= 1  # none when a lookup already loaded the kind this process
