"""A webhook endpoint on 127.0.0.1 for tests: records every POST and answers with scripted statuses.

Example::

    with WebhookReceiver(statuses=[500, 500]) as receiver:   # then 200 for every later request
        ... deliver to receiver.url ...
        receiver.wait_for(accepted=1)

``on_request`` is called with each request before it is answered: a test can kill the sender
there, in the window after the endpoint has the delivery and before the sender knows it.
``answer`` replaces the plain answer: it gets the request handler and the status, and writes
whatever a misbehaving endpoint would (a byte at a time, a body of hundreds of megabytes).
``host`` is the loopback address to listen on (127.0.0.2 for one outside an allowed range).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import NamedTuple

__all__ = ["Received", "WebhookReceiver"]


class Received(NamedTuple):
    headers: dict[str, str]
    body: bytes
    status: int


class WebhookReceiver:
    def __init__(
        self, statuses: list[int] | None = None, *, default_status: int = 200, port: int = 0,
        on_request: Callable[[Received], None] | None = None,
        answer: Callable[[BaseHTTPRequestHandler, int], None] | None = None, host: str = "127.0.0.1",
    ):
        self._statuses = list(statuses or [])
        self._default = default_status
        self.requests: list[Received] = []
        self._lock = threading.Lock()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                with receiver._lock:
                    status = receiver._statuses.pop(0) if receiver._statuses else receiver._default
                    received = Received({k.lower(): v for k, v in self.headers.items()}, body, status)
                    receiver.requests.append(received)
                if on_request is not None:
                    on_request(received)
                try:
                    if answer is not None:
                        answer(self, status)
                        return
                    self.send_response(status)
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                except OSError:
                    pass  # the sender is gone (killed by on_request, say): the request is recorded all the same

            def log_message(self, *_args) -> None:
                pass

        self._server = ThreadingHTTPServer((host, port), Handler)  # a given port: an endpoint that comes back
        self.url = f"http://{host}:{self._server.server_address[1]}/hook"

    def __enter__(self) -> WebhookReceiver:
        threading.Thread(target=self._server.serve_forever, daemon=True).start()
        return self

    def __exit__(self, *_exc) -> None:
        self._server.shutdown()
        self._server.server_close()

    @property
    def accepted(self) -> list[Received]:
        with self._lock:
            return [request for request in self.requests if 200 <= request.status < 300]

    def wait_for(self, *, requests: int = 0, accepted: int = 0, timeout: float = 20.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if len(self.requests) >= requests and len(self.accepted) >= accepted:
                return
            time.sleep(0.05)
        raise AssertionError(f"within {timeout} s: {len(self.requests)} requests, {len(self.accepted)} accepted")
