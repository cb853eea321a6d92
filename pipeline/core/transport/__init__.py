"""Transports: the Kafka log and its embedded single-machine twin."""

from __future__ import annotations

from pipeline.core.settings import AmurSettings
from pipeline.core.transport.base import Transport


def make_transport(settings: AmurSettings) -> Transport:
    """The transport ``settings.transport`` names; kafka-python is imported only for Kafka."""
    if settings.transport == "kafka":
        from pipeline.core.transport.kafka import KafkaTransport

        return KafkaTransport(settings.kafka)
    from pipeline.core.transport.embedded import EmbeddedTransport

    embedded = settings.embedded
    return EmbeddedTransport(
        embedded.path, embedded.partitions, retention_seconds=embedded.retention_hours * 3600,
        max_message_bytes=embedded.max_message_bytes,
    )
