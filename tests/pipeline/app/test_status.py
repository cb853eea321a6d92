"""``amur status`` on the embedded default: the last alert is the last one written, an update included."""

from __future__ import annotations

from datetime import UTC, datetime

from typer.testing import CliRunner

from pipeline.app.cli import app
from pipeline.core.db import make_engine
from sinks.alerts import AlertsSink
from tests.support.messages import make_story


def test_the_last_alert_is_the_last_written_an_update_included(tmp_path):
    database_url = f"sqlite:///{tmp_path / 'amur.sqlite'}"
    (tmp_path / "amur.yaml").write_text(f"database_url: '{database_url}'\nembedded:\n  path: {tmp_path / 'log.sqlite'}\n")
    (tmp_path / "sources.yaml").write_text("sources: []\n")
    sink = AlertsSink(make_engine(database_url))
    sink.setup()

    def story(url: str, title: str, alerted: datetime):
        made = make_story(url, regions=["RU-AMU", "CN-HL"], sectors=["trade"], level="interregional", score=0.9,
                          language="en", sources=["wire"], title=title)
        return made.model_copy(update={"alerted_at": alerted, "updated_at": alerted})

    older = story("https://news.example/ferry", "Ferry line agreed", datetime(2026, 12, 1, 8, tzinfo=UTC))
    newer = story("https://news.example/grain", "Grain corridor opens", datetime(2026, 12, 2, 8, tzinfo=UTC))
    for alert in (older, newer, older.model_copy(update={"version": 2, "updated_at": datetime(2026, 12, 3, 8, tzinfo=UTC)})):
        sink.add(alert)
        assert sink.flush() == []
    result = CliRunner().invoke(app, ["status", "--config", str(tmp_path / "amur.yaml")])
    assert result.exit_code == 0, result.output
    assert "last alert: 2026-12-03 08:00:00Z Ferry line agreed" in result.output
