"""``amur run --workers processors=2``: every role as processes of its own, N per role.

The supervisor starts ``amur run ROLE`` once per worker — each role's workers are members of
that role's consumer group, so Kafka spreads the topic partitions over them — and watches
them: a worker that dies is started again after a pause that doubles while it keeps dying
(at most a minute). On SIGINT or SIGTERM it passes SIGTERM on, so each worker flushes and
commits, and kills what has not exited after :data:`STOP_GRACE_SECONDS`. A supervisor that
dies without that chance (SIGKILL, the OOM killer) leaves no workers behind: each one notices
it has been re-parented and stops the way SIGTERM would (:func:`stop_when_orphaned`).

Workers of one role share its partitions, so a role cannot usefully have more workers than
its topics have partitions (``kafka.partitions``); the supervisor refuses such a plan.
"""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from pipeline.core.errors import ConfigError, ConfigProblem
from pipeline.core.settings import AmurSettings
from pipeline.core.topology import roles as all_roles

__all__ = ["STOP_GRACE_SECONDS", "SUPERVISOR_PID_ENV", "Worker", "parse_workers", "stop_when_orphaned", "supervise"]

STOP_GRACE_SECONDS = 10.0
MAX_RESTART_DELAY = 60.0
SUPERVISOR_PID_ENV = "AMUR_SUPERVISOR_PID"  # set in each worker's environment: the pid to outlive no longer than
ORPHAN_CHECK_SECONDS = 1.0
AMUR = [sys.executable, "-c", "from pipeline.app.cli import app; app()"]

log = logging.getLogger(__name__)


def parse_workers(value: str) -> dict[str, int]:
    """"processors=2,sinks=1" → {"processors": 2, "sinks": 1}; every other role gets one worker.

    :raises ValueError: a role that does not exist, or a count that is not a whole number ≥ 1.
    """
    plan = {role: 1 for role in all_roles()}
    for part in filter(None, (piece.strip() for piece in value.split(","))):
        role, _, count = part.partition("=")
        if role not in plan:
            raise ValueError(f"unknown role {role!r} in {part!r}; roles: {', '.join(plan)}")
        if not count.isdigit() or int(count) < 1:
            raise ValueError(f"{part!r}: give a whole number of workers, at least 1 (e.g. {role}=2)")
        plan[role] = int(count)
    return plan


@dataclass
class Worker:
    """One ``amur run ROLE`` process and its restart state."""

    role: str
    number: int
    command: list[str]
    process: subprocess.Popen | None = None
    restarts: int = 0
    next_start: float = 0.0
    started_at: float = field(default=0.0)

    @property
    def name(self) -> str:
        return f"{self.role}#{self.number}"

    def start(self, env: Mapping[str, str]) -> None:
        self.process = subprocess.Popen(self.command, env=dict(env))  # noqa: S603 - our own CLI, by sys.executable
        self.started_at = time.monotonic()
        log.info("worker started: worker=%s pid=%d", self.name, self.process.pid)


def check_plan(plan: Mapping[str, int], settings: AmurSettings, config_path: Path) -> None:
    """Refuse a plan the transport cannot run: several workers of a role need Kafka and partitions for each."""
    crowded = {role: count for role, count in plan.items() if count > 1}
    if crowded and settings.transport != "kafka":
        raise ConfigError([ConfigProblem(str(config_path), "transport", "several workers of one role need the kafka transport",
                                         "set transport: kafka (the embedded log has one member per group)")])
    for role, count in crowded.items():
        if count > settings.kafka.partitions:
            raise ConfigError([ConfigProblem(
                str(config_path), "kafka.partitions", f"{count} {role} workers but {settings.kafka.partitions} partitions per topic",
                f"raise kafka.partitions to at least {count} (topics made before keep their partitions), or run fewer workers",
            )])


def supervise(
    plan: Mapping[str, int], config_path: Path, stop: threading.Event, *, extra_args: Sequence[str] = (),
    metrics_port: int | None = None, env: Mapping[str, str] | None = None,
) -> None:
    """Run ``plan`` (role → workers) until ``stop`` is set; see the module docstring."""
    workers: list[Worker] = []
    for role, count in plan.items():
        for number in range(1, count + 1):
            command = [*AMUR, "run", role, "--config", str(config_path), *extra_args]
            if metrics_port is not None:  # one port per worker, in plan order
                command += ["--metrics-port", str(metrics_port + len(workers))]
            workers.append(Worker(role, number, command))
    environment = {**(env if env is not None else os.environ), SUPERVISOR_PID_ENV: str(os.getpid())}
    for worker in workers:
        worker.start(environment)
    try:
        while not stop.wait(0.5):
            for worker in workers:
                _restart_if_dead(worker, environment)
    finally:
        _stop_all(workers)


def _restart_if_dead(worker: Worker, environment: Mapping[str, str]) -> None:
    now = time.monotonic()
    if worker.process is not None:
        code = worker.process.poll()
        if code is None:
            if now - worker.started_at > MAX_RESTART_DELAY:
                worker.restarts = 0  # up for a while: a later death starts the back-off afresh
            return
        delay = min(2.0 ** worker.restarts, MAX_RESTART_DELAY)
        log.error("worker exited: worker=%s code=%s restart_in=%.0fs", worker.name, code, delay)
        worker.process, worker.next_start = None, now + delay
        worker.restarts += 1
    if now >= worker.next_start:
        worker.start(environment)


def _stop_all(workers: list[Worker]) -> None:
    running = [worker for worker in workers if worker.process is not None and worker.process.poll() is None]
    log.info("stopping workers: %s", ", ".join(worker.name for worker in running) or "none running")
    for worker in running:
        worker.process.send_signal(signal.SIGTERM)
    deadline = time.monotonic() + STOP_GRACE_SECONDS
    for worker in running:
        try:
            worker.process.wait(timeout=max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            log.error("worker did not stop within %.0f s, killed: worker=%s", STOP_GRACE_SECONDS, worker.name)
            worker.process.kill()
            worker.process.wait()


def stop_when_orphaned(
    stop: threading.Event, environment: Mapping[str, str] = os.environ, check_seconds: float = ORPHAN_CHECK_SECONDS,
) -> threading.Thread | None:
    """In a worker started by :func:`supervise`, set ``stop`` once the supervisor is gone.

    A worker left running by a killed supervisor would go on unwatched, beside the workers of
    the next supervisor, and nothing would ever stop it gracefully; so it stops itself, flushing
    and committing as on SIGTERM. Returns the watching thread, or ``None`` outside a supervisor.
    """
    supervisor = environment.get(SUPERVISOR_PID_ENV)
    if supervisor is None:
        return None

    def watch() -> None:
        # Once the supervisor is gone the worker has been re-parented, to init or a subreaper.
        while not stop.wait(check_seconds):
            if str(os.getppid()) != supervisor:
                log.error("supervisor pid=%s is gone; this worker stops, flushing and committing first", supervisor)
                stop.set()

    thread = threading.Thread(target=watch, name="supervisor-watch", daemon=True)
    thread.start()
    return thread
