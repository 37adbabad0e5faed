"""A flow's graph as text for docs and pull requests: Mermaid (``flowchart TD``) or Graphviz
DOT. Nested flows are subgraphs (DOT: clusters) beside the workflow node that runs them,
joined to it by a dotted edge; each parallel group is a cluster around its branches; batch
nodes are marked (``batch`` in the label, and their own shape).

Every text from the flow (ids, types, actions, names) is quoted and escaped for its format.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from .groups import find_groups, flow_edges, has_groups
from .load import normalize

FORMATS = ("mermaid", "dot")


@dataclass
class _Flow:
    name: str
    prefix: str  # the ids of the workflow nodes above it, for unique ids
    nodes: list[dict[str, Any]]
    edges: list[tuple[str, str, str]]  # from, to, action
    groups: list[tuple[str, str, set[str]]]  # name, fan-out node, member nodes
    children: dict[str, _Flow] = field(default_factory=dict)
    start: str = ""


def _read(ir: Any, name: str, children: dict[str, Any] | None, prefix: str) -> _Flow:
    doc = normalize(ir) if isinstance(ir, dict) else {}
    nodes = [n for n in doc.get("nodes", []) if isinstance(n, dict) and isinstance(n.get("id"), str)]
    raw_edges = doc.get("edges") if isinstance(doc.get("edges"), list) else []
    edges = [(e.src, e.dst, e.action) for e in flow_edges(raw_edges)]
    groups = []
    if has_groups(raw_edges):
        found, _problems = find_groups(flow_edges(raw_edges), doc.get("parallel_groups")
                                       if isinstance(doc.get("parallel_groups"), dict) else None)
        groups = [(g.name, g.fanout, set(g.members)) for g in found]
    flow = _Flow(name, prefix, nodes, edges, groups,
                 start=str(doc.get("start_node") or (nodes[0]["id"] if nodes else "")))
    children = children or {}
    for node in nodes:
        nid = node["id"]
        known = children.get(nid) or {}
        child_ir = known.get("flow") or (node.get("params") or {}).get("workflow_ir")
        if isinstance(child_ir, dict) and (node.get("type") == "workflow" or nid in children):
            flow.children[nid] = _read(child_ir, nid, known.get("children"), f"{prefix}{nid}/")
    return flow


class _Ids:
    """Safe, unique ids for the diagram (a flow's ids may hold any character, or be ``end``)."""

    def __init__(self) -> None:
        self.ids: dict[tuple[str, str], str] = {}
        self.used: set[str] = set()

    def __call__(self, key: str, kind: str = "n") -> str:
        """The id of node (``kind`` n), group (g) or nested flow (f) ``key``."""
        if (kind, key) not in self.ids:
            base = f"{kind}_" + (re.sub(r"\W", "_", key.replace("/", "__"), flags=re.ASCII) or "_")
            ident, i = base, 1
            while ident in self.used:
                i += 1
                ident = f"{base}_{i}"
            self.ids[kind, key] = ident
            self.used.add(ident)
        return self.ids[kind, key]


def _label(node: dict[str, Any]) -> tuple[str, str, bool]:
    """(id, what it is, whether it is a batch node)."""
    batch = isinstance(node.get("batch"), dict)
    kind = str(node.get("type", "?")) + (" · batch" if batch else "")
    return str(node["id"]), kind, batch


def _group_tree(flow: _Flow) -> list[tuple[int, str, str, set[str], int | None]]:
    """The groups with the group each one sits in (a group inside another's branch)."""
    out = []
    for i, (name, fanout, members) in enumerate(flow.groups):
        parents = [j for j, (_, other_fanout, other) in enumerate(flow.groups)
                   if j != i and {fanout} | members <= other]
        parent = min(parents, key=lambda j: len(flow.groups[j][2])) if parents else None
        out.append((i, name, fanout, members, parent))
    return out


def _home(flow: _Flow) -> dict[str, int | None]:
    """The innermost group each node is drawn in (None: the flow itself)."""
    home: dict[str, int | None] = {}
    for node in flow.nodes:
        inside = [i for i, (_, _, members) in enumerate(flow.groups) if node["id"] in members]
        home[node["id"]] = min(inside, key=lambda i: len(flow.groups[i][2])) if inside else None
    return home


# --- Mermaid -----------------------------------------------------------------------------------------


def _mq(text: str) -> str:
    """Text for a Mermaid quoted label."""
    return (text.replace("&", "#amp;").replace('"', "#quot;").replace("<", "#lt;")
            .replace(">", "#gt;"))


def to_mermaid(ir: dict[str, Any], name: str, children: dict[str, Any] | None = None) -> str:
    flow = _read(ir, name, children, "")
    ids = _Ids()
    lines = [f"%% {_mq(name)}", "flowchart TD"]
    _mermaid_flow(flow, ids, lines, "  ")
    return "\n".join(lines) + "\n"


def _mermaid_flow(flow: _Flow, ids: _Ids, lines: list[str], pad: str) -> None:
    home = _home(flow)
    tree = _group_tree(flow)

    def nodes_in(group: int | None, pad: str) -> None:
        for i, gname, fanout, _members, parent in tree:
            if parent == group:
                lines.append(f'{pad}subgraph {ids(flow.prefix + fanout + "#" + gname, "g")}'
                             f'["parallel group {_mq(gname)}"]')
                nodes_in(i, pad + "  ")
                lines.append(f"{pad}end")
        for node in flow.nodes:
            if home[node["id"]] != group:
                continue
            nid, kind, batch = _label(node)
            text = f'"{_mq(nid)}<br/>{_mq(kind)}"'
            lines.append(f"{pad}{ids(flow.prefix + nid)}{f'[[{text}]]' if batch else f'[{text}]'}")

    nodes_in(None, pad)
    for src, dst, action in flow.edges:
        arrow = "-->" if action == "default" else f'-->|"{_mq(action)}"|'
        lines.append(f"{pad}{ids(flow.prefix + src)} {arrow} {ids(flow.prefix + dst)}")
    for nid, child in flow.children.items():
        lines.append(f'{pad}subgraph {ids(child.prefix.rstrip("/"), "f")}["nested flow {_mq(nid)}"]')
        _mermaid_flow(child, ids, lines, pad + "  ")
        lines.append(f"{pad}end")
        if child.start:
            lines.append(f"{pad}{ids(flow.prefix + nid)} -.-> {ids(child.prefix + child.start)}")


# --- DOT -----------------------------------------------------------------------------------------------


def _dq(text: str) -> str:
    """A DOT quoted string."""
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n") + '"'


def to_dot(ir: dict[str, Any], name: str, children: dict[str, Any] | None = None) -> str:
    flow = _read(ir, name, children, "")
    ids = _Ids()
    lines = [f"digraph {_dq(name)} {{", "  rankdir=TB;",
             '  node [shape=box, style=rounded, fontname="Helvetica"];',
             '  edge [fontname="Helvetica"];']
    _dot_flow(flow, ids, lines, "  ")
    lines.append("}")
    return "\n".join(lines) + "\n"


def _dot_flow(flow: _Flow, ids: _Ids, lines: list[str], pad: str) -> None:
    home = _home(flow)
    tree = _group_tree(flow)

    def nodes_in(group: int | None, pad: str) -> None:
        for i, gname, fanout, _members, parent in tree:
            if parent == group:
                lines.append(f"{pad}subgraph cluster_{ids(flow.prefix + fanout + '#' + gname, 'g')} {{")
                lines.append(f"{pad}  label={_dq('parallel group ' + gname)}; style=dashed;")
                nodes_in(i, pad + "  ")
                lines.append(f"{pad}}}")
        for node in flow.nodes:
            if home[node["id"]] != group:
                continue
            nid, kind, batch = _label(node)
            shape = (", shape=box3d" if batch else "") + (
                ", shape=component" if node.get("type") == "workflow" and not batch else "")
            lines.append(f"{pad}{ids(flow.prefix + nid)} [label={_dq(nid + chr(10) + kind)}{shape}];")

    nodes_in(None, pad)
    for src, dst, action in flow.edges:
        label = "" if action == "default" else f" [label={_dq(action)}]"
        lines.append(f"{pad}{ids(flow.prefix + src)} -> {ids(flow.prefix + dst)}{label};")
    for nid, child in flow.children.items():
        lines.append(f"{pad}subgraph cluster_{ids(child.prefix.rstrip('/'), 'f')} {{")
        lines.append(f"{pad}  label={_dq('nested flow ' + nid)};")
        _dot_flow(child, ids, lines, pad + "  ")
        lines.append(f"{pad}}}")
        if child.start:
            lines.append(f"{pad}{ids(flow.prefix + nid)} -> {ids(child.prefix + child.start)} "
                         "[style=dotted];")


def render(fmt: str, ir: dict[str, Any], name: str, children: dict[str, Any] | None = None) -> str:
    """The graph in ``fmt`` (one of :data:`FORMATS`)."""
    return (to_dot if fmt == "dot" else to_mermaid)(ir, name, children)
