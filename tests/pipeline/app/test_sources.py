"""Operator commands on sources: a dry run touches nothing; health reports the state store."""

from datetime import timedelta
from pathlib import Path

import pytest
import sqlalchemy as sa
from typer.testing import CliRunner

from pipeline.app.cli import app
from pipeline.core.db import make_engine
from pipeline.core.messages import utc_now
from pipeline.core.state import StateStore
from tests.support.local_site import LocalSite
from tests.support.messages import backdate_emissions

RESOURCES = Path(__file__).resolve().parents[2] / "resources" / "e2e"


@pytest.fixture
def setup(tmp_path):
    with LocalSite() as site:
        text = (RESOURCES / "feed.xml").read_text().replace("{base}", site.base_url)
        site.add("/feed.xml", text.replace("salmon-prices.html", "missing.html").encode(), "application/rss+xml")
        for page in ("amur-heilongjiang-freight.html", "primorye-jilin-tourism.html"):
            site.add(f"/news/{page}", (RESOURCES / page).read_bytes(), "text/html; charset=utf-8")
        config = tmp_path / "amur.yaml"
        config.write_text(f"database_url: sqlite:///{tmp_path / 'amur.sqlite'}\nfetch:\n  per_host_delay_seconds: 0\n  allow_networks: [127.0.0.0/8]\n")
        (tmp_path / "sources.yaml").write_text(
            f"sources:\n  - name: wire\n    url: {site.url('/feed.xml')}\n"
            f"  - name: dead\n    url: http://127.0.0.1:9/feed.xml\n"
        )
        runner = CliRunner(env={"COLUMNS": "250"})
        yield lambda *args: runner.invoke(app, [*args, "--config", str(config)]), tmp_path


@pytest.mark.slow
def test_a_dry_run_shows_articles_failures_and_verdicts_without_touching_state(setup):
    amur, root = setup
    result = amur("sources", "test", "wire", "--classify")
    assert result.exit_code == 0, result.output
    # The missing page's entry is emitted from its summary, and its failure is listed too.
    assert "source wire: 3 article(s), 1 failed item(s)" in result.output
    assert "Primorye and Jilin launch yuan settlements" in result.output
    assert result.output.count("cooperation=True") == 2
    assert "missing.html" in result.output and "404" in result.output
    assert "text from the feed's summary; the page failed: HTTP 404 Not Found" in result.output
    # What it is doing, as it goes, before the summary.
    said = result.output.index("source wire: 3 article(s)")
    assert -1 < result.output.find("polling wire: http://127.0.0.1") < result.output.find("  extracted: ") < said
    assert -1 < result.output.find("classifying 3 article(s)") < said
    engine = sa.create_engine(f"sqlite:///{root / 'amur.sqlite'}")
    assert not sa.inspect(engine).has_table("seen_articles")


def test_a_dry_run_of_a_dead_or_unknown_source_says_why(setup):
    amur, _ = setup
    dead = amur("sources", "test", "dead")
    assert dead.exit_code == 1 and "error: source dead:" in dead.output
    unknown = amur("sources", "test", "nope")
    assert unknown.exit_code == 2 and "no source named 'nope'" in unknown.output and "known sources: dead, wire" in unknown.output


def test_health_lists_every_source_with_its_state(setup):
    amur, root = setup
    store = StateStore(make_engine(f"sqlite:///{root / 'amur.sqlite'}"))
    store.setup()
    store.record_failure("dead", "connection refused", utc_now())
    result = amur("sources", "health")
    assert result.exit_code == 0, result.output
    lines = {line.split()[0]: line for line in result.output.splitlines()[1:]}
    assert "never polled" in lines["wire"]
    assert "failing" in lines["dead"] and "connection refused" in lines["dead"]
    for _ in range(4):  # five in a row: connectors.unhealthy_after_failures
        store.record_failure("dead", "connection refused", utc_now())
    unhealthy = amur("sources", "status")
    assert " unhealthy " in next(line for line in unhealthy.output.splitlines() if line.startswith("dead"))


def test_a_source_that_answers_but_whose_items_all_fail_is_not_ok(setup):
    amur, root = setup
    store = StateStore(make_engine(f"sqlite:///{root / 'amur.sqlite'}"))
    store.setup()
    store.record_success("wire", None, None, utc_now())
    store.record_item_failure("wire", "a" * 32, "https://wire.example/a", "HTTP 404", permanent=True)
    store.record_item_failure("wire", "b" * 32, "https://wire.example/b", "read timeout", permanent=False)

    def wire_line() -> str:
        result = amur("sources", "health")
        assert result.exit_code == 0, result.output
        return next(line for line in result.output.splitlines() if line.startswith("wire"))

    failing = wire_line()
    assert "items failing" in failing and failing.split()[-1] != "ok"
    assert " 2 " in failing  # items seen
    # An article made from the feed's summary because its page failed is no recovery.
    store.mark_emitted("wire", [("a" * 32, "https://wire.example/a")], page_error="HTTP 404")
    still_failing = wire_line()
    assert "items failing" in still_failing and " 100% " in still_failing
    store.mark_emitted("wire", [("c" * 32, "https://wire.example/c")])
    recovered = wire_line()
    assert " ok " in recovered and " 3 " in recovered and " 67% " in recovered


def test_status_shows_a_silent_source_with_its_last_new_item_and_usual_gap(setup):
    amur, root = setup
    store = StateStore(make_engine(f"sqlite:///{root / 'amur.sqlite'}"))
    store.setup()
    store.record_success("wire", None, None, utc_now())
    backdate_emissions(store, "wire", [utc_now() - timedelta(hours=h) for h in (50, 44, 38, 32, 26)])
    result = amur("sources", "status")
    assert result.exit_code == 0, result.output
    wire = next(line for line in result.output.splitlines() if line.startswith("wire"))
    assert " silent " in wire and " 6.0h " in wire
    listed = amur("sources", "list")
    assert listed.exit_code == 0 and [line.split()[0] for line in listed.output.splitlines()] == ["source", "wire", "dead"]
