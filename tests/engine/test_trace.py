"""Trace files: schema, round trip, values JSON cannot hold, crash safety, bad files."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any

import jsonschema
import orjson
import pytest

from pflow_tui.engine.ir.load import build_flow, normalize
from pflow_tui.engine.nodes.base import NodeType, RunContext
from pflow_tui.engine.registry import registry
from pflow_tui.engine.run.executor import RunResult, run_flow
from pflow_tui.engine.run.inputs import prepare_inputs
from pflow_tui.engine.trace import events as ev
from pflow_tui.engine.trace.writer import (
    DEFAULT_DIR,
    FLUSH_EVERY,
    FORMAT,
    TraceError,
    TraceWriter,
    default_trace_path,
    parse_trace,
    read_trace,
    trace_schema,
)


@pytest.fixture(autouse=True)
def _in_tmp(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Every test runs in its own directory: no .pflow-tui/ is left in the repo."""
    monkeypatch.chdir(tmp_path)


@pytest.fixture(scope="module")
def validator() -> jsonschema.Draft202012Validator:
    schema = trace_schema()
    jsonschema.Draft202012Validator.check_schema(schema)
    return jsonschema.Draft202012Validator(
        schema, format_checker=jsonschema.Draft202012Validator.FORMAT_CHECKER)


def assert_valid(validator: jsonschema.Draft202012Validator, doc: Any) -> None:
    errors = sorted(validator.iter_errors(doc), key=lambda e: list(e.absolute_path))
    assert not errors, "\n".join(
        f"{e.json_path}: {e.message[:300]}" for e in errors[:10])


# --------------------------------------------------------------------------- flows


class Flaky:
    """A node type whose first ``fails`` attempts raise (no wait between attempts)."""

    def __init__(self, fails: int) -> None:
        self.fails = fails

    def run(self, params: dict[str, Any], ctx: RunContext) -> dict[str, Any]:
        if ctx.attempt <= self.fails:
            raise ConnectionError(f"flaky attempt {ctx.attempt}")
        return {"value": params.get("value"), "attempt": ctx.attempt}

    def node_type(self) -> NodeType:
        return NodeType("flaky", self.run, max_retries=4, wait=0.0)


def _weird(params: dict[str, Any], ctx: RunContext) -> dict[str, Any]:
    cyclic: list[Any] = []
    cyclic.append(cyclic)
    return {"obj": object(), "tags": {"a"}, "big": 2**70, "by_int": {1: "one"},
            "by_tuple": {(1, 2): "pair"}, "cyclic": cyclic, "text": "bad \ud800 text"}


WEIRD = NodeType("weird", _weird)
REGISTRY = {**registry(), "flaky": Flaky(2).node_type(), "weird": WEIRD}

OK_FLOW = {
    "name": "okflow",
    "inputs": {"prefix": {"type": "string", "required": False, "default": "n"}},
    "nodes": [
        {"id": "gen", "type": "shell", "params": {"command": "echo '[1, 2, 3, 4]'"}},
        {"id": "square", "type": "shell",
         "params": {"command": "echo ${prefix}$(( ${item} * ${item} ))"},
         "batch": {"items": "${gen.stdout}"}},
        {"id": "say", "type": "echo", "params": {"message": "done ${square.count}"}},
    ],
    "edges": [{"from": "gen", "to": "square"}, {"from": "square", "to": "say"}],
    "outputs": {"said": {"source": "${say.echo}"}},
}

PARALLEL_CONTINUE = {
    "name": "parflow",
    "nodes": [
        {"id": "check", "type": "shell", "params": {"command": "test ${item} -ne 3 && echo ok ${item}"},
         "batch": {"items": [1, 2, 3, 4, 5, 6], "parallel": True, "max_concurrent": 3,
                   "error_handling": "continue"}},
    ],
}

RETRIES = {
    "name": "retryflow",
    "nodes": [
        # fail_rate 0.5 is deterministic per (prompt, attempt): these items need 2, 3, 4, 5, 3
        # and 1 attempts
        {"id": "ask", "type": "llm",
         "params": {"prompt": "q ${item}", "model": "offline", "fail_rate": 0.5},
         "batch": {"items": [0, 1, 2, 3, 4, 5], "max_retries": 5, "retry_wait": 0,
                   "error_handling": "continue"}},
        {"id": "single", "type": "flaky", "params": {"value": "${ask.success_count}"}},
    ],
    "edges": [{"from": "ask", "to": "single"}],
}

FAIL_FAST_PARALLEL = {
    "name": "ffflow",
    "nodes": [
        # item 0 has no prompt: it fails at once, and the others, waiting, are cancelled
        {"id": "work", "type": "llm", "params": {"prompt": "${item}", "model": "offline", "latency": 5},
         "batch": {"items": ["", "b", "c"], "parallel": True, "max_concurrent": 3, "max_retries": 1}},
    ],
}

TEMPLATE_FAILURES = {
    "name": "tplflow",
    "nodes": [
        {"id": "m", "type": "echo", "params": {"message": "${item.name}"},
         "batch": {"items": [1, 2], "error_handling": "continue"}},
        {"id": "bad", "type": "echo", "params": {"message": "x"}, "batch": {"items": "${m.count}"}},
    ],
    "edges": [{"from": "m", "to": "bad"}],
}

LOOP = {
    "name": "loopflow",
    "max_visits": 3,
    "nodes": [
        {"id": "a", "type": "echo", "params": {"message": "a"}},
        {"id": "b", "type": "shell", "params": {"command": "exit 1"}},
    ],
    "edges": [{"from": "a", "to": "b"}, {"from": "b", "to": "a", "action": "error"}],
}

WEIRD_VALUES = {"name": "weirdflow", "nodes": [{"id": "w", "type": "weird"}]}

FLOWS = {
    "ok": (OK_FLOW, "ok"),
    "parallel_continue": (PARALLEL_CONTINUE, "ok"),
    "retries": (RETRIES, "ok"),
    "fail_fast_parallel": (FAIL_FAST_PARALLEL, "failed"),
    "template_failures": (TEMPLATE_FAILURES, "failed"),
    "loop": (LOOP, "failed"),
    "weird_values": (WEIRD_VALUES, "ok"),
}


def run_doc(doc: dict[str, Any], path: Path | None = None) -> tuple[RunResult, Path]:
    spec = build_flow(doc, registry=REGISTRY)
    result = run_flow(spec, prepare_inputs(spec, {}),
                      trace=path or default_trace_path(spec.name, Path.cwd()), registry=REGISTRY)
    assert result.trace_path is not None
    return result, result.trace_path


# --------------------------------------------------------------------------- checks


def check_seq_and_time(events: list[dict[str, Any]]) -> None:
    assert [e["seq"] for e in events] == list(range(1, len(events) + 1))
    times = [e["t"] for e in events]
    assert times == sorted(times), "t decreases along seq"


def unmatched(events: list[dict[str, Any]]) -> list[str]:
    """Start events without an end (same kind family and path) and ends without a start."""
    open_: Counter[tuple[str, str]] = Counter()
    problems = []
    for e in events:
        family, _, phase = e["kind"].rpartition(".")
        if phase == "start":
            open_[(family, e["path"])] += 1
        elif phase == "end":
            if open_[(family, e["path"])] == 0:
                problems.append(f"{e['kind']} without start: {e['path']} (seq {e['seq']})")
            else:
                open_[(family, e["path"])] -= 1
    problems += [f"{family}.start without end: {path}" for (family, path), n in open_.items() if n]
    return problems


def check_items(events: list[dict[str, Any]], *, all_run: bool) -> None:
    """Item events are addressed by index; with ``all_run``, every item of a batch ends."""
    for start in (e for e in events if e["kind"] == ev.NODE_START and "batch" in e):
        prefix = start["path"] + ".iteration_"
        starts = [e for e in events if e["kind"] == ev.ITEM_START and e["path"].startswith(prefix)]
        ends = [e for e in events if e["kind"] == ev.ITEM_END and e["path"].startswith(prefix)]
        for e in starts + ends:
            assert e["path"] == f"{prefix}{e['index']}"
        for e in ends:
            if e["status"] in ("ok", "error"):
                assert isinstance(e["outputs"], dict)
        if all_run:
            assert len(ends) == start["batch"]["count"]
            assert sorted(e["index"] for e in ends) == list(range(start["batch"]["count"]))


# --------------------------------------------------------------------------- schema


def test_schema_is_valid_and_matches_the_event_module() -> None:
    schema = trace_schema()
    jsonschema.Draft202012Validator.check_schema(schema)
    assert set(schema["$defs"]["event"]["properties"]["kind"]["enum"]) == set(ev.KINDS)
    assert tuple(schema["$defs"]["end_status"]["enum"]) == ev.STATUSES
    for kind in ev.KINDS:
        assert kind in schema["$defs"], f"no per-kind schema for {kind}"
    assert trace_schema() is not trace_schema()  # a fresh copy: callers may change theirs


def test_schema_rejects_an_end_event_without_status(validator) -> None:
    _, path = run_doc(OK_FLOW)
    doc = orjson.loads(path.read_bytes())
    end = next(e for e in doc["events"] if e["kind"] == ev.NODE_END)
    del end["status"]
    assert not validator.is_valid(doc)
    end["status"] = "finished"
    assert not validator.is_valid(doc)


# --------------------------------------------------------------------------- round trip


@pytest.mark.parametrize("name", list(FLOWS))
def test_round_trip(name: str, validator) -> None:
    doc, status = FLOWS[name]
    result, path = run_doc(doc)
    assert result.status == status
    data = path.read_bytes()
    plain = orjson.loads(data)  # a finished trace is plain JSON
    assert_valid(validator, plain)
    trace = read_trace(path)
    assert not trace.truncated
    assert trace.status == plain["status"] == status
    assert trace.events == plain["events"]
    assert trace.outputs == plain["outputs"]
    assert trace.store == plain["store"]
    assert trace.header["format"] == FORMAT
    assert trace.flow == plain["flow"] == normalize(doc)
    assert trace.header["inputs"] == plain["inputs"]
    assert parse_trace(data).events == trace.events
    # what the run returned is what the trace holds
    assert orjson.loads(orjson.dumps(result.outputs, option=orjson.OPT_NON_STR_KEYS,
                                     default=repr)) == trace.outputs
    assert trace.events[0]["kind"] == ev.RUN_START
    assert trace.events[-1]["kind"] == ev.RUN_END
    check_seq_and_time(trace.events)
    assert unmatched(trace.events) == []
    check_items(trace.events, all_run=name != "fail_fast_parallel")


def test_ok_flow_events_and_store() -> None:
    _, path = run_doc(OK_FLOW)
    trace = read_trace(path)
    assert trace.header["inputs"] == {"prefix": "n"}
    assert trace.outputs == {"said": "done 4"}
    assert [r["stdout"] for r in trace.store["square"]["results"]] == ["n1", "n4", "n9", "n16"]
    items = [e for e in trace.events if e["kind"] == ev.ITEM_START]
    assert [(e["path"], e["index"], e["item"]) for e in items] == [
        (f"okflow.square.iteration_{i}", i, i + 1) for i in range(4)]
    assert items[2]["params"]["command"] == "echo n$(( 3 * 3 ))"
    ends = [e for e in trace.events if e["kind"] == ev.ITEM_END]
    assert [e["outputs"]["stdout"] for e in ends] == ["n1", "n4", "n9", "n16"]
    node_ends = {e["node"]: e for e in trace.events if e["kind"] == ev.NODE_END}
    assert node_ends["gen"]["outputs"]["stdout"] == "[1, 2, 3, 4]"
    assert node_ends["square"]["progress"] == {"done": 4, "failed": 0, "total": 4}
    writes = [(e["path"], e["key"]) for e in trace.events if e["kind"] == ev.STORE_WRITE]
    assert ("okflow", "prefix") in writes and ("okflow.say", "say") in writes
    assert ("okflow", "said") in writes


def test_parallel_continue_records_the_failed_item() -> None:
    _, path = run_doc(PARALLEL_CONTINUE)
    trace = read_trace(path)
    ends = {e["index"]: e for e in trace.events if e["kind"] == ev.ITEM_END}
    assert {i: e["status"] for i, e in ends.items()} == {
        0: "ok", 1: "ok", 2: "error", 3: "ok", 4: "ok", 5: "ok"}
    failed = ends[2]
    assert failed["error"]["message"] == "Command failed with exit code 1"
    assert failed["error"]["type"]
    assert failed["outputs"]["exit_code"] == 1
    node_end = next(e for e in trace.events if e["kind"] == ev.NODE_END)
    assert node_end["status"] == "ok"
    assert node_end["progress"] == {"done": 5, "failed": 1, "total": 6}
    assert trace.store["check"]["error_count"] == 1


def test_retries_have_attempt_events() -> None:
    _, path = run_doc(RETRIES)
    trace = read_trace(path)
    item_ends = {e["index"]: e for e in trace.events if e["kind"] == ev.ITEM_END}
    assert {i: (e["status"], e["attempts"]) for i, e in item_ends.items()} == {
        0: ("ok", 2), 1: ("ok", 3), 2: ("ok", 4), 3: ("ok", 5), 4: ("ok", 3), 5: ("ok", 1)}
    attempts = [e for e in trace.events
                if e["kind"].startswith("attempt.") and e["path"] == "retryflow.ask.iteration_1"]
    assert [(e["kind"], e["attempt"], e.get("status")) for e in attempts] == [
        ("attempt.start", 1, None), ("attempt.end", 1, "error"),
        ("attempt.start", 2, None), ("attempt.end", 2, "error"),
        ("attempt.start", 3, None), ("attempt.end", 3, "ok")]
    failed = attempts[1]
    assert failed["error"]["type"] == "RuntimeError"
    assert "Simulated offline LLM failure" in failed["error"]["message"]
    assert "Traceback (most recent call last)" in failed["error"]["traceback"]
    assert failed["will_retry"] is True
    # a single (non-batch) node retries on its own path
    single = [e for e in trace.events if e["path"] == "retryflow.single"]
    assert [(e["kind"], e.get("status")) for e in single if e["kind"].startswith("attempt")] == [
        ("attempt.start", None), ("attempt.end", "error"),
        ("attempt.start", None), ("attempt.end", "error"),
        ("attempt.start", None), ("attempt.end", "ok")]
    end = next(e for e in single if e["kind"] == ev.NODE_END)
    assert (end["status"], end["attempts"], end["outputs"]) == ("ok", 3, {"value": 6, "attempt": 3})


def test_failed_runs_carry_errors() -> None:
    _, path = run_doc(FAIL_FAST_PARALLEL)
    trace = read_trace(path)
    assert trace.status == "failed" and trace.footer["error"]["type"] == "BatchItemError"
    ends = {e["index"]: e["status"] for e in trace.events if e["kind"] == ev.ITEM_END}
    assert ends == {0: "error", 1: "cancelled", 2: "cancelled"}
    assert "requires 'prompt'" in trace.footer["error"]["message"]
    assert trace.events[-1]["status"] == "error"

    _, path = run_doc(LOOP)
    trace = read_trace(path)
    assert [e["path"] for e in trace.events if e["kind"] == ev.NODE_START] == [
        "loopflow.a", "loopflow.b", "loopflow.a#2", "loopflow.b#2", "loopflow.a#3", "loopflow.b#3"]
    assert trace.footer["error"]["type"] == "FlowRuntimeError"
    assert "max_visits" in trace.events[-1]["error"]["message"]

    _, path = run_doc(TEMPLATE_FAILURES)
    trace = read_trace(path)
    item_ends = [e for e in trace.events if e["kind"] == ev.ITEM_END]
    assert [e["error"]["type"] for e in item_ends] == ["TemplateError", "TemplateError"]
    bad = next(e for e in trace.events if e["kind"] == ev.NODE_END and e["node"] == "bad")
    assert bad["status"] == "error" and "must resolve to a list" in bad["error"]["message"]


def test_cancelled_attempts_have_end_events() -> None:
    doc = {"name": "cancelflow", "nodes": [
        {"id": "ask", "type": "llm", "params": {"prompt": "${item}", "model": "offline", "latency": 0.3},
         "batch": {"items": ["", "a", "b"], "parallel": True, "max_retries": 2, "retry_wait": 0}}]}
    result, path = run_doc(doc)
    assert result.status == "failed"
    events = read_trace(path).events
    assert any(e["kind"] == ev.ITEM_END and e["status"] == "cancelled" for e in events)
    assert unmatched(events) == []


def test_default_trace_location() -> None:
    spec = build_flow(OK_FLOW, registry=REGISTRY)
    result = run_flow(spec, prepare_inputs(spec, {}), registry=REGISTRY)
    assert result.trace_path is not None
    assert result.trace_path.parent == Path.cwd() / DEFAULT_DIR
    assert result.trace_path.name.startswith("okflow-")
    assert read_trace(result.trace_path).status == "ok"


# --------------------------------------------------------------------------- unserialisable values


class BadRepr:
    def __repr__(self) -> str:
        raise RuntimeError("no repr for you")


def weird_values() -> dict[str, Any]:
    cyclic: list[Any] = [1]
    cyclic.append(cyclic)
    selfdict: dict[str, Any] = {"a": 1}
    selfdict["me"] = selfdict
    return {
        "object": object(),
        "set": {1, 2},
        "big": 2**70,
        "negbig": -(2**70),
        "int_keys": {1: "one", 2: "two"},
        "tuple_keys": {(1, 2): "pair"},
        "cyclic": cyclic,
        "selfdict": selfdict,
        "nested": {"inner": [{"deep": {3}}, 2**65]},
        "bad_repr": BadRepr(),
        "surrogate": "a\ud800b",
        "bytes": b"\xff\x00",
        "ok": {"list": [1, "x", None, 1.5, True]},
    }


def expected_weird(got: dict[str, Any]) -> None:
    assert got["object"].startswith("<object object at 0x")
    assert got["set"] == "{1, 2}"
    assert got["big"] == str(2**70)
    assert got["negbig"] == str(-(2**70))
    assert got["int_keys"] == {"1": "one", "2": "two"}
    assert got["tuple_keys"] == {"(1, 2)": "pair"}
    assert got["cyclic"] == "[1, [...]]"
    assert got["selfdict"] == "{'a': 1, 'me': {...}}"
    assert got["nested"] == {"inner": [{"deep": "{3}"}, str(2**65)]}
    assert isinstance(got["bad_repr"], str) and "BadRepr object at 0x" in got["bad_repr"]
    assert got["surrogate"] == "a\\ud800b"
    assert got["bytes"] == repr(b"\xff\x00")
    assert got["ok"] == {"list": [1, "x", None, 1.5, True]}


def test_writer_stores_unserialisable_values_as_reprs(validator, tmp_path: Path) -> None:
    path = tmp_path / "weird.json"
    values = weird_values()
    writer = TraceWriter(path, {"flow": {"nodes": []}, "inputs": {"odd": values["set"]}})
    writer.write({"seq": 1, "t": 0.0, "kind": ev.RUN_START, "path": "w", "flow": "w",
                  "inputs": {}, "source": "<flow>"})
    seq = 1
    for key, value in values.items():
        seq += 1
        writer.write({"seq": seq, "t": 0.001 * seq, "kind": ev.STORE_WRITE, "path": "w", "key": key,
                      "value": value})
    seq += 1
    writer.write({"seq": seq, "t": 0.1, "kind": ev.RUN_END, "path": "w", "status": "ok",
                  "duration": 0.1, "outputs": {"v": values["cyclic"]}})
    writer.finish("ok", outputs={"v": values["cyclic"]}, store=values, error=None)
    assert writer.closed
    plain = orjson.loads(path.read_bytes())
    assert_valid(validator, plain)
    json.loads(path.read_text("utf-8"))  # the standard library agrees it is JSON
    trace = read_trace(path)
    assert not trace.truncated and trace.status == "ok"
    assert trace.header["inputs"] == {"odd": "{1, 2}"}
    expected_weird({e["key"]: e["value"] for e in trace.events if e["kind"] == ev.STORE_WRITE})
    expected_weird(trace.store)
    assert trace.outputs == {"v": "[1, [...]]"}
    assert trace.events[-1]["outputs"] == {"v": "[1, [...]]"}


def test_writer_survives_a_value_whose_str_and_repr_fail(tmp_path: Path) -> None:
    class Hostile:
        def __repr__(self) -> str:
            raise ValueError("repr")

        def __str__(self) -> str:
            raise ValueError("str")

        def __hash__(self) -> int:
            return 1

    writer = TraceWriter(tmp_path / "h.json", {"flow": {"nodes": []}, "inputs": {}})
    writer.write({"seq": 1, "t": 0.0, "kind": ev.WARNING, "path": "h", "message": Hostile(),
                  "keyed": {Hostile(): Hostile()}})
    writer.finish("ok", outputs={}, store={"h": Hostile()}, error=None)
    trace = read_trace(tmp_path / "h.json")
    assert "Hostile object at 0x" in trace.events[0]["message"]
    assert "Hostile object at 0x" in trace.store["h"]


def test_a_node_returning_unserialisable_outputs_still_gives_a_valid_trace(validator) -> None:
    result, path = run_doc(WEIRD_VALUES)
    assert result.status == "ok"
    assert_valid(validator, orjson.loads(path.read_bytes()))
    trace = read_trace(path)
    out = trace.store["w"]
    assert out["obj"].startswith("<object object at")
    assert (out["tags"], out["big"], out["cyclic"], out["text"]) == (
        "{'a'}", str(2**70), "[[...]]", "bad \\ud800 text")
    assert (out["by_int"], out["by_tuple"]) == ({"1": "one"}, {"(1, 2)": "pair"})
    node_end = next(e for e in trace.events if e["kind"] == ev.NODE_END)
    assert node_end["outputs"] == out


def test_flush_policy_header_at_once_events_within_the_flush_interval(tmp_path: Path) -> None:
    path = tmp_path / "live.json"
    writer = TraceWriter(path, {"flow": {"nodes": []}, "inputs": {}})
    assert read_trace(path).events == []  # the header reached the OS at once
    writer.write({"seq": 1, "t": 0.0, "kind": ev.WARNING, "path": "f", "message": "one"})
    time.sleep(2 * FLUSH_EVERY + 0.1)  # a quiet spell: no further event arrives
    live = read_trace(path)
    assert [e["message"] for e in live.events] == ["one"]
    assert (live.status, live.truncated) == ("interrupted", True)
    writer.write({"seq": 2, "t": 0.3, "kind": ev.WARNING, "path": "f", "message": "two"})
    time.sleep(2 * FLUSH_EVERY + 0.1)
    assert [e["message"] for e in read_trace(path).events] == ["one", "two"]
    writer.finish("ok", outputs={}, store={}, error=None)
    assert read_trace(path).status == "ok"


def test_a_trace_with_no_events_reads_back() -> None:
    writer = TraceWriter("empty.json", {"flow": {"nodes": []}, "inputs": {}})
    writer.finish("ok", outputs={}, store={}, error=None)
    trace = read_trace("empty.json")
    assert (trace.events, trace.status, trace.truncated) == ([], "ok", False)


# --------------------------------------------------------------------------- crash safety

CHILD = """
import sys, orjson
from pflow_tui.engine.ir.load import build_flow
from pflow_tui.engine.run.executor import run_flow
run_flow(build_flow(orjson.loads(sys.argv[2])), {}, trace=sys.argv[1])
"""

SLOW_FLOW = {
    "name": "slowflow",
    "nodes": [
        {"id": "first", "type": "echo", "params": {"message": "go"}},
        {"id": "work", "type": "shell", "params": {"command": "sleep 0.05; echo ${item}"},
         "batch": {"items": list(range(300))}},
    ],
    "edges": [{"from": "first", "to": "work"}],
}


def complete_event_lines(data: bytes) -> int:
    """How many complete lines ``data`` has, its seal lines left out."""
    return data.count(b"\n") - data.count(b'"kind":"seal"')


def start_child(trace: Path, min_lines: int) -> subprocess.Popen[bytes]:
    """Run SLOW_FLOW in a child process until its trace has ``min_lines`` complete lines."""
    child = subprocess.Popen([sys.executable, "-c", CHILD, str(trace), json.dumps(SLOW_FLOW)],
                             stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        # the lines of events: a seal line (one per flush, so timing decides how many) is none
        if trace.exists() and complete_event_lines(trace.read_bytes()) >= min_lines:
            return child
        if child.poll() is not None:
            raise AssertionError(f"child ended early: {child.stderr.read().decode()}")  # type: ignore[union-attr]
        time.sleep(0.02)
    child.kill()
    child.wait()
    raise AssertionError(f"the trace never reached {min_lines} lines")


def test_kill_9_leaves_a_readable_prefix(tmp_path: Path) -> None:
    trace_path = tmp_path / "killed.json"
    child = start_child(trace_path, min_lines=25)
    child.send_signal(signal.SIGKILL)
    child.wait(timeout=30)
    assert child.returncode == -signal.SIGKILL
    trace = read_trace(trace_path)
    assert trace.truncated is True
    assert trace.status == "interrupted"
    assert trace.footer == {}
    assert len(trace.events) >= 24
    assert [e["seq"] for e in trace.events] == list(range(1, len(trace.events) + 1))
    assert trace.events[0]["kind"] == ev.RUN_START
    assert all(e["kind"] != ev.RUN_END for e in trace.events)
    assert trace.flow == normalize(SLOW_FLOW)
    assert trace.header["flow_name"] == "slowflow"
    # the events are the ones the run produced, complete
    items = [e for e in trace.events if e["kind"] == ev.ITEM_END]
    assert [e["outputs"]["stdout"] for e in items] == [str(i) for i in range(len(items))]
    assert parse_trace(trace_path.read_bytes()).events == trace.events


def test_ctrl_c_finishes_the_trace_as_interrupted(tmp_path: Path, validator) -> None:
    trace_path = tmp_path / "interrupted.json"
    child = start_child(trace_path, min_lines=15)
    child.send_signal(signal.SIGINT)
    _, stderr = child.communicate(timeout=30)
    assert child.returncode != 0
    assert b"KeyboardInterrupt" in stderr
    plain = orjson.loads(trace_path.read_bytes())
    assert_valid(validator, plain)
    trace = read_trace(trace_path)
    assert (trace.status, trace.truncated) == ("interrupted", False)
    assert trace.footer["error"]["type"] == "KeyboardInterrupt"
    assert len(trace.events) >= 14
    check_seq_and_time(trace.events)
    last = trace.events[-1]
    assert (last["kind"], last["status"]) == (ev.RUN_END, "cancelled")
    work_end = next(e for e in trace.events if e["kind"] == ev.NODE_END and e["node"] == "work")
    assert work_end["status"] == "cancelled"
    assert unmatched(trace.events) == []


def line_ends(data: bytes) -> tuple[int, list[int]]:
    """(length of the header line, end offset of each event's JSON) in a finished trace."""
    header_len = data.index(b"\n") + 1
    ends = []
    pos = header_len
    for line in data[header_len:].split(b"\n"):
        if line.startswith(b"],"):
            break
        if line:
            ends.append(pos + len(line.rstrip(b",")))
        pos += len(line) + 1
    return header_len, ends


def test_a_file_cut_anywhere_opens_with_a_prefix_of_the_events() -> None:
    _, path = run_doc(OK_FLOW)
    data = path.read_bytes()
    full = orjson.loads(data)
    header_len, ends = line_ends(data)
    assert len(ends) == len(full["events"])
    offsets = set(range(header_len, len(data) + 1, 7))
    for end in [*ends, header_len, len(data)]:
        offsets.update(range(end - 3, end + 4))  # around every line boundary, mid-line too
    offsets = {o for o in offsets if header_len <= o <= len(data)}
    for offset in sorted(offsets):
        trace = parse_trace(data[:offset])
        complete = sum(1 for end in ends if end <= offset)
        assert trace.events == full["events"][:complete], offset
        assert trace.header["flow"] == full["flow"]
        if offset >= len(data) - 1:  # only the final newline is missing
            assert (trace.truncated, trace.status) == (False, "ok")
        else:
            assert (trace.truncated, trace.status) == (True, "interrupted"), offset


def test_a_file_cut_inside_the_header_raises_trace_error() -> None:
    _, path = run_doc(OK_FLOW)
    data = path.read_bytes()
    header_len = data.index(b"\n") + 1
    for offset in (0, 1, 20, header_len // 2, header_len - 2, header_len - 1):
        with pytest.raises(TraceError):
            parse_trace(data[:offset])
    Path("cut.json").write_bytes(data[: header_len // 2])
    with pytest.raises(TraceError, match="cut short"):
        read_trace("cut.json")


def test_a_damaged_event_line_is_skipped_and_counted() -> None:
    _, path = run_doc(OK_FLOW)
    lines = path.read_bytes().split(b"\n")
    n = len(lines) - 3  # the header, the footer and the empty piece after the last newline
    lines[5] = b"\0" * len(lines[5])  # a block lost in a power failure
    trace = parse_trace(b"\n".join(lines))
    assert [e["seq"] for e in trace.events] == [1, 2, 3, 4, *range(6, n + 1)]
    assert trace.skipped == 1
    assert trace.status == "ok"  # the footer was written: the run itself finished


def test_a_reformatted_trace_still_opens() -> None:
    _, path = run_doc(PARALLEL_CONTINUE)
    plain = orjson.loads(path.read_bytes())
    Path("pretty.json").write_text(json.dumps(plain, indent=2))
    trace = read_trace("pretty.json")
    assert trace.events == plain["events"]
    assert (trace.status, trace.truncated, trace.store) == ("ok", False, plain["store"])
    assert trace.header["flow"] == plain["flow"] and "status" not in trace.header


# --------------------------------------------------------------------------- not a trace


@pytest.mark.parametrize(("content", "message"), [
    (b"", "empty"),
    (b"   \n", "empty"),
    (b'{"a": 1}', "not a pflow-tui trace"),
    (b"[1, 2, 3]\n", "not a pflow-tui trace"),
    (b'"pflow-tui-trace"', "not a pflow-tui trace"),
    (b'{"format": "something-else", "version": 1, "events": []}', "not a pflow-tui trace"),
    (b'{"format":"other","version":1,"events":[\n{"seq":1}\n],"status":"ok"}\n', "not a pflow-tui trace"),
    (bytes(range(256)) * 8, "binary"),
    (b"hello\nworld\n", "not a pflow-tui trace"),
    (b'{"format":"pflow-tui-trace","version":1,"flow":{"nodes":[',  "cut short"),
    (b'{"format":"pflow-tui-trace","version":99,"events":[\n{"seq":1}\n', "upgrade"),
    (b'{"format":"pflow-tui-trace","version":"1","events":[\n', "version"),
    (b'{"format":"pflow-tui-trace","version":1,"x":tru,"events":[\n', "header is damaged"),
])
def test_not_a_trace_raises_a_clear_trace_error(content: bytes, message: str) -> None:
    Path("thing.json").write_bytes(content)
    with pytest.raises(TraceError, match=message) as info:
        read_trace("thing.json")
    assert "thing.json" in str(info.value)


def test_missing_file_and_directory_raise_trace_error() -> None:
    with pytest.raises(TraceError, match="cannot read"):
        read_trace("nope.json")
    os.mkdir("adir")
    with pytest.raises(TraceError, match="cannot read"):
        read_trace("adir")


def test_the_default_trace_path_is_a_new_file_even_within_one_second(tmp_path):
    from pflow_tui.engine.trace.writer import default_trace_path

    first = default_trace_path("f", tmp_path)
    first.parent.mkdir(parents=True)
    first.write_text("{}")
    second = default_trace_path("f", tmp_path)
    second.write_text("{}")
    third = default_trace_path("f", tmp_path)
    assert len({first, second, third}) == 3 and not third.exists()
    assert first.parent == second.parent == third.parent == tmp_path / ".pflow-tui" / "traces"
