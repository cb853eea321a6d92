"""The dashboard: HTML pages rendered on the server, their filters in the URL.

``/`` lists stories, ``/stories/{id}`` shows one, ``/map`` is the cooperation matrix of
Russian regions × Chinese provinces, ``/timeline`` counts stories per week and ``/sources``
shows each source's health. The filter form submits with GET, so every view is a URL that
can be bookmarked and shared; empty form fields are ignored.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Annotated, get_origin
from urllib.parse import urlencode

from fastapi import APIRouter, Depends, HTTPException, Path, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, RedirectResponse
from pydantic import ValidationError

from pipeline.app.sources import source_health
from pipeline.app.web.context import WebContext, context_of
from pipeline.app.web.queries import (
    ID_PATTERN,
    CursorError,
    PairCount,
    StoryFilter,
    count_stories,
    every_week,
    find_stories,
    get_article,
    get_story,
    pair_counts,
    sector_counts,
    story_versions,
    survivor_of,
    weekly_counts,
    weekly_main_sectors,
)
from pipeline.core.messages import SECTOR_LABELS

router = APIRouter(include_in_schema=False)

Context = Annotated[WebContext, Depends(context_of)]
MAP_PAIRS = 20  # the busiest pairs the matrix is drawn for
HEAT_LEVELS = 6  # CSS classes heat-0 … heat-5


def page_filter(request: Request, context: Context) -> StoryFilter:
    """The StoryFilter of a page's query string; a field left empty in the form is no filter."""
    values: dict[str, object] = {}
    for name, field in StoryFilter.model_fields.items():
        given = [value.strip() for value in request.query_params.getlist(name) if value.strip()]
        if given:
            values[name] = given if get_origin(field.annotation) is list else given[-1]
    # The form picks a pair with two selects, one per side; links carry it as pair=RU-…:CN-….
    sides = [request.query_params.get(side, "").strip() for side in ("pair_russian", "pair_chinese")]
    if all(sides):
        values["pair"] = [*values.get("pair", []), ":".join(sides)]
    try:
        return context.known(StoryFilter.model_validate(values))
    except ValidationError as exc:
        raise RequestValidationError([{**error, "loc": ("query", *error["loc"])} for error in exc.errors()]) from None


Filter = Annotated[StoryFilter, Depends(page_filter)]


def _link(path: str, pairs: Sequence[tuple[str, str]]) -> str:
    return f"{path}?{urlencode(pairs)}" if pairs else path


def _render(request: Request, context: WebContext, template: str, **values) -> HTMLResponse:
    return context.templates.TemplateResponse(
        request, template, {"names": context.names, "sector_labels": SECTOR_LABELS, "context": context, **values},
    )


@router.get("/", response_class=HTMLResponse)
def stories_page(request: Request, context: Context, filters: Filter) -> HTMLResponse:
    cursor = request.query_params.get("cursor") or None
    try:
        with context.connect() as connection:
            page = find_stories(connection, filters, limit=context.settings.serve.page_size, cursor=cursor)
            total = count_stories(connection, filters)
    except CursorError as exc:
        raise RequestValidationError([{"loc": ("query", "cursor"), "msg": str(exc), "type": "value_error"}]) from None
    query = filters.query_pairs()
    return _render(
        request, context, "stories.html", filters=filters, stories=page.stories, cursor=cursor, total=total,
        next_link=_link("/", [*query, ("cursor", page.next_cursor)]) if page.next_cursor else None,
        feed_link=_link("/feeds/filter.atom", query), json_feed_link=_link("/feeds/filter.json", query),
        map_link=_link("/map", query), timeline_link=_link("/timeline", query),
    )


@dataclass(frozen=True)
class Passage:
    text: str
    evidence: bool


def passages(text: str, evidence: Sequence[str]) -> list[Passage]:
    """``text`` cut into runs, each evidence sentence found in it a run of its own (to be marked)."""
    found = sorted(
        {(start, start + len(sentence)) for sentence in evidence if sentence and (start := text.find(sentence)) >= 0}
    )
    runs, position = [], 0
    for start, end in found:
        if start < position:  # overlaps the previous sentence: already marked
            continue
        if start > position:
            runs.append(Passage(text[position:start], False))
        runs.append(Passage(text[start:end], True))
        position = end
    if position < len(text):
        runs.append(Passage(text[position:], False))
    return runs


STORY_ID = re.compile(ID_PATTERN)


@router.get("/stories/{story_id}", response_class=HTMLResponse, response_model=None)
def story_page(
    request: Request, context: Context, story_id: Annotated[str, Path(max_length=64)],
) -> HTMLResponse | RedirectResponse:
    if not STORY_ID.fullmatch(story_id):  # a reader's mistyped link is a missing page, not a bad parameter
        raise HTTPException(404, "there is no such story")
    with context.connect() as connection:
        found = get_story(connection, story_id)
        if found is None:
            survivor = survivor_of(connection, story_id)
            if survivor is not None:  # merged into another story: the reader goes on to it
                return RedirectResponse(f"/stories/{survivor}", status_code=301)
            raise HTTPException(404, f"no story {story_id}")
        story, story_at = found
        versions = story_versions(connection, story_id)
        lead = get_article(connection, story.article_id)
    text = passages(lead["text"], story.evidence) if lead else []
    return _render(request, context, "story.html", story=story, story_at=story_at, versions=versions, text=text)


@dataclass(frozen=True)
class MapCell:
    count: int
    heat: int
    sectors: dict[str, int]
    link: str


@router.get("/map", response_class=HTMLResponse)
def map_page(request: Request, context: Context, filters: Filter) -> HTMLResponse:
    with context.connect() as connection:
        pairs = pair_counts(connection, filters)
    busiest = pairs[:MAP_PAIRS]
    rows = list(dict.fromkeys(pair.russian for pair in busiest))
    columns = list(dict.fromkeys(pair.chinese for pair in busiest))
    by_pair = {(pair.russian, pair.chinese): pair for pair in pairs}
    peak = max((pair.stories for pair in busiest), default=1)
    # A cell lists its pair's stories under the same period and filters, bar the places.
    kept = [(name, value) for name, value in filters.query_pairs() if name not in ("pair", "region")]
    cells = {
        key: _cell(pair, peak, _link("/", [*kept, ("pair", f"{pair.russian}:{pair.chinese}")]))
        for key, pair in by_pair.items() if key[0] in rows and key[1] in columns
    }
    places, lines = geographic(pairs, context.centres, kept)
    return _render(
        request, context, "map.html", filters=filters, rows=rows, columns=columns, cells=cells, busiest=busiest,
        total=len(pairs), places=places, lines=lines, map_width=MAP_WIDTH, map_height=MAP_HEIGHT,
    )


@dataclass(frozen=True)
class Place:
    """A region on the geographic map, at its administrative centre."""

    region: str
    x: float
    y: float
    radius: float
    stories: int  # stories it shares with a partner under the filter


@dataclass(frozen=True)
class Line:
    """Two partners on the geographic map, as wide as the stories they share."""

    pair: str
    x1: float
    y1: float
    x2: float
    y2: float
    width: float
    stories: int
    link: str


# The geographic map's frame, degrees: Kaliningrad to Chukotka, Hainan to the Kola peninsula,
# drawn equirectangular with latitude stretched as at 45°, where most partners are.
MAP_WEST, MAP_EAST, MAP_SOUTH, MAP_NORTH = 19.0, 180.0, 18.0, 71.0
MAP_WIDTH = 960
MAP_HEIGHT = round(MAP_WIDTH * (MAP_NORTH - MAP_SOUTH) / (MAP_EAST - MAP_WEST) * 1.41)
MAP_LINES = 100  # the busiest pairs drawn


def _projected(centre: tuple[float, float]) -> tuple[float, float]:
    latitude, longitude = centre
    return (round((longitude - MAP_WEST) / (MAP_EAST - MAP_WEST) * MAP_WIDTH, 1),
            round((MAP_NORTH - latitude) / (MAP_NORTH - MAP_SOUTH) * MAP_HEIGHT, 1))


def geographic(pairs: Sequence[PairCount], centres: dict[str, tuple[float, float]], kept: list[tuple[str, str]]) -> tuple[list[Place], list[Line]]:
    """Every region at its centre, sized by the stories it shares, and a line per busy pair,
    as wide as its stories and linking to them (under ``kept``, the other filters)."""
    drawn = [pair for pair in pairs[:MAP_LINES] if pair.russian in centres and pair.chinese in centres]
    peak = max((pair.stories for pair in drawn), default=1)
    lines = [
        Line(f"{pair.russian}:{pair.chinese}", *_projected(centres[pair.russian]), *_projected(centres[pair.chinese]),
             round(1 + 6 * pair.stories / peak, 1), pair.stories, _link("/", [*kept, ("pair", f"{pair.russian}:{pair.chinese}")]))
        for pair in drawn
    ]
    shared: dict[str, int] = {}
    for pair in pairs:
        for region in (pair.russian, pair.chinese):
            shared[region] = shared.get(region, 0) + pair.stories
    busiest = max(shared.values(), default=1)
    places = [
        Place(region, *_projected(centre), round(2.5 + 6 * (shared.get(region, 0) / busiest) ** 0.5, 1) if region in shared else 2.0,
              shared.get(region, 0))
        for region, centre in sorted(centres.items(), key=lambda item: shared.get(item[0], 0))  # the busiest on top
    ]
    return places, lines


def _cell(pair: PairCount, peak: int, link: str) -> MapCell:
    heat = max(1, round(pair.stories / peak * (HEAT_LEVELS - 1)))
    return MapCell(pair.stories, heat, pair.sectors, link)


@dataclass(frozen=True)
class Segment:
    y: int
    height: int
    sector: str  # a sector id, "none", or "all" for a series not split by sector
    count: int


@dataclass(frozen=True)
class Bar:
    x: int
    week: str
    count: int
    segments: list[Segment]
    labelled: bool  # its week is written under the axis


TIMELINE_HEIGHT = 120
BAR_WIDTH = 12
LABEL_EVERY = 6  # bars between two week labels: a date is about six bars wide
DATE_WIDTH = LABEL_EVERY * BAR_WIDTH  # so a chart of one week still shows its date


def _bars(weeks: list[tuple], peak: int, sectors: dict | None = None) -> list[Bar]:
    """A bar per week on a scale whose top is ``peak``, stacked by main sector when
    ``sectors`` (week → sector → stories) is given, busiest sector at the bottom."""
    bars = []
    for index, (monday, count) in enumerate(weeks):
        parts = sorted((sectors or {}).get(monday, {}).items(), key=lambda part: (-part[1], part[0])) if sectors else [("all", count)]
        segments, top = [], TIMELINE_HEIGHT
        for sector, stories in parts:
            height = round(stories / peak * TIMELINE_HEIGHT) if peak else 0
            top -= height
            segments.append(Segment(top, height, sector, stories))
        bars.append(Bar(index * BAR_WIDTH, monday.isoformat(), count, segments, index % LABEL_EVERY == 0))
    return bars


@router.get("/timeline", response_class=HTMLResponse)
def timeline_page(request: Request, context: Context, filters: Filter) -> HTMLResponse:
    period = StoryFilter(since=filters.since, until=filters.until)
    with context.connect() as connection:
        by_sector = weekly_main_sectors(connection, period)
        chosen = weekly_counts(connection, filters)
    overall = every_week({week: sum(sectors.values()) for week, sectors in by_sector.items()})  # each story once
    chosen_by_week = dict(chosen)
    # Both series over the same weeks, on the same scale, so they can be compared.
    filtered = [(monday, chosen_by_week.get(monday, 0)) for monday, _ in overall]
    peak = max((count for _, count in overall), default=0)
    shown = sorted({sector for week in by_sector.values() for sector in week}, key=lambda sector: (sector == "none", sector))
    return _render(
        request, context, "timeline.html", filters=filters, overall=_bars(overall, peak, by_sector),
        filtered=_bars(filtered, peak) if filters.query_pairs() else None, legend=shown, peak=peak,
        width=max(len(overall) * BAR_WIDTH, DATE_WIDTH), height=TIMELINE_HEIGHT,
    )


@dataclass(frozen=True)
class Partner:
    region: str
    stories: int
    sectors: dict[str, int]
    link: str  # the stories the two share


REGION_STORIES = 10  # the latest stories a region page lists


@router.get("/regions/{region_id}", response_class=HTMLResponse)
def region_page(request: Request, context: Context, region_id: Annotated[str, Path(max_length=16)]) -> HTMLResponse:
    """One federal subject or province: its partners on the other side, its sectors, its
    stories over time and its latest stories, with a feed of its own."""
    if region_id not in context.names:
        raise HTTPException(404, "there is no such region")
    chosen = StoryFilter(region=[region_id])
    with context.connect() as connection:
        pairs = pair_counts(connection, chosen)
        sectors = sector_counts(connection, chosen)
        weeks = weekly_counts(connection, chosen)
        latest = find_stories(connection, chosen, limit=REGION_STORIES).stories
    russian = region_id.startswith("RU-")
    partners = [
        Partner(pair.chinese if russian else pair.russian, pair.stories, pair.sectors,
                _link("/", [("pair", f"{pair.russian}:{pair.chinese}")]))
        for pair in pairs if (pair.russian if russian else pair.chinese) == region_id
    ]
    query = chosen.query_pairs()
    return _render(
        request, context, "region.html", region=region_id, russian=russian, partners=partners, sectors=sectors,
        weeks=_bars(weeks, max((count for _, count in weeks), default=0)), peak=max((count for _, count in weeks), default=0),
        height=TIMELINE_HEIGHT,
        width=max(len(weeks) * BAR_WIDTH, DATE_WIDTH), stories=latest, stories_link=_link("/", query),
        feed_link=_link("/feeds/filter.atom", query), json_feed_link=_link("/feeds/filter.json", query),
        timeline_link=_link("/timeline", query),
    )


@router.get("/sources", response_class=HTMLResponse)
def sources_page(request: Request, context: Context) -> HTMLResponse:
    rows = source_health(context.settings, context.config_path, context.engine)
    return _render(request, context, "sources.html", rows=rows)
