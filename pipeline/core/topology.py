"""The pipeline's topic graph, declared once: topics, their message models, and the stages between.

Everything that depends on the shape of the pipeline is derived from here: the topic names
(:class:`Topics`), the JSON Schemas (:mod:`pipeline.core.schemas`), the roles ``amur run``
accepts, and the order in which ``--once`` drains the stages. Adding a stage — story
clustering between ``classified`` and ``alerts`` was — is one :class:`StageSpec` here and
one class registered under its ``stage`` name (see :mod:`pipeline.core.registry`)::

    StageSpec(role="stories", stage="stories", inputs=("classified",), outputs=("alerts",))
The connectors role is not a stage: it reads sources, not a topic, and writes
:data:`SOURCE_TOPIC`. Every stage may also write :data:`DEAD_LETTER_TOPIC`.
"""

from __future__ import annotations

from dataclasses import dataclass

from pipeline.core.messages import Alert, Article, Classified, DeadLetter, Message

TOPIC_MODELS: dict[str, type[Message]] = {
    "articles": Article,
    "classified": Classified,
    "alerts": Alert,
    "dlq": DeadLetter,
}
SOURCE_TOPIC = "articles"
DEAD_LETTER_TOPIC = "dlq"
CONNECTORS_ROLE = "connectors"


@dataclass(frozen=True)
class StageSpec:
    """One consuming stage: the role that runs it, its registered class, what it reads and writes.

    :ivar role: the name ``amur run ROLE`` takes; also the consumer group's suffix and the
        ``stage`` field of its dead letters.
    :ivar stage: the name its class is registered under in :data:`pipeline.core.registry.stages`.
    """

    role: str
    stage: str
    inputs: tuple[str, ...]
    outputs: tuple[str, ...] = ()


STAGES: tuple[StageSpec, ...] = (
    StageSpec(role="processors", stage="classify", inputs=("articles",), outputs=("classified",)),
    StageSpec(role="stories", stage="stories", inputs=("classified",), outputs=("alerts",)),
    StageSpec(role="sinks", stage="sinks", inputs=("classified", "alerts")),
)


def flow_order(stages: tuple[StageSpec, ...] = STAGES) -> list[StageSpec]:
    """The stages ordered so that each comes after every stage writing a topic it reads."""
    ordered: list[StageSpec] = []
    written = {SOURCE_TOPIC}
    remaining = list(stages)
    while remaining:
        ready = [spec for spec in remaining if all(_produced_before(topic, written, remaining, spec) for topic in spec.inputs)]
        if not ready:
            raise ValueError(f"the stage graph has a cycle among: {', '.join(spec.role for spec in remaining)}")
        for spec in ready:
            ordered.append(spec)
            written.update(spec.outputs)
            remaining.remove(spec)
    return ordered


def _produced_before(topic: str, written: set[str], remaining: list[StageSpec], spec: StageSpec) -> bool:
    return topic in written or not any(topic in other.outputs for other in remaining if other is not spec)


def roles(stages: tuple[StageSpec, ...] = STAGES) -> tuple[str, ...]:
    """Every role in flow order, connectors first."""
    return (CONNECTORS_ROLE, *(spec.role for spec in flow_order(stages)))


def stage_for(role: str, stages: tuple[StageSpec, ...] = STAGES) -> StageSpec:
    """The stage a role runs; ``KeyError`` for connectors or an unknown role."""
    for spec in stages:
        if spec.role == role:
            return spec
    raise KeyError(role)


@dataclass(frozen=True)
class Topics:
    """Topic names under one prefix (``kafka.topic_prefix``): ``topics.articles`` is ``amur.articles``."""

    prefix: str = "amur."

    def name(self, kind: str) -> str:
        """The topic of a declared kind; ``KeyError`` for an undeclared one."""
        if kind not in TOPIC_MODELS:
            raise KeyError(f"no topic {kind!r} is declared in pipeline.core.topology")
        return f"{self.prefix}{kind}"

    def __getattr__(self, kind: str) -> str:
        if kind in TOPIC_MODELS:
            return f"{self.prefix}{kind}"
        raise AttributeError(kind)

    def all(self) -> list[str]:
        return [self.name(kind) for kind in TOPIC_MODELS]

    def kind_of(self, topic: str) -> str:
        """The declared kind of a topic name (``amur.alerts`` → ``alerts``)."""
        kind = topic.removeprefix(self.prefix)
        if kind not in TOPIC_MODELS:
            raise KeyError(f"{topic!r} is not a topic of this pipeline")
        return kind

    def model_for(self, topic: str) -> type[Message]:
        return TOPIC_MODELS[self.kind_of(topic)]
