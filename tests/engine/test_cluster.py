"""``"executor": "cluster"``: batch items on a Dask cluster (engine/run/cluster.py).

Most tests run on a LocalCluster with in-process workers (threads of this process, started
by the test: the run connects to it by address, as to any scheduler); the ones where a
worker process must die, or the run's own local cluster, use real worker processes (slow).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

distributed = pytest.importorskip("distributed")

from pflow_tui.cli import main  # noqa: E402
from pflow_tui.engine.ir.load import build_flow  # noqa: E402
from pflow_tui.engine.problems import FlowError  # noqa: E402
from pflow_tui.engine.run import cluster as cluster_mod  # noqa: E402
from pflow_tui.engine.run.cluster import ENV, parse_cluster  # noqa: E402
from pflow_tui.engine.run.executor import run_flow  # noqa: E402

VOLATILE = {"seq", "t", "duration", "worker"}


def code_batch(code: str, items: list[Any], *, executor: str | None = "cluster", retries: int = 1,
               error_handling: str = "continue", max_concurrent: int = 4, inputs=None,
               **node: Any) -> dict[str, Any]:
    n: dict[str, Any] = {"id": "work", "type": "code",
                         "batch": {"items": items, "parallel": True, "max_concurrent": max_concurrent,
                                   "max_retries": retries, "error_handling": error_handling},
                         "params": {"inputs": inputs or {"x": "${item}"}, "code": code}, **node}
    if executor:
        n["executor"] = executor
    return {"ir_version": "0.1.0", "nodes": [n]}


def run(doc: dict[str, Any], tmp_path: Path, cluster: str | None, name: str = "trace.json", **kw: Any):
    spec = build_flow(doc, base_dir=tmp_path)
    events: list[dict[str, Any]] = []
    result = run_flow(spec, {}, trace=tmp_path / name, sinks=[events.append], cluster=cluster, **kw)
    return result, events


def _scrub(value: Any) -> Any:
    """``value`` without tracebacks (their frames differ between a thread, a process and a
    Dask worker)."""
    if isinstance(value, dict):
        return {k: _scrub(v) for k, v in value.items() if k not in ("traceback", "timing")}
    if isinstance(value, list):
        return [_scrub(v) for v in value]
    return value


def by_path(events: list[dict[str, Any]]) -> dict[str, list[dict[str, Any]]]:
    """Each path's events without wait spans and what differs from run to run (times, worker,
    a traceback's frames)."""
    paths: dict[str, list[dict[str, Any]]] = {}
    for e in events:
        if e["kind"] in ("wait.start", "wait.end"):
            continue
        clean = {k: v for k, v in e.items() if k not in VOLATILE}
        if isinstance(clean.get("outputs"), dict) and "batch_metadata" in clean["outputs"]:
            clean["outputs"] = {k: v for k, v in clean["outputs"].items() if k != "batch_metadata"}
        paths.setdefault(e["path"], []).append(_scrub(clean))
    return paths


SQUARE = "x: int\nif x < 0:\n    raise ValueError(f'negative: {x}')\nresult: int = x * x"


# --- the cluster spec, validation, the missing extra --------------------------------------------


def test_parse_cluster_accepts_local_and_scheduler_addresses():
    assert parse_cluster("") == "local"
    assert parse_cluster(" local ") == "local"
    assert parse_cluster("tcp://10.0.0.5:8786") == "tcp://10.0.0.5:8786"
    assert parse_cluster("10.0.0.5:8786") == "tcp://10.0.0.5:8786"
    assert parse_cluster("sched.example.com:8786") == "tcp://sched.example.com:8786"
    for bad in ("nope", "tcp://host", "http://h:1/x", "1234"):
        with pytest.raises(ValueError, match="is not a cluster"):
            parse_cluster(bad)


def test_cluster_on_a_type_a_worker_cannot_import_is_refused(tmp_path):
    from pflow_tui.engine.nodes.base import NodeType
    from pflow_tui.engine.registry import registry

    local = NodeType("local", lambda params, ctx: {})
    doc = {"ir_version": "0.1.0", "nodes": [{"id": "n", "type": "local", "executor": "cluster"}]}
    with pytest.raises(FlowError) as info:
        build_flow(doc, base_dir=tmp_path, registry={**registry(), "local": local})
    assert "'local' nodes cannot run on a cluster: its run function" in str(info.value)


def test_a_misspelled_executor_suggests_cluster(tmp_path):
    with pytest.raises(FlowError) as info:
        build_flow(code_batch(SQUARE, [1], executor="clustr"), base_dir=tmp_path)
    assert "'clustr' is not an executor" in str(info.value) and "cluster" in str(info.value)


def write_flow(tmp_path: Path, doc: dict[str, Any]) -> Path:
    path = tmp_path / "flow.json"
    path.write_text(json.dumps(doc))
    return path


@pytest.mark.parametrize("command", ["run", "validate"])
def test_without_dask_a_cluster_flow_says_which_extra_to_install(tmp_path, monkeypatch, capsys, command):
    monkeypatch.setattr(cluster_mod, "dask_installed", lambda: False)
    flow = write_flow(tmp_path, code_batch(SQUARE, [1, 2]))
    args = [command, str(flow)] + (["--trace", str(tmp_path / "t.json")] if command == "run" else [])
    assert main(args) == 2
    err = capsys.readouterr().err
    assert "pip install 'pflow-tui[dask]'" in " ".join(err.split())
    assert "nodes[0].executor" in err and "Traceback" not in err
    assert not (tmp_path / "t.json").exists()


def test_without_dask_a_flow_without_cluster_nodes_runs(tmp_path, monkeypatch):
    monkeypatch.setattr(cluster_mod, "dask_installed", lambda: False)
    flow = write_flow(tmp_path, code_batch(SQUARE, [1, 2], executor="thread"))
    assert main(["run", str(flow), "--trace", str(tmp_path / "t.json")]) == 0


def test_a_bad_cluster_setting_is_bad_input(tmp_path, monkeypatch, capsys):
    flow = write_flow(tmp_path, code_batch(SQUARE, [1]))
    monkeypatch.setenv(ENV, "my-laptop")
    assert main(["run", str(flow), "--trace", str(tmp_path / "t.json")]) == 2
    err = capsys.readouterr().err
    assert ENV in err and "is not a cluster" in err
    monkeypatch.delenv(ENV)
    assert main(["run", str(flow), "--cluster", "my-laptop"]) == 2
    err = capsys.readouterr().err
    assert "Invalid value for '--cluster'" in err and "is not a cluster" in err


def test_the_cluster_option_sets_the_runs_cluster(tmp_path, monkeypatch, scheduler):
    monkeypatch.delenv(ENV, raising=False)
    flow = write_flow(tmp_path, code_batch(SQUARE, [1, 2, 3]))
    trace = tmp_path / "t.json"
    try:
        assert main(["run", str(flow), "--trace", str(trace), "--cluster", scheduler]) == 0
    finally:
        os.environ.pop(ENV, None)
    events = json.loads(trace.read_text())["events"]
    waits = [e for e in events if e["kind"] == "wait.start"]
    assert {w["limit"] for w in waits} == {f"cluster {scheduler}"}


# --- events and outputs, as a local run ---------------------------------------------------------


def test_items_run_on_the_cluster_with_the_same_events_and_outputs_as_local(tmp_path, scheduler):
    items = [3, -1, 4, 1, -5, 9]
    local, local_events = run(code_batch(SQUARE, items, executor="process", retries=2), tmp_path,
                              None, "local.json")
    remote, remote_events = run(code_batch(SQUARE, items, retries=2), tmp_path, scheduler, "remote.json")
    assert remote.status == local.status == "ok"
    assert remote.store["work"]["results"] == local.store["work"]["results"]
    assert remote.store["work"]["error_count"] == 2 and remote.store["work"]["success_count"] == 4
    assert by_path(remote_events) == by_path(local_events)


def test_cluster_events_name_the_worker_and_the_time_queued(tmp_path, scheduler):
    _, events = run(code_batch(SQUARE, [1, 2, 3, -4], retries=2), tmp_path, scheduler)
    with distributed.Client(scheduler, timeout=10) as client:
        workers = set(client.scheduler_info()["workers"])
    for i in range(4):
        path = f"flow.work.iteration_{i}"
        mine = [e for e in events if e["path"] == path]
        kinds = [e["kind"] for e in mine]
        assert kinds[:4] == ["item.start", "wait.start", "wait.end", "attempt.start"], kinds
        wait_start, wait_end = mine[1], mine[2]
        assert wait_start["on"] == wait_end["on"] == "cluster"
        assert wait_start["limit"] == f"cluster {scheduler}" and wait_end["status"] == "ok"
        assert wait_end["worker"] in workers
        assert all(e["worker"] in workers for e in mine if e["kind"] in ("attempt.start", "attempt.end",
                                                                          "item.end"))
    failed = [e for e in events if e["kind"] == "item.end" and e["status"] == "error"]
    assert len(failed) == 1 and failed[0]["attempts"] == 2
    error = failed[0]["error"]
    assert error["type"] == "ValueError" and error["message"] == "negative: -4"
    assert "raise ValueError" in error["traceback"]  # the worker's frames, down to the code's line


def test_a_single_cluster_node_runs_on_a_worker(tmp_path, scheduler):
    doc = {"ir_version": "0.1.0", "nodes": [
        {"id": "one", "type": "code", "executor": "cluster",
         "params": {"inputs": {"x": 7}, "code": "x: int\nresult: int = x + 1"}}]}
    result, events = run(doc, tmp_path, scheduler)
    assert result.status == "ok" and result.store["one"]["result"] == 8
    ends = [e for e in events if e["kind"] == "wait.end"]
    assert len(ends) == 1 and ends[0]["worker"].startswith("tcp://")


def test_http_items_run_on_a_worker_with_a_client_of_their_own(tmp_path, scheduler):
    """No run's loop on a Dask worker: each http call there opens (and closes) its own client."""
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    class Answer(BaseHTTPRequestHandler):
        def log_message(self, *args: Any) -> None:
            pass

        def do_GET(self) -> None:
            body = json.dumps({"path": self.path}).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Answer)
    threading.Thread(target=httpd.serve_forever, args=(0.05,), daemon=True).start()
    try:
        doc = {"ir_version": "0.1.0", "nodes": [
            {"id": "get", "type": "http", "executor": "cluster",
             "batch": {"items": ["a", "b", "c"], "parallel": True},
             "params": {"url": f"http://127.0.0.1:{httpd.server_address[1]}/${{item}}", "timeout": 5}}]}
        result, events = run(doc, tmp_path, scheduler)
    finally:
        httpd.shutdown()
        httpd.server_close()
    assert result.status == "ok", result.error
    assert [r["response"] for r in result.store["get"]["results"]] == [{"path": f"/{x}"} for x in "abc"]
    assert all(e["worker"].startswith("tcp://") for e in events if e["kind"] == "wait.end")


def test_a_big_output_comes_back_as_the_tasks_result(tmp_path, scheduler):
    code = "x: int\nresult: str = 'y' * x"
    result, _ = run(code_batch(code, [10, 200_000]), tmp_path, scheduler)
    assert [len(r["result"]) for r in result.store["work"]["results"]] == [10, 200_000]


def test_the_trace_of_a_cluster_run_reads_back_with_its_new_fields(tmp_path, scheduler):
    from pflow_tui.engine.trace.writer import read_trace

    run(code_batch(SQUARE, [1, 2], retries=2), tmp_path, scheduler)
    trace = read_trace(tmp_path / "trace.json")
    assert trace.skipped == 0 and trace.status == "ok"  # no event skipped as malformed
    kinds = [e["kind"] for e in trace.events]
    assert kinds.count("wait.start") == 2 and kinds.count("wait.end") == 2
    assert all(e.get("worker", "").startswith("tcp://") for e in trace.events
               if e["kind"] in ("wait.end", "attempt.start", "attempt.end", "item.end"))


def test_a_cluster_runs_export_puts_each_workers_attempts_on_its_track_and_resource(tmp_path, scheduler):
    from pflow_tui.engine.trace.export import export_file

    code = "x: int\nimport time\ntime.sleep(0.05)\n" + SQUARE.partition("\n")[2]
    run(code_batch(code, [1, 2, 3, 4, 5, -6], retries=2, max_concurrent=6), tmp_path, scheduler)
    events = json.loads((tmp_path / "trace.json").read_text())["events"]
    ran = sorted((e["path"], e["attempt"], e["worker"]) for e in events if e["kind"] == "attempt.start")
    assert len(ran) == 7 and len({w for _, _, w in ran}) == 2  # both workers ran some

    export_file(tmp_path / "trace.json", "perfetto", tmp_path / "p.json")
    doc = json.loads((tmp_path / "p.json").read_text())
    names = {e["pid"]: e["args"]["name"] for e in doc["traceEvents"] if e["name"] == "process_name"}
    on_tracks = sorted((e["args"]["path"], e["args"]["attempt"], e["args"]["worker"])
                       for e in doc["traceEvents"] if e["ph"] == "b" and e["args"]["kind"] == "attempt")
    assert on_tracks == ran
    for e in doc["traceEvents"]:
        if e["ph"] == "b" and e["args"]["kind"] == "attempt":
            assert names[e["pid"]] == f"worker {e['args']['worker']}"
        elif e["ph"] == "b":
            assert names[e["pid"]].startswith("pflow-tui: ")

    export_file(tmp_path / "trace.json", "otlp", tmp_path / "o.jsonl")
    (line,) = (tmp_path / "o.jsonl").read_bytes().splitlines()
    found = []
    for group in json.loads(line)["resourceSpans"]:
        resource = {a["key"]: a["value"]["stringValue"] for a in group["resource"]["attributes"]
                    if "stringValue" in a["value"]}
        for span in group["scopeSpans"][0]["spans"]:
            attrs = {a["key"]: next(iter(a["value"].values())) for a in span["attributes"]}
            if attrs["pflow.kind"] == "attempt":
                assert resource["service.instance.id"] == attrs["pflow.worker"]
                found.append((attrs["pflow.path"], int(attrs["pflow.attempt"]), attrs["pflow.worker"]))
            else:
                assert "service.instance.id" not in resource
    assert sorted(found) == ran


@settings(max_examples=8, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(items=st.lists(st.integers(-3, 20), min_size=1, max_size=6),
       retries=st.integers(1, 2), error_handling=st.sampled_from(["continue", "fail_fast"]),
       max_concurrent=st.integers(1, 3))
def test_property_cluster_and_local_runs_agree(tmp_path_factory, scheduler, items, retries, error_handling,
                                               max_concurrent):
    tmp = tmp_path_factory.mktemp("prop")
    kw = {"retries": retries, "error_handling": error_handling, "max_concurrent": max_concurrent}
    if error_handling == "fail_fast":  # which items start after a failure depends on timing
        items = [abs(i) for i in items]
    local, local_events = run(code_batch(SQUARE, items, executor="thread", **kw), tmp, None, "l.json")
    remote, remote_events = run(code_batch(SQUARE, items, **kw), tmp, scheduler, "r.json")
    assert remote.status == local.status
    assert _scrub({k: v for k, v in remote.store["work"].items() if k != "batch_metadata"}) == \
        _scrub({k: v for k, v in local.store["work"].items() if k != "batch_metadata"})
    assert by_path(remote_events) == by_path(local_events)


# --- limits, failures, cancellation -------------------------------------------------------------

# an item's code records when it ran, by the worker's clock (the same machine's)
SPAN = ("x: int\nimport time\nt0 = time.time()\ntime.sleep(0.15)\n"
        "result: list = [t0, time.time()]")


def overlap(spans: list[list[float]]) -> int:
    """The most spans that ran at the same time."""
    edges = sorted([(a, 1) for a, _ in spans] + [(b, -1) for _, b in spans], key=lambda e: (e[0], e[1]))
    most = now = 0
    for _, step in edges:
        now += step
        most = max(most, now)
    return most


def test_max_concurrent_bounds_the_items_in_flight_on_the_cluster(tmp_path, scheduler):
    result, events = run(code_batch(SPAN, list(range(8)), max_concurrent=2), tmp_path, scheduler)
    spans = [r["result"] for r in result.store["work"]["results"]]
    assert len(spans) == 8 and overlap(spans) <= 2
    in_flight = most = 0  # submitted (wait.start) and not yet ended, by the run's events
    for e in events:
        if e["kind"] == "wait.start":
            in_flight += 1
            most = max(most, in_flight)
        elif e["kind"] == "item.end":
            in_flight -= 1
    assert most == 2


def test_a_flow_wide_rate_limit_holds_across_local_and_cluster_items(tmp_path, scheduler):
    def branch(node_id: str, executor: str) -> dict[str, Any]:
        node = code_batch(SPAN, list(range(4)), executor=executor, max_concurrent=4)["nodes"][0]
        node["id"] = node_id
        node["params"]["rate_limit_key"] = "api"
        return node

    nodes = [{"id": "go", "type": "echo", "params": {"message": "go"}},
             branch("remote", "cluster"), branch("here", "thread"),
             {"id": "join", "type": "merge", "params": {}}]
    edges = [e for b in ("remote", "here") for e in ({"from": "go", "to": b, "parallel_group": "g"},
                                                     {"from": b, "to": "join"})]
    doc = {"ir_version": "0.1.0", "rate_limits": {"api": {"max_concurrent": 2}}, "nodes": nodes,
           "edges": edges}
    result, events = run(doc, tmp_path, scheduler)
    assert result.status == "ok"
    spans = [r["result"] for node in ("remote", "here") for r in result.store[node]["results"]]
    assert len(spans) == 8 and overlap(spans) <= 2
    on = {e["on"] for e in events if e["kind"] == "wait.start"}
    assert on == {"cluster", "rate_limit"}


def test_fail_fast_cancels_the_other_items_and_the_run_ends_at_once(tmp_path, own_scheduler):
    code = "x: int\nimport time\nif x == 0:\n    raise RuntimeError('boom')\ntime.sleep(3)\nresult: int = x"
    t0 = time.monotonic()
    result, events = run(code_batch(code, list(range(6)), error_handling="fail_fast"), tmp_path,
                         own_scheduler)
    assert time.monotonic() - t0 < 2.5  # not the 3 s of the others
    assert result.status == "failed" and "boom" in result.error["message"]
    ends = {e["index"]: e["status"] for e in events if e["kind"] == "item.end"}
    assert ends[0] == "error" and set(ends.values()) == {"error", "cancelled"}
    for e in events:  # every wait that began ended
        if e["kind"] == "wait.start":
            assert any(x["kind"] == "wait.end" and x["path"] == e["path"] for x in events)
    footer = json.loads((tmp_path / "trace.json").read_text())
    assert footer["status"] == "failed"


def test_stop_kills_the_running_tasks_and_queued_items_never_start(tmp_path, own_scheduler):
    marks = tmp_path / "marks"
    marks.mkdir()
    code = ("x: int\nimport time, pathlib\n"
            f"pathlib.Path({str(marks)!r}, str(x)).touch()\n"
            f"time.sleep(1.5)\npathlib.Path({str(marks)!r}, f'{{x}}.end').touch()\nresult: int = x")
    stop = threading.Event()

    def stop_when_one_runs() -> None:  # the node's code began on a worker
        deadline = time.monotonic() + 30
        while not any(marks.iterdir()) and time.monotonic() < deadline:
            time.sleep(0.01)
        stop.set()

    threading.Thread(target=stop_when_one_runs, daemon=True).start()
    spec = build_flow(code_batch(code, list(range(12)), max_concurrent=12), base_dir=tmp_path)
    result = run_flow(spec, {}, trace=tmp_path / "trace.json", stop=stop, cluster=own_scheduler)
    stopped = time.monotonic()
    assert result.status == "interrupted"
    assert not [m for m in marks.iterdir() if m.name.endswith(".end")]  # it did not wait for them
    time.sleep(max(0.0, stopped + 2.5 - time.monotonic()))  # the running tasks were killed...
    started_on_workers = [m.name for m in marks.iterdir()]
    assert started_on_workers and not [m for m in started_on_workers if m.endswith(".end")]
    assert len(started_on_workers) <= 4  # ...and the 8 queued ones never started
    events = json.loads((tmp_path / "trace.json").read_text())["events"]
    ends = [e for e in events if e["kind"] == "item.end"]
    assert len(ends) == 12 and {e["status"] for e in ends} == {"cancelled"}
    waits = [e for e in events if e["kind"] == "wait.end" and e["status"] == "cancelled"]
    assert waits and all(e["on"] == "cluster" for e in waits)


def test_a_cancelled_task_frees_its_worker_thread_at_once(tmp_path, own_scheduler):
    """Each attempt runs in a child process of the worker: a released task is killed, so the
    next run finds all the worker threads free (not busy for 30 s with dropped work)."""
    code = "x: int\nimport time\nif x == 0:\n    raise RuntimeError('boom')\ntime.sleep(30)\nresult: int = x"
    result, _ = run(code_batch(code, list(range(4)), error_handling="fail_fast"), tmp_path, own_scheduler,
                    "first.json")
    assert result.status == "failed"
    t0 = time.monotonic()
    quick, events = run(code_batch(SQUARE, list(range(8)), max_concurrent=8), tmp_path, own_scheduler,
                        "second.json")
    assert quick.status == "ok" and time.monotonic() - t0 < 10
    assert len({e["worker"] for e in events if e["kind"] == "item.end"}) == 2  # both workers took items


def test_an_attempt_whose_process_dies_is_retried_on_a_worker_that_lives(tmp_path, own_scheduler):
    marks = tmp_path / "marks"
    marks.mkdir()
    code = ("x: int\nimport os, pathlib, signal\n"
            f"mark = pathlib.Path({str(marks)!r}, str(x))\n"
            "if x == 1 and not mark.exists():\n    mark.touch()\n    os.kill(os.getpid(), signal.SIGKILL)\n"
            "result: int = x * 10")
    result, events = run(code_batch(code, [0, 1, 2], retries=2), tmp_path, own_scheduler)
    assert [r["result"] for r in result.store["work"]["results"]] == [0, 10, 20]
    first = [e for e in events if e["kind"] == "attempt.end" and e["path"] == "flow.work.iteration_1"]
    assert [e["status"] for e in first] == ["error", "ok"]
    assert first[0]["error"]["type"] == "WorkerDied"
    assert first[0]["error"]["message"].startswith("the worker process died while running this (exit code -9")
    with distributed.Client(own_scheduler, timeout=10) as client:
        assert len(client.scheduler_info()["workers"]) == 2  # the Dask worker itself lives on


def test_a_cluster_that_is_not_there_fails_the_items_with_a_clear_message(tmp_path, monkeypatch):
    monkeypatch.setattr(cluster_mod, "CONNECT_TIMEOUT", 1)
    result, events = run(code_batch(SQUARE, [1, 2]), tmp_path, "tcp://127.0.0.1:9")
    assert result.store["work"]["error_count"] == 2
    ends = [e for e in events if e["kind"] == "item.end"]
    assert len(ends) == 2 and all(e["error"]["type"] == "ClusterError" for e in ends)
    assert all("cannot reach the Dask scheduler at tcp://127.0.0.1:9" in e["error"]["message"]
               for e in ends)


# --- real worker processes ----------------------------------------------------------------------

# the worker (the parent of the process that runs the attempt) dies a moment after the item
# started, so that the run has heard of the start
# (a worker that dies before that notice arrives only had the item queued: it is submitted
# again without using up an attempt, and there is no WorkerLost to see)
KILL_ONCE = ("x: int\nimport os, pathlib, signal, time\n"
             "mark = pathlib.Path({marks!r}, str(x))\n"
             "if x == 1 and not mark.exists():\n"
             "    mark.touch()\n"
             "    time.sleep(1.0)\n"
             "    os.kill(os.getppid(), signal.SIGKILL)\n"
             "result: int = x * 10")
KILL_ALWAYS = ("x: int\nimport os, signal\nif x == 1:\n    os.kill(os.getppid(), signal.SIGKILL)\n"
               "result: int = x * 10")


@pytest.mark.slow
def test_a_worker_killed_mid_item_is_retried_then_recorded_as_worker_lost(tmp_path):
    """The run's own local cluster (real worker processes): a worker dies under item 1."""
    marks = tmp_path / "marks"
    marks.mkdir()
    t0 = time.monotonic()
    result, events = run(code_batch(KILL_ONCE.format(marks=str(marks)), [0, 1, 2], retries=2), tmp_path,
                         "local", "retried.json")
    assert result.status == "ok"
    assert [r["result"] for r in result.store["work"]["results"]] == [0, 10, 20]
    first = [e for e in events if e["kind"] == "attempt.end" and e["path"] == "flow.work.iteration_1"]
    assert [e["status"] for e in first] == ["error", "ok"]
    assert first[0]["error"]["type"] == "WorkerLost"
    assert first[0]["error"]["message"].startswith("worker lost: the Dask worker tcp://")
    assert first[0]["will_retry"] is True

    # items only queued on the worker that dies are submitted again without using up an
    # attempt; an item that ended there just before (its end not sent yet) may be lost with
    # it and is retried: the others end ok, or (rarely, twice unlucky) worker lost
    result, events = run(code_batch(KILL_ALWAYS, list(range(10)), retries=2, max_concurrent=10), tmp_path,
                         "local", "lost.json")
    end = next(e for e in events if e["kind"] == "item.end" and e["index"] == 1)
    assert end["status"] == "error" and end["attempts"] == 2
    assert end["error"]["type"] == "WorkerLost" and "worker lost" in end["error"]["message"]
    others = [e for e in events if e["kind"] == "item.end" and e["index"] != 1]
    assert len(others) == 9 and sum(e["status"] == "ok" for e in others) >= 7
    assert all(e["error"]["type"] == "WorkerLost" for e in others if e["status"] != "ok")
    assert time.monotonic() - t0 < 60  # never a hang


FLOW_SLEEPS = {"ir_version": "0.1.0", "nodes": [
    {"id": "work", "type": "code", "executor": "cluster",
     "batch": {"items": list(range(6)), "parallel": True, "max_concurrent": 6},
     "params": {"inputs": {"x": "${item}"},
                "code": "x: int\nimport time\ntime.sleep(0.4 if x < 2 else 30)\nresult: int = x"}}]}


def children_of(pid: int) -> set[int]:
    """The processes whose parent is ``pid`` (Linux /proc)."""
    found = set()
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            if int(stat.rpartition(")")[2].split()[1]) == pid:
                found.add(int(entry.name))
    return found


@pytest.mark.slow
@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")
def test_ctrl_c_on_a_local_cluster_run_writes_the_footer_and_ends_the_workers(tmp_path):
    flow = write_flow(tmp_path, FLOW_SLEEPS)
    trace = tmp_path / "t.json"
    env = {k: v for k, v in os.environ.items() if k != ENV}
    proc = subprocess.Popen([sys.executable, "-m", "pflow_tui", "run", str(flow), "--trace", str(trace),
                             "--cluster", "local"], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            env=env, cwd=tmp_path, start_new_session=True)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:  # until the two short items ended (workers are up)
        time.sleep(0.2)
        if trace.exists() and trace.read_text().count('"kind":"item.end"') >= 2:
            break
    workers = children_of(proc.pid)
    assert workers  # the local cluster's worker processes
    os.killpg(proc.pid, 2)  # Ctrl-C: the whole foreground process group, as a terminal does
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err.decode()
    footer = json.loads(trace.read_text())
    assert footer["status"] == "interrupted"
    assert "Traceback" not in err.decode() and "KeyboardInterrupt" not in err.decode()
    time.sleep(1)
    assert not any(Path(f"/proc/{pid}").exists() and "Z" not in Path(f"/proc/{pid}/stat").read_text()
                   for pid in workers)


@pytest.mark.slow
def test_a_scheduler_and_workers_started_with_the_dask_commands(tmp_path):
    """As a user runs them: `dask scheduler`, `dask worker ADDRESS`, `pflow-tui run --cluster`."""
    dask = Path(sys.executable).with_name("dask")
    if not dask.exists():
        pytest.skip("the dask command is not installed next to this Python")
    scheduler_file = tmp_path / "scheduler.json"
    procs = [subprocess.Popen([str(dask), "scheduler", "--port", "0", "--dashboard-address", ":0",
                               "--scheduler-file", str(scheduler_file)],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, cwd=tmp_path)]
    try:
        deadline = time.monotonic() + 60
        while not scheduler_file.exists() and time.monotonic() < deadline:
            time.sleep(0.1)
        address = json.loads(scheduler_file.read_text())["address"]
        procs.append(subprocess.Popen([str(dask), "worker", address, "--nworkers", "2", "--nthreads", "1",
                                       "--dashboard-address", ":0"], stdout=subprocess.DEVNULL,
                                      stderr=subprocess.DEVNULL, cwd=tmp_path))
        with distributed.Client(address, timeout=30) as client:
            client.wait_for_workers(2, timeout=60)
            workers = set(client.scheduler_info()["workers"])
        flow = write_flow(tmp_path, code_batch(SQUARE, [1, 2, 3, 4, -1]))
        trace = tmp_path / "t.json"
        env = {k: v for k, v in os.environ.items() if k != ENV}
        done = subprocess.run([sys.executable, "-m", "pflow_tui", "run", str(flow), "--trace", str(trace),
                               "--cluster", address], capture_output=True, env=env, cwd=tmp_path, timeout=120)
        assert done.returncode == 0, done.stderr.decode()
        doc = json.loads(trace.read_text())
        assert [r and r.get("result") for r in doc["store"]["work"]["results"]] == [1, 4, 9, 16, None]
        ran_on = {e["worker"] for e in doc["events"] if e["kind"] == "item.end"}
        assert ran_on <= workers and ran_on
        failed = next(e for e in doc["events"] if e["kind"] == "item.end" and e["status"] == "error")
        assert failed["error"]["type"] == "ValueError" and "raise ValueError" in failed["error"]["traceback"]
    finally:
        for proc in reversed(procs):
            proc.terminate()
        for proc in procs:
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                proc.kill()


def test_a_rerun_of_a_cluster_run_submits_only_what_failed(tmp_path, scheduler, monkeypatch):
    from pflow_tui.engine.trace.rerun import rerun_flow

    fixed = tmp_path / "fixed"
    code = (f"x: int\nimport pathlib\nif x == 2 and not pathlib.Path({str(fixed)!r}).exists():\n"
            "    raise RuntimeError('not yet')\nresult: int = x * 3")
    first, _ = run(code_batch(code, [0, 1, 2, 3]), tmp_path, scheduler, "first.json")
    assert first.store["work"]["error_count"] == 1
    fixed.touch()
    monkeypatch.setenv(ENV, scheduler)
    events: list[dict[str, Any]] = []
    again = rerun_flow(tmp_path / "first.json", trace=tmp_path / "again.json", sinks=[events.append])
    assert again.status == "ok"
    assert [r["result"] for r in again.store["work"]["results"]] == [0, 3, 6, 9]
    submitted = [e["path"] for e in events if e["kind"] == "wait.start"]
    assert submitted == ["flow.work.iteration_2"]
    cached = sorted(e["index"] for e in events if e["kind"] == "item.end" and e.get("cached"))
    assert cached == [0, 1, 3]


def test_rerun_cluster_option_sends_the_failed_items_to_that_cluster(tmp_path, scheduler, monkeypatch,
                                                                       capsys):
    fixed = tmp_path / "fixed"
    code = (f"x: int\nimport pathlib\nif x == 1 and not pathlib.Path({str(fixed)!r}).exists():\n"
            "    raise RuntimeError('not yet')\nresult: int = x * 3")
    first, _ = run(code_batch(code, [0, 1, 2]), tmp_path, scheduler, "first.json")
    assert first.store["work"]["error_count"] == 1
    fixed.touch()
    monkeypatch.setenv(ENV, "tcp://127.0.0.1:9")  # what the option overrides: nothing listens there
    again = tmp_path / "again.json"
    try:
        code_ = main(["rerun", str(tmp_path / "first.json"), "--trace", str(again), "--cluster", scheduler])
    finally:
        os.environ.pop(ENV, None)
    assert code_ == 0, capsys.readouterr().err
    events = json.loads(again.read_text())["events"]
    waits = [e for e in events if e["kind"] == "wait.start"]
    assert [(w["path"], w["limit"]) for w in waits] == [("flow.work.iteration_1", f"cluster {scheduler}")]
    ends = [e for e in events if e["kind"] == "item.end"]
    assert sorted((e["index"], e["status"], bool(e.get("cached"))) for e in ends) == [
        (0, "ok", True), (1, "ok", False), (2, "ok", True)]


def test_rerun_help_lists_cluster_and_a_bad_value_is_bad_input(tmp_path, capsys):
    assert main(["rerun", "--help"]) == 0
    assert "--cluster tcp://HOST:PORT|local" in capsys.readouterr().out
    trace = tmp_path / "t.json"
    trace.write_text("{}")
    assert main(["rerun", str(trace), "--cluster", "my-laptop"]) == 2
    err = capsys.readouterr().err
    assert "Invalid value for '--cluster'" in err and "is not a cluster" in err
    assert "Traceback" not in err
    os.environ.pop(ENV, None)


def test_stepping_holds_items_before_they_are_submitted(tmp_path, scheduler):
    from pflow_tui.engine.run.gate import Gate

    gate = Gate(paused=True)
    events: list[dict[str, Any]] = []
    results: list[Any] = []
    spec = build_flow(code_batch(SQUARE, [1, 2, 3, 4], max_concurrent=2), base_dir=tmp_path)
    thread = threading.Thread(target=lambda: results.append(
        run_flow(spec, {}, trace=tmp_path / "trace.json", sinks=[events.append], gate=gate,
                 cluster=scheduler)))
    thread.start()

    def until(what, timeout: float = 20) -> None:
        deadline = time.monotonic() + timeout
        while not what():
            assert time.monotonic() < deadline, "timed out"
            time.sleep(0.01)

    def count(kind: str) -> int:
        return sum(1 for e in list(events) if e["kind"] == kind)

    until(lambda: gate.waiting())
    gate.step()  # the node starts; its items wait at the gate
    until(lambda: "flow.work.iteration_0" in gate.waiting())
    time.sleep(0.3)
    assert count("wait.start") == 0  # nothing submitted while paused
    gate.step()  # one item
    until(lambda: count("item.end") == 1)
    time.sleep(0.3)
    assert count("wait.start") == 1
    gate.resume()
    thread.join(30)
    assert results and results[0].status == "ok" and count("wait.start") == 4
