"""Checking a deployment's configuration: amur.yaml and the sources and subscriptions files
it names, every problem at once (``amur config check``), the webhook secrets the environment
must hold included: found before a start, not by it."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

from pipeline.core.errors import ConfigError, ConfigProblem
from pipeline.core.settings import DEFAULT_CONFIG_PATH, AmurSettings, load_settings, load_sources, read_yaml, sources_path
from pipeline.core.subscriptions import Vocabulary, load_subscriptions, secret_problems, smtp_problems, subscriptions_path


def check_config(
    path: Path | str = DEFAULT_CONFIG_PATH, vocabulary: Callable[[AmurSettings], Vocabulary] | None = None,
) -> list[ConfigProblem]:
    """Every problem of amur.yaml and the sources and subscriptions files it names; empty when all are valid.

    A file that is itself a sources or subscriptions file (a top-level ``sources`` or
    ``subscriptions`` key) is checked alone.

    :param vocabulary: the regions and languages that exist, for the settings (the
        application reads them from the gazetteer): the subscriptions' filters are checked
        against them too.
    """
    path = Path(path)
    try:
        raw = read_yaml(path)
    except ConfigError as exc:
        return exc.problems
    if isinstance(raw, dict) and "sources" in raw:
        return _source_problems(path)
    if isinstance(raw, dict) and "subscriptions" in raw:
        return _subscription_problems(path, AmurSettings(), vocabulary, config_file=None)
    try:
        settings = load_settings(path)
    except ConfigError as exc:
        # The other files are checked all the same, where amur.yaml names them or at their
        # default places: one mistake in amur.yaml hides none of theirs.
        settings = _naming_files(raw)
        sources = sources_path(path, settings)
        return [*exc.problems, *(_source_problems(sources) if sources.exists() else []),
                *_subscription_problems(subscriptions_path(path, settings), settings, vocabulary, config_file=str(path))]
    return [*_source_problems(sources_path(path, settings)), *_subscription_problems(subscriptions_path(path, settings), settings, vocabulary, config_file=str(path))]


def _source_problems(path: Path) -> list[ConfigProblem]:
    try:
        load_sources(path)
    except ConfigError as exc:
        return exc.problems
    return []


def _subscription_problems(
    path: Path, settings: AmurSettings, vocabulary: Callable[[AmurSettings], Vocabulary] | None, config_file: str | None,
) -> list[ConfigProblem]:
    """The subscriptions file's problems, the secrets the environment lacks, and the filter
    values that do not exist; with the amur.yaml (``config_file``) it goes with, what stops
    its email channels (checked alone, a subscriptions file has no SMTP server to ask about)."""
    try:
        known = vocabulary(settings) if vocabulary is not None else None
        subscriptions = load_subscriptions(path, settings, known)
    except ConfigError as exc:
        return exc.problems
    return [
        *secret_problems(path, subscriptions, os.environ),
        *(smtp_problems(config_file, settings.email, subscriptions, os.environ) if config_file is not None else []),
    ]


def _naming_files(raw: object) -> AmurSettings:
    """Default settings, with the sources and subscriptions files an invalid amur.yaml names."""
    named = {key: raw[key] for key in ("sources_file", "subscriptions_file") if isinstance(raw, dict) and isinstance(raw.get(key), str)}
    try:
        return AmurSettings(**named)
    except ValueError:
        return AmurSettings()
