"""Subscription filters select exactly the matching stories, over a fixed set of stories."""

from __future__ import annotations

import pytest
from typer.testing import CliRunner

from pipeline.app.cli import app
from pipeline.app.config_check import check_config
from pipeline.app.vocabulary import vocabulary
from pipeline.core.db import make_engine
from pipeline.core.errors import ConfigError
from pipeline.core.settings import AmurSettings
from pipeline.core.subscriptions import DEFAULT_NAME, Filters, SubscriptionsWatcher, load_subscriptions
from sinks.alerts import AlertsSink
from tests.support.messages import make_story

STORIES = {
    "power-line": make_story("https://a.example/1", regions=["RU-PRI", "CN-HL"], sectors=["energy"], level="interregional",
                        score=0.9, language="en", sources=["tass"], title="Primorye and Heilongjiang agree a power line"),
    "tour-buses": make_story("https://a.example/2", regions=["RU-PRI", "CN-JL"], sectors=["tourism"], level="municipal",
                        score=0.6, language="ru", sources=["vl-news"], title="Туристические автобусы пойдут в Хуньчунь"),
    "gas-plant": make_story("https://a.example/3", regions=["RU-KHA", "CN-HL"], sectors=["energy", "industry"], level="corporate",
                       score=0.55, language="zh", sources=["xinhua", "tass"], title="哈巴罗夫斯克与黑龙江合建燃气厂"),
    "rail-bridge": make_story("https://a.example/4", regions=["RU-AMU", "CN-HL"], sectors=["transport"], level="national",
                         score=0.95, language="en", sources=["kremlin"], title="Second rail bridge over the Amur",
                         summary="The ministries agreed on the Blagoveshchensk–Heihe rail bridge."),
}


@pytest.mark.parametrize(("filters", "expected"), [
    ({}, set(STORIES)),
    ({"regions": ["CN-HL"]}, {"power-line", "gas-plant", "rail-bridge"}),
    ({"regions": ["RU-PRI", "RU-AMU"]}, {"power-line", "tour-buses", "rail-bridge"}),
    ({"pairs": [["RU-PRI", "CN-HL"]]}, {"power-line"}),
    ({"pairs": [["RU-PRI", "CN-HL"], ["RU-KHA", "CN-HL"]]}, {"power-line", "gas-plant"}),
    ({"sectors": ["energy"]}, {"power-line", "gas-plant"}),
    ({"levels": ["national", "municipal"]}, {"tour-buses", "rail-bridge"}),
    ({"min_score": 0.6}, {"power-line", "tour-buses", "rail-bridge"}),
    ({"keywords": ["bridge"]}, {"rail-bridge"}),
    ({"keywords": ["Power Line", "автобусы"]}, {"power-line", "tour-buses"}),
    ({"keywords": ["bridg"]}, set()),  # whole words only
    ({"languages": ["ru", "zh"]}, {"tour-buses", "gas-plant"}),
    ({"sources": ["tass"]}, {"power-line", "gas-plant"}),
    ({"exclude_sources": ["tass"]}, {"tour-buses", "gas-plant", "rail-bridge"}),  # gas-plant has xinhua too
    ({"regions": ["CN-HL"], "sectors": ["energy"], "min_score": 0.6}, {"power-line"}),
])
def test_filters_select_exactly_the_matching_stories(filters, expected):
    chosen = Filters.model_validate(filters)
    assert {name for name, alert in STORIES.items() if chosen.match(alert)} == expected


def test_without_a_file_there_is_the_default_subscription(tmp_path):
    (subscription,) = load_subscriptions(tmp_path / "missing.yaml", AmurSettings())
    assert subscription.name == DEFAULT_NAME and subscription.filters.min_score == 0.5
    assert [channel.type for channel in subscription.channels] == ["atom", "jsonfeed"]


def test_a_bad_subscriptions_file_names_every_problem(tmp_path):
    path = tmp_path / "subscriptions.yaml"
    path.write_text(
        "subscriptions:\n"
        "  - name: a\n    filters:\n      pairs: [[CN-HL, RU-PRI]]\n      colour: red\n"
        "  - name: a\n    channels: [{type: fax}]\n"
    )
    with pytest.raises(ConfigError) as caught:
        load_subscriptions(path, AmurSettings())
    keys = {problem.key for problem in caught.value.problems}
    assert {"subscriptions.0.filters.pairs.0.0", "subscriptions.0.filters.colour", "subscriptions.1.channels.0"} <= keys
    (channel,) = [problem for problem in caught.value.problems if problem.key == "subscriptions.1.channels.0"]
    assert "'fax'" in channel.message and "'webhook'" in channel.message
    assert all(problem.file == str(path) for problem in caught.value.problems)


def test_a_sector_outside_the_taxonomy_is_named_with_the_ones_there_are(tmp_path):
    path = tmp_path / "subscriptions.yaml"
    path.write_text("subscriptions:\n  - name: a\n    filters:\n      sectors: [energy, transport]\n")
    with pytest.raises(ConfigError) as caught:
        load_subscriptions(path, AmurSettings())
    (problem,) = caught.value.problems
    assert problem.key == "subscriptions.0.filters.sectors.1"
    assert "'transport_logistics'" in problem.message


HOOKED = ("subscriptions:\n  - name: partners\n    channels:\n"
          "      - {type: webhook, url: \"https://hooks.example.org/amur\", secret_env: AMUR_TEST_PARTNERS_SECRET}\n")


def test_a_webhook_secret_missing_from_the_environment_is_a_config_problem(tmp_path, monkeypatch):
    (tmp_path / "sources.yaml").write_text("sources: []\n")
    (tmp_path / "subscriptions.yaml").write_text(HOOKED)
    (tmp_path / "amur.yaml").write_text("batch_size: 10\n")
    monkeypatch.delenv("AMUR_TEST_PARTNERS_SECRET", raising=False)
    (problem,) = check_config(tmp_path / "amur.yaml")
    assert problem.key == "subscriptions.0.channels (webhook).secret_env" and "is not set" in problem.message
    monkeypatch.setenv("AMUR_TEST_PARTNERS_SECRET", "whsec_%%%")
    (problem,) = check_config(tmp_path / "subscriptions.yaml")
    assert "base64" in problem.message
    monkeypatch.setenv("AMUR_TEST_PARTNERS_SECRET", "whsec_c2VjcmV0")
    assert check_config(tmp_path / "amur.yaml") == []


def test_a_reload_naming_a_secret_the_environment_lacks_is_refused_and_the_rest_goes_on(tmp_path):
    path = tmp_path / "subscriptions.yaml"
    path.write_text("subscriptions:\n  - name: everything\n")
    watcher = SubscriptionsWatcher(path, AmurSettings(), secrets={})
    path.write_text(HOOKED + "  - name: more\n")
    assert [subscription.name for subscription in watcher.current()] == ["everything"]
    watcher.secrets = {"AMUR_TEST_PARTNERS_SECRET": "a-secret"}
    path.write_text(HOOKED)
    assert [subscription.name for subscription in watcher.current()] == ["partners"]


def test_the_cli_lists_subscriptions_and_tests_one_against_stored_stories(tmp_path):
    config = tmp_path / "amur.yaml"
    config.write_text(f"database_url: 'sqlite:///{tmp_path / 'amur.sqlite'}'\n")
    (tmp_path / "sources.yaml").write_text("sources: []\n")
    (tmp_path / "subscriptions.yaml").write_text(
        "subscriptions:\n  - name: energy\n    filters: {sectors: [energy], min_score: 0.5}\n"
    )
    sink = AlertsSink(make_engine(f"sqlite:///{tmp_path / 'amur.sqlite'}"))
    sink.setup()
    for alert in STORIES.values():
        sink.add(alert)
    sink.flush()
    runner = CliRunner()

    listed = runner.invoke(app, ["subscriptions", "list", "--config", str(config)])
    tested = runner.invoke(app, ["subscriptions", "test", "energy", "--config", str(config)])
    unknown = runner.invoke(app, ["subscriptions", "test", "sport", "--config", str(config)])

    assert listed.exit_code == 0 and "energy" in listed.output and "sectors=energy; min_score=0.5" in listed.output
    assert tested.exit_code == 0, tested.output
    assert "Primorye and Heilongjiang agree a power line" in tested.output and "哈巴罗夫斯克" in tested.output
    assert "Second rail bridge" not in tested.output
    assert unknown.exit_code == 2 and "no subscription named 'sport'" in unknown.output and "known: energy" in unknown.output


UNKNOWN_VALUES = (
    "subscriptions:\n  - name: far-east\n    filters:\n      regions: [RU-KHB]\n      pairs: [[RU-PRI, CN-HX]]\n"
    "      sectors: [transport]\n      levels: [nationl]\n      languages: [jp]\n"
)


def test_config_check_names_every_unknown_filter_value_at_once_with_the_nearest_valid_ones(tmp_path):
    (tmp_path / "sources.yaml").write_text("sources: []\n")
    (tmp_path / "amur.yaml").write_text("batch_size: 10\n")
    (tmp_path / "subscriptions.yaml").write_text(UNKNOWN_VALUES)

    result = CliRunner().invoke(app, ["config", "check", str(tmp_path / "amur.yaml")])

    assert result.exit_code == 2
    problems = {line.split(": ")[2]: line for line in result.output.splitlines() if line.startswith("error: ")}
    assert set(problems) == {
        "subscriptions.0.filters.regions.0", "subscriptions.0.filters.pairs.0.1", "subscriptions.0.filters.sectors.0",
        "subscriptions.0.filters.levels.0", "subscriptions.0.filters.languages.0",
    }
    assert "unknown region 'RU-KHB'" in problems["subscriptions.0.filters.regions.0"]
    assert "RU-KHA (Khabarovsk Krai)" in problems["subscriptions.0.filters.regions.0"]
    assert "unknown region 'CN-HX'" in problems["subscriptions.0.filters.pairs.0.1"]
    assert "did you mean transport_logistics?" in problems["subscriptions.0.filters.sectors.0"]
    assert "did you mean national" in problems["subscriptions.0.filters.levels.0"]
    assert "unknown language 'jp'" in problems["subscriptions.0.filters.languages.0"] and "ja" in problems["subscriptions.0.filters.languages.0"]


def test_a_reload_naming_a_region_that_does_not_exist_is_refused_and_the_subscriptions_go_on(tmp_path):
    path = tmp_path / "subscriptions.yaml"
    path.write_text("subscriptions:\n  - name: primorye\n    filters: {regions: [RU-PRI]}\n")
    watcher = SubscriptionsWatcher(path, AmurSettings(), vocabulary=vocabulary(AmurSettings()))
    path.write_text("subscriptions:\n  - name: khabarovsk\n    filters: {regions: [RU-KHB]}\n")
    assert [subscription.name for subscription in watcher.current()] == ["primorye"]
    path.write_text("subscriptions:\n  - name: khabarovsk\n    filters: {regions: [RU-KHA]}\n")
    assert [subscription.name for subscription in watcher.current()] == ["khabarovsk"]


def test_subscriptions_test_refuses_an_unknown_region(tmp_path):
    config = tmp_path / "amur.yaml"
    config.write_text(f"database_url: 'sqlite:///{tmp_path / 'amur.sqlite'}'\n")
    (tmp_path / "subscriptions.yaml").write_text("subscriptions:\n  - name: khabarovsk\n    filters: {regions: [RU-KHB]}\n")
    result = CliRunner().invoke(app, ["subscriptions", "test", "khabarovsk", "--config", str(config)])
    assert result.exit_code == 2 and "unknown region 'RU-KHB'" in result.output
