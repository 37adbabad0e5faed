"""Executor semantics: order, isolation, retries, error handling, concurrency, routing, events."""

from __future__ import annotations

import itertools
import threading
from collections import Counter
from typing import Any

import anyio
import pytest

from pflow_tui.engine.ir.load import build_flow
from pflow_tui.engine.nodes.base import NodeType, Param, RunContext
from pflow_tui.engine.registry import registry
from pflow_tui.engine.run.executor import run_flow
from pflow_tui.engine.trace import events as ev


class Probe:
    """A node type that records what ran, concurrently how much, and on which thread."""

    def __init__(self) -> None:
        self.in_flight = 0
        self.peak = 0
        self.calls: list[tuple[Any, int]] = []
        self.threads: set[str] = set()
        self.fail_until: dict[Any, int] = {}  # value -> attempts that raise

    async def run(self, params: dict[str, Any], ctx: RunContext) -> dict[str, Any]:
        value = params.get("value")
        self.calls.append((value, ctx.attempt))
        self.threads.add(threading.current_thread().name)
        self.in_flight += 1
        self.peak = max(self.peak, self.in_flight)
        try:
            await anyio.sleep(params.get("sleep", 0))
        finally:
            self.in_flight -= 1
        if ctx.attempt <= self.fail_until.get(value, 0):
            raise RuntimeError(f"attempt {ctx.attempt} of {value} fails")
        if params.get("handled_error"):
            return {"error": f"bad {value}", "value": value}
        return {"value": value, "double": value * 2 if isinstance(value, int) else None}

    def node_type(self, name: str = "probe") -> NodeType:
        return NodeType(name, self.run, params=(Param("value"), Param("sleep"), Param("handled_error")))


def blocking_type(seen: set[str]) -> NodeType:
    def run(params: dict[str, Any], ctx: RunContext) -> dict[str, Any]:
        seen.add(threading.current_thread().name)
        return {"ok": True}

    return NodeType("blocking", run, blocking=True)


def run(doc: dict[str, Any], tmp_path, *types: NodeType, inputs=None):
    reg = {**registry(), **{t.name: t for t in types}}
    spec = build_flow(doc, registry=reg)
    events: list[dict[str, Any]] = []
    (tmp_path / "trace.json").unlink(missing_ok=True)  # a test may run twice: the latest run's trace
    result = run_flow(spec, inputs or {}, trace=tmp_path / "trace.json", sinks=[events.append],
                      registry=reg)
    return result, events


def kinds(events, kind):
    return [e for e in events if e["kind"] == kind]


def test_sequential_batch_results_in_input_order_and_isolated(tmp_path):
    probe = Probe()
    doc = {"name": "f", "nodes": [
        {"id": "p", "type": "probe", "batch": {"items": [3, 1, 2]}, "params": {"value": "${item}"}},
    ]}
    result, events = run(doc, tmp_path, probe.node_type())
    assert result.status == "ok"
    out = result.store["p"]
    assert [r["value"] for r in out["results"]] == [3, 1, 2]
    assert [r["item"] for r in out["results"]] == [3, 1, 2]
    assert (out["count"], out["success_count"], out["error_count"], out["errors"]) == (3, 3, 0, None)
    assert [c[0] for c in probe.calls] == [3, 1, 2]
    # every item has its own start/end, addressed by index
    starts = kinds(events, ev.ITEM_START)
    assert [e["path"] for e in starts] == [f"f.p.iteration_{i}" for i in range(3)]
    assert [e["params"]["value"] for e in starts] == [3, 1, 2]
    ends = kinds(events, ev.ITEM_END)
    assert [e["outputs"]["double"] for e in ends] == [6, 2, 4]


def test_a_batch_nodes_start_lists_its_constant_params_not_a_templated_ones_default(tmp_path):
    """echo's ``message`` defaults to "Hello, World!"; templated per item, the node's start
    must not show that default as if it were the value."""
    doc = {"name": "f", "nodes": [
        {"id": "e", "type": "echo", "batch": {"items": ["a", "b"]},
         "params": {"message": "item ${item}", "suffix": "!"}},
    ]}
    result, events = run(doc, tmp_path)
    assert result.status == "ok"
    [start] = kinds(events, ev.NODE_START)
    assert "message" not in start["params"] and start["params"]["suffix"] == "!"
    assert [e["params"]["message"] for e in kinds(events, ev.ITEM_START)] == ["item a", "item b"]


def test_parallel_batch_reaches_and_never_exceeds_max_concurrent(tmp_path):
    probe = Probe()
    doc = {"nodes": [{"id": "p", "type": "probe", "params": {"value": "${item}", "sleep": 0.02},
                      "batch": {"items": list(range(40)), "parallel": True, "max_concurrent": 7}}]}
    result, events = run(doc, tmp_path, probe.node_type())
    assert result.status == "ok"
    assert probe.peak == 7
    assert [r["value"] for r in result.store["p"]["results"]] == list(range(40))
    # the events agree: never more than 7 items between start and end
    live = peak = 0
    for e in events:
        if e["kind"] == ev.ITEM_START:
            live += 1
            peak = max(peak, live)
        elif e["kind"] == ev.ITEM_END:
            live -= 1
    assert peak == 7


def test_parallel_batch_is_actually_parallel(tmp_path):
    probe = Probe()
    doc = {"nodes": [{"id": "p", "type": "probe", "params": {"value": "${item}", "sleep": 0.1},
                      "batch": {"items": list(range(10)), "parallel": True, "max_concurrent": 10}}]}
    result, events = run(doc, tmp_path, probe.node_type())
    assert result.status == "ok"
    # every item started before the first one ended (one after the other, each would end first)
    order = [e["kind"] for e in events if e["kind"] in (ev.ITEM_START, ev.ITEM_END)]
    assert order == [ev.ITEM_START] * 10 + [ev.ITEM_END] * 10
    assert probe.peak == 10


def test_retries_per_item_then_success(tmp_path):
    probe = Probe()
    probe.fail_until = {2: 2}  # item 2 fails twice, succeeds on attempt 3
    doc = {"nodes": [{"id": "p", "type": "probe", "params": {"value": "${item}"},
                      "batch": {"items": [1, 2, 3], "max_retries": 3}}]}
    result, events = run(doc, tmp_path, probe.node_type())
    assert result.status == "ok"
    assert [c for c in probe.calls if c[0] == 2] == [(2, 1), (2, 2), (2, 3)]
    attempts = [e for e in events if e["path"] == "flow.p.iteration_1" and e["kind"].startswith("attempt")]
    assert [(e["kind"], e.get("status")) for e in attempts] == [
        ("attempt.start", None), ("attempt.end", "error"),
        ("attempt.start", None), ("attempt.end", "error"),
        ("attempt.start", None), ("attempt.end", "ok")]
    end = next(e for e in events if e["kind"] == ev.ITEM_END and e["index"] == 1)
    assert end["attempts"] == 3 and end["status"] == "ok"


def test_continue_mode_records_failures_and_goes_on(tmp_path):
    probe = Probe()
    probe.fail_until = {1: 99}
    doc = {"nodes": [
        {"id": "p", "type": "probe", "params": {"value": "${item}"},
         "batch": {"items": [0, 1, 2], "error_handling": "continue"}},
        {"id": "after", "type": "echo", "params": {"message": "errors=${p.error_count}"}},
    ], "edges": [{"from": "p", "to": "after"}]}
    result, events = run(doc, tmp_path, probe.node_type())
    assert result.status == "ok"
    out = result.store["p"]
    assert out["results"][1] is None
    assert out["results"][0]["value"] == 0 and out["results"][2]["value"] == 2
    assert (out["success_count"], out["error_count"]) == (2, 1)
    assert out["errors"][0]["index"] == 1 and "attempt 1 of 1 fails" in out["errors"][0]["error"]
    assert result.store["after"]["echo"] == "errors=1"
    failed = next(e for e in events if e["kind"] == ev.ITEM_END and e["status"] == "error")
    assert failed["error"]["type"] == "RuntimeError"
    assert "Traceback" in failed["error"]["traceback"]


def test_fail_fast_sequential_stops_at_first_failure(tmp_path):
    probe = Probe()
    probe.fail_until = {1: 99}
    doc = {"nodes": [{"id": "p", "type": "probe", "params": {"value": "${item}"},
                      "batch": {"items": [0, 1, 2, 3]}}]}
    result, events = run(doc, tmp_path, probe.node_type())
    assert result.status == "failed"
    assert [c[0] for c in probe.calls] == [0, 1]
    assert result.error["path"] == "flow.p.iteration_1"
    assert "attempt 1 of 1 fails" in result.error["message"]
    assert kinds(events, ev.RUN_END)[0]["status"] == "error"


def test_fail_fast_parallel_cancels_siblings(tmp_path):
    probe = Probe()
    probe.fail_until = {0: 99}
    doc = {"nodes": [{"id": "p", "type": "probe", "params": {"value": "${item}", "sleep": "${item}"},
                      "batch": {"items": [0, 5, 5, 5, 5, 5], "parallel": True, "max_concurrent": 3}}]}
    result, events = run(doc, tmp_path, probe.node_type())
    assert result.status == "failed"
    statuses = Counter(e["status"] for e in kinds(events, ev.ITEM_END))
    assert statuses == {"error": 1, "cancelled": 2}  # the 5-second siblings were cancelled
    # ... when the failure ended: its item.end comes first, then theirs, then the node's
    ends = [(e["kind"], e.get("status")) for e in events if e["kind"] in (ev.ITEM_END, ev.NODE_END)]
    assert ends == [(ev.ITEM_END, "error"), (ev.ITEM_END, "cancelled"), (ev.ITEM_END, "cancelled"),
                    (ev.NODE_END, "error")]
    assert len(probe.calls) == 3  # nothing new started after the failure


def test_handled_failure_is_not_retried_and_takes_error_edge(tmp_path):
    probe = Probe()
    doc = {"nodes": [
        {"id": "p", "type": "probe", "params": {"value": 1, "handled_error": True}},
        {"id": "ok", "type": "echo", "params": {"message": "fine"}},
        {"id": "recover", "type": "echo", "params": {"message": "recovered from ${p.error}"}},
    ], "edges": [{"from": "p", "to": "ok"}, {"from": "p", "to": "recover", "action": "error"}]}
    result, events = run(doc, tmp_path, probe.node_type())
    assert result.status == "ok"
    assert probe.calls == [(1, 1)]
    assert result.store["recover"]["echo"] == "recovered from bad 1"
    assert "ok" not in result.store
    assert [(e["from"], e["to"], e["action"]) for e in kinds(events, ev.EDGE)] == [("p", "recover", "error")]


def test_failure_without_error_edge_fails_the_run(tmp_path):
    doc = {"nodes": [
        {"id": "bad", "type": "shell", "params": {"command": "echo oops >&2; exit 3"}},
        {"id": "next", "type": "echo", "params": {"message": "x"}},
    ], "edges": [{"from": "bad", "to": "next"}]}
    result, _events = run(doc, tmp_path)
    assert result.status == "failed"
    assert result.error["node"] == "bad"
    assert "exit code 3" in result.error["message"]
    assert result.store["bad"]["exit_code"] == 3
    assert "next" not in result.store


def test_flow_params_do_not_clobber_node_params(tmp_path):
    """PocketFlow's Flow._orch calls set_params(flow params) on every node it runs."""
    doc = {"nodes": [
        {"id": "a", "type": "echo", "params": {"message": "from a"}},
        {"id": "b", "type": "echo", "params": {"message": "${a.echo} then b"}},
    ], "edges": [{"from": "a", "to": "b"}]}
    result, _ = run(doc, tmp_path)
    assert result.store["b"]["echo"] == "from a then b"


def test_max_visits_guard(tmp_path):
    def always_again(params, ctx):
        return {"error": "not yet"}

    doc = {"max_visits": 5, "nodes": [
        {"id": "try", "type": "again"},
        {"id": "wait", "type": "echo", "params": {"message": "waiting"}},
    ], "edges": [{"from": "try", "to": "wait", "action": "error"},
                 {"from": "wait", "to": "try"}]}
    result, events = run(doc, tmp_path, NodeType("again", always_again))
    assert result.status == "failed"
    assert "max_visits" in result.error["message"]
    paths = [e["path"] for e in kinds(events, ev.NODE_START) if e["node"] == "try"]
    assert paths == ["flow.try", "flow.try#2", "flow.try#3", "flow.try#4", "flow.try#5"]


def test_blocking_types_run_in_threads_and_async_on_the_loop(tmp_path):
    probe = Probe()
    seen: set[str] = set()
    doc = {"nodes": [{"id": "b", "type": "blocking"}, {"id": "p", "type": "probe", "params": {"value": 1}}],
           "edges": [{"from": "b", "to": "p"}]}
    run(doc, tmp_path, blocking_type(seen), probe.node_type())
    assert seen and "MainThread" not in seen
    assert probe.threads == {"MainThread"}


def test_every_start_has_an_end_and_seq_increases(tmp_path):
    probe = Probe()
    probe.fail_until = {2: 1}
    doc = {"nodes": [
        {"id": "p", "type": "probe", "params": {"value": "${item}"},
         "batch": {"items": [1, 2, 3], "parallel": True, "max_retries": 2}},
        {"id": "e", "type": "echo", "params": {"message": "count=${p.count}"}},
    ], "edges": [{"from": "p", "to": "e"}]}
    result, events = run(doc, tmp_path, probe.node_type())
    assert result.status == "ok"
    assert [e["seq"] for e in events] == list(range(1, len(events) + 1))
    assert all(a["t"] <= b["t"] for a, b in itertools.pairwise(events))
    open_: Counter[tuple[str, str]] = Counter()
    for e in events:
        kind, _, phase = e["kind"].partition(".")
        if phase == "start":
            open_[(kind, e["path"])] += 1
        elif phase == "end":
            open_[(kind, e["path"])] -= 1
            assert e["status"] in ev.STATUSES and e["duration"] >= 0
    assert all(v == 0 for v in open_.values())
    assert events[0]["kind"] == ev.RUN_START and events[-1]["kind"] == ev.RUN_END


def test_declared_outputs_are_resolved_at_the_end(tmp_path):
    doc = {"inputs": {"who": {"type": "string"}}, "nodes": [
        {"id": "greet", "type": "echo", "params": {"message": "hi ${who}"}},
    ], "outputs": {"greeting": {"source": "${greet.echo}"}, "plain": {"source": "greet.echo"}}}
    result, _ = run(doc, tmp_path, inputs={"who": "ann"})
    assert result.outputs == {"greeting": "hi ann", "plain": "hi ann"}
    assert result.store["greeting"] == "hi ann"


def test_items_that_are_not_a_list_fail_the_node_clearly(tmp_path):
    doc = {"nodes": [
        {"id": "src", "type": "shell", "params": {"command": "echo not-a-list"}},
        {"id": "each", "type": "echo", "params": {"message": "${item}"}, "batch": {"items": "${src.stdout}"}},
    ], "edges": [{"from": "src", "to": "each"}]}
    result, _ = run(doc, tmp_path)
    assert result.status == "failed"
    assert "batch.items must resolve to a list, got str" in result.error["message"]


@pytest.mark.parametrize("mode,status", [("strict", "failed"), ("permissive", "ok")])
def test_unresolved_templates_strict_and_permissive(tmp_path, mode, status):
    doc = {"template_resolution_mode": mode, "nodes": [
        # echo's data is declared "any": a missing key in it is found when the node runs
        {"id": "a", "type": "echo", "params": {"message": "x", "data": {"k": 1}}},
        {"id": "b", "type": "echo", "params": {"message": "got ${a.data.missing}"}},
    ], "edges": [{"from": "a", "to": "b"}]}
    result, events = run(doc, tmp_path)
    assert result.status == status
    if mode == "strict":
        assert "Unresolved variables in parameter 'message'" in result.error["message"]
        assert "a.data has no key 'missing'" in result.error["message"]
    else:
        assert result.store["b"]["echo"] == "got ${a.data.missing}"
        assert result.store["__template_errors__"]
        assert kinds(events, ev.WARNING)


def test_stop_from_another_thread_interrupts_and_keeps_the_trace(tmp_path):
    from pflow_tui.engine.trace.writer import read_trace

    stop = threading.Event()
    spec = build_flow({"nodes": [{"id": "slow", "type": "llm", "params": {
        "prompt": "p${item}", "model": "offline", "latency": 5},
        "batch": {"items": [1, 2, 3], "parallel": True}}]})
    timer = threading.Timer(0.3, stop.set)
    timer.start()
    result = run_flow(spec, {}, trace=tmp_path / "t.json", stop=stop)
    assert result.status == "interrupted"
    assert result.duration < 2
    trace = read_trace(tmp_path / "t.json")
    assert trace.status == "interrupted" and not trace.truncated
    ends = [e for e in trace.events if e["kind"] == ev.ITEM_END]
    assert [e["status"] for e in ends] == ["cancelled"] * 3
    assert trace.events[-1]["kind"] == ev.RUN_END and trace.events[-1]["status"] == "cancelled"
