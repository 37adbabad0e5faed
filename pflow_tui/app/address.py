"""Checking an ``--at`` path before the app opens: does it name a place of the flow?

``flow.square``, ``flow.square.iteration_6``, ``flow.review#2``, ``flow.fan.branch_1.analyze``,
``flow.per_file.iteration_3.read`` (see docs/trace-format.md, *Paths*). Against the flow's
graph: the first segment is the flow's name, node ids exist at their level, ``iteration_N``
follows a batch node, ``branch_N`` a fan-out, a node follows a nested flow's node. Against a
trace: the path is one of its event paths. Each failed check gives (what, fix) with a
did-you-mean. No textual here: the command line uses it before anything opens.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

from ..engine.problems import did_you_mean

if TYPE_CHECKING:
    from ..engine.trace.reader import TraceIndex
    from .graph import Graph

_INDEXED = re.compile(r"(iteration|branch)_(\d+)")
_NODE = re.compile(r"([^#]+)(?:#(\d+))?")


def check_address(address: str, graph: Graph) -> tuple[str, str] | None:
    """None when ``address`` names a place of ``graph``'s flow, else (what is wrong, the fix)."""
    segs = address.split(".")
    if segs[0] != graph.name:
        if segs[0] in graph.nodes or _INDEXED.fullmatch(segs[0]):
            return ("a path starts with the flow's name", f"did you mean '{graph.name}.{address}'?")
        return (f"the flow is '{graph.name}', not '{segs[0]}'",
                f"paths start with the flow's name, e.g. {graph.name}.{graph.start or 'NODE'}")
    level: Graph | None = graph  # the graph whose nodes the next node segment names
    node: str | None = None  # the last node segment, in ``owner``
    owner = graph
    done = graph.name
    for seg in segs[1:]:
        indexed = _INDEXED.fullmatch(seg)
        if indexed is not None:
            kind, n = indexed.group(1), int(indexed.group(2))
            if node is None:
                return (f"'{seg}' follows no node", f"put a node before it, e.g. {done}.NODE.{seg}")
            if kind == "iteration" and not owner.is_batch(node):
                batches = [nid for nid in owner.nodes if owner.is_batch(nid)]
                fix = (f"'{node}' has no iterations: use {done}"
                       + (f", or a batch node: {', '.join(batches[:6])}" if batches else ""))
                return (f"'{node}' is not a batch node", fix)
            if kind == "branch":
                starts = owner.fanouts.get(node)
                if not starts:
                    fans = list(owner.fanouts)
                    return (f"'{node}' starts no parallel branches",
                            f"fan-out nodes: {', '.join(fans[:6])}" if fans else
                            f"this flow has no parallel branches: use {done}")
                if n >= len(starts):
                    return (f"'{node}' starts {len(starts)} branch{'es' if len(starts) != 1 else ''}",
                            f"use branch_0 … branch_{len(starts) - 1}")
                level = owner  # a branch's nodes are nodes of the same flow
            else:
                level = owner.children.get(node)  # a nested flow per item (or None)
            done += "." + seg
            continue
        m = _NODE.fullmatch(seg)
        if m is None:
            return (f"'{seg}' is not a node, iteration_N or branch_N", "see `pflow-tui validate`")
        nid, visit = m.groups()
        if level is None:
            return (f"'{node}' runs no nested flow: '{seg}' cannot follow it",
                    f"did you mean '{done}'?")
        if nid not in level.nodes:
            where = "the flow" if level is graph else f"the flow nested in '{level.name}'"
            return (f"no node '{nid}' in {where}", did_you_mean(nid, level.nodes, "its nodes"))
        if visit is not None and int(visit) < 2:
            return (f"'#{visit}' is no visit: the first visit has no #", f"use {done}.{nid}")
        owner, node = level, nid
        level = level.children.get(nid)  # what may follow: a node of its nested flow
        done += "." + seg
    return None


def check_in_trace(address: str, index: TraceIndex) -> tuple[str, str] | None:
    """None when a recorded run has events at ``address`` (or it is the run itself), else
    (what is wrong, the fix). Searches the mapped file's bytes; parses at most one event."""
    flow = str(index.header.get("flow_name") or "")
    if address == flow or index.mentions(address):
        return None
    head, _, last = address.rpartition(".")
    indexed = _INDEXED.fullmatch(last)
    if indexed is not None and indexed.group(1) == "iteration":
        event = index.first_at("node.start", head)  # (a sound event, or None)
        if event is not None:
            count = (event.get("batch") or {}).get("count")
            if isinstance(count, int):
                node = head.rpartition(".")[2]
                return (f"'{node}' ran {count} item{'s' if count != 1 else ''} in this run: "
                        f"there is no {last}",
                        f"use {head}.iteration_0 … {head}.iteration_{count - 1}" if count else
                        f"use {head}")
    return (f"the run never reached {address}", "open the run without --at, or at a place it ran "
            f"(`pflow-tui replay TRACE --at {flow}.NODE`)")
