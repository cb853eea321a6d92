"""Sitemap sources against a local web site, and every sitemap of the peer corpus read for real."""

from __future__ import annotations

import gzip
import logging
import re
from datetime import timedelta
from pathlib import Path

import pytest

from connectors.fetch import ACCEPT_SITEMAP
from connectors.sitemap import MAX_CHILD_SITEMAPS, SitemapConnector, parse_sitemap
from pipeline.core.errors import FeedParseError, FetchError
from pipeline.core.messages import utc_now
from pipeline.core.settings import SourceConfig
from tests.support.messages import discard

PEER_FEEDS = Path(__file__).resolve().parents[3] / "shared" / "peer-feeds"
XML = "application/xml; charset=utf-8"
PAGES = ("ferry-line", "grain-terminal", "university-exchange")
NOT_SITEMAPS = {
    "advertools-error_sitemap.xml": "not a sitemap: XML error at line 3",
    "usp-rss_atom-sitemap_atom_0_3.xml": "not a sitemap: an Atom feed (<feed> root); list it with kind: rss",
    "usp-security-billion_laughs-sitemap.xml": "not a sitemap: XML error at line",
}


def stamp(age: timedelta) -> str:
    return (utc_now() - age).isoformat(timespec="seconds")


def news_sitemap(base: str, ages: dict[str, timedelta]) -> bytes:
    urls = "".join(
        f"""<url><loc>{base}/articles/{name}</loc>
          <image:image><image:loc>{base}/images/{name}.jpg</image:loc><image:title>Photo</image:title></image:image>
          <news:news><news:publication><news:name>Valley Courier</news:name><news:language>en-GB</news:language></news:publication>
            <news:publication_date>{stamp(age)}</news:publication_date><news:title>Listed: {name}</news:title></news:news></url>"""
        for name, age in ages.items()
    )
    return (
        '<?xml version="1.0" encoding="UTF-8"?><urlset xmlns="http://www.sitemaps.org/schemas/sitemap/0.9" '
        'xmlns:news="http://www.google.com/schemas/sitemap-news/0.9" '
        f'xmlns:image="http://www.google.com/schemas/sitemap-image/1.1">{urls}</urlset>'
    ).encode()


def plain_sitemap(base: str, ages: dict[str, timedelta]) -> bytes:
    urls = "".join(f"<url><loc>{base}/articles/{name}</loc><lastmod>{stamp(age)}</lastmod></url>" for name, age in ages.items())
    return f'<urlset xmlns="http://www.sitemaps.org/schemas/sitemap/0.9">{urls}</urlset>'.encode()


def sitemap_index(base: str, children: dict[str, timedelta]) -> bytes:
    listed = "".join(f"<sitemap><loc>{base}{path}</loc><lastmod>{stamp(age)}</lastmod></sitemap>" for path, age in children.items())
    return f'<sitemapindex xmlns="http://www.sitemaps.org/schemas/sitemap/0.9">{listed}</sitemapindex>'.encode()


def connector(site, fetcher, state, path="/sitemap.xml", **overrides) -> SitemapConnector:
    source = SourceConfig(name="courier-sitemap", kind="sitemap", url=site.url(path), **overrides)
    return SitemapConnector(source, fetcher, state)


@pytest.fixture
def pages(local_site, resource):
    for name in PAGES:
        local_site.add(f"/articles/{name}", resource(f"pages/{name}.html"))
    return local_site


def test_a_news_sitemap_gives_its_recent_stories_with_their_titles_dates_and_language(pages, fetcher, state):
    ages = {"ferry-line": timedelta(hours=2), "grain-terminal": timedelta(hours=5), "university-exchange": timedelta(days=9)}
    pages.add("/sitemap.xml", news_sitemap(pages.base_url, ages), XML)

    result = connector(pages, fetcher, state).poll()

    assert [article.url.rsplit("/", 1)[1] for article in result.articles] == ["ferry-line", "grain-terminal"]
    assert pages.requests_to("/articles/university-exchange") == []  # nine days old: past the 3-day default
    assert pages.requests_to("/images/ferry-line.jpg") == []  # an image's <loc> is not a page
    assert all(article.language == "en" for article in result.articles)
    assert "application/xml" in pages.requests_to("/sitemap.xml")[0].headers["Accept"]


def test_max_age_days_reaches_further_back(pages, fetcher, state):
    ages = {"ferry-line": timedelta(hours=2), "university-exchange": timedelta(days=9)}
    pages.add("/sitemap.xml", plain_sitemap(pages.base_url, ages), XML)

    result = connector(pages, fetcher, state, max_age_days=10).poll()

    assert len(result.articles) == 2


def test_an_index_reads_its_newest_children_gzipped_or_not_and_a_304_ends_the_next_poll(pages, fetcher, state):
    base = pages.base_url
    pages.add("/sitemap.xml", sitemap_index(base, {
        "/news-today.xml.gz": timedelta(hours=1), "/news-yesterday.xml": timedelta(days=1),
        "/archive-2019.xml": timedelta(days=2000), "/nested-index.xml": timedelta(hours=3),
    }), XML, headers={"ETag": '"index-1"'})
    pages.add("/news-today.xml.gz", gzip.compress(plain_sitemap(base, {"ferry-line": timedelta(hours=1)})), "application/x-gzip")
    pages.add("/news-yesterday.xml", plain_sitemap(base, {"grain-terminal": timedelta(hours=20)}), XML)
    pages.add("/nested-index.xml", sitemap_index(base, {"/archive-2019.xml": timedelta(hours=1)}), XML)
    feed = connector(pages, fetcher, state)

    result = feed.poll(discard)
    feed.commit()

    assert sorted(article.url.rsplit("/", 1)[1] for article in result.articles) == ["ferry-line", "grain-terminal"]
    assert pages.requests_to("/archive-2019.xml") == []  # too old, and not reached through the nested index
    assert len(pages.requests_to("/nested-index.xml")) == 1
    feed.poll()
    assert pages.requests_to("/sitemap.xml")[1].headers["If-None-Match"] == '"index-1"'


def test_an_index_reads_at_most_a_few_children(pages, fetcher, state):
    children = {f"/day-{day}.xml": timedelta(hours=day) for day in range(MAX_CHILD_SITEMAPS + 3)}
    pages.add("/sitemap.xml", sitemap_index(pages.base_url, children), XML)
    for path in children:
        pages.add(path, plain_sitemap(pages.base_url, {}), XML)

    connector(pages, fetcher, state).poll()

    read = [path for path in children if pages.requests_to(path)]
    assert read == list(children)[:MAX_CHILD_SITEMAPS]  # the newest ones


def test_a_failing_child_leaves_the_others_and_keeps_the_index_from_a_304(pages, fetcher, state, caplog):
    base = pages.base_url
    pages.add("/sitemap.xml", sitemap_index(base, {"/good.xml": timedelta(hours=1), "/broken.xml": timedelta(hours=2)}),
              XML, headers={"ETag": '"index-1"'})
    pages.add("/good.xml", plain_sitemap(base, {"ferry-line": timedelta(hours=1)}), XML)
    pages.add("/broken.xml", b"busy", status=503)
    feed = connector(pages, fetcher, state)

    with caplog.at_level(logging.WARNING, logger="connectors.sitemap"):
        result = feed.poll(discard)
    feed.commit()
    feed.poll()

    assert [article.url.rsplit("/", 1)[1] for article in result.articles] == ["ferry-line"]
    assert any("child sitemap failed" in record.message and "HTTP 503" in record.message for record in caplog.records)
    assert "If-None-Match" not in pages.requests_to("/sitemap.xml")[1].headers  # read again in full


def test_text_sitemap_and_a_robots_txt_s_sitemap_lines(pages, fetcher, state):
    base = pages.base_url
    pages.add("/links.txt", f"{base}/articles/ferry-line\n\n{base}/articles/grain-terminal\n".encode(), "text/plain")
    pages.add("/robots.txt", b"User-agent: *\nDisallow: /private/\nSitemap: /links.txt\n", "text/plain")

    from_text = connector(pages, fetcher, state, path="/links.txt").poll()
    through_robots = connector(pages, fetcher, state, path="/robots.txt").poll()

    assert len(from_text.articles) == 2
    assert sorted(article.url for article in through_robots.articles) == sorted(article.url for article in from_text.articles)


@pytest.mark.parametrize(("body", "reason"), [
    (b"<rss version='2.0'><channel/></rss>", "not a sitemap: an RSS feed (<rss> root); list it with kind: rss"),
    (b"<html><body>Our sitemap moved</body></html>", "not a sitemap: <html> root element, not <urlset> or <sitemapindex>"),
    (b"<urlset><url><loc>oops</url></urlset>", "not a sitemap: XML error at line 1"),
    (b"Nothing to see here.", "not a sitemap: neither XML nor lines of http(s) URLs"),
])
def test_what_is_no_sitemap_says_why(local_site, fetcher, state, body, reason):
    local_site.add("/sitemap.xml", body, XML)

    with pytest.raises(FeedParseError) as caught:
        connector(local_site, fetcher, state).poll()

    assert reason in caught.value.reason


def test_a_gzip_bomb_stops_at_the_size_limit(local_site, fetcher, state, fetch_settings):
    bomb = gzip.compress(b"<urlset>" + b" " * (fetch_settings.max_bytes * 20) + b"</urlset>")
    assert len(bomb) < fetch_settings.max_bytes // 10
    local_site.add("/sitemap.xml.gz", bomb, "application/gzip")

    with pytest.raises(FetchError) as caught:
        connector(local_site, fetcher, state, path="/sitemap.xml.gz").poll()

    assert caught.value.reason == f"gzip file too large: more than {fetch_settings.max_bytes} bytes once decompressed (stopped)"


def test_a_gzip_body_is_still_refused_where_a_page_is_expected(local_site, fetcher):
    local_site.add("/page.gz", gzip.compress(b"<html><body>hello</body></html>"), "application/gzip")

    with pytest.raises(FetchError, match=r"binary body \(application/gzip\)"):
        fetcher.fetch(local_site.url("/page.gz"))


def test_entities_are_not_expanded():
    laughs = (
        b'<?xml version="1.0"?><!DOCTYPE urlset [<!ENTITY a "aaaaaaaaaa"><!ENTITY b "&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;">'
        b'<!ENTITY c "&b;&b;&b;&b;&b;&b;&b;&b;&b;&b;">]>'
        b'<urlset><url><loc>https://news.example/&c;</loc></url></urlset>'
    )

    sitemap = parse_sitemap(laughs, "https://news.example/sitemap.xml")

    assert all("aaaaaaaaaa" not in entry.url for entry in sitemap.entries)


# --- the peer corpus --------------------------------------------------------------------------------


def peer_sitemaps() -> list[Path]:
    assert PEER_FEEDS.is_dir(), f"the peer feed corpus is missing: {PEER_FEEDS} (../shared/peer-feeds beside the repo)"
    manifest = (PEER_FEEDS / "MANIFEST.tsv").read_text(encoding="utf-8").splitlines()
    header = manifest[0].split("\t")
    rows = [dict(zip(header, line.split("\t"), strict=False)) for line in manifest[1:] if line.strip()]
    names = [row[header[0]] for row in rows if row.get("kind") in ("sitemap", "newssitemap", "sitemapindex", "robots")]
    return [PEER_FEEDS / name for name in names]


def loopback(body: bytes, base: str) -> bytes:
    """The fixture with every absolute URL pointed at the local site (namespace names stay as they
    are): no test leaves the machine."""
    if body[:2] == b"\x1f\x8b":
        return gzip.compress(loopback(gzip.decompress(body), base))

    def outside_tags(match: re.Match) -> bytes:
        opened = body.rfind(b"<", 0, match.start())
        inside_a_tag = opened > body.rfind(b">", 0, match.start()) and not body.startswith(b"<![CDATA[", opened)
        return match.group() if inside_a_tag else base.encode()

    return re.sub(rb"https?://[A-Za-z0-9_.-]+(?::\d+)?", outside_tags, body)


def test_every_sitemap_of_the_peer_corpus_is_read_or_refused_clearly(local_site, fetcher):
    paths = peer_sitemaps()
    assert len(paths) >= 15
    read = {}
    for path in paths:
        served = local_site.add(f"/peer/{path.name}", loopback(path.read_bytes(), local_site.base_url), "application/octet-stream")
        fetched = fetcher.fetch(served, accept=ACCEPT_SITEMAP, gunzip=True)
        if path.name in NOT_SITEMAPS:
            with pytest.raises(FeedParseError) as refused:
                parse_sitemap(fetched.body, fetched.final_url)
            assert NOT_SITEMAPS[path.name] in refused.value.reason, path.name
            continue
        if path.name.endswith("robots.txt"):  # served under /peer/, so read as a text sitemap
            fetched = fetcher.fetch(local_site.add("/robots.txt", fetched.body, "text/plain"), accept=ACCEPT_SITEMAP)
        sitemap = parse_sitemap(fetched.body, fetched.final_url)
        assert sitemap.entries, path.name
        assert all(entry.url.startswith(local_site.base_url) for entry in sitemap.entries), path.name
        read[path.name] = sitemap
    assert read["usp-base-sitemap_news_1.xml"].entries[0].title == "Foo <foo>"  # entities decoded once
    assert read["usp-basic-gzip-sitemap_4.xml"].entries[0].title == "Bąž"  # gzip under an .xml name
    assert read["advertools-regular_sitemap.xml.gz"].kind == "urlset"  # plain XML under a .gz name
    assert read["usp-base-sitemap_news_index_1.xml"].kind == "index"
    assert read["usp-edges-utf8_bom-sitemap.xml"].entries[0].title == "First story"
    truncated = read["usp-edges-truncated_mid_url-sitemap.xml"]
    assert len(truncated.entries) == 49 and truncated.problem.startswith("XML error at line")
    assert read["usp-plain_text-sitemap_1.txt"].kind == "text"
    assert read["advertools-robots.txt"].kind == "index"
