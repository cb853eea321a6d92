"""Free ports on 127.0.0.1 for the servers tests start: web apps, brokers, databases, webhooks."""

from __future__ import annotations

import socket

__all__ = ["free_port"]


def free_port(span: int = 1) -> int:
    """A port on 127.0.0.1 with ``span`` free ports from it (a broker needs its controller's too)."""
    for _ in range(50):
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            base = probe.getsockname()[1]
        if base + span < 65_000 and all(_free(base + offset) for offset in range(1, span)):
            return base
    raise RuntimeError("no run of free ports found on 127.0.0.1")


def _free(port: int) -> bool:
    with socket.socket() as probe:
        try:
            probe.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True
