"""What Debian's newsboat shows of a feed's first entry: newsboat runs in a pseudo-terminal,
refreshes the feed, opens its first entry and pipes the article view, as rendered, to a file."""

from __future__ import annotations

import os
import pty
import select
import shutil
import time
from pathlib import Path

NEWSBOAT = shutil.which("newsboat") or "/usr/bin/newsboat"


def first_entry_as_shown(feed: Path, workdir: Path, timeout: float = 30) -> str:
    """The article view of the first entry of ``feed`` (a file), as newsboat renders it."""
    urls, config, shown = workdir / "urls", workdir / "config", workdir / "shown.txt"
    urls.write_text(f"file://{feed.resolve()}\n")
    config.write_text("auto-reload no\nshow-read-feeds yes\n")
    pid, terminal = pty.fork()
    if pid == 0:  # the child: newsboat on the pseudo-terminal, nothing of the user's own setup
        os.environ.update(TERM="xterm", HOME=str(workdir))
        os.execv(NEWSBOAT, [NEWSBOAT, "-r", "-u", str(urls), "-c", str(workdir / "cache.db"), "-C", str(config)])  # noqa: S606 - fixed arguments
    try:
        _read(terminal, until=lambda screen: b"Amur" in screen, timeout=timeout)  # the feed list, refreshed
        for keys in (b"\r", b"\r", b"|"):  # open the feed, its first entry, then pipe the view
            os.write(terminal, keys)
            _read(terminal, until=None, timeout=0.5)
        os.write(terminal, f"cat > {shown}\r".encode())
        deadline = time.monotonic() + timeout
        while not (shown.exists() and shown.stat().st_size) and time.monotonic() < deadline:
            _read(terminal, until=None, timeout=0.1)
        os.write(terminal, b"qqqQ")
        _read(terminal, until=None, timeout=1)
    finally:
        try:
            os.kill(pid, 9)
        except ProcessLookupError:
            pass
        os.waitpid(pid, 0)
        os.close(terminal)
    return shown.read_text(encoding="utf-8")


def _read(terminal: int, until, timeout: float) -> bytes:
    """Drain the terminal's output for ``timeout`` seconds, or until ``until(output)``."""
    output, deadline = b"", time.monotonic() + timeout
    while time.monotonic() < deadline:
        ready, _, _ = select.select([terminal], [], [], 0.05)
        if ready:
            try:
                output += os.read(terminal, 65536)
            except OSError:
                break
            if until is not None and until(output):
                break
    return output
