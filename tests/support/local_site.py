"""A real HTTP server on 127.0.0.1 for tests: canned pages, feeds and misbehaving handlers.

Tests talk to it over real sockets, so timeouts, refused connections, streamed bodies and
redirects behave as they do on the internet — without the internet.

Example::

    with LocalSite() as site:
        site.add("/feed.xml", b"<rss ...>", content_type="application/rss+xml", headers={"ETag": '"v1"'})
        site.add_handler("/slow", delayed(2.0, b"<html>late</html>"))
        fetcher.fetch(site.url("/feed.xml"))
        assert site.requests[0].path == "/feed.xml"

A route added with an ``ETag`` or ``Last-Modified`` header answers a matching
``If-None-Match`` / ``If-Modified-Since`` with 304, as a real server does. A handler is a
callable taking the ``BaseHTTPRequestHandler``; the factories below cover the usual
misbehaviour (:func:`delayed`, :func:`redirect_to`, :func:`streamed`, :func:`drop_connection`).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import NamedTuple
from urllib.parse import urlsplit

Handler = Callable[[BaseHTTPRequestHandler], None]

__all__ = ["LOOPBACK", "Handler", "LocalSite", "LoggedRequest", "delayed", "drop_connection", "redirect_to", "streamed"]

# What a test's fetcher must allow to reach a LocalSite (fetch.allow_networks): loopback is
# refused by default, as every non-public destination is.
LOOPBACK = ["127.0.0.0/8"]

_CLIENT_GONE = (BrokenPipeError, ConnectionResetError, ConnectionAbortedError)


class LoggedRequest(NamedTuple):
    method: str
    path: str  # with the query string
    headers: dict[str, str]  # names as the client sent them; use .get() with the usual case


@dataclass(frozen=True)
class _Canned:
    body: bytes
    content_type: str
    status: int
    headers: dict[str, str]

    def __call__(self, request: BaseHTTPRequestHandler) -> None:
        etag = self.headers.get("ETag")
        modified = self.headers.get("Last-Modified")
        if (etag and request.headers.get("If-None-Match") == etag) or (
            modified and request.headers.get("If-Modified-Since") == modified
        ):
            request.send_response(304)
            for name, value in self.headers.items():
                request.send_header(name, value)
            request.send_header("Content-Length", "0")
            request.end_headers()
            return
        request.send_response(self.status)
        request.send_header("Content-Type", self.content_type)
        request.send_header("Content-Length", str(len(self.body)))
        for name, value in self.headers.items():
            request.send_header(name, value)
        request.end_headers()
        if request.command != "HEAD":
            request.wfile.write(self.body)


class LocalSite:
    """An HTTP/1.1 server on 127.0.0.1 (a free port) in a daemon thread; a context manager."""

    def __init__(self) -> None:
        self._routes: dict[str, Handler] = {}
        self._lock = threading.Lock()
        self.requests: list[LoggedRequest] = []
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    # --- content --------------------------------------------------------------------------

    def add(
        self,
        path: str,
        body: bytes,
        content_type: str = "text/html; charset=utf-8",
        status: int = 200,
        headers: dict[str, str] | None = None,
    ) -> str:
        """Serve ``body`` at ``path`` (exact, or without the query string); returns its URL."""
        self._routes[path] = _Canned(body, content_type, status, dict(headers or {}))
        return self.url(path)

    def add_handler(self, path: str, handler: Handler) -> str:
        """Answer ``path`` with ``handler(request_handler)``; returns its URL."""
        self._routes[path] = handler
        return self.url(path)

    def url(self, path: str = "/") -> str:
        return f"{self.base_url}{path}"

    @property
    def base_url(self) -> str:
        if self._server is None:
            raise RuntimeError("LocalSite is not started: use it as a context manager or call start()")
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    def requests_to(self, path: str) -> list[LoggedRequest]:
        """The logged requests whose path (without the query string) is ``path``."""
        with self._lock:
            return [request for request in self.requests if urlsplit(request.path).path == path]

    # --- lifecycle ------------------------------------------------------------------------

    def start(self) -> LocalSite:
        site = self

        class RequestHandler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"  # keep-alive and chunked bodies, like real servers
            # Headers and body go out in two writes: with Nagle's algorithm the body waits for the
            # client's delayed ACK of the headers, 40 ms a response, which no real server makes.
            disable_nagle_algorithm = True

            def do_GET(self) -> None:
                site._dispatch(self)

            do_HEAD = do_GET

            def log_message(self, *_args) -> None:  # keep test output clean
                pass

        class Server(ThreadingHTTPServer):
            daemon_threads = True  # a handler still sleeping must not block stop()
            block_on_close = False

            def handle_error(self, request, client_address) -> None:
                pass  # clients hanging up mid-response is what many tests do on purpose

        self._server = Server(("127.0.0.1", 0), RequestHandler)
        # A short poll interval: shutdown() waits up to one interval.
        self._thread = threading.Thread(target=self._server.serve_forever, args=(0.05,), name="local-site", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def __enter__(self) -> LocalSite:
        return self.start()

    def __exit__(self, *_exc) -> None:
        self.stop()

    def _dispatch(self, request: BaseHTTPRequestHandler) -> None:
        with self._lock:
            self.requests.append(LoggedRequest(request.command, request.path, dict(request.headers.items())))
        handler = self._routes.get(request.path) or self._routes.get(urlsplit(request.path).path)
        if handler is None:
            handler = _Canned(b"not found", "text/plain; charset=utf-8", 404, {})
        try:
            handler(request)
        except _CLIENT_GONE:
            request.close_connection = True


# --- handlers for misbehaving servers -------------------------------------------------------


def delayed(seconds: float, body: bytes, content_type: str = "text/html; charset=utf-8") -> Handler:
    """Wait ``seconds`` before sending anything (a server slower than the read timeout)."""

    def handler(request: BaseHTTPRequestHandler) -> None:
        time.sleep(seconds)
        _Canned(body, content_type, 200, {})(request)

    return handler


def redirect_to(location: str, status: int = 302) -> Handler:
    """Answer with a redirect to ``location`` (absolute, relative, or any scheme)."""

    def handler(request: BaseHTTPRequestHandler) -> None:
        request.send_response(status)
        request.send_header("Location", location)
        request.send_header("Content-Length", "0")
        request.end_headers()

    return handler


def streamed(
    chunks: Iterable[bytes],
    content_type: str = "text/html; charset=utf-8",
    *,
    chunked: bool = True,
    content_length: int | None = None,
) -> Handler:
    """Send ``chunks`` as they are generated, so a test never holds a huge body in memory.

    :param chunked: use ``Transfer-Encoding: chunked``; otherwise the body ends when the
        connection closes (HTTP/1.0 style), unless ``content_length`` is given.
    :param content_length: a ``Content-Length`` to announce (it may lie).
    """

    def handler(request: BaseHTTPRequestHandler) -> None:
        request.send_response(200)
        request.send_header("Content-Type", content_type)
        if content_length is not None:
            request.send_header("Content-Length", str(content_length))
        elif chunked:
            request.send_header("Transfer-Encoding", "chunked")
        else:
            request.send_header("Connection", "close")
            request.close_connection = True
        request.end_headers()
        for chunk in chunks:
            if chunked and content_length is None:
                request.wfile.write(f"{len(chunk):x}\r\n".encode("ascii") + chunk + b"\r\n")
            else:
                request.wfile.write(chunk)
        if chunked and content_length is None:
            request.wfile.write(b"0\r\n\r\n")

    return handler


def drop_connection(request: BaseHTTPRequestHandler) -> None:
    """Close the connection without answering (a crashed or overloaded server)."""
    request.close_connection = True
    request.connection.shutdown(2)  # socket.SHUT_RDWR
