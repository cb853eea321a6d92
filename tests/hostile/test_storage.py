"""A full disk or a place Amur may not write gets a message naming the file and the fix, never a
traceback or a misleading second error ("cannot rollback - no transaction is active")."""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest
import sqlalchemy as sa

from pipeline.core.db import make_engine, storage_hint
from pipeline.core.errors import StorageUnusable, TransportError
from pipeline.core.messages import utc_now
from pipeline.core.state import StateStore
from pipeline.core.transport.embedded import EmbeddedTransport

AMUR = Path(sys.executable).parent / "amur"
FULL_PAGES = 64  # SQLite's own "database or disk is full", at this many pages, stands in for a full disk


def test_a_full_disk_under_the_embedded_log_says_so_and_the_log_stays_usable(tmp_path):
    log = EmbeddedTransport(str(tmp_path / "log.sqlite"))
    log.ensure_topics(["t.articles"])
    producer = log.producer()
    producer.produce("t.articles", b"k0", b"small")
    producer.flush()
    log._db.execute(f"PRAGMA max_page_count = {FULL_PAGES}")
    producer.produce("t.articles", b"k1", os.urandom(900_000))
    with pytest.raises(TransportError) as full:
        producer.flush()
    message = str(full.value)
    assert "database or disk is full" in message and "the disk is full: free space" in message
    assert str(tmp_path / "log.sqlite") in message and "cannot rollback" not in message
    producer.produce("t.articles", b"k2", b"fits")  # what fits is still written
    producer.flush()
    consumer = log.consumer("reader", ["t.articles"])
    assert [record.value for record in consumer.poll(10, 0.5)] == [b"small", b"fits"]
    consumer.close()
    log.close()


def test_a_full_database_disk_is_told_apart_from_a_server_outage(tmp_path):
    engine = make_engine(f"sqlite:///{tmp_path / 'amur.sqlite'}")
    store = StateStore(engine)
    store.setup()
    sa.event.listen(engine, "connect", lambda connection, _: connection.execute(f"PRAGMA max_page_count = {FULL_PAGES}"))
    engine.dispose()
    with pytest.raises(sa.exc.OperationalError) as full:
        for n in range(10_000):
            store.record_failure(f"source-{n}", "x" * 2_000, utc_now())
    assert storage_hint(full.value).startswith("the disk is full")
    assert storage_hint(sa.exc.OperationalError("SELECT 1", {}, ConnectionRefusedError(111, "refused"))) is None


def _as_another_user() -> list[str]:
    """A command prefix that drops root's right to write anywhere (a non-root user has none to drop)."""
    return ["setpriv", "--reuid", "65534", "--regid", "65534", "--clear-groups"] if os.geteuid() == 0 else []


@pytest.mark.parametrize("unwritable", ["database", "embedded log"])
def test_a_read_only_directory_is_named_with_the_fix(unwritable):
    root = Path(tempfile.mkdtemp(prefix="amur-read-only-"))  # outside pytest's root-only tmp, for the other user
    try:
        root.chmod(0o755)
        (read_only := root / "var").mkdir(mode=0o555)
        read_only.chmod(0o555)
        (writable := root / "writable").mkdir()
        writable.chmod(0o777)
        database, log = (read_only, writable) if unwritable == "database" else (writable, read_only)
        (root / "sources.yaml").write_text("sources: []\n")
        (root / "amur.yaml").write_text(
            f"database_url: sqlite:///{database / 'amur.sqlite'}\nembedded:\n  path: {log / 'log.sqlite'}\n"
        )
        finished = subprocess.run(
            [*_as_another_user(), str(AMUR), "run", "connectors", "--once", "--config", str(root / "amur.yaml")],
            capture_output=True, text=True, timeout=120, cwd=root,
        )
        assert finished.returncode == 1, finished.stderr
        assert "Traceback" not in finished.stderr
        named = database / "amur.sqlite" if unwritable == "database" else log / "log.sqlite"
        assert "error: cannot open" in finished.stderr and str(named) in finished.stderr
        assert "the user running amur cannot write there" in finished.stderr
    finally:
        subprocess.run(["rm", "-rf", str(root)], check=False)


def test_a_database_directory_that_cannot_be_made_is_named(tmp_path):
    blocker = tmp_path / "not-a-directory"
    blocker.write_text("a file where the database's directory should be")
    with pytest.raises(StorageUnusable, match=f"cannot create {blocker}"):
        make_engine(f"sqlite:///{blocker / 'var' / 'amur.sqlite'}")
