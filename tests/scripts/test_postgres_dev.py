"""scripts/postgres-dev from a clone the 'postgres' user cannot reach, as root in a 0700 folder.

Debian's PostgreSQL refuses to run as root, so the script runs it as 'postgres'; that user
must be able to reach the data directory. The test starts a second server on its own port
from a private copy of the script, connects to it, and stops it.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
from pathlib import Path

import pytest
import sqlalchemy as sa

SCRIPT = Path(__file__).resolve().parents[2] / "scripts" / "postgres-dev"
PORT = "55439"

pytestmark = [
    pytest.mark.skipif(os.geteuid() != 0, reason="the unreachable-clone case only arises when run as root"),
    pytest.mark.skipif(not list(Path("/usr/lib/postgresql").glob("*/bin")), reason="Debian's PostgreSQL is not installed"),
]


def test_postgres_dev_starts_from_a_clone_postgres_cannot_traverse(tmp_path):
    private = tmp_path / "private"
    clone = private / "clone"
    (clone / "scripts").mkdir(parents=True)
    private.chmod(0o700)
    script = clone / "scripts" / "postgres-dev"
    shutil.copy(SCRIPT, script)
    home = Path("/var/tmp/amur-postgres") / hashlib.sha256(str(clone.resolve()).encode()).hexdigest()[:16]
    env = {**os.environ, "AMUR_PG_PORT": PORT}
    env.pop("AMUR_PG_HOME", None)

    def run(command: str) -> subprocess.CompletedProcess:
        return subprocess.run([str(script), command], env=env, capture_output=True, text=True, timeout=120)

    try:
        started = run("start")
        assert started.returncode == 0, started.stderr
        assert (home / "data" / "PG_VERSION").exists()
        engine = sa.create_engine(run("url").stdout.strip())
        with engine.connect() as connection:
            assert connection.execute(sa.text("SELECT 1")).scalar_one() == 1
        engine.dispose()
    finally:
        run("stop")
        shutil.rmtree(home, ignore_errors=True)
