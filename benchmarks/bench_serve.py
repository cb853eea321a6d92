"""Requests/s and latency of ``amur serve`` over 100k stories, on SQLite and PostgreSQL.

The database is filled with synthetic stories (regions, sectors, levels, outlets and dates
drawn with a skew, as real coverage is), as the alerts sinks write them: their rows, their
tags and their first version. Then ``amur serve`` runs as its own process and one client
asks each request in turn, over HTTP, and four clients at once.

    .venv/bin/python -m benchmarks.bench_serve [--stories 100000] [--requests 200] [--database-url URL]

``--database-url`` must name an empty database (or schema): the benchmark fills it. Without
it, a SQLite file in a temporary directory is used. Prints a table; asserts nothing.
"""

from __future__ import annotations

import argparse
import os
import random
import statistics
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import sqlalchemy as sa

from pipeline.core.db import make_engine
from pipeline.core.messages import SECTORS, Alert, Outlet
from pipeline.core.migrations import upgrade_database
from sinks.alerts import AlertsSink, alert_tags, alert_versions, alerts, story_tags

RUSSIAN = ["RU-PRI", "RU-KHA", "RU-AMU", "RU-ZAB", "RU-IRK", "RU-BU", "RU-YEV", "RU-SAK", "RU-NVS", "RU-KYA",
           "RU-TA", "RU-MOW", "RU-SPE", "RU-SVE", "RU-YAR", "RU-KGD", "RU-ALT", "RU-OMS", "RU-TOM", "RU-SA"]
CHINESE = ["CN-HL", "CN-JL", "CN-LN", "CN-NM", "CN-XJ", "CN-BJ", "CN-SH", "CN-GD", "CN-ZJ", "CN-JS",
           "CN-SD", "CN-SC", "CN-HB", "CN-FJ", "CN-TJ"]
SOURCES = [f"outlet-{number:02d}" for number in range(30)]
LEVELS = ["national", "interregional", "municipal", "corporate"]
CHUNK = 5_000
REQUESTS = {
    "api, region + sector": "/api/stories?region=RU-PRI&sector=energy",
    "api, pair + min score": "/api/stories?pair=RU-AMU:CN-HL&min_score=0.7",
    "api, rare region": "/api/stories?region=RU-KGD",
    "api, unfiltered": "/api/stories",
    "dashboard, region + sector": "/?region=RU-PRI&sector=energy",
    "dashboard, unfiltered": "/",
    "map, one year": "/map?since={year_ago}",
}


def skewed(rng: random.Random, items: list[str]) -> str:
    """Item k is drawn about 1/(k+1) as often as the first, as coverage is."""
    return items[min(int(rng.paretovariate(1.0)) - 1, len(items) - 1)]


def synthetic_story(rng: random.Random, number: int, now: datetime) -> Alert:
    moment = now - timedelta(minutes=rng.randrange(0, 2 * 365 * 24 * 60))
    russian, chinese = skewed(rng, RUSSIAN), skewed(rng, CHINESE)
    sources = rng.sample(SOURCES, rng.choice((1, 1, 1, 2, 3)))
    url = f"https://bench.invalid/story/{number}"
    return Alert(
        id=f"{number:032x}", article_id=f"{number:032x}", url=url, source=sources[0],
        title=f"Story {number}: {russian} and {chinese} sign a {rng.choice(SECTORS)} agreement",
        summary="A synthetic story for the serve benchmark. " * 4,
        language=rng.choice(("en", "en", "ru", "zh")), score=round(rng.uniform(0.5, 1.0), 3),
        level=rng.choice(LEVELS), sectors=rng.sample(SECTORS, rng.choice((1, 2, 3))),
        russian_parties=[russian], chinese_parties=[chinese], regions=[russian, chinese],
        evidence=["The two sides signed an agreement."],
        outlets=[Outlet(article_id=f"{number:031x}{index}", source=source, url=f"{url}/{index}", title="t")
                 for index, source in enumerate(sources)],
        published_at=moment, fetched_at=moment, alerted_at=moment, updated_at=moment,
    )


def fill(engine: sa.Engine, count: int) -> None:
    """``count`` stories as the alerts sinks store them: rows, tags and first versions."""
    rng = random.Random(7)
    now = datetime.now(UTC)
    sink = AlertsSink(engine)
    for start in range(0, count, CHUNK):
        batch = [synthetic_story(rng, number, now) for number in range(start, min(count, start + CHUNK))]
        rows = [sink.row(story) for story in batch]
        tags = [
            {"story_id": story.id, "kind": kind, "value": value, "story_at": row["story_at"]}
            for story, row in zip(batch, rows, strict=True) for kind, values in story_tags(story).items() for value in values
        ]
        versions = [{"story_id": story.id, "version": 1, "alert": story.model_dump(mode="json"),
                     "written_at": story.alerted_at} for story in batch]
        with engine.begin() as connection:
            connection.execute(alerts.insert(), rows)
            connection.execute(alert_tags.insert(), tags)
            connection.execute(alert_versions.insert(), versions)
    with engine.begin() as connection:
        connection.execute(sa.text("ANALYZE"))


def serve(config: Path, port: int) -> subprocess.Popen:
    environment = {name: value for name, value in os.environ.items() if not name.startswith("AMUR_")}
    process = subprocess.Popen(
        [sys.executable, "-c", "from pipeline.app.cli import app; app()", "serve", "--config", str(config),
         "--port", str(port)], env=environment, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=2).status_code == 200:
                return process
        except httpx.TransportError:
            time.sleep(0.2)
    process.kill()
    raise SystemExit("amur serve did not start")


def measure(base: str, path: str, requests: int, clients: int) -> tuple[float, float, float]:
    """(requests/s, p50 ms, p99 ms) of ``requests`` GETs of ``path`` by ``clients`` at once."""

    def one(client: httpx.Client) -> float:
        started = time.perf_counter()
        response = client.get(path)
        response.raise_for_status()
        return time.perf_counter() - started

    with httpx.Client(base_url=base, timeout=30) as warm:
        for _ in range(5):
            one(warm)
    pools = [httpx.Client(base_url=base, timeout=30) for _ in range(clients)]
    started = time.perf_counter()
    with ThreadPoolExecutor(clients) as executor:
        latencies = list(executor.map(lambda index: one(pools[index % clients]), range(requests)))
    elapsed = time.perf_counter() - started
    for pool in pools:
        pool.close()
    latencies.sort()
    p99 = latencies[min(len(latencies) - 1, int(len(latencies) * 0.99))]
    return requests / elapsed, statistics.median(latencies) * 1000, p99 * 1000


def run(database_url: str, label: str, stories: int, requests: int, root: Path) -> None:
    engine = make_engine(database_url)
    with engine.connect() as connection:
        if sa.inspect(connection).has_table("alerts"):
            if connection.execute(sa.select(sa.func.count()).select_from(alerts)).scalar_one():
                raise SystemExit(f"{label}: the database already has stories; give an empty one")
    upgrade_database(engine)
    started = time.perf_counter()
    fill(engine, stories)
    print(f"{label}: {stories} stories filled in {time.perf_counter() - started:.0f} s")
    engine.dispose()
    config = root / f"{label}.yaml"
    config.write_text(f"database_url: '{database_url}'\n")
    (root / "sources.yaml").write_text("sources: []\n")
    port = 18_000 + random.randrange(1_000)
    process = serve(config, port)
    year_ago = (datetime.now(UTC) - timedelta(days=365)).date().isoformat()
    try:
        print(f"{'request':30} {'1 client: req/s':>16} {'p50 ms':>7} {'p99 ms':>7} {'4 clients: req/s':>17} {'p99 ms':>7}")
        for name, path in REQUESTS.items():
            count = requests if not name.startswith("map") else max(20, requests // 10)
            single = measure(f"http://127.0.0.1:{port}", path.format(year_ago=year_ago), count, 1)
            parallel = measure(f"http://127.0.0.1:{port}", path.format(year_ago=year_ago), count, 4)
            print(f"{name:30} {single[0]:16.0f} {single[1]:7.1f} {single[2]:7.1f} {parallel[0]:17.0f} {parallel[2]:7.1f}")
    finally:
        process.terminate()
        process.wait(timeout=10)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--stories", type=int, default=100_000)
    parser.add_argument("--requests", type=int, default=200)
    parser.add_argument("--database-url", action="append", default=[],
                        help="an empty database to fill (repeatable); default: a SQLite file")
    arguments = parser.parse_args()
    with tempfile.TemporaryDirectory() as directory:
        root = Path(directory)
        urls = arguments.database_url or [f"sqlite:///{root / 'bench.sqlite'}"]
        for url in urls:
            run(url, make_engine(url).dialect.name, arguments.stories, arguments.requests, root)


if __name__ == "__main__":
    main()
