"""Compile a validated flow onto PocketFlow objects, instrumented.

Each IR node becomes a :class:`~.node.PflowNode` (a ``pocketflow.AsyncNode``) or, with a
``batch`` config, a :class:`~.batch.PflowBatchNode` (a ``pocketflow.AsyncParallelBatchNode``);
a parallel group a :class:`~.group.PflowGroup`; the flow becomes a :class:`PflowFlow` (a
``pocketflow.AsyncFlow``). PocketFlow keeps doing what it does: prep/exec/post, the retry
loop (``max_retries``, ``wait``), action routing and a copy of the node per step. How a
step ends (its store writes, its end event, the gate) is :mod:`.land`'s alone.

The "parameter passing" problem: ``Flow._orch`` calls ``node.set_params(flow_params)``
on every step, replacing whatever the node had. Our nodes keep their configuration in
``self.spec`` and their compiled templates, never in ``self.params``, so the flow may
set ``params`` freely (as BatchFlow does for its iterations) and nothing is lost. No
patch to pocketflow is needed.

What a node is running on is a :class:`~.execution.Frame`, passed through PocketFlow as
its ``shared`` argument: the store the node writes into, the scope templates read from,
and the event path prefix.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import pocketflow

from ..ir.spec import FlowSpec
from ..nodes.base import NodeType
from ..trace import events as ev
from .batch import PflowBatchNode
from .execution import Execution
from .group import PflowGroup
from .limits import Limit
from .nested import child_node_spec, workflow_type
from .node import PflowNode


class PflowFlow(pocketflow.AsyncFlow):
    """A flow (or a branch of one): PocketFlow's orchestration, with edges reported as events."""

    def __init__(self, start: pocketflow.BaseNode, ex: Execution) -> None:
        super().__init__(start)
        self.ex = ex

    def get_next_node(self, curr: pocketflow.BaseNode, action: str | None) -> Any:
        nxt = curr.successors.get(action or "default")
        src = getattr(curr, "path", "")
        if isinstance(curr, PflowGroup) or isinstance(nxt, PflowGroup):
            return nxt  # the group reports its own edges
        if nxt is not None:
            self.ex.emit(ev.EDGE, src, {"from": curr.spec.id, "to": nxt.spec.id,
                                        "action": action or "default"})
        elif curr.successors and not (action or "").startswith("error"):
            self.ex.emit(ev.WARNING, src, {
                "message": f"Flow ends: '{action}' not found in {list(curr.successors)}"})
        return nxt


def compile_flow(spec: FlowSpec, ex: Execution, registry: Mapping[str, NodeType], *,
                 start: str | None = None, only: frozenset[str] | None = None,
                 limits: Mapping[str, Limit] | None = None,
                 _out: dict[str, list[Any]] | None = None) -> PflowFlow:
    """Build the PocketFlow object graph for ``spec`` (or for one branch of it: the nodes in
    ``only``, starting at ``start``).

    ``limits``: the rate limits of the flows around this one (a nested flow's); the flow's
    own ``rate_limits`` add the keys they do not have (the outer flow's limit wins).
    """
    if _out is None:  # edges by source node, so each branch looks only at its own
        _out = {}
        for e in spec.edges:
            _out.setdefault(e.src, []).append(e)
        own = {k: Limit.from_spec(k, v) for k, v in spec.rate_limits.items() if k not in (limits or {})}
        limits = {**own, **(limits or {})}
    assert limits is not None
    members = set(spec.nodes) if only is None else set(only)
    candidates = [g for g in spec.groups if g.fanout in members and g.join in members]
    # the outermost groups here; a group inside a branch is compiled with that branch
    groups = [g for g in candidates if not any(g.fanout in o.members for o in candidates)]
    inner = set().union(*(g.members for g in groups))
    nodes: dict[str, pocketflow.BaseNode] = {}
    for nid in members - inner:
        node = spec.nodes[nid]
        node_type = registry[node.type]
        if node.type == "workflow":
            child = spec.children[node.id]
            node_type = workflow_type(child, compile_flow(child, ex, registry, limits=limits), ex,
                                      registry)
            node = child_node_spec(node)
        cls = PflowBatchNode if node.batch else PflowNode
        nodes[nid] = cls(node, node_type, ex, spec, limits)
    group_edges = set()
    for g in groups:
        flows = [compile_flow(spec, ex, registry, start=b.start, only=frozenset(b.nodes),
                              limits=limits, _out=_out)
                 for b in g.branches]
        group_node = PflowGroup(g, flows, ex)
        nodes[g.fanout].next(group_node, g.action)
        if g.join in nodes:
            group_node.next(nodes[g.join], "default")
        group_edges.update((g.fanout, b.start) for b in g.branches)
    for src in nodes:
        for e in _out.get(src, ()):
            if e.dst in nodes and (e.src, e.dst) not in group_edges:
                nodes[e.src].next(nodes[e.dst], e.action)
    return PflowFlow(nodes[start or spec.start], ex)
