"""Polling 1,000 feeds, 90% of which answer 304, and the seen store at 10k to 5M URLs.

Feeds: a web server in its own process serves ``--feeds`` RSS feeds of 20 items each on
127.0.0.1, with an ETag per feed version. The connectors role's own runner polls every feed
once to learn its items (the warm-up, not counted), then ``--rounds`` rounds in which a tenth
of the feeds has changed (a new version with one new item, whose small page is fetched) and
the rest answer 304, after a round 0 in which all of them answer 304. Printed per round: feeds/min, CPU seconds of the polling process per
1,000 polls, and how many feed bodies were parsed (there must be none on the 304 path).

Seen store: the table filled with N URLs (``--sizes``), then the time of one listing's
lookup (50 ids, half of them known) and of marking them as still listed, as each poll does,
and of one health read (every source's item tallies and silence, as ``/metrics`` and
``amur sources`` read them). SQLite always, PostgreSQL beside it with ``--postgres-url``.

    .venv/bin/python -m benchmarks.bench_connectors [--feeds 1000] [--rounds 3]
        [--sizes 10000,100000,1000000,5000000] [--postgres-url URL] [--seen-store-only]

``--postgres-url`` must name an empty database: the benchmark fills it. Prints; asserts nothing.
"""

from __future__ import annotations

import argparse
import logging
import multiprocessing
import random
import statistics
import tempfile
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import sqlalchemy as sa

import connectors.feed
from connectors.feed import FeedConnector
from connectors.fetch import Fetcher
from pipeline.core.db import accumulate, make_engine
from pipeline.core.messages import article_id, utc_now
from pipeline.core.polling import ConnectorRunner
from pipeline.core.settings import ConnectorSettings, FetchSettings, SourceConfig
from pipeline.core.state import EMITTED, StateStore, seen_articles, source_item_counts
from pipeline.core.topology import Topics
from pipeline.core.transport.embedded import EmbeddedTransport

ITEMS_PER_FEED = 20
CHANGED_SHARE = 0.1
LISTING = 50
SOURCES = 50  # the seen URLs are spread over this many sources
PAGE = (
    "<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'><title>{title}</title></head><body><article>"
    "<h1>{title}</h1><p>The river port opened a second grain terminal this week, doubling the tonnage it can load "
    "onto barges bound downstream before the ice sets in, the harbour office said.</p><p>Loading starts on Monday; "
    "the first convoy of six barges is booked for wheat and rapeseed from farms along the upper valley.</p>"
    "<p>The terminal cost 40 million and employs ninety people in three shifts.</p></article></body></html>"
)


def serve_feeds(port_queue, versions) -> None:
    """The feed server (its own process, so its CPU is not the poller's): ``versions[n]`` is feed n's version."""

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_GET(self) -> None:  # noqa: N802 - http.server's name
            parts = self.path.strip("/").split("/")
            if parts[0] == "feed":
                number = int(parts[1].removesuffix(".xml"))
                version = versions[number]
                etag = f'"{number}-{version}"'
                if self.headers.get("If-None-Match") == etag:
                    self._send(304, b"", etag=etag)
                    return
                self._send(200, feed_body(self.server.base, number, version), "application/rss+xml", etag)
            else:
                self._send(200, PAGE.format(title=self.path).encode(), "text/html; charset=utf-8")

        def _send(self, status: int, body: bytes, content_type: str = "", etag: str | None = None) -> None:
            self.send_response(status)
            if content_type:
                self.send_header("Content-Type", content_type)
            if etag:
                self.send_header("ETag", etag)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *_args) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    server.base = f"http://127.0.0.1:{server.server_address[1]}"
    port_queue.put(server.server_address[1])
    server.serve_forever()


def feed_body(base: str, number: int, version: int) -> bytes:
    """Feed ``number`` at ``version``: its newest 20 items; each version adds one."""
    items = "".join(
        f"<item><title>Story {number}-{item}</title><link>{base}/page/{number}/{item}</link>"
        f"<description>Lead of story {item}.</description></item>"
        for item in range(version + ITEMS_PER_FEED, version, -1)
    )
    return f"<?xml version='1.0'?><rss version='2.0'><channel><title>Feed {number}</title>{items}</channel></rss>".encode()


def bench_feeds(feed_count: int, rounds: int) -> None:
    versions = multiprocessing.Array("i", feed_count, lock=False)
    ports = multiprocessing.Queue()
    server = multiprocessing.Process(target=serve_feeds, args=(ports, versions), daemon=True)
    server.start()
    base = f"http://127.0.0.1:{ports.get(timeout=30)}"
    parses = count_parses()
    with tempfile.TemporaryDirectory() as scratch:
        state = StateStore(make_engine(f"sqlite:///{Path(scratch) / 'state.sqlite'}"))
        state.setup()
        log = EmbeddedTransport(str(Path(scratch) / "log.sqlite"))
        topics = Topics("bench.")
        log.ensure_topics(topics.all())
        fetcher = Fetcher(FetchSettings(per_host_delay_seconds=0, max_connections_per_host=ConnectorSettings().poll_workers, allow_networks=["127.0.0.0/8"]))
        sources = [SourceConfig(name=f"feed-{number}", url=f"{base}/feed/{number}.xml") for number in range(feed_count)]
        runner = ConnectorRunner(lambda source: FeedConnector(source, fetcher, state), sources, log.producer(), topics, state=state)
        # Every feed's current items count as seen, as after a long run; the first round then
        # only reads each feed once and stores its ETag. Only the rounds after it are measured.
        for number in range(feed_count):
            links = [f"{base}/page/{number}/{item}" for item in range(1, ITEMS_PER_FEED + 1)]
            state.mark_emitted(f"feed-{number}", [(article_id(link), link) for link in links])
        warm_up = poll_round(runner, parses)
        print(f"feeds: {feed_count}, warm-up round (every body read, nothing new): {warm_up['wall']:.1f} s")
        print(f"{'round':>5} {'feeds/min':>10} {'CPU s / 1000 polls':>19} {'304s':>6} {'bodies parsed':>14} {'new articles':>13}")
        rng = random.Random(7)
        for number in range(rounds + 1):  # round 0: every feed answers 304, the bare cost of a poll
            changed = rng.sample(range(feed_count), int(feed_count * CHANGED_SHARE)) if number else []
            for feed in changed:
                versions[feed] += 1
            figures = poll_round(runner, parses)
            print(
                f"{number:>5} {feed_count / figures['wall'] * 60:>10.0f} {figures['cpu'] / feed_count * 1000:>19.2f} "
                f"{feed_count - len(changed):>6} {figures['parsed']:>14} {figures['emitted']:>13}"
            )
        runner.stop()
        fetcher.close()
    server.terminate()


def count_parses() -> list[int]:
    """Counts feed bodies handed to feedparser: a 304 must never get there."""
    calls = [0]
    parse = connectors.feed._parse

    def counted(*args, **kwargs):
        calls[0] += 1
        return parse(*args, **kwargs)

    connectors.feed._parse = counted
    return calls


def poll_round(runner: ConnectorRunner, parses: list[int]) -> dict[str, float]:
    parsed_before = parses[0]
    started, cpu_started = time.perf_counter(), time.process_time()
    with ThreadPoolExecutor(ConnectorSettings().poll_workers) as pool:  # the runner's own pool size
        summaries = list(pool.map(lambda name: runner.poll(name)[0], runner.names))
    return {
        "wall": time.perf_counter() - started, "cpu": time.process_time() - cpu_started,
        "parsed": parses[0] - parsed_before, "emitted": sum(summary.emitted for summary in summaries),
    }


def bench_seen_store(sizes: list[int], database_urls: dict[str, str]) -> None:
    """Each database filled to each size in turn, its figures printed side by side."""
    stores = {}
    for name, url in database_urls.items():
        store = StateStore(make_engine(url), retention=timedelta(days=90))
        store.setup()
        stores[name] = store
    print(f"\nseen store: one listing of {LISTING} ids, half of them known; health = item tallies and silence of {SOURCES} sources")
    columns = ("unseen() ms p50", "p99", "mark_listed() p50", "health ms p50")
    print(f"{'URLs stored':>12} " + " ".join(f"{name + ' ' + column:>{len(name) + len(column) + 1}}" for name in stores for column in columns))
    stored = dict.fromkeys(stores, 0)
    for size in sizes:
        figures = []
        for name, store in stores.items():
            stored[name] = fill(store.engine, stored[name], size)
            figures += [f"{value:>{len(name) + len(column) + 1}.2f}" for value, column in zip(measure(store, size), columns, strict=True)]
        print(f"{size:>12,} " + " ".join(figures), flush=True)
    for store in stores.values():
        store.engine.dispose()


def measure(store: StateStore, size: int) -> tuple[float, float, float, float]:
    """unseen() p50 and p99, mark_listed() p50 and one health read p50, in ms."""
    rng = random.Random(11)
    lookups, marks, health = [], [], []
    for _ in range(200):
        known = [article_id(f"https://site.example/{rng.randrange(size)}") for _ in range(LISTING // 2)]
        fresh = [article_id(f"https://elsewhere.example/{rng.random()}") for _ in range(LISTING // 2)]
        started = time.perf_counter()
        unseen = store.unseen("source-1", known + fresh)
        lookups.append(time.perf_counter() - started)
        started = time.perf_counter()
        store.mark_listed(known)
        marks.append(time.perf_counter() - started)
        assert unseen == set(fresh)
    for _ in range(20):
        started = time.perf_counter()
        store.item_tallies()
        store.silences({f"source-{number}": 600 for number in range(SOURCES)})
        health.append(time.perf_counter() - started)
    return ms(lookups, 50), ms(lookups, 99), ms(marks, 50), ms(health, 50)


def fill(engine: sa.Engine, stored: int, size: int) -> int:
    """Add URLs ``stored … size-1`` to the seen store in bulk, and count them as the store
    would have; then refresh PostgreSQL's statistics, as autovacuum does on a running server
    (Amur never analyses SQLite, so neither does the benchmark)."""
    now = utc_now()
    with engine.begin() as connection:
        for start in range(stored, size, 10_000):
            connection.execute(seen_articles.insert(), [
                {"source": f"source-{number % SOURCES}", "article_id": article_id(f"https://site.example/{number}"),
                 "url": f"https://site.example/{number}", "status": EMITTED, "attempts": 0,
                 "first_seen_at": now - timedelta(minutes=size - number), "updated_at": now}
                for number in range(start, min(start + 10_000, size))
            ])
        added = Counter(f"source-{number % SOURCES}" for number in range(stored, size))
        connection.execute(accumulate(engine, source_item_counts, key=["source", "tally"], total="articles", latest="latest"), [
            {"source": source, "tally": EMITTED, "articles": count, "latest": now} for source, count in sorted(added.items())
        ])
        if engine.dialect.name == "postgresql":
            connection.execute(sa.text("ANALYZE"))
    return size


def ms(samples: list[float], percentile: int) -> float:
    ordered = sorted(samples)
    if percentile == 50:
        return statistics.median(ordered) * 1000
    return ordered[min(len(ordered) - 1, int(len(ordered) * percentile / 100))] * 1000


def main() -> None:
    logging.basicConfig(level=logging.ERROR)  # the figures, not each poll's log line
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--feeds", type=int, default=1_000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--sizes", default="10000,100000,1000000,5000000")
    parser.add_argument("--postgres-url", help="an empty PostgreSQL database, measured beside SQLite")
    parser.add_argument("--seen-store-only", action="store_true", help="skip the feeds")
    args = parser.parse_args()
    if not args.seen_store_only:
        bench_feeds(args.feeds, args.rounds)
    with tempfile.TemporaryDirectory() as scratch:
        databases = {"sqlite": f"sqlite:///{Path(scratch) / 'seen.sqlite'}"}
        if args.postgres_url:
            databases["postgresql"] = args.postgres_url
        bench_seen_store([int(size) for size in args.sizes.split(",")], databases)


if __name__ == "__main__":
    main()
