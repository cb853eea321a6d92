"""Two ``amur`` processes on one embedded deployment: the second is refused, clearly, and
migrations racing on a fresh database both succeed."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from pathlib import Path

import sqlalchemy as sa

from tests.support.deployment import AMUR


def _deployment(tmp_path: Path) -> Path:
    config = tmp_path / "amur.yaml"
    config.write_text(f"database_url: 'sqlite:///{tmp_path / 'amur.sqlite'}'\nembedded:\n  path: {tmp_path / 'log.sqlite'}\nsinks:\n  - type: records\n")
    (tmp_path / "sources.yaml").write_text("sources: []\n")
    return config


def _environment() -> dict[str, str]:
    return {name: value for name, value in os.environ.items() if not name.startswith("AMUR_")}


def test_a_second_process_on_the_same_embedded_log_is_refused(tmp_path):
    config = _deployment(tmp_path)
    first = subprocess.Popen([*AMUR, "run", "--config", str(config)], env=_environment(),
                             stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        lock = tmp_path / "log.sqlite.lock"
        deadline = time.monotonic() + 120
        while not (lock.exists() and lock.read_text().strip() == str(first.pid)):
            assert first.poll() is None, first.stderr.read()[-2000:]
            assert time.monotonic() < deadline, "the first run never took the embedded log"
            time.sleep(0.2)

        second = subprocess.run([*AMUR, "run", "--once", "--config", str(config)], env=_environment(),
                                capture_output=True, text=True, timeout=300)
        assert second.returncode != 0
        assert f"is in use by another process (pid {first.pid})" in second.stdout + second.stderr
        assert "transport: kafka" in second.stdout + second.stderr
        assert "Traceback" not in second.stderr
    finally:
        first.send_signal(signal.SIGTERM)
        first.communicate(timeout=60)
    assert first.returncode == 0
    # Once the first has stopped, the files are free again.
    again = subprocess.run([*AMUR, "run", "--once", "--config", str(config)], env=_environment(),
                           capture_output=True, text=True, timeout=300)
    assert again.returncode == 0, again.stderr[-2000:]


def test_migrations_racing_on_a_fresh_database_both_succeed(tmp_path):
    config = _deployment(tmp_path)
    upgrades = [subprocess.Popen([*AMUR, "db", "upgrade", "--config", str(config)], env=_environment(),
                                 stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for _ in range(3)]
    results = [(process.wait(timeout=300), process.stderr.read()) for process in upgrades]
    assert [code for code, _ in results] == [0, 0, 0], [error[-1500:] for _, error in results]
    engine = sa.create_engine(f"sqlite:///{tmp_path / 'amur.sqlite'}")
    with engine.connect() as connection:
        assert "seen_articles" in sa.inspect(connection).get_table_names()
    engine.dispose()
