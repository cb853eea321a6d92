"""Prometheus metrics of the pipeline's roles, with prometheus-client.

Every role process counts into :data:`REGISTRY`; ``amur run --metrics-port N`` serves it at
``http://127.0.0.1:N/metrics`` (:func:`serve`). The series, by what they watch:

================================  =========================================================
sources (connectors role)         ``amur_source_polls_total{source,outcome}`` (changed,
                                  not_modified, failed), ``amur_source_new_items_total``,
                                  ``amur_source_item_failures_total``,
                                  ``amur_source_interval_seconds`` (until the next poll),
                                  ``amur_source_silent`` (1 while reported silent)
stages (processors, stories,      ``amur_stage_records_in_total{stage}``,
sinks)                            ``amur_stage_records_out_total{stage,topic}``,
                                  ``amur_stage_batch_seconds`` (handle + flush of a batch),
                                  ``amur_stage_latency_seconds`` (from a record's append to
                                  its input topic to the commit that consumed it),
                                  ``amur_stage_lag_records`` (what its group has yet to read)
dead letters (every role)         ``amur_dead_letters_total{stage}``
channels (webhooks sink)          ``amur_channel_deliveries_total{channel,outcome}``
                                  (delivered, retried, parked)
================================  =========================================================

The web server (``amur serve``) has its own registry, of requests and of what the database
holds (``pipeline/app/web/app.py``).
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, start_http_server

__all__ = [
    "CHANNEL_DELIVERIES", "DEAD_LETTERS", "REGISTRY", "SOURCE_INTERVAL", "SOURCE_ITEM_FAILURES", "SOURCE_NEW_ITEMS",
    "SOURCE_POLLS", "SOURCE_SILENT", "STAGE_BATCH_SECONDS", "STAGE_LAG", "STAGE_LATENCY", "STAGE_RECORDS_IN",
    "STAGE_RECORDS_OUT", "serve",
]

REGISTRY = CollectorRegistry()
# From a few milliseconds (a light stream) to minutes (a stage catching up after an outage).
LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0)

SOURCE_POLLS = Counter("amur_source_polls", "Polls of a source, by outcome: changed, not_modified, failed",
                       ["source", "outcome"], registry=REGISTRY)
SOURCE_NEW_ITEMS = Counter("amur_source_new_items", "Articles a source emitted", ["source"], registry=REGISTRY)
SOURCE_ITEM_FAILURES = Counter("amur_source_item_failures", "Items of a source that failed (given up or to retry)",
                               ["source"], registry=REGISTRY)
SOURCE_INTERVAL = Gauge("amur_source_interval_seconds", "Seconds from a source's last poll to its next", ["source"],
                        registry=REGISTRY)
SOURCE_SILENT = Gauge("amur_source_silent", "1 while a source is reported silent, else 0", ["source"], registry=REGISTRY)

STAGE_RECORDS_IN = Counter("amur_stage_records_in", "Input records a stage handled and committed", ["stage"],
                           registry=REGISTRY)
STAGE_RECORDS_OUT = Counter("amur_stage_records_out", "Records a stage produced", ["stage", "topic"], registry=REGISTRY)
STAGE_BATCH_SECONDS = Histogram("amur_stage_batch_seconds", "Seconds to handle and flush one batch", ["stage"],
                                buckets=LATENCY_BUCKETS, registry=REGISTRY)
STAGE_LATENCY = Histogram("amur_stage_latency_seconds", "Seconds from a record's append to its input topic to its commit",
                          ["stage"], buckets=LATENCY_BUCKETS, registry=REGISTRY)
STAGE_LAG = Gauge("amur_stage_lag_records", "Records on a stage's input topics its member has yet to read", ["stage"],
                  registry=REGISTRY)

DEAD_LETTERS = Counter("amur_dead_letters", "Dead letters sent, by the stage that gave up", ["stage"], registry=REGISTRY)
CHANNEL_DELIVERIES = Counter("amur_channel_deliveries", "Deliveries to subscribers' endpoints, by outcome: delivered, retried, parked",
                             ["channel", "outcome"], registry=REGISTRY)


def serve(port: int, host: str = "127.0.0.1") -> None:
    """Serve :data:`REGISTRY` at ``http://host:port/metrics`` from a daemon thread."""
    start_http_server(port, addr=host, registry=REGISTRY)
