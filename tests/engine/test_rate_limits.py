"""Flow-wide rate limits: shared by every node, branch, iteration and nested flow of a run.

The limits are checked from the run's own events: a call holds its limit from the moment it
got it (its ``item.start``/``node.start``, or its ``wait.end`` when it had to wait) until it
ends; starts are those same moments.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import anyio
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pflow_tui.engine.ir.load import build_flow
from pflow_tui.engine.nodes.base import NodeType, Param, RunContext
from pflow_tui.engine.problems import FlowError
from pflow_tui.engine.registry import registry
from pflow_tui.engine.run.executor import run_flow
from pflow_tui.engine.run.limits import Limit
from pflow_tui.engine.trace import events as ev

LLM = {"model": "offline", "latency": 0.05}


def llm_batch(node_id: str, n: int, **params: Any) -> dict[str, Any]:
    return {"id": node_id, "type": "llm", "batch": {"items": list(range(n)), "parallel": True,
                                                    "max_concurrent": 10},
            "params": {**LLM, "prompt": f"{node_id} ${{item}}", **params}}


def run(doc: dict[str, Any], tmp_path: Path, reg: dict[str, NodeType] | None = None,
        **kwargs: Any) -> tuple[Any, list[dict[str, Any]]]:
    reg = reg or registry()
    spec = build_flow(doc, registry=reg, base_dir=tmp_path)
    events: list[dict[str, Any]] = []
    result = run_flow(spec, {}, trace=tmp_path / "t.json", sinks=[events.append], registry=reg, **kwargs)
    assert result.status == "ok", result.error
    return result, events


def calls(events: list[dict[str, Any]], types: set[str] | None = None) -> list[tuple[float, float]]:
    """Each call (node run or batch item) as (when it got its limit, when it ended)."""
    node_type = {e["path"]: e["type"] for e in events if e["kind"] == ev.NODE_START}
    batches = {e["path"] for e in events if e["kind"] == ev.NODE_START and e.get("batch")}
    begin: dict[str, float] = {}
    spans = []
    for e in events:
        kind, path = e["kind"], e["path"]
        owner = path.rpartition(".")[0] if path.rpartition(".")[2].startswith("iteration_") else path
        if types is not None and node_type.get(owner) not in types:
            continue
        if (kind == ev.ITEM_START or (kind == ev.NODE_START and path not in batches)
                or (kind == ev.WAIT_END and e["status"] == "ok")):
            begin[path] = e["t"]
        elif kind == ev.WAIT_START:
            begin.pop(path, None)
        elif kind in (ev.ITEM_END, ev.NODE_END) and path in begin:
            spans.append((begin.pop(path), e["t"]))
    return spans


def peak(spans: list[tuple[float, float]]) -> int:
    points = sorted([(a, 1) for a, _ in spans] + [(b, -1) for _, b in spans])  # ends first at a tie
    now = top = 0
    for _, step in points:
        now += step
        top = max(top, now)
    return top


def busiest_window(starts: list[float], seconds: float) -> int:
    """The most starts in any window [t, t + seconds) (with 5 ms for the event timestamps,
    taken a few microseconds after the limiter's clock)."""
    starts = sorted(starts)
    return max((sum(1 for u in starts[i:] if u < t + seconds - 0.005) for i, t in enumerate(starts)),
               default=0)


def fan(branches: list[dict[str, Any]], **top: Any) -> dict[str, Any]:
    """A parallel group: ``go`` fans out to the branches, ``join`` merges them."""
    nodes = [{"id": "go", "type": "echo", "params": {"message": "go"}}, *branches,
             {"id": "join", "type": "merge", "params": {}}]
    edges = [e for b in branches for e in ({"from": "go", "to": b["id"], "parallel_group": "g"},
                                           {"from": b["id"], "to": "join"})]
    return {"name": "rl", **top, "nodes": nodes, "edges": edges}


def test_a_limit_is_never_exceeded_across_three_parallel_nodes_and_a_nested_flow(tmp_path):
    child = {"nodes": [{"id": "deep", "type": "llm", "params": {**LLM, "prompt": "deep ${i}"}}],
             "inputs": {"i": {"type": "integer"}}}
    nested = {"id": "d", "type": "workflow", "batch": {"items": list(range(6)), "parallel": True},
              "params": {"workflow_ir": child, "param_mapping": {"i": "${item}"}}}
    doc = fan([llm_batch("a", 8), llm_batch("b", 8), llm_batch("c", 8), nested],
              rate_limits={"llm": {"max_concurrent": 4, "per_second": 15}})
    result, events = run(doc, tmp_path)
    spans = calls(events, {"llm"})
    assert len(spans) == 30  # 3 x 8 items + 6 nested runs
    assert peak(spans) == 4  # reached, never exceeded
    starts = [a for a, _ in spans]
    assert busiest_window(starts, 1.0) <= 15
    assert max(starts) - min(starts) >= 1.0  # 30 calls at 15 per second need two windows
    waits = [e for e in events if e["kind"] == ev.WAIT_START]
    assert waits and all(w["on"] == "rate_limit" and w["key"] == "llm" for w in waits)
    assert {w["limit"] for w in waits} <= {"max_concurrent 4", "per_second 15"}
    assert any(w["path"].startswith("rl.go.branch_3.d.iteration_") for w in waits)
    assert len(result.store["a"]["results"]) == 8 and result.store["d"]["success_count"] == 6
    # every wait ends, with its duration, before its item ends
    ends = {e["path"]: e for e in events if e["kind"] == ev.WAIT_END}
    assert set(ends) == {w["path"] for w in waits}
    assert all(e["status"] == "ok" and e["duration"] >= 0 for e in ends.values())


class Counting:
    """Node types sharing one in-flight counter (an independent check of the events)."""

    def __init__(self) -> None:
        self.in_flight = self.top = 0

    async def run(self, params: dict[str, Any], ctx: RunContext) -> dict[str, Any]:
        self.in_flight += 1
        self.top = max(self.top, self.in_flight)
        try:
            await anyio.sleep(params.get("sleep", 0.02))
        finally:
            self.in_flight -= 1
        if params.get("fail") and ctx.attempt <= params["fail"]:
            raise RuntimeError(f"attempt {ctx.attempt} of {ctx.path} fails")
        return {"path": ctx.path}

    def type(self, name: str) -> NodeType:
        return NodeType(name, self.run, params=(Param("sleep"), Param("fail")))


def test_a_rate_limit_key_joins_nodes_of_different_types(tmp_path):
    counter = Counting()
    reg = {**registry(), "p1": counter.type("p1"), "p2": counter.type("p2")}
    a = {"id": "a", "type": "p1", "params": {"rate_limit_key": "api"},
         "batch": {"items": list(range(6)), "parallel": True}}
    b = {"id": "b", "type": "p2", "params": {"rate_limit_key": "api"},
         "batch": {"items": list(range(6)), "parallel": True}}
    c = {"id": "c", "type": "p2", "batch": {"items": list(range(6)), "parallel": True}}  # not limited
    _, events = run(fan([a, b, c], rate_limits={"api": {"max_concurrent": 2}}), tmp_path, reg)
    spans, paths = _spans_with_paths(events)
    ab = [span for span, path in zip(spans, paths, strict=True) if ".a.iteration_" in path
          or ".b.iteration_" in path]
    assert len(ab) == 12 and peak(ab) == 2
    assert counter.top > 2  # c has no limit: it runs beside them
    waits = {e["path"] for e in events if e["kind"] == ev.WAIT_START}
    assert waits and all(p.startswith(("rl.go.branch_0.a.", "rl.go.branch_1.b.")) for p in waits)
    # the key is the engine's: the node type never sees it
    starts = [e for e in events if e["kind"] == ev.NODE_START and e["node"] == "a"]
    assert "rate_limit_key" not in starts[0].get("params", {})


def _spans_with_paths(events: list[dict[str, Any]]) -> tuple[list[tuple[float, float]], list[str]]:
    begin: dict[str, float] = {}
    spans, paths = [], []
    for e in events:
        if e["kind"] == ev.ITEM_START or (e["kind"] == ev.WAIT_END and e["status"] == "ok"):
            begin[e["path"]] = e["t"]
        elif e["kind"] == ev.WAIT_START:
            begin.pop(e["path"], None)
        elif e["kind"] == ev.ITEM_END and e["path"] in begin:
            spans.append((begin.pop(e["path"]), e["t"]))
            paths.append(e["path"])
    return spans, paths


@pytest.mark.parametrize(("parent", "expected"), [(None, 1), ({"max_concurrent": 3}, 3)])
def test_a_nested_flow_has_its_own_limits_unless_its_parent_has_the_key(tmp_path, parent, expected):
    child = {"rate_limits": {"llm": {"max_concurrent": 1}}, "inputs": {"i": {"type": "integer"}},
             "nodes": [{"id": "deep", "type": "llm", "params": {**LLM, "prompt": "deep ${i}"}}]}
    doc = {"name": "n", "nodes": [{"id": "d", "type": "workflow",
                                   "batch": {"items": list(range(5)), "parallel": True},
                                   "params": {"workflow_ir": child, "param_mapping": {"i": "${item}"}}}]}
    if parent is not None:
        doc["rate_limits"] = {"llm": parent}
    _, events = run(doc, tmp_path)
    deep = [(e0, e1) for (e0, e1), p in zip(*_node_spans(events), strict=True) if p.endswith(".deep")]
    assert len(deep) == 5 and peak(deep) == expected


def _node_spans(events: list[dict[str, Any]]) -> tuple[list[tuple[float, float]], list[str]]:
    begin: dict[str, float] = {}
    spans, paths = [], []
    for e in events:
        if (e["kind"] == ev.NODE_START and not e.get("batch")) or (
                e["kind"] == ev.WAIT_END and e["status"] == "ok" and e["path"] in begin):
            begin[e["path"]] = e["t"]
        elif e["kind"] == ev.WAIT_START:
            begin[e["path"]] = float("inf")  # not holding until its wait ends
        elif e["kind"] == ev.NODE_END and e["path"] in begin:
            spans.append((begin.pop(e["path"]), e["t"]))
            paths.append(e["path"])
    return spans, paths


def test_no_limits_no_wait_events(tmp_path):
    _, events = run(fan([llm_batch("a", 5), llm_batch("b", 5)]), tmp_path)
    assert not [e for e in events if e["kind"].startswith("wait.")]


def test_a_retry_gives_the_limit_back_and_waits_for_it_again(tmp_path):
    counter = Counting()
    reg = {**registry(), "p": counter.type("p")}
    items = [{"fail": 1, "sleep": 0.02}, {"fail": 0, "sleep": 0.4}]
    doc = {"name": "r", "rate_limits": {"p": {"max_concurrent": 1}}, "nodes": [
        {"id": "a", "type": "p", "params": {"fail": "${item.fail}", "sleep": "${item.sleep}"},
         "batch": {"items": items, "parallel": True, "max_retries": 2, "retry_wait": 0.2}}]}
    _, events = run(doc, tmp_path, reg)
    order = [(e["kind"], e["path"].rpartition(".")[2], e.get("attempt")) for e in events
             if e["kind"] in (ev.ATTEMPT_START, ev.WAIT_START)]
    # item 0 fails its first attempt; item 1 gets the limit while item 0 waits to retry; then
    # item 0's second attempt waits for the limit again
    assert order == [("attempt.start", "iteration_0", 1), ("wait.start", "iteration_1", 1),
                     ("attempt.start", "iteration_1", 1), ("wait.start", "iteration_0", 2),
                     ("attempt.start", "iteration_0", 2)]
    assert counter.top == 1


def test_a_cancelled_wait_gives_nothing_away(tmp_path):
    counter = Counting()
    reg = {**registry(), "p": counter.type("p")}
    doc = {"name": "c", "rate_limits": {"p": {"max_concurrent": 1}}, "nodes": [
        {"id": "a", "type": "p", "params": {"fail": "${item}", "sleep": 0.05},
         "batch": {"items": [1, 0, 0, 0], "parallel": True}},  # item 0 fails: fail_fast
        {"id": "after", "type": "p", "params": {}}],  # same limit, after the failure
        "edges": [{"from": "a", "to": "after", "action": "error"}]}
    spec = build_flow(doc, registry=reg)
    events: list[dict[str, Any]] = []
    result = run_flow(spec, {}, trace=tmp_path / "t.json", sinks=[events.append], registry=reg)
    assert result.status == "ok"  # the error edge led on, and 'after' got the limit
    waits = [e for e in events if e["kind"] == ev.WAIT_END]
    assert "cancelled" in {w["status"] for w in waits}  # queued items stopped waiting
    assert {e["status"] for e in events if e["kind"] == ev.ITEM_END} == {"error", "cancelled"}
    assert any(e["kind"] == ev.NODE_END and e["node"] == "after" and e["status"] == "ok" for e in events)


def test_rates_are_sliding_windows():
    async def main() -> list[str | None]:
        per_second = Limit.from_spec("k", {"per_second": 2})
        per_minute = Limit.from_spec("m", {"per_minute": 2, "max_concurrent": 5})
        got = [per_second.try_acquire(object()) for _ in range(3)]
        got += [per_minute.try_acquire(object()) for _ in range(3)]
        return got

    assert anyio.run(main) == [None, None, "per_second 2", None, None, "per_minute 2"]


@pytest.mark.slow
@settings(max_examples=25, deadline=None)
@given(max_concurrent=st.none() | st.integers(1, 4), rate=st.none() | st.integers(1, 6),
       window=st.sampled_from([0.02, 0.05]), work=st.lists(st.floats(0, 0.01), min_size=1, max_size=25))
def test_a_limit_holds_for_any_workload(max_concurrent, rate, window, work):
    """However many callers, however long they hold it: never more than max_concurrent at
    once, never more than ``rate`` starts in any window, and every caller gets its turn."""
    rates = [(rate, window, f"r {rate}")] if rate else []
    events: list[tuple[float, int]] = []  # (time, +1 start / -1 end)

    async def main() -> None:
        limit = Limit("k", max_concurrent=max_concurrent, rates=rates)

        async def caller(seconds: float) -> None:
            me = object()
            if limit.try_acquire(me) is not None:
                await limit.acquire(me)
            events.append((anyio.current_time(), 1))
            await anyio.sleep(seconds)
            events.append((anyio.current_time(), -1))
            limit.release(me)

        async with anyio.create_task_group() as tg:
            for seconds in work:
                tg.start_soon(caller, seconds)

    anyio.run(main)
    assert sum(1 for _, d in events if d == 1) == len(work)  # everyone ran
    now = top = 0
    for _, step in events:  # in the order they happened
        now += step
        top = max(top, now)
    if max_concurrent:
        assert top <= max_concurrent
    if rate:
        starts = [t for t, d in events if d == 1]
        # (a start is recorded a few microseconds after its token was taken)
        assert all(b - a >= window - 1e-4 for a, b in zip(starts, starts[rate:], strict=False))


# --- validation ----------------------------------------------------------------------------------

def found(doc: dict[str, Any], reg: dict[str, NodeType] | None = None) -> list[tuple[str, str, str]]:
    try:
        spec = build_flow(doc, registry=reg or registry())
    except FlowError as exc:
        return [(p.where, p.what, p.severity) for p in exc.problems + exc.warnings]
    return [(p.where, p.what, p.severity) for p in spec.warnings]


def test_rate_limits_are_checked():
    base = {"prompt": "p", "model": "offline"}
    llm = {"id": "l", "type": "llm", "params": base}
    cases = [
        ({"lmm": {"max_concurrent": 1}}, [llm],
         ("rate_limits.lmm", "'lmm' is neither a node type nor the rate_limit_key of a node here: "
                             "it would limit nothing", "error")),
        ({"http": {"max_concurrent": 1}}, [llm],
         ("rate_limits.http", "no node of this flow uses the limit 'http' (no 'http' node without a "
                              "rate_limit_key of its own)", "warning")),
        ({"llm": {"max_concurrent": 0}}, [llm],
         ("rate_limits.llm.max_concurrent", "must be at least 1, got 0", "error")),
        ({"llm": {"per_second": 0.5}}, [llm],
         ("rate_limits.llm.per_second", "must be a whole number, got 0.5", "error")),
        ({"llm": {"concurrency": 2}}, [llm], ("rate_limits.llm.concurrency",
                                              "unknown key 'concurrency' in a rate limit", "error")),
        ({"llm": {}}, [llm], ("rate_limits.llm", "the limit sets none of max_concurrent, per_second, "
                                                 "per_minute", "error")),
        ({"llm": 5}, [llm], ("rate_limits.llm", "expected an object, got integer", "error")),
        ({"workflow": {"max_concurrent": 1}}, [llm],
         ("rate_limits.workflow", "workflow nodes cannot be rate limited (a nested flow's node would "
                                  "wait for a limit its workflow node holds)", "error")),
        ({}, [{**llm, "params": {**base, "rate_limit_key": "openai"}}],
         ("nodes[0].params.rate_limit_key", "no entry of rate_limits is named 'openai': the calls of "
                                            "'l' are not limited", "warning")),
        ({"x": {"max_concurrent": 1}}, [{**llm, "params": {**base, "rate_limit_key": "${y}"}}],
         ("nodes[0].params.rate_limit_key", "expected the name of a rate limit, got '${y}'", "error")),
    ]
    for limits, nodes, expected in cases:
        got = found({"rate_limits": limits, "nodes": nodes})
        assert expected in got, (expected, got)
    # a typo gets a hint; a key used by a node is fine
    with pytest.raises(FlowError) as info:
        build_flow({"rate_limits": {"openia": {"max_concurrent": 1}},
                    "nodes": [{**llm, "params": {**base, "rate_limit_key": "openai"}}]})
    assert "did you mean 'openai'?" in info.value.problems[0].fix
    assert found({"rate_limits": {"openai": {"per_minute": 60}},
                  "nodes": [{**llm, "params": {**base, "rate_limit_key": "openai"}}]}) == []


def test_a_workflow_node_cannot_carry_a_rate_limit_key():
    doc = {"nodes": [{"id": "w", "type": "workflow", "params": {
        "rate_limit_key": "x", "workflow_ir": {"nodes": [{"id": "e", "type": "echo"}]}}}]}
    problems = found(doc)
    assert ("nodes[0].params.rate_limit_key", "a workflow node cannot be rate limited (it would hold "
            "the limit while its own nodes wait for it)", "error") in problems
