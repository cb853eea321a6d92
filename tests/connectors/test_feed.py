"""The RSS/Atom connector against a local web site: feeds, pages and their failures, for real."""

from __future__ import annotations

import logging
import re
import socket
from datetime import UTC, datetime
from pathlib import Path

import pytest

import connectors.feed
from connectors.decoding import decode_body
from connectors.feed import FeedConnector
from connectors.fetch import FetchResult
from pipeline.core.errors import ExtractionError, FeedParseError, FetchError
from pipeline.core.messages import article_id
from pipeline.core.settings import SourceConfig
from pipeline.core.state import EMITTED, EMITTED_WITHOUT_PAGE
from tests.support.messages import discard

RSS = "application/rss+xml; charset=utf-8"
PAGES = ("ferry-line", "grain-terminal", "university-exchange")


def connector(site, fetcher, state, path="/feed.rss", **overrides) -> FeedConnector:
    source = SourceConfig(name="valley-courier", url=site.url(path), **overrides)
    return FeedConnector(source, fetcher, state)


@pytest.fixture
def courier(local_site, resource):
    """The Valley Courier: an RSS feed of three stories, and their pages."""
    local_site.add("/feed.rss", resource("feeds/valley-courier.rss"), RSS)
    for name in PAGES:
        local_site.add(f"/articles/{name}", resource(f"pages/{name}.html"))
    return local_site


def page_requests(site) -> dict[str, int]:
    return {name: len(site.requests_to(f"/articles/{name}")) for name in PAGES}


# --- the happy path --------------------------------------------------------------------------


def test_first_poll_returns_every_entry_newest_first(courier, fetcher, state):
    result = connector(courier, fetcher, state).poll()

    assert [article.title for article in result.articles] == [
        "Two universities sign a student exchange",
        "New grain terminal opens at the river port",
        "Summer ferry returns to the Lower Crossing",
    ]
    assert result.failures == []
    assert result.next_poll_in == 300
    assert "application/rss+xml" in courier.requests_to("/feed.rss")[0].headers["Accept"]


def test_articles_combine_the_entry_and_the_page(courier, fetcher, state):
    articles = {article.title: article for article in connector(courier, fetcher, state).poll().articles}

    ferry = articles["Summer ferry returns to the Lower Crossing"]
    assert ferry.url == courier.url("/articles/ferry-line")  # utm_* dropped
    assert ferry.id == article_id(ferry.url)
    assert ferry.source == "valley-courier"
    assert ferry.summary == "The ferry between Ostrovka and Kamenny Bereg starts a week early."  # HTML stripped
    assert ferry.published_at == datetime(2024, 5, 14, 4, 30, tzinfo=UTC)
    assert ferry.authors == ["Marta Lindqvist"]
    assert ferry.language == "en"
    assert "made its first trip of the year" in ferry.text
    assert ferry.fetched_at.tzinfo is not None

    grain = articles["New grain terminal opens at the river port"]
    assert grain.url == courier.url("/articles/grain-terminal")  # fragment dropped
    assert grain.authors == ["Pavel Orlov", "Chen Lan"]

    school = articles["Two universities sign a student exchange"]
    assert school.published_at == datetime(2024, 5, 16, 9, 0, tzinfo=UTC)  # from the entry; the page has none
    assert school.authors == []


def test_atom_feed_with_a_relative_link(local_site, resource, fetcher, state):
    local_site.add("/business.atom", resource("feeds/valley-courier.atom"), "application/atom+xml")
    for name in PAGES:
        local_site.add(f"/articles/{name}", resource(f"pages/{name}.html"))

    result = connector(local_site, fetcher, state, "/business.atom").poll()

    assert [article.url for article in result.articles] == [
        local_site.url("/articles/grain-terminal"), local_site.url("/articles/ferry-line"),
    ]
    assert result.articles[1].published_at == datetime(2024, 5, 14, 4, 30, tzinfo=UTC)  # <updated> when no <published>


def test_windows_1251_feed_and_page_declared_as_utf8(local_site, resource, fetcher, state):
    feed = f"""<?xml version="1.0" encoding="utf-8"?>
<rss version="2.0"><channel><title>Вести долины</title><language>ru</language>
<item><title>Мост через Светлую откроют в июле</title><link>{local_site.url("/most")}</link>
<description>Ремонт моста завершится к середине лета.</description></item>
</channel></rss>"""
    local_site.add("/feed.rss", feed.encode("windows-1251"), RSS)
    page = resource("pages/bridge-ru.html", CHARSET="utf-8").decode("utf-8").encode("windows-1251")
    local_site.add("/most", page, "text/html; charset=utf-8")

    [article] = connector(local_site, fetcher, state).poll().articles

    assert article.title == "Мост через Светлую откроют в июле"
    assert article.summary == "Ремонт моста завершится к середине лета."
    assert article.language == "ru"
    assert "сорока тонн" in article.text


# --- seen articles, commit and conditional GET ------------------------------------------------------


def test_committed_articles_are_not_fetched_again(courier, fetcher, state):
    feed = connector(courier, fetcher, state)
    feed.poll(discard)
    feed.commit()

    second = feed.poll()

    assert second.articles == [] and second.failures == []
    assert page_requests(courier) == {name: 1 for name in PAGES}
    assert len(courier.requests_to("/feed.rss")) == 2


def test_articles_polled_but_not_committed_come_again(local_site, resource, fetcher, state):
    local_site.add("/feed.rss", resource("feeds/valley-courier.rss"), RSS, headers={"ETag": '"r1"'})
    for name in PAGES:
        local_site.add(f"/articles/{name}", resource(f"pages/{name}.html"))
    feed = connector(local_site, fetcher, state)

    first = feed.poll()  # ...and the runtime crashes before commit
    second = connector(local_site, fetcher, state).poll()

    assert [article.id for article in second.articles] == [article.id for article in first.articles]
    assert "If-None-Match" not in local_site.requests_to("/feed.rss")[1].headers  # a 304 would hide them


def test_second_poll_sends_validators_and_a_304_means_nothing_new(local_site, resource, fetcher, state, monkeypatch):
    validators = {"ETag": '"r1"', "Last-Modified": "Thu, 16 May 2024 09:00:00 GMT"}
    local_site.add("/feed.rss", resource("feeds/valley-courier.rss"), RSS, headers=validators)
    for name in PAGES:
        local_site.add(f"/articles/{name}", resource(f"pages/{name}.html"))
    feed = connector(local_site, fetcher, state)
    feed.poll(discard)
    feed.commit()

    def no_parsing(*_args):
        raise AssertionError("a 304 must not be parsed")

    monkeypatch.setattr(connectors.feed, "_parse", no_parsing)
    second = feed.poll()

    sent = local_site.requests_to("/feed.rss")[1].headers
    assert (sent["If-None-Match"], sent["If-Modified-Since"]) == ('"r1"', "Thu, 16 May 2024 09:00:00 GMT")
    assert second.articles == [] and second.next_poll_in == 300
    assert page_requests(local_site) == {name: 1 for name in PAGES}
    after = state.get("valley-courier")
    assert (after.etag, after.consecutive_failures, after.last_error) == ('"r1"', 0, None)


def test_max_articles_per_poll_leaves_the_rest_for_the_next_poll(local_site, resource, fetcher, state):
    local_site.add("/feed.rss", resource("feeds/valley-courier.rss"), RSS, headers={"ETag": '"r1"'})
    for name in PAGES:
        local_site.add(f"/articles/{name}", resource(f"pages/{name}.html"))
    feed = connector(local_site, fetcher, state, max_articles_per_poll=2)

    first = feed.poll(discard)
    feed.commit()
    second = feed.poll(discard)
    feed.commit()
    third = feed.poll()

    assert [len(first.articles), len(second.articles), len(third.articles)] == [2, 1, 0]
    assert second.articles[0].title == "Summer ferry returns to the Lower Crossing"  # the oldest came last
    feed_requests = local_site.requests_to("/feed.rss")
    assert "If-None-Match" not in feed_requests[1].headers  # entries were left over: full GET
    assert feed_requests[2].headers["If-None-Match"] == '"r1"'


def test_a_repeated_link_gives_one_article(local_site, resource, fetcher, state):
    feed = resource("feeds/valley-courier.rss").replace(b"/articles/university-exchange", b"/articles/ferry-line?utm_campaign=again")
    local_site.add("/feed.rss", feed, RSS)
    local_site.add("/articles/ferry-line", resource("pages/ferry-line.html"))
    local_site.add("/articles/grain-terminal", resource("pages/grain-terminal.html"))

    result = connector(local_site, fetcher, state).poll()

    assert len(result.articles) == 2
    assert len(local_site.requests_to("/articles/ferry-line")) == 1


# --- item failures ---------------------------------------------------------------------------------


def test_failed_items_do_not_stop_the_others(local_site, resource, fetcher, state):
    local_site.add("/feed.rss", resource("feeds/valley-courier.rss"), RSS)
    local_site.add("/articles/ferry-line", resource("pages/ferry-line.html"))
    local_site.add("/articles/university-exchange", b"busy", status=503, headers={"Retry-After": "60"})
    # /articles/grain-terminal is not there: 404
    feed = connector(local_site, fetcher, state)

    result = feed.poll()

    articles = {article.url.rsplit("/", 1)[1]: article for article in result.articles}
    assert sorted(articles) == ["ferry-line", "grain-terminal"]  # no page for the 503 yet: retried first
    assert articles["ferry-line"].page_error is None
    # The page is gone for good: the entry's own title and summary stand in, saying why.
    gone = articles["grain-terminal"]
    assert gone.page_error == "HTTP 404 Not Found: the page is gone; not retried"
    assert gone.title == "New grain terminal opens at the river port"
    assert gone.text == gone.summary and gone.text
    failures = {failure.url.rsplit("/", 1)[1]: failure for failure in result.failures}
    assert failures["grain-terminal"].reason == "HTTP 404 Not Found: the page is gone; not retried"
    assert failures["grain-terminal"].gave_up
    assert failures["university-exchange"].error.retryable
    assert not failures["university-exchange"].gave_up
    assert all(isinstance(failure.error, FetchError) for failure in result.failures)


def test_retryable_item_is_retried_then_given_up_and_404_never_again(local_site, resource, fetcher, state):
    local_site.add("/feed.rss", resource("feeds/valley-courier.rss"), RSS, headers={"ETag": '"r1"'})
    local_site.add("/articles/ferry-line", resource("pages/ferry-line.html"))
    local_site.add("/articles/university-exchange", b"busy", status=503)
    feed = connector(local_site, fetcher, state)

    for _ in range(4):
        feed.poll(discard)
        feed.commit()

    assert len(local_site.requests_to("/articles/grain-terminal")) == 1  # 404: permanent
    assert len(local_site.requests_to("/articles/university-exchange")) == 3  # 503: three attempts
    assert len(local_site.requests_to("/articles/ferry-line")) == 1
    # Both failed pages were given up and emitted from the feed's summary, which health counts apart.
    tallies = state.item_tallies()["valley-courier"]
    assert (tallies[EMITTED].count, tallies[EMITTED_WITHOUT_PAGE].count) == (1, 2)
    feed_requests = local_site.requests_to("/feed.rss")
    assert "If-None-Match" not in feed_requests[2].headers  # a retry was pending
    assert feed_requests[3].headers["If-None-Match"] == '"r1"'  # nothing left to do


def test_page_without_text_is_a_permanent_failure(local_site, resource, fetcher, state):
    local_site.add("/feed.rss", resource("feeds/valley-courier.rss"), RSS)
    local_site.add("/articles/ferry-line", resource("pages/ferry-line.html"))
    local_site.add("/articles/grain-terminal", resource("pages/thin.html"))
    local_site.add("/articles/university-exchange", resource("pages/university-exchange.html"))

    result = connector(local_site, fetcher, state).poll()

    [failure] = result.failures
    assert isinstance(failure.error, ExtractionError) and failure.gave_up
    assert failure.reason.startswith("no article text found")
    [thin] = [article for article in result.articles if article.page_error]
    assert thin.url == failure.url and thin.page_error == failure.reason


def test_an_entry_without_a_summary_whose_page_fails_is_not_emitted(local_site, resource, fetcher, state):
    feed = resource("feeds/valley-courier.rss")
    summaries = feed.count(b"<description>") - 1  # the channel's own description stays
    local_site.add("/feed.rss", re.sub(rb"<item>(.*?)<description>.*?</description>", rb"<item>\1", feed, flags=re.S), RSS)
    # no page is served: every item 404s

    result = connector(local_site, fetcher, state).poll()

    assert summaries == 3
    assert result.articles == [] and len(result.failures) == 3


@pytest.mark.parametrize("link", [
    "javascript:alert(1)", "ftp://files.courier.example/ferry.pdf", "mailto:desk@courier.example", "file:///etc/passwd",
])
def test_non_http_link_in_a_feed_is_an_item_failure(local_site, resource, fetcher, state, link):
    feed = resource("feeds/valley-courier.rss").replace(
        f"{local_site.base_url}/articles/grain-terminal#comments".encode(), link.encode()
    )
    local_site.add("/feed.rss", feed, RSS)
    for name in PAGES:
        local_site.add(f"/articles/{name}", resource(f"pages/{name}.html"))

    result = connector(local_site, fetcher, state).poll()

    assert len(result.articles) == 2  # a refused link is not emitted, not even from its summary
    [failure] = result.failures
    assert "refused non-http URL" in failure.reason and failure.gave_up
    assert f"refused non-http URL: {link} " in failure.reason  # shown as written: file:///etc/passwd keeps its slashes


# --- whole-feed failures -----------------------------------------------------------------------------


def test_bozo_feed_with_entries_is_used_with_a_warning(local_site, resource, fetcher, state, caplog):
    local_site.add("/feed.rss", resource("feeds/cut-short.rss"), RSS)
    for name in PAGES:
        local_site.add(f"/articles/{name}", resource(f"pages/{name}.html"))

    with caplog.at_level(logging.WARNING, logger="connectors.feed"):
        result = connector(local_site, fetcher, state).poll()

    assert len(result.articles) == 2
    assert "feed is not well-formed, using its 3 entries" in caplog.text
    assert "no element found" in caplog.text


@pytest.mark.parametrize(("body", "content_type", "reason"), [
    ("feeds/mismatched-tags.rss", RSS, "XML error at line 3: mismatched tag"),
    ("pages/ferry-line.html", "text/html; charset=utf-8", "not a feed: <html> document (served as text/html)"),
    ("pages/ferry-line.html", "application/rss+xml", "not a feed: <html> document (served as application/rss+xml)"),
    (b"", RSS, "not a feed: empty body"),
    (b'<?xml version="1.0"?><catalog><book>River atlas</book></catalog>', "application/xml", "not a feed: no RSS or Atom root element (served as application/xml)"),
    (b'{"items": []}', "application/json", "not a JSON Feed: version None is none of https://jsonfeed.org/version/1, https://jsonfeed.org/version/1.1"),
    (b"<rss version='2.0'>\n<channel>\n<title>Valley</titel>", RSS, "XML error at line 3: mismatched tag"),
])
def test_unreadable_feeds_raise_feed_parse_error(local_site, resource, fetcher, state, body, content_type, reason):
    local_site.add("/feed.rss", resource(body) if isinstance(body, str) else body, content_type)
    feed = connector(local_site, fetcher, state)

    with pytest.raises(FeedParseError) as caught:
        feed.poll()

    assert caught.value.reason == reason
    recorded = state.get("valley-courier")
    assert (recorded.consecutive_failures, recorded.last_error) == (1, str(caught.value))


def test_valid_feed_without_entries_is_not_an_error(local_site, fetcher, state):
    local_site.add("/feed.rss", b'<?xml version="1.0"?><rss version="2.0"><channel><title>Quiet day</title></channel></rss>', RSS)

    result = connector(local_site, fetcher, state).poll()

    assert result.articles == [] and result.failures == []


def test_failures_back_off_exponentially_then_reset(local_site, resource, fetcher, state):
    local_site.add("/feed.rss", resource("feeds/mismatched-tags.rss"), RSS)
    feed = connector(local_site, fetcher, state)

    waits = []
    for _ in range(3):
        with pytest.raises(FeedParseError):
            feed.poll()
        waits.append(feed.next_poll_in)
    local_site.add("/feed.rss", resource("feeds/valley-courier.rss"), RSS)
    result = feed.poll()

    assert waits == [600, 1200, 2400]
    assert result.next_poll_in == feed.next_poll_in == 300
    assert state.get("valley-courier").consecutive_failures == 0


def test_backoff_is_capped_at_one_day(local_site, fetcher, state):
    for _ in range(9):
        state.record_failure("valley-courier", "earlier failure", datetime.now(UTC))
    feed = connector(local_site, fetcher, state, "/gone.rss", poll_interval_seconds=3600)

    with pytest.raises(FetchError):
        feed.poll()

    assert feed.next_poll_in == 86_400
    assert state.get("valley-courier").consecutive_failures == 10


@pytest.mark.parametrize(("retry_after", "expected"), [("900", 900), ("5", 30), ("9999999", 86_400)])
def test_feed_retry_after_sets_the_next_poll(local_site, fetcher, state, retry_after, expected):
    local_site.add("/feed.rss", b"busy", status=503, headers={"Retry-After": retry_after})
    feed = connector(local_site, fetcher, state)

    with pytest.raises(FetchError) as caught:
        feed.poll()

    assert caught.value.retryable
    assert feed.next_poll_in == expected


def test_retry_after_on_a_good_response_is_honoured(courier, resource, fetcher, state):
    courier.add("/feed.rss", resource("feeds/valley-courier.rss"), RSS, headers={"Retry-After": "3600"})

    assert connector(courier, fetcher, state).poll().next_poll_in == 3600


def test_dead_feed_server(fetcher, state):
    with socket.socket() as probe:  # a port that was free a moment ago: nothing listens there
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    feed = FeedConnector(SourceConfig(name="valley-courier", url=f"http://127.0.0.1:{port}/feed.rss"), fetcher, state)

    with pytest.raises(FetchError) as caught:
        feed.poll()

    assert "connection refused" in caught.value.reason and caught.value.retryable
    assert state.get("valley-courier").consecutive_failures == 1
    assert feed.next_poll_in == 600


def test_commit_records_emitted_articles(courier, fetcher, state):
    feed = connector(courier, fetcher, state)
    result = feed.poll(discard)

    feed.commit()

    assert state.item_statuses("valley-courier") == {article.id: "emitted" for article in result.articles}


@pytest.mark.parametrize(("channel", "headers", "hint"), [
    ("<ttl>45</ttl>", {}, 2700),
    ('<sy:updatePeriod>daily</sy:updatePeriod><sy:updateFrequency>4</sy:updateFrequency>', {}, 21600),
    ("", {"Cache-Control": "public, max-age=1200"}, 1200),
    ("<ttl>10</ttl>", {"Cache-Control": "max-age=1800"}, 1800),
])
def test_the_feed_s_own_update_hints_floor_an_adaptive_interval(local_site, fetcher, state, channel, headers, hint):
    feed = (
        '<?xml version="1.0"?><rss version="2.0" xmlns:sy="http://purl.org/rss/1.0/modules/syndication/">'
        f"<channel><title>Hints</title>{channel}</channel></rss>"
    )
    local_site.add("/feed.rss", feed.encode(), RSS, headers=headers)
    listing = connector(local_site, fetcher, state).list_items(None, None)
    assert listing.update_hint == hint
    adaptive = connector(local_site, fetcher, state, poll_interval_seconds=300, min_interval_seconds=60,
                         max_interval_seconds=86_400)
    adaptive.poll()
    assert state.get("valley-courier").interval_seconds == max(hint, 450)  # no new item: ×1.5, floored by the hint


# --- the peer corpus ------------------------------------------------------------------------------

PEER_FEEDS = Path(__file__).resolve().parents[3] / "shared" / "peer-feeds"
WITHOUT_LINKS = {  # every entry lacks a link (or the feed has none): read, and nothing to fetch
    "miniflux-rss-TestParseEntryWithoutLinkAndWithEnclosureURLs.xml", "feedparser-illformed-rss_incomplete_cdata.xml",
    "feedparser-rss-rss_version_091_netscape.xml", "feedparser-rdf-rss090_item_title.xml",
}


def peer_xml_feeds() -> list[tuple[str, str]]:
    assert PEER_FEEDS.is_dir(), f"the peer feed corpus is missing: {PEER_FEEDS} (../shared/peer-feeds beside the repo)"
    rows = [line.split("\t") for line in (PEER_FEEDS / "MANIFEST.tsv").read_text(encoding="utf-8").splitlines()[1:]]
    return [(row[0], row[1]) for row in rows if row[1] in ("rss", "atom", "rdf")]


def test_every_rss_atom_and_rdf_feed_of_the_peer_corpus_is_read(fetcher, state):
    feeds = peer_xml_feeds()
    assert len(feeds) >= 40
    reader = FeedConnector(SourceConfig(name="peer", url="https://peer.example/feed"), fetcher, state)
    read = {}
    for name, _kind in feeds:
        body = (PEER_FEEDS / name).read_bytes()
        # feedparser's own fixtures say in a comment which Content-Type their server sends.
        declared = re.search(rb"Header:\s*Content-type:\s*([^\r\n]+)", body[:600], re.IGNORECASE)
        content_type = declared.group(1).decode().strip() if declared else "application/xml"
        text, encoding = decode_body(body, content_type)
        fetched = FetchResult(url="https://peer.example/feed", final_url="https://peer.example/dir/feed", status=200,
                              body=body, text=text, encoding=encoding, content_type=content_type)
        items, _ = reader.items(fetched)
        assert (not items) == (name in WITHOUT_LINKS), name
        assert all(item.url.startswith(("http://", "https://")) for item in items), name
        read[name] = items
    assert read["miniflux-encoding_WINDOWS-1251.xml"][0].title.startswith("Цитата")
    assert read["nnw-kc0011.rss"][0].title.startswith("建国35周年")  # gb2312
    assert "Vorsichtsmaßnahmen" in read["miniflux-rdf_UTF8.xml"][0].title
    assert read["miniflux-rss-TestParseEntryWithRelativeURL.xml"][0].url == "https://peer.example/dir/item.html"
    assert read["miniflux-rss-TestParseEntryWithOnlyGuidPermalink.xml"][0].url == "https://example.org/some-article.html"
    # An entry whose only link is a PDF: that link, not the tag: id feedparser puts in its place.
    assert [item.url.rsplit("/", 2)[-2:] for item in read["nnw-pappacoda.atom"]] == [
        ["favicon_2026", ""], ["blog", "tesi.pdf"], ["c_su_windows", ""],
    ]
    one_guid = read["miniflux-rss-TestParseEntriesWithDuplicateGUIDAndDistinctLinks.xml"]
    assert len(one_guid) == 3 and len({item.url for item in one_guid}) == 2  # known by link, not by the shared guid
    assert read["miniflux-atom03-TestParseAtom03.xml"][0].title == "Atom 0.3 snapshot"
