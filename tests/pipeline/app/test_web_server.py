"""``amur run --serve``: the dashboard beside a running pipeline, as one process."""

from __future__ import annotations

import os
import signal
import subprocess
import time

import httpx
import pytest

from tests.support.dashboard import PAGES, RESOURCES
from tests.support.deployment import AMUR
from tests.support.local_site import LocalSite
from tests.support.ports import free_port

pytestmark = pytest.mark.slow


def test_the_pipeline_serves_its_own_stories_while_it_runs_and_stops_on_sigterm(tmp_path):
    port = free_port()
    with LocalSite() as site:
        site.add("/feed.xml", (RESOURCES / "web" / "feed.xml").read_text().replace("{base}", site.base_url).encode(),
                 "application/rss+xml")
        for page, directory in PAGES.items():
            site.add(f"/news/{page}", (directory / page).read_bytes())
        config = tmp_path / "amur.yaml"
        config.write_text(
            f"database_url: 'sqlite:///{tmp_path / 'amur.sqlite'}'\n"
            f"embedded:\n  path: {tmp_path / 'log.sqlite'}\n"
            f"fetch:\n  per_host_delay_seconds: 0\n  allow_networks: [127.0.0.0/8]\n"
            f"serve:\n  port: {free_port()}\n"  # --port overrides it
            f"sinks:\n  - type: records\n  - type: alerts\n  - type: feeds\n    directory: {tmp_path / 'feeds'}\n"
        )
        (tmp_path / "sources.yaml").write_text(f"sources:\n  - name: borderland\n    url: {site.url('/feed.xml')}\n")
        environment = {name: value for name, value in os.environ.items() if not name.startswith("AMUR_")}
        process = subprocess.Popen([*AMUR, "run", "--serve", "--port", str(port), "--config", str(config)], env=environment,
                                   stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        try:
            stories, deadline = [], time.monotonic() + 120
            while len(stories) < 4 and time.monotonic() < deadline:
                assert process.poll() is None, process.stderr.read()[-3000:]
                try:
                    stories = httpx.get(f"http://127.0.0.1:{port}/api/stories", timeout=5).json()["stories"]
                except httpx.TransportError:
                    pass
                time.sleep(0.5)
            assert len(stories) == 4
            assert httpx.get(f"http://127.0.0.1:{port}/sources", timeout=5).status_code == 200
        finally:
            process.send_signal(signal.SIGTERM)
            returncode = process.wait(timeout=30)
    assert returncode == 0
    with pytest.raises(httpx.TransportError):
        httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=2)
