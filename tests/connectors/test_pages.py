"""An article's URL is where its page really is: the end of the redirects, or its same-site canonical link."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from connectors.extract import shared_extractor
from connectors.feed import FeedConnector
from connectors.fetch import Fetcher
from connectors.pages import article_from_page, article_url, publication_date
from connectors.sitemap import SitemapConnector
from pipeline.core.connector import ConnectorContext, Item
from pipeline.core.errors import ExtractionError, FetchError
from pipeline.core.messages import article_id
from pipeline.core.settings import AmurSettings, ConnectorSettings, SourceConfig
from tests.support.local_site import redirect_to
from tests.support.messages import discard

PAGE = (Path(__file__).resolve().parent.parent / "resources" / "pages" / "ferry-line.html").read_text(encoding="utf-8")


def with_canonical(href: str) -> bytes:
    return PAGE.replace("<head>", f'<head>\n  <link rel="canonical" href="{href}">').encode()


@pytest.mark.parametrize(("final", "declared", "expected"), [
    ("https://m.news.example/s?id=7", "https://news.example/story/7", "https://news.example/story/7"),
    ("https://news.example/s?id=7&utm_source=rss", "/story/7#top", "https://news.example/story/7"),
    ("https://news.example/s?id=7", "https://aggregator.example/copied/7", "https://news.example/s?id=7"),
    ("https://news.example/s?id=7", "javascript:alert(1)", "https://news.example/s?id=7"),
    ("https://news.example/s?id=7&utm_source=rss", None, "https://news.example/s?id=7"),
])
def test_article_url(final, declared, expected):
    assert article_url(final, declared) == expected


def test_the_id_comes_from_the_page_not_from_the_link(local_site, fetcher):
    local_site.add("/story/ferry", with_canonical(local_site.url("/news/ferry-line")))
    local_site.add_handler("/go/123", redirect_to(local_site.url("/story/ferry?utm_medium=feed")))

    article = article_from_page(fetcher, Item(url=local_site.url("/go/123"), title="From the feed"), "courier")

    assert article.url == local_site.url("/news/ferry-line")
    assert article.id == article_id(article.url)
    assert article.title == "Summer ferry returns to the Lower Crossing"


def test_one_article_behind_two_links_is_emitted_once(local_site, fetcher, state):
    local_site.add("/story/ferry", with_canonical(local_site.url("/story/ferry")))
    local_site.add_handler("/go/ferry", redirect_to(local_site.url("/story/ferry")))
    feed = (
        "<?xml version='1.0'?><rss version='2.0'><channel><title>Courier</title>"
        f"<item><title>Ferry</title><link>{local_site.url('/story/ferry')}</link></item>"
        f"<item><title>Ferry again</title><link>{local_site.url('/go/ferry')}</link></item>"
        "</channel></rss>"
    )
    local_site.add("/feed.rss", feed.encode(), "application/rss+xml")
    source = FeedConnector(SourceConfig(name="courier", url=local_site.url("/feed.rss")), fetcher, state)

    first = source.poll(discard)
    source.commit()
    assert [article.url for article in first.articles] == [local_site.url("/story/ferry")]

    local_site.add("/feed.rss", feed.replace("Courier", "Courier, updated").encode(), "application/rss+xml")
    again = source.poll()  # both links are known now: neither page is fetched again
    assert again.articles == [] and len(local_site.requests_to("/story/ferry")) == 2


def test_connectors_of_one_process_read_pages_in_its_extractor_processes_until_it_closes(local_site, fetch_settings, state):
    local_site.add("/news/ferry", PAGE.encode())
    local_site.add("/feed.rss", (
        "<?xml version='1.0'?><rss version='2.0'><channel><title>Courier</title>"
        f"<item><title>Ferry</title><link>{local_site.url('/news/ferry')}</link></item></channel></rss>"
    ).encode(), "application/rss+xml")
    context = ConnectorContext(AmurSettings(fetch=fetch_settings, connectors=ConnectorSettings(extract_processes=1)), state)
    feed = FeedConnector.from_source(SourceConfig(name="courier", url=local_site.url("/feed.rss")), context)
    sitemap = SitemapConnector.from_source(SourceConfig(name="courier-map", kind="sitemap", url=local_site.url("/sitemap.xml")), context)
    extractor = shared_extractor(context)
    try:
        assert feed.extract == sitemap.extract == extractor.extract  # one set of processes for the whole process
        (article,) = feed.poll(discard).articles
        assert article.title == "Summer ferry returns to the Lower Crossing"
    finally:
        context.close()

    with pytest.raises(ExtractionError, match="not extracted: the connectors are shutting down"):
        feed.extract(PAGE, local_site.url("/news/ferry"))


ROBOTS = b"User-agent: *\nDisallow: /members/\n\nUser-agent: GreedyBot\nDisallow: /\n"


def test_a_page_the_site_s_robots_txt_disallows_is_a_permanent_item_failure(local_site, resource, fetcher):
    local_site.add("/robots.txt", ROBOTS, "text/plain")
    local_site.add("/members/ferry", resource("pages/ferry-line.html"))
    local_site.add("/news/ferry", resource("pages/ferry-line.html"))

    with pytest.raises(FetchError) as refused:
        article_from_page(fetcher, Item(url=local_site.url("/members/ferry")), "courier")
    assert "robots.txt disallows" in str(refused.value) and refused.value.retryable is False
    assert local_site.requests_to("/members/ferry") == []
    assert article_from_page(fetcher, Item(url=local_site.url("/news/ferry")), "courier").text
    assert len(local_site.requests_to("/robots.txt")) == 1  # read once per host


def test_no_robots_txt_allows_every_page_and_the_switch_turns_the_check_off(local_site, resource, fetch_settings):
    local_site.add("/news/ferry", resource("pages/ferry-line.html"))
    with Fetcher(fetch_settings) as fetcher:
        assert article_from_page(fetcher, Item(url=local_site.url("/news/ferry")), "courier").text  # robots.txt is a 404
    local_site.add("/robots.txt", b"User-agent: *\nDisallow: /\n", "text/plain")
    with Fetcher(fetch_settings.model_copy(update={"respect_robots": False})) as fetcher:
        assert article_from_page(fetcher, Item(url=local_site.url("/news/ferry")), "courier").text


NOW = datetime(2026, 12, 3, 12, 0, tzinfo=UTC)


@pytest.mark.parametrize(("listed", "stated", "expected", "why"), [
    (NOW - timedelta(hours=1), NOW - timedelta(days=2), NOW - timedelta(days=2), "the page's original date beats a re-listing"),
    (NOW - timedelta(hours=1), None, NOW - timedelta(hours=1), "no page date: the listing's"),
    (None, NOW - timedelta(hours=3), NOW - timedelta(hours=3), "no listing date: the page's"),
    (NOW - timedelta(hours=1), NOW + timedelta(days=30), NOW - timedelta(hours=1), "a page date in the future is not believed"),
    (NOW - timedelta(hours=1), datetime(2019, 1, 1, tzinfo=UTC), NOW - timedelta(hours=1), "years before the listing: a copyright year"),
    (NOW + timedelta(days=400), None, None, "a listing date in the future neither"),
    (None, NOW + timedelta(minutes=30), NOW + timedelta(minutes=30), "a clock a little ahead is tolerated"),
])
def test_publication_date_is_sanity_checked(listed, stated, expected, why):
    assert publication_date(listed, stated, NOW) == expected, why


def test_a_robots_txt_that_fails_with_5xx_disallows_every_page_until_it_answers(local_site, resource, fetch_settings):
    """RFC 9309: a server error on robots.txt is a full disallow; the page waits (retryable) and
    is fetched once robots.txt answers again."""
    local_site.add("/robots.txt", b"temporarily down", "text/plain", status=503)
    local_site.add("/news/ferry", resource("pages/ferry-line.html"))
    with Fetcher(fetch_settings) as fetcher:
        with pytest.raises(FetchError) as waiting:
            article_from_page(fetcher, Item(url=local_site.url("/news/ferry")), "courier")
        assert waiting.value.retryable and "robots.txt cannot be read now" in str(waiting.value)
        assert local_site.requests_to("/news/ferry") == []
    local_site.add("/robots.txt", b"User-agent: *\nDisallow: /members/\n", "text/plain")
    with Fetcher(fetch_settings) as fetcher:  # a later poll, once robots.txt is back
        assert article_from_page(fetcher, Item(url=local_site.url("/news/ferry")), "courier").text
