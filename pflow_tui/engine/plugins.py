"""Plugins through entry points: :class:`PluginRegistry` (the built-ins plus what installed
packages declare) and :func:`merge_strategies`, the registry of merge strategies.

The node-type registry is :func:`pflow_tui.engine.registry.registry`; node types import
this module (the ``merge`` node lists the strategies), never that one, so the registry
may import every node type.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Iterable, Iterator, Mapping
from functools import cache
from importlib.metadata import entry_points
from typing import Any, Generic, TypeVar

from .nodes.base import NodeType
from .run.merge_strategies import BUILTIN_STRATEGIES, MergeStrategy

MERGE_ENTRY_POINT_GROUP = "pflow_tui.merges"

T = TypeVar("T", NodeType, MergeStrategy)


class PluginRegistry(Mapping[str, T], Generic[T]):
    """Things by name: the built-ins at once, plugins when first needed.

    Scanning installed packages for entry points takes tens of milliseconds, so it waits
    until a name is not a built-in, or until every name is listed. A plugin that fails
    to load is left out and remembered in ``broken`` (name -> why); plugins cannot
    shadow built-ins.
    """

    def __init__(self, group: str, kind: type[T], builtins: Iterable[T]) -> None:
        self.group = group
        self.kind = kind
        self.broken: dict[str, str] = {}
        self._items: dict[str, T] = {t.name: t for t in builtins}
        self._scanned = False

    def _scan(self) -> None:
        if self._scanned:
            return
        self._scanned = True
        for ep in entry_points(group=self.group):
            if ep.name in self._items:
                continue
            try:
                loaded = ep.load()
                item = loaded() if isinstance(loaded, type) else loaded
            except Exception as exc:
                self.broken[ep.name] = f"{ep.value}: {type(exc).__name__}: {exc}"
                continue
            if not isinstance(item, self.kind):
                self.broken[ep.name] = f"{ep.value} is a {type(item).__name__}, not a {self.kind.__name__}"
                continue
            self._items.setdefault(ep.name, item)

    def __getitem__(self, name: str) -> T:
        found = self._items.get(name)
        if found is None:
            self._scan()
            return self._items[name]
        return found

    def __contains__(self, name: object) -> bool:
        if name in self._items:
            return True
        self._scan()
        return name in self._items

    def get(self, name: str, default: Any = None) -> Any:  # type: ignore[override]
        """``self[name]``, or ``default``: a built-in without the Mapping's try/except (a
        flow of 100,000 nodes looks its types up several times each)."""
        found = self._items.get(name)
        if found is not None:
            return found
        try:
            return self[name]
        except KeyError:
            return default

    def __iter__(self) -> Iterator[str]:
        self._scan()
        return iter(self._items)

    def __len__(self) -> int:
        self._scan()
        return len(self._items)

    def why_missing(self, name: str) -> str | None:
        """Why a plugin of this name failed to load, if one did."""
        self._scan()
        return self.broken.get(name)


@cache
def merge_strategies() -> PluginRegistry[MergeStrategy]:
    """Every available merge strategy by name: the built-ins and ``pflow_tui.merges`` plugins."""
    return PluginRegistry(MERGE_ENTRY_POINT_GROUP, MergeStrategy, BUILTIN_STRATEGIES)


class PluginNames(Collection[str]):
    """The names in a registry, looked up when used: a lazy ``Param.choices``.

    Checking a built-in name does not scan for plugins; listing the names does.
    """

    def __init__(self, source: Callable[[], PluginRegistry]) -> None:  # type: ignore[type-arg]
        self._source = source

    def __contains__(self, name: object) -> bool:
        return name in self._source()

    def __iter__(self) -> Iterator[str]:
        return iter(self._source())

    def __len__(self) -> int:
        return len(self._source())

    def __bool__(self) -> bool:  # truthy without scanning
        return True

    def why_missing(self, name: str) -> str | None:
        return self._source().why_missing(name)
