"""The fetcher against a real local HTTP server: every limit and failure, for real."""

from __future__ import annotations

import itertools
import socket
import threading
import time
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from types import SimpleNamespace

import httpx
import pytest

from connectors.fetch import ACCEPT_FEED, Fetcher, parse_retry_after
from pipeline.core.errors import FetchError
from pipeline.core.settings import FetchSettings
from tests.support.local_site import LOOPBACK, delayed, drop_connection, redirect_to, streamed

RUSSIAN_TITLE = "Мост через Светлую откроют в июле"


def fetch_error(fetcher: Fetcher, url: str, **kwargs) -> FetchError:
    with pytest.raises(FetchError) as caught:
        fetcher.fetch(url, **kwargs)
    return caught.value


def endless(chunk: bytes = b"<p>" + b"la " * 20_000 + b"</p>", limit: int = 50_000_000):
    """Chunks until ``limit`` bytes: far more than max_bytes, never all in memory."""
    for _ in range(limit // len(chunk)):
        yield chunk


def closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


# --- successful fetches ---------------------------------------------------------------------


def test_fetch_returns_body_text_and_headers(local_site, fetcher, fetch_settings):
    url = local_site.add("/story", "<p>Привет</p>".encode(), headers={"ETag": '"v1"', "Last-Modified": "Tue, 14 May 2024 04:30:00 GMT"})

    result = fetcher.fetch(url)

    assert (result.status, result.not_modified, result.url, result.final_url) == (200, False, url, url)
    assert result.text == "<p>Привет</p>" and result.encoding == "utf-8"
    assert (result.etag, result.last_modified) == ('"v1"', "Tue, 14 May 2024 04:30:00 GMT")
    assert result.content_type == "text/html; charset=utf-8"
    sent = local_site.requests[0].headers
    assert sent["User-Agent"] == fetch_settings.user_agent
    assert "text/html" in sent["Accept"]


def test_conditional_get_answers_not_modified(local_site, fetcher):
    url = local_site.add("/feed", b"<rss/>", "application/rss+xml", headers={"ETag": '"v7"'})

    result = fetcher.fetch(url, etag='"v7"', last_modified="Tue, 14 May 2024 04:30:00 GMT", accept=ACCEPT_FEED)

    assert result.not_modified and result.status == 304 and result.body == b""
    sent = local_site.requests[0].headers
    assert sent["If-None-Match"] == '"v7"'
    assert sent["If-Modified-Since"] == "Tue, 14 May 2024 04:30:00 GMT"
    assert sent["Accept"] == ACCEPT_FEED


def test_redirects_within_the_limit_are_followed(local_site, fetcher):
    local_site.add_handler("/old", redirect_to("/moved", 301))
    local_site.add_handler("/moved", redirect_to(local_site.url("/story"), 307))
    local_site.add("/story", b"<p>here</p>")

    result = fetcher.fetch(local_site.url("/old"))

    assert result.final_url == local_site.url("/story")
    assert result.url == local_site.url("/old")
    assert [request.path for request in local_site.requests] == ["/old", "/moved", "/story"]


# --- refused URLs ---------------------------------------------------------------------------


@pytest.mark.parametrize("url", [
    "file:///etc/passwd",
    "ftp://files.news.example/story.html",
    "javascript:alert(1)",
    "data:text/html,<p>hi</p>",
    "mailto:desk@news.example",
    "news.example/no-scheme",
    "http:///no-host",
])
def test_non_http_urls_are_refused_before_any_request(fetch_settings, url):
    calls = []
    client = httpx.Client(transport=httpx.MockTransport(lambda request: calls.append(request) or httpx.Response(200)))
    error = fetch_error(Fetcher(fetch_settings, client), url)

    assert calls == []
    assert "refused non-http URL" in error.reason
    assert not error.retryable


# --- network failures ---------------------------------------------------------------------------


def test_slow_server_hits_the_read_timeout(local_site):
    url = local_site.add_handler("/slow", delayed(1.5, b"<p>too late</p>"))
    started = time.monotonic()

    with Fetcher(FetchSettings(timeout_seconds=0.3, per_host_delay_seconds=0, allow_networks=LOOPBACK)) as fetcher:
        error = fetch_error(fetcher, url)

    assert time.monotonic() - started < 1.2
    assert error.reason.startswith("read timeout: 127.0.0.1 sent nothing for 0.3 s")
    assert error.retryable


def test_dripping_body_hits_the_whole_body_deadline(local_site):
    def drip():
        for _ in range(40):
            time.sleep(0.1)
            yield b"<p>drop</p>"

    url = local_site.add_handler("/drip", streamed(drip()))
    with Fetcher(FetchSettings(timeout_seconds=0.2, per_host_delay_seconds=0, allow_networks=LOOPBACK)) as fetcher:
        error = fetch_error(fetcher, url)

    assert error.reason == "read timeout: body still incomplete after 0.6 s"
    assert error.retryable


def test_dead_server_refuses_the_connection(fetcher):
    error = fetch_error(fetcher, f"http://127.0.0.1:{closed_port()}/feed")

    assert "connection refused by 127.0.0.1" in error.reason
    assert error.retryable


def test_dns_failure_is_named(fetch_settings):
    def no_such_host(request):
        raise httpx.ConnectError("[Errno -2] Name or service not known", request=request)

    fetcher = Fetcher(fetch_settings, httpx.Client(transport=httpx.MockTransport(no_such_host)))
    error = fetch_error(fetcher, "https://no-such-paper.invalid/rss")

    assert error.reason.startswith("DNS lookup failed for no-such-paper.invalid")
    assert error.retryable


def test_dropped_connection(local_site, fetcher):
    url = local_site.add_handler("/drop", drop_connection)

    error = fetch_error(fetcher, url)

    assert error.reason.startswith("connection dropped by 127.0.0.1")
    assert error.retryable


# --- HTTP statuses --------------------------------------------------------------------------------


@pytest.mark.parametrize(("status", "retryable"), [(404, False), (410, False), (403, False), (400, False), (408, True), (500, True), (502, True)])
def test_http_errors_say_if_a_retry_can_help(local_site, fetcher, status, retryable):
    url = local_site.add("/page", b"nope", status=status)

    error = fetch_error(fetcher, url)

    assert error.status == status
    assert error.retryable is retryable
    assert error.reason.startswith(f"HTTP {status} ")


def test_404_is_permanent_and_says_so(local_site, fetcher):
    error = fetch_error(fetcher, local_site.url("/missing"))

    assert error.reason == "HTTP 404 Not Found: the page is gone; not retried"
    assert (error.retryable, error.retry_after) == (False, None)


def test_503_is_retryable_with_retry_after_seconds(local_site, fetcher):
    url = local_site.add("/busy", b"later", status=503, headers={"Retry-After": "120"})

    error = fetch_error(fetcher, url)

    assert error.reason == "HTTP 503 Service Unavailable (retry after 120 s)"
    assert (error.retryable, error.retry_after, error.status) == (True, 120.0, 503)


def test_429_with_an_http_date_retry_after(local_site, fetcher):
    later = format_datetime(datetime.now(UTC) + timedelta(seconds=90), usegmt=True)
    url = local_site.add("/limited", b"slow down", status=429, headers={"Retry-After": later})

    error = fetch_error(fetcher, url)

    assert error.retryable
    assert 80 <= error.retry_after <= 90


def test_parse_retry_after():
    assert parse_retry_after("30") == 30.0
    assert parse_retry_after(None) is None
    assert parse_retry_after("soon") is None
    assert parse_retry_after("Tue, 14 May 2024 04:30:00 GMT") == 0.0  # in the past


# --- redirects ------------------------------------------------------------------------------------


def test_redirect_loop_is_detected_and_shown(local_site, fetcher):
    local_site.add_handler("/a", redirect_to("/b"))
    local_site.add_handler("/b", redirect_to("/a"))
    a, b = local_site.url("/a"), local_site.url("/b")

    error = fetch_error(fetcher, a)

    assert error.reason == f"redirect loop: {a} → {b} → {a}"
    assert not error.retryable


def test_too_many_redirects(local_site, fetcher):
    for hop in range(1, 8):
        local_site.add_handler(f"/hop/{hop}", redirect_to(f"/hop/{hop + 1}"))

    error = fetch_error(fetcher, local_site.url("/hop/1"))

    assert error.reason.startswith("too many redirects (more than 3): ")
    assert error.reason.endswith(" → ".join(local_site.url(f"/hop/{n}") for n in range(1, 6)))
    assert len(local_site.requests) == 4


def test_redirect_to_ftp_is_refused(local_site, fetcher):
    url = local_site.add_handler("/download", redirect_to("ftp://files.news.example/story.pdf"))

    error = fetch_error(fetcher, url)

    assert "to a non-http URL refused: ftp://files.news.example/story.pdf" in error.reason
    assert len(local_site.requests) == 1


# --- size limits ----------------------------------------------------------------------------------


def test_huge_chunked_body_is_cut_off(local_site, fetcher):
    url = local_site.add_handler("/huge", streamed(endless(), chunked=True))
    started = time.monotonic()

    error = fetch_error(fetcher, url)

    assert error.reason == "body too large: more than 200000 bytes (stopped reading)"
    assert not error.retryable
    assert time.monotonic() - started < 2


def test_huge_body_without_length_until_close_is_cut_off(local_site, fetcher):
    url = local_site.add_handler("/huge", streamed(endless(), chunked=False))

    error = fetch_error(fetcher, url)

    assert error.reason == "body too large: more than 200000 bytes (stopped reading)"


def test_huge_content_length_is_refused_before_reading(local_site, fetcher):
    url = local_site.add_handler("/huge", streamed(endless(), content_length=10_000_000_000))

    error = fetch_error(fetcher, url)

    assert error.reason == "body too large: Content-Length is 10000000000 bytes, the limit is 200000"


# --- binary bodies ---------------------------------------------------------------------------------

PDF = b"%PDF-1.7\n%\xe2\xe3\xcf\xd3\n1 0 obj\n<< /Type /Catalog >>\nendobj\n" + bytes(range(256)) * 4


@pytest.mark.parametrize(("content_type", "body", "reason"), [
    ("application/pdf", PDF, "binary body (application/pdf), not an article or feed"),
    ("image/jpeg", b"\xff\xd8\xff\xe0" + bytes(2000), "binary body (image/jpeg), not an article or feed"),
    ("application/octet-stream", b"anything", "binary body (application/octet-stream), not an article or feed"),
    ("text/html; charset=utf-8", PDF, "binary body (application/pdf, served as text/html), not an article or feed"),
    ("text/html", b"<html>\x00\x00\x00\x01\x02</html>", "binary body (NUL bytes in a body served as text/html), not an article or feed"),
    (None, PDF, "binary body (application/pdf, served as no content type), not an article or feed"),
])
def test_binary_bodies_are_refused(local_site, fetcher, content_type, body, reason):
    if content_type is None:
        url = local_site.add_handler("/file", streamed([body], content_type="", content_length=len(body)))
    else:
        url = local_site.add("/file", body, content_type=content_type)

    error = fetch_error(fetcher, url)

    assert error.reason == reason
    assert not error.retryable


# --- charsets ------------------------------------------------------------------------------------


def russian_page(resource, charset_in_meta: str) -> bytes:
    return resource("pages/bridge-ru.html", CHARSET=charset_in_meta).decode("utf-8").encode("windows-1251")


def test_windows_1251_page_declared_as_utf8(local_site, fetcher, resource):
    url = local_site.add("/ru", russian_page(resource, "utf-8"), content_type="text/html; charset=utf-8")

    result = fetcher.fetch(url)

    assert RUSSIAN_TITLE in result.text
    assert result.encoding.replace("-", "").lower() in ("cp1251", "windows1251")


def test_charset_only_in_meta(local_site, fetcher, resource):
    url = local_site.add("/ru", russian_page(resource, "windows-1251"), content_type="text/html")

    result = fetcher.fetch(url)

    assert RUSSIAN_TITLE in result.text
    assert result.encoding == "windows-1251"


def test_unknown_charset_does_not_crash(local_site, fetcher):
    url = local_site.add("/odd", "<p>Новости</p>".encode(), content_type="text/html; charset=x-martian")

    assert fetcher.fetch(url).text == "<p>Новости</p>"


# --- politeness -----------------------------------------------------------------------------------


def arrival_recorder(local_site, path: str) -> list[float]:
    arrivals: list[float] = []

    def handler(request):
        arrivals.append(time.monotonic())
        request.send_response(200)
        request.send_header("Content-Type", "text/html")
        request.send_header("Content-Length", "2")
        request.end_headers()
        request.wfile.write(b"ok")

    local_site.add_handler(path, handler)
    return arrivals


def test_politeness_delay_between_requests_to_one_host(local_site, monkeypatch):
    """The fetcher's waits are recorded, not slept: a busy machine cannot blur "no wait" and "a wait"."""
    waits: list[float] = []
    monkeypatch.setattr("connectors.politeness.time", SimpleNamespace(monotonic=time.monotonic, sleep=waits.append))
    arrival_recorder(local_site, "/page")
    other_host = local_site.url("/page").replace("127.0.0.1", "localhost")

    with Fetcher(FetchSettings(timeout_seconds=5, per_host_delay_seconds=30, allow_networks=LOOPBACK)) as fetcher:
        fetcher.fetch(local_site.url("/page"))
        fetcher.fetch(other_host)  # another host name: no wait
        assert waits == []  # nor for the first request to a host
        fetcher.fetch(local_site.url("/page"))

    [wait] = waits
    assert 20 < wait <= 30  # the rest of the 30 s since the first request started


def test_politeness_holds_across_threads(local_site):
    arrivals = arrival_recorder(local_site, "/page")
    with Fetcher(FetchSettings(timeout_seconds=2, per_host_delay_seconds=0.2, allow_networks=LOOPBACK)) as fetcher:
        threads = [threading.Thread(target=fetcher.fetch, args=(local_site.url("/page"),)) for _ in range(4)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()

    gaps = [later - earlier for earlier, later in itertools.pairwise(sorted(arrivals))]
    assert len(arrivals) == 4
    assert min(gaps) >= 0.17  # 0.2 s between starts; arrival jitter aside


def test_requests_in_flight_to_one_host_are_bounded(local_site, fetch_settings):
    in_flight, peak, lock = [0], [0], threading.Lock()

    def slow(request):
        with lock:
            in_flight[0] += 1
            peak[0] = max(peak[0], in_flight[0])
        time.sleep(0.2)
        with lock:
            in_flight[0] -= 1
        delayed(0, b"<html>done</html>")(request)

    local_site.add_handler("/slow", slow)
    with Fetcher(fetch_settings.model_copy(update={"max_connections_per_host": 2})) as fetcher:
        threads = [threading.Thread(target=fetcher.fetch, args=[local_site.url("/slow")]) for _ in range(6)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(10)
    assert len(local_site.requests_to("/slow")) == 6
    assert peak[0] == 2
