"""Running the web application with uvicorn: alone (``amur serve``) or beside the pipeline
(``amur run --serve``), in a thread of its own.

The server binds to 127.0.0.1 unless told otherwise. Any other address makes the dashboard
reachable from other machines, so it then refuses to start without an access token (the
environment variable ``serve.access_token_env`` names, ``AMUR_SERVE_TOKEN`` by default).
"""

from __future__ import annotations

import ipaddress
import logging
import os
import threading
import time
from pathlib import Path

import uvicorn

from pipeline.app.web.app import create_app
from pipeline.core.errors import AmurError, ConfigError, ConfigProblem
from pipeline.core.settings import AmurSettings

__all__ = ["BackgroundServer", "make_server"]

log = logging.getLogger(__name__)
STARTUP_SECONDS = 30


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False  # a host name: it may resolve to anything


def make_server(
    settings: AmurSettings, config_path: Path, *, host: str | None = None, port: int | None = None,
    environ: dict[str, str] | None = None,
) -> uvicorn.Server:
    """A uvicorn server of the application on ``host:port`` (``serve.host``/``serve.port`` by default).

    :raises ConfigError: a non-loopback address without an access token, or a database the
        server cannot read.
    """
    host = host or settings.serve.host
    port = settings.serve.port if port is None else port
    variable = settings.serve.access_token_env
    token = (os.environ if environ is None else environ).get(variable) or None
    if token is None and not is_loopback(host):
        raise ConfigError([ConfigProblem(
            str(config_path), "serve.host", f"{host} is reachable from other machines and no access token is set",
            f"set {variable} to a long random token (clients send it as a bearer token or basic-auth password), "
            "or serve on 127.0.0.1",
        )])
    if token is not None and len(token) < MIN_TOKEN_CHARS:
        raise ConfigError([ConfigProblem(
            str(config_path), "serve.access_token_env", f"{variable} holds a token of {len(token)} characters, which can be guessed",
            f"set {variable} to at least {MIN_TOKEN_CHARS} random characters, e.g. the output of: openssl rand -hex 32",
        )])
    application = create_app(settings, config_path, access_token=token, bind_host=host)
    # The application logs through Amur's logging; uvicorn's access log would repeat every request.
    return uvicorn.Server(uvicorn.Config(application, host=host, port=port, log_config=None, access_log=False))


MIN_TOKEN_CHARS = 32


class BackgroundServer:
    """A uvicorn server in a daemon thread, for ``amur run --serve`` and tests."""

    def __init__(self, server: uvicorn.Server):
        self.server = server
        self._thread = threading.Thread(target=server.run, name="amur-serve", daemon=True)

    def start(self) -> BackgroundServer:
        self._thread.start()
        deadline = time.monotonic() + STARTUP_SECONDS
        while not self.server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                config = self.server.config
                raise AmurError(f"the web server did not start on {config.host}:{config.port}")
            time.sleep(0.05)
        log.info("serving the dashboard on http://%s:%d/", self.server.config.host, self.port)
        return self

    @property
    def port(self) -> int:
        """The bound port (the configured one, or the one the system chose for port 0)."""
        return self.server.servers[0].sockets[0].getsockname()[1]

    def stop(self) -> None:
        self.server.should_exit = True
        self._thread.join(timeout=10)
