"""Checking a deployment's configuration: amur.yaml and the sources and subscriptions files
it names, every problem at once (``amur config check``), the webhook secrets the environment
must hold included: found before a start, not by it."""

from __future__ import annotations

import os
from pathlib import Path

from pipeline.errors import ConfigError, ConfigProblem
from pipeline.settings import DEFAULT_CONFIG_PATH, AmurSettings, load_settings, load_sources, read_yaml, sources_path
from pipeline.subscriptions import load_subscriptions, secret_problems, subscriptions_path


def check_config(path: Path | str = DEFAULT_CONFIG_PATH) -> list[ConfigProblem]:
    """Every problem of amur.yaml and the sources and subscriptions files it names; empty when all are valid.

    A file that is itself a sources or subscriptions file (a top-level ``sources`` or
    ``subscriptions`` key) is checked alone.
    """
    path = Path(path)
    problems: list[ConfigProblem] = []
    try:
        raw = read_yaml(path)
    except ConfigError as exc:
        return exc.problems
    if isinstance(raw, dict) and "sources" in raw:
        try:
            load_sources(path)
        except ConfigError as exc:
            problems.extend(exc.problems)
        return problems
    if isinstance(raw, dict) and "subscriptions" in raw:
        try:
            problems.extend(secret_problems(path, load_subscriptions(path, AmurSettings()), os.environ))
        except ConfigError as exc:
            problems.extend(exc.problems)
        return problems
    try:
        settings = load_settings(path)
        settings_valid = True
    except ConfigError as exc:
        # The other files are checked all the same, where amur.yaml names them or at their
        # default places: one mistake in amur.yaml hides none of theirs.
        problems.extend(exc.problems)
        settings, settings_valid = _naming_files(raw), False
    sources = sources_path(path, settings)
    try:
        if settings_valid or sources.exists():
            load_sources(sources)
    except ConfigError as exc:
        problems.extend(exc.problems)
    subscriptions = subscriptions_path(path, settings)
    try:
        problems.extend(secret_problems(subscriptions, load_subscriptions(subscriptions, settings), os.environ))
    except ConfigError as exc:
        problems.extend(exc.problems)
    return problems


def _naming_files(raw: object) -> AmurSettings:
    """Default settings, with the sources and subscriptions files an invalid amur.yaml names."""
    named = {key: raw[key] for key in ("sources_file", "subscriptions_file") if isinstance(raw, dict) and isinstance(raw.get(key), str)}
    try:
        return AmurSettings(**named)
    except ValueError:
        return AmurSettings()
