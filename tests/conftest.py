"""Fixtures shared by the whole suite: the Kafka broker and transports over either log.

Tests that need the real broker must not silently pass where it is missing: in CI (``CI``
set) or with ``AMUR_REQUIRE_KAFKA=1`` an unreachable broker fails them; on a developer
machine without Kafka they are skipped so the rest of the suite stays usable.
"""

from __future__ import annotations

import logging
import os
import socket
from collections.abc import Callable, Iterator
from uuid import uuid4

import pytest

from pipeline.app.logs import QUIET_LIBRARIES
from pipeline.core.errors import TransportError
from pipeline.core.settings import EnvironmentOverrides, KafkaSettings
from pipeline.core.transport.base import Transport
from pipeline.core.transport.embedded import EmbeddedTransport
from pipeline.core.transport.kafka import KafkaTransport
from tests.support.databases import database_url  # noqa: F401 - every SQL test runs on SQLite and PostgreSQL

KAFKA_CHECK_TIMEOUT = 10.0
HOW_TO_START_KAFKA = (
    "start it with `scripts/kafka-dev start` (or `docker compose up -d kafka`), "
    "or point AMUR_TEST_KAFKA_BOOTSTRAP at a running broker"
)

TransportFactory = Callable[[], Transport]


@pytest.fixture(autouse=True)
def _no_settings_from_the_environment(monkeypatch):
    """Settings come from each test's own files: an ``AMUR_*`` override in the developer's or
    CI's environment (``AMUR_DATABASE_URL``, say) must not reach them."""
    for field in EnvironmentOverrides.model_fields:
        monkeypatch.delenv(f"AMUR_{field.upper()}", raising=False)


def _first_port_accepts(bootstrap: str) -> bool:
    """Whether the first bootstrap server accepts TCP connections.

    A refused port is answered at once, so a machine without Kafka skips in milliseconds
    instead of waiting out the client's bootstrap timeout.
    """
    host, _, port = bootstrap.split(",")[0].strip().rpartition(":")
    try:
        with socket.create_connection((host or "127.0.0.1", int(port or 9092)), timeout=KAFKA_CHECK_TIMEOUT):
            return True
    except OSError:
        return False


@pytest.fixture(scope="session")
def kafka_bootstrap() -> str:
    """``host:port`` of a Kafka broker that answers metadata requests."""
    bootstrap = os.environ.get("AMUR_TEST_KAFKA_BOOTSTRAP", "127.0.0.1:9092")
    problem = None
    if not _first_port_accepts(bootstrap):
        problem = f"nothing listens at {bootstrap}"
    else:
        transport = KafkaTransport(KafkaSettings(bootstrap_servers=bootstrap), timeout=KAFKA_CHECK_TIMEOUT)
        try:
            transport.check_connection()
        except TransportError as exc:
            problem = str(exc)
        finally:
            transport.close()
    if problem is None:
        return bootstrap
    message = f"Kafka broker unavailable ({problem}); {HOW_TO_START_KAFKA}"
    if os.environ.get("CI") or os.environ.get("AMUR_REQUIRE_KAFKA") == "1":
        pytest.fail(message, pytrace=False)
    pytest.skip(message)


@pytest.fixture
def topic_prefix() -> str:
    """A prefix no other test uses, so tests sharing one broker never see each other's topics."""
    return f"t{uuid4().hex[:10]}."


@pytest.fixture(params=["embedded", pytest.param("kafka", marks=pytest.mark.kafka)])
def transport_factory(request: pytest.FixtureRequest, tmp_path, topic_prefix: str) -> Iterator[TransportFactory]:
    """Makes transports over one log — one SQLite file or one Kafka cluster — per test.

    Every transport made is a fresh client of the same log, like a restarted process, so a
    test can check what survives a restart. All of them are closed after the test.
    """
    made: list[Transport] = []

    if request.param == "kafka":
        settings = KafkaSettings(
            bootstrap_servers=request.getfixturevalue("kafka_bootstrap"), topic_prefix=topic_prefix, partitions=3
        )

        def make() -> Transport:
            made.append(KafkaTransport(settings))
            return made[-1]
    else:
        path = str(tmp_path / "log.sqlite")

        def make() -> Transport:
            made.append(EmbeddedTransport(path, default_partitions=3))
            return made[-1]

    yield make
    for transport in made:
        transport.close()


_REQUIRED_SERVICES = {"kafka": "AMUR_REQUIRE_KAFKA", "postgres": "AMUR_REQUIRE_POSTGRES"}
_skipped_integration: list[str] = []


def _required(marker: str) -> bool:
    return os.environ.get(_REQUIRED_SERVICES[marker]) == "1" or (marker == "kafka" and bool(os.environ.get("CI")))


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    """Remember every integration test that skipped although its service is required."""
    if report.skipped and any(marker in report.keywords and _required(marker) for marker in _REQUIRED_SERVICES):
        _skipped_integration.append(report.nodeid)


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    # A skip hidden behind a green run would let a missing broker or database go unnoticed.
    if _skipped_integration:
        print(f"\nerror: {len(_skipped_integration)} required integration test(s) skipped:", *_skipped_integration, sep="\n  ")
        session.exitstatus = pytest.ExitCode.TESTS_FAILED


@pytest.fixture
def isolated_logging():
    """Logging as it was before the test, whatever ``configure_logging`` the test (or a command it runs) did."""
    root = logging.getLogger()
    saved = root.handlers[:], root.level, {name: logging.getLogger(name).level for name in QUIET_LIBRARIES}
    yield
    root.handlers[:], root.level = saved[0], saved[1]
    for name, level in saved[2].items():
        logging.getLogger(name).setLevel(level)
