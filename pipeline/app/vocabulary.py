"""The filter values that exist, for the checks of every place a filter is written: the
gazetteer's federal subjects and provinces, and the languages articles are detected in."""

from __future__ import annotations

from functools import cache
from pathlib import Path

from pipeline.settings import AmurSettings
from pipeline.subscriptions import Vocabulary
from processors.gazetteer import load_gazetteer
from processors.languages import DETECTABLE

__all__ = ["vocabulary"]


def vocabulary(settings: AmurSettings) -> Vocabulary:
    """The :class:`Vocabulary` of ``settings``'s gazetteer (its names as written: no forms are
    made, so this reads the files in a fraction of a second)."""
    return _vocabulary(Path(settings.model.gazetteer_dir).resolve())


@cache
def _vocabulary(gazetteer_dir: Path) -> Vocabulary:
    gazetteer = load_gazetteer(gazetteer_dir)
    regions = {entry.id: entry.name for kind in ("federal_subject", "province") for entry in gazetteer.of_kind(kind)}
    return Vocabulary(regions=regions, languages=frozenset(DETECTABLE))
