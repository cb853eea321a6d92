"""No request can make the server work without bound or answer for a stranger: list filters,
dates and cursors are bounded and refused with 422, the timeline draws at most ten years, a
query stops when its client leaves, a Host the server does not serve is refused, and the
open health check tells nobody where the broker is."""

from __future__ import annotations

import base64
import socket
import threading
import time
from datetime import UTC, datetime

import anyio
import feedparser
import pytest
import sqlalchemy as sa
import uvicorn
from fastapi.testclient import TestClient

from pipeline.app.web.app import create_app
from pipeline.app.web.cancellation import Cancellation, CancelOnDisconnect, QueryCancelled, cancellable, current
from pipeline.app.web.server import BackgroundServer, make_server
from pipeline.core.db import make_engine
from pipeline.core.errors import ConfigError
from pipeline.core.migrations import upgrade_database
from pipeline.core.settings import AmurSettings
from tests.pipeline.app.test_web_api import STORIES, dated, served  # noqa: F401 - served: the application over a filled database


@pytest.mark.parametrize("query", [
    "&".join(f"source=s{n}" for n in range(101)),
    "&".join(f"region=RU-P{n % 10}" for n in range(101)),
    "until=9999-12-31",
    "since=0001-01-01",
    "cursor=" + base64.urlsafe_b64encode(f"0001-01-01T00:00:00+00:00|{'a' * 32}".encode()).decode().rstrip("="),
])
def test_an_unbounded_or_absurd_parameter_is_a_422_with_the_security_headers(served, query):
    response = served.get(f"/api/stories?{query}")
    assert response.status_code == 422, response.text
    assert response.headers.get("x-content-type-options") == "nosniff"
    page = served.get(f"/?{query}")
    assert page.status_code in (400, 422) and "Traceback" not in page.text


def test_a_hundred_values_are_still_a_filter(served):
    response = served.get("/api/stories?" + "&".join(f"source=s{n}" for n in range(99)) + "&source=tass")
    assert response.status_code == 200, response.text


def test_a_story_dated_at_year_one_draws_no_two_thousand_years_of_timeline(served):
    ancient = dated(STORIES["power"].model_copy(update={"id": "e" * 32, "url": "https://a.example/ancient"}), 2)
    ancient = ancient.model_copy(update={"published_at": datetime(1, 1, 1, tzinfo=UTC)})
    served.stories_sink.add(ancient)
    assert served.stories_sink.flush() == []
    response = served.get("/timeline")
    assert response.status_code == 200
    assert len(response.content) < 2_000_000


def test_a_short_access_token_is_refused_at_start(tmp_path):
    settings = AmurSettings(database_url=f"sqlite:///{tmp_path / 'amur.sqlite'}")
    with pytest.raises(ConfigError) as refused:
        make_server(settings, tmp_path / "amur.yaml", environ={"AMUR_SERVE_TOKEN": "x"})
    (problem,) = refused.value.problems
    assert problem.key == "serve.access_token_env" and "1 characters" in problem.message and "at least 32" in problem.hint


def test_a_host_the_server_does_not_serve_is_refused_before_anything_else(served):
    for host in ("rebound.attacker.example", "rebound.attacker.example:8080", "10.0.0.7"):
        refused = served.get("/api/stories", headers={"host": host})
        assert refused.status_code == 400 and "serve.allowed_hosts" in refused.json()["detail"]
        assert refused.headers.get("x-frame-options") == "DENY"
    for host in ("127.0.0.1:8080", "localhost", "[::1]:8080"):
        assert served.get("/api/stories", headers={"host": host}).status_code == 200


def test_a_configured_host_is_served_and_names_the_feeds_self_links(database_url, tmp_path):
    (tmp_path / "subscriptions.yaml").write_text("subscriptions:\n  - name: all\n")
    settings = AmurSettings(database_url=database_url, serve={"allowed_hosts": ["amur.example.org"]})
    upgrade_database(make_engine(database_url))
    client = TestClient(create_app(settings, tmp_path / "amur.yaml", bind_host="0.0.0.0"), base_url="http://amur.example.org")
    feed = feedparser.parse(client.get("/feeds/all.atom").content)
    assert any(link.href.startswith("http://amur.example.org/") for link in feed.feed.links)
    assert client.get("/feeds/all.atom", headers={"host": "0.0.0.0"}).status_code == 400  # a wildcard bind is no name


def test_an_invalid_subscriptions_file_stops_the_server_at_start(database_url, tmp_path):
    (tmp_path / "subscriptions.yaml").write_text("subscriptions:\n  - name: partners\n    filters: {regions: [XX-NOPE]}\n")
    upgrade_database(make_engine(database_url))
    with pytest.raises(ConfigError) as refused:
        create_app(AmurSettings(database_url=database_url), tmp_path / "amur.yaml")
    assert any("subscriptions.yaml" in problem.file for problem in refused.value.problems)


def test_the_open_health_check_names_no_broker_and_no_group(database_url, tmp_path):
    upgrade_database(make_engine(database_url))
    (tmp_path / "subscriptions.yaml").write_text("subscriptions: []\n")
    settings = AmurSettings(
        database_url=database_url, transport="kafka",
        kafka={"bootstrap_servers": "127.0.0.1:1", "group_prefix": "secretive", "timeout_seconds": 3},
    )
    client = TestClient(create_app(settings, tmp_path / "amur.yaml", access_token="t" * 32), base_url="http://127.0.0.1")
    health = client.get("/healthz")
    assert health.status_code == 200
    assert "127.0.0.1:1" not in health.text and "secretive" not in health.text
    assert health.json()["lag_records"].startswith("unknown")


# A query that counts for minutes unless something stops it.
ENDLESS = "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n) SELECT count(*) FROM n"


def test_a_query_stops_when_its_request_is_cancelled(database_url):
    engine = make_engine(database_url)
    cancellation, outcome = Cancellation(), []

    def query() -> None:
        token = current.set(cancellation)
        try:
            with engine.connect() as connection, cancellable(connection) as watched:
                watched.execute(sa.text(ENDLESS))
        except QueryCancelled as exc:
            outcome.append(exc)
        finally:
            current.reset(token)

    worker = threading.Thread(target=query)
    worker.start()
    time.sleep(0.5)  # let the query start; cancelling before it would be no test
    started = time.monotonic()
    cancellation.cancel()
    worker.join(timeout=30)
    assert not worker.is_alive() and len(outcome) == 1
    assert time.monotonic() - started < 5
    with engine.connect() as connection:  # the pooled connection is fit for the next request
        assert connection.execute(sa.text("SELECT 1")).scalar_one() == 1
    engine.dispose()


def test_a_query_stops_at_its_deadline_whoever_waits(database_url):
    engine = make_engine(database_url)
    started = time.monotonic()
    with pytest.raises(QueryCancelled), engine.connect() as connection, cancellable(connection, seconds=0.5) as watched:
        watched.execute(sa.text(ENDLESS))
    assert time.monotonic() - started < 10
    engine.dispose()


def test_a_client_that_leaves_cancels_its_request_on_a_real_server():
    """Through uvicorn and a socket closed mid-request, the route's thread sees the cancel."""
    seen = threading.Event()
    entered = threading.Event()

    async def application(scope, receive, send):
        if scope["type"] != "http":
            return
        cancellation = current.get()
        entered.set()
        await anyio.to_thread.run_sync(lambda: seen.set() if cancellation.event.wait(30) else None)
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"late"})

    server = BackgroundServer(uvicorn.Server(uvicorn.Config(
        CancelOnDisconnect(application), host="127.0.0.1", port=0, log_config=None, lifespan="off",
    ))).start()
    try:
        with socket.create_connection(("127.0.0.1", server.port)) as client:
            client.sendall(b"GET /slow HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
            assert entered.wait(10)
        assert seen.wait(10), "the request's work went on after its client left"
    finally:
        server.stop()
