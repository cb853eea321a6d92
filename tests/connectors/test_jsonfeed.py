"""JSON Feed 1.0 and 1.1: real feeds from peer projects, and sources served from a local site."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from connectors.decoding import decode_body
from connectors.feed import FeedConnector, JsonFeedConnector
from connectors.fetch import FetchResult
from connectors.jsonfeed import json_feed_items
from pipeline.core.errors import FeedParseError
from pipeline.core.settings import SourceConfig
from tests.support.messages import discard

PEER_FEEDS = Path(__file__).resolve().parents[3] / "shared" / "peer-feeds"
NOT_FEEDS = {
    "miniflux-json-TestParseInvalidJSON.json": "not a JSON Feed: invalid JSON at line 1",
    "nnw-allthis-partial.json": "not a JSON Feed: invalid JSON",
    "nnw-ScriptingNews.json": "not a JSON Feed: version None is none of",
}
PAGES = ("ferry-line", "grain-terminal", "university-exchange")


def fetched(body: bytes, url: str = "https://peer.example/feed.json") -> FetchResult:
    text, encoding = decode_body(body, "application/feed+json")
    return FetchResult(url=url, final_url=url, status=200, body=body, text=text, encoding=encoding,
                       content_type="application/feed+json")


def peer_json_feeds() -> list[Path]:
    assert PEER_FEEDS.is_dir(), f"the peer feed corpus is missing: {PEER_FEEDS} (../shared/peer-feeds beside the repo)"
    return sorted(PEER_FEEDS.glob("*.json"))


def test_every_real_json_feed_of_the_peer_corpus_is_read_or_refused_clearly():
    read = {}
    for path in peer_json_feeds():
        if path.name in NOT_FEEDS:
            with pytest.raises(FeedParseError) as refused:
                json_feed_items(fetched(path.read_bytes()))
            assert NOT_FEEDS[path.name] in str(refused.value)
            continue
        items = json_feed_items(fetched(path.read_bytes()))
        document = json.loads(path.read_text(encoding="utf-8"))
        linked = [item for item in document["items"] if item.get("url") or item.get("external_url")]
        assert len(items) == len(linked), path.name
        assert all(item.url.startswith(("http://", "https://")) for item in items), path.name
        read[path.name] = items
    assert len(read) >= 10
    relative = read["miniflux-json-TestParseItemWithRelativeURL.json"][0]
    assert relative.url == "https://example.org/something.html"  # against home_page_url
    assert read["miniflux-json-TestParseItemWithExternalURLAndNoURL.json"][0].url == "https://example.org/some_page.html"
    assert read["nnw-DaringFireball.json"][0].published_at is not None
    assert read["jsonfeed-spec-1.1-podcast.json"][0].url == "http://therecord.co/chris-parrish"


def json_feed(base: str, version: str = "https://jsonfeed.org/version/1.1") -> bytes:
    items = [
        {"id": name, "url": f"{base}/articles/{name}", "title": f"Story {name}", "summary": "A short lead.",
         "date_published": f"2026-11-2{number}T08:00:00+03:00", "authors": [{"name": "Desk"}], "language": "en-GB"}
        for number, name in enumerate(PAGES)
    ]
    items.append({"id": "no-link", "content_text": "An item with nothing to fetch."})
    return json.dumps({"version": version, "title": "Valley Courier", "items": items}).encode()


@pytest.fixture
def json_site(local_site, resource):
    for name in PAGES:
        local_site.add(f"/articles/{name}", resource(f"pages/{name}.html"))
    local_site.add("/feed.json", json_feed(local_site.base_url), "application/feed+json", headers={"ETag": '"v1"'})
    local_site.add("/feed-1.0.json", json_feed(local_site.base_url, "https://jsonfeed.org/version/1"), "application/json")
    local_site.add("/feed.rss", resource("feeds/valley-courier.rss"), "application/rss+xml")
    return local_site


@pytest.mark.parametrize(("kind", "path"), [
    (JsonFeedConnector, "/feed.json"), (JsonFeedConnector, "/feed-1.0.json"), (FeedConnector, "/feed.json"),
])
def test_a_json_feed_source_yields_its_articles_with_the_feed_s_dates_and_language(json_site, fetcher, state, kind, path):
    source = SourceConfig(name="courier-json", url=json_site.url(path))
    result = kind(source, fetcher, state).poll()
    assert sorted(article.url.rsplit("/", 1)[-1] for article in result.articles) == sorted(PAGES)
    assert result.failures == []
    assert all(article.language == "en" for article in result.articles)
    assert min(article.published_at for article in result.articles).isoformat() == "2026-11-20T05:00:00+00:00"


def test_a_json_feed_is_asked_for_conditionally_and_a_304_means_nothing_new(json_site, fetcher, state):
    connector = JsonFeedConnector(SourceConfig(name="courier-json", url=json_site.url("/feed.json")), fetcher, state)
    connector.poll(discard)
    connector.commit()
    again = connector.poll()
    assert again.articles == []
    assert json_site.requests_to("/feed.json")[-1].headers.get("If-None-Match") == '"v1"'


def test_the_jsonfeed_kind_refuses_an_rss_body_with_a_clear_reason(json_site, fetcher, state):
    connector = JsonFeedConnector(SourceConfig(name="courier", url=json_site.url("/feed.rss")), fetcher, state)
    with pytest.raises(FeedParseError) as refused:
        connector.poll()
    assert "not a JSON Feed: invalid JSON at line 1" in str(refused.value)
    assert state.get("courier").consecutive_failures == 1


def test_an_invalid_json_feed_names_the_field():
    body = json.dumps({"version": "https://jsonfeed.org/version/1.1", "title": "t", "items": {"not": "a list"}}).encode()
    with pytest.raises(FeedParseError) as refused:
        json_feed_items(fetched(body))
    assert "invalid JSON Feed: items: Input should be a valid list" in str(refused.value)
