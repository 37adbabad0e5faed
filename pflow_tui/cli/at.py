"""``--at PATH``: the place the debugger opens on, checked before it opens (a place of the
flow; for a saved run, a place the run reached), with a did-you-mean."""

from __future__ import annotations

from typing import Any

from ..app.address import check_address, check_in_trace
from ..app.graph import Graph
from ..engine.ir.spec import FlowSpec, children_ir
from ..engine.problems import FlowError, Problem
from ..engine.python.pyprogram import Program
from ..engine.trace.reader import TraceIndex


def graph_of(spec: FlowSpec | Program) -> Graph:
    """The graph of a flow (or a Python program) about to run."""
    children = spec.children_ir if isinstance(spec, Program) else children_ir(spec)
    return Graph.from_ir(spec.ir, spec.name, children)


def replay_graph(header: dict[str, Any]) -> Graph:
    """The graph of a saved run, as its trace's header holds it."""
    return Graph.from_ir(header.get("flow") or {}, str(header.get("flow_name") or "flow"),
                         header.get("children"))


def check_at(address: str, graph: Graph, index: TraceIndex | None = None) -> None:
    """FlowError when ``--at`` names no place of the flow, or (``index``: a saved run) no
    place the run reached, with a did-you-mean."""
    wrong = check_address(address, graph)
    if wrong is None and index is not None:
        wrong = check_in_trace(address, index)
    if wrong is not None:
        what, fix = wrong
        raise FlowError("command line", [Problem(f"--at {address}", what, fix)])
