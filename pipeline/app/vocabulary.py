"""What the gazetteer tells the application about regions: the filter values that exist (its
federal subjects and provinces, and the languages articles are detected in), for the checks
of every place a filter is written, and where each region's administrative centre is, for the
dashboard's map. The gazetteer is read with its names as written: no forms are made, so this
takes a fraction of a second."""

from __future__ import annotations

from functools import cache
from pathlib import Path

from pipeline.core.settings import AmurSettings
from pipeline.core.subscriptions import Vocabulary
from processors.gazetteer import REGION_KINDS, Gazetteer, load_gazetteer
from processors.languages import DETECTABLE

__all__ = ["region_centres", "vocabulary"]


def vocabulary(settings: AmurSettings) -> Vocabulary:
    """The :class:`Vocabulary` of ``settings``'s gazetteer."""
    gazetteer = _gazetteer(Path(settings.model.gazetteer_dir).resolve())
    regions = {entry.id: entry.name for kind in REGION_KINDS for entry in gazetteer.of_kind(kind)}
    return Vocabulary(regions=regions, languages=frozenset(DETECTABLE))


def region_centres(settings: AmurSettings) -> dict[str, tuple[float, float]]:
    """Each region's administrative centre, ``(latitude, longitude)``."""
    gazetteer = _gazetteer(Path(settings.model.gazetteer_dir).resolve())
    return {entry.id: entry.centre for kind in REGION_KINDS for entry in gazetteer.of_kind(kind) if entry.centre is not None}


@cache
def _gazetteer(directory: Path) -> Gazetteer:
    return load_gazetteer(directory)
