"""Logging of the long-running commands: text or one JSON object per line, libraries held quiet."""

from __future__ import annotations

import json
import logging

from pipeline.app.logs import LibraryRepeats, configure_logging


def test_json_lines_carry_time_level_logger_message_and_the_traceback(isolated_logging, capsys):
    configure_logging("info", "json")
    logging.getLogger("pipeline.core.polling").info("source polled: source=%s", "tass")
    logging.getLogger("httpx").info("HTTP Request: GET https://tass.example/rss")  # held at WARNING
    try:
        raise ValueError("bad value")
    except ValueError:
        logging.getLogger("pipeline.core.stages").exception("stage crashed")
    lines = [json.loads(line) for line in capsys.readouterr().err.splitlines()]
    assert [(line["level"], line["logger"], line["message"]) for line in lines] == [
        ("info", "pipeline.core.polling", "source polled: source=tass"),
        ("error", "pipeline.core.stages", "stage crashed"),
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


def test_a_library_line_repeated_is_written_once_per_window_with_the_count():
    now = [0.0]
    repeats = LibraryRepeats(window=30, clock=lambda: now[0])

    def line(name: str, message: str) -> logging.LogRecord:
        return logging.LogRecord(name, logging.WARNING, __file__, 1, message, None, None)

    dead = "Marking the coordinator dead (node coordinator-1) for group g-processors"
    assert repeats.filter(line("kafka.coordinator", dead))
    assert not any(repeats.filter(line("kafka.coordinator", dead)) for _ in range(500))
    assert repeats.filter(line("kafka.coordinator", "Heartbeat failed"))  # another line is its own
    assert all(repeats.filter(line("pipeline.core.stages", "stage=sinks batch not written")) for _ in range(3))  # Amur's own: never dropped
    now[0] = 31.0
    again = line("kafka.coordinator", dead)
    assert repeats.filter(again) and again.getMessage() == f"{dead} (and 500 more like it in 30 s)"
