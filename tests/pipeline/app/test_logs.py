"""Logging of the long-running commands: text or one JSON object per line, libraries held quiet."""

from __future__ import annotations

import json
import logging

import pytest

from pipeline.app.logs import QUIET_LIBRARIES, configure_logging


@pytest.fixture
def isolated_logging():
    root = logging.getLogger()
    saved = root.handlers[:], root.level, {name: logging.getLogger(name).level for name in QUIET_LIBRARIES}
    yield
    root.handlers[:], root.level = saved[0], saved[1]
    for name, level in saved[2].items():
        logging.getLogger(name).setLevel(level)


def test_json_lines_carry_time_level_logger_message_and_the_traceback(isolated_logging, capsys):
    configure_logging("info", "json")
    logging.getLogger("pipeline.polling").info("source polled: source=%s", "tass")
    logging.getLogger("httpx").info("HTTP Request: GET https://tass.example/rss")  # held at WARNING
    try:
        raise ValueError("bad value")
    except ValueError:
        logging.getLogger("pipeline.stages").exception("stage crashed")
    lines = [json.loads(line) for line in capsys.readouterr().err.splitlines()]
    assert [(line["level"], line["logger"], line["message"]) for line in lines] == [
        ("info", "pipeline.polling", "source polled: source=tass"),
        ("error", "pipeline.stages", "stage crashed"),
    ]
    assert "ValueError: bad value" in lines[1]["error"] and lines[0]["time"].endswith("+00:00")


def test_debug_lets_the_libraries_speak(isolated_logging, capsys):
    configure_logging("debug", "text")
    logging.getLogger("httpx").info("HTTP Request: GET https://tass.example/rss")
    assert "INFO httpx: HTTP Request" in capsys.readouterr().err


def test_json_lines_carry_what_the_event_is_about(isolated_logging, capsys):
    configure_logging("info", "json")
    logging.getLogger("processors.stories").info(
        "story opened", extra={"story_id": "s1", "article_id": "a1", "source": "tass", "unrelated": "x"},
    )
    [line] = [json.loads(line) for line in capsys.readouterr().err.splitlines()]
    assert (line["story_id"], line["article_id"], line["source"]) == ("s1", "a1", "tass") and "unrelated" not in line
