"""The broker away mid-stream: a single broker stopped for 30 s and started again.

The drill uses a broker of its own (``scripts/kafka-dev`` on free ports), so the suite's
shared broker is never touched.
"""

from __future__ import annotations

import time

import pytest

from tests.faults.conftest import SETTLE_SECONDS, running
from tests.support.webhook_receiver import WebhookReceiver

pytestmark = [pytest.mark.faults, pytest.mark.kafka, pytest.mark.postgres, pytest.mark.slow]

OUTAGE_SECONDS = 30


def test_the_broker_stopped_for_30_seconds_mid_stream_loses_and_doubles_nothing(own_kafka, make_drill, database):
    kafka, bootstrap = own_kafka
    with WebhookReceiver() as receiver:
        drill = make_drill(bootstrap, database, receiver.url)
        with running(drill):
            drill.wait_for(lambda: drill.recorded() >= 4, 120, "the stream under way")
            kafka("stop")
            time.sleep(OUTAGE_SECONDS)
            kafka("start")
            drill.wait_for(lambda: drill.settled(receiver), SETTLE_SECONDS, "the stream to finish after the outage")
            assert drill.worker_pids("processors"), "no processor running after the outage"
        drill.assert_exactly_once(receiver)
