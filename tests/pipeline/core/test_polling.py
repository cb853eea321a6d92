"""The connectors role: scheduled polls emit each article once, and sources reload without a restart."""

import logging
import threading
import time
from datetime import timedelta
from pathlib import Path

import pytest

from connectors.feed import FeedConnector
from connectors.fetch import Fetcher
from pipeline.core.db import make_engine
from pipeline.core.messages import Article, DeadLetter, decode, utc_now
from pipeline.core.polling import ConnectorRunner
from pipeline.core.settings import FetchSettings, load_sources
from pipeline.core.state import StateStore, seen_articles
from pipeline.core.topology import Topics
from pipeline.core.transport.embedded import EmbeddedTransport
from tests.support.local_site import LocalSite
from tests.support.messages import backdate_emissions

RESOURCES = Path(__file__).resolve().parents[2] / "resources" / "e2e"
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
        # A wire feed carrying the freight story too, under a tracking-tagged link.
        site.add("/wire.xml", one_item_feed(site.base_url, PAGES["freight"] + "?utm_source=wire"), "application/rss+xml")
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
            log.producer(), TOPICS, sources_file=sources_file, watch_interval=0.2, on_cancel=fetcher.cancel,
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

    with caplog.at_level(logging.ERROR, logger="pipeline.core.polling"):
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


def blocking_feed_site(site: LocalSite, release: threading.Event, pages: int = 3) -> str:
    """A feed of ``pages`` stories whose last page is served only once ``release`` is set."""
    page = (RESOURCES / PAGES["freight"]).read_bytes()
    items = "".join(
        f"<item><title>Story {n}</title><link>{site.base_url}/slow/{n}</link>"
        f"<pubDate>Mon, {23 - n:02d} Nov 2026 06:00:00 GMT</pubDate></item>" for n in range(pages)
    )
    site.add("/busy.xml", f"<?xml version='1.0'?><rss version='2.0'><channel><title>busy</title>{items}</channel></rss>"
             .encode(), "application/rss+xml")
    for n in range(pages - 1):
        site.add(f"/slow/{n}", page.replace(b"Blagoveshchensk", f"Blagoveshchensk {n}".encode()))

    def last_page(request):
        release.wait(30)
        body = page.replace(b"Blagoveshchensk", b"Blagoveshchensk last")
        request.send_response(200)
        request.send_header("Content-Type", "text/html; charset=utf-8")
        request.send_header("Content-Length", str(len(body)))
        request.end_headers()
        request.wfile.write(body)

    site.add_handler(f"/slow/{pages - 1}", last_page)
    return site.url("/busy.xml")


def test_each_article_reaches_the_topic_before_the_last_page_of_its_poll_is_fetched(world, tmp_path):
    runner, write_sources, log, state = world
    release = threading.Event()
    with LocalSite() as slow_site:
        write_sources(text=f"sources:\n  - name: busy\n    url: {blocking_feed_site(slow_site, release)}\n")
        assert runner.reload_if_changed()
        poll = threading.Thread(target=runner.poll, args=["busy"])
        poll.start()
        try:
            early = emitted_urls(log, until=2, timeout=20)  # while the last page is still held back
            assert early == ["0", "1"]
            # each marked seen right after its flush, not at the end of the poll
            assert wait_for(lambda: list(state.item_statuses("busy").values()) == ["emitted", "emitted"])
            assert state.get("busy").etag is None  # validators wait for the whole poll
        finally:
            release.set()
            poll.join(30)
        assert emitted_urls(log, until=3) == ["0", "1", "2"]


def test_an_edit_takes_effect_within_seconds_while_every_poll_worker_is_busy(world):
    runner, write_sources, log, state = world
    release = threading.Event()
    with LocalSite() as slow_site:
        busy = blocking_feed_site(slow_site, release, pages=1)
        write_sources(text="sources:\n" + "".join(
            f"  - name: busy-{n}\n    url: {busy}?n={n}\n" for n in range(6)))  # more than the pool's workers
        runner.start()
        try:
            assert wait_for(lambda: len(runner.in_flight) == runner.poll_workers)  # every worker is busy
            write_sources("freight")
            assert wait_for(lambda: runner.names == ["freight"], timeout=5)
        finally:
            release.set()


def test_stop_cuts_polls_in_flight_short_within_seconds_and_says_so(world, caplog):
    runner, write_sources, log, state = world
    never = threading.Event()
    with LocalSite() as slow_site:
        write_sources(text=f"sources:\n  - name: stuck\n    url: {blocking_feed_site(slow_site, never, pages=2)}\n")
        assert runner.reload_if_changed()
        runner.start()
        assert wait_for(lambda: emitted_urls(log, until=1, timeout=0.5) == ["0"], timeout=15)
        assert wait_for(lambda: slow_site.requests_to("/slow/1"))  # a request now waits on the server
        caplog.set_level(logging.INFO, logger="pipeline.core.polling")
        started = time.monotonic()
        runner.stop()
        assert time.monotonic() - started < 5
        never.set()
    assert "stopping: cutting short the polls of stuck" in caplog.text
    assert state.item_statuses("stuck")  # what was emitted is recorded
    assert "retrying" not in state.item_statuses("stuck").values()  # the cut request is not a failure
    assert state.get("stuck").consecutive_failures == 0


def test_an_article_two_sources_list_is_emitted_once_and_not_again_after_a_restart(world):
    runner, write_sources, log, state = world
    write_sources("freight", "wire", "tourism")
    assert runner.reload_if_changed()
    summaries = {summary.source: summary.emitted for summary in runner.poll_all_once()}
    assert summaries == {"freight": 1, "wire": 0, "tourism": 1}
    wire = next(source for source in load_sources(runner.sources_file).sources if source.name == "wire")
    fetcher = Fetcher(FetchSettings(per_host_delay_seconds=0, allow_networks=["127.0.0.0/8"]))
    restarted = ConnectorRunner(lambda source: FeedConnector(source, fetcher, state), [wire], log.producer(), TOPICS)
    assert restarted.poll("wire")[0].emitted == 0
    fetcher.close()
    assert emitted_urls(log, until=3, timeout=3) == [PAGES["freight"], PAGES["tourism"]]


def test_a_source_that_goes_quiet_is_reported_once_as_a_dead_letter(world, caplog):
    runner, write_sources, log, state = world
    runner.state = state
    now = utc_now()
    runner.poll("freight")  # its one article is emitted now; then it publishes nothing more
    backdate_emissions(state, "freight", [now - timedelta(hours=h) for h in (40, 35, 30, 25, 20)])
    with state.engine.begin() as connection:  # and the article of the first poll was 20 h ago too
        connection.execute(seen_articles.update().where(seen_articles.c.first_seen_at > now - timedelta(minutes=5))
                           .values(first_seen_at=now - timedelta(hours=20)))
    caplog.set_level(logging.WARNING, logger="pipeline.core.polling")
    runner.poll("freight")
    runner.poll("freight")
    consumer = log.consumer("dlq-reader", [TOPICS.dlq])
    letters = [decode(DeadLetter, record.value) for record in consumer.poll(100, 1.0)]
    consumer.close()
    assert [letter.id for letter in letters] == ["freight:silent"]
    assert letters[0].error_type == "SourceSilent" and "usual gap is 5.0 h" in letters[0].reason
    assert caplog.text.count("source silent: source=freight") == 1


def test_a_source_failing_poll_after_poll_is_called_unhealthy_once(world, caplog):
    runner, write_sources, log, state = world
    runner.state, runner.unhealthy_after = state, 3
    write_sources("freight", text=(
        "sources:\n  - name: freight\n    url: http://127.0.0.1:9/gone.xml\n    poll_interval_seconds: 30\n"
    ))
    runner.reload_if_changed()
    caplog.set_level(logging.WARNING, logger="pipeline.core.polling")

    for _ in range(5):
        summary, retry_in = runner.poll("freight")
        assert summary.error and "connection refused" in summary.error

    assert caplog.text.count("source unhealthy: source=freight failures=3") == 1
    assert state.get("freight").consecutive_failures == 5
    assert retry_in == 30 * 2 ** 5  # still retried, backing off


def test_the_runner_forgets_old_seen_urls_and_a_still_listed_one_stays_seen(world, tmp_path):
    runner, write_sources, log, state = world
    runner.state = state
    state.retention = timedelta(days=30)
    runner.poll("freight")
    long_ago = utc_now() - timedelta(days=60)
    with state.engine.begin() as connection:
        connection.execute(seen_articles.update().values(first_seen_at=long_ago, updated_at=long_ago, last_listed_at=None))
    backdate_emissions(state, "gone", [long_ago])

    runner.poll("freight")  # the feed still lists its article: marked listed, not emitted again
    runner.forget_old_seen()

    assert count_by_source(state) == {"freight": 1}  # "gone" no listing shows: forgotten
    assert emitted_urls(log, until=2, timeout=1.0) == [PAGES["freight"]]


def count_by_source(state) -> dict[str, int]:
    import sqlalchemy as sa

    with state.engine.connect() as connection:
        rows = connection.execute(sa.select(seen_articles.c.source, sa.func.count()).group_by(seen_articles.c.source)).all()
    return dict(rows)
