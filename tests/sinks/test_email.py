"""Email channels, against a real SMTP server on loopback: one message per story, readable
as text and as HTML, never sent twice, retried while the server is down, guarded like any
address Amur connects to."""

from __future__ import annotations

import time
from datetime import datetime
from ipaddress import ip_network
from zoneinfo import ZoneInfo

import pytest
import sqlalchemy as sa

from pipeline.app.config_check import check_config
from pipeline.core.db import make_engine
from pipeline.core.errors import ConfigError
from pipeline.core.settings import AmurSettings, EmailSettings
from pipeline.core.subscriptions import DigestSchedule, SubscriptionsWatcher, load_subscriptions
from sinks.email import EmailOptions, EmailSink, email_deliveries, period_end
from tests.support.messages import make_story
from tests.support.outbox import settled
from tests.support.smtp import SmtpServer
from tests.support.webhooks import LOOPBACK, TOPICS, embedded_log

FAST = EmailOptions(max_attempts=40, first_retry_seconds=0.05, max_retry_seconds=0.2, poll_seconds=0.05, timeout_seconds=5)
NAMES = {"RU-PRI": "Primorsky Krai", "CN-HL": "Heilongjiang", "CN-JL": "Jilin"}
POWER = make_story(
    "https://a.example/power", regions=["RU-PRI", "CN-HL"], sectors=["energy", "transport_logistics"], level="interregional",
    score=0.9, language="en", sources=["tass", "xinhua"], names=NAMES,
    title="Primorye & Heilongjiang agree a <b>power</b> line", summary="The two regions signed a grid link on Tuesday.",
)
BUSES = make_story(
    "https://a.example/buses", regions=["RU-PRI", "CN-JL"], sectors=["tourism"], level="municipal", score=0.6,
    language="ru", sources=["vl-news"], names=NAMES, title="Туристические автобусы пойдут в Хуньчунь",
)


def watcher(tmp_path, *, updates: bool = False) -> SubscriptionsWatcher:
    path = tmp_path / "subscriptions.yaml"
    path.write_text(
        "subscriptions:\n  - name: heilongjiang\n    filters: {regions: [CN-HL]}\n    channels:\n"
        f"      - type: email\n        to: [analyst@example.org, desk@example.org]\n        updates: {'true' if updates else 'false'}\n"
    )
    return SubscriptionsWatcher(path, AmurSettings())


def email_sink(database_url, tmp_path, server_host: str, server_port: int, *, updates=False, allow=LOOPBACK) -> EmailSink:
    server = EmailSettings(host=server_host, port=server_port, security="none", sender="amur@example.org")
    sink = EmailSink(make_engine(database_url), FAST, server, watcher(tmp_path, updates=updates), embedded_log(tmp_path).producer(),
                     TOPICS, allow)
    sink.setup()
    return sink


def deliveries(database_url) -> list[dict]:
    with make_engine(database_url).connect() as connection:
        return [dict(row) for row in connection.execute(sa.select(email_deliveries)).mappings()]


def test_a_matching_story_is_one_message_with_text_html_and_list_headers(database_url, tmp_path):
    with SmtpServer() as server:
        sink = email_sink(database_url, tmp_path, server.host, server.port)
        sink.add(POWER)
        sink.add(BUSES)  # Jilin's: not this subscription's
        assert sink.flush() == []
        (message,) = server.wait_for(1)
        sink.close()
    assert server.envelopes == [["analyst@example.org", "desk@example.org"]]
    assert message["Subject"] == POWER.heading and message["From"] == "amur@example.org"
    assert message["Message-ID"] == f"<{POWER.id}.v1.heilongjiang@example.org>"
    assert message["List-Unsubscribe"] == "<mailto:amur@example.org?subject=unsubscribe%20heilongjiang>"
    text = message.get_body(("plain",)).get_content()
    page = message.get_body(("html",)).get_content()
    for shown in (text, page):
        assert "Primorsky Krai" in shown and "Heilongjiang" in shown and "RU-PRI" not in shown  # names, not ids
        assert "transport and logistics" in shown and "The two regions signed a grid link" in shown
    assert "&lt;b&gt;power&lt;/b&gt;" in page and "<b>power</b>" not in page  # the title is text, not markup
    assert 'href="https://a.example/power"' in page and "https://a.example/power" in text


def test_a_replay_sends_nothing_and_an_update_only_when_asked(database_url, tmp_path):
    with SmtpServer() as server:
        quiet = email_sink(database_url, tmp_path, server.host, server.port)
        quiet.add(POWER)
        quiet.flush()
        server.wait_for(1)
        quiet.add(POWER)  # the same version again: a replay
        quiet.add(POWER.model_copy(update={"version": 2}))  # an update nobody asked for
        quiet.flush()
        assert len(settled(database_url, email_deliveries)) == 1  # neither made a delivery
        quiet.close()
        assert len(server.messages) == 1

        (tmp_path / "updates").mkdir()
        eager = email_sink(database_url, tmp_path / "updates", server.host, server.port, updates=True)
        eager.add(POWER.model_copy(update={"version": 3}))
        eager.flush()
        messages = server.wait_for(2)
        eager.close()
    assert messages[1]["Subject"] == f"Updated: {POWER.heading}"
    assert messages[1]["Message-ID"] == f"<{POWER.id}.v3.heilongjiang@example.org>"


def test_a_server_down_for_the_whole_run_gets_every_message_once_when_back(database_url, tmp_path):
    server = SmtpServer()  # its port chosen, nothing listening yet
    sink = email_sink(database_url, tmp_path, server.host, server.port)
    sink.add(POWER)
    sink.add(POWER.model_copy(update={"id": "f" * 32, "url": "https://a.example/power-2"}))
    assert sink.flush() == []  # the batch is done: the messages wait in the outbox
    deadline = time.monotonic() + 20
    while not all(row["attempts"] >= 2 for row in deliveries(database_url)):
        assert time.monotonic() < deadline, deliveries(database_url)
        time.sleep(0.05)
    assert all("ConnectionRefusedError" in row["last_error"] for row in deliveries(database_url))
    with server:
        server.wait_for(2)
        sink.close()
    assert sorted(message["Message-ID"] for message in server.messages) == sorted(
        f"<{story_id}.v1.heilongjiang@example.org>" for story_id in (POWER.id, "f" * 32)
    )
    assert {row["status"] for row in deliveries(database_url)} == {"delivered"}


def test_a_server_outside_the_allowed_networks_is_never_connected_to(database_url, tmp_path):
    with SmtpServer(host="127.0.0.2") as server:
        sink = email_sink(database_url, tmp_path, server.host, server.port, allow=[ip_network("127.0.0.1/32")])
        sink.add(POWER)
        sink.flush()
        deadline = time.monotonic() + 10
        while not (rows := deliveries(database_url)) or rows[0]["last_error"] is None:
            assert time.monotonic() < deadline
            time.sleep(0.05)
        sink.close()
    assert "refused" in rows[0]["last_error"] and "127.0.0.2" in rows[0]["last_error"]
    assert server.messages == []


def test_email_channels_need_a_server_and_its_password(tmp_path, monkeypatch):
    (tmp_path / "sources.yaml").write_text("sources: []\n")
    watcher(tmp_path)  # writes the subscriptions file
    (tmp_path / "amur.yaml").write_text("batch_size: 10\n")
    (problem,) = check_config(tmp_path / "amur.yaml")
    assert problem.key == "email" and "no SMTP server" in problem.message
    (tmp_path / "amur.yaml").write_text(
        "email: {host: smtp.example.org, sender: amur@example.org, username: amur, password_env: AMUR_TEST_SMTP_PASSWORD}\n"
    )
    monkeypatch.delenv("AMUR_TEST_SMTP_PASSWORD", raising=False)
    (problem,) = check_config(tmp_path / "amur.yaml")
    assert problem.key == "email.password_env" and "AMUR_TEST_SMTP_PASSWORD is not set" in problem.message
    server = EmailSettings(host="smtp.example.org", sender="amur@example.org", password_env="AMUR_TEST_SMTP_PASSWORD")
    sink = EmailSink(make_engine(f"sqlite:///{tmp_path / 'amur.sqlite'}"), FAST, server, watcher(tmp_path),
                     embedded_log(tmp_path).producer(), TOPICS, LOOPBACK)
    with pytest.raises(ConfigError, match="AMUR_TEST_SMTP_PASSWORD"):
        sink.setup()
    monkeypatch.setenv("AMUR_TEST_SMTP_PASSWORD", "a-password")
    assert check_config(tmp_path / "amur.yaml") == []


class Clock:
    """The digest sink's time, moved by the test (the outbox's own retries keep real time)."""

    def __init__(self, now: datetime):
        self.now = now

    def __call__(self) -> datetime:
        return self.now


def digest_sink(database_url, tmp_path, server: SmtpServer, schedule: str, clock: Clock) -> EmailSink:
    path = tmp_path / "subscriptions.yaml"
    path.write_text(
        "subscriptions:\n  - name: morning\n    filters: {regions: [RU-PRI]}\n    channels:\n"
        f"      - type: email\n        to: [analyst@example.org]\n        mode: digest\n        schedule: {schedule}\n"
    )
    settings = EmailSettings(host=server.host, port=server.port, security="none", sender="amur@example.org")
    sink = EmailSink(make_engine(database_url), FAST, settings, SubscriptionsWatcher(path, AmurSettings()),
                     embedded_log(tmp_path).producer(), TOPICS, LOOPBACK)
    sink.clock = clock
    sink.setup()
    return sink


def test_a_daily_digest_is_one_message_per_period_and_none_for_a_period_without_news(database_url, tmp_path):
    moscow = ZoneInfo("Europe/Moscow")
    clock = Clock(datetime(2026, 12, 7, 15, 0, tzinfo=moscow))  # after the day's 08:00 digest time
    with SmtpServer() as server:
        sink = digest_sink(database_url, tmp_path, server, "{every: day, at: '08:00', timezone: Europe/Moscow}", clock)
        for story in (POWER, BUSES, POWER.model_copy(update={"version": 2})):  # a later version joins the same entry
            sink.add(story)
        sink.flush()
        time.sleep(0.3)  # several looks at the outbox: the period they came in has not ended
        assert server.messages == []

        clock.now = datetime(2026, 12, 8, 8, 0, tzinfo=moscow)  # the period ends
        (digest,) = server.wait_for(1)
        clock.now = datetime(2026, 12, 9, 8, 30, tzinfo=moscow)  # a day with nothing new
        sink.add(POWER)  # a replay of a story already collected
        sink.flush()
        time.sleep(0.3)
        assert len(server.messages) == 1
        sink.add(POWER.model_copy(update={"id": "e" * 32, "url": "https://a.example/power-3", "version": 1}))
        sink.flush()
        clock.now = datetime(2026, 12, 10, 8, 0, 5, tzinfo=moscow)
        second = server.wait_for(2)[1]
        sink.close()
    assert digest["Subject"] == "Amur digest, morning: 2 stories to 08 December 2026 08:00 MSK"
    assert digest["Message-ID"] == "<digest-20261208T0500Z.morning@example.org>"
    text = digest.get_body(("plain",)).get_content()
    assert POWER.heading in text and BUSES.heading in text and text.count(POWER.url) >= 1
    assert "Primorsky Krai" in digest.get_body(("html",)).get_content()
    assert second["Subject"].startswith("Amur digest, morning: 1 story") and "power-3" in second.get_body(("plain",)).get_content()


def test_a_weekly_schedule_ends_its_periods_on_its_day():
    weekly = DigestSchedule(every="week", on="friday", at="18:30", timezone="Asia/Shanghai")
    shanghai = ZoneInfo("Asia/Shanghai")
    assert period_end(weekly, datetime(2026, 12, 11, 18, 29, tzinfo=shanghai)) == datetime(2026, 12, 4, 18, 30, tzinfo=shanghai)
    assert period_end(weekly, datetime(2026, 12, 11, 18, 30, tzinfo=shanghai)) == datetime(2026, 12, 11, 18, 30, tzinfo=shanghai)


def test_a_digest_needs_a_schedule_in_a_known_time_zone(tmp_path):
    path = tmp_path / "subscriptions.yaml"
    path.write_text(
        "subscriptions:\n  - name: a\n    channels:\n      - {type: email, to: [a@example.org], mode: digest}\n"
        "  - name: b\n    channels:\n      - type: email\n        to: [b@example.org]\n        mode: digest\n"
        "        schedule: {timezone: Mars/Olympus}\n"
    )
    with pytest.raises(ConfigError) as caught:
        load_subscriptions(path, AmurSettings())
    problems = {problem.key: problem.message for problem in caught.value.problems}
    assert "a digest needs a schedule" in problems["subscriptions.0.channels.0.email"]
    assert "unknown time zone 'Mars/Olympus'" in problems["subscriptions.1.channels.0.email.schedule.timezone"]
