"""The node-type registry: built-ins plus plugins from the ``pflow_tui.nodes`` entry points.

A flow file only ever names a registered type; it never names a Python import path.
A plugin package declares, in its pyproject.toml::

    [project.entry-points."pflow_tui.nodes"]
    my-type = "my_package.nodes:MY_TYPE"   # a NodeType instance
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from functools import cache
from importlib.metadata import entry_points

from .nodes.base import NodeType

ENTRY_POINT_GROUP = "pflow_tui.nodes"


def builtin_types() -> list[NodeType]:
    """The node types that ship with pflow-tui."""
    from .nodes.code import CODE
    from .nodes.echo import ECHO
    from .nodes.files import READ_FILE, WRITE_FILE
    from .nodes.http import HTTP
    from .nodes.llm import LLM
    from .nodes.merge import MERGE
    from .nodes.route import ROUTE
    from .nodes.shell import SHELL
    from .nodes.workflow import WORKFLOW

    return [SHELL, READ_FILE, WRITE_FILE, HTTP, LLM, CODE, ECHO, MERGE, ROUTE, WORKFLOW]


_broken: dict[str, str] = {}


class Registry(Mapping[str, NodeType]):
    """Node types by name: the built-ins at once, plugins when first needed.

    Scanning installed packages for entry points takes tens of milliseconds, so it waits
    until a name is not a built-in, or until every type is listed.
    """

    def __init__(self) -> None:
        self._types = {t.name: t for t in builtin_types()}
        self._scanned = False

    def _scan(self) -> None:
        if self._scanned:
            return
        self._scanned = True
        for ep in entry_points(group=ENTRY_POINT_GROUP):
            if ep.name in self._types:
                continue  # plugins cannot shadow built-ins
            try:
                loaded = ep.load()
                node_type = loaded() if isinstance(loaded, type) else loaded
            except Exception as exc:
                _broken[ep.name] = f"{ep.value}: {type(exc).__name__}: {exc}"
                continue
            if not isinstance(node_type, NodeType):
                _broken[ep.name] = f"{ep.value} is a {type(node_type).__name__}, not a NodeType"
                continue
            self._types.setdefault(ep.name, node_type)

    def __getitem__(self, name: str) -> NodeType:
        found = self._types.get(name)
        if found is None:
            self._scan()
            return self._types[name]
        return found

    def __contains__(self, name: object) -> bool:
        if name in self._types:
            return True
        self._scan()
        return name in self._types

    def __iter__(self) -> Iterator[str]:
        self._scan()
        return iter(self._types)

    def __len__(self) -> int:
        self._scan()
        return len(self._types)


@cache
def registry() -> Registry:
    """Every available node type by name; a plugin that fails to load is left out and
    remembered in :func:`plugin_errors`."""
    return Registry()


def plugin_errors() -> dict[str, str]:
    """Node-type plugins that failed to load: entry-point name -> why."""
    registry()._scan()
    return dict(_broken)
