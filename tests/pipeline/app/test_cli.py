"""The `amur` command as a user types it (through Typer's runner, in the repository root)."""

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from pipeline.app.cli import app
from tests.support.local_site import LocalSite

REPO = Path(__file__).resolve().parents[3]
STORY = REPO / "tests" / "resources" / "e2e" / "primorye-jilin-tourism.html"


@pytest.fixture
def amur(monkeypatch):
    monkeypatch.chdir(REPO)
    monkeypatch.delenv("AMUR_CONFIG", raising=False)
    runner = CliRunner(env={"COLUMNS": "250"})
    return lambda *args, **kwargs: runner.invoke(app, list(args), **kwargs)


def test_config_check_accepts_the_shipped_config(amur):
    result = amur("config", "check")
    assert result.exit_code == 0 and "OK" in result.output


def test_config_check_prints_every_problem_and_exits_2(amur, tmp_path):
    bad = tmp_path / "sources.yaml"
    bad.write_text("sources:\n  - name: x\n    url: file:///etc/passwd\n  - name: y\n    url: https://a.example/rss\n    kind: newsletter\n")
    result = amur("config", "check", str(bad))
    assert result.exit_code == 2
    assert f"{bad}: sources.0.url:" in result.output
    assert f"{bad}: sources.1.kind:" in result.output and "'rss'" in result.output


def test_run_with_an_invalid_config_exits_2_naming_the_key(amur, tmp_path):
    config = tmp_path / "amur.yaml"
    config.write_text("transport: carrier-pigeon\n")
    result = amur("run", "--once", "--config", str(config))
    assert result.exit_code == 2
    assert f"{config}: transport:" in result.output


def test_run_refuses_an_unknown_role(amur):
    result = amur("run", "crawlers", "--once")
    assert result.exit_code == 2 and "choose one of: connectors, processors, stories, sinks" in result.output


def test_schemas_are_current(amur):
    result = amur("schemas", "export", "--check")
    assert result.exit_code == 0, result.output


@pytest.mark.slow
def test_classify_an_html_file_prints_the_classified_message(amur):
    result = amur("classify", str(STORY))
    assert result.exit_code == 0, result.output
    message = json.loads(result.output)
    verdict = message["classification"]
    assert verdict["is_cooperation"] is True
    assert "RU-PRI" in verdict["russian_parties"] and "CN-JL" in verdict["chinese_parties"]
    assert message["article"]["title"].startswith("Primorye and Jilin")


@pytest.mark.slow
def test_classify_a_url_and_standard_input(amur, tmp_path):
    config = tmp_path / "amur.yaml"
    config.write_text(f"fetch:\n  allow_networks: [127.0.0.0/8]\nmodel:\n  gazetteer_dir: {REPO / 'config/gazetteer'}\n"
                      f"  classifier_config: {REPO / 'config/classifier.yaml'}\n")
    (tmp_path / "sources.yaml").write_text("sources: []\n")
    with LocalSite() as site:
        url = site.add("/story.html", STORY.read_bytes(), "text/html; charset=utf-8") or site.url("/story.html")
        refused = amur("classify", url)  # the shipped configuration allows no loopback address
        from_url = amur("classify", url, "--config", str(config))
    assert refused.exit_code == 1 and "refused: 127.0.0.1 is a loopback address (fetch.allow_networks" in refused.output
    assert from_url.exit_code == 0, from_url.output
    assert json.loads(from_url.output)["article"]["url"] == url
    from_stdin = amur("classify", "-", input="The weather in Lisbon stayed sunny all week.")
    assert from_stdin.exit_code == 0
    assert json.loads(from_stdin.output)["classification"]["is_cooperation"] is False


@pytest.mark.slow
def test_classify_jsonl_prints_one_result_per_line(amur, tmp_path):
    lines = tmp_path / "articles.jsonl"
    lines.write_text(
        json.dumps({"title": "Timber deal", "text": "Khabarovsk Krai and Heilongjiang signed a timber processing agreement."}) + "\n\n"
        + json.dumps({"text": "A new bakery opened in Oslo."}) + "\n"
    )
    result = amur("classify", "--jsonl", str(lines))
    assert result.exit_code == 0, result.output
    verdicts = [json.loads(line)["classification"]["is_cooperation"] for line in result.output.splitlines()]
    assert verdicts == [True, False]


def test_classify_jsonl_names_the_bad_line(amur, tmp_path):
    lines = tmp_path / "articles.jsonl"
    lines.write_text('{"text": "fine"}\n{"title": "no text"}\n')
    result = amur("classify", "--jsonl", str(lines))
    assert result.exit_code == 1
    assert f"{lines}:2: needs a string field 'text'" in result.output


@pytest.mark.slow
def test_eval_on_the_labeled_set_reaches_f1_090(amur):
    result = amur("eval", "tests/data/labeled.jsonl")
    assert result.exit_code == 0, result.output
    overall = next(line for line in result.output.splitlines() if line.startswith("overall"))
    f1 = float(overall.split()[-1])
    assert f1 >= 0.9, result.output
