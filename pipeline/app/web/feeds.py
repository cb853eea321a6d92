"""Feeds over HTTP: each subscription's, and ad-hoc ones for any filter.

``/feeds/<subscription>.atom`` and ``.json`` serve the subscriptions of
``config/subscriptions.yaml`` (read again when it changes); ``/feeds/filter.atom`` and
``/feeds/filter.json`` take the dashboard's filters as query parameters, e.g.
``/feeds/filter.atom?region=RU-PRI&sector=energy``. Every feed carries an ``ETag`` and a
``Last-Modified``, and answers ``If-None-Match`` / ``If-Modified-Since`` with 304, so a feed
reader that polls every few minutes costs a query and no transfer.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from email.utils import format_datetime, parsedate_to_datetime
from typing import Annotated

from fastapi import APIRouter, Depends, HTTPException, Query, Request
from fastapi.responses import Response

from pipeline.app.web.context import WebContext, context_of
from pipeline.app.web.queries import StoryFilter, find_stories
from pipeline.core.messages import Alert
from pipeline.core.subscriptions import Subscription
from sinks.subscription_feeds import FeedsOptions, atom_feed, json_feed_bytes

router = APIRouter(prefix="/feeds", tags=["feeds"])

Context = Annotated[WebContext, Depends(context_of)]
ATOM = "application/atom+xml; charset=utf-8"
JSON_FEED = "application/feed+json; charset=utf-8"
# /feeds/filter.* is the ad-hoc feed, so no subscription can be served by that name. Its
# selection is the query's StoryFilter; the subscription made of it (:func:`_adhoc`) only
# names and describes the feed.
ADHOC = "filter"
MOST_SCANNED = 2_000  # stories a subscription's keyword filters are checked against


@router.get("/filter.atom", summary="An Atom feed of any filter", response_class=Response)
def filter_atom(request: Request, context: Context, filters: Annotated[StoryFilter, Query()]) -> Response:
    return _feed(request, context, _adhoc(context.known(filters)), filters, atom_feed, ATOM)


@router.get("/filter.json", summary="A JSON Feed 1.1 of any filter", response_class=Response)
def filter_json(request: Request, context: Context, filters: Annotated[StoryFilter, Query()]) -> Response:
    return _feed(request, context, _adhoc(context.known(filters)), filters, json_feed_bytes, JSON_FEED)


def _adhoc(query: StoryFilter) -> Subscription:
    """The ad-hoc feed as a subscription of the query's filters, for its title."""
    return Subscription(name=ADHOC, channels=[], filters=query.as_filters())


@router.get("/{name}.atom", summary="A subscription's Atom feed", response_class=Response, responses={404: {}})
def subscription_atom(request: Request, context: Context, name: str) -> Response:
    subscription = _subscription(context, name)
    return _feed(request, context, subscription, StoryFilter.of_subscription(subscription), atom_feed, ATOM)


@router.get("/{name}.json", summary="A subscription's JSON Feed 1.1", response_class=Response, responses={404: {}})
def subscription_json(request: Request, context: Context, name: str) -> Response:
    subscription = _subscription(context, name)
    return _feed(request, context, subscription, StoryFilter.of_subscription(subscription), json_feed_bytes, JSON_FEED)


def _subscription(context: WebContext, name: str) -> Subscription:
    subscriptions = {subscription.name: subscription for subscription in context.subscriptions.current()}
    if name not in subscriptions:
        known = ", ".join(sorted(subscriptions)) or "none"
        raise HTTPException(404, f"no subscription {name!r} (known: {known})")
    return subscriptions[name]


def _stories(context: WebContext, subscription: Subscription, filters: StoryFilter) -> list[Alert]:
    """The newest stories SQL selects that the subscription's own checks (keywords, excluded
    sources) also pass, at most ``serve.feed_entries``."""
    wanted, chosen, cursor, scanned = context.settings.serve.feed_entries, [], None, 0
    with context.connect() as connection:
        while len(chosen) < wanted and scanned < MOST_SCANNED:
            page = find_stories(connection, filters, limit=wanted, cursor=cursor)
            scanned += len(page.stories)
            chosen += [story for story, _ in page.stories if subscription.match(story)]
            if page.next_cursor is None:
                break
            cursor = page.next_cursor
    return chosen[:wanted]


def _feed(
    request: Request, context: WebContext, subscription: Subscription, filters: StoryFilter,
    render: Callable[..., bytes], media_type: str,
) -> Response:
    stories = _stories(context, subscription, filters)
    modified = max((story.updated_at or story.alerted_at for story in stories), default=None)
    # The feed is its URL and its stories' versions: a tag of those stays the same for an
    # unchanged (or empty) feed, and a 304 is answered without rendering anything.
    versions = "\n".join([str(request.url), media_type, *(f"{story.id}:{story.version}" for story in stories)])
    headers = {"ETag": f'"{hashlib.sha256(versions.encode()).hexdigest()[:32]}"', "Cache-Control": "no-cache"}
    if modified is not None:
        headers["Last-Modified"] = format_datetime(modified, usegmt=True)
    if _not_modified(request, headers["ETag"], modified):
        return Response(status_code=304, headers=headers)
    body = render(subscription, stories, FeedsOptions(), str(request.url))
    return Response(body, media_type=media_type, headers=headers)


def _not_modified(request: Request, etag: str, modified) -> bool:
    offered = request.headers.get("if-none-match")
    if offered is not None:  # RFC 9110: If-None-Match wins over If-Modified-Since
        return etag in {tag.strip().removeprefix("W/") for tag in offered.split(",")} or offered.strip() == "*"
    since = request.headers.get("if-modified-since")
    if since is None or modified is None:
        return False
    try:
        return modified.replace(microsecond=0) <= parsedate_to_datetime(since)
    except (TypeError, ValueError):
        return False
