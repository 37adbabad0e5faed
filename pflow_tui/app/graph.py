"""The flow's shape as the panes draw it: nodes, edges, nested flows, fan-outs (no Textual
here), and :func:`graph_key`, which graph an event path belongs to."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from ..engine.ir.load import normalize


@dataclass(frozen=True, slots=True)
class GraphEdge:
    src: str
    dst: str
    action: str = "default"


@dataclass
class Graph:
    """The flow's shape, read from its IR (a trace header holds the same IR).

    ``children`` are the graphs of its nested flows (workflow nodes), ``fanouts`` the
    branch start nodes of each fan-out node, in edge order, ``groups`` the name of each
    fan-out node's parallel group.
    """

    name: str
    nodes: dict[str, dict[str, Any]]  # id -> the IR node
    edges: list[GraphEdge]
    start: str
    children: dict[str, Graph] = field(default_factory=dict)
    fanouts: dict[str, list[str]] = field(default_factory=dict)
    inputs: dict[str, Any] = field(default_factory=dict)  # the declared inputs (IR)
    outputs: dict[str, Any] = field(default_factory=dict)  # the declared outputs (IR)
    groups: dict[str, str] = field(default_factory=dict)

    @classmethod
    def from_ir(cls, ir: dict[str, Any], name: str,
                children: dict[str, Any] | None = None) -> Graph:
        """``children``: {workflow node id: {"flow": child IR, "children": {...}}} (as in a
        trace header); inline child flows are read from the node's ``workflow_ir``."""
        ir = normalize(ir) if isinstance(ir, dict) else {}
        nodes = {n["id"]: n for n in ir.get("nodes", []) if isinstance(n, dict) and "id" in n}
        edges = [GraphEdge(e.get("from", e.get("source")), e.get("to", e.get("target")),
                           e.get("action", "default"))
                 for e in ir.get("edges", []) if isinstance(e, dict)]
        start = ir.get("start_node") or next(iter(nodes), "")
        fanouts: dict[str, list[str]] = {}
        groups: dict[str, str] = {}
        for e in ir.get("edges", []):
            if isinstance(e, dict) and isinstance(e.get("parallel_group"), str):
                fanouts.setdefault(e.get("from", ""), []).append(e.get("to", ""))
                groups.setdefault(e.get("from", ""), e["parallel_group"])
        declared = {key: value if isinstance(value := ir.get(key), dict) else {}
                    for key in ("inputs", "outputs")}
        graph = cls(name, nodes, edges, start, fanouts=fanouts, groups=groups, **declared)
        children = children or {}
        for nid, node in nodes.items():
            if node.get("type") != "workflow" and nid not in children:
                continue
            known = children.get(nid) or {}
            child_ir = known.get("flow") or (node.get("params") or {}).get("workflow_ir")
            if isinstance(child_ir, dict):
                graph.children[nid] = cls.from_ir(child_ir, nid, known.get("children"))
        return graph

    def node_type(self, node_id: str) -> str:
        return str(self.nodes.get(node_id, {}).get("type", "?"))

    def is_batch(self, node_id: str) -> bool:
        return isinstance(self.nodes.get(node_id, {}).get("batch"), dict)

    def at(self, key: tuple[str, ...]) -> Graph | None:
        """The graph of the nested flow at ``key`` (workflow node ids from the top)."""
        graph: Graph | None = self
        for nid in key:
            graph = graph.children.get(nid) if graph is not None else None
        return graph


_INDEXED = re.compile(r"(branch|iteration)_\d+")


def graph_key(path: str) -> tuple[tuple[str, ...], str]:
    """Which graph a node visit belongs to, and which node it is.

    ``flow.square`` and ``flow.fan.branch_1.analyze`` are nodes of the top graph (key
    ``()``); ``flow.per_file.iteration_3.read`` and ``flow.per_file.read`` are node
    ``read`` of the flow nested in ``per_file`` (key ``("per_file",)``).
    """
    segs = path.split(".")[1:]
    key: list[str] = []
    i = 0
    while i < len(segs) - 1:
        nxt = segs[i + 1]
        if nxt.startswith("branch_") and _INDEXED.fullmatch(nxt):
            i += 2
        elif nxt.startswith("iteration_") and _INDEXED.fullmatch(nxt):
            key.append(segs[i].partition("#")[0])
            i += 2
        else:
            key.append(segs[i].partition("#")[0])
            i += 1
    return tuple(key), (segs[-1].partition("#")[0] if segs else "")
