"""A careless or hostile configuration file gets a clear error, never a traceback."""

import pytest

from pipeline.errors import ConfigError
from pipeline.settings import check_config, load_sources


@pytest.mark.parametrize("nested", ["[" * 5_000 + "]" * 5_000, "a:\n" + "".join(" " * n + f"k{n}:\n" for n in range(1, 3_000))])
def test_yaml_nested_beyond_reason_is_a_config_error(tmp_path, nested):
    path = tmp_path / "sources.yaml"
    path.write_text(nested, encoding="utf-8")
    with pytest.raises(ConfigError) as caught:
        load_sources(path)
    problem = caught.value.problems[0]
    assert problem.file == str(path) and "invalid YAML" in problem.message and problem.hint
    assert [p.file for p in check_config(path)] == [str(path)]  # amur config check says the same
