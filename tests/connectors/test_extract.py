"""Article extraction from the saved pages in tests/resources/pages."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

import pytest

from connectors.extract import ExtractorProcesses, count_words, extract_article
from pipeline.core.errors import ExtractionError
from tests.support.processes import descendants, process_table, running

PAGES = Path(__file__).resolve().parent.parent / "resources" / "pages"


def page(name: str, **replacements: str) -> str:
    html = (PAGES / name).read_text(encoding="utf-8")
    for key, value in replacements.items():
        html = html.replace("{" + key + "}", value)
    return html


def test_article_text_and_metadata():
    article = extract_article(page("ferry-line.html"), "https://courier.example/articles/ferry-line")

    assert article.title == "Summer ferry returns to the Lower Crossing"
    assert "made its first trip of the year on Tuesday morning" in article.text
    assert "landing stages have to be moved" in article.text  # the last paragraph too
    assert article.summary == "The passenger ferry between Ostrovka and Kamenny Bereg starts its season a week early."
    assert article.authors == ["Marta Lindqvist"]
    assert article.published_at == datetime(2024, 5, 14, 4, 30, tzinfo=UTC)
    assert article.language == "en"
    assert article.site_name is None  # the page names no outlet (not its host name instead)


def test_the_outlet_s_name_as_the_page_states_it():
    html = page("ferry-line.html").replace("<head>", '<head><meta property="og:site_name" content="The Valley Courier">')
    assert extract_article(html, "https://courier.example/articles/ferry-line").site_name == "The Valley Courier"


def test_navigation_footer_and_comments_stay_out():
    text = extract_article(page("ferry-line.html"), "https://courier.example/articles/ferry-line").text

    for noise in ("All rights reserved", "Sport", "evening departure", "good riddance"):
        assert noise not in text


def test_several_authors_and_a_regional_language_tag():
    article = extract_article(page("grain-terminal.html"), "https://courier.example/articles/grain-terminal")

    assert article.authors == ["Pavel Orlov", "Chen Lan"]
    assert article.language == "en"
    assert article.published_at == datetime(2024, 5, 15, 10, 0, tzinfo=UTC)
    assert "Most read" not in article.text


def test_missing_metadata_is_empty_not_invented():
    article = extract_article(page("university-exchange.html"), "https://courier.example/articles/university-exchange")

    assert article.authors == []
    assert article.published_at is None
    assert "forty students a year" in article.text


def test_russian_page():
    article = extract_article(page("bridge-ru.html", CHARSET="utf-8"), "https://vesti.example/most")

    assert article.title == "Мост через Светлую откроют в июле"
    assert "грузовики массой до сорока тонн" in article.text
    assert article.language == "ru"


def test_page_without_article_text_says_how_little_it_had():
    with pytest.raises(ExtractionError) as caught:
        extract_article(page("thin.html"), "https://courier.example/photos/spring")

    assert caught.value.reason == (
        "no article text found (main text has 6 words, 33 characters; at least 30 words and 200 characters needed)"
    )
    assert not caught.value.retryable


def test_short_text_is_refused_with_its_size():
    html = "<html><body><article><h1>Brief</h1><p>The ferry starts on Tuesday, a week early this year.</p></article></body></html>"

    with pytest.raises(ExtractionError) as caught:
        extract_article(html, "https://courier.example/brief")

    assert caught.value.reason.startswith("no article text found")


@pytest.mark.parametrize("html", ["", "   ", "{\"json\": true}", "\x00\x01binary", "<html></html>", "<?xml version='1.0' encoding='utf-8'?><rss/>"])
def test_garbage_raises_extraction_error_not_a_crash(html):
    with pytest.raises(ExtractionError) as caught:
        extract_article(html, "https://courier.example/odd")

    assert caught.value.url == "https://courier.example/odd"
    assert caught.value.reason.startswith("no article text found (")


def test_a_page_of_one_paragraph_repeated_says_so_rather_than_counting_words():
    notice = "<p>This story is available to members of the regional business club only.</p>"
    html = f"<html><body><article><h1>Members only</h1>{notice * 14}</article></body></html>"

    with pytest.raises(ExtractionError) as caught:
        extract_article(html, "https://courier.example/club")

    assert caught.value.reason == (
        "no article text found: the page's 14 paragraphs are all the same text "
        "('This story is available to members of the regional business club only.')"
    )


def test_empty_page_counts_no_words():
    with pytest.raises(ExtractionError, match=r"no article text found \(page has 0 words of text\)"):
        extract_article("<html><body><nav>   </nav></body></html>", "https://courier.example/empty")


def test_count_words_counts_cjk_characters():
    assert count_words("The ferry starts early") == 4
    assert count_words("中俄合作项目") == 6
    assert count_words("Rosatom 与 中国 sign") == 5


def test_extractor_processes_extract_as_the_calling_thread_does():
    extractor = ExtractorProcesses(2)
    try:
        html = page("ferry-line.html")
        assert extractor.extract(html, "https://courier.example/articles/ferry-line") == extract_article(html, "https://courier.example/articles/ferry-line")
        with pytest.raises(ExtractionError) as caught:
            extractor.extract(page("thin.html"), "https://courier.example/photos/spring")
    finally:
        extractor.close()

    assert caught.value.url == "https://courier.example/photos/spring"  # the worker's error, whole
    assert caught.value.reason.startswith("no article text found (main text has 6 words")
    assert not caught.value.retryable


def _killed_by_poison(html: str, url: str):
    if "poison" in url:
        os.kill(os.getpid(), signal.SIGKILL)  # as a crash in lxml, or the OOM killer, would
    return extract_article(html, url)


def _killed_by_the_first_page(html: str, url: str):
    mark = Path(url.split("#", 1)[1])  # the test's temporary file: a worker dies before it exists
    if not mark.exists():
        mark.touch()
        os.kill(os.getpid(), signal.SIGKILL)
    return extract_article(html, url)


def test_a_page_that_kills_the_extractor_twice_fails_and_the_next_one_is_read():
    extractor = ExtractorProcesses(1, extract=_killed_by_poison)
    try:
        with pytest.raises(ExtractionError, match="the extractor process died reading this page, twice"):
            extractor.extract(page("ferry-line.html"), "https://courier.example/articles/poison")
        assert extractor.extract(page("ferry-line.html"), "https://courier.example/articles/ferry-line").title
    finally:
        extractor.close()


def test_a_worker_that_died_once_is_replaced_and_the_page_read(tmp_path):
    extractor = ExtractorProcesses(1, extract=_killed_by_the_first_page)
    try:
        extracted = extractor.extract(page("ferry-line.html"), f"https://courier.example/articles/ferry-line#{tmp_path / 'died'}")
    finally:
        extractor.close()

    assert (tmp_path / "died").exists()
    assert extracted.title == "Summer ferry returns to the Lower Crossing"


def test_a_closed_extractor_says_the_page_was_not_extracted():
    extractor = ExtractorProcesses(1)
    extractor.close()

    with pytest.raises(ExtractionError, match="not extracted: the connectors are shutting down"):
        extractor.extract(page("ferry-line.html"), "https://courier.example/articles/ferry-line")


def test_a_started_extractor_has_its_workers_before_the_first_page():
    connectors = subprocess.Popen(
        [sys.executable, "-c", "from connectors.extract import ExtractorProcesses\n"
         "extractor = ExtractorProcesses(2)\n"
         "extractor.start()\n"
         "import time; time.sleep(600)\n"],
    )
    try:
        deadline = time.monotonic() + 60
        while len(workers := _grandchildren(connectors.pid)) < 2 and time.monotonic() < deadline:
            time.sleep(0.1)
        assert len(workers) == 2
    finally:
        connectors.kill()
        connectors.wait()


def _grandchildren(pid: int) -> set[int]:
    """The workers of an extractor in process ``pid``: its server's children."""
    table = process_table()
    children = {child for child, fields in table.items() if int(fields[1]) == pid}
    return {grandchild for grandchild, fields in table.items() if int(fields[1]) in children}


def test_a_killed_connectors_process_leaves_no_extractor_processes_behind():
    connectors = subprocess.Popen(
        [sys.executable, "-c", "from connectors.extract import ExtractorProcesses\n"
         "extractor = ExtractorProcesses(2)\n"
         f"print(extractor.extract({page('ferry-line.html')!r}, 'https://courier.example/a').title, flush=True)\n"
         "import time; time.sleep(600)\n"],
        stdout=subprocess.PIPE, text=True,
    )
    try:
        assert connectors.stdout.readline().strip() == "Summer ferry returns to the Lower Crossing"
        helpers = descendants(connectors.pid)  # the workers' server, a worker, multiprocessing's resource tracker
        assert len(helpers) >= 2
        connectors.kill()  # SIGKILL: it cannot stop its workers itself
        # Not reaped yet, as a parent reading the output pipes it shares with them does not
        # reap it: the helpers must not wait for that.
        deadline = time.monotonic() + 60
        while (alive := {pid for pid in helpers if running(pid)}) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert not alive
        assert connectors.stdout.read() == ""  # the pipe's end: no helper holds it open
    finally:
        connectors.kill()
        connectors.wait()

