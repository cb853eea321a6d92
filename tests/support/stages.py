"""Stages made in a test, from the same context ``amur run`` gives them."""

from __future__ import annotations

from pipeline.core.settings import AmurSettings
from pipeline.core.stages import StageContext
from pipeline.core.topology import Topics
from pipeline.core.transport.base import Transport


def stage_context(transport: Transport, topics: Topics, role: str, *, group: str | None = None, settings: AmurSettings | None = None) -> StageContext:
    """The context of ``role``'s stage on ``transport``, with default settings; its consumer group is the role's name unless given."""
    return StageContext(settings or AmurSettings(), transport, topics, role, group or role)
