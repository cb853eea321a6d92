"""Operator views of the subscriptions: what each asks for, and which recent stories it would get.

``amur subscriptions test NAME`` reads the newest stories from the records database (the
alerts the sinks stored) and shows those the subscription matches; nothing is delivered.
"""

from __future__ import annotations

from pathlib import Path

import sqlalchemy as sa

from pipeline.app.vocabulary import vocabulary
from pipeline.core.db import make_engine
from pipeline.core.errors import ConfigError, ConfigProblem
from pipeline.core.messages import Alert
from pipeline.core.settings import AmurSettings
from pipeline.core.subscriptions import Subscription, load_subscriptions, subscriptions_path
from sinks.alerts import alerts, newest_matching


def configured(settings: AmurSettings, config_path: Path) -> list[Subscription]:
    """The subscriptions file's subscriptions, their filters checked against what exists.

    :raises ConfigError: the file is invalid, or a filter names a region or language that does not exist.
    """
    return load_subscriptions(subscriptions_path(config_path, settings), settings, vocabulary(settings))


def format_subscriptions(subscriptions: list[Subscription]) -> str:
    lines = []
    for subscription in subscriptions:
        given = subscription.filters.model_dump(exclude_defaults=True)
        filters = "; ".join(f"{key}={_shown(value)}" for key, value in given.items()) or "every story"
        channels = ", ".join(channel.type for channel in subscription.channels) or "none"
        lines.append(f"{subscription.name:32} {filters}  →  {channels}")
    return "\n".join(lines)


def _shown(value) -> str:
    if isinstance(value, list):
        return ",".join("×".join(item) if isinstance(item, tuple | list) else str(item) for item in value)
    return str(value)


def matching_stories(settings: AmurSettings, config_path: Path, name: str, limit: int = 20) -> list[Alert]:
    """The newest stored stories subscription ``name`` matches, newest first, at most ``limit``.

    :raises ConfigError: no subscription of that name.
    """
    subscriptions = {subscription.name: subscription for subscription in configured(settings, config_path)}
    if name not in subscriptions:
        path = subscriptions_path(config_path, settings)
        known = ", ".join(sorted(subscriptions)) or "none"
        raise ConfigError([ConfigProblem(str(path), "subscriptions", f"no subscription named {name!r}", f"known: {known}")])
    engine = make_engine(settings.database_url)
    try:
        with engine.connect() as connection:
            if not sa.inspect(connection).has_table(alerts.name):
                return []
            return newest_matching(connection, subscriptions[name].filters, limit)
    finally:
        engine.dispose()


def format_stories(stories: list[Alert]) -> str:
    if not stories:
        return "no recent story matches"
    lines = []
    for story in stories:
        regions = ", ".join(story.regions) or "-"
        lines += [f"  {story.title} (v{story.version}, score {story.score:.2f}, regions {regions})", f"    {story.url}"]
    return "\n".join(lines)
