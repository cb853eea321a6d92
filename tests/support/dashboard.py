"""A dashboard over a real pipeline run, and a headless Chromium to look at it.

:class:`ServedDeployment` serves the pages of ``tests/resources/web`` (and two of
``tests/resources/e2e``) from a :class:`~tests.support.local_site.LocalSite`, runs
``amur run --once`` over them on the embedded transport, then starts ``amur serve`` on a
free loopback port — all as separate processes, as an operator would. :func:`chrome` starts
Debian's Chromium through chromedriver with the flags a machine without internet needs.

Run as a module, it writes screenshots of the dashboard, a story page, the map, the timeline and a region page::

    .venv/bin/python -m tests.support.dashboard docs/images
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

from tests.support.deployment import AMUR
from tests.support.local_site import LocalSite
from tests.support.ports import free_port

RESOURCES = Path(__file__).resolve().parents[1] / "resources"
PAGES = {
    "amur-heilongjiang-freight.html": RESOURCES / "e2e",
    "primorye-jilin-tourism.html": RESOURCES / "e2e",
    "salmon-prices.html": RESOURCES / "e2e",
    "khabarovsk-harbin-campus.html": RESOURCES / "web",
    "amur-heilongjiang-power.html": RESOURCES / "web",
}
CHROMIUM = os.environ.get("AMUR_CHROMIUM", "/usr/bin/chromium")
CHROMEDRIVER = os.environ.get("AMUR_CHROMEDRIVER", "/usr/bin/chromedriver")


class ServedDeployment:
    """A context manager: the pipeline has run once over the local site, and ``url`` serves it."""

    def __init__(self, root: Path):
        self.root = root
        self.config = root / "amur.yaml"
        self.database_url = f"sqlite:///{root / 'amur.sqlite'}"
        self.site = LocalSite()
        self.server: subprocess.Popen | None = None
        self.url = ""

    def __enter__(self) -> ServedDeployment:
        self.site.start()
        base = self.site.base_url
        self.site.add("/feed.xml", (RESOURCES / "web" / "feed.xml").read_text().replace("{base}", base).encode(),
                      "application/rss+xml")
        for page, directory in PAGES.items():
            self.site.add(f"/news/{page}", (directory / page).read_bytes())
        self.config.write_text(
            f"database_url: '{self.database_url}'\n"
            f"embedded:\n  path: {self.root / 'log.sqlite'}\n"
            f"fetch:\n  per_host_delay_seconds: 0\n  timeout_seconds: 5\n  allow_networks: [127.0.0.0/8]\n"
            f"sinks:\n  - type: records\n  - type: alerts\n"
            f"  - type: feeds\n    directory: {self.root / 'feeds'}\n"
        )
        (self.root / "sources.yaml").write_text(
            f"sources:\n  - name: borderland\n    url: {base}/feed.xml\n    poll_interval_seconds: 60\n"
        )
        environment = {name: value for name, value in os.environ.items() if not name.startswith("AMUR_")}
        run = subprocess.run([*AMUR, "run", "--once", "--config", str(self.config)],
                             env=environment, capture_output=True, text=True, timeout=300)
        if run.returncode != 0:
            raise RuntimeError(f"amur run --once failed:\n{run.stderr[-3000:]}")
        port = free_port()
        self.server = subprocess.Popen(
            [*AMUR, "serve", "--config", str(self.config), "--port", str(port)],
            env=environment, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
        )
        self.url = f"http://127.0.0.1:{port}"
        self._wait_until_healthy()
        return self

    def _wait_until_healthy(self) -> None:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if self.server.poll() is not None:
                raise RuntimeError(f"amur serve exited:\n{self.server.stderr.read()[-3000:]}")
            try:
                if httpx.get(f"{self.url}/healthz", timeout=2).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            time.sleep(0.2)
        raise RuntimeError("amur serve did not answer /healthz within 60 s")

    def __exit__(self, *_exc) -> None:
        if self.server is not None:
            self.server.terminate()
            try:
                self.server.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.server.kill()
        self.site.stop()


def chrome(width: int = 1280, height: int = 900):
    """Headless Chromium driven through chromedriver (selenium); quit it when done."""
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in (
        "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--disable-quic",
        "--no-first-run", "--disable-background-networking", "--disable-component-update", "--disable-sync",
        f"--window-size={width},{height}", f"--user-data-dir={tempfile.mkdtemp(prefix='amur-chromium-')}",
    ):
        options.add_argument(flag)
    return webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)


def screenshots(directory: Path) -> list[Path]:
    """PNGs of the dashboard, the first story's page, the map, the timeline and a region's page,
    written to ``directory``."""
    from selenium.webdriver.common.by import By

    directory.mkdir(parents=True, exist_ok=True)
    written = []
    with tempfile.TemporaryDirectory() as root, ServedDeployment(Path(root)) as deployment:
        driver = chrome()
        try:
            driver.get(f"{deployment.url}/")
            story_link = driver.find_element(By.CSS_SELECTOR, "li.story a.title").get_attribute("href")
            pages = (
                ("dashboard", f"{deployment.url}/"), ("story", story_link), ("map", f"{deployment.url}/map"),
                ("timeline", f"{deployment.url}/timeline?region=RU-AMU"), ("region", f"{deployment.url}/regions/CN-HL"),
            )
            for name, url in pages:
                driver.get(url)
                path = directory / f"{name}.png"
                driver.save_screenshot(str(path))
                written.append(path)
        finally:
            driver.quit()
    return written


if __name__ == "__main__":
    for written_path in screenshots(Path(sys.argv[1] if len(sys.argv) > 1 else "docs/images")):
        print(written_path)
