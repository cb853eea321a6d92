"""Time from ``amur run`` to its first alert, over real articles served from one local host.

The development set's articles (read at run time from ``--devset``, never copied) are
served as pages on 127.0.0.1 with one RSS feed listing them; a fresh deployment (embedded
transport, SQLite, the shipped politeness of one request per second per host) is started
with ``amur run`` in a new process, and the time until the first alert is in the database
is printed. The first run is cold (a new database, nothing of Amur's cached on disk), the
next ones warm (what Amur caches on disk kept, the database new). Prints; asserts nothing.

    .venv/bin/python -m benchmarks.bench_start [--devset ../shared/devset/devset.jsonl] [--articles 95] [--runs 2]
"""

from __future__ import annotations

import argparse
import html
import json
import os
import signal
import subprocess
import tempfile
import time
from datetime import UTC, datetime
from email.utils import format_datetime
from pathlib import Path

import sqlalchemy as sa

from tests.support.deployment import AMUR
from tests.support.local_site import LocalSite

CONFIG = Path(__file__).resolve().parents[1] / "config"


def page(record: dict) -> bytes:
    paragraphs = "".join(f"<p>{html.escape(part.strip())}</p>" for part in record["text"].split("\n") if part.strip())
    return (
        f'<!doctype html><html lang="{record["lang"]}"><head><meta charset="utf-8"><title>{html.escape(record["title"])}</title>'
        f'<meta name="date" content="{record["date"]}"></head><body><article><h1>{html.escape(record["title"])}</h1>'
        f"{paragraphs}</article></body></html>"
    ).encode("utf-8")


def feed(records: list[dict], base: str) -> bytes:
    items = "".join(
        f"<item><title>{html.escape(record['title'])}</title><link>{base}/news/{record['id']}.html</link>"
        f"<guid>{base}/news/{record['id']}.html</guid>"
        f"<pubDate>{published(record['date'])}</pubDate></item>"
        for record in records
    )
    return f'<?xml version="1.0" encoding="utf-8"?><rss version="2.0"><channel><title>Bench</title><link>{base}/</link>{items}</channel></rss>'.encode()


def published(date: str | None) -> str:
    """An RFC 822 date of a set's date, which may name only the month or the year (the middle
    then), or nothing (the day the benchmark runs)."""
    if not date:
        return format_datetime(datetime.now(UTC))
    parts = [int(part) for part in date[:10].split("-")]
    year, month, day = parts[0], parts[1] if len(parts) > 1 else 6, parts[2] if len(parts) > 2 else 15
    return format_datetime(datetime(year, month, day, tzinfo=UTC))


def first_alert_seconds(root: Path, timeout: float = 180) -> float:
    """Start ``amur run`` on the deployment in ``root``; seconds until an alert is stored."""
    database = sa.create_engine(f"sqlite:///{root / 'amur.sqlite'}")
    environment = {key: value for key, value in os.environ.items() if not key.startswith("AMUR_")}
    started = time.monotonic()
    process = subprocess.Popen([*AMUR, "run", "--config", str(root / "amur.yaml")], env=environment,
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        while time.monotonic() - started < timeout:
            try:
                with database.connect() as connection:
                    if connection.execute(sa.text("SELECT COUNT(*) FROM alerts")).scalar_one():
                        return time.monotonic() - started
            except sa.exc.OperationalError:
                pass  # no table yet: the sinks have not set up
            time.sleep(0.05)
        raise SystemExit(f"no alert within {timeout:.0f} s")
    finally:
        process.send_signal(signal.SIGTERM)
        process.wait(timeout=60)
        database.dispose()


def deployment(root: Path, feed_url: str, cache: Path) -> None:
    (root / "amur.yaml").write_text(
        "transport: embedded\n"
        f"database_url: 'sqlite:///{root / 'amur.sqlite'}'\n"
        f"embedded:\n  path: {root / 'log.sqlite'}\n"
        f"model:\n  gazetteer_dir: {CONFIG / 'gazetteer'}\n  classifier_config: {CONFIG / 'classifier.yaml'}\n"
        f"  languages_dir: {CONFIG / 'languages'}\n  cache_dir: {cache}\n"
        "fetch:\n  allow_networks: [127.0.0.0/8]\n"
        f"sinks:\n  - type: records\n  - type: alerts\n"
    )
    (root / "sources.yaml").write_text(f"sources:\n  - name: bench\n    url: {feed_url}\n    poll_interval_seconds: 600\n")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--devset", default="../shared/devset/devset.jsonl")
    parser.add_argument("--articles", type=int, default=95)
    parser.add_argument("--runs", type=int, default=2)
    options = parser.parse_args()
    records = [json.loads(line) for line in Path(options.devset).read_text(encoding="utf-8").splitlines() if line.strip()]
    records = records[: options.articles]
    with LocalSite() as site:
        for record in records:
            site.add(f"/news/{record['id']}.html", page(record), "text/html; charset=utf-8")
        site.add("/feed.xml", feed(records, site.base_url), "application/rss+xml")
        print(f"{len(records)} articles on one host, one request a second; time from amur run to the first alert:")
        cache = Path(tempfile.mkdtemp(prefix="amur-bench-cache-"))  # empty for the cold run, kept for the warm ones
        for run in range(options.runs):
            with tempfile.TemporaryDirectory() as scratch:
                root = Path(scratch)
                deployment(root, site.url("/feed.xml"), cache)
                print(f"  {'cold' if run == 0 else 'warm'}: {first_alert_seconds(root):5.1f} s", flush=True)


if __name__ == "__main__":
    main()
