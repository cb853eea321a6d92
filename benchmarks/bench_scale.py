"""Scale-out of the whole pipeline: 1 and 2 processor processes, a burst and a steady rate, small and large state.

For each size of state (URLs in the seen store and open stories in the story index, filled
in PostgreSQL with ``COPY``) and each number of processor processes, the benchmark runs every
role as processes of its own (``amur run ROLE``, one consumer group per role) over the real
Kafka broker and PostgreSQL, on a general stream served from 127.0.0.1 with 5% Russia–China
stories among it, each story its own:

* **burst** — every article of the stream is in the burst feeds when they are first polled;
* **steady** — then new articles appear in the steady feeds at half the burst's end-to-end
  rate; those feeds are polled every 30 s (the least interval a source may have), one after
  another, the way a deployment's schedule spreads its sources out.

First, the processing stage alone with 1 and 2 processor processes: once every processor
holds its partitions, a backlog (encoded beforehand) is produced straight onto the articles
topic and read with no other role running, and it is timed from the moment the backlog is
all there, so the stage has the machine to itself and its scaling shows. (In the whole pipeline the four roles share two
cores, and the stage runs as fast as the connectors feed it.) The counts take turns for
``--stage-rounds`` rounds, and each round's ratio is against that round's own first count: on
a shared machine one pair can land in a noisy minute, and the median of the rounds says what
a single pair cannot.

Then, per size, the connectors' ``extract_processes`` (``--extract-processes``, "extr") and
processor count: articles/s end to end (first article fetched → last record written) and as
classified inside the pipeline (first → last ``classified_at``); CPU-s per article and peak
RSS of each role, its child processes included (the connectors' extractors; from ``/proc``,
over the burst; the RSS is the sum of each process's peak); and latency
percentiles to the moment a story's article shows up in the default subscription's JSON Feed
file (``feeds/all.json``, watched every 50 ms): from the article being fetched and emitted,
and, at the steady rate, from its appearing in its source's feed, which includes the wait
for the next poll. For the steady stories it also prints where that time goes, p50/p99 of
each step: fetched → classified (the page extracted and emitted, Kafka, the processors), → story made
(the stories stage), → stored (the sinks' write), → seen in the feed file (the render); and
those steps for the three slowest steady stories. ``--logs DIR`` keeps each role's log.

Runs are side by side in one process, so ratios between them mean something on a shared
machine; absolute figures do not. Asserts nothing (benchmarks are never tests)::

    scripts/kafka-dev start && scripts/postgres-dev start
    .venv/bin/python -m benchmarks.bench_scale --database-url "$(scripts/postgres-dev url)"
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import random
import re
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

import kafka.errors as kafka_errors
import sqlalchemy as sa
from kafka import KafkaAdminClient, TopicPartition
from kafka.admin import OffsetSpec

from benchmarks.bench_pipeline import page, percentile
from pipeline.app.roles import group_name
from pipeline.core.db import make_engine
from pipeline.core.messages import Article, article_id, encode, utc_now
from pipeline.core.settings import StorySettings, load_settings
from pipeline.core.state import StateStore, seen_articles, source_state
from pipeline.core.topology import Topics, roles
from pipeline.core.transport import make_transport
from processors.gazetteer import load_gazetteer
from processors.stories import NUM_PERM, StoryIndex, bands, signature, stories, story_bands
from sinks.alerts import alerts
from sinks.records import articles
from tests.support.corpus import synthetic_articles
from tests.support.databases import postgres_schema_url
from tests.support.deployment import AMUR
from tests.support.local_site import LocalSite
from tests.support.processes import descendants, process_table

CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
POLL_SECONDS = 30  # the least poll interval a source may have
WARMUP_SECONDS = 20  # processes start, load their models and join their groups before the first poll
FEEDS = 20
# Items a feed lists, newest first: more than a steady feed gains between two polls (1.5× the
# steady rate, which is half the burst's: 100 listed dropped items from 135 articles/s on).
FEED_ITEMS = 250
HOPS = ("→classified", "→story", "→stored", "→in file")  # the steps of a steady story, from fetched to the feed file
JOINED = "→joined, in file"  # an article's steps after →classified when it joined a story already open
VOCABULARY = ("port", "rail", "grain", "bridge", "yuan", "forum", "plant", "road", "school", "museum", "clinic", "farm")


# -- the stream -----------------------------------------------------------------------------
@dataclass
class Item:
    number: int
    title: str
    text: str
    candidate: bool
    feed: str
    url: str
    appears_at: float = float("inf")  # wall-clock seconds; an item is listed once this has passed


@dataclass
class Stream:
    """The burst's and the steady phase's articles, served from ``site`` under ``/<run>/``."""

    run: str
    site: LocalSite
    items: list[Item] = field(default_factory=list)

    def add(self, corpus, feed_prefix: str, offset: int) -> list[Item]:
        added = []
        for number, (title, text, candidate) in enumerate(own_stories(corpus, offset), start=offset):
            item = Item(number, title, text, candidate, f"{feed_prefix}{number % FEEDS}", self.site.url(self.path(number)))
            self.site.add(self.path(number), page(title, text), "text/html; charset=utf-8")
            added.append(item)
        self.items += added
        return added

    def serve_feeds(self, feeds: list[str]) -> None:
        for feed in feeds:
            self.site.add_handler(f"/{self.run}/{feed}.xml", self._feed_handler(feed))

    def path(self, number: int) -> str:
        return f"/{self.run}/a/{number}.html"

    def _feed_handler(self, feed: str):
        def handler(request) -> None:
            now = time.time()
            listed = [item for item in self.items if item.feed == feed and item.appears_at <= now]
            entries = "".join(
                f"<item><title>{item.title}</title><link>{item.url}</link>"
                f"<pubDate>{_rfc822(item.appears_at)}</pubDate></item>" for item in listed[-FEED_ITEMS:]
            )
            body = f"<?xml version='1.0'?><rss version='2.0'><channel><title>{feed}</title>{entries}</channel></rss>".encode()
            request.send_response(200)
            request.send_header("Content-Type", "application/rss+xml")
            request.send_header("Content-Length", str(len(body)))
            request.end_headers()
            request.wfile.write(body)
        return handler


def own_stories(corpus, seed: int):
    """The corpus with a paragraph of its own added to each candidate: the templates repeat, and each story must be one."""
    rng = random.Random(seed)
    for title, text, candidate in corpus:
        if candidate:
            text += "\n" + " ".join(rng.choice(VOCABULARY) + str(rng.randrange(10_000)) for _ in range(120))
        yield title, text, candidate


def _rfc822(seconds: float) -> str:
    return datetime.fromtimestamp(min(seconds, time.time()), timezone.utc).strftime("%a, %d %b %Y %H:%M:%S GMT")


# -- state of a given size -------------------------------------------------------------------
def copy_rows(engine: sa.Engine, table: sa.Table, rows) -> None:
    """Bulk-load ``rows`` (tuples in the table's column order) with PostgreSQL's COPY."""
    columns = ", ".join(column.name for column in table.columns)
    raw = engine.raw_connection()
    try:
        with raw.cursor() as cursor, cursor.copy(f"COPY {table.name} ({columns}) FROM STDIN") as copy:
            for row in rows:
                copy.write_row(row)
        raw.commit()
    finally:
        raw.close()


def fill_state(engine: sa.Engine, count: int) -> None:
    """``count`` seen URLs of older articles, and ``count`` open stories with unrelated (random) signatures."""
    now = utc_now()
    rng = random.Random(count)
    copy_rows(engine, seen_articles, (
        (f"archive-{number % 50}", f"{number:032x}", f"https://archive.invalid/{number}", "emitted", 1, None, now, now, now)
        for number in range(count)
    ))
    template = json.dumps({"id": "", "title": "An older story"})
    hashes = [[rng.getrandbits(32) for _ in range(NUM_PERM)] for _ in range(min(count, 1000))]
    minhash = signature("")

    def story_rows():
        for number in range(count):
            yield (f"{number:032x}", 1, json.dumps(hashes[number % len(hashes)]), template, now, now, "[]", now, now, None, None)

    def band_rows():
        for number in range(count):
            minhash.hashvalues[:] = hashes[number % len(hashes)]
            for band in bands(minhash):
                yield (band ^ number, f"{number:032x}")  # distinct bands: no story is another's candidate

    if count:
        copy_rows(engine, stories, story_rows())
        copy_rows(engine, story_bands, band_rows())
    # As a deployment's tables would be: vacuumed and analysed. Left to autovacuum, freshly
    # copied millions of rows are vacuumed in the middle of a run, and stall every role.
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as connection:
        connection.execute(sa.text("VACUUM (ANALYZE)"))


# -- one run ---------------------------------------------------------------------------------
@dataclass
class Role:
    name: str
    process: subprocess.Popen
    log: Path
    samples: list[tuple[float, float]] = field(default_factory=list)  # (wall clock, CPU seconds)
    peak_rss_mb: float = 0.0
    profiler: subprocess.Popen | None = None
    profile: Path | None = None

    def sample(self, processes: dict[int, list[str]]) -> None:
        """The CPU and peak RSS of the role's process with its descendants (the connectors'
        extractor processes, say), from a :func:`~tests.support.processes.process_table`."""
        if self.process.pid not in processes:
            return
        members = {self.process.pid} | descendants(self.process.pid, processes)
        # utime, stime and those of the children ended and waited for (/proc/PID/stat)
        cpu = sum(int(value) for pid in members for value in processes[pid][11:15]) / CLOCK_TICKS
        self.samples.append((time.time(), cpu))
        self.peak_rss_mb = max(self.peak_rss_mb, sum(_peak_rss_mb(pid) for pid in members))

    def settled(self, seconds: float = 1.0, busy: float = 0.05) -> bool:
        """Whether the role used under ``busy`` of a core over the last ``seconds`` it was sampled."""
        if not self.samples or self.samples[-1][0] - self.samples[0][0] < seconds:
            return False
        now = self.samples[-1][0]
        return self.cpu_between(now - seconds, now) < busy * seconds

    def cpu_between(self, start: float, end: float) -> float:
        def at(moment: float) -> float:
            before = [cpu for stamp, cpu in self.samples if stamp <= moment]
            return before[-1] if before else self.samples[0][1]
        return at(end) - at(start)


def _peak_rss_mb(pid: int) -> float:
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return 0.0
    return next((int(line.split()[1]) / 1024 for line in status.splitlines() if line.startswith("VmHWM:")), 0.0)


def start_role(role: str, config: Path, log: Path) -> Role:
    """``amur run ROLE`` as a process of its own, its output to ``log``; no AMUR_ variable of ours leaks in."""
    env = {key: value for key, value in os.environ.items() if not key.startswith("AMUR_")}
    process = subprocess.Popen([*AMUR, "run", role, "--config", str(config)], env=env, stdout=log.open("wb"), stderr=subprocess.STDOUT)
    return Role(role, process, log=log)


def start_profiler(role: Role, profile: Path) -> None:
    """py-spy sampling ``role``'s process and its children (the connectors' extractors), every
    thread, 100 times a second, busy ones only, into ``profile`` as collapsed stacks, until
    :func:`stop_profiler`."""
    role.profile = profile
    role.profiler = subprocess.Popen(
        [str(Path(sys.executable).with_name("py-spy")), "record", "--pid", str(role.process.pid), "--subprocesses",
         "--rate", "100", "--format", "raw", "--output", str(profile), "--nonblocking"],
        stdout=subprocess.DEVNULL, stderr=role.log.with_suffix(".py-spy.log").open("wb"),
    )


def stop_profiler(role: Role) -> None:
    if role.profiler is not None and role.profiler.poll() is None:
        role.profiler.send_signal(signal.SIGINT)  # py-spy writes its samples and exits
        role.profiler.wait(timeout=60)


_LINE = re.compile(r":\d+\)$")


def profile_summary(role: str, path: Path, top: int = 12) -> list[str]:
    """The functions ``role`` spent its busy samples in, by share: inclusive (anywhere on the
    stack) and self (on top of it), from py-spy's collapsed stacks."""
    inclusive: Counter = Counter()
    own: Counter = Counter()
    total = 0
    for line in path.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        frames = [_LINE.sub(")", frame) for frame in stack.split(";")]  # one entry per function, not per line
        if not count.isdigit():
            continue
        samples = int(count)
        total += samples
        for frame in set(frames):
            inclusive[frame] += samples
        own[frames[-1]] += samples
    if not total:
        return [f"  {role}: no samples"]
    lines = [f"  {role}: {total} busy samples; self% incl% function (file)"]
    lines += [f"    {own[frame] / total:5.1%} {inclusive[frame] / total:5.1%}  {frame[:150]}" for frame, _ in own.most_common(top)]
    return lines


class Sampler(threading.Thread):
    """Samples the CPU time and peak RSS of ``roles`` four times a second, from start to ``stop()``."""

    def __init__(self, roles: list[Role]):
        super().__init__(daemon=True)
        self.roles = roles
        self.stopped = threading.Event()

    def run(self) -> None:
        while True:
            processes = process_table()
            for role in self.roles:
                role.sample(processes)
            if self.stopped.wait(0.25):
                return

    def stop(self) -> None:
        self.stopped.set()
        self.join()


class FeedWatch(threading.Thread):
    """When each article URL first shows up among a story's outlets in a JSON Feed file."""

    def __init__(self, path: Path):
        super().__init__(daemon=True)
        self.path = path
        self.first_seen: dict[str, float] = {}
        self.stopped = threading.Event()

    def run(self) -> None:
        stamp = None
        while not self.stopped.wait(0.05):
            try:
                current = self.path.stat().st_mtime_ns
                if current == stamp:
                    continue
                stamp, now = current, time.time()
                feed = json.loads(self.path.read_bytes())
            except (OSError, ValueError):
                continue
            for entry in feed["items"]:
                for outlet in entry["_amur"]["outlets"]:
                    self.first_seen.setdefault(outlet["url"], now)


def write_config(
    root: Path, bootstrap: str, database_url: str, run: str, site: LocalSite | None, feeds: list[str], extract_processes: int | None = None,
) -> Path:
    config = root / "amur.yaml"
    config.write_text(
        "transport: kafka\n"
        f"database_url: '{database_url}'\n"
        f"kafka:\n  bootstrap_servers: '{bootstrap}'\n  topic_prefix: {run}.\n  group_prefix: {run}g\n  partitions: 2\n"
        # One local host stands in for the many outlets of a real deployment: as many requests
        # in flight to it as the connectors' poll threads make to different hosts.
        "fetch:\n  per_host_delay_seconds: 0\n  max_connections_per_host: 8\n  allow_networks: [127.0.0.0/8]\n"
        "connectors:\n  poll_workers: 8\n"
        + (f"  extract_processes: {extract_processes}\n" if extract_processes is not None else "")
        + f"sinks:\n  - type: records\n  - type: alerts\n  - type: feeds\n    directory: {root / 'feeds'}\n"
    )
    sources = "".join(
        f"  - name: {feed}\n    url: {site.url(f'/{run}/{feed}.xml')}\n    poll_interval_seconds: {POLL_SECONDS}\n"
        "    max_articles_per_poll: 1000\n" for feed in feeds
    )
    (root / "sources.yaml").write_text(f"sources:\n{sources}" if sources else "sources: []\n")
    (root / "subscriptions.yaml").write_text("subscriptions:\n  - name: all\n")
    return config


def schedule(engine: sa.Engine, first_polls: dict[str, float]) -> None:
    """Store each source's first poll, as a running deployment's schedule would have it."""
    with engine.begin() as connection:
        for name, moment in first_polls.items():
            connection.execute(sa.insert(source_state).values(
                name=name, consecutive_failures=0, interval_seconds=POLL_SECONDS,
                next_poll_at=datetime.fromtimestamp(moment, timezone.utc),
            ))


def recorded(engine: sa.Engine, run: str) -> dict[str, tuple[datetime, datetime, datetime]]:
    """URL → (fetched, classified, written) of the run's recorded articles."""
    with engine.connect() as connection:
        rows = connection.execute(
            sa.select(articles.c.url, articles.c.fetched_at, articles.c.classified_at, articles.c.updated_at)
            .where(articles.c.source.like(f"{run}%"))
        )
        return {url: (fetched, classified, written) for url, fetched, classified, written in rows}


def alerted(engine: sa.Engine, run: str) -> dict[str, tuple[datetime, datetime]]:
    """URL of each story's first article → (alert made by the stories stage, stored by the sinks)."""
    with engine.connect() as connection:
        rows = connection.execute(
            sa.select(alerts.c.url, alerts.c.alerted_at, alerts.c.written_at).where(alerts.c.source.like(f"{run}%"))
        )
        return {url: (made, stored) for url, made, stored in rows}


def run_once(args, engine: sa.Engine, database_url: str, workers: int, extract_processes: int | None) -> dict:
    run = f"s{uuid.uuid4().hex[:8]}"
    corpus = synthetic_articles(args.articles, 0.05, seed=hash(run) % 10_000)
    with LocalSite() as site, tempfile.TemporaryDirectory() as scratch:
        root = Path(scratch)
        stream = Stream(run, site)
        burst = stream.add(corpus, f"{run}-b", 0)
        feeds = [f"{run}-{phase}{number}" for phase in "bs" for number in range(FEEDS)]
        stream.serve_feeds(feeds)
        config = write_config(root, args.bootstrap, database_url, run, site, feeds, extract_processes)
        launch = time.time()
        first_burst_poll = launch + WARMUP_SECONDS
        for item in burst:
            item.appears_at = launch
        schedule(engine, {
            feed: first_burst_poll if "-b" in feed else first_burst_poll + POLL_SECONDS * int(feed.rsplit("s", 1)[1]) / FEEDS
            for feed in feeds
        })
        plan = [role for role in roles() for _ in range(workers if role == "processors" else 1)]
        started = [start_role(role, config, args.logs / f"{run}-{role}-{number}.log") for number, role in enumerate(plan)]
        watch = FeedWatch(root / "feeds" / "all.json")
        watch.start()
        sampler = Sampler(started)
        sampler.start()
        try:
            if args.profile:  # the burst only: not the imports and model loading before it
                time.sleep(max(0.0, first_burst_poll - 1 - time.time()))
                for number, role in enumerate(started):
                    start_profiler(role, args.profile / f"{run}-{role.name}-{number}.txt")
            burst_done = wait_recorded(engine, run, len(burst), first_burst_poll + args.timeout)
            for role in started:
                stop_profiler(role)
            burst_rate = rate(burst_times(burst, recorded(engine, run)))
            steady_rate = burst_rate / 2  # half the capacity just measured
            steady = stream.add(synthetic_articles(int(steady_rate * args.steady_seconds), 0.05, seed=hash(run) % 10_000 + 1),
                                f"{run}-s", len(burst))
            steady_from = time.time()
            for index, item in enumerate(steady):
                item.appears_at = steady_from + index / steady_rate
            if steady:
                wait_recorded(engine, run, len(burst) + len(steady), steady_from + args.steady_seconds + args.timeout)
                candidate_urls = {item.url for item in steady if item.candidate}
                deadline = time.time() + 30
                while time.time() < deadline and not candidate_urls <= watch.first_seen.keys():
                    time.sleep(0.2)
        finally:
            sampler.stop()
            watch.stopped.set()
            for role in started:
                role.process.send_signal(signal.SIGTERM)
            for role in started:
                try:
                    role.process.wait(timeout=20)
                except subprocess.TimeoutExpired:
                    role.process.kill()
                stop_profiler(role)
        if args.profile:
            print(f"where each role's CPU went over the burst (py-spy, {workers} processor(s)):")
            for role in started:
                print("\n".join(profile_summary(role.name, role.profile)))
        every = recorded(engine, run)
        stories = alerted(engine, run)
    return summarise(burst, steady, every, stories, watch.first_seen, started, burst_done, workers) | {"extract_processes": extract_processes}


def stage_once(args, database_url: str, workers: int) -> dict:
    """The processing stage alone: ``workers`` processor processes read a backlog of ``--backlog`` articles.

    The backlog is produced straight onto the articles topic once every processor has joined
    the group and gone idle (its models loaded), and no other role runs, so the stage has the
    machine to itself; the rate is that of the articles classified from the moment the backlog
    is all there (their ``classified_at`` on the classified topic) to the last one.
    """
    run = f"p{uuid.uuid4().hex[:8]}"
    with tempfile.TemporaryDirectory() as scratch:
        root = Path(scratch)
        config = write_config(root, args.bootstrap, database_url, run, None, [])
        settings = load_settings(config)
        topics = Topics(settings.kafka.topic_prefix)
        transport = make_transport(settings)
        backlog = [  # made before the processors start, so making it takes no CPU from them
            encode(Article(id=article_id(url), url=url, source=f"{run}-backlog", title=title, text=text, fetched_at=utc_now()))
            for number, (title, text, _) in enumerate(own_stories(synthetic_articles(args.backlog, 0.05, seed=7), 7))
            for url in [f"https://outlet.invalid/{run}/{number}.html"]
        ]
        try:
            transport.ensure_topics(topics.all())
            started = [start_role("processors", config, args.logs / f"{run}-processors-{number}.log") for number in range(workers)]
            sampler = Sampler(started)
            sampler.start()
            deadline = time.time() + args.timeout
            watch = GroupWatch(args.bootstrap, group_name(settings, "processors"))
            try:
                # Every member holds its partitions before the first article is there, so the
                # rate is the stage's, not that of a group still joining.
                watch.wait_stable(workers, deadline)
                # and has loaded its other languages' models, which it does in the background
                # once it has joined: otherwise a round's timing can take in a second of loading.
                while not all(role.settled() for role in started) and time.time() < deadline:
                    time.sleep(0.25)
                producing = time.perf_counter()
                producer = transport.producer()
                for key, value in backlog:
                    producer.produce(topics.articles, key, value)
                producer.flush()
                producer.close()
                produced_in = time.perf_counter() - producing
                produced_at = time.time()
                # Asked once a second: each question costs this process and the broker CPU
                # the stage would otherwise have, and the rate comes from the records anyway.
                while time.time() < deadline and watch.lag(topics.articles, settings.kafka.partitions):
                    time.sleep(1.0)
            finally:
                watch.close()
                sampler.stop()
                for role in started:
                    role.process.send_signal(signal.SIGTERM)
                for role in started:
                    role.process.wait(timeout=20)
            classified = sorted(
                datetime.fromisoformat(json.loads(value)["classified_at"]).timestamp()
                for value in read_topic(transport, topics.classified, run)
            )
        finally:
            transport.close()
    # Timed from the moment the whole backlog is on the topic: while it is being produced, this
    # process takes a core, which one processor leaves free and two have to share.
    measured = [moment for moment in classified if moment >= produced_at]
    last = measured[-1]
    return {
        "workers": workers, "classified": len(classified), "measured": len(measured),
        "rate": len(measured) / (last - produced_at),
        "cpu_per_article": sum(role.cpu_between(produced_at, last) for role in started) / len(measured),
        "peak_rss_mb": max(role.peak_rss_mb for role in started), "produced_in": produced_in,
    }


class GroupWatch:
    """A consumer group seen from outside, through one admin client kept for the whole run:
    asking again costs a request, not a new connection."""

    def __init__(self, bootstrap: str, group: str):
        self.group = group
        self.admin = KafkaAdminClient(bootstrap_servers=bootstrap)

    def wait_stable(self, members: int, deadline: float) -> None:
        """Wait until the group is stable with ``members`` members, each assigned a partition."""
        while time.time() < deadline:
            try:
                described = self.admin.describe_groups([self.group])[self.group]
            except kafka_errors.CoordinatorNotAvailableError:
                described = {"group_state": "", "members": []}  # a new broker: its offsets topic is still being made
            assigned = [member for member in described["members"] if (member["member_assignment"] or {}).get("assigned_partitions")]
            if described["group_state"] == "Stable" and len(assigned) == members:
                return
            time.sleep(0.25)
        raise TimeoutError(f"{self.group}: not {members} members with partitions by the deadline")

    def lag(self, topic: str, partitions: int) -> int:
        """Records of ``topic`` past the group's committed offsets (all of them before a commit)."""
        every = [TopicPartition(topic, number) for number in range(partitions)]
        committed = self.admin.list_group_offsets({self.group: every})[self.group]
        ends = self.admin.list_partition_offsets({partition: OffsetSpec.LATEST for partition in every})
        return sum(
            ends[partition].offset - (committed[partition].offset if partition in committed else 0)
            for partition in every
        )

    def close(self) -> None:
        self.admin.close()


def read_topic(transport, topic: str, run: str) -> list[bytes]:
    """Every value on ``topic``, read by a group of its own."""
    consumer = transport.consumer(f"{run}-reader", [topic])
    values: list[bytes] = []
    deadline = time.time() + 60
    try:
        while time.time() < deadline:
            values.extend(record.value for record in consumer.poll(500, 1.0))
            if values and consumer.lag() == 0:
                break
        return values
    finally:
        consumer.close()


def wait_recorded(engine: sa.Engine, run: str, expected: int, deadline: float) -> bool:
    while time.time() < deadline:
        with engine.connect() as connection:
            count = connection.execute(
                sa.select(sa.func.count()).select_from(articles).where(articles.c.source.like(f"{run}%"))
            ).scalar_one()
        if count >= expected:
            return True
        time.sleep(0.25)
    return False


def burst_times(burst, every) -> list[tuple[datetime, datetime, datetime]]:
    return [every[item.url] for item in burst if item.url in every]


def rate(times) -> float:
    """Articles per second from the first fetched to the last written."""
    first_fetch = min(fetched for fetched, _, _ in times).timestamp()
    last_write = max(written for _, _, written in times).timestamp()
    return len(times) / (last_write - first_fetch)


def summarise(burst, steady, every, stories, first_seen, started, burst_done, workers) -> dict:
    times = burst_times(burst, every)
    first_fetch = min(fetched for fetched, _, _ in times).timestamp()
    last_write = max(written for _, _, written in times).timestamp()
    classified = sorted(classified.timestamp() for _, classified, _ in times)

    def latencies(items, since_appearing: bool) -> list[float]:
        return sorted(
            first_seen[item.url] - (item.appears_at if since_appearing else every[item.url][0].timestamp())
            for item in items if item.candidate and item.url in first_seen and item.url in every
        )
    def story_steps(item) -> dict[str, float] | None:
        """The time each stage added to a steady story, from fetched to the feed file; an article
        that joined a story already open has only →classified and the rest to the feed file."""
        if not (item.candidate and item.url in first_seen and item.url in every):
            return None
        fetched, classified, _ = (moment.timestamp() for moment in every[item.url])
        if item.url in stories:
            made, stored = (moment.timestamp() for moment in stories[item.url])
            moments = dict(zip(HOPS, (classified, made, stored, first_seen[item.url]), strict=True))
        else:
            moments = {HOPS[0]: classified, JOINED: first_seen[item.url]}
        previous, steps = fetched, {}
        for name, moment in moments.items():
            steps[name], previous = moment - previous, moment
        return steps

    steady_steps = {item.url: steps for item in steady if (steps := story_steps(item)) is not None}
    opened = [steps for steps in steady_steps.values() if JOINED not in steps]
    slowest = sorted(
        ((url.rsplit("/", 1)[1], sum(steps.values()), steps) for url, steps in steady_steps.items()),
        key=lambda entry: entry[1], reverse=True,
    )
    cpu: dict[str, float] = {}
    rss: dict[str, float] = {}
    for role in started:
        cpu[role.name] = cpu.get(role.name, 0.0) + role.cpu_between(first_fetch, last_write)
        rss[role.name] = max(rss.get(role.name, 0.0), role.peak_rss_mb)
    return {
        "workers": workers, "burst_articles": len(burst), "burst_recorded": len(times), "burst_done": burst_done,
        "rate": rate(times),
        "processing_rate": (len(classified) - 1) / (classified[-1] - classified[0]),
        "cpu_per_article": {name: seconds / max(1, len(times)) for name, seconds in cpu.items()},
        "peak_rss_mb": rss,
        "burst_emit": latencies(burst, False),
        "steady_articles": len(steady), "steady_recorded": sum(item.url in every for item in steady),
        "steady_emit": latencies(steady, False), "steady_feed": latencies(steady, True),
        "steady_hops": {name: sorted(steps[name] for steps in opened) for name in HOPS}, "steady_slowest": slowest[:3],
    }


# -- the report ------------------------------------------------------------------------------
def report(size: int, result: dict) -> None:
    def pct(values: list[float]) -> str:
        if not values:
            return "     -      -"
        return f"{statistics.median(values):6.2f} {percentile(values, 0.99):6.2f}"
    cpu = " ".join(f"{name}={seconds * 1000:.1f}" for name, seconds in result["cpu_per_article"].items())
    rss = " ".join(f"{name}={mb:.0f}" for name, mb in result["peak_rss_mb"].items())
    extract = "-" if result["extract_processes"] is None else result["extract_processes"]
    print(f"{size:>9,} {extract:>4} {result['workers']:>4} {result['rate']:7.1f} {result['processing_rate']:7.1f} "
          f"{pct(result['burst_emit'])} | {pct(result['steady_emit'])} {pct(result['steady_feed'])} "
          f"{result['burst_recorded']}/{result['burst_articles']}+{result['steady_recorded']}/{result['steady_articles']}")
    hops = " ".join(
        f"{name} {statistics.median(values):.2f}/{percentile(values, 0.99):.2f}"
        for name, values in result["steady_hops"].items() if values
    )
    print(f"{'':15}steady hops    {hops}")
    for page_name, total, steps in result["steady_slowest"]:
        print(f"{'':15}slow {page_name:>9} {total:.2f}: " + " ".join(f"{name} {seconds:.2f}" for name, seconds in steps.items()))
    print(f"{'':15}CPU ms/article {cpu}")
    print(f"{'':15}peak RSS MB    {rss}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--database-url", required=True, help="PostgreSQL; each run gets a schema of its own, dropped after")
    parser.add_argument("--bootstrap", default="127.0.0.1:9092")
    parser.add_argument("--articles", type=int, default=600, help="articles in each burst")
    parser.add_argument("--backlog", type=int, default=5000, help="articles the processing stage alone reads")
    parser.add_argument("--stage-rounds", type=int, default=3,
                        help="times the processing stage alone is measured with each processor count, in turn")
    parser.add_argument("--steady-seconds", type=float, default=60)
    parser.add_argument("--sizes", default="0,10000,100000,1000000", help="seen URLs and open stories, comma-separated; empty: the processing stage alone")
    parser.add_argument("--workers", default="1,2", help="processor processes to try, comma-separated")
    parser.add_argument("--extract-processes", help="the connectors' extract_processes to try, comma-separated (default: as shipped)")
    parser.add_argument("--timeout", type=float, default=180)
    parser.add_argument("--logs", type=Path, help="where each role process writes its log (default: a new temporary directory)")
    parser.add_argument("--profile", type=Path, help="sample each role with py-spy over the burst into this directory and print where its CPU went "
                        "(py-spy is not a dependency: pip install py-spy; sampling costs some CPU itself)")
    args = parser.parse_args()
    if args.profile:
        args.profile.mkdir(parents=True, exist_ok=True)
    args.logs = args.logs or Path(tempfile.mkdtemp(prefix="amur-bench-"))
    args.logs.mkdir(parents=True, exist_ok=True)
    print(f"role logs in {args.logs}")
    gazetteer = load_gazetteer(Path("config/gazetteer"))
    counts = [int(value) for value in args.workers.split(",")]
    extracting = [int(value) for value in args.extract_processes.split(",")] if args.extract_processes else [None]
    print(f"processing stage alone, a backlog of {args.backlog} articles on the articles topic, "
          f"{args.stage_rounds} rounds of {counts} processors in turn; ×1 proc: this rate over the same round's first")
    print(f"{'round':>5} {'proc':>4} {'stage/s':>8} {'×1 proc':>8} {'CPU ms/article':>15} {'peak RSS MB':>12}")
    ratios: dict[int, list[float]] = {workers: [] for workers in counts}
    for round_number in range(1, args.stage_rounds + 1):
        single = None
        for workers in counts:
            stage = stage_once(args, args.database_url, workers)
            single = single or stage["rate"]
            ratios[workers].append(stage["rate"] / single)
            print(f"{round_number:>5} {workers:>4} {stage['rate']:8.1f} {stage['rate'] / single:8.2f} "
                  f"{stage['cpu_per_article'] * 1000:15.1f} {stage['peak_rss_mb']:12.0f}   "
                  f"({stage['classified']} classified, {stage['measured']} timed after the backlog was produced "
                  f"in {stage['produced_in']:.1f} s)", flush=True)
    for workers, values in list(ratios.items())[1:] if args.stage_rounds else []:
        print(f"{workers} proc over {counts[0]}: median ×{statistics.median(values):.2f} of {len(values)} rounds "
              f"(from ×{min(values):.2f} to ×{max(values):.2f})")
    print()
    print("size = seen URLs = open stories; rates in articles/s; latencies p50 p99 in s to the subscription's feed")
    print(f"{'size':>9} {'extr':>4} {'proc':>4} {'e2e/s':>7} {'clsf/s':>7} {'burst emit→':>13} | {'steady emit→':>13} {'feed→':>13} recorded")
    for size in (int(value) for value in args.sizes.split(",") if value):
        # A schema for each run: the stories of one run must not be open when the next one's
        # reports of the same templates arrive, or they would join them instead of opening their own.
        for extract_processes, workers in itertools.product(extracting, counts):
            with postgres_schema_url(args.database_url, prefix="bench") as url:
                engine = make_engine(url)
                try:
                    StateStore(engine).setup()
                    StoryIndex(engine, StorySettings(), gazetteer).setup()
                    filling = time.perf_counter()
                    fill_state(engine, size)
                    print(f"# {size:,} seen URLs and stories filled in {time.perf_counter() - filling:.0f} s", flush=True)
                    report(size, run_once(args, engine, url, workers, extract_processes))
                    sys.stdout.flush()
                finally:
                    engine.dispose()


if __name__ == "__main__":
    main()
