"""Registries that find connectors, stages and sinks by the names configuration uses.

``kind: rss`` in sources.yaml, ``- type: feeds`` under ``sinks:`` in amur.yaml and the role
of ``amur run processors`` name a class that this core never imports.
Classes are found through Python entry points, the way spaCy finds its factories: Amur's
own are declared in ``pyproject.toml``, and an operator's package adds its own connector by
declaring one in the same group::

    [project.entry-points."amur.connectors"]
    sitemap = "my_package.sitemap:SitemapConnector"

Code that builds classes at run time (tests, notebooks) can also call ``register``.
Looking up a name imports only the module of that name's class. The installed entry points
are read once per process (reading them costs milliseconds, and a sources file may name a
kind 50,000 times): a package installed later is found after a restart.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from importlib.metadata import EntryPoint, entry_points
from typing import Generic, TypeVar

from pipeline.core.errors import AmurError

T = TypeVar("T")


class UnknownName(AmurError):
    """No class is registered under a name; the message lists the names that are."""


class Registry(Generic[T]):
    """Classes of one kind (connectors, sinks or stages) by name.

    :param what: what the classes are, for messages ("connector").
    :param group: the entry-point group listing them ("amur.connectors").
    """

    def __init__(self, what: str, group: str):
        self.what = what
        self.group = group
        self._registered: dict[str, type[T]] = {}
        self._declared: dict[str, EntryPoint] | None = None
        self._lock = threading.Lock()

    def register(self, name: str) -> Callable[[type[T]], type[T]]:
        """A class decorator that registers the class under ``name`` in this process."""

        def add(cls: type[T]) -> type[T]:
            with self._lock:
                self._registered[name] = cls
            return cls

        return add

    def unregister(self, name: str) -> None:
        """Forget a class registered with :meth:`register` (entry points stay)."""
        with self._lock:
            self._registered.pop(name, None)

    def names(self) -> list[str]:
        """Every name known, registered in this process or declared as an entry point."""
        with self._lock:
            registered = set(self._registered)
        return sorted(registered | set(self._entry_points()))

    def __contains__(self, name: str) -> bool:
        with self._lock:
            if name in self._registered:
                return True
        return name in self._entry_points()

    def _entry_points(self) -> dict[str, EntryPoint]:
        if self._declared is None:
            declared = {point.name: point for point in entry_points(group=self.group)}
            with self._lock:
                self._declared = declared
        return self._declared

    def get(self, name: str) -> type[T]:
        """The class registered as ``name``.

        :raises UnknownName: no such name; the message lists the known ones.
        """
        with self._lock:
            if name in self._registered:
                return self._registered[name]
        point = self._entry_points().get(name)
        if point is None:
            known = ", ".join(self.names()) or "none"
            raise UnknownName(f"no {self.what} named {name!r}; known: {known}")
        cls = point.load()
        with self._lock:
            self._registered.setdefault(name, cls)
        return cls


connectors: Registry = Registry("connector kind", "amur.connectors")
# A plugin with tables of its own names the package of its Alembic revisions here.
migrations: Registry = Registry("migrations package", "amur.migrations")
sinks: Registry = Registry("sink type", "amur.sinks")
stages: Registry = Registry("stage", "amur.stages")
