"""Replay sources: a folder of saved pages, a JSONL file and a WARC file, read for real."""

from __future__ import annotations

import io
import json
from pathlib import Path

import pytest
from warcio.statusandheaders import StatusAndHeaders
from warcio.warcwriter import WARCWriter

from connectors.replay import ReplayConnector
from pipeline.core.connector import BACKLOG_POLL_SECONDS
from pipeline.core.errors import ConfigError, SourceError
from pipeline.core.settings import SourceConfig, SourcesFile, validate_file
from tests.support.messages import discard

RESOURCES = Path(__file__).resolve().parent.parent / "resources"
PAGES = ("ferry-line", "grain-terminal", "university-exchange")
MAX_BYTES = 200_000


def page(name: str) -> str:
    return (RESOURCES / "pages" / f"{name}.html").read_text(encoding="utf-8")


def replay(path: Path, state, **overrides) -> ReplayConnector:
    return ReplayConnector(SourceConfig(name="archive", kind="replay", path=path, **overrides), state, MAX_BYTES)


def drain(connector: ReplayConnector) -> list:
    """Poll and commit until the archive has nothing new; every article emitted."""
    emitted = []
    for _ in range(20):
        result = connector.poll(discard)
        connector.commit()
        emitted += result.articles
        if not result.articles:
            return emitted
    raise AssertionError("the archive never ran dry")


# --- a folder of saved pages ---------------------------------------------------------------------


def test_a_folder_of_saved_pages_is_emitted_once_at_each_page_s_canonical_address(tmp_path, state):
    folder = tmp_path / "saved"
    (folder / "2026" / "11").mkdir(parents=True)
    declared = page("ferry-line").replace("<head>", '<head><link rel="canonical" href="https://courier.example/ferry?utm_source=x">')
    (folder / "2026" / "11" / "ferry.html").write_text(declared, encoding="utf-8")
    (folder / "grain.htm").write_text(page("grain-terminal"), encoding="utf-8")
    (folder / "notes.txt").write_text("not a page", encoding="utf-8")
    connector = replay(folder, state)

    first = connector.poll(discard)
    connector.commit()

    assert sorted(article.url for article in first.articles) == sorted([
        "https://courier.example/ferry", (folder / "grain.htm").as_uri(),
    ])
    assert all(article.source == "archive" and article.text for article in first.articles)
    assert connector.poll().articles == []  # unchanged: not even read again
    (folder / "exchange.html").write_text(page("university-exchange"), encoding="utf-8")
    added = connector.poll()
    assert [article.url for article in added.articles] == [(folder / "exchange.html").as_uri()]


def test_a_saved_page_without_text_fails_alone(tmp_path, state):
    (tmp_path / "ferry.html").write_text(page("ferry-line"), encoding="utf-8")
    (tmp_path / "gallery.html").write_text(page("thin"), encoding="utf-8")

    result = replay(tmp_path, state).poll()

    assert len(result.articles) == 1
    [failure] = result.failures
    assert failure.url == (tmp_path / "gallery.html").as_uri() and failure.reason.startswith("no article text found")


# --- a JSONL file -------------------------------------------------------------------------------------


def test_a_jsonl_archive_emits_each_article_once_and_names_the_bad_lines(tmp_path, state):
    lines = [
        json.dumps({"url": "https://courier.example/a?utm_medium=rss", "title": "Bridge tolls fall", "text": "The bridge " * 40,
                    "published_at": "2026-11-20T08:00:00+03:00", "language": "en", "authors": ["A. Writer"]}),
        "",
        "{not json",
        json.dumps({"url": "https://courier.example/b", "text": "no title here"}),
        json.dumps({"url": "https://courier.example/c", "title": "Grain terminal", "html": page("grain-terminal")}),
        json.dumps({"url": "ftp://courier.example/d", "title": "Odd", "text": "x"}),
    ]
    archive = tmp_path / "backfill.jsonl"
    archive.write_text("\n".join(lines) + "\n", encoding="utf-8")
    connector = replay(archive, state)

    result = connector.poll(discard)
    connector.commit()

    articles = {article.url: article for article in result.articles}
    assert sorted(articles) == ["https://courier.example/a", "https://courier.example/c"]
    bridge = articles["https://courier.example/a"]
    assert bridge.title == "Bridge tolls fall" and bridge.authors == ["A. Writer"] and bridge.language == "en"
    assert bridge.published_at.isoformat() == "2026-11-20T05:00:00+00:00"
    assert "grain terminal" in articles["https://courier.example/c"].text.lower()  # extracted from its html
    reasons = sorted(failure.reason for failure in result.failures)
    assert reasons == ["line 3: not JSON", "line 4: title: Field required", "line 6: url: String should match pattern '^https?://'"]
    assert all(failure.gave_up for failure in result.failures)
    assert drain(connector) == []  # replayed again: nothing twice, bad lines not retried


def test_a_large_archive_is_read_through_in_quick_polls(tmp_path, state):
    archive = tmp_path / "many.jsonl"
    archive.write_text("".join(
        json.dumps({"url": f"https://courier.example/{n}", "title": f"Story {n}", "text": "words " * 40}) + "\n" for n in range(7)
    ), encoding="utf-8")
    connector = replay(archive, state, max_articles_per_poll=3, poll_interval_seconds=600)

    intervals, total = [], 0
    for _ in range(3):
        result = connector.poll(discard)
        connector.commit()
        intervals.append(result.next_poll_in)
        total += len(result.articles)

    assert total == 7
    assert intervals == [BACKLOG_POLL_SECONDS, BACKLOG_POLL_SECONDS, 600]


# --- a WARC file ------------------------------------------------------------------------------------


def warc(path: Path, records: list[tuple[str, str, str, bytes]]) -> Path:
    """A gzipped WARC of ``(url, status, content type, body)`` responses, with a request record before each."""
    with path.open("wb") as output:
        writer = WARCWriter(output, gzip=path.suffix == ".gz")
        for url, status, content_type, body in records:
            writer.write_record(writer.create_warc_record(url, "request", payload=io.BytesIO(b"GET / HTTP/1.1\r\n\r\n")))
            headers = StatusAndHeaders(status, [("Content-Type", content_type)], protocol="HTTP/1.1")
            writer.write_record(writer.create_warc_record(url, "response", payload=io.BytesIO(body), http_headers=headers))
    return path


@pytest.mark.parametrize("name", ["crawl.warc.gz", "crawl.warc"])
def test_a_warc_file_gives_its_html_pages_answered_200(tmp_path, state, name):
    archive = warc(tmp_path / name, [
        ("https://courier.example/ferry", "200 OK", "text/html; charset=utf-8", page("ferry-line").encode()),
        ("https://courier.example/gone", "404 Not Found", "text/html", b"<html>gone</html>"),
        ("https://courier.example/logo.png", "200 OK", "image/png", b"\x89PNG...."),
        ("https://courier.example/exchange", "200 OK", "text/html; charset=windows-1251",
         page("university-exchange").encode("cp1251", errors="replace")),
    ])
    connector = replay(archive, state)

    result = connector.poll(discard)
    connector.commit()

    assert sorted(article.url for article in result.articles) == ["https://courier.example/exchange", "https://courier.example/ferry"]
    assert result.failures == []
    assert drain(connector) == []


def test_a_file_that_is_no_warc_is_a_source_error(tmp_path, state):
    archive = tmp_path / "broken.warc"
    archive.write_bytes(b"this is not an archive\r\n\r\n")

    with pytest.raises(SourceError, match="not a readable WARC file"):
        replay(archive, state).poll()


# --- configuration -------------------------------------------------------------------------------------


def test_a_missing_archive_is_a_source_error_with_the_path(tmp_path, state):
    with pytest.raises(SourceError) as caught:
        replay(tmp_path / "nowhere.jsonl", state).poll()

    assert caught.value.url == str(tmp_path / "nowhere.jsonl")
    assert "replay archive not found" in caught.value.reason


@pytest.mark.parametrize(("entry", "problems"), [
    ({"name": "a", "kind": "replay"}, {("sources.0.path", "Field required")}),
    ({"name": "a", "kind": "replay", "path": "x.jsonl", "url": "https://a.example/"}, {("sources.0.url", "Extra inputs are not permitted")}),
    ({"name": "a", "url": "https://a.example/", "path": "x.jsonl"}, {("sources.0.path", "Extra inputs are not permitted")}),
    ({"name": "a"}, {("sources.0.url", "Field required")}),
])
def test_each_kind_asks_for_its_own_location(tmp_path, entry, problems):
    with pytest.raises(ConfigError) as caught:
        validate_file(SourcesFile, tmp_path / "sources.yaml", {"sources": [entry]})

    assert {(problem.key, problem.message) for problem in caught.value.problems} == problems
