"""What every route of the web application shares (:class:`WebContext`), and the template filters."""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime
from functools import cached_property
from pathlib import Path

import jinja2
import sqlalchemy as sa
from fastapi import Request
from fastapi.exceptions import RequestValidationError
from fastapi.templating import Jinja2Templates

from pipeline.app.roles import pipeline_lag
from pipeline.app.vocabulary import region_centres, vocabulary
from pipeline.app.web.cancellation import cancellable
from pipeline.app.web.queries import StoryFilter
from pipeline.core.errors import TransportError
from pipeline.core.messages import SECTORS
from pipeline.core.settings import AmurSettings
from pipeline.core.subscriptions import SubscriptionsWatcher, Vocabulary, subscriptions_path
from pipeline.core.transport import make_transport
from pipeline.core.transport.base import Transport

__all__ = ["HERE", "WebContext", "context_of"]

log = logging.getLogger(__name__)
HERE = Path(__file__).parent
LAG_CACHE_SECONDS = 10


@dataclass
class WebContext:
    """What the routes share: settings, the database, display names, subscriptions, templates."""

    settings: AmurSettings
    config_path: Path
    engine: sa.Engine
    _transport: Transport | None = field(default=None, init=False, repr=False)
    _lag: tuple[float, dict[str, int | None] | str] | None = field(default=None, init=False, repr=False)

    @cached_property
    def vocabulary(self) -> Vocabulary:
        return vocabulary(self.settings)

    def known(self, filters: StoryFilter) -> StoryFilter:
        """``filters`` once every region, pair and language it names exists; else a 422 naming
        each parameter, the bad value and the nearest valid ones."""
        if unknown := filters.unknown_values(self.vocabulary):
            raise RequestValidationError([{"loc": ("query", name), "msg": why, "type": "value_error"} for name, why in unknown])
        return filters

    @cached_property
    def centres(self) -> dict[str, tuple[float, float]]:
        """Each region's administrative centre, for the geographic map."""
        return region_centres(self.settings)

    @property
    def names(self) -> Mapping[str, str]:
        """Display names of the federal subjects and provinces ("Heilongjiang" for CN-HL)."""
        return self.vocabulary.regions

    @property
    def russian_regions(self) -> list[tuple[str, str]]:
        return self._regions("RU-")

    @property
    def chinese_regions(self) -> list[tuple[str, str]]:
        return self._regions("CN-")

    def _regions(self, prefix: str) -> list[tuple[str, str]]:
        """``(id, name)`` of one country's regions, by name: the filter form's options."""
        return sorted(((id_, name) for id_, name in self.names.items() if id_.startswith(prefix)), key=lambda pair: pair[1])

    sectors = SECTORS

    @property
    def languages(self) -> list[tuple[str, str]]:
        """``(code, shown)`` of the languages stories can be in: the profiles' first, then by code."""
        named = {"en": "English", "ru": "Russian", "zh": "Chinese"}
        others = sorted(self.vocabulary.languages - set(named))
        return [*named.items(), *((code, code) for code in others)]

    @cached_property
    def subscriptions(self) -> SubscriptionsWatcher:
        return SubscriptionsWatcher(subscriptions_path(self.config_path, self.settings), self.settings, vocabulary=self.vocabulary)

    @cached_property
    def templates(self) -> Jinja2Templates:
        environment = jinja2.Environment(
            loader=jinja2.FileSystemLoader(HERE / "templates"), autoescape=True, undefined=jinja2.StrictUndefined,
        )
        environment.filters["when"] = _when
        environment.filters["href"] = _href
        return Jinja2Templates(env=environment)

    @contextmanager
    def connect(self) -> Iterator[sa.Connection]:
        """A connection whose queries stop when the request's client leaves, or at the deadline."""
        with self.engine.connect() as connection, cancellable(connection) as watched:
            yield watched

    def pipeline_lag(self) -> dict[str, int | None] | str:
        """Per role, the records its consumer group has yet to commit; or why that is unknown.

        Read at most every :data:`LAG_CACHE_SECONDS`, so a health check polled every few
        seconds costs the broker one read, and an unreachable one delays one request only.
        """
        now = time.monotonic()
        if self._lag is not None and now - self._lag[0] < LAG_CACHE_SECONDS:
            return self._lag[1]
        settings = self.settings
        if settings.transport == "embedded" and not Path(settings.embedded.path).exists():
            lag: dict[str, int | None] | str = "no embedded log yet: the pipeline has not run here"
        else:
            try:
                if self._transport is None:
                    self._transport = make_transport(settings)
                lag = pipeline_lag(settings, self._transport)
            except TransportError as exc:
                # /healthz is open to anyone: the broker's address and the groups' names stay in the log.
                log.warning("pipeline lag unknown: %s", exc)
                lag = "unknown: the transport did not answer (the server's log says why)"
        self._lag = (now, lag)
        return lag

    def close(self) -> None:
        if self._transport is not None:
            self._transport.close()
        self.engine.dispose()


def _when(value: datetime | None) -> str:
    return value.strftime("%Y-%m-%d %H:%M UTC") if value else "—"


def _href(url: str) -> str:
    """A link target that cannot run anything: http(s) URLs only."""
    return url if url.startswith(("http://", "https://")) else "#"


def context_of(request: Request) -> WebContext:
    """The context of the application serving ``request`` (a FastAPI dependency)."""
    return request.app.state.amur
