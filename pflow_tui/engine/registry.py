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
    from .nodes.shell import SHELL

    return [SHELL, READ_FILE, WRITE_FILE, HTTP, LLM, ECHO]


@cache
def registry() -> dict[str, NodeType]:
    """Every available node type by name; plugins cannot shadow built-ins."""
    types = {t.name: t for t in builtin_types()}
    for ep in entry_points(group=ENTRY_POINT_GROUP):
        if ep.name in types:
            continue
        loaded = ep.load()
        node_type = loaded() if isinstance(loaded, type) else loaded
        if isinstance(node_type, NodeType):
            types.setdefault(node_type.name, node_type)
    return types
