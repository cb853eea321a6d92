"""The connectors role: scheduled polls emit each article once, and sources reload without a restart."""

import logging
import time
from datetime import timedelta
from pathlib import Path

import pytest

from connectors.feed import FeedConnector
from connectors.fetch import Fetcher
from pipeline.db import make_engine
from pipeline.messages import Article, decode, utc_now
from pipeline.polling import ConnectorRunner
from pipeline.settings import FetchSettings, load_sources
from pipeline.state import StateStore
from pipeline.topology import Topics
from pipeline.transport.embedded import EmbeddedTransport
from tests.support.local_site import LocalSite

RESOURCES = Path(__file__).resolve().parents[1] / "resources" / "e2e"
TOPICS = Topics("t.")
PAGES = {"freight": "amur-heilongjiang-freight.html", "tourism": "primorye-jilin-tourism.html"}


def one_item_feed(base: str, page: str) -> bytes:
    return (
        f"<?xml version='1.0'?><rss version='2.0'><channel><title>{page}</title>"
        f"<item><title>{page}</title><link>{base}/news/{page}</link></item></channel></rss>"
    ).encode()


@pytest.fixture
def world(tmp_path):
    with LocalSite() as site:
        for name, page in PAGES.items():
            site.add(f"/news/{page}", (RESOURCES / page).read_bytes(), "text/html; charset=utf-8")
            site.add(f"/{name}.xml", one_item_feed(site.base_url, page), "application/rss+xml")
        log = EmbeddedTransport(str(tmp_path / "log.sqlite"))
        log.ensure_topics(TOPICS.all())
        state = StateStore(make_engine(f"sqlite:///{tmp_path / 'state.sqlite'}"))
        state.setup()
        fetcher = Fetcher(FetchSettings(per_host_delay_seconds=0, allow_networks=["127.0.0.0/8"]))
        sources_file = tmp_path / "sources.yaml"

        def write_sources(*names: str, text: str | None = None) -> None:
            entries = "".join(f"  - name: {n}\n    url: {site.url(f'/{n}.xml')}\n    poll_interval_seconds: 30\n" for n in names)
            sources_file.write_text(text if text is not None else "sources:\n" + entries)
            time.sleep(0.01)  # a distinct modification time for the watcher

        write_sources("freight")
        runner = ConnectorRunner(
            lambda source: FeedConnector(source, fetcher, state), load_sources(sources_file).sources,
            log.producer(), TOPICS, sources_file=sources_file, watch_interval=0.2,
        )
        yield runner, write_sources, log, state
        runner.stop()
        fetcher.close()


def emitted_urls(log, until: int, timeout: float = 30.0) -> list[str]:
    consumer = log.consumer(f"reader-{time.monotonic_ns()}", [TOPICS.articles])
    urls: list[str] = []
    deadline = time.monotonic() + timeout
    while len(urls) < until and time.monotonic() < deadline:
        urls.extend(decode(Article, record.value).url for record in consumer.poll(100, 0.2))
    consumer.close()
    return sorted(url.rsplit("/", 1)[-1] for url in urls)


def wait_for(condition, timeout: float = 10.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.05)
    return False


def test_sources_added_changed_and_removed_while_running(world, caplog):
    runner, write_sources, log, _ = world
    runner.start()
    assert emitted_urls(log, until=1) == [PAGES["freight"]]

    write_sources("freight", "tourism")
    assert emitted_urls(log, until=2) == sorted(PAGES.values())
    assert sorted(runner.names) == ["freight", "tourism"]

    with caplog.at_level(logging.ERROR, logger="pipeline.polling"):
        write_sources(text="sources:\n  - name: freight\n    url: ftp://nowhere\n")
        assert wait_for(lambda: "sources file not reloaded" in caplog.text)
    assert "sources.0.url" in caplog.text
    assert sorted(runner.names) == ["freight", "tourism"]

    write_sources("tourism")
    assert wait_for(lambda: runner.names == ["tourism"])
    # Re-reading the sources never re-emits what was already emitted.
    assert emitted_urls(log, until=3, timeout=1.0) == sorted(PAGES.values())


def test_poll_all_once_reports_each_source(world):
    runner, _, log, _ = world
    (summary,) = runner.poll_all_once()
    assert summary.describe() == "source freight: 1 new article(s), 0 failed item(s)"
    (again,) = runner.poll_all_once()
    assert again.emitted == 0
    assert emitted_urls(log, until=1) == [PAGES["freight"]]


def test_a_restart_keeps_the_stored_schedule(world):
    runner, _, log, state = world
    state.record_failure("freight", "connection refused", utc_now() + timedelta(minutes=10))
    runner.start()
    assert emitted_urls(log, until=1, timeout=1.5) == []  # backing off: not polled at start-up
