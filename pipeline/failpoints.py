"""Crash points for fault-injection tests: ``AMUR_FAILPOINTS=processors.before_commit``.

A named point listed in the environment variable kills the process with SIGKILL when it is
reached, exactly as the OOM killer or ``kill -9`` would, so tests can prove that a crash
between producing outputs and committing offsets loses and duplicates nothing. Unset in
production, each point costs one environment lookup.
"""

from __future__ import annotations

import os
import signal


def failpoint(name: str) -> None:
    """Die here with SIGKILL if ``name`` is listed in ``AMUR_FAILPOINTS`` (comma-separated)."""
    if name in os.environ.get("AMUR_FAILPOINTS", "").split(","):
        os.kill(os.getpid(), signal.SIGKILL)
