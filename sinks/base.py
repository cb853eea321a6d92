"""The sink lifecycle shared by every sink: ``setup`` → ``add`` … ``flush`` → ``close``.

The sinks stage (:class:`pipeline.stages.SinkStage`) feeds each decoded message of a batch
to the sinks that read its topic with ``add``, then calls ``flush`` on every sink, and only
when all flushes returned does it commit the batch's offsets. So:

* ``flush`` returning means the batch is durably written; raising
  :class:`~pipeline.errors.SinkError` means nothing of the batch is committed and it will be
  delivered again (:class:`~pipeline.errors.SinkBackpressure` says when to retry);
* a message can arrive twice (after a crash, a retry or a broker restart), so ``write`` must
  be idempotent: upsert by id, never append.

Most sinks subclass :class:`BatchingSink` and implement only ``write(batch)``::

    class PrintSink(BatchingSink):
        topic = "alerts"

        def write(self, batch):
            for alert in batch:
                print(alert.id, alert.title)
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
from typing import ClassVar, Literal

from pipeline.messages import Alert, Classified

SinkTopic = Literal["classified", "alerts"]
SinkMessage = Classified | Alert


class Sink(ABC):
    """Receives the messages of one topic (``topic``: ``classified`` or ``alerts``)."""

    topic: ClassVar[SinkTopic]

    def setup(self) -> None:
        """Connect and create what the sink needs; called once before the first ``add``."""

    @abstractmethod
    def add(self, message: SinkMessage) -> None:
        """Accept one message; it need not be written before ``flush``."""

    @abstractmethod
    def flush(self) -> None:
        """Durably write everything added since the last flush, or raise SinkError."""

    def close(self) -> None:
        """Release connections; called once, after the last flush."""


class BatchingSink(Sink):
    """Keeps added messages in memory and hands them to ``write`` as one batch on flush."""

    def __init__(self) -> None:
        self._batch: list[SinkMessage] = []

    def add(self, message: SinkMessage) -> None:
        self._batch.append(message)

    def flush(self) -> None:
        if not self._batch:
            return
        try:
            self.write(self._batch)
        finally:
            # A failed batch is delivered again from the uncommitted offsets, so keeping it
            # here would write it twice.
            self._batch = []

    @abstractmethod
    def write(self, batch: Sequence[SinkMessage]) -> None:
        """Write the whole batch idempotently, or raise SinkError."""
