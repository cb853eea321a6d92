"""One source's absurd bytes, or a bug they trigger, are that source's failure: the other
sources of a ``--once`` run are polled and the failure is recorded (feeds in our own words)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from connectors.feed import FeedConnector
from connectors.fetch import Fetcher
from connectors.pages import publication_date
from pipeline.core.connector import plausible_publication
from pipeline.core.db import make_engine
from pipeline.core.messages import Article, decode
from pipeline.core.polling import ConnectorRunner
from pipeline.core.settings import FetchSettings, load_sources
from pipeline.core.state import StateStore
from pipeline.core.topology import Topics
from pipeline.core.transport.embedded import EmbeddedTransport
from tests.support.local_site import LocalSite

TOPICS = Topics("t.")
PAGE = (Path(__file__).resolve().parents[1] / "resources" / "e2e" / "amur-heilongjiang-freight.html").read_bytes()


def _feed(base: str, channel_extra: str = "") -> bytes:
    return (
        f"<?xml version='1.0'?><rss version='2.0'><channel><title>Border news</title>{channel_extra}"
        f"<item><title>Freight over the bridge</title><link>{base}/news/freight.html</link></item></channel></rss>"
    ).encode()


class BrokenOnListing(FeedConnector):
    """A connector with a bug its source's bytes trigger (as the <ttl> overflow once did)."""

    def list_items(self, etag, last_modified):
        raise ValueError("cannot convert an absurd value")


@pytest.fixture
def run(tmp_path):
    with LocalSite() as site:
        site.add("/news/freight.html", PAGE, "text/html; charset=utf-8")
        site.add("/absurd.xml", _feed(site.base_url, "<ttl>" + "9" * 400 + "</ttl>"), "application/rss+xml")
        site.add("/buggy.xml", _feed(site.base_url), "application/rss+xml")
        site.add("/fine.xml", _feed(site.base_url), "application/rss+xml")
        sources = tmp_path / "sources.yaml"
        sources.write_text("sources:\n" + "".join(
            f"  - name: {name}\n    url: {site.url(f'/{name}.xml')}\n" for name in ("absurd", "buggy", "fine")
        ))
        log = EmbeddedTransport(str(tmp_path / "log.sqlite"))
        log.ensure_topics(TOPICS.all())
        state = StateStore(make_engine(f"sqlite:///{tmp_path / 'state.sqlite'}"))
        state.setup()
        fetcher = Fetcher(FetchSettings(per_host_delay_seconds=0, allow_networks=["127.0.0.0/8"]))

        def connector(source):
            kind = BrokenOnListing if source.name == "buggy" else FeedConnector
            return kind(source, fetcher, state)

        runner = ConnectorRunner(connector, load_sources(sources).sources, log.producer(), TOPICS)
        try:
            yield runner, log, state
        finally:
            runner.stop()
            fetcher.close()


def test_an_absurd_ttl_is_ignored_and_a_bug_fails_its_source_only(run):
    runner, log, state = run
    summaries = {summary.source: summary for summary in runner.poll_all_once()}

    assert set(summaries) == {"absurd", "buggy", "fine"}
    assert summaries["absurd"].error is None  # a ttl of 400 nines is no hint, not an overflow
    assert "unexpected ValueError while reading the source: cannot convert an absurd value" in summaries["buggy"].error
    assert summaries["fine"].error is None
    buggy = state.get("buggy")
    assert buggy.consecutive_failures == 1 and "unexpected ValueError" in buggy.last_error
    consumer = log.consumer("reader", [TOPICS.articles])
    articles = [decode(Article, record.value) for record in consumer.poll(100, 0.1)]
    consumer.close()
    assert [article.source for article in articles] == ["absurd"]  # one article per canonical URL, first lister wins


@pytest.mark.parametrize("absurd", [datetime(1, 1, 1, tzinfo=UTC), datetime(1989, 12, 31, tzinfo=UTC), datetime(2999, 1, 1, tzinfo=UTC)])
def test_a_publication_date_before_1990_or_in_the_future_is_not_kept(absurd):
    now = datetime(2026, 12, 6, 12, tzinfo=UTC)
    assert plausible_publication(absurd, now) is None
    assert publication_date(absurd, None, now) is None
    assert publication_date(absurd, now - timedelta(days=1), now) == now - timedelta(days=1)  # the page's own date wins
