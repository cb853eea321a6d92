from pathlib import Path

import pytest

from pipeline.app.config_check import check_config
from pipeline.core.errors import ConfigError
from pipeline.core.settings import load_settings, load_sources

REPO = Path(__file__).resolve().parents[3]


def write(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    return path


def test_shipped_config_is_valid():
    assert check_config(REPO / "config" / "amur.yaml") == []


def test_defaults_apply_to_an_empty_file(tmp_path):
    settings = load_settings(write(tmp_path / "amur.yaml", ""))
    assert settings.transport == "embedded"
    assert settings.kafka.topic_prefix == "amur."


def test_environment_overrides_bootstrap_servers_and_secrets(tmp_path, monkeypatch):
    path = write(tmp_path / "amur.yaml", "transport: embedded\nkafka:\n  bootstrap_servers: a:1\n")
    monkeypatch.setenv("AMUR_TRANSPORT", "kafka")
    monkeypatch.setenv("AMUR_KAFKA_BOOTSTRAP_SERVERS", "b:2")
    monkeypatch.setenv("AMUR_KAFKA_SASL_PASSWORD", "s3cret")
    monkeypatch.setenv("AMUR_SERVE_TOKEN", "not a setting")  # the dashboard's token, read where it is used
    monkeypatch.setenv("AMUR_DATABASE_URL", "sqlite:///elsewhere.sqlite")
    settings = load_settings(path)
    assert settings.transport == "kafka"
    assert settings.kafka.bootstrap_servers == "b:2"
    assert settings.kafka.sasl_password.get_secret_value() == "s3cret"
    assert "s3cret" not in repr(settings)
    assert settings.database_url == "sqlite:///elsewhere.sqlite"


def test_invalid_yaml_names_file_line_and_fix(tmp_path):
    path = write(tmp_path / "amur.yaml", "transport: embedded\nkafka: [unclosed\n")
    with pytest.raises(ConfigError) as caught:
        load_settings(path)
    problem = caught.value.problems[0]
    assert problem.file == str(path)
    assert problem.key.startswith("line ")
    assert "invalid YAML" in problem.message
    assert problem.hint


def test_every_problem_is_reported_with_its_key(tmp_path):
    path = write(tmp_path / "amur.yaml", "transport: rabbit\nkafka:\n  partitions: 0\n  bootstrapservers: x\n")
    with pytest.raises(ConfigError) as caught:
        load_settings(path)
    keys = {problem.key for problem in caught.value.problems}
    assert keys == {"transport", "kafka.partitions", "kafka.bootstrapservers"}
    text = str(caught.value)
    assert "'embedded' or 'kafka'" in text
    assert "check its spelling" in text


def test_sources_file_problems_name_the_entry(tmp_path):
    path = write(tmp_path / "sources.yaml", """
sources:
  - name: good
    url: https://example.org/feed.xml
  - name: Bad Name
    url: ftp://example.org/feed.xml
    poll_interval_seconds: 5
  - name: good
    url: https://example.org/other.xml
""")
    problems = check_config(path)
    by_key = {problem.key: problem for problem in problems}
    assert "sources.1.name" in by_key
    assert "sources.1.url" in by_key and "http" in by_key["sources.1.url"].hint
    assert "sources.1.poll_interval_seconds" in by_key


def test_duplicate_source_names_are_refused(tmp_path):
    path = write(tmp_path / "sources.yaml", """
sources:
  - {name: good, url: "https://example.org/feed.xml"}
  - {name: good, url: "https://example.org/other.xml"}
""")
    (problem,) = check_config(path)
    assert problem.key == "sources" and "repeated: good" in problem.message


def test_a_feed_listed_twice_is_refused_so_it_is_fetched_once(tmp_path):
    path = write(tmp_path / "sources.yaml", """
sources:
  - {name: wire, url: "https://example.org/feed.xml"}
  - {name: wire-again, url: "https://example.org/feed.xml"}
""")
    (problem,) = check_config(path)
    assert problem.key == "sources"
    assert "source wire-again reads the same https://example.org/feed.xml as source wire; list a source once" in problem.message


def test_missing_sources_file_is_reported_from_the_main_config(tmp_path):
    path = write(tmp_path / "amur.yaml", "sources_file: nowhere.yaml\n")
    problems = check_config(path)
    assert len(problems) == 1
    assert problems[0].file.endswith("nowhere.yaml") and problems[0].message == "file not found"


def test_a_mistake_in_amur_yaml_hides_none_of_the_sources_file(tmp_path):
    write(tmp_path / "feeds.yaml", "sources:\n  - {name: Bad Name, url: \"https://example.org/feed.xml\"}\n")
    path = write(tmp_path / "amur.yaml", "sources_file: feeds.yaml\nbatch_size: -3\n")
    problems = check_config(path)
    assert {(Path(problem.file).name, problem.key) for problem in problems} == {("amur.yaml", "batch_size"), ("feeds.yaml", "sources.0.name")}


def test_valid_sources_load(tmp_path):
    path = write(tmp_path / "sources.yaml", "sources:\n  - name: a\n    url: http://127.0.0.1:8000/rss\n")
    (source,) = load_sources(path).sources
    assert source.poll_interval_seconds == 300 and source.enabled


# --- sinks from configuration -------------------------------------------------------------


def test_the_default_sinks_are_the_records_the_alerts_store_and_the_subscription_feeds(tmp_path):
    settings = load_settings(write(tmp_path / "amur.yaml", ""))
    assert [(sink.type, sink.options) for sink in settings.sinks] == [("records", {}), ("alerts", {}), ("feeds", {}), ("webhooks", {})]


def test_sink_problems_name_the_entry_the_key_and_the_fix(tmp_path):
    path = write(tmp_path / "amur.yaml", (
        "sinks:\n  - type: records\n  - type: feeds\n    max_entries: 0\n    colour: red\n  - type: carrier-pigeon\n"
    ))
    with pytest.raises(ConfigError) as caught:
        load_settings(path)
    problems = {problem.key: problem for problem in caught.value.problems}
    assert set(problems) == {"sinks.1", "sinks.1.max_entries", "sinks.1.colour", "sinks.2.type"}
    assert "no sink type named 'carrier-pigeon'; known: alerts, email, feeds, records, webhooks" in problems["sinks.2.type"].message
    assert problems["sinks.1"].hint == "list '- type: alerts' before it under 'sinks:'"
    assert problems["sinks.1.colour"].hint.startswith("remove the key")


def test_two_sinks_of_one_type_need_names(tmp_path):
    path = write(tmp_path / "amur.yaml", "sinks:\n  - type: alerts\n  - type: feeds\n  - type: feeds\n    directory: var/b\n")
    with pytest.raises(ConfigError, match="sink names must be unique"):
        load_settings(path)
    path.write_text("sinks:\n  - type: alerts\n  - type: feeds\n  - type: feeds\n    name: feeds-b\n    directory: var/b\n")
    assert [sink.name for sink in load_settings(path).sinks] == [None, None, "feeds-b"]


def test_a_moved_key_says_where_it_went(tmp_path):
    path = write(tmp_path / "amur.yaml", "alerts:\n  atom_path: var/x.atom\n")
    (problem,) = check_config(path)
    assert problem.key == "alerts.atom_path" and "the 'all' subscription's feed" in problem.hint
