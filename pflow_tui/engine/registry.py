"""The node-type registry: built-ins plus plugins from the ``pflow_tui.nodes`` entry points.

A flow file only ever names a registered type; it never names a Python import path.
A plugin package declares, in its pyproject.toml::

    [project.entry-points."pflow_tui.nodes"]
    my-type = "my_package.nodes:MY_TYPE"   # a NodeType instance
"""

from __future__ import annotations

from functools import cache
from importlib.metadata import entry_points

from .nodes.base import NodeType

ENTRY_POINT_GROUP = "pflow_tui.nodes"


def builtin_types() -> list[NodeType]:
    """The node types that ship with pflow-tui."""
    from .nodes.echo import ECHO
    from .nodes.files import READ_FILE, WRITE_FILE
    from .nodes.http import HTTP
    from .nodes.llm import LLM
    from .nodes.merge import MERGE
    from .nodes.route import ROUTE
    from .nodes.shell import SHELL
    from .nodes.workflow import WORKFLOW

    return [SHELL, READ_FILE, WRITE_FILE, HTTP, LLM, ECHO, MERGE, ROUTE, WORKFLOW]


_broken: dict[str, str] = {}


@cache
def registry() -> dict[str, NodeType]:
    """Every available node type by name; plugins cannot shadow built-ins.

    A plugin that fails to load is left out and remembered in :func:`plugin_errors`.
    """
    types = {t.name: t for t in builtin_types()}
    for ep in entry_points(group=ENTRY_POINT_GROUP):
        if ep.name in types:
            continue
        try:
            loaded = ep.load()
            node_type = loaded() if isinstance(loaded, type) else loaded
        except Exception as exc:
            _broken[ep.name] = f"{ep.value}: {type(exc).__name__}: {exc}"
            continue
        if not isinstance(node_type, NodeType):
            _broken[ep.name] = f"{ep.value} is a {type(node_type).__name__}, not a NodeType"
            continue
        types.setdefault(ep.name, node_type)
    return types


def plugin_errors() -> dict[str, str]:
    """Node-type plugins that failed to load: entry-point name -> why."""
    registry()
    return dict(_broken)
