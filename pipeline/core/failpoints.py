"""Crash points for fault-injection tests: ``AMUR_FAILPOINTS=processors.before_commit``.

A named point listed in the environment variable kills the process with SIGKILL when it is
reached, exactly as the OOM killer or ``kill -9`` would, so tests can prove that a crash
between producing outputs and committing offsets loses and duplicates nothing. Unset in
production, each point costs one environment lookup.

Under a supervisor a killed worker is started again with the same environment and would die
at the same point for ever. ``AMUR_FAILPOINTS_ONCE=DIR`` makes each point fire once for the
whole deployment: the first process to reach it leaves a mark in ``DIR``, and every later
arrival, in that process's successors or its sibling workers, passes.
"""

from __future__ import annotations

import os
import signal
from pathlib import Path


def failpoint(name: str) -> None:
    """Die here with SIGKILL if ``name`` is listed in ``AMUR_FAILPOINTS`` (comma-separated)."""
    if name in os.environ.get("AMUR_FAILPOINTS", "").split(",") and _first_arrival(name):
        os.kill(os.getpid(), signal.SIGKILL)


def _first_arrival(name: str) -> bool:
    marks = os.environ.get("AMUR_FAILPOINTS_ONCE")
    if not marks:
        return True
    try:
        # O_EXCL: of workers reaching the point together, exactly one creates the mark.
        os.close(os.open(Path(marks) / name, os.O_CREAT | os.O_EXCL | os.O_WRONLY))
    except FileExistsError:
        return False
    return True
