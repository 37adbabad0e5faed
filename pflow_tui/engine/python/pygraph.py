"""The shape of a Python PocketFlow program, read from its objects, as pflow-style IR.

A flow's nodes are found by walking ``successors`` from its ``start_node``; each node
gets an id made from its class name (``SummarizeChunk`` -> ``summarize_chunk``,
``summarize_chunk_2`` for a second instance), each ``successors`` entry becomes an
edge with its action. A Flow used as a node is a nested flow: its graph goes in
``children`` (as a trace header keeps nested flows), so every pane shows it as it
shows a pflow ``workflow`` node. Batch nodes and batch flows get a ``batch`` marker.

Nothing here runs the program: it only reads attributes.

At run time PocketFlow runs *copies* of the nodes (``copy.copy`` per visit). A copy
shares its original's ``successors`` dict, so :attr:`PyGraph.ids` maps
``id(node.successors)`` (and ``id(node)``) to the node id.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from pocketflow import (
    AsyncNode,
    AsyncParallelBatchFlow,
    AsyncParallelBatchNode,
    BaseNode,
    BatchFlow,
    BatchNode,
    Flow,
)

from ..trace.writer import json_safe

_CAMEL = re.compile(r"(?<=[a-z0-9])(?=[A-Z])|(?<=[A-Z])(?=[A-Z][a-z])")
_NOT_ID = re.compile(r"[^a-z0-9_]+")
MAX_DEPTH = 32  # nested flows deeper than this are not described (a flow inside itself)


def snake(name: str) -> str:
    """``SummarizeChunk`` -> ``summarize_chunk``: a node id from a class name."""
    text = _NOT_ID.sub("_", _CAMEL.sub("_", name).lower()).strip("_")
    return text or "node"


def is_batch(obj: Any) -> bool:
    """Does this node or flow run items (BatchNode, BatchFlow and their async kinds)?"""
    return isinstance(obj, (BatchNode, BatchFlow))


def is_parallel(obj: Any) -> bool:
    return isinstance(obj, (AsyncParallelBatchNode, AsyncParallelBatchFlow))


def qualname(obj: Any) -> str:
    cls = type(obj)
    return f"{cls.__module__}.{cls.__qualname__}"


@dataclass
class PyGraph:
    """One flow's nodes: ids by object, the IR, and the graphs of nested flows."""

    name: str
    ids: dict[int, str] = field(default_factory=dict)  # id(successors) and id(node) -> node id
    nodes: list[dict[str, Any]] = field(default_factory=list)
    edges: list[dict[str, Any]] = field(default_factory=list)
    start: str = ""
    children: dict[str, PyGraph] = field(default_factory=dict)
    _used: set[str] = field(default_factory=set)

    def id_of(self, obj: Any) -> str | None:
        """The id of a node of this graph, or of a run-time copy of one; None if unknown."""
        return self.ids.get(id(getattr(obj, "successors", None))) or self.ids.get(id(obj))

    def add(self, obj: Any) -> str:
        """Give ``obj`` an id in this graph (also for nodes only met at run time)."""
        base = snake(type(obj).__name__)
        nid, n = base, 1
        while nid in self._used:
            n += 1
            nid = f"{base}_{n}"
        self._used.add(nid)
        self.ids[id(obj)] = nid
        successors = getattr(obj, "successors", None)
        if isinstance(successors, dict):
            self.ids[id(successors)] = nid
        return nid

    def ir(self) -> dict[str, Any]:
        """This graph as a pflow IR document (what the trace header and the panes read)."""
        return {"name": self.name, "ir_version": "0.1.0", "nodes": self.nodes,
                "edges": self.edges, "start_node": self.start}

    def children_ir(self) -> dict[str, Any]:
        """Nested flows as a trace header keeps them: {node id: {"flow", "children"}}."""
        return {nid: {"flow": g.ir(), "children": g.children_ir()} for nid, g in self.children.items()}


def describe(obj: BaseNode, name: str) -> PyGraph:
    """The graph of a program run as ``obj.run(shared)``.

    A plain Flow is its own graph; anything else (a node, a batch flow) becomes the one
    node of a graph named ``name``, so that its items and nested nodes have a place.
    """
    if isinstance(obj, Flow) and not isinstance(obj, BatchFlow):
        return _flow_graph(obj, name, 0)
    graph = PyGraph(name)
    nid = graph.add(obj)
    graph.nodes.append(_node_ir(obj, nid, graph, 0))
    graph.start = nid
    return graph


def _flow_graph(flow: Flow, name: str, depth: int) -> PyGraph:
    graph = PyGraph(name)
    start = getattr(flow, "start_node", None)
    if not isinstance(start, BaseNode):
        return graph
    order: list[BaseNode] = []
    seen: dict[int, str] = {}
    todo = [start]
    while todo:  # breadth-first, in successor order: ids follow the flow's reading order
        node = todo.pop(0)
        if id(node) in seen:
            continue
        seen[id(node)] = graph.add(node)
        order.append(node)
        todo.extend(n for n in (getattr(node, "successors", None) or {}).values()
                    if isinstance(n, BaseNode) and id(n) not in seen)
    graph.start = seen[id(start)]
    for node in order:
        nid = seen[id(node)]
        graph.nodes.append(_node_ir(node, nid, graph, depth))
        for action, nxt in (getattr(node, "successors", None) or {}).items():
            if isinstance(nxt, BaseNode):
                edge = {"from": nid, "to": seen[id(nxt)]}
                if action != "default":
                    edge["action"] = str(action)
                graph.edges.append(edge)
    return graph


def _node_ir(node: BaseNode, nid: str, graph: PyGraph, depth: int) -> dict[str, Any]:
    ir: dict[str, Any] = {"id": nid, "type": type(node).__name__, "python": qualname(node)}
    doc = (type(node).__doc__ or "").strip()
    if doc and type(node).__module__ != "pocketflow":
        ir["purpose"] = doc.splitlines()[0]
    if node.params:
        ir["params"] = json_safe(node.params)
    if is_batch(node):
        ir["batch"] = {"parallel": is_parallel(node)}
    if isinstance(node, AsyncNode):
        ir["async"] = True
    retries = getattr(node, "max_retries", 1)
    if isinstance(retries, int) and retries > 1:
        ir["max_retries"] = retries
    if isinstance(node, Flow) and depth < MAX_DEPTH:
        graph.children[nid] = _flow_graph(node, nid, depth + 1)
    return ir


__all__ = ["PyGraph", "describe", "is_batch", "is_parallel", "snake"]
