"""A ``workflow`` node on a Dask cluster: each item's child flow runs whole on a worker, its
events streamed back to the run (engine/run/cluster_nested.py).

On a LocalCluster of in-process workers (see test_cluster.py); the lost worker uses the
run's own local cluster (real worker processes, slow).
"""

from __future__ import annotations

import json
import pickle
import threading
import time
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

distributed = pytest.importorskip("distributed")

from test_cluster import _scrub, by_path  # noqa: E402

from pflow_tui.engine.ir.load import build_flow  # noqa: E402
from pflow_tui.engine.problems import FlowError  # noqa: E402
from pflow_tui.engine.run.cluster_nested import Relay  # noqa: E402
from pflow_tui.engine.run.executor import run_flow  # noqa: E402
from pflow_tui.engine.trace.events import Emitter  # noqa: E402
from pflow_tui.engine.trace.usage import UsageTally  # noqa: E402


def code(name: str, body: str, **inputs: Any) -> dict[str, Any]:
    return {"id": name, "type": "code", "params": {"inputs": inputs, "code": body}}


# a child of three nodes: x -> a (x + 1) -> b (a * 2, fails on a negative x) -> c (echo)
CHILD = {"ir_version": "0.1.0", "inputs": {"x": {"type": "number", "required": True}},
         "nodes": [
             code("a", "x: int\nresult: int = x + 1", x="${x}"),
             code("b", "y: int\nif y <= 0:\n    raise ValueError(f'not positive: {y}')\n"
                       "result: int = y * 2", y="${a.result}"),
             {"id": "c", "type": "echo", "params": {"message": "b: ${b.result}"}}],
         "edges": [{"from": "a", "to": "b"}, {"from": "b", "to": "c"}],
         "outputs": {"out": {"source": "${b.result}"}}}


def pipeline(items: list[Any], *, executor: str | None = "cluster", child: dict[str, Any] = CHILD,
             max_concurrent: int = 4, error_handling: str = "continue", retries: int = 1) -> dict[str, Any]:
    node: dict[str, Any] = {
        "id": "stage", "type": "workflow",
        "batch": {"items": items, "parallel": True, "max_concurrent": max_concurrent,
                  "error_handling": error_handling, "max_retries": retries},
        "params": {"workflow_ir": child, "param_mapping": {"x": "${item}"}}}
    if executor:
        node["executor"] = executor
    return {"ir_version": "0.1.0", "nodes": [node]}


def run(doc: dict[str, Any], tmp_path: Path, cluster: str | None, name: str, **kw: Any):
    spec = build_flow(doc, base_dir=tmp_path)
    events: list[dict[str, Any]] = []
    result = run_flow(spec, {}, trace=tmp_path / name, sinks=[events.append], cluster=cluster, **kw)
    return result, events


def assert_schema_valid(trace: dict[str, Any]) -> None:
    import jsonschema

    from pflow_tui.engine.trace.writer import trace_schema

    errors = list(jsonschema.Draft202012Validator(trace_schema()).iter_errors(trace))
    assert not errors, [f"{e.json_path}: {e.message[:200]}" for e in errors[:5]]


def results(result: Any) -> list[Any]:
    return [r and r.get("out") for r in result.store["stage"]["results"]]


# --- validation ---------------------------------------------------------------------------------


def test_a_workflow_node_may_run_on_a_cluster_but_not_in_a_worker_process(tmp_path):
    assert build_flow(pipeline([1]), base_dir=tmp_path).nodes["stage"].executor == "cluster"
    with pytest.raises(FlowError) as info:
        build_flow(pipeline([1], executor="process"), base_dir=tmp_path)
    assert "'workflow' nodes cannot run in a worker process" in str(info.value)
    assert 'or use "cluster": each item runs its whole child flow on a Dask worker' in str(info.value)


def test_without_dask_a_workflow_node_on_a_cluster_names_the_extra(tmp_path, monkeypatch):
    from pflow_tui.engine.run import cluster as cluster_mod

    monkeypatch.setattr(cluster_mod, "dask_installed", lambda: False)
    with pytest.raises(FlowError) as info:
        build_flow(pipeline([1]), base_dir=tmp_path)
    assert "nodes[0].executor: this node runs on a Dask cluster, but Dask is not installed" in str(info.value)


def test_the_flows_rate_limits_that_stop_at_a_child_on_a_worker_are_a_warning(tmp_path):
    doc = pipeline([1])
    doc["rate_limits"] = {"code": {"max_concurrent": 1}, "llm": {"max_concurrent": 2}}
    warnings = [p for p in build_flow(doc, base_dir=tmp_path).warnings if p.where == "nodes[0].executor"]
    assert [(w.severity, w.what) for w in warnings] == [
        ("warning", "the flow's rate limit 'code' does not reach inside this node's child flow, which "
                    "runs whole on a Dask worker")]
    del doc["nodes"][0]["executor"]
    assert not [p for p in build_flow(doc, base_dir=tmp_path).warnings if p.where == "nodes[0].executor"]


# --- the same events as a local run ---------------------------------------------------------------


def test_a_pipeline_on_the_cluster_gives_the_events_and_outputs_of_a_local_run(tmp_path, scheduler):
    items = [3, -2, 5, 0, 7]
    local, local_events = run(pipeline(items, executor=None), tmp_path, None, "local.json")
    remote, remote_events = run(pipeline(items), tmp_path, scheduler, "remote.json")
    assert remote.status == local.status == "ok"
    assert results(remote) == results(local) == [8, None, 12, 2, 16]
    assert _scrub(remote.store["stage"]["errors"]) == _scrub(local.store["stage"]["errors"])
    assert by_path(remote_events) == by_path(local_events)
    inner = [e for e in remote_events if e["path"].startswith("flow.stage.iteration_")
             and e["kind"] == "node.end"]
    assert len(inner) == 5 + 5 + 4  # a and b of every item, c of the four that passed b
    ran_on = {e["worker"] for e in remote_events if e["kind"] == "item.end"}
    assert ran_on and all(w.startswith("tcp://") for w in ran_on)


def test_an_inner_failure_reads_as_a_local_ones(tmp_path, scheduler):
    _, local_events = run(pipeline([1, -1], executor=None), tmp_path, None, "local.json")
    _, remote_events = run(pipeline([1, -1]), tmp_path, scheduler, "remote.json")

    def failure(events: list[dict[str, Any]]) -> dict[str, Any]:
        return next(e for e in events if e["kind"] == "item.end" and e["status"] == "error")

    assert failure(remote_events)["error"] == failure(local_events)["error"] == {
        "type": "NodeError", "message": "child flow stage failed at flow.stage.iteration_1.b: "
                                        "not positive: 0"}
    inner = next(e for e in remote_events
                 if e["kind"] == "node.end" and e["path"] == "flow.stage.iteration_1.b")
    assert inner["status"] == "error" and "raise ValueError" in inner["error"]["traceback"]


def test_a_single_workflow_node_runs_whole_on_a_worker(tmp_path, scheduler):
    doc = {"ir_version": "0.1.0", "nodes": [
        {"id": "one", "type": "workflow", "executor": "cluster",
         "params": {"workflow_ir": CHILD, "param_mapping": {"x": 20}}}]}
    result, events = run(doc, tmp_path, scheduler, "t.json")
    assert result.status == "ok" and result.store["one"]["out"] == 42
    paths = [e["path"] for e in events if e["kind"] == "node.end"]
    assert paths == ["flow.one.a", "flow.one.b", "flow.one.c", "flow.one"]
    assert next(e for e in events if e["kind"] == "wait.end")["worker"].startswith("tcp://")


def test_a_cluster_node_inside_a_child_on_a_worker_runs_on_that_worker(tmp_path, scheduler):
    child = json.loads(json.dumps(CHILD))
    child["nodes"][0]["executor"] = "cluster"
    child["nodes"][1]["executor"] = "process"
    result, events = run(pipeline([1, 2], child=child), tmp_path, scheduler, "t.json")
    assert results(result) == [4, 6]
    waits = [e["path"] for e in events if e["kind"] == "wait.start"]
    assert waits == ["flow.stage.iteration_0", "flow.stage.iteration_1"]  # no inner submission


@settings(max_examples=6, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(items=st.lists(st.integers(-2, 9), min_size=1, max_size=5), max_concurrent=st.integers(1, 3),
       inner_batch=st.booleans())
def test_property_pipelines_on_the_cluster_and_here_agree(tmp_path_factory, scheduler, items,
                                                          max_concurrent, inner_batch):
    tmp = tmp_path_factory.mktemp("nested")
    child = json.loads(json.dumps(CHILD))
    if inner_batch:  # c: a batch of its own inside the child
        child["nodes"][2] = {"id": "c", "type": "echo",
                             "batch": {"items": "${b.result}", "parallel": True},
                             "params": {"message": "n ${item}"}}
        child["nodes"][1]["params"]["code"] += "\nresult: list = [result, result + 1]"
        child["nodes"][1]["params"]["code"] = child["nodes"][1]["params"]["code"].replace(
            "result: int = y * 2\n", "result = y * 2\n")
    local, local_events = run(pipeline(items, executor=None, child=child, max_concurrent=max_concurrent),
                              tmp, None, "l.json")
    remote, remote_events = run(pipeline(items, child=child, max_concurrent=max_concurrent), tmp, scheduler,
                                "r.json")
    assert remote.status == local.status
    assert _scrub(remote.store["stage"]["results"]) == _scrub(local.store["stage"]["results"])
    assert by_path(remote_events) == by_path(local_events)


# --- live, cancel, replay -----------------------------------------------------------------------


SLOW_B = json.loads(json.dumps(CHILD))
SLOW_B["nodes"][1]["params"]["code"] = "y: int\nimport time\ntime.sleep(1.0)\nresult: int = y * 2"


def test_inner_events_arrive_while_the_item_runs(tmp_path, scheduler):
    seen: dict[tuple[str, str], float] = {}

    def sink(e: dict[str, Any]) -> None:
        seen.setdefault((e["kind"], e["path"]), time.monotonic())

    spec = build_flow(pipeline([1], child=SLOW_B), base_dir=tmp_path)
    result = run_flow(spec, {}, trace=tmp_path / "t.json", sinks=[sink], cluster=scheduler)
    assert result.status == "ok" and results(result) == [4]
    a_done = seen[("node.end", "flow.stage.iteration_0.a")]
    b_began = seen[("node.start", "flow.stage.iteration_0.b")]
    item_done = seen[("item.end", "flow.stage.iteration_0")]
    assert a_done < b_began < item_done
    assert item_done - a_done > 0.7  # a's end came while b slept on the worker, not with the answer


def test_stop_mid_child_ends_its_steps_cancelled_and_writes_the_footer(tmp_path, own_scheduler):
    stop = threading.Event()
    events: list[dict[str, Any]] = []

    def sink(e: dict[str, Any]) -> None:
        events.append(e)
        if e["kind"] == "node.start" and e["path"].endswith(".b"):
            stop.set()

    spec = build_flow(pipeline([1, 2], child=SLOW_B), base_dir=tmp_path)
    t0 = time.monotonic()
    result = run_flow(spec, {}, trace=tmp_path / "t.json", sinks=[sink], stop=stop, cluster=own_scheduler)
    assert time.monotonic() - t0 < 5 and result.status == "interrupted"
    time.sleep(1.5)  # the children run to their end on the workers: nothing more is emitted
    trace = json.loads((tmp_path / "t.json").read_text())
    assert trace["status"] == "interrupted"
    assert_schema_valid(trace)
    recorded = trace["events"]
    assert [e["seq"] for e in recorded] == [e["seq"] for e in events]
    b_ends = [e for e in recorded if e["kind"] == "node.end" and e["path"].endswith(".b")]
    assert b_ends and {e["status"] for e in b_ends} == {"cancelled"}
    for item in ("flow.stage.iteration_0", "flow.stage.iteration_1"):
        mine = [e for e in recorded if e["path"].startswith(item)]
        assert mine[-1]["kind"] == "item.end" and mine[-1]["status"] == "cancelled"
    assert not any(e["kind"] == "node.start" and e["path"].endswith(".c") for e in recorded)


def test_the_trace_of_a_pipeline_on_the_cluster_replays_and_diffs_as_the_local_one(tmp_path, scheduler):
    from pflow_tui.app.graph import Graph
    from pflow_tui.app.model import RunModel
    from pflow_tui.engine.ir.spec import children_ir
    from pflow_tui.engine.trace.diff import diff_traces
    from pflow_tui.engine.trace.reader import TraceIndex
    from pflow_tui.engine.trace.replay import LazyEvents

    doc = pipeline([1, -1, 4])
    run(pipeline([1, -1, 4], executor=None), tmp_path, None, "local.json")
    run(doc, tmp_path, scheduler, "remote.json")
    spec = build_flow(doc, base_dir=tmp_path)
    graph = Graph.from_ir(spec.ir, spec.name, children_ir(spec))
    tables = []
    for name in ("local.json", "remote.json"):
        index = TraceIndex(tmp_path / name)
        model = RunModel(graph, LazyEvents(index))
        model.apply(index.summaries(0, len(index)))
        table = model.latest["stage"].items
        tables.append((table.done, table.failed, list(table.failures)))
    assert tables[0] == tables[1] == (2, 1, [1])
    diff = diff_traces(tmp_path / "local.json", tmp_path / "remote.json")
    changed = [row.path for row in diff.rows if row.change not in ("same", "slower", "faster")]
    assert not changed, changed


def test_a_rerun_submits_only_the_failed_items_child(tmp_path, scheduler, monkeypatch):
    from pflow_tui.engine.run.cluster import ENV
    from pflow_tui.engine.trace.rerun import rerun_flow

    fixed = tmp_path / "fixed"
    child = json.loads(json.dumps(CHILD))
    child["nodes"][1]["params"]["code"] = (
        f"y: int\nimport pathlib\nif y == 3 and not pathlib.Path({str(fixed)!r}).exists():\n"
        "    raise RuntimeError('not yet')\nresult: int = y * 2")
    first, _ = run(pipeline([0, 1, 2, 3], child=child), tmp_path, scheduler, "first.json")
    assert first.store["stage"]["error_count"] == 1
    fixed.touch()
    monkeypatch.setenv(ENV, scheduler)
    events: list[dict[str, Any]] = []
    again = rerun_flow(tmp_path / "first.json", trace=tmp_path / "again.json", sinks=[events.append])
    assert again.status == "ok" and results(again) == [2, 4, 6, 8]
    assert [e["path"] for e in events if e["kind"] == "wait.start"] == ["flow.stage.iteration_2"]
    inner = [e["path"] for e in events if e["kind"] == "node.end" and e["path"].count(".") == 3]
    assert inner == ["flow.stage.iteration_2.a", "flow.stage.iteration_2.b", "flow.stage.iteration_2.c"]


# --- the relay: order, lost attempts ------------------------------------------------------------


class FakeRun:
    """What a Relay uses of an Execution."""

    def __init__(self) -> None:
        self.events: list[dict[str, Any]] = []
        self.emitter = Emitter([self.events.append])
        self.emit, self.now = self.emitter.emit, self.emitter.now
        self.usage = UsageTally()
        self.shared: dict[str, Any] = {}


class FakeCall:
    visits = None


def chunk(*events: tuple[str, str, dict[str, Any]], extras: dict[str, Any] | None = None) -> bytes:
    return pickle.dumps(([{"seq": 9, "t": 0.0, "kind": k, "path": p, **f} for k, p, f in events], extras))


def test_the_relay_emits_chunks_in_order_and_ends_what_a_lost_attempt_left_open():
    ex, call = FakeRun(), FakeCall()
    relay = Relay(ex, call)  # type: ignore[arg-type]
    first = chunk(("node.start", "f.s.iteration_0.a", {"node": "a"}),
                  ("node.end", "f.s.iteration_0.a", {"node": "a", "status": "ok"}))
    second = chunk(("node.start", "f.s.iteration_0.b", {"node": "b"}),
                   ("item.start", "f.s.iteration_0.b.iteration_0", {"index": 0}),
                   ("attempt.start", "f.s.iteration_0.b.iteration_0", {"attempt": 1}))
    third = chunk(extras={"usage": ({"m": {"input_tokens": 3}}, 1), "template_errors": ["x: y"]})
    relay.chunk("k1", 2, third)
    relay.chunk("k1", 1, second)
    assert ex.events == []  # waiting for chunk 0
    relay.chunk("k1", 0, first)
    paths = [e["path"].removeprefix("f.s.iteration_0.") for e in ex.events]
    assert paths == ["a", "a", "b", "b.iteration_0", "b.iteration_0"]
    assert [e["seq"] for e in ex.events] == [1, 2, 3, 4, 5]  # the run's numbering
    assert ex.usage.calls == 1 and ex.usage.models["m"]["input_tokens"] == 3
    assert ex.shared["__template_errors__"] == ["x: y"]
    lost = {"type": "WorkerLost", "message": "worker lost"}
    relay.close("error", lost)
    ends = [(e["kind"], e["path"].removeprefix("f.s.iteration_0."), e["status"]) for e in ex.events[5:]]
    assert ends == [("attempt.end", "b.iteration_0", "error"), ("item.end", "b.iteration_0", "error"),
                    ("node.end", "b", "error")]
    assert all(e["error"] == lost for e in ex.events[5:])
    assert call.visits == {("f.s.iteration_0", "a"): 1, ("f.s.iteration_0", "b"): 1}
    relay.chunk("k2", 0, chunk(("node.start", "f.s.iteration_0.a#2", {"node": "a"})))  # the retry
    assert ex.events[-1]["path"] == "f.s.iteration_0.a#2"
    assert call.visits[("f.s.iteration_0", "a")] == 2


# --- a worker lost mid-child (real worker processes) --------------------------------------------


@pytest.mark.slow
def test_a_worker_lost_mid_child_ends_its_open_steps_and_the_retry_runs_at_new_paths(tmp_path):
    marks = tmp_path / "marks"
    marks.mkdir()
    child = json.loads(json.dumps(CHILD))
    child["nodes"][1]["params"]["code"] = (  # b of item 1 kills its worker once, a second in
        "y: int\nimport os, pathlib, signal, time\n"
        f"mark = pathlib.Path({str(marks)!r}, str(y))\n"
        "if y == 2 and not mark.exists():\n    mark.touch()\n    time.sleep(1.0)\n"
        "    os.kill(os.getpid(), signal.SIGKILL)\n"
        "result: int = y * 2")
    t0 = time.monotonic()
    result, events = run(pipeline([0, 1, 2], child=child, retries=2), tmp_path, "local", "t.json")
    assert time.monotonic() - t0 < 60
    assert result.status == "ok" and results(result) == [2, 4, 6]
    mine = [e for e in events if e["path"].startswith("flow.stage.iteration_1")]
    lost = next(e for e in mine if e["kind"] == "node.end" and e["path"] == "flow.stage.iteration_1.b")
    assert lost["status"] == "error" and lost["error"]["type"] == "WorkerLost"
    attempts = [e for e in mine if e["kind"] == "attempt.end"]
    assert [e["status"] for e in attempts] == ["error", "ok"]
    assert mine.index(lost) < mine.index(attempts[0])  # the child's steps end before its attempt
    retried = [e["path"] for e in mine if e["kind"] == "node.end" and e["path"] != "flow.stage.iteration_1"]
    assert retried == ["flow.stage.iteration_1.a", "flow.stage.iteration_1.b",  # (c: its first visit)
                       "flow.stage.iteration_1.a#2", "flow.stage.iteration_1.b#2", "flow.stage.iteration_1.c"]
    trace = json.loads((tmp_path / "t.json").read_text())
    assert_schema_valid(trace)
    starts = {(e["kind"][:-6], e["path"]) for e in trace["events"] if e["kind"].endswith(".start")}
    ends = {(e["kind"][:-4], e["path"]) for e in trace["events"] if e["kind"].endswith(".end")}
    assert starts <= ends  # no step left open
