"""The pipeline's topic graph, assembled from what the stages declare.

Every stage class registered under ``amur.stages`` (:mod:`pipeline.core.registry`) declares
the topic kinds it reads (``inputs``) and the kinds it writes with their message models
(``outputs``); its registered name is its role, the ``ROLE`` of ``amur run ROLE`` and its
consumer group's suffix. The core declares only the two topics no stage writes:
:data:`SOURCE_TOPIC`, which the connectors role fills, and :data:`DEAD_LETTER_TOPIC`, which
every stage may write. Everything shaped by the graph is derived here: the topic names
(:class:`Topics`), the JSON Schemas (:mod:`pipeline.core.schemas`), the roles ``amur run``
accepts and the order in which ``--once`` drains them. A stage between two topics is one
module and one entry point::

    class Translate(Stage):
        inputs = ("classified",)
        outputs = {"translated": Translated}
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import cached_property

from pipeline.core import registry
from pipeline.core.errors import AmurError
from pipeline.core.messages import Article, DeadLetter, Message

SOURCE_TOPIC = "articles"
DEAD_LETTER_TOPIC = "dlq"
CORE_TOPICS: Mapping[str, type[Message]] = {SOURCE_TOPIC: Article, DEAD_LETTER_TOPIC: DeadLetter}
CONNECTORS_ROLE = "connectors"


class TopologyError(AmurError):
    """The stages' declarations do not make one graph: a topic with two models, a cycle, a topic nobody writes."""


@dataclass(frozen=True)
class StageSpec:
    """One consuming stage as the graph sees it.

    :ivar role: its name in the ``amur.stages`` registry: the name ``amur run ROLE`` takes,
        the consumer group's suffix and the ``stage`` field of its dead letters.
    :ivar inputs: the topic kinds it reads.
    :ivar outputs: the topic kinds it writes, with the message model of each.
    """

    role: str
    inputs: tuple[str, ...]
    outputs: Mapping[str, type[Message]] = field(default_factory=dict)


def stage_specs() -> tuple[StageSpec, ...]:
    """Every registered stage's declaration (importing each stage's module)."""
    specs = []
    for role in registry.stages.names():
        cls = registry.stages.get(role)
        inputs, outputs = getattr(cls, "inputs", None), getattr(cls, "outputs", None)
        if not isinstance(inputs, tuple) or not inputs or not isinstance(outputs, Mapping):
            raise TopologyError(
                f"stage {role!r} ({cls.__module__}.{cls.__qualname__}) must declare 'inputs' (a tuple of topic kinds) "
                "and 'outputs' (a mapping of topic kind to message model) as class attributes"
            )
        specs.append(StageSpec(role, inputs, dict(outputs)))
    return tuple(specs)


def topic_models(stages: tuple[StageSpec, ...] | None = None) -> dict[str, type[Message]]:
    """Every topic kind with its message model: the source topic, each stage's outputs in flow order, the dead letters."""
    ordered = flow_order(stages)
    models: dict[str, type[Message]] = {SOURCE_TOPIC: Article}
    for spec in ordered:
        for kind, model in spec.outputs.items():
            if kind in CORE_TOPICS or models.setdefault(kind, model) is not model:
                first = CORE_TOPICS.get(kind) or models[kind]
                raise TopologyError(f"topic {kind!r} is declared with two models: {first.__name__} and {model.__name__} (stage {spec.role!r})")
    models[DEAD_LETTER_TOPIC] = DeadLetter
    for spec in ordered:
        unknown = [kind for kind in spec.inputs if kind not in models]
        if unknown:
            raise TopologyError(f"stage {spec.role!r} reads {', '.join(map(repr, unknown))}, which no stage writes")
    return models


def flow_order(stages: tuple[StageSpec, ...] | None = None) -> list[StageSpec]:
    """The stages ordered so that each comes after every stage writing a topic it reads."""
    ordered: list[StageSpec] = []
    written = {SOURCE_TOPIC}
    remaining = list(stage_specs() if stages is None else stages)
    while remaining:
        ready = [spec for spec in remaining if all(_produced_before(topic, written, remaining, spec) for topic in spec.inputs)]
        if not ready:
            raise TopologyError(f"the stage graph has a cycle among: {', '.join(spec.role for spec in remaining)}")
        ready.sort(key=lambda spec: spec.role)
        for spec in ready:
            ordered.append(spec)
            written.update(spec.outputs)
            remaining.remove(spec)
    return ordered


def _produced_before(topic: str, written: set[str], remaining: list[StageSpec], spec: StageSpec) -> bool:
    return topic in written or not any(topic in other.outputs for other in remaining if other is not spec)


def roles(stages: tuple[StageSpec, ...] | None = None) -> tuple[str, ...]:
    """Every role in flow order, connectors first."""
    return (CONNECTORS_ROLE, *(spec.role for spec in flow_order(stages)))


@dataclass(frozen=True)
class Topics:
    """Topic names under one prefix (``kafka.topic_prefix``): ``topics.articles`` is ``amur.articles``.

    The kinds are those of the registered stages' graph (:func:`topic_models`), read at first use.
    """

    prefix: str = "amur."

    @cached_property
    def models(self) -> dict[str, type[Message]]:
        return topic_models()

    def name(self, kind: str) -> str:
        """The topic of a declared kind; ``KeyError`` for an undeclared one."""
        if kind not in self.models:
            raise KeyError(f"no stage declares a topic {kind!r}; declared: {', '.join(self.models)}")
        return f"{self.prefix}{kind}"

    def __getattr__(self, kind: str) -> str:
        if kind.startswith("_") or kind == "models":
            raise AttributeError(kind)
        if kind in self.models:
            return f"{self.prefix}{kind}"
        raise AttributeError(kind)

    def all(self) -> list[str]:
        return [self.name(kind) for kind in self.models]

    def kind_of(self, topic: str) -> str:
        """The declared kind of a topic name (``amur.alerts`` → ``alerts``)."""
        kind = topic.removeprefix(self.prefix)
        if kind not in self.models:
            raise KeyError(f"{topic!r} is not a topic of this pipeline")
        return kind

    def model_for(self, topic: str) -> type[Message]:
        return self.models[self.kind_of(topic)]
