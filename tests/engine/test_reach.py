"""The validator's graph questions (engine/ir/reach.py) against brute force, and long chains."""

from __future__ import annotations

import sys

from hypothesis import given, settings
from hypothesis import strategies as st

from pflow_tui.engine.ir.load import build_flow
from pflow_tui.engine.ir.reach import components, default_loop, reachable, upstream_among
from pflow_tui.engine.problems import FlowError

NAMES = [f"n{i}" for i in range(7)]
graphs = st.lists(st.tuples(st.sampled_from(NAMES), st.sampled_from(NAMES)), max_size=14)


def brute_upstream(nodes: list[str], edges: list[tuple[str, str]], nid: str) -> set[str]:
    """The old validator's way: walk the parents from the node's parents."""
    parents: dict[str, set[str]] = {}
    for a, b in edges:
        parents.setdefault(b, set()).add(a)
    seen: set[str] = set()
    stack = list(parents.get(nid, ()))
    while stack:
        cur = stack.pop()
        if cur not in seen:
            seen.add(cur)
            stack.extend(parents.get(cur, ()))
    return seen


@settings(max_examples=300, deadline=None)
@given(graphs, st.lists(st.sampled_from(NAMES), max_size=4))
def test_upstream_among_matches_brute_force(edges: list[tuple[str, str]], asked: list[str]) -> None:
    wanted = {nid: set(asked) for nid in NAMES}
    got = upstream_among(NAMES, edges, wanted)
    for nid in NAMES:
        assert got.get(nid, set()) == set(asked) & brute_upstream(NAMES, edges, nid), nid


@settings(max_examples=300, deadline=None)
@given(graphs)
def test_components_are_a_topological_order_of_the_sccs(edges: list[tuple[str, str]]) -> None:
    succ: dict[str, list[str]] = {}
    for a, b in edges:
        succ.setdefault(a, []).append(b)
    comps = components(NAMES, succ)
    assert sorted(n for c in comps for n in c) == sorted(NAMES)
    where = {n: i for i, c in enumerate(comps) for n in c}
    for a, b in edges:  # every edge goes forward or stays in its component
        assert where[a] <= where[b]
    for c in comps:  # members reach each other
        for n in c:
            assert set(c) <= reachable(n, succ)


@settings(max_examples=300, deadline=None)
@given(st.dictionaries(st.sampled_from(NAMES), st.sampled_from(NAMES)))
def test_default_loop_is_the_first_node_on_a_loop(default_next: dict[str, str]) -> None:
    def on_loop(nid: str) -> bool:
        seen, cur = set(), default_next.get(nid)
        while cur is not None and cur not in seen:
            if cur == nid:
                return True
            seen.add(cur)
            cur = default_next.get(cur)
        return False

    first = next((n for n in NAMES if on_loop(n)), None)
    loop = default_loop(NAMES, default_next)
    if first is None:
        assert loop is None
    else:
        assert loop is not None and loop[0] == first
        assert [default_next[n] for n in loop] == [*loop[1:], first]


def chain(n: int, *, reads: str = "prev") -> dict:
    nodes = [{"id": "n0", "type": "echo", "params": {"message": "start"}}]
    for i in range(1, n):
        src = f"n{i - 1}" if reads == "prev" else "n0"
        nodes.append({"id": f"n{i}", "type": "echo", "params": {"message": f"${{{src}.echo}}"}})
    return {"nodes": nodes, "edges": [{"from": f"n{i}", "to": f"n{i + 1}"} for i in range(n - 1)]}


def test_a_chain_deeper_than_the_recursion_limit_validates_and_compiles() -> None:
    from pflow_tui.engine.registry import registry
    from pflow_tui.engine.run.execution import Execution
    from pflow_tui.engine.run.flow import compile_flow
    from pflow_tui.engine.trace.events import Emitter

    n = sys.getrecursionlimit() * 3
    for reads in ("prev", "first"):
        spec = build_flow(chain(n, reads=reads))
        assert len(spec.nodes) == n and len(spec.edges) == n - 1
        flow = compile_flow(spec, Execution(spec, Emitter([]), {}, {}), registry())
        assert flow.start_node is not None


def test_a_long_default_loop_is_reported_once_from_its_first_node() -> None:
    doc = chain(3000)
    doc["edges"].append({"from": "n2999", "to": "n1"})
    try:
        build_flow(doc)
    except FlowError as exc:
        problems = [p for p in exc.problems if "loop through default edges" in p.what]
    else:
        raise AssertionError("a default-edge loop must not validate")
    assert len(problems) == 1
    assert problems[0].where == "nodes[1]"
    assert problems[0].what.startswith("loop through default edges only: n1 -> n2 -> ")
    assert problems[0].what.endswith("n2999 -> n1")


def test_a_read_from_far_upstream_and_one_from_downstream() -> None:
    doc = chain(2000, reads="first")
    doc["nodes"][5]["params"]["message"] = "${n1500.echo}"
    try:
        build_flow(doc)
    except FlowError as exc:
        assert [(p.where, p.what) for p in exc.problems if p.severity == "error"] == [
            ("nodes[5].params.message", "${n1500.echo}: node 'n1500' does not run before this one")]
    else:
        raise AssertionError("reading a downstream node must not validate")


@settings(max_examples=500, deadline=None)
@given(st.lists(st.sampled_from(["${", "}", ".", "a", "b_1", "x-y", "aggregate", "#2", "[0]", "$",
                                 "é", " ", "[*]"]), max_size=8).map("".join))
def test_the_validators_plain_reference_path_parses_as_the_parser(text: str) -> None:
    from pflow_tui.engine.ir.templates import Ref, TemplateSyntaxError, parse_text
    from pflow_tui.engine.ir.validate import Validator

    try:
        slow: object = tuple(r for p in parse_text(text) if isinstance(p, Ref) for r in p.refs())
    except TemplateSyntaxError as exc:
        slow = str(exc)
    got = Validator({}, {}).refs_of(text)
    assert (str(got) if isinstance(got, Exception) else got) == slow
