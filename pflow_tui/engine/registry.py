"""The registry of node types: what a flow's ``"type"`` may name.

It holds the built-ins plus plugins from an entry-point group, as the registry of merge
strategies does (:mod:`.plugins`). A flow file only ever
names a registered type or strategy; it never names a Python import path. A plugin
package declares, in its pyproject.toml::

    [project.entry-points."pflow_tui.nodes"]
    my-type = "my_package.nodes:MY_TYPE"        # a NodeType instance (or a class making one)

    [project.entry-points."pflow_tui.merges"]
    my-merge = "my_package.merges:MY_MERGE"     # a MergeStrategy instance (or a class)

pflow-tui's own ``vote`` strategy comes in this way (see pyproject.toml).
"""

from __future__ import annotations

from functools import cache

from .nodes.base import NodeType
from .plugins import PluginRegistry

ENTRY_POINT_GROUP = "pflow_tui.nodes"


def builtin_types() -> list[NodeType]:
    """The node types that ship with pflow-tui."""
    # imported here for start-up time: the node modules load when the registry is first built
    from .nodes.code import CODE
    from .nodes.echo import ECHO
    from .nodes.fileops import COPY_FILE, DELETE_FILE, MOVE_FILE
    from .nodes.files import READ_FILE, WRITE_FILE
    from .nodes.git import GIT_TYPES
    from .nodes.http import HTTP
    from .nodes.llm import LLM
    from .nodes.merge import MERGE
    from .nodes.route import ROUTE
    from .nodes.shell import SHELL
    from .nodes.workflow import WORKFLOW

    return [SHELL, READ_FILE, WRITE_FILE, COPY_FILE, MOVE_FILE, DELETE_FILE, HTTP, LLM, CODE, ECHO, MERGE,
            ROUTE, WORKFLOW, *GIT_TYPES]


Registry = PluginRegistry[NodeType]


class NodeRegistry(PluginRegistry[NodeType]):
    """Node types: the built-ins, plugins, and pflow's MCP tool nodes ``mcp-<server>-<tool>``
    for the servers of ``~/.pflow/mcp-servers.json`` (looked up by name, never listed)."""

    def __getitem__(self, name: str) -> NodeType:
        try:
            return super().__getitem__(name)
        except KeyError:
            found = self._mcp(name)
            if found is None:
                raise
            return found

    def __contains__(self, name: object) -> bool:
        return super().__contains__(name) or self._mcp(name) is not None

    def _mcp(self, name: object) -> NodeType | None:
        if not isinstance(name, str) or not name.startswith("mcp-"):
            return None
        # imported here for start-up time: the MCP module loads for mcp- names only
        from .nodes.mcp import mcp_type

        return mcp_type(name)


@cache
def registry() -> PluginRegistry[NodeType]:
    """Every available node type by name (see :func:`plugin_errors` for broken plugins)."""
    return NodeRegistry(ENTRY_POINT_GROUP, NodeType, builtin_types())


def plugin_errors() -> dict[str, str]:
    """Node-type plugins that failed to load: entry-point name -> why."""
    types = registry()
    types._scan()
    return dict(types.broken)
