"""The fault drills' harness: a known stream through the whole pipeline over real services.

Each drill runs ``amur run --workers processors=2`` — every role its own processes over a
real Kafka broker and PostgreSQL — on a stream it knows in full: general news with
Russia–China stories among it, some stories carried by two outlets. Pages are served slowly
from 127.0.0.1 so the stream lasts long enough for a fault to land in the middle of it.

After the fault the drill waits for the pipeline to finish on its own and checks what the
fault suite promises (:meth:`Drill.assert_exactly_once`): every article in the records once,
every story one alert whose version counts its outlets, one entry per story in every feed,
one signed ``story.created`` per story at the webhook, and no dead letter but the expected.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import tempfile
import time
from collections import Counter
from collections.abc import Callable, Collection, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import feedparser
import pytest
import sqlalchemy as sa

from pipeline.core.topology import Topics
from sinks.webhooks import sign
from tests.support.corpus import synthetic_articles
from tests.support.databases import postgres_schema_url
from tests.support.deployment import AMUR, query, read_topic
from tests.support.local_site import LocalSite, delayed
from tests.support.ports import free_port
from tests.support.webhook_receiver import WebhookReceiver

REPO = Path(__file__).resolve().parents[2]
KAFKA_DEV = REPO / "scripts" / "kafka-dev"
POSTGRES_DEV = REPO / "scripts" / "postgres-dev"

RESOURCES = REPO / "tests" / "resources"
GENERAL_NEWS = 26
OUTLETS = 4
# Two connections to the one host: the stream lasts about twenty seconds, longer than the
# processors take to load their model, so a drill finds each role mid-stream (at half that,
# a fast start-up once met a backlog it classified in one batch, and never was mid-stream).
PAGE_DELAY_SECONDS = 1.0
HOOK_SECRET = "fault-drill-secret"
SETTLE_SECONDS = 240
# The feed files of the drill's sinks: the default subscription's two.
FEEDS = ["feeds/all.atom", "feeds/all.json"]


@dataclass(frozen=True)
class Page:
    path: str
    outlet: int
    title: str
    story: int | None  # the story it tells, if it is one of the Russia–China stories


def page_html(title: str, paragraphs: list[str], masthead: str) -> bytes:
    body = "".join(f"<p>{paragraph}</p>" for paragraph in paragraphs)
    return (
        f"<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'><title>{title}</title></head>"
        f"<body><header><nav>{masthead} | Home | Regions | Markets</nav></header>"
        f"<article><h1>{title}</h1>{body}</article><footer>{masthead}, all rights reserved</footer></body></html>"
    ).encode()


class Stream:
    """The drills' corpus on a local site: pages, one RSS feed per outlet, and what is expected of them.

    Four Russia–China stories — two of them carried by a second outlet, one as a retitled copy
    without its last paragraph, one as a mirror — among general news that names neither
    country.
    """

    def __init__(self, site: LocalSite):
        self.site = site
        self.pages: list[Page] = []
        corridor = (RESOURCES / "stories" / "grain-corridor.txt").read_text(encoding="utf-8").split("\n\n")
        season = (RESOURCES / "stories" / "tourism-season.txt").read_text(encoding="utf-8").split("\n\n")
        corridor_title = "Amur Oblast and Heilongjiang agree a year-round grain corridor"
        self._add(Page("/o0/grain-corridor.html", 0, corridor_title, 0), page_html(corridor_title, corridor, "Outlet 0"))
        copy_title = "Grain to cross the Amur all year under a new terminal deal"
        self._add(Page("/o2/grain-terminal.html", 2, copy_title, 0), page_html(copy_title, corridor[:-1], "Outlet 2"))
        season_title = "Amur Oblast and Heilongjiang open a joint tourism season"
        self._add(Page("/o1/tourism-season.html", 1, season_title, 1), page_html(season_title, season, "Outlet 1"))
        freight = (RESOURCES / "e2e" / "amur-heilongjiang-freight.html").read_bytes()
        self._add(Page("/o3/bridge-freight.html", 3, "Freight over the Blagoveshchensk bridge to double", 2), freight)
        self._add(Page("/o1/mirror/bridge-freight.html", 1, "Freight over the Blagoveshchensk bridge to double", 2), freight)
        tourism = (RESOURCES / "e2e" / "primorye-jilin-tourism.html").read_bytes()
        self._add(Page("/o2/primorye-jilin.html", 2, "Primorye and Jilin tourism", 3), tourism)
        for number, (title, text, _) in enumerate(synthetic_articles(GENERAL_NEWS, 0.0, seed=23)):
            outlet = number % OUTLETS
            self._add(Page(f"/o{outlet}/{number}.html", outlet, title, None), page_html(title, text.split("\n"), f"Outlet {outlet}"))
        for outlet in range(OUTLETS):
            items = "".join(
                f"<item><title>{page.title}</title><link>{site.url(page.path)}</link>"
                f"<pubDate>Thu, 03 Dec 2026 {index % 24:02d}:00:00 GMT</pubDate></item>"
                for index, page in enumerate(self.pages) if page.outlet == outlet
            )
            site.add(f"/o{outlet}.xml", (
                f"<?xml version='1.0'?><rss version='2.0'><channel><title>Outlet {outlet}</title>{items}</channel></rss>"
            ).encode(), "application/rss+xml")

    def _add(self, page: Page, html: bytes) -> None:
        self.site.add_handler(page.path, delayed(PAGE_DELAY_SECONDS, html))
        self.pages.append(page)

    @property
    def feeds(self) -> dict[str, str]:
        return {f"outlet-{outlet}": self.site.url(f"/o{outlet}.xml") for outlet in range(OUTLETS)}

    @property
    def urls(self) -> set[str]:
        return {self.site.url(page.path) for page in self.pages}

    @property
    def outlets_per_story(self) -> list[int]:
        """How many outlets carry each story, sorted: what the alerts' versions must be."""
        return sorted(Counter(page.story for page in self.pages if page.story is not None).values())


class Drill:
    """One deployment of the whole pipeline, its processes, and the checks of the fault suite."""

    def __init__(
        self, root: Path, stream: Stream, bootstrap: str, database_url: str, hook_url: str, topic_prefix: str,
        *, replication_factor: int = 1, workers: str = "processors=2", failpoints: Collection[str] = (),
        updates: bool = False, smtp_port: int | None = None, email: str = "",
    ):
        self.root = root
        self.workers = workers
        self.failpoints = failpoints
        self.updates = updates
        self.stream = stream
        self.database_url = database_url
        self.config = root / "amur.yaml"
        self.topics = Topics(topic_prefix)
        self.log = root / "amur.log"
        self.process: subprocess.Popen | None = None
        self.config.write_text(
            "transport: kafka\n"
            f"database_url: '{database_url}'\n"
            f"kafka:\n  bootstrap_servers: '{bootstrap}'\n  topic_prefix: {topic_prefix}\n  group_prefix: {topic_prefix}g\n"
            f"  partitions: 2\n  replication_factor: {replication_factor}\n  timeout_seconds: 10\n"
            "  max_message_bytes: 16777216\n"
            "fetch:\n  per_host_delay_seconds: 0\n  timeout_seconds: 10\n  allow_networks: [127.0.0.0/8]\n"
            f"sinks:\n  - type: records\n  - type: alerts\n"
            f"  - type: feeds\n    directory: {root / 'feeds'}\n"
            "  - type: webhooks\n    first_retry_seconds: 0.2\n    max_retry_seconds: 2\n    max_attempts: 50\n"
            "    poll_seconds: 0.1\n"
            + (
                "  - type: email\n    first_retry_seconds: 0.2\n    max_retry_seconds: 2\n    max_attempts: 50\n"
                f"    poll_seconds: 0.1\nemail:\n  host: 127.0.0.1\n  port: {smtp_port}\n  security: none\n"
                "  sender: amur@example.org\n" if smtp_port else ""
            )
        )
        (root / "sources.yaml").write_text("sources:\n" + "".join(
            f"  - name: {name}\n    url: {url}\n    poll_interval_seconds: 30\n" for name, url in stream.feeds.items()
        ))
        (root / "subscriptions.yaml").write_text(
            "subscriptions:\n  - name: all\n  - name: partners\n    channels:\n"
            f"      - type: webhook\n        url: {hook_url}\n        secret_env: AMUR_DRILL_HOOK_SECRET\n"
            f"        updates: {str(updates).lower()}\n"
            + "".join(f"      {line}\n" for line in email.splitlines())  # the partners' email channel, if any
        )

    # -- running ---------------------------------------------------------------------------
    def environment(self) -> dict[str, str]:
        env = {key: value for key, value in os.environ.items() if not key.startswith("AMUR_")}
        env["AMUR_DRILL_HOOK_SECRET"] = HOOK_SECRET
        if self.failpoints:
            marks = self.root / "failpoints-fired"
            marks.mkdir(exist_ok=True)
            env.update(AMUR_FAILPOINTS=",".join(self.failpoints), AMUR_FAILPOINTS_ONCE=str(marks))
        return env

    def start(self) -> None:
        """``amur run --workers processors=2`` (or the drill's plan), logging to ``amur.log``."""
        self.process = subprocess.Popen(
            [*AMUR, "run", "--workers", self.workers, "--config", str(self.config)],
            env=self.environment(), stdout=self.log.open("ab"), stderr=subprocess.STDOUT,
        )

    def stop(self) -> None:
        if self.process is None or self.process.poll() is not None:
            return
        self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()

    def kill_supervisor(self) -> None:
        """SIGKILL ``amur run --workers`` itself, leaving its workers to notice."""
        self.process.send_signal(signal.SIGKILL)
        self.process.wait()
        self.process = None

    def log_tail(self, lines: int = 60) -> str:
        return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:]) if self.log.exists() else ""

    def worker_pids(self, role: str) -> list[int]:
        """The live workers of ``role``, as the supervisor last started them."""
        started: dict[str, int] = {}
        for line in self.log.read_text(errors="replace").splitlines():
            if f"worker started: worker={role}#" in line:
                worker = line.split("worker=", 1)[1].split()[0]
                started[worker] = int(line.rsplit("pid=", 1)[1].split()[0])
        return [pid for pid in started.values() if process_alive(pid)]

    def wait_for(self, condition: Callable[[], bool], seconds: float, what: str) -> None:
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            assert self.process is None or self.process.poll() is None, f"amur run exited:\n{self.log_tail()}"
            try:
                if condition():
                    return
            except (sa.exc.OperationalError, sa.exc.ProgrammingError):
                pass  # the tables are not made yet, or the database is away in this drill
            time.sleep(0.5)
        raise AssertionError(f"not within {seconds:.0f} s: {what}\n{self.log_tail()}\nnow: {self.describe()}")

    def describe(self) -> str:
        """Where the drill stands, for a failure message."""
        try:
            versions = sorted(version for (version,) in self.query("SELECT version FROM alerts"))
            records = self.recorded()
        except sa.exc.SQLAlchemyError as exc:
            return f"database unreadable: {exc}"
        feeds = {name: len(ids) for name, ids in self.feed_entries().items()}
        return (f"{records} of {len(self.stream.urls)} articles recorded; alert versions {versions}, "
                f"expected {self.stream.outlets_per_story}; feed entries {feeds}")

    # -- reading the results ---------------------------------------------------------------
    def query(self, sql: str) -> list:
        return query(self.database_url, sql)

    def recorded(self) -> int:
        return self.query("SELECT COUNT(*) FROM articles")[0][0]

    def feed_entries(self) -> dict[str, list[str]]:
        """Entry ids of each feed file the sinks write."""
        entries: dict[str, list[str]] = {}
        for name in FEEDS:
            path = self.root / name
            if not path.exists():
                continue
            if path.suffix == ".json":
                entries[name] = [item["id"] for item in json.loads(path.read_text(encoding="utf-8"))["items"]]
            else:
                parsed = feedparser.parse(path.read_bytes())
                assert not parsed.bozo, f"{path}: {parsed.bozo_exception}"
                entries[name] = [entry.id for entry in parsed.entries]
        return entries

    def settled(self, receiver: WebhookReceiver | None) -> bool:
        """Every article recorded, every story alerted with all its outlets, in every feed and at the webhook
        (each version of it, if the drill asks for updates)."""
        if self.recorded() < len(self.stream.urls):
            return False
        versions = sorted(version for (version,) in self.query("SELECT version FROM alerts"))
        if versions != self.stream.outlets_per_story:
            return False
        stories = len(versions)
        feeds = self.feed_entries()
        if len(feeds) < len(FEEDS) or any(len(ids) != stories for ids in feeds.values()):
            return False
        if receiver is None:
            return True
        expected = self.query("SELECT COUNT(*) FROM alert_versions")[0][0] if self.updates else stories
        return len({request.headers["webhook-id"] for request in receiver.accepted}) >= expected

    def dead_letters(self) -> list[dict]:
        return [json.loads(value) for value in self.topic_values(self.topics.dlq)]

    def topic_values(self, topic: str) -> list[bytes]:
        return read_topic(self.config, topic, f"{self.topics.prefix}reader-{time.monotonic_ns()}")

    def assert_exactly_once(
        self, receiver: WebhookReceiver, *, dead_letters: int = 0, resent: Collection[str] = (), repeats: bool = False,
    ) -> None:
        """The fault suite's promise, checked after a drill (see the module docstring).

        ``resent``: webhook ids the sender could not have known were delivered (it was killed
        while the endpoint had them); each came a second time, the same delivery under the same
        id, which is what a receiver drops a repeat by. ``repeats``: any delivery may have come
        again that way (the drill killed senders at moments it does not control).
        """
        urls = [url for (url,) in self.query("SELECT url FROM articles")]
        assert sorted(urls) == sorted(self.stream.urls), "the records are not the stream's articles, each once"
        alerts = self.query("SELECT id, version, outlets FROM alerts")
        for story_id, version, outlets in alerts:
            outlets = json.loads(outlets) if isinstance(outlets, str) else outlets
            urls_of_story = [outlet["url"] for outlet in outlets]
            assert len(set(urls_of_story)) == len(urls_of_story) == version, (story_id, version, outlets)
        assert sorted(version for _, version, _ in alerts) == self.stream.outlets_per_story
        story_ids = sorted(story_id for story_id, _, _ in alerts)
        for feed, ids in self.feed_entries().items():
            assert len(ids) == len(set(ids)) == len(story_ids), f"{feed}: {len(ids)} entries for {len(story_ids)} stories"
        bodies: dict[str, list[bytes]] = {}
        for request in receiver.accepted:
            headers = request.headers
            expected = sign(HOOK_SECRET, headers["webhook-id"], int(headers["webhook-timestamp"]), request.body)
            assert headers["webhook-signature"] == expected, "a delivery with a wrong signature"
            bodies.setdefault(headers["webhook-id"], []).append(request.body)
        for webhook_id, sent in bodies.items():
            allowed = (1, 2) if repeats else (2,) if webhook_id in resent else (1,)
            assert len(sent) in allowed, f"delivery {webhook_id} came {len(sent)} times"
            assert len(set(sent)) == 1, f"delivery {webhook_id} came again with another body"
        delivered = Counter((body["type"], body["data"]["id"], body["data"]["version"])
                            for body in (json.loads(sent[0]) for sent in bodies.values()))
        assert all(count == 1 for count in delivered.values()), f"a story version under two webhook ids: {delivered}"
        assert sorted(story for kind, story, _ in delivered if kind == "story.created") == story_ids, (
            "the webhook did not get each story's creation exactly once")
        versions = {(story_id, version) for story_id, version in self.query("SELECT story_id, version FROM alert_versions")}
        expected_kinds = {"story.created", "story.updated"} if self.updates else {"story.created"}
        assert {kind for kind, _, _ in delivered} <= expected_kinds
        if self.updates:
            assert {(story, version) for _, story, version in delivered} == versions, "a story version not delivered"
        letters = self.dead_letters()
        assert len(letters) == dead_letters, [letter["reason"] for letter in letters]


@pytest.fixture
def stream() -> Iterator[Stream]:
    with LocalSite() as site:
        yield Stream(site)


@contextmanager
def running(drill: Drill) -> Iterator[Drill]:
    drill.start()
    try:
        yield drill
    finally:
        drill.stop()


@pytest.fixture
def make_drill(tmp_path, stream, topic_prefix) -> Callable[..., Drill]:
    """Makes the drill's deployment: ``make_drill(bootstrap, database_url, hook_url, replication_factor=1)``;
    ``smtp_port`` and ``email`` (the channel's YAML) give the partners an email channel too."""

    def make(bootstrap: str, database_url: str, hook_url: str, **options) -> Drill:
        return Drill(tmp_path, stream, bootstrap, database_url, hook_url, topic_prefix, **options)

    return make


@pytest.fixture
def database() -> Iterator[str]:
    """A fresh schema of the shared PostgreSQL server."""
    with postgres_schema_url() as url:
        yield url


def process_alive(pid: int) -> bool:
    """Whether ``pid`` runs; a worker that exited after its supervisor died may linger as a zombie
    until init reaps it, and counts as gone."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    stat = Path(f"/proc/{pid}/stat")
    try:
        return stat.read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:  # no procfs, or it exited just now
        return stat.parent.exists()


class Service:
    """A broker, cluster or PostgreSQL server of a drill's own, run by the repo's dev scripts.

    Drills that stop or kill a server use their own, on free ports, so the rest of the
    suite's shared broker and database are never touched.
    """

    def __init__(self, script: Path, environment: dict[str, str]):
        self.script = script
        self.env = {**os.environ, **environment}

    def __call__(self, *command: str) -> str:
        done = subprocess.run([str(self.script), *command], env=self.env, capture_output=True, text=True, timeout=240)
        assert done.returncode == 0, f"{self.script.name} {' '.join(command)}: {done.stdout}{done.stderr}"
        return done.stdout.strip()


def _service_home(name: str) -> Path:
    # PostgreSQL runs as its own user when the tests run as root: its folder must be reachable.
    home = Path(tempfile.mkdtemp(prefix=f"amur-{name}-", dir="/var/tmp" if Path("/var/tmp").is_dir() else None))
    home.chmod(0o755)
    return home


@pytest.fixture
def own_kafka() -> Iterator[tuple[Service, str]]:
    """A single broker of the drill's own; yields its controller and bootstrap address."""
    yield from _kafka_of_own("kafka", brokers=1)


@pytest.fixture
def kafka_cluster() -> Iterator[tuple[Service, str]]:
    """Three brokers (replication factor 3, min.insync.replicas 2); yields its controller and bootstrap servers."""
    yield from _kafka_of_own("kafka-cluster", brokers=3)


def _kafka_of_own(name: str, brokers: int) -> Iterator[tuple[Service, str]]:
    home = _service_home(name)
    # Each broker needs its own port and its controller's.
    kafka = Service(KAFKA_DEV, {"AMUR_KAFKA_HOME": str(home), "AMUR_KAFKA_PORT": str(free_port(2 * brokers)),
                                "AMUR_KAFKA_BROKERS": str(brokers)})
    kafka("start")
    try:
        yield kafka, kafka("url")
    finally:
        kafka("stop")
        subprocess.run(["rm", "-rf", str(home)], check=False)


@pytest.fixture
def own_postgres() -> Iterator[tuple[Service, str]]:
    """A PostgreSQL server of the drill's own; yields its controller and URL."""
    home = _service_home("postgres")
    postgres = Service(POSTGRES_DEV, {"AMUR_PG_HOME": str(home), "AMUR_PG_PORT": str(free_port())})
    postgres("start")
    try:
        yield postgres, postgres("url")
    finally:
        postgres("stop")
        subprocess.run(["rm", "-rf", str(home)], check=False)
