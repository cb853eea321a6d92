"""Each role SIGKILLed while the stream flows: the supervisor starts it again and nothing is lost or
doubled; the supervisor SIGKILLed: its workers stop themselves and the next supervisor finishes."""

from __future__ import annotations

import os
import signal

import pytest

from pipeline.core.topology import roles
from tests.faults.conftest import SETTLE_SECONDS, Drill, process_alive, running
from tests.support.webhook_receiver import WebhookReceiver

pytestmark = [pytest.mark.faults, pytest.mark.kafka, pytest.mark.postgres, pytest.mark.slow]


def _at_work(drill: Drill, role: str) -> bool:
    """Whether ``role`` is in the middle of the stream: it has done some of its work, not all."""
    if role == "connectors":
        fetched = sum(1 for request in drill.stream.site.requests if request.path.endswith(".html"))
        return 6 <= fetched < len(drill.stream.pages) - 6
    if role == "stories":
        return drill.query("SELECT COUNT(*) FROM alerts")[0][0] >= 1
    return 4 <= drill.recorded() < len(drill.stream.pages) - 6


@pytest.mark.parametrize("role", ["connectors", "processors", "stories", "sinks"])
def test_a_role_killed_mid_stream_is_restarted_and_nothing_is_lost_or_doubled(role, make_drill, kafka_bootstrap, database):
    with WebhookReceiver() as receiver:
        drill = make_drill(kafka_bootstrap, database, receiver.url)
        with running(drill):
            drill.wait_for(lambda: _at_work(drill, role), 120, f"{role} in the middle of the stream")
            victim = drill.worker_pids(role)[0]
            os.kill(victim, signal.SIGKILL)
            drill.wait_for(lambda: drill.settled(receiver), SETTLE_SECONDS, "the stream to be recorded and alerted")
        drill.assert_exactly_once(receiver)
    log = drill.log.read_text(errors="replace")
    assert f"worker exited: worker={role}#1 code=-9" in log
    assert log.count(f"worker started: worker={role}#1") == 2


def test_killed_once_at_every_failpoint_with_two_sinks_workers_each_story_version_is_one_delivery(
    make_drill, kafka_bootstrap, database,
):
    # Every role dies once between producing its outputs and committing its offsets, the
    # supervisor starts it again, and two sinks workers share the webhook outbox throughout.
    failpoints = [f"{role}.before_commit" for role in roles()]
    with WebhookReceiver() as receiver:
        drill = make_drill(kafka_bootstrap, database, receiver.url, workers="processors=2,sinks=2",
                           failpoints=failpoints, updates=True)
        with running(drill):
            drill.wait_for(lambda: drill.settled(receiver), SETTLE_SECONDS, "the stream to be recorded and alerted")
        drill.assert_exactly_once(receiver, repeats=True)
    log = drill.log.read_text(errors="replace")
    assert sorted(path.name for path in (drill.root / "failpoints-fired").iterdir()) == sorted(failpoints)
    for role in roles():
        assert f"worker={role}#" in log and any(
            f"worker exited: worker={role}#" in line and "code=-9" in line for line in log.splitlines()), role
    assert log.count("worker started: worker=sinks#") >= 3, "two sinks workers and the one started again"


def test_sinks_killed_while_the_endpoint_has_a_delivery_send_it_again_under_the_same_webhook_id(
    make_drill, kafka_bootstrap, database,
):
    # The one window no outbox closes: the endpoint took the POST, the sender died before it
    # could mark it delivered. The delivery comes again, the same body under the same
    # webhook-id, so a receiver that drops repeats by id sees each story once.
    killed: list[str] = []
    drills: list[Drill] = []

    def kill_the_sender_once(request) -> None:
        if not killed and drills:
            killed.append(request.headers["webhook-id"])
            os.kill(drills[0].worker_pids("sinks")[0], signal.SIGKILL)

    with WebhookReceiver(on_request=kill_the_sender_once) as receiver:
        drill = make_drill(kafka_bootstrap, database, receiver.url)
        drills.append(drill)
        with running(drill):
            drill.wait_for(
                lambda: drill.settled(receiver)
                and sum(request.headers["webhook-id"] in killed for request in receiver.accepted) == 2,
                SETTLE_SECONDS, "the stream to be alerted and the killed delivery sent again",
            )
        drill.assert_exactly_once(receiver, resent=killed)
    assert "worker exited: worker=sinks#1 code=-9" in drill.log.read_text(errors="replace")


def test_the_supervisor_killed_mid_stream_leaves_no_workers_and_the_next_one_finishes(make_drill, kafka_bootstrap, database):
    with WebhookReceiver() as receiver:
        drill = make_drill(kafka_bootstrap, database, receiver.url)
        with running(drill):
            drill.wait_for(lambda: _at_work(drill, "processors"), 120, "processors in the middle of the stream")
            orphans = [pid for role in roles() for pid in drill.worker_pids(role)]
            drill.kill_supervisor()
            drill.wait_for(lambda: not any(map(process_alive, orphans)), 20, "the orphaned workers to stop themselves")
            drill.start()
            drill.wait_for(lambda: drill.settled(receiver), SETTLE_SECONDS, "the stream to be recorded and alerted")
        drill.assert_exactly_once(receiver)
    log = drill.log.read_text(errors="replace")
    assert len(orphans) == 5 and log.count("is gone; this worker stops") == len(orphans)
