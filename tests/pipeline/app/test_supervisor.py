"""The plan of `amur run --workers`: which processes, and which plans are refused; workers outlive no supervisor."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import pytest

from pipeline.app.supervisor import SUPERVISOR_PID_ENV, check_plan, parse_workers, stop_when_orphaned
from pipeline.core.errors import ConfigError
from pipeline.core.settings import AmurSettings, KafkaSettings


def test_named_roles_get_their_workers_and_the_others_one():
    assert parse_workers("processors=2, sinks=1") == {"connectors": 1, "processors": 2, "stories": 1, "sinks": 1}


@pytest.mark.parametrize(("value", "message"), [
    ("parsers=2", "unknown role 'parsers'"),
    ("processors=0", "at least 1"),
    ("processors=two", "whole number"),
])
def test_a_bad_plan_says_what_is_wrong(value, message):
    with pytest.raises(ValueError, match=message):
        parse_workers(value)


def test_several_workers_need_kafka_and_a_partition_each():
    plan = parse_workers("processors=4")
    with pytest.raises(ConfigError, match="need the kafka transport"):
        check_plan(plan, AmurSettings(), Path("amur.yaml"))
    with pytest.raises(ConfigError) as caught:
        check_plan(plan, AmurSettings(transport="kafka", kafka=KafkaSettings(partitions=3)), Path("amur.yaml"))
    assert caught.value.problems[0].key == "kafka.partitions" and "at least 4" in caught.value.problems[0].hint
    check_plan(parse_workers("processors=3"), AmurSettings(transport="kafka"), Path("amur.yaml"))


def test_outside_a_supervisor_nothing_watches():
    assert stop_when_orphaned(threading.Event(), environment={}) is None


def test_a_worker_whose_supervisor_is_alive_keeps_running():
    stop = threading.Event()
    stop_when_orphaned(stop, environment={SUPERVISOR_PID_ENV: str(os.getppid())}, check_seconds=0.05)
    try:
        assert not stop.wait(0.3)
    finally:
        stop.set()


# A stand-in supervisor: it starts a worker that watches it, and waits to be killed.
SUPERVISOR = textwrap.dedent("""
    import os, subprocess, sys
    worker = subprocess.Popen([sys.executable, "-c", sys.argv[1], sys.argv[2]], env={**os.environ, "%s": str(os.getpid())})
    worker.wait()
""" % SUPERVISOR_PID_ENV)
WORKER = textwrap.dedent("""
    import pathlib, sys, threading
    from pipeline.app.supervisor import stop_when_orphaned
    stop = threading.Event()
    stop_when_orphaned(stop, check_seconds=0.1)
    pathlib.Path(sys.argv[1], "watching").touch()
    stop.wait(60)
    pathlib.Path(sys.argv[1], "stopped").touch()
""")


def test_a_worker_whose_supervisor_was_killed_stops_itself(tmp_path):
    supervisor = subprocess.Popen([sys.executable, "-c", SUPERVISOR, WORKER, str(tmp_path)])
    try:
        _wait_for(tmp_path / "watching")
        assert not (tmp_path / "stopped").exists()
        supervisor.send_signal(signal.SIGKILL)
        supervisor.wait()
        _wait_for(tmp_path / "stopped")
    finally:
        supervisor.kill()
        supervisor.wait()


def _wait_for(path: Path, seconds: float = 20.0) -> None:
    deadline = time.monotonic() + seconds
    while not path.exists():
        assert time.monotonic() < deadline, f"{path.name} never appeared"
        time.sleep(0.05)
