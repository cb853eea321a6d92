"""Feeds per subscription (``type: feeds``): ``<directory>/<name>.atom`` and ``<name>.json``.

For every subscription of ``config/subscriptions.yaml`` with an ``atom`` or ``jsonfeed``
channel, the newest ``max_entries`` matching stories are written as Atom 1.0 (feedgen) and
JSON Feed 1.1 (the published spec: https://www.jsonfeed.org/version/1.1/), each replaced
atomically and readable by other users, so a web server or feed reader can serve them.

Each entry shows, in the text a reader displays, the parties and regions by name, the
sectors, level, score, figures, evidence and every outlet's link; its summary is the
story's lead. A story's entry is keyed by story id, so an update replaces it.

The feeds are rendered from the alerts store (:mod:`sinks.alerts`, listed before this sink
under ``sinks:``, which flushes first), so they survive restarts and every feed shows a
story as the store has it; the ``all`` subscription's feed holds every story. A batch
rewrites only the files of the subscriptions one of its stories matches (and of any
subscription added or edited since its files were written): the others are as they were.
A feed reads only its own stories from the store, selected by their tags (regions, pairs,
sectors, sources) and columns, however many other stories were written since
(:func:`sinks.alerts.newest_matching`).
The subscriptions file is read again when it changes (:class:`SubscriptionsWatcher`); an
invalid edit is logged with its file, key and fix, and the feeds go on with the
subscriptions they had.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from pathlib import Path

from feedgen.feed import FeedGenerator
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy import Engine
from sqlalchemy.exc import SQLAlchemyError

from pipeline.core.errors import SinkError
from pipeline.core.files import replace_file
from pipeline.core.messages import SECTOR_LABELS, Alert, utc_now
from pipeline.core.sink import BatchingSink, SinkContext, prepare_database
from pipeline.core.subscriptions import Subscription, SubscriptionsWatcher, subscriptions_path
from sinks.alerts import newest_matching
from sinks.rendering import story_html, story_text

__all__ = ["FeedsOptions", "SubscriptionFeedsSink", "atom_feed", "json_feed", "json_feed_bytes"]

JSON_FEED_VERSION = "https://jsonfeed.org/version/1.1"
FEED_FILE_MODE = 0o644
_NOT_XML = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\ufffe\uffff\ud800-\udfff]")


class FeedsOptions(BaseModel):
    """Options of ``- type: feeds`` in amur.yaml's ``sinks:``."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    directory: str = Field("var/feeds", description="Where <subscription>.atom and .json go")
    max_entries: int = Field(50, ge=1, le=1_000)
    base_url: str | None = Field(
        None, description="Where the directory is served; makes each feed's self link real",
        examples=["https://amur.example.org/feeds/"],
    )
    title: str = "Amur"
    author: str = "Amur news monitor"


class SubscriptionFeedsSink(BatchingSink):
    """Writes each subscription's feeds from the alerts store (see the module docstring)."""

    topic = "alerts"
    name = "feeds"
    Options = FeedsOptions
    needs = ("alerts",)

    def __init__(self, engine: Engine, options: FeedsOptions, subscriptions: SubscriptionsWatcher):
        super().__init__()
        self.engine = engine
        self.options = options
        self.subscriptions = subscriptions
        self._rendered: dict[str, Subscription] = {}  # each subscription as its files were last written

    @classmethod
    def from_config(cls, options: FeedsOptions, context: SinkContext) -> SubscriptionFeedsSink:
        path = subscriptions_path(context.config_path, context.settings)
        return cls(context.engine(), options, SubscriptionsWatcher(path, context.settings, vocabulary=context.vocabulary))

    def setup(self) -> None:
        prepare_database(self.name, self.engine)
        self.render()

    def write(self, batch: Sequence[Alert]) -> None:
        self.render(batch)

    def render(self, changed: Sequence[Alert] | None = None) -> None:
        """Write the feeds of the subscriptions the ``changed`` stories (a batch's new versions
        and retirements) appear in, or every feed (``None``, at start)."""
        # A subscription none of the changed stories match, written as it is now, has the same
        # stories as before (a retired story is matched by its last version): its files stay.
        subscriptions = [
            subscription for subscription in self.subscriptions.current()
            if changed is None or self._rendered.get(subscription.name) != subscription or any(map(subscription.match, changed))
        ]
        if not subscriptions:
            return
        directory = Path(self.options.directory)
        try:
            with self.engine.connect() as connection:
                chosen = {subscription.name: newest_matching(connection, subscription.filters, self.options.max_entries)
                          for subscription in subscriptions}
        except SQLAlchemyError as exc:
            raise SinkError(f"{self.name}: cannot read the stored alerts: {exc.__class__.__name__}: {exc}") from exc
        for subscription in subscriptions:
            stories = chosen[subscription.name]
            for channel in subscription.channels:
                if channel.type == "atom":
                    write_atomically(directory / f"{subscription.name}.atom", atom_feed(subscription, stories, self.options))
                elif channel.type == "jsonfeed":
                    write_atomically(directory / f"{subscription.name}.json", json_feed_bytes(subscription, stories, self.options))
            self._rendered[subscription.name] = subscription


def feed_title(options: FeedsOptions, subscription: Subscription, stories: Sequence[Alert]) -> str:
    """What the feed is: its subscription and what that filters, with the names of places the
    stories give ("Amur: partners — Primorsky Krai × Heilongjiang; energy")."""
    names = {entry_id: name for story in stories for entry_id, name in story.names.items()}
    filters = subscription.filters
    parts = [
        " or ".join(f"{names.get(russian, russian)} × {names.get(chinese, chinese)}" for russian, chinese in filters.pairs),
        " or ".join(names.get(region, region) for region in filters.regions),
        ", ".join(SECTOR_LABELS.get(sector, sector) for sector in filters.sectors),
        ", ".join(f"{level} level" for level in filters.levels),
        ", ".join(f"in {language}" for language in filters.languages),
        ", ".join(f"from {source}" for source in filters.sources),
        ", ".join(f'"{keyword}"' for keyword in filters.keywords),
    ]
    described = "; ".join(part for part in parts if part)
    return f"{options.title}: {subscription.name}" + (f" — {described}" if described else "")


def _self_url(options: FeedsOptions, subscription: Subscription, suffix: str) -> str | None:
    if not options.base_url:
        return None
    return options.base_url.rstrip("/") + f"/{subscription.name}.{suffix}"


def atom_feed(
    subscription: Subscription, stories: Sequence[Alert], options: FeedsOptions, self_url: str | None = None,
) -> bytes:
    """An Atom 1.0 document of ``stories``, newest first; ``self_url`` where it is served, if
    not under ``options.base_url``."""
    feed = FeedGenerator()
    feed.id(f"urn:amur:subscription:{subscription.name}")
    feed.title(xml_text(feed_title(options, subscription, stories)))
    feed.author(name=options.author)
    self_url = self_url or _self_url(options, subscription, "atom")
    feed.link(href=self_url or f"urn:amur:subscription:{subscription.name}", rel="self")
    feed.updated(max((story.updated_at or story.alerted_at for story in stories), default=utc_now()))
    for story in reversed(stories):  # feedgen prepends entries
        entry = feed.add_entry()
        entry.id(f"urn:amur:story:{story.id}")
        entry.title(xml_text(story.heading))
        entry.link(href=xml_text(story.url))
        entry.published(story.published_at or story.alerted_at)
        entry.updated(story.updated_at or story.alerted_at)
        entry.summary(xml_text(story.summary))
        entry.content(xml_text(story_html(story, headed=False)), type="html")  # escaped into the XML as text
        for sector in story.sectors:
            entry.category(term=sector, label=SECTOR_LABELS.get(sector, sector), scheme="urn:amur:sector")
        for region in story.regions:
            entry.category(term=region, label=xml_text(story.names.get(region, region)), scheme="urn:amur:region")
    return feed.atom_str(pretty=True)


def json_feed(
    subscription: Subscription, stories: Sequence[Alert], options: FeedsOptions, self_url: str | None = None,
) -> dict:
    """A JSON Feed 1.1 document of ``stories``, newest first (JSON escapes the text); ``self_url``
    where it is served, if not under ``options.base_url``."""
    document = {
        "version": JSON_FEED_VERSION,
        "title": feed_title(options, subscription, stories),
        "authors": [{"name": options.author}],
        "items": [_json_item(story) for story in stories],
    }
    feed_url = self_url or _self_url(options, subscription, "json")
    if feed_url:
        document["feed_url"] = feed_url
    return document


def json_feed_bytes(
    subscription: Subscription, stories: Sequence[Alert], options: FeedsOptions, self_url: str | None = None,
) -> bytes:
    """:func:`json_feed` as the UTF-8 JSON text a file or a response carries."""
    return json.dumps(json_feed(subscription, stories, options, self_url), ensure_ascii=False, indent=1).encode("utf-8")


def _json_item(story: Alert) -> dict:
    item = {
        "id": f"urn:amur:story:{story.id}",
        "url": story.url,
        "title": story.heading,
        "summary": story.summary,
        "content_text": story_text(story),
        "content_html": story_html(story, headed=False),
        "date_published": (story.published_at or story.alerted_at).isoformat(),
        "date_modified": (story.updated_at or story.alerted_at).isoformat(),
        "tags": [*story.sectors, *(story.names.get(region, region) for region in story.regions)],
        # Extension keys start with an underscore (JSON Feed 1.1, "Extensions").
        "_amur": {
            "version": story.version, "score": story.score, "level": story.level, "regions": story.regions,
            "gist_en": story.gist_en,
            "outlets": [outlet.model_dump(mode="json") for outlet in story.outlets],
        },
    }
    if story.language:
        item["language"] = story.language
    return item


def xml_text(text: str) -> str:
    """``text`` without the characters XML 1.0 cannot hold (control characters, NUL), which
    pages and feeds do carry and which would make the whole document unwritable."""
    return _NOT_XML.sub("", text)


def write_atomically(path: Path, content: bytes, mode: int = FEED_FILE_MODE) -> None:
    """Replace ``path`` with ``content`` at once, readable by other users (a web server)."""
    try:
        replace_file(path, content, mode)
    except OSError as exc:
        raise SinkError(f"cannot write {path}: {exc}") from exc
