"""The web application: what every route shares, and what every response carries.

:func:`create_app` builds the FastAPI application for one configuration. Every response
carries a Content-Security-Policy without inline scripts and the usual hardening headers;
with an access token configured, every path but ``/healthz`` needs it, as a bearer token
or as the password of HTTP basic auth (so a browser can ask for it). Only GET and HEAD are
routed: the server changes no data.

A request naming a host the server does not serve is refused (400) before anything else:
a DNS-rebinding page must not read a token-less loopback dashboard, and the feeds' self
links must not follow a stranger's Host header. The loopback names, the bound address and
``serve.allowed_hosts`` are served. A query stops when its client leaves or after
:data:`~pipeline.app.web.cancellation.QUERY_SECONDS` (503).
"""

from __future__ import annotations

import base64
import binascii
import collections
import secrets
import time
from contextlib import asynccontextmanager
from pathlib import Path

import sqlalchemy as sa
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from fastapi.staticfiles import StaticFiles
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import GaugeMetricFamily
from starlette.exceptions import HTTPException as StarletteHTTPException

from pipeline.app.sources import source_health
from pipeline.app.web import api, feeds, pages
from pipeline.app.web.cancellation import QUERY_SECONDS, CancelOnDisconnect, QueryCancelled
from pipeline.app.web.context import HERE, WebContext
from pipeline.core.db import make_engine
from pipeline.core.errors import ConfigError, ConfigProblem, allowed_like
from pipeline.core.messages import utc_now
from pipeline.core.migrations import current_revision, head_revision
from pipeline.core.settings import AmurSettings
from sinks.alerts import alerts
from sinks.records import articles

__all__ = ["create_app"]

CONTENT_SECURITY_POLICY = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "form-action 'self'; base-uri 'none'; frame-ancestors 'none'"
)
SECURITY_HEADERS = {
    "Content-Security-Policy": CONTENT_SECURITY_POLICY,
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "X-Frame-Options": "DENY",
}
OPEN_PATHS = ("/healthz",)


def create_app(
    settings: AmurSettings, config_path: Path, *, access_token: str | None = None, bind_host: str | None = None,
) -> FastAPI:
    """The application over ``settings.database_url``, answering for the hosts of :func:`served_hosts`.

    :raises ConfigError: the database is not at the schema this code reads, or the
        subscriptions file is invalid (there is no earlier valid one to serve).
    """
    engine = make_engine(settings.database_url)
    _require_current_schema(engine, config_path)
    context = WebContext(settings, Path(config_path), engine)
    context.subscriptions.current()  # read now: an invalid file stops the start, as it stops the pipeline's
    @asynccontextmanager
    async def lifespan(_application: FastAPI):
        yield
        context.close()

    application = FastAPI(
        lifespan=lifespan,
        title="Amur",
        summary="Russia–China cooperation stories: the JSON API behind the dashboard (read-only)",
        version="1",
        docs_url=None, redoc_url=None,  # their pages load scripts from a CDN
    )
    application.state.amur = context
    registry = CollectorRegistry()
    _observe(application, registry, access_token, served_hosts(settings, bind_host or settings.serve.host))
    application.add_middleware(HeadAsGet)
    application.add_middleware(CancelOnDisconnect)  # outermost: it owns the connection's messages
    registry.register(_StoreCollector(context))
    _operations(application, context, registry)
    application.mount("/static", StaticFiles(directory=HERE / "static"), name="static")
    application.add_exception_handler(RequestValidationError, _invalid_parameter)
    application.add_exception_handler(StarletteHTTPException, _http_error)
    application.add_exception_handler(QueryCancelled, _query_cancelled)

    application.include_router(api.router)
    application.include_router(feeds.router)
    application.include_router(pages.router)
    return application


class HeadAsGet:
    """HEAD wherever GET is: link checkers, feed readers and monitors ask with it. The GET is
    answered, headers and all, without its body (pure ASGI, so the API's schema lists GETs only)."""

    def __init__(self, app) -> None:
        self.app = app

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] != "http" or scope["method"] != "HEAD":
            await self.app(scope, receive, send)
            return

        async def headers_only(message) -> None:
            if message["type"] == "http.response.body":
                if message.get("more_body", False):
                    return
                message = {"type": "http.response.body", "body": b""}
            await send(message)

        await self.app({**scope, "method": "GET"}, receive, headers_only)


def _require_current_schema(engine: sa.Engine, config_path: Path) -> None:
    try:
        revision = current_revision(engine)
    except sa.exc.SQLAlchemyError as exc:
        raise ConfigError([ConfigProblem(
            str(config_path), "database_url", f"cannot read the database: {exc.__class__.__name__}",
            "start the database, or point database_url at the pipeline's",
        )]) from None
    if revision != head_revision():
        raise ConfigError([ConfigProblem(
            str(config_path), "database_url",
            f"the database is at schema revision {revision or '(none)'}, this server reads {head_revision()}",
            "run `amur db upgrade` (the pipeline does it at start-up); the server never writes",
        )])


LOOPBACK_NAMES = frozenset({"localhost", "127.0.0.1", "::1"})
WILDCARD_ADDRESSES = frozenset({"0.0.0.0", "::", ""})  # noqa: S104 - recognised, to require a token


def served_hosts(settings: AmurSettings, bind_host: str) -> frozenset[str]:
    """The host names a request may name: loopback, the bound address unless it is a wildcard, and
    ``serve.allowed_hosts``."""
    bound = set() if bind_host in WILDCARD_ADDRESSES else {bind_host.lower()}
    return LOOPBACK_NAMES | bound | {host.lower() for host in settings.serve.allowed_hosts}


def _host_of(request: Request) -> str:
    """The Host header's name, without the port or an IPv6 literal's brackets."""
    host = request.headers.get("host", "").strip().lower()
    if host.startswith("["):
        return host[1:].partition("]")[0]
    return host.rpartition(":")[0] if host.count(":") == 1 else host


def _observe(
    application: FastAPI, registry: CollectorRegistry, access_token: str | None, hosts: frozenset[str],
) -> None:
    requests = Counter("amur_http_requests", "HTTP requests answered", ["route", "status"], registry=registry)
    latency = Histogram(
        "amur_http_request_duration_seconds", "Time to answer an HTTP request", ["route"], registry=registry,
        buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5),
    )

    @application.middleware("http")
    async def guard(request: Request, call_next) -> Response:
        started = time.perf_counter()
        if _host_of(request) not in hosts:
            response: Response = JSONResponse(
                {"detail": f"this server does not answer for host {_host_of(request)!r}: add it to serve.allowed_hosts"},
                status_code=400,
            )
        elif access_token and request.url.path not in OPEN_PATHS and not _authorized(request, access_token):
            response = JSONResponse(
                {"detail": "an access token is required: Authorization: Bearer <token>, or basic auth"},
                status_code=401, headers={"WWW-Authenticate": 'Basic realm="Amur"'},
            )
        else:
            response = await call_next(request)
        response.headers.update(SECURITY_HEADERS)
        route = getattr(request.scope.get("route"), "path", "(unrouted)")
        requests.labels(route, str(response.status_code)).inc()
        latency.labels(route).observe(time.perf_counter() - started)
        return response


def _authorized(request: Request, access_token: str) -> bool:
    scheme, _, credentials = request.headers.get("authorization", "").partition(" ")
    if scheme.lower() == "bearer":
        offered = credentials.strip()
    elif scheme.lower() == "basic":
        try:
            offered = base64.b64decode(credentials, validate=True).decode("utf-8").partition(":")[2]
        except (binascii.Error, UnicodeDecodeError):
            return False
    else:
        return False
    return secrets.compare_digest(offered.encode("utf-8"), access_token.encode("utf-8"))


class _StoreCollector:
    """Gauges read from the database at each scrape: what the pipeline has written, and how lately."""

    def __init__(self, context: WebContext):
        self.context = context

    def collect(self):
        with self.context.connect() as connection:
            stories = connection.execute(sa.select(sa.func.count()).select_from(alerts)).scalar_one()
            records = connection.execute(sa.select(sa.func.count()).select_from(articles)).scalar_one()
            freshness = _freshness(connection)
        statuses = collections.Counter(row.status for row in source_health(
            self.context.settings, self.context.config_path, self.context.engine))
        yield GaugeMetricFamily("amur_stories", "Stories in the records database", value=stories)
        yield GaugeMetricFamily("amur_articles", "Classified articles in the records database", value=records)
        sources = GaugeMetricFamily(
            "amur_sources", "Configured sources by status (ok, failing, unhealthy, items failing, silent, ...)", labels=["status"],
        )
        for status in ("ok", "failing", "unhealthy", "items failing", "silent", "never polled", "disabled"):
            sources.add_metric([status], statuses.get(status, 0))
        yield sources
        age = GaugeMetricFamily("amur_last_written_age_seconds", "Seconds since the sinks last wrote", labels=["table"])
        for table, seconds in freshness.items():
            if seconds is not None:
                age.add_metric([table], seconds)
        yield age


def _freshness(connection: sa.Connection) -> dict[str, float | None]:
    """Seconds since the newest article record and the newest story were written."""
    now = utc_now()
    newest = {
        "articles": connection.execute(sa.select(sa.func.max(articles.c.updated_at))).scalar(),
        "alerts": connection.execute(sa.select(sa.func.max(alerts.c.written_at))).scalar(),
    }
    return {table: (now - moment).total_seconds() if moment else None for table, moment in newest.items()}


def _operations(application: FastAPI, context: WebContext, registry: CollectorRegistry) -> None:
    @application.get("/healthz", tags=["operations"], summary="Database reachable, and how fresh its records are")
    def healthz() -> JSONResponse:
        try:
            with context.connect() as connection:
                freshness = _freshness(connection)
        except sa.exc.SQLAlchemyError as exc:
            return JSONResponse({"status": "error", "database": f"unreachable: {exc.__class__.__name__}"}, 503)
        return JSONResponse({
            "status": "ok", "database": "ok",
            # How long ago the sinks last wrote each table, and what each role has yet to handle.
            "lag_seconds": {table: None if seconds is None else round(seconds, 1) for table, seconds in freshness.items()},
            "lag_records": context.pipeline_lag(),
        })

    @application.get("/metrics", tags=["operations"], summary="Prometheus text format")
    def metrics() -> Response:
        return Response(generate_latest(registry), media_type=CONTENT_TYPE_LATEST)


def _answers_json(request: Request) -> bool:
    """Whether the request is the API's or a feed's, whose errors are JSON (the dashboard's are pages)."""
    return request.url.path.startswith(("/api/", "/feeds/"))


def _query_cancelled(request: Request, exc: QueryCancelled) -> Response:
    """503 for a query past its deadline (a client that left reads nothing)."""
    message = f"the query took longer than {QUERY_SECONDS:.0f} s; narrow the filter and try again"
    if _answers_json(request):
        return JSONResponse({"detail": message}, status_code=503)
    context: WebContext = request.app.state.amur
    return context.templates.TemplateResponse(request, "error.html", {"title": "Too slow", "message": message}, status_code=503)


def _http_error(request: Request, exc: StarletteHTTPException) -> Response:
    """The API's and the feeds' errors as JSON; the dashboard's as a page a reader can read."""
    if _answers_json(request) or request.url.path in OPEN_PATHS:
        return JSONResponse({"detail": exc.detail}, status_code=exc.status_code, headers=exc.headers)
    context: WebContext = request.app.state.amur
    title = "Not found" if exc.status_code == 404 else "Error"
    return context.templates.TemplateResponse(
        request, "error.html", {"title": title, "message": str(exc.detail)}, status_code=exc.status_code, headers=exc.headers,
    )


def _with_nearest(error: dict) -> str:
    """A parameter error's message, with the allowed values most like a wrong one."""
    similar = allowed_like(error)
    return f"{error['msg']}; did you mean {' or '.join(similar)}?" if similar else error["msg"]


def _invalid_parameter(request: Request, exc: RequestValidationError) -> Response:
    """422 naming the parameter and what is wrong with it; an HTML page for the dashboard."""
    errors = [
        {"parameter": ".".join(str(part) for part in error["loc"][1:2]) or "(query)", "message": _with_nearest(error)}
        for error in exc.errors()
    ]
    message = "; ".join(f"{error['parameter']}: {error['message']}" for error in errors)
    if _answers_json(request):
        return JSONResponse({"detail": f"invalid parameter {message}", "errors": errors}, status_code=422)
    context: WebContext = request.app.state.amur
    return context.templates.TemplateResponse(
        request, "error.html", {"title": "Invalid filter", "message": f"invalid parameter {message}"}, status_code=422,
    )
