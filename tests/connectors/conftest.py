"""Fixtures for the connector tests: a local web site, a fetcher, a state store, resources."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from connectors.fetch import Fetcher
from pipeline.core.db import make_engine
from pipeline.core.settings import FetchSettings
from pipeline.core.state import StateStore
from tests.support.local_site import LOOPBACK, LocalSite

RESOURCES = Path(__file__).resolve().parent.parent / "resources"


@pytest.fixture
def local_site():
    with LocalSite() as site:
        yield site


@pytest.fixture
def fetch_settings() -> FetchSettings:
    # Small limits keep the bad-input tests fast; no politeness delay unless a test asks.
    return FetchSettings(
        timeout_seconds=2.0, max_bytes=200_000, max_redirects=3, per_host_delay_seconds=0, allow_networks=LOOPBACK,
    )


@pytest.fixture
def fetcher(fetch_settings):
    with Fetcher(fetch_settings) as fetcher:
        yield fetcher


@pytest.fixture
def state(tmp_path) -> StateStore:
    engine = make_engine(f"sqlite:///{tmp_path / 'state.sqlite'}")
    store = StateStore(engine)
    store.setup()
    yield store
    engine.dispose()


@pytest.fixture
def resource(local_site) -> Callable[..., bytes]:
    """``resource("feeds/x.rss")``: a file of tests/resources, ``{BASE}`` replaced by the site's URL."""

    def read(name: str, **replacements: str) -> bytes:
        text = (RESOURCES / name).read_text(encoding="utf-8").replace("{BASE}", local_site.base_url)
        for key, value in replacements.items():
            text = text.replace("{" + key + "}", value)
        return text.encode("utf-8")

    return read
