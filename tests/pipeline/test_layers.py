"""The layers import downwards only, checked on the source of every module.

floor 2  pipeline/app            may import anything below
floor 1  connectors, processors, sinks: the core and their own package only
floor 0  pipeline (but app): nothing of the floors above
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PLUGINS = ("connectors", "processors", "sinks")


def imported_packages(path: Path) -> set[str]:
    """The dotted names a module imports, at top level or inside functions."""
    names = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
    return names


def modules(package: str, *, but: str | None = None) -> list[Path]:
    found = sorted((ROOT / package).rglob("*.py"))
    return [path for path in found if but is None or ROOT / but not in path.parents]


def first_part(name: str) -> str:
    return name.split(".")[0]


@pytest.mark.parametrize("path", modules("pipeline", but="pipeline/app"), ids=lambda path: str(path.relative_to(ROOT)))
def test_the_core_imports_no_plugin_and_not_the_app(path):
    upward = {name for name in imported_packages(path) if first_part(name) in PLUGINS or name.startswith("pipeline.app")}
    assert not upward, f"{path.relative_to(ROOT)} imports {sorted(upward)} from a floor above"


@pytest.mark.parametrize(
    "path", [path for package in PLUGINS for path in modules(package)], ids=lambda path: str(path.relative_to(ROOT)),
)
def test_a_plugin_imports_the_core_and_its_own_package_only(path):
    own = path.relative_to(ROOT).parts[0]
    sideways = {name for name in imported_packages(path) if first_part(name) in PLUGINS and first_part(name) != own}
    upward = {name for name in imported_packages(path) if name.startswith("pipeline.app")}
    assert not sideways | upward, f"{path.relative_to(ROOT)} imports {sorted(sideways | upward)}"


def test_only_the_kafka_transport_imports_kafka_python():
    importers = [
        path.relative_to(ROOT).as_posix()
        for package in ("pipeline", *PLUGINS)
        for path in modules(package)
        if any(first_part(name) == "kafka" for name in imported_packages(path))
    ]
    assert importers == ["pipeline/transport/kafka.py"]
