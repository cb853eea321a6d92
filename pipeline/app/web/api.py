"""The JSON API: ``/api/stories``, ``/api/stories/{id}``, ``/api/articles/{id}`` and ``/api/pairs``.

The list endpoints take the filters of :class:`~pipeline.app.web.queries.StoryFilter` as
query parameters (repeat a parameter for several values: ``?region=RU-PRI&region=RU-KHA``);
``/api/stories`` pages with ``cursor`` (the previous page's ``next_cursor``) and ``limit``.
A bad parameter is a 422 naming it; an unknown id is a 404.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Depends, HTTPException, Path, Query
from fastapi.exceptions import RequestValidationError
from fastapi.responses import RedirectResponse
from pydantic import AwareDatetime, BaseModel, Field

from pipeline.app.web.context import WebContext, context_of
from pipeline.app.web.queries import (
    ID_PATTERN,
    CursorError,
    StoryFilter,
    find_stories,
    get_article,
    get_story,
    pair_counts,
    story_versions,
    survivor_of,
)
from pipeline.core.messages import Alert, Classification, Entity, Figure

router = APIRouter(prefix="/api", tags=["stories"])

Context = Annotated[WebContext, Depends(context_of)]


class StoriesQuery(StoryFilter):
    """The filters, and which page: an unknown parameter is an error, not silently no filter."""

    cursor: str | None = Field(None, max_length=200, description="next_cursor of the previous page")
    limit: int | None = Field(None, ge=1, le=500, description="Stories per page (serve.page_size by default)")


class PairsQuery(StoryFilter):
    limit: int = Field(100, ge=1, le=1_000, description="The busiest pairs to return")


Id = Annotated[str, Path(pattern=ID_PATTERN, description="32 hex digits")]


class Story(Alert):
    """A story in its newest version, and the date lists are ordered by."""

    story_at: AwareDatetime = Field(description="The first article's publication time, or its first alert's")


class StoryList(BaseModel):
    stories: list[Story]
    next_cursor: str | None = Field(description="Pass as cursor for the next page; null on the last page")


class Version(BaseModel):
    version: int
    written_at: AwareDatetime = Field(description="When the sinks first wrote this version")
    score: float
    outlets: list[str] = Field(description="The sources of the story's articles in this version")
    sectors: list[str]


class StoryDetail(BaseModel):
    story: Story
    versions: list[Version]


class ArticleRecord(BaseModel):
    """One classified article, as the records sink wrote it."""

    id: str
    url: str
    source: str
    title: str
    text: str
    published_at: AwareDatetime | None
    fetched_at: AwareDatetime
    classified_at: AwareDatetime
    is_cooperation: bool
    score: float
    level: str | None
    sectors: list[str]
    russian_parties: list[str]
    chinese_parties: list[str]
    entities: list[Entity]
    figures: list[Figure]
    classification: Classification


class Pair(BaseModel):
    russian: str = Field(examples=["RU-PRI"])
    chinese: str = Field(examples=["CN-HL"])
    russian_name: str = Field(examples=["Primorsky Krai"])
    chinese_name: str = Field(examples=["Heilongjiang"])
    stories: int
    sectors: dict[str, int] = Field(description="Stories per sector, busiest first")


def story_of(alert: Alert, story_at: datetime) -> Story:
    return Story(**alert.model_dump(), story_at=story_at)


def _bad(parameter: str, message: str) -> RequestValidationError:
    return RequestValidationError([{"loc": ("query", parameter), "msg": message, "type": "value_error"}])


@router.get("/stories", summary="Stories, newest first, filtered and paged")
def list_stories(context: Context, query: Annotated[StoriesQuery, Query()]) -> StoryList:
    filters = context.known(StoryFilter.model_validate(query.model_dump(exclude={"cursor", "limit"})))
    limit = query.limit or context.settings.serve.page_size
    try:
        with context.connect() as connection:
            page = find_stories(connection, filters, limit=limit, cursor=query.cursor)
    except CursorError as exc:
        raise _bad("cursor", str(exc)) from None
    return StoryList(stories=[story_of(*dated) for dated in page.stories], next_cursor=page.next_cursor)


@router.get(
    "/stories/{story_id}", summary="One story, with every version the sinks wrote", response_model=StoryDetail,
    responses={404: {}, 308: {"description": "The story was merged into another: Location is the survivor"}},
)
def read_story(context: Context, story_id: Id) -> StoryDetail | RedirectResponse:
    with context.connect() as connection:
        found = get_story(connection, story_id)
        if found is None:
            survivor = survivor_of(connection, story_id)
            if survivor is not None:
                return RedirectResponse(f"/api/stories/{survivor}", status_code=308)
            raise HTTPException(404, f"no story {story_id}")
        versions = story_versions(connection, story_id)
    return StoryDetail(story=story_of(*found), versions=[
        Version(version=alert.version, written_at=written_at, score=alert.score,
                outlets=[outlet.source for outlet in alert.outlets], sectors=alert.sectors)
        for alert, written_at in versions
    ])


@router.get("/articles/{article_id}", summary="One classified article's record", responses={404: {}})
def read_article(context: Context, article_id: Id) -> ArticleRecord:
    with context.connect() as connection:
        record: dict[str, Any] | None = get_article(connection, article_id)
    if record is None:
        raise HTTPException(404, f"no article {article_id}")
    return ArticleRecord.model_validate(record)


@router.get("/pairs", summary="Stories per Russian region × Chinese province: the map's data, busiest first")
def list_pairs(context: Context, query: Annotated[PairsQuery, Query()]) -> list[Pair]:
    filters = context.known(StoryFilter.model_validate(query.model_dump(exclude={"limit"})))
    with context.connect() as connection:
        pairs = pair_counts(connection, filters)[:query.limit]
    names = context.names
    return [
        Pair(russian=pair.russian, chinese=pair.chinese, russian_name=names.get(pair.russian, pair.russian),
             chinese_name=names.get(pair.chinese, pair.chinese), stories=pair.stories, sectors=pair.sectors)
        for pair in pairs
    ]
