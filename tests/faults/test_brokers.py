"""The broker away mid-stream: a single broker stopped for 30 s, and one broker of three SIGKILLed.

Both drills use brokers of their own (``scripts/kafka-dev`` on free ports), so the suite's
shared broker is never touched.
"""

from __future__ import annotations

import time

import pytest
from kafka import KafkaAdminClient
from kafka.admin import ConfigResource, ConfigResourceType

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


def test_a_broker_of_three_sigkilled_mid_stream_loses_and_doubles_nothing(kafka_cluster, make_drill, database):
    cluster, bootstrap = kafka_cluster
    with WebhookReceiver() as receiver:
        drill = make_drill(bootstrap, database, receiver.url, replication_factor=3)
        with running(drill):
            drill.wait_for(lambda: drill.recorded() >= 4, 120, "the stream under way")
            _assert_replicated(bootstrap, drill.topics.articles)
            cluster("kill", "1")  # the first bootstrap server, and leader of some partitions
            drill.wait_for(lambda: drill.settled(receiver), SETTLE_SECONDS, "the stream to finish on two brokers")
        drill.assert_exactly_once(receiver)


def _assert_replicated(bootstrap: str, topic: str) -> None:
    """Every partition of ``topic`` has three replicas in sync, and the brokers need two of them for a write."""
    admin = KafkaAdminClient(bootstrap_servers=bootstrap.split(","), client_id="drill")
    try:
        (described,) = admin.describe_topics([topic])
        configs = admin.describe_configs(
            [ConfigResource(ConfigResourceType.TOPIC, topic, configs=["min.insync.replicas"])], config_filter="all",
        )
    finally:
        admin.close()
    for partition in described["partitions"]:
        assert len(partition["replica_nodes"]) == 3 and len(partition["isr_nodes"]) == 3, partition
    assert configs["topic"][topic]["min.insync.replicas"]["value"] == "2"
