"""The process pool: CPU-bound nodes in worker processes, with everything a thread run has.

Node types come from ``proc_types`` (module-level functions a worker imports by name).
Tests compare a process run with the same flow in threads, read tracebacks raised in a
worker from the trace, and look for the worker processes after a cancellation.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from pathlib import Path
from typing import Any

import orjson
import pytest
from proc_types import WHERE

from pflow_tui.engine.ir.load import build_flow
from pflow_tui.engine.nodes.base import NodeType, Param
from pflow_tui.engine.problems import FlowError
from pflow_tui.engine.registry import registry
from pflow_tui.engine.run.executor import run_flow
from pflow_tui.engine.run.pool import ENV
from pflow_tui.engine.trace import events as ev
from pflow_tui.engine.trace.writer import read_trace

REG = {**registry(), "where": WHERE}


def run(doc: dict[str, Any], tmp_path: Path, **kwargs: Any) -> tuple[Any, list[dict[str, Any]]]:
    spec = build_flow(doc, registry=REG, base_dir=tmp_path)
    events: list[dict[str, Any]] = []
    (tmp_path / "trace.json").unlink(missing_ok=True)  # a test may run twice: the latest run's trace
    result = run_flow(spec, {}, trace=tmp_path / "trace.json", sinks=[events.append], registry=REG,
                      **kwargs)
    return result, events


def batch(params: dict[str, Any], items: list[Any], *, executor: str | None = None,
          **config: Any) -> dict[str, Any]:
    node: dict[str, Any] = {"id": "w", "type": "where", "params": {"value": "${item}", **params},
                            "batch": {"items": items, "parallel": True, **config}}
    if executor:
        node["executor"] = executor
    return {"name": "p", "nodes": [node]}


def of(events: list[dict[str, Any]], kind: str) -> list[dict[str, Any]]:
    return [e for e in events if e["kind"] == kind]


def alive(pid: int) -> bool:
    """Whether process ``pid`` still runs (a zombie does not)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (FileNotFoundError, ProcessLookupError):
        return False
    return state not in ("Z", "X")


def wait_for_file(path: Path, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while not path.exists():
        assert time.monotonic() < deadline, f"{path} never appeared"
        time.sleep(0.01)


# --- same events, other processes --------------------------------------------------------------

def test_a_cpu_bound_type_runs_in_worker_processes_with_the_events_of_a_thread_run(tmp_path):
    items = [1, 2, 3, 4, 5]
    by_process, p_events = run(batch({}, items, max_concurrent=5), tmp_path)
    by_thread, t_events = run(batch({}, items, executor="thread", max_concurrent=5), tmp_path)
    assert by_process.status == by_thread.status == "ok"
    p_pids = {r["pid"] for r in by_process.store["w"]["results"]}
    assert os.getpid() not in p_pids and 1 <= len(p_pids) <= (os.cpu_count() or 1)
    assert not any(alive(pid) for pid in p_pids)  # the workers ended with the run
    assert {r["pid"] for r in by_thread.store["w"]["results"]} == {os.getpid()}

    def without_pids(results: list[dict[str, Any]]) -> list[dict[str, Any]]:
        return [{k: v for k, v in r.items() if k != "pid"} for r in results]

    assert without_pids(by_process.store["w"]["results"]) == without_pids(by_thread.store["w"]["results"])
    assert [r["value"] for r in by_process.store["w"]["results"]] == items
    assert [r["path"] for r in by_process.store["w"]["results"]] == [f"p.w.iteration_{i}" for i in range(5)]

    def shape(events: list[dict[str, Any]]) -> Counter[tuple[str, str]]:
        return Counter((e["kind"], e["path"]) for e in events if not e["kind"].startswith("wait."))

    assert shape(p_events) == shape(t_events)
    ends = {e["path"]: e for e in of(p_events, ev.ITEM_END)}
    assert all(e["status"] == "ok" and e["outputs"]["value"] == items[e["index"]] for e in ends.values())


def test_an_exception_raised_in_a_worker_keeps_its_type_message_and_traceback(tmp_path):
    doc = {"name": "tb", "nodes": [{"id": "div", "type": "code",
                                    "batch": {"items": [2, 0, 1], "error_handling": "continue",
                                              "parallel": True},
                                    "params": {"inputs": {"d": "${item}"},
                                               "code": "d: int\nx = 10\nresult: float = x / d\n"}}]}
    result, events = run(doc, tmp_path)
    assert result.status == "ok"
    failed = [e for e in of(events, ev.ITEM_END) if e["status"] == "error"]
    assert [e["index"] for e in failed] == [1]
    error = failed[0]["error"]
    assert error["type"] == "ZeroDivisionError" and error["message"] == "division by zero"
    assert "result: float = x / d" in error["traceback"]  # the code's own line
    assert 'File "<code ' in error["traceback"] and "line 3" in error["traceback"]
    assert error["traceback"].rstrip().endswith("ZeroDivisionError: division by zero")
    # the trace file holds the same
    trace = read_trace(tmp_path / "trace.json")
    in_trace = next(e for e in trace.events if e["kind"] == ev.ITEM_END and e["status"] == "error")
    assert in_trace["error"] == error
    assert result.store["div"]["results"][0]["result"] == 5.0
    assert result.store["div"]["errors"][0]["error"] == "division by zero"


def test_retries_in_worker_processes(tmp_path):
    doc = batch({"fail_until": 2}, [7], max_retries=3)
    result, events = run(doc, tmp_path)
    assert result.status == "ok" and result.store["w"]["results"][0]["attempt"] == 3
    attempts = of(events, ev.ATTEMPT_END)
    assert [(a["attempt"], a["status"]) for a in attempts] == [(1, "error"), (2, "error"), (3, "ok")]
    assert attempts[0]["error"]["type"] == "RuntimeError"
    assert "attempt 1 fails at p.w.iteration_0" in attempts[0]["error"]["traceback"]
    assert "proc_types.py" in attempts[0]["error"]["traceback"]  # the worker's frames
    assert [e["attempts"] for e in of(events, ev.ITEM_END)] == [3]


def test_a_worker_that_dies_fails_the_attempt_and_the_retry_gets_a_new_one(tmp_path):
    result, events = run(batch({"crash_until": 1}, [1], max_retries=2), tmp_path)
    assert result.status == "ok"
    first = of(events, ev.ATTEMPT_END)[0]
    assert first["status"] == "error" and first["error"]["type"] == "WorkerDied"
    assert "worker process died" in first["error"]["message"]
    assert result.store["w"]["results"][0]["attempt"] == 2


def test_outputs_that_cannot_leave_the_worker_fail_clearly(tmp_path):
    _, events = run(batch({"unpicklable": True}, [1], error_handling="continue"), tmp_path)
    error = of(events, ev.ITEM_END)[0]["error"]
    assert error["type"] == "TypeError"
    assert "cannot be sent back from the worker process" in error["message"]


def test_stray_output_in_a_worker_does_not_disturb_the_pool(tmp_path):
    result, _ = run(batch({"print": True}, [1, 2, 3], max_concurrent=3), tmp_path)
    assert result.status == "ok"
    assert [r["value"] for r in result.store["w"]["results"]] == [1, 2, 3]


def test_a_node_may_ask_for_a_process_or_a_thread(tmp_path):
    doc = {"name": "ask", "nodes": [
        {"id": "sh", "type": "shell", "executor": "process", "params": {"command": "echo $$"}},
        {"id": "code", "type": "code", "executor": "thread",
         "params": {"code": "import os\nresult: int = os.getpid()"}}],
        "edges": [{"from": "sh", "to": "code"}]}
    result, events = run(doc, tmp_path)
    assert result.status == "ok"
    assert result.store["code"]["result"] == os.getpid()
    assert int(result.store["sh"]["stdout"]) != os.getpid()
    assert not of(events, ev.WAIT_START)


def test_a_group_join_in_a_process_gets_the_branches(tmp_path):
    doc = {"name": "g", "nodes": [
        {"id": "fan", "type": "echo", "params": {"message": "go"}},
        {"id": "a", "type": "echo", "params": {"message": "a"}},
        {"id": "b", "type": "echo", "params": {"message": "b"}},
        {"id": "join", "type": "where", "params": {"value": 1}}],
        "edges": [{"from": "fan", "to": "a", "parallel_group": "g"},
                  {"from": "fan", "to": "b", "parallel_group": "g"},
                  {"from": "a", "to": "join"}, {"from": "b", "to": "join"}]}
    result, _ = run(doc, tmp_path)
    branches = result.store["join"]["branches"]
    assert [(b["start"], b["status"], b["output"]["echo"]) for b in branches] == [
        ("a", "ok", "a"), ("b", "ok", "b")]
    assert result.store["join"]["pid"] != os.getpid()


def test_a_process_node_in_a_nested_flow(tmp_path):
    child = {"inputs": {"n": {"type": "integer"}},
             "nodes": [{"id": "sq", "type": "code",
                        "params": {"inputs": {"n": "${n}"}, "code": "n: int\nresult: int = n * n"}}],
             "outputs": {"sq": {"source": "${sq.result}"}}}
    doc = {"name": "nest", "nodes": [{"id": "per", "type": "workflow",
                                      "batch": {"items": [2, 3], "parallel": True},
                                      "params": {"workflow_ir": child, "param_mapping": {"n": "${item}"}}}]}
    result, events = run(doc, tmp_path)
    assert [r["sq"] for r in result.store["per"]["results"]] == [4, 9]
    paths = {e["path"] for e in of(events, ev.NODE_END)}
    assert {"nest.per.iteration_0.sq", "nest.per.iteration_1.sq"} <= paths


def test_workers_import_the_runs_code_whatever_the_current_directory(tmp_path, monkeypatch):
    elsewhere = tmp_path / "checkout"
    (elsewhere / "pflow_tui" / "engine").mkdir(parents=True)
    for init in ("pflow_tui/__init__.py", "pflow_tui/engine/__init__.py"):
        (elsewhere / init).write_text("raise ImportError('another copy of pflow_tui')\n")
    monkeypatch.chdir(elsewhere)
    result, _ = run(batch({}, [1, 2]), tmp_path)
    assert result.status == "ok" and [r["value"] for r in result.store["w"]["results"]] == [1, 2]


# --- the pool's size ---------------------------------------------------------------------------

def held_intervals(events: list[dict[str, Any]]) -> list[tuple[int, int]]:
    """(seq when an item got its process, seq when it ended): after its wait, if it waited."""
    begin: dict[str, int] = {}
    spans = []
    for e in events:
        if e["kind"] == ev.ITEM_START or (e["kind"] == ev.WAIT_END and e["status"] == "ok"):
            begin[e["path"]] = e["seq"]
        elif e["kind"] == ev.WAIT_START:
            begin.pop(e["path"], None)
        elif e["kind"] == ev.ITEM_END and e["path"] in begin:
            spans.append((begin.pop(e["path"]), e["seq"]))
    return spans


def most_at_once(spans: list[tuple[int, int]]) -> int:
    points = sorted([(a, 1) for a, _ in spans] + [(b, -1) for _, b in spans])
    now = peak = 0
    for _, step in points:
        now += step
        peak = max(peak, now)
    return peak


def test_the_pool_size_comes_from_the_environment(tmp_path, monkeypatch):
    monkeypatch.setenv(ENV, "1")
    result, events = run(batch({"sleep": 0.05}, [1, 2, 3], max_concurrent=3), tmp_path)
    assert result.status == "ok"
    assert len({r["pid"] for r in result.store["w"]["results"]}) == 1
    waits = of(events, ev.WAIT_START)
    assert len(waits) == 2 and {(w["on"], w["limit"]) for w in waits} == {("processes", "1 process")}
    assert "key" not in waits[0]
    assert most_at_once(held_intervals(events)) == 1
    assert [e["status"] for e in of(events, ev.WAIT_END)] == ["ok", "ok"]


@pytest.mark.parametrize("value", ["zero", "0", "-2", "1.5"])
def test_a_bad_pool_size_is_reported_before_the_run(tmp_path, monkeypatch, capsys, value):
    from pflow_tui.cli import main

    flow = tmp_path / "f.json"
    flow.write_text(orjson.dumps(batch({}, [1])).decode().replace('"where"', '"code"').replace(
        '"value":"${item}"', '"code":"result: int = 1"'))
    monkeypatch.setenv(ENV, value)
    assert main(["validate", str(flow)]) == 2
    err = " ".join(capsys.readouterr().err.split())
    assert f"environment variable {ENV}" in err and f"'{value}' is not a number of processes" in err
    # a flow that uses no process does not care
    flow.write_text(orjson.dumps({"nodes": [{"id": "e", "type": "echo", "params": {}}]}).decode())
    assert main(["validate", str(flow)]) == 0


# --- cancellation ------------------------------------------------------------------------------

def test_fail_fast_kills_the_worker_of_a_running_item(tmp_path):
    pids = tmp_path / "pids"
    pids.mkdir()
    # item 0 fails once item 1 runs; item 1 would sleep for a minute
    items = [{"fail_until": 1, "wait_for": str(pids / "1.1"), "sleep": 0},
             {"fail_until": 0, "wait_for": "", "sleep": 60}]
    doc = batch({"pid_dir": str(pids), "fail_until": "${item.fail_until}", "wait_for": "${item.wait_for}",
                 "sleep": "${item.sleep}"}, items)
    t0 = time.monotonic()
    result, events = run(doc, tmp_path)
    assert time.monotonic() - t0 < 30  # not the minute item 1 would have slept
    assert result.status == "failed"
    ends = {e["index"]: e["status"] for e in of(events, ev.ITEM_END)}
    assert ends == {0: "error", 1: "cancelled"}
    pid = int((pids / "1.1").read_text())
    deadline = time.monotonic() + 10
    while alive(pid) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not alive(pid)


def test_stop_ends_the_run_and_its_workers(tmp_path):
    pids = tmp_path / "pids"
    pids.mkdir()
    stop = threading.Event()
    watcher = threading.Thread(target=lambda: (wait_for_file(pids / "0.1"), stop.set()))
    watcher.start()
    result, events = run(batch({"sleep": 60, "pid_dir": str(pids)}, [1]), tmp_path, stop=stop)
    watcher.join()
    assert result.status == "interrupted"
    assert [e["status"] for e in of(events, ev.ITEM_END)] == ["cancelled"]
    pid = int((pids / "0.1").read_text())
    deadline = time.monotonic() + 10
    while alive(pid) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not alive(pid)


def test_ctrl_c_ends_the_run_and_its_workers(tmp_path):
    pids = tmp_path / "pids"
    pids.mkdir()
    flow = tmp_path / "slow.json"
    doc = batch({"sleep": 60, "pid_dir": str(pids)}, [1, 2], max_concurrent=2)
    doc["nodes"][0]["type"] = "code"
    doc["nodes"][0]["params"] = {"inputs": {"d": str(pids), "i": "${item}"}, "code": (
        "import os, time\nd: str\ni: int\nopen(f'{d}/{i}', 'w').write(str(os.getpid()))\n"
        "time.sleep(60)\nresult: int = i")}
    flow.write_text(orjson.dumps(doc).decode())
    trace = tmp_path / "t.json"
    proc = subprocess.Popen([sys.executable, "-m", "pflow_tui", "run", str(flow), "--trace", str(trace)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, start_new_session=True)
    try:
        wait_for_file(pids / "1")
        wait_for_file(pids / "2")
        time.sleep(0.2)
        os.killpg(proc.pid, signal.SIGINT)  # as a terminal does: the whole process group
        _, err = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 130, err.decode()
    assert read_trace(trace).status == "interrupted"
    for name in ("1", "2"):
        pid = int((pids / name).read_text())
        deadline = time.monotonic() + 10
        while alive(pid) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert not alive(pid), f"worker {pid} outlived the run"
    assert b"Traceback" not in err


# --- what may run where --------------------------------------------------------------------------

def problems_of(doc: dict[str, Any], reg: dict[str, NodeType] | None = None) -> list[str]:
    with pytest.raises(FlowError) as info:
        build_flow(doc, registry=reg or REG)
    return [f"{p.where}: {p.what} | {p.fix}" for p in info.value.problems]


def one_node(node: dict[str, Any]) -> dict[str, Any]:
    return {"nodes": [{"id": "n", **node}]}


def test_executor_values_are_checked():
    def closure_type(cpu_bound: bool) -> NodeType:
        return NodeType("local", lambda params, ctx: {}, params=(Param("x"),), cpu_bound=cpu_bound)

    cases = [
        (one_node({"type": "echo", "executor": "proces"}), None,
         "nodes[0].executor: 'proces' is not an executor | did you mean 'process'?"),
        (one_node({"type": "shell", "executor": "inline", "params": {"command": "true"}}), None,
         "nodes[0].executor: 'inline' is not an executor | leave \"executor\" out: 'shell' nodes then "
         "run where their type says (thread)"),
        (one_node({"type": "llm", "executor": "thread", "params": {"prompt": "p"}}), None,
         "nodes[0].executor: 'llm' nodes run on the event loop"),
        (one_node({"type": "workflow", "executor": "process",
                   "params": {"workflow_ir": {"nodes": [{"id": "e", "type": "echo"}]}}}), None,
         "nodes[0].executor: 'workflow' nodes cannot run in a worker process"),
        (one_node({"type": "local", "executor": "process"}), {**REG, "local": closure_type(False)},
         "nodes[0].executor: 'local' nodes cannot run in a worker process: its run function"),
        (one_node({"type": "local"}), {**REG, "local": closure_type(True)},
         "nodes[0].type: node type 'local' is CPU-bound, but cannot run in a worker process"),
        (one_node({"type": "echo", "executor": 3}), None, "nodes[0].executor: expected string, got integer"),
    ]
    for doc, reg, expected in cases:
        found = problems_of(doc, reg)
        assert any(p.startswith(expected) for p in found), (expected, found)
    # and what is fine
    build_flow(one_node({"type": "code", "executor": "thread", "params": {"code": "result: int = 1"}}))
    build_flow(one_node({"type": "echo", "executor": "process"}))
    build_flow(one_node({"type": "local", "executor": "thread"}),
               registry={**REG, "local": closure_type(True)})
