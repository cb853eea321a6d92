"""The whole pipeline as an operator runs it: three role processes over a real transport.

A local web server on 127.0.0.1 serves an RSS feed with two Russia–China cooperation stories
and one unrelated story. Each test runs ``amur run ROLE --once`` as separate processes — over
the real Kafka broker and over the embedded log file — and checks the records, the Atom
alert feed and every message on the topics.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import threading
import time
from collections.abc import Sequence
from pathlib import Path

import feedparser
import httpx
import pytest

from pipeline.app.roles import group_name
from pipeline.core.errors import TransportError
from pipeline.core.settings import load_settings
from pipeline.core.topology import Topics, roles
from pipeline.core.transport import make_transport
from tests.support.contracts import assert_matches_schema
from tests.support.databases import postgres_schema_url
from tests.support.deployment import AMUR, query, read_topic
from tests.support.local_site import LocalSite, delayed
from tests.support.ports import free_port
from tests.support.smtp import SmtpServer
from tests.support.webhook_receiver import WebhookReceiver

pytestmark = pytest.mark.slow

RESOURCES = Path(__file__).resolve().parents[1] / "resources" / "e2e"
STORIES = {"amur-heilongjiang-freight.html", "primorye-jilin-tourism.html"}
UNRELATED = "salmon-prices.html"


@pytest.fixture
def site():
    with LocalSite() as local:
        base = local.base_url
        local.add("/feed.xml", (RESOURCES / "feed.xml").read_text().replace("{base}", base).encode(), "application/rss+xml")
        for page in [*STORIES, UNRELATED]:
            local.add(f"/news/{page}", (RESOURCES / page).read_bytes(), "text/html; charset=utf-8")
        yield local


@pytest.fixture(params=[
    "embedded",
    pytest.param("kafka", marks=pytest.mark.kafka),
    pytest.param("kafka+postgres", marks=[pytest.mark.kafka, pytest.mark.postgres]),
])
def deployment(request, tmp_path, site, topic_prefix):
    """A config directory for one deployment, and a runner of its role processes."""
    transport, _, database = request.param.partition("+")
    bootstrap = request.getfixturevalue("kafka_bootstrap") if transport == "kafka" else "127.0.0.1:9"
    sources = {"news": site.url("/feed.xml")}
    if database != "postgres":
        yield Deployment(tmp_path, transport, bootstrap, topic_prefix, sources)
        return
    with postgres_schema_url() as database_url:
        yield Deployment(tmp_path, transport, bootstrap, topic_prefix, sources, database_url)


class Deployment:
    def __init__(
        self, root: Path, transport: str, bootstrap: str, prefix: str, sources: dict[str, str],
        database_url: str | None = None,
    ):
        self.root = root
        self.config = root / "amur.yaml"
        self.database_url = database_url or f"sqlite:///{root / 'amur.sqlite'}"
        self.atom = root / "feeds" / "all.atom"  # every story: the default subscription's feed
        self.topics = Topics(prefix)
        self.environment: dict[str, str] = {}
        self.smtp_port = free_port()  # where a test's SMTP server listens, when it starts one
        self.config.write_text(
            f"transport: {transport}\n"
            f"database_url: '{self.database_url}'\n"
            f"kafka:\n  bootstrap_servers: {bootstrap}\n  topic_prefix: {prefix}\n  group_prefix: {prefix}g\n"
            f"embedded:\n  path: {root / 'log.sqlite'}\n  partitions: 2\n"
            f"fetch:\n  per_host_delay_seconds: 0\n  timeout_seconds: 5\n  allow_networks: [127.0.0.0/8]\n"
            f"sinks:\n  - type: records\n  - type: alerts\n"
            f"  - type: feeds\n    directory: {root / 'feeds'}\n"
            f"  - type: webhooks\n    first_retry_seconds: 0.1\n    poll_seconds: 0.1\n"
            f"  - type: email\n    first_retry_seconds: 0.1\n    poll_seconds: 0.1\n"
            f"email:\n  host: 127.0.0.1\n  port: {self.smtp_port}\n  security: none\n  sender: amur@example.org\n"
        )
        self.write_sources(sources)

    def write_sources(self, sources: dict[str, str]) -> None:
        lines = ["sources:"] + [f"  - name: {name}\n    url: {url}\n    poll_interval_seconds: 60" for name, url in sources.items()]
        (self.root / "sources.yaml").write_text("\n".join(lines) + "\n")

    def run(self, *args: str, failpoints: str = "") -> subprocess.CompletedProcess:
        env = {k: v for k, v in os.environ.items() if not k.startswith("AMUR_")}
        env.update(self.environment, AMUR_FAILPOINTS=failpoints)
        return subprocess.run(
            [*AMUR, "run", *args, "--once", "--config", str(self.config)],
            env=env, capture_output=True, text=True, timeout=240,
        )

    def command(self, *args: str) -> subprocess.CompletedProcess:
        """Any other ``amur`` command on this deployment's configuration."""
        env = {k: v for k, v in os.environ.items() if not k.startswith("AMUR_")}
        env.update(self.environment)
        return subprocess.run([*AMUR, *args, "--config", str(self.config)], env=env, capture_output=True, text=True, timeout=240)

    def run_roles(self) -> list[subprocess.CompletedProcess]:
        results = [self.run(role) for role in roles()]
        for result in results:
            assert result.returncode == 0, result.stderr[-3000:]
        return results

    def query(self, sql: str) -> list:
        return query(self.database_url, sql)

    def alert_links(self) -> list[str]:
        parsed = feedparser.parse(self.atom.read_bytes())
        assert not parsed.bozo, parsed.bozo_exception
        return sorted(entry.link.rsplit("/", 1)[-1] for entry in parsed.entries)

    def topic_values(self, kind: str) -> list[bytes]:
        return read_topic(self.config, getattr(self.topics, kind), f"{self.topics.prefix}reader-{kind}")

def test_stories_flow_to_records_and_alerts_once(deployment):
    first = deployment.run_roles()
    assert "news: 3 new article(s)" in first[0].stdout

    records = deployment.query("SELECT url, is_cooperation, entities, chinese_parties FROM articles")
    assert len(records) == 3
    verdicts = {url.rsplit("/", 1)[-1]: bool(flag) for url, flag, _, _ in records}
    assert verdicts == {**{page: True for page in STORIES}, UNRELATED: False}
    for url, flag, entities, chinese in records:
        if flag:
            # SQLite hands JSON columns back as text, PostgreSQL as parsed values.
            entities, chinese = (json.loads(v) if isinstance(v, str) else v for v in (entities, chinese))
            assert any((e["canonical_id"] or "").startswith("CN-") for e in entities) and chinese, url
    assert deployment.alert_links() == sorted(STORIES)

    # Polling again finds nothing new and changes nothing.
    again = deployment.run_roles()
    assert "news: 0 new article(s)" in again[0].stdout
    assert deployment.query("SELECT COUNT(*) FROM articles") == [(3,)]
    assert deployment.query("SELECT COUNT(*) FROM alerts") == [(2,)]
    assert deployment.alert_links() == sorted(STORIES)
    # The default subscription's feeds (no subscriptions file here) hold the same two stories.
    everything = feedparser.parse((deployment.root / "feeds" / "all.atom").read_bytes())
    assert not everything.bozo and sorted(entry.link.rsplit("/", 1)[-1] for entry in everything.entries) == sorted(STORIES)
    items = json.loads((deployment.root / "feeds" / "all.json").read_text(encoding="utf-8"))["items"]
    assert sorted(item["url"].rsplit("/", 1)[-1] for item in items) == sorted(STORIES)

    for kind in ("articles", "classified", "alerts"):
        values = deployment.topic_values(kind)
        assert values, kind
        for value in values:
            assert_matches_schema(kind, value)


def test_a_processor_killed_before_commit_loses_and_duplicates_nothing(deployment):
    assert deployment.run("connectors").returncode == 0
    crashed = deployment.run("processors", failpoints="processors.before_commit")
    assert crashed.returncode == -9, crashed.stderr[-3000:]
    # The killed run produced its outputs but never committed: the restart handles them again.
    restarted = deployment.run("processors")
    assert restarted.returncode == 0, restarted.stderr[-3000:]
    assert "processors: handled 3 record(s)" in restarted.stdout
    assert len(deployment.topic_values("classified")) == 6
    for role in ("stories", "sinks"):
        assert deployment.run(role).returncode == 0

    assert deployment.query("SELECT COUNT(*) FROM articles") == [(3,)]
    assert deployment.query("SELECT COUNT(*) FROM alerts") == [(2,)]
    assert deployment.alert_links() == sorted(STORIES)


def test_a_connector_killed_between_flush_and_commit_re_emits_and_nothing_doubles(deployment):
    crashed = deployment.run("connectors", failpoints="connectors.before_commit")
    assert crashed.returncode == -9, crashed.stderr[-3000:]
    # The first batch (the poll's three articles) reached the topic, but the connector was
    # killed before it recorded them as emitted: the restart emits them again.
    assert len(deployment.topic_values("articles")) == 3
    restarted = deployment.run("connectors")
    assert "news: 3 new article(s)" in restarted.stdout
    assert len(deployment.topic_values("articles")) == 6
    for role in ("processors", "stories", "sinks"):
        assert deployment.run(role).returncode == 0
    assert deployment.query("SELECT COUNT(*) FROM articles") == [(3,)]
    assert deployment.alert_links() == sorted(STORIES)


def test_a_sink_killed_after_writing_but_before_commit_writes_nothing_twice(deployment):
    for role in ("connectors", "processors", "stories"):
        assert deployment.run(role).returncode == 0
    crashed = deployment.run("sinks", failpoints="sinks.before_commit")
    assert crashed.returncode == -9, crashed.stderr[-3000:]
    assert deployment.alert_links() == sorted(STORIES)  # written, not committed
    restarted = deployment.run("sinks")
    assert "sinks: handled 5 record(s)" in restarted.stdout  # 3 classified + 2 alerts again
    assert deployment.query("SELECT COUNT(*) FROM alerts") == [(2,)]
    assert deployment.alert_links() == sorted(STORIES)


def test_a_poison_message_is_dead_lettered_once_and_the_stream_goes_on(deployment):
    transport = make_transport(load_settings(deployment.config))
    transport.ensure_topics(deployment.topics.all())
    producer = transport.producer()
    producer.produce(deployment.topics.articles, b"poison", b"\x00\x9f{ this is not an article")
    producer.flush()
    producer.close()
    transport.close()

    assert deployment.run("connectors").returncode == 0
    first = deployment.run("processors")
    assert first.returncode == 0, first.stderr[-3000:]
    assert "processors: handled 4 record(s)" in first.stdout
    again = deployment.run("processors")
    assert "processors: handled 0 record(s)" in again.stdout  # committed: no crash loop, no replay
    (letter,) = [assert_matches_schema("dlq", value) for value in deployment.topic_values("dlq")]
    assert letter["stage"] == "processors" and letter["error_type"] == "MessageError"
    assert letter["topic"] == deployment.topics.articles and letter["key"] == "poison"
    for role in ("stories", "sinks"):
        assert deployment.run(role).returncode == 0
    assert deployment.alert_links() == sorted(STORIES)


def test_poison_on_every_input_topic_is_dead_lettered_with_its_reason_and_the_stream_goes_on(deployment):
    """Invalid JSON and a schema version newer than the readers know, on articles, classified
    and alerts: each reader sends each to the dead-letter topic once, and the stories still
    flow."""
    newer = json.dumps({"schema_version": 99, "id": "f" * 32, "note": "written by a future Amur"}).encode()
    transport = make_transport(load_settings(deployment.config))
    transport.ensure_topics(deployment.topics.all())
    producer = transport.producer()
    for kind in ("articles", "classified", "alerts"):
        producer.produce(deployment.topics.name(kind), f"json-{kind}".encode(), b"{ not json")
        producer.produce(deployment.topics.name(kind), f"newer-{kind}".encode(), newer)
    producer.flush()
    producer.close()
    transport.close()

    results = deployment.run_roles()
    again = deployment.run_roles()

    assert all(result.returncode == 0 for result in results + again)
    letters = [assert_matches_schema("dlq", value) for value in deployment.topic_values("dlq")]
    by_reader = sorted((letter["stage"], letter["key"]) for letter in letters)
    # classified is read by two roles (stories, and the records sink): each refuses it once.
    assert by_reader == sorted([
        ("processors", "json-articles"), ("processors", "newer-articles"),
        ("stories", "json-classified"), ("stories", "newer-classified"),
        ("sinks", "json-classified"), ("sinks", "newer-classified"),
        ("sinks", "json-alerts"), ("sinks", "newer-alerts"),
    ])
    newer_reasons = [letter["reason"] for letter in letters if letter["key"].startswith("newer-")]
    assert all("schema version 99 is newer than this reader's" in reason for reason in newer_reasons)
    assert deployment.query("SELECT COUNT(*) FROM articles") == [(3,)]
    assert deployment.alert_links() == sorted(STORIES)


def test_bad_feed_bad_page_and_bad_config_are_reported_and_the_rest_runs(deployment, site):
    site.add("/broken.xml", b"<rss><channel><title>cut short", "application/rss+xml")
    text = (RESOURCES / "feed.xml").read_text().replace("{base}", site.base_url)
    site.add("/feed-with-404.xml", text.replace("salmon-prices.html", "gone.html").encode(), "application/rss+xml")
    deployment.write_sources({"broken": site.url("/broken.xml"), "news": site.url("/feed-with-404.xml")})

    connectors = deployment.run("connectors")
    assert connectors.returncode == 0, connectors.stderr[-3000:]
    assert "source broken: FAILED:" in connectors.stdout
    # The missing page's entry still reaches the topic, from its summary, saying why.
    assert "news: 3 new article(s), 1 failed item(s)" in connectors.stdout
    letters = [assert_matches_schema("dlq", value) for value in deployment.topic_values("dlq")]
    assert [letter["stage"] for letter in letters] == ["connectors"]
    assert "404" in letters[0]["reason"] and letters[0]["payload"].endswith("/news/gone.html")
    articles = [assert_matches_schema("articles", value) for value in deployment.topic_values("articles")]
    [without_page] = [article for article in articles if article["page_error"]]
    assert without_page["url"].endswith("/news/gone.html") and "404" in without_page["page_error"]

    for role in ("processors", "stories", "sinks"):
        assert deployment.run(role).returncode == 0
    assert deployment.alert_links() == sorted(STORIES)

    status = deployment.command("status")
    assert status.returncode == 0, status.stderr[-3000:]
    assert "sources: 2 — 1 failing, 1 ok" in status.stdout  # news emitted its other pages after the 404
    assert "broken: failing — " in status.stdout and "XML error" in status.stdout
    assert "lag (records not yet committed): processors 0, stories 0, sinks 0" in status.stdout
    assert "dead letters: 1 — connectors 1" in status.stdout
    assert "last alert: " in status.stdout and "last alert: none yet" not in status.stdout

    deployment.config.write_text(deployment.config.read_text() + "batch_size: lots\n")
    invalid = deployment.run("sinks")
    assert invalid.returncode == 2
    assert f"{deployment.config}: batch_size:" in invalid.stderr and "whole number" in invalid.stderr


def test_all_roles_in_one_process_until_stopped(tmp_path, site, topic_prefix):
    """`amur run` (no --once) on the embedded default: alerts appear, SIGTERM stops it cleanly."""
    deployment = Deployment(tmp_path, "embedded", "127.0.0.1:9", topic_prefix, {"news": site.url("/feed.xml")})
    env = {k: v for k, v in os.environ.items() if not k.startswith("AMUR_")}
    process = subprocess.Popen([*AMUR, "run", "--config", str(deployment.config)], env=env,
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        finished = threading.Event()
        for _ in range(120):
            if deployment.atom.exists() and len(feedparser.parse(deployment.atom.read_bytes()).entries) == 2:
                finished.set()
                break
            if finished.wait(1.0) or process.poll() is not None:
                break
        assert finished.is_set(), process.stderr.read() if process.poll() is not None else "no alerts within 120 s"
    finally:
        process.terminate()
        _, stderr = process.communicate(timeout=60)
    assert process.returncode == 0, stderr[-3000:]
    assert deployment.alert_links() == sorted(STORIES)


def test_sigterm_cuts_a_poll_in_flight_short_within_five_seconds_and_keeps_what_it_emitted(tmp_path, site, topic_prefix):
    """A real `amur run connectors` whose poll waits on a page that never comes stops on SIGTERM
    in under 5 s (the fetch timeout is a minute), says which poll it cut short, and the article
    it emitted before is on the topic."""
    fast = "amur-heilongjiang-freight.html"
    site.add_handler("/news/hanging.html", delayed(120, b"<html></html>"))
    site.add("/slow.xml", (
        "<?xml version='1.0'?><rss version='2.0'><channel><title>Slow</title>"
        f"<item><title>Freight</title><link>{site.url('/news/' + fast)}</link><pubDate>Mon, 23 Nov 2026 08:00:00 GMT</pubDate></item>"
        f"<item><title>Hanging</title><link>{site.url('/news/hanging.html')}</link><pubDate>Mon, 23 Nov 2026 07:00:00 GMT</pubDate></item>"
        "</channel></rss>"
    ).encode(), "application/rss+xml")
    deployment = Deployment(tmp_path, "embedded", "127.0.0.1:9", topic_prefix, {"slow": site.url("/slow.xml")})
    deployment.config.write_text(deployment.config.read_text().replace("timeout_seconds: 5", "timeout_seconds: 60"))
    env = {k: v for k, v in os.environ.items() if not k.startswith("AMUR_")}
    process = subprocess.Popen([*AMUR, "run", "connectors", "--config", str(deployment.config)], env=env,
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 60
        while not site.requests_to("/news/hanging.html") and time.monotonic() < deadline and process.poll() is None:
            time.sleep(0.1)
        assert site.requests_to("/news/hanging.html"), "the poll never reached the hanging page"
        process.send_signal(signal.SIGTERM)  # while the page hangs
        signalled = time.monotonic()
        _, stderr = process.communicate(timeout=30)
        took = time.monotonic() - signalled
    finally:
        if process.poll() is None:
            process.kill()
    assert process.returncode == 0, stderr[-3000:]
    assert took < 5, f"SIGTERM took {took:.1f} s"
    assert "stopping: cutting short the polls of slow" in stderr
    emitted = [json.loads(value)["url"] for value in deployment.topic_values("articles")]
    assert [url.rsplit("/", 1)[-1] for url in emitted] == [fast]


def test_a_running_pipeline_serves_its_source_and_stage_metrics(tmp_path, site, topic_prefix):
    """`amur run --metrics-port` (every role, continuous): /metrics has the per-source and per-stage series."""
    deployment = Deployment(tmp_path, "embedded", "127.0.0.1:9", topic_prefix, {"news": site.url("/feed.xml")})
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("AMUR_")}
    process = subprocess.Popen([*AMUR, "run", "--metrics-port", str(port), "--config", str(deployment.config)], env=env,
                               stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    wanted = [
        'amur_source_polls_total{outcome="changed",source="news"} 1.0',
        'amur_source_new_items_total{source="news"} 3.0',
        'amur_stage_records_in_total{stage="processors"} 3.0',
        'amur_stage_records_out_total{stage="processors",topic="' + deployment.topics.classified + '"} 3.0',
        'amur_stage_batch_seconds_count{stage="sinks"}',
        'amur_stage_latency_seconds_bucket{le="+Inf",stage="stories"}',
    ]
    scraped = ""
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and process.poll() is None:
            try:
                scraped = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=5).text
            except httpx.HTTPError:
                scraped = ""
            if all(series in scraped for series in wanted):
                break
            time.sleep(1)
    finally:
        process.terminate()
        _, stderr = process.communicate(timeout=60)
    assert process.returncode == 0, stderr[-3000:]
    missing = [series for series in wanted if series not in scraped]
    assert not missing, f"missing {missing} in:\n{scraped[-3000:]}"
    assert 'amur_source_interval_seconds{source="news"} 60.0' in scraped


@pytest.mark.kafka
def test_workers_run_each_role_as_processes_ride_out_a_killed_one_and_stop_on_sigterm(tmp_path, site, topic_prefix, kafka_bootstrap):
    """`amur run --workers processors=2`: every role its own processes; a processor SIGKILLed is
    started again and nothing is lost or doubled; SIGTERM stops them all within 10 s."""
    deployment = Deployment(tmp_path, "kafka", kafka_bootstrap, topic_prefix, {"news": site.url("/feed.xml")})
    env = {k: v for k, v in os.environ.items() if not k.startswith("AMUR_")}
    process = subprocess.Popen([*AMUR, "run", "--workers", "processors=2", "--config", str(deployment.config)], env=env,
                               stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    lines: list[str] = []
    reader = threading.Thread(target=lambda: lines.extend(process.stderr), daemon=True)  # the workers log a lot
    reader.start()

    def wait_until(condition, seconds: float) -> bool:
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline and process.poll() is None:
            if condition():
                return True
            time.sleep(0.5)
        return False

    def settled() -> bool:
        return deployment.atom.exists() and len(deployment.alert_links()) == 2 and deployment.query("SELECT COUNT(*) FROM articles") == [(3,)]

    try:
        assert wait_until(settled, 180), "".join(lines)[-3000:]
        started = [line for line in lines if "worker started: worker=processors#" in line]
        assert len(started) == 2, "".join(lines)[-3000:]
        victim = int(started[0].rsplit("pid=", 1)[1])
        os.kill(victim, signal.SIGKILL)
        assert wait_until(lambda: sum("worker started: worker=processors#1" in line for line in lines) == 2, 30)
        time.sleep(3)
        process.send_signal(signal.SIGTERM)
        signalled = time.monotonic()
        process.wait(timeout=60)
        took = time.monotonic() - signalled
    finally:
        if process.poll() is None:
            process.kill()
    reader.join(timeout=10)
    assert process.returncode == 0, "".join(lines)[-3000:]
    assert took < 12, f"the workers took {took:.1f} s to stop"
    assert any("worker exited: worker=processors#1 code=-9" in line for line in lines)
    assert deployment.query("SELECT COUNT(*) FROM articles") == [(3,)]
    assert deployment.query("SELECT COUNT(*) FROM alerts") == [(2,)] and deployment.alert_links() == sorted(STORIES)


KAFKA_DEV = Path(__file__).resolve().parents[2] / "scripts" / "kafka-dev"


def _restart_broker() -> None:
    if subprocess.run([str(KAFKA_DEV), "status"], capture_output=True).returncode != 0:
        pytest.skip("the broker is not managed by scripts/kafka-dev here, so the test cannot restart it")
    for command in ("stop", "start"):
        done = subprocess.run([str(KAFKA_DEV), command], capture_output=True, text=True, timeout=180)
        assert done.returncode == 0, done.stdout + done.stderr


def _wait_for_members(config: Path, roles: Sequence[str], processes: Sequence[subprocess.Popen], seconds: float = 180) -> None:
    """Until every role's consumer group is stable with a member (each role has joined)."""
    settings = load_settings(config)
    transport = make_transport(settings)
    deadline = time.monotonic() + seconds
    try:
        while time.monotonic() < deadline:
            assert all(process.poll() is None for process in processes), "a role died while it started"
            try:
                if all(transport.group_members(group_name(settings, role)) for role in roles):
                    return
            except TransportError:
                pass  # the broker is still coming back
            time.sleep(0.5)
        raise AssertionError(f"the roles did not all join their groups within {seconds:.0f} s")
    finally:
        transport.close()


@pytest.mark.kafka
def test_running_roles_ride_out_a_broker_restart(tmp_path, site, topic_prefix, kafka_bootstrap):
    """Processors and sinks keep running through a broker restart while they start and join
    their groups, and through one after; nothing is lost or doubled."""
    deployment = Deployment(tmp_path, "kafka", kafka_bootstrap, topic_prefix, {"news": site.url("/feed.xml")})
    env = {k: v for k, v in os.environ.items() if not k.startswith("AMUR_")}
    names = ("processors", "stories", "sinks")
    roles = [
        subprocess.Popen([*AMUR, "run", role, "--config", str(deployment.config)], env=env,
                         stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        for role in names
    ]
    try:
        _restart_broker()  # while the roles load their models, create topics and join
        _wait_for_members(deployment.config, names, roles)
        _restart_broker()  # once they are members
        assert deployment.run("connectors").returncode == 0
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            if all(role.poll() is None for role in roles) and deployment.atom.exists():
                if len(deployment.alert_links()) == 2 and deployment.query("SELECT COUNT(*) FROM articles") == [(3,)]:
                    break
            time.sleep(1)
        assert all(role.poll() is None for role in roles), "a role died during the broker restart"
    finally:
        for role in roles:
            role.terminate()
        outputs = [role.communicate(timeout=60)[1] for role in roles]
    assert [role.returncode for role in roles] == [0] * len(roles), "\n".join(output[-2000:] for output in outputs)
    assert deployment.alert_links() == sorted(STORIES)
    assert deployment.query("SELECT COUNT(*) FROM alerts") == [(2,)]


def corridor_page(title: str, paragraphs: list[str], boilerplate: str) -> bytes:
    body = "".join(f"<p>{paragraph}</p>" for paragraph in paragraphs)
    return (
        f"<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'><title>{title}</title></head><body>"
        f"<header><nav>{boilerplate}</nav></header><article><h1>{title}</h1>{body}</article>"
        f"<footer>{boilerplate}</footer></body></html>"
    ).encode()


def test_one_story_from_three_outlets_is_one_alert_and_one_feed_entry(deployment, site):
    corridor = (RESOURCES.parent / "stories" / "grain-corridor.txt").read_text(encoding="utf-8").split("\n\n")
    tourism = (RESOURCES.parent / "stories" / "tourism-season.txt").read_text(encoding="utf-8").split("\n\n")
    title = "Amur Oblast and Heilongjiang agree a year-round grain corridor"
    pages = {
        "pravda": corridor_page(title, corridor, "Amur Pravda | Regions | Economy | Sport"),
        "wire": corridor_page(title, corridor, "Far East Wire — subscribe to our morning briefing"),
        "herald": corridor_page("Grain will cross the Amur all year: regions sign terminal deal", corridor[:-1], "Herald"),
        "tourism": corridor_page("Amur Oblast and Heilongjiang open a joint tourism season", tourism, "Amur Pravda"),
    }
    sources = {}
    for outlet, page in pages.items():
        site.add(f"/{outlet}/story", page, "text/html; charset=utf-8")
        feed = (
            f"<?xml version='1.0'?><rss version='2.0'><channel><title>{outlet}</title>"
            f"<item><title>{outlet}</title><link>{site.url(f'/{outlet}/story')}</link></item></channel></rss>"
        )
        site.add(f"/{outlet}.xml", feed.encode(), "application/rss+xml")
        sources[outlet] = site.url(f"/{outlet}.xml")
    deployment.write_sources(sources)
    with WebhookReceiver() as receiver:
        (deployment.root / "subscriptions.yaml").write_text(
            "subscriptions:\n  - name: all\n  - name: partners\n    filters: {regions: [CN-HL]}\n    channels:\n"
            f"      - type: webhook\n        url: {receiver.url}\n        secret_env: AMUR_E2E_HOOK_SECRET\n"
        )
        deployment.environment["AMUR_E2E_HOOK_SECRET"] = "e2e-secret"

        deployment.run_roles()

    # One story.created per story, whatever the outlets: the grain corridor and the tourism season.
    created = sorted(json.loads(request.body)["data"]["title"] for request in receiver.accepted)
    assert [json.loads(request.body)["type"] for request in receiver.accepted] == ["story.created"] * 2
    assert len(receiver.requests) == 2 and len(created) == 2

    # Which outlet's copy leads depends on the order the partitions are read in; the grouping does not.
    stories = {
        version: sorted(outlet["source"] for outlet in (outlets if isinstance(outlets, list) else json.loads(outlets)))
        for version, outlets in deployment.query("SELECT version, outlets FROM alerts")
    }
    assert stories == {3: ["herald", "pravda", "wire"], 1: ["tourism"]}
    everything = feedparser.parse((deployment.root / "feeds" / "all.atom").read_bytes())
    assert len(everything.entries) == 2
    assert sorted(entry.title for entry in everything.entries) == sorted(row[0] for row in deployment.query("SELECT title FROM alerts"))


def _language_page(title: str, text: str, language: str) -> bytes:
    body = "".join(f"<p>{paragraph}</p>" for paragraph in text.split("\n\n") if paragraph.strip())
    return (
        f"<!DOCTYPE html><html lang='{language}'><head><meta charset='utf-8'><title>{title}</title></head>"
        f"<body><article><h1>{title}</h1>{body}</article></body></html>"
    ).encode()


@pytest.mark.parametrize("setup", ["embedded", pytest.param("kafka+postgres", marks=[pytest.mark.kafka, pytest.mark.postgres])])
def test_one_event_reported_in_three_languages_is_one_story_whoever_handles_each_report(
    setup, request, tmp_path, site, topic_prefix,
):
    """A cable-car contract reported by a Russian, a Chinese and an English outlet: one story
    listing the three with their languages, one feed entry, one story.created. On Kafka with
    PostgreSQL two stories members share the reports (`--workers stories=2`)."""
    sources = {}
    for language in ("ru", "zh", "en"):
        title, _, text = (RESOURCES.parent / "stories" / "cable-car" / f"{language}.txt").read_text(encoding="utf-8").partition("\n\n")
        site.add(f"/{language}/cable-car", _language_page(title, text, language), "text/html; charset=utf-8")
        feed = (
            f"<?xml version='1.0' encoding='utf-8'?><rss version='2.0'><channel><title>{language} desk</title>"
            f"<item><title>{title}</title><link>{site.url(f'/{language}/cable-car')}</link>"
            # The Chinese report is too short for the page extractor: its text is the feed's summary.
            f"<description>{text}</description><pubDate>Thu, 19 Nov 2026 09:00:00 GMT</pubDate></item></channel></rss>"
        )
        site.add(f"/{language}.xml", feed.encode("utf-8"), "application/rss+xml; charset=utf-8")
        sources[f"{language}-desk"] = site.url(f"/{language}.xml")

    def check(deployment: Deployment, receiver: WebhookReceiver) -> None:
        rows = deployment.query("SELECT id, outlets, headline FROM alerts")
        assert len(rows) == 1, rows
        outlets = rows[0][1] if isinstance(rows[0][1], list) else json.loads(rows[0][1])
        assert sorted((outlet["source"], outlet["language"]) for outlet in outlets) == [
            ("en-desk", "en"), ("ru-desk", "ru"), ("zh-desk", "zh"),
        ]
        assert rows[0][2] == next(outlet["title"] for outlet in outlets if outlet["language"] == "en")
        assert len(feedparser.parse(deployment.atom.read_bytes()).entries) == 1
        assert [json.loads(r.body)["type"] for r in receiver.accepted].count("story.created") == 1

    def settled(deployment: Deployment) -> bool:
        return (deployment.atom.exists() and deployment.query("SELECT COUNT(*) FROM articles") == [(3,)]
                and [len(json.loads(o) if isinstance(o, str) else o) for (o,) in deployment.query("SELECT outlets FROM alerts")] == [3])

    with WebhookReceiver() as receiver:
        subscriptions = (
            "subscriptions:\n  - name: all\n    channels:\n      - type: atom\n"
            f"      - type: webhook\n        url: {receiver.url}\n        secret_env: AMUR_E2E_HOOK_SECRET\n"
        )
        if setup == "embedded":
            deployment = Deployment(tmp_path, "embedded", "127.0.0.1:9", topic_prefix, sources)
            (deployment.root / "subscriptions.yaml").write_text(subscriptions)
            deployment.environment["AMUR_E2E_HOOK_SECRET"] = "e2e-secret"
            result = deployment.run()
            assert result.returncode == 0, result.stderr[-3000:]
            receiver.wait_for(accepted=1)
            check(deployment, receiver)
            return
        with postgres_schema_url() as database_url:
            deployment = Deployment(tmp_path, "kafka", request.getfixturevalue("kafka_bootstrap"), topic_prefix, sources, database_url)
            (deployment.root / "subscriptions.yaml").write_text(subscriptions)
            env = {k: v for k, v in os.environ.items() if not k.startswith("AMUR_")} | {"AMUR_E2E_HOOK_SECRET": "e2e-secret"}
            process = subprocess.Popen([*AMUR, "run", "--workers", "stories=2", "--config", str(deployment.config)], env=env,
                                       stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
            lines: list[str] = []
            reader = threading.Thread(target=lambda: lines.extend(process.stderr), daemon=True)
            reader.start()
            try:
                deadline = time.monotonic() + 180
                while not settled(deployment):
                    assert process.poll() is None and time.monotonic() < deadline, "".join(lines)[-3000:]
                    time.sleep(0.5)
                assert sum("worker started: worker=stories#" in line for line in lines) == 2, "".join(lines)[-3000:]
                receiver.wait_for(accepted=1)
                check(deployment, receiver)
            finally:
                process.send_signal(signal.SIGTERM)
                try:
                    process.wait(timeout=60)
                except subprocess.TimeoutExpired:
                    process.kill()


@pytest.mark.parametrize("failpoint", ["connectors.before_commit", "processors.before_commit", "stories.before_commit", "sinks.before_commit"])
def test_killed_at_any_failpoint_and_run_again_each_story_version_is_one_delivery(deployment, failpoint):
    """SIGKILL between a role's outputs and its commit, then a rerun: every story version
    reaches the webhook under exactly one webhook-id, and the mailbox under exactly one
    Message-ID (a repeat may come, never a new id)."""
    with WebhookReceiver() as receiver, SmtpServer(port=deployment.smtp_port) as mailbox:
        (deployment.root / "subscriptions.yaml").write_text(
            "subscriptions:\n  - name: all\n    channels:\n      - type: atom\n"
            f"      - type: webhook\n        url: {receiver.url}\n        secret_env: AMUR_E2E_HOOK_SECRET\n        updates: true\n"
            "      - type: email\n        to: [desk@example.org]\n        updates: true\n"
        )
        deployment.environment["AMUR_E2E_HOOK_SECRET"] = "e2e-secret"
        crashed = deployment.run(failpoints=failpoint)
        assert crashed.returncode == -9, crashed.stderr[-3000:]
        rerun = deployment.run()
        assert rerun.returncode == 0, rerun.stderr[-3000:]
        versions = {(story_id, version) for story_id, version in deployment.query("SELECT story_id, version FROM alert_versions")}
        receiver.wait_for(accepted=len(versions))
        mailbox.wait_for(len(versions))
    assert {message["Message-ID"] for message in mailbox.messages} == {
        f"<{story_id}.v{version}.all@example.org>" for story_id, version in versions
    }
    ids_of: dict[tuple[str, str, int], set[str]] = {}
    for request in receiver.accepted:
        body = json.loads(request.body)
        ids_of.setdefault((body["type"], body["data"]["id"], body["data"]["version"]), set()).add(request.headers["webhook-id"])
    assert {(story_id, version) for _, story_id, version in ids_of} == versions
    assert all(len(ids) == 1 for ids in ids_of.values()), ids_of
    assert sorted(kind for kind, _, _ in ids_of) == ["story.created"] * len({story_id for story_id, _ in versions}) + [
        "story.updated"] * (len(versions) - len({story_id for story_id, _ in versions}))
    assert deployment.alert_links() == sorted(STORIES)
