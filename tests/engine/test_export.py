"""Export: Chrome Trace Event JSON (Perfetto, chrome://tracing) and OTLP/JSON spans.

The OTLP output is checked against the reference: every line is parsed by protobuf's
``json_format`` into ``ExportTraceServiceRequest`` and ``TracesData`` of the
``opentelemetry-proto`` package. No Chrome Trace Event validator is usable offline (the
Perfetto trace processor is a binary downloaded at run time), so the Perfetto output is
checked against a JSON Schema written from the published Trace Event Format spec
(tests/engine/schemas/) plus the structural rules of Perfetto's JSON importer: async
``b``/``e`` pairs by (pid, cat, id2), nested like a stack in time order, with matching
names; every ``b`` ended.
"""

from __future__ import annotations

import base64
import datetime as dt
import json
import re
import threading
from collections import Counter, defaultdict
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import jsonschema
import orjson
import pytest
from google.protobuf import json_format
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.trace.v1.trace_pb2 import Status, TracesData

from pflow_tui.cli import main
from pflow_tui.engine.ir.load import build_flow, load_flow
from pflow_tui.engine.run.executor import run_flow
from pflow_tui.engine.run.inputs import prepare_inputs
from pflow_tui.engine.trace.export import ExportError, default_output, export_file, push_trace
from pflow_tui.engine.trace.export.otlp import otlp_lines, otlp_spans, span_id, trace_id
from pflow_tui.engine.trace.export.perfetto import trace_events
from pflow_tui.engine.trace.export.push import traces_url
from pflow_tui.engine.trace.writer import EVENTS_OPEN, FORMAT, read_trace

HERE = Path(__file__).parent
FIXTURES = HERE.parent / "app" / "fixtures"
SAMPLES = HERE.parent.parent / "sample_flows"
CHROME_SCHEMA = json.loads((HERE / "schemas" / "trace-event-format.schema.json").read_text())
CREATED = "2026-03-01T12:00:00.250000+00:00"
CREATED_NS = 1772366400_250000000
SPAN_STARTS = ("run.start", "node.start", "item.start", "branch.start")


@pytest.fixture(autouse=True)
def _in_tmp(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)


# --- a run with every kind of span ---------------------------------------------------------------

DEMO = {
    "name": "demo",
    "parallel_groups": {"pair": {}},
    "nodes": [
        {"id": "fan", "type": "echo", "params": {"message": "go"}},
        # two branches that run side by side
        {"id": "left", "type": "llm", "params": {"model": "offline", "latency": 0.05, "prompt": "L"}},
        {"id": "right", "type": "llm", "params": {"model": "offline", "latency": 0.05, "prompt": "R"}},
        {"id": "join", "type": "merge", "params": {"strategy": "by_branch"}},
        # a parallel batch, 2 at a time; echo fails on a message that is not a string (item 2)
        {"id": "square", "type": "echo", "params": {"message": "${item}"},
         "batch": {"items": ["a", "b", 7, "d", "e", "f"], "parallel": True, "max_concurrent": 2,
                   "error_handling": "continue"}},
        {"id": "steps", "type": "echo", "params": {"message": "step ${item}"},
         "batch": {"items": [1, 2, 3]}},  # sequential
        # retries: the offline LLM fails an attempt as a pure function of (prompt, attempt)
        {"id": "ask", "type": "llm", "params": {"model": "offline", "latency": 0, "fail_rate": 0.6,
                                                "prompt": "answer ${item}"},
         "batch": {"items": ["p", "q", "r", "s"], "parallel": True, "max_retries": 3,
                   "error_handling": "continue"}},
        # a pipeline: a nested flow per item
        {"id": "per", "type": "workflow",
         "batch": {"items": ["x", "y", "z"], "parallel": True, "max_concurrent": 2},
         "params": {"param_mapping": {"v": "${item}"}, "workflow_ir": {
             "name": "inner", "inputs": {"v": {"type": "string"}},
             "nodes": [{"id": "a", "type": "echo", "params": {"message": "${v}"}},
                       {"id": "b", "type": "echo", "params": {"message": "b"}}],
             "edges": [{"from": "a", "to": "b"}]}}},
    ],
    "edges": [
        {"from": "fan", "to": "left", "parallel_group": "pair"},
        {"from": "fan", "to": "right", "parallel_group": "pair"},
        {"from": "left", "to": "join"}, {"from": "right", "to": "join"},
        {"from": "join", "to": "square"}, {"from": "square", "to": "steps"},
        {"from": "steps", "to": "ask"}, {"from": "ask", "to": "per"},
    ],
}
# run 1; nodes: fan left right join square steps ask per, and a, b per item of per (6)
DEMO_COUNTS = {"run": 1, "node": 14, "branch": 2, "item": 6 + 3 + 4 + 3}


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("demo") / "demo.json"
    run_flow(build_flow(DEMO), {}, trace=path)
    return path


def write_trace(path: Path, events: list[dict[str, Any]], *, flow: str = "demo", footer: bool = True,
                created: str = CREATED) -> Path:
    """A trace file in the engine's layout: header line, one event per line, footer line."""
    head = {"format": FORMAT, "version": 1, "created": created, "flow_name": flow, "source": "<test>",
            "flow": {"name": flow, "nodes": []}, "inputs": {}, "pid": 4242, "python": "3.11.7"}
    lines = [orjson.dumps(head)[:-1] + EVENTS_OPEN.rstrip(b"\n")]
    lines.append(b",\n".join(orjson.dumps(e) for e in events))
    text = b"\n".join(lines)
    if footer:
        foot = {"status": "ok", "finished": created, "outputs": {}, "store": {}, "error": None}
        text += b"\n]," + orjson.dumps(foot)[1:] + b"\n"
    path.write_bytes(text)
    return path


def fixture_trace(name: str, path: Path) -> Path:
    """A recorded run of tests/app/fixtures (times t = seq x 10 ms) as a trace file."""
    doc = json.loads((FIXTURES / f"{name}.events.json").read_text())
    return write_trace(path, doc["events"], flow=doc["flow_name"])


def trace_dict(path: Path) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    t = read_trace(path)
    return t.header, t.events


# --- checking a Chrome Trace Event document -------------------------------------------------------

def check_chrome_trace(doc: dict[str, Any]) -> dict[tuple[Any, ...], list[dict[str, Any]]]:
    """Validate against the schema and Perfetto's importer rules; returns the slices per
    track (pid, cat, id2): {name, ts, end, args (of b and e merged), depth}."""
    errors = sorted(jsonschema.Draft202012Validator(CHROME_SCHEMA).iter_errors(doc), key=str)
    assert not errors, "\n".join(f"{e.json_path}: {e.message}" for e in errors[:5])
    events = doc["traceEvents"]
    timed = [(e["ts"], i, e) for i, e in enumerate(events) if e["ph"] != "M"]
    timed.sort(key=lambda x: (x[0], x[1]))  # Perfetto sorts by ts (file order breaks ties)
    stacks: dict[tuple[Any, ...], list[dict[str, Any]]] = defaultdict(list)
    slices: dict[tuple[Any, ...], list[dict[str, Any]]] = defaultdict(list)
    for ts, _, e in timed:
        assert isinstance(e["pid"], int) and isinstance(e["tid"], int)
        if e["ph"] not in ("b", "e", "n"):
            continue
        track = (e["pid"], e["cat"], json.dumps(e.get("id2", e.get("id")), sort_keys=True))
        stack = stacks[track]
        if e["ph"] == "b":
            s = {"name": e["name"], "ts": ts, "end": None, "args": dict(e.get("args", {})),
                 "depth": len(stack)}
            stack.append(s)
            slices[track].append(s)
        elif e["ph"] == "e":
            assert stack, f"an end without a begin on {track}: {e}"
            top = stack.pop()
            assert top["name"] == e["name"], f"end of {e['name']!r} while {top['name']!r} is open"
            assert ts >= top["ts"]
            top["end"] = ts
            top["args"].update(e.get("args", {}))
    assert not any(stacks.values()), f"slices never ended: {dict(stacks)}"
    return slices


def by_path(slices: dict[tuple[Any, ...], list[dict[str, Any]]]) -> dict[str, tuple[Any, dict[str, Any]]]:
    """The (track, slice) of every span by path (attempts and waits left out)."""
    out = {}
    for track, items in slices.items():
        for s in items:
            if s["args"].get("kind") not in ("attempt", "wait"):
                assert s["args"]["path"] not in out
                out[s["args"]["path"]] = (track, s)
    return out


def assert_apart_when_overlapping(spans: dict[str, tuple[Any, dict[str, Any]]]) -> None:
    """Spans that run at the same time are on different tracks."""
    for a, (track_a, sa) in spans.items():
        for b, (track_b, sb) in spans.items():
            if a < b and sa["ts"] < sb["end"] and sb["ts"] < sa["end"]:
                assert track_a != track_b, (a, b)


def perfetto(trace: Path, tmp: Path) -> dict[str, Any]:
    out = tmp / "out.perfetto.json"
    export_file(trace, "perfetto", out)
    return json.loads(out.read_text())


# --- checking OTLP ---------------------------------------------------------------------------------

_IDS = ("traceId", "spanId", "parentSpanId")


def _ids_to_base64(value: Any) -> Any:
    """OTLP/JSON writes ids as hex; protobuf's JSON mapping reads bytes as base64."""
    if isinstance(value, dict):
        out = {}
        for k, v in value.items():
            if k in _IDS:
                assert re.fullmatch(r"[0-9a-f]{32}" if k == "traceId" else r"[0-9a-f]{16}", v), (k, v)
                out[k] = base64.b64encode(bytes.fromhex(v)).decode()
            else:
                out[k] = _ids_to_base64(v)
        return out
    if isinstance(value, list):
        return [_ids_to_base64(v) for v in value]
    return value


def _camel_keys(value: Any) -> None:
    if isinstance(value, dict):
        for k, v in value.items():
            assert "_" not in k, f"OTLP/JSON keys are lowerCamelCase: {k}"
            _camel_keys(v)
    elif isinstance(value, list):
        for v in value:
            _camel_keys(v)


def parse_otlp(text: bytes) -> list[dict[str, Any]]:
    """Every line parsed by the reference protos; returns the spans as plain dicts (proto ->
    dict, ids as hex, attributes as a dict)."""
    spans = []
    lines = text.split(b"\n")
    assert lines[-1] == b"" and all(lines[:-1]), "JSON Lines: one object per line, newline-ended"
    for line in lines[:-1]:
        assert len(line) < 1 << 20, "the otlpjsonfile receiver reads lines of up to 1 MiB"
        doc = json.loads(line)
        _camel_keys({k: v for k, v in doc.items()})
        converted = json.dumps(_ids_to_base64(doc))
        request = json_format.Parse(converted, ExportTraceServiceRequest())  # unknown keys fail
        data = json_format.Parse(converted, TracesData())
        assert data.SerializeToString() == request.SerializeToString()
        assert request.resource_spans
        services = [rs.resource for rs in request.resource_spans]
        assert len({r.SerializeToString() for r in services}) == len(services)  # one group each
        for rs in request.resource_spans:
            (ss,) = rs.scope_spans
            assert ss.scope.name == "pflow-tui"
            resource = {a.key: json_format.MessageToDict(a.value) for a in rs.resource.attributes}
            for span in ss.spans:
                assert len(span.trace_id) == 16 and len(span.span_id) == 8
                attrs = {a.key: next(iter(json_format.MessageToDict(a.value).values()))
                         for a in span.attributes}
                spans.append({
                    "trace_id": span.trace_id.hex(), "span_id": span.span_id.hex(),
                    "parent": span.parent_span_id.hex() or None, "name": span.name,
                    "start": span.start_time_unix_nano, "end": span.end_time_unix_nano,
                    "attrs": attrs, "status": span.status.code, "message": span.status.message,
                    "events": [(ev.name, ev.time_unix_nano,
                                {a.key: next(iter(json_format.MessageToDict(a.value).values()))
                                 for a in ev.attributes}) for ev in span.events],
                    "resource": resource,
                })
    return spans


def otlp(trace: Path, tmp: Path) -> list[dict[str, Any]]:
    out = tmp / "out.otlp.jsonl"
    export_file(trace, "otlp", out)
    return parse_otlp(out.read_bytes())


def path_parent(path: str) -> str | None:
    return path.rpartition(".")[0] or None


# --- OTLP ----------------------------------------------------------------------------------------

def test_otlp_one_span_per_run_node_branch_and_iteration(demo: Path, tmp_path: Path) -> None:
    spans = otlp(demo, tmp_path)
    kinds = Counter(s["attrs"]["pflow.kind"] for s in spans)
    assert kinds == DEMO_COUNTS
    assert len(spans) == sum(DEMO_COUNTS.values())
    assert len({s["trace_id"] for s in spans}) == 1  # one trace
    assert len({s["span_id"] for s in spans}) == len(spans)
    paths = {s["attrs"]["pflow.path"] for s in spans}
    assert {"demo", "demo.fan.branch_0", "demo.fan.branch_1.right", "demo.square.iteration_5",
            "demo.per.iteration_2.b"} <= paths


def test_otlp_parents_follow_the_path(demo: Path, tmp_path: Path) -> None:
    spans = otlp(demo, tmp_path)
    by_id = {s["span_id"]: s["attrs"]["pflow.path"] for s in spans}
    parents = {s["attrs"]["pflow.path"]: by_id.get(s["parent"]) if s["parent"] else None for s in spans}
    for path, parent in parents.items():
        assert parent == path_parent(path), path
    assert parents["demo.fan.branch_1.right"] == "demo.fan.branch_1"
    assert parents["demo.fan.branch_1"] == "demo.fan"
    assert parents["demo.per.iteration_2.a"] == "demo.per.iteration_2"
    assert parents["demo.square.iteration_4"] == "demo.square"
    assert [p for p, parent in parents.items() if parent is None] == ["demo"]


def test_otlp_failed_iteration_has_error_status_message_and_exception(demo: Path, tmp_path: Path) -> None:
    spans = {s["attrs"]["pflow.path"]: s for s in otlp(demo, tmp_path)}
    failed = spans["demo.square.iteration_2"]
    assert failed["name"] == "square iteration"
    assert failed["status"] == Status.STATUS_CODE_ERROR
    assert failed["message"] == "echo message must be a string, got int"
    assert failed["attrs"]["pflow.index"] == "2"  # int64 in JSON: a string
    assert failed["attrs"]["pflow.item"] == "7"
    assert failed["attrs"]["pflow.status"] == "error"
    assert failed["attrs"]["error.type"] == "TypeError"
    (exc,) = [e for e in failed["events"] if e[0] == "exception"]
    assert exc[2]["exception.type"] == "TypeError"
    assert exc[2]["exception.message"] == "echo message must be a string, got int"
    assert "Traceback" in exc[2]["exception.stacktrace"]
    ok = spans["demo.square.iteration_3"]
    assert ok["status"] == Status.STATUS_CODE_OK and ok["message"] == ""
    assert ok["attrs"]["pflow.item"] == '"d"' and ok["attrs"]["pflow.index"] == "3"
    batch = spans["demo.square"]
    assert batch["attrs"]["pflow.batch.max_concurrent"] == "2"
    assert batch["attrs"]["pflow.batch.parallel"] is True
    assert batch["attrs"]["pflow.progress.failed"] == "1"
    assert batch["status"] == Status.STATUS_CODE_OK  # error_handling continue


def test_otlp_attempts_are_span_events_matching_the_trace(demo: Path, tmp_path: Path) -> None:
    _, events = trace_dict(demo)
    attempts: dict[str, list[tuple[int, str]]] = defaultdict(list)
    for e in events:
        if e["kind"] == "attempt.end":
            attempts[e["path"]].append((e["attempt"], e["status"]))
    ended = {e["path"]: e for e in events if e["kind"] in ("item.end", "node.end")}
    assert any(len(a) > 1 for a in attempts.values()), "the flow should retry"
    spans = {s["attrs"]["pflow.path"]: s for s in otlp(demo, tmp_path)}
    for path, expected in attempts.items():
        got = [(int(a["pflow.attempt"]), a["pflow.status"]) for name, _, a in spans[path]["events"]
               if name == "attempt"]
        assert got == expected, path
        span = spans[path]
        assert span["attrs"]["pflow.attempts"] == str(ended[path]["attempts"])
        if ended[path]["status"] == "error":
            assert span["status"] == Status.STATUS_CODE_ERROR
            assert span["message"] == ended[path]["error"]["message"]


def test_otlp_times_are_created_plus_t(tmp_path: Path) -> None:
    trace = fixture_trace("sequential_batch", tmp_path / "t.json")
    _, events = trace_dict(trace)
    start = {e["path"]: e["t"] for e in events if e["kind"].endswith(".start")}
    end = {e["path"]: e["t"] for e in events if e["kind"].endswith(".end")}
    spans = otlp(trace, tmp_path)
    assert len(spans) == len(start)
    for s in spans:
        path = s["attrs"]["pflow.path"]
        assert s["start"] == CREATED_NS + round(start[path] * 1e9)
        assert s["end"] == CREATED_NS + round(end[path] * 1e9)
    created = dt.datetime.fromisoformat(CREATED)
    assert int(created.timestamp()) * 10**9 + created.microsecond * 1000 == CREATED_NS


def test_otlp_resource_names_the_flow_and_ids_are_stable(demo: Path, tmp_path: Path) -> None:
    spans = otlp(demo, tmp_path)
    header, _ = trace_dict(demo)
    resource = spans[0]["resource"]
    assert resource["service.name"] == {"stringValue": "demo"}
    assert resource["pflow.trace.status"] == {"stringValue": "ok"}
    assert resource["process.pid"] == {"intValue": str(header["pid"])}
    tid = trace_id(header)
    assert {s["trace_id"] for s in spans} == {tid}
    run = next(s for s in spans if s["attrs"]["pflow.kind"] == "run")
    assert run["span_id"] == span_id(tid, "demo")
    assert otlp(demo, tmp_path) == spans  # the same trace exports the same ids


def test_otlp_lines_split_and_each_is_a_whole_request(demo: Path) -> None:
    header, events = trace_dict(demo)
    spans = list(otlp_spans(header, events))
    lines = list(otlp_lines(header, spans, status="ok", truncated=False, line_bytes=3000))
    assert len(lines) > 3
    parsed = parse_otlp(b"".join(lines))
    assert [p["span_id"] for p in parsed] == [s["spanId"] for _, s in spans]
    one = list(otlp_lines(header, spans, status="ok", truncated=False))
    assert len(one) == 1  # a small run is one line: one JSON document
    assert list(otlp_lines(header, [], status="ok", truncated=False)) == [
        one[0].split(b',"spans":[')[0] + b',"spans":[]}]}]}\n']


# --- Perfetto ------------------------------------------------------------------------------------

def test_perfetto_is_valid_and_has_a_slice_per_span_and_attempt(demo: Path, tmp_path: Path) -> None:
    doc = perfetto(demo, tmp_path)
    slices = check_chrome_trace(doc)
    _, events = trace_dict(demo)
    kinds = Counter(s["args"]["kind"] for items in slices.values() for s in items)
    assert kinds == {**DEMO_COUNTS, "attempt": sum(e["kind"] == "attempt.start" for e in events)}
    meta = [e for e in doc["traceEvents"] if e["ph"] == "M"]
    assert {e["name"]: e["args"]["name"] for e in meta} == {"process_name": "pflow-tui: demo",
                                                             "thread_name": "demo"}
    assert doc["otherData"]["spans"]["item"] == DEMO_COUNTS["item"]
    assert "note" not in json.dumps(doc)  # no slice was cut: the events nest


@pytest.fixture(scope="module")
def queued(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The sample whose items wait for process slots (a wait span each)."""
    path = tmp_path_factory.mktemp("queued") / "t.json"
    spec = load_flow(SAMPLES / "cpu_and_limits.json")
    assert run_flow(spec, prepare_inputs(spec, {}), trace=path).status == "ok"
    return path


def expected_wait_names(starts: list[dict[str, Any]]) -> list[str]:
    return ["wait: a process" if e["on"] == "processes" else f"wait: rate limit {e['key']!r}"
            for e in starts]


def test_waits_are_slices_nested_in_their_item_in_perfetto(queued: Path, tmp_path: Path) -> None:
    _, events = trace_dict(queued)
    waits = [e for e in events if e["kind"] == "wait.start"]
    assert waits, "the sample queues items for process slots"
    slices = check_chrome_trace(perfetto(queued, tmp_path))
    found = [(key, s) for key, items in slices.items() for s in items if s["args"]["kind"] == "wait"]
    assert sorted(s["args"]["path"] for _, s in found) == sorted(e["path"] for e in waits)
    for key, wait in found:  # on its item's track, inside the item's slice
        owner = [s for s in slices[key] if s["args"]["path"] == wait["args"]["path"]
                 and s["args"]["kind"] in ("item", "node")]
        assert owner and owner[0]["ts"] <= wait["ts"] <= wait["end"] <= owner[0]["end"]
    assert sorted(s["name"] for _, s in found) == sorted(expected_wait_names(waits))


def test_waits_are_child_spans_of_their_item_in_otlp(queued: Path, tmp_path: Path) -> None:
    _, events = trace_dict(queued)
    ends = {e["path"]: e for e in events if e["kind"] == "wait.end"}
    spans = otlp(queued, tmp_path)
    by_id = {s["span_id"]: s for s in spans}
    waits = [s for s in spans if s["attrs"]["pflow.kind"] == "wait"]
    assert len(waits) == len(ends) and len(by_id) == len(spans)  # ids of their own
    for w in waits:
        owner = by_id[w["parent"]]
        assert owner["attrs"]["pflow.path"] == w["attrs"]["pflow.path"]
        assert owner["start"] <= w["start"] <= w["end"] <= owner["end"]
        duration = ends[w["attrs"]["pflow.path"]]["duration"]
        assert abs((w["end"] - w["start"]) / 1e9 - duration) < 1e-3
    starts = [e for e in events if e["kind"] == "wait.start"]
    assert sorted(w["name"] for w in waits) == sorted(expected_wait_names(starts))


def test_perfetto_ts_in_microseconds_from_the_events(tmp_path: Path) -> None:
    trace = fixture_trace("parallel_batch_failures", tmp_path / "t.json")
    _, events = trace_dict(trace)
    spans = by_path(check_chrome_trace(perfetto(trace, tmp_path)))
    for e in events:
        if e["kind"] in ("item.start", "node.start", "run.start"):
            assert spans[e["path"]][1]["ts"] == pytest.approx(e["t"] * 1e6)
        elif e["kind"] in ("item.end", "node.end", "run.end"):
            assert spans[e["path"]][1]["end"] == pytest.approx(e["t"] * 1e6)


def test_perfetto_parallel_items_on_separate_tracks_with_index_and_status(tmp_path: Path) -> None:
    trace = fixture_trace("parallel_batch_failures", tmp_path / "t.json")
    spans = by_path(check_chrome_trace(perfetto(trace, tmp_path)))
    items = {p: v for p, v in spans.items() if ".iteration_" in p}
    assert len(items) == 40
    tracks = {track for track, _ in items.values()}
    assert len(tracks) == 8  # max_concurrent 8: 8 lanes, reused
    run_track = spans["parallel_batch_failures"][0]
    assert run_track not in tracks
    assert spans["parallel_batch_failures.run-tasks"][0] == run_track  # nodes nest in the run
    assert_apart_when_overlapping(items)
    failed = sorted(s["args"]["index"] for _, s in items.values() if s["args"]["status"] == "error")
    assert failed == [3, 10, 17, 24, 31, 38]
    s = items["parallel_batch_failures.run-tasks.iteration_10"][1]
    assert s["name"] == "run-tasks[10]"
    assert s["args"]["error"]["type"] == "NodeError"
    assert "exit code 3" in s["args"]["error"]["message"]
    assert json.loads(s["args"]["item"]) == {"id": 10, "delay": 0.05}
    assert s["depth"] == 0


def test_perfetto_branches_nested_flows_sequential_items_and_attempts(demo: Path, tmp_path: Path) -> None:
    slices = check_chrome_trace(perfetto(demo, tmp_path))
    spans = by_path(slices)
    run_track = spans["demo"][0]
    branches = {p: spans[p] for p in ("demo.fan.branch_0", "demo.fan.branch_1")}
    (a, sa), (b, sb) = branches.values()
    assert sa["ts"] < sb["end"] and sb["ts"] < sa["end"]  # they overlap ...
    assert len({run_track, a, b}) == 3  # ... so each has a track of its own
    assert spans["demo.fan.branch_1.right"][0] == spans["demo.fan.branch_1"][0]  # nested in its branch
    assert spans["demo.fan.branch_1"][1]["name"] == "branch_1 (right)"
    # a sequential batch: its items nest in the node, on the run's track
    for i in range(3):
        track, s = spans[f"demo.steps.iteration_{i}"]
        assert track == run_track and s["depth"] == 2 and s["args"]["index"] == i
    # a pipeline: each item's nested nodes nest in the item
    for i in range(3):
        track, item = spans[f"demo.per.iteration_{i}"]
        assert track != run_track
        for node in ("a", "b"):
            t2, s = spans[f"demo.per.iteration_{i}.{node}"]
            assert t2 == track and s["depth"] == item["depth"] + 1
    pipeline = {p: spans[p] for p in (f"demo.per.iteration_{i}" for i in range(3))}
    assert_apart_when_overlapping(pipeline)
    assert len({track for track, _ in pipeline.values()}) <= 2  # max_concurrent 2
    # attempts nest in their item
    attempts = [(track, s) for track, items in slices.items() for s in items
                if s["args"]["kind"] == "attempt"]
    assert attempts
    for track, s in attempts:
        owner_track, owner = spans[s["args"]["path"]]
        assert track == owner_track and s["depth"] == owner["depth"] + 1
        assert owner["ts"] <= s["ts"] <= s["end"] <= owner["end"]


# --- traces cut short, damaged, re-formatted -------------------------------------------------------

def _cut(trace: Path, keep: int, out: Path) -> Path:
    """The trace as a crash leaves it: the header and the first ``keep`` event lines."""
    lines = trace.read_bytes().split(b"\n")
    out.write_bytes(b"\n".join(lines[: 1 + keep]) + b"\n")
    return out


def test_a_trace_cut_short_exports_unfinished_spans(demo: Path, tmp_path: Path) -> None:
    _, events = trace_dict(demo)
    keep = next(i for i, e in enumerate(events) if e["path"] == "demo.square.iteration_3") + 1
    cut = _cut(demo, keep, tmp_path / "cut.json")
    assert read_trace(cut).truncated
    last_t = events[keep - 1]["t"]
    spans = {s["attrs"]["pflow.path"]: s for s in otlp(cut, tmp_path)}
    open_paths = {"demo", "demo.square", "demo.square.iteration_3"}
    open_paths |= {e["path"] for e in events[:keep] if e["kind"] == "item.start"} - {
        e["path"] for e in events[:keep] if e["kind"] == "item.end"}
    unfinished = {p for p, s in spans.items() if s["attrs"]["pflow.status"] == "unfinished"}
    assert unfinished == open_paths
    run = spans["demo"]
    for path in unfinished:
        assert spans[path]["status"] == Status.STATUS_CODE_UNSET
        assert spans[path]["end"] - run["start"] == round(last_t * 1e9) - round(events[0]["t"] * 1e9)
    assert spans[next(iter(unfinished))]["resource"]["pflow.trace.truncated"] == {"boolValue": True}
    slices = by_path(check_chrome_trace(perfetto(cut, tmp_path)))
    assert {p for p, (_, s) in slices.items() if s["args"]["status"] == "unfinished"} == open_paths
    assert slices["demo"][1]["end"] == pytest.approx(last_t * 1e6)
    result = export_file(cut, "perfetto", tmp_path / "x.json")
    assert "unfinished" in result.summary()


def test_an_end_without_its_start_and_a_repeated_start(tmp_path: Path) -> None:
    events = [
        {"seq": 1, "t": 0.0, "kind": "run.start", "path": "d", "flow": "d", "inputs": {}, "source": "x"},
        {"seq": 2, "t": 0.5, "kind": "node.end", "path": "d.a", "node": "a", "status": "ok",
         "duration": 0.25},
        {"seq": 3, "t": 0.6, "kind": "node.start", "path": "d.b", "node": "b", "type": "echo"},
        {"seq": 4, "t": 0.7, "kind": "node.start", "path": "d.b", "node": "b", "type": "echo"},
        {"seq": 5, "t": 0.8, "kind": "warning", "path": "d.b", "message": "careful"},
        {"seq": 6, "t": 0.9, "kind": "node.end", "path": "d.b", "node": "b", "status": "ok", "duration": 0.2},
        {"seq": 7, "t": 1.0, "kind": "run.end", "path": "d", "status": "ok", "duration": 1.0},
    ]
    trace = write_trace(tmp_path / "t.json", events, flow="d")
    slices = check_chrome_trace(perfetto(trace, tmp_path))
    got = sorted((s["args"].get("path", "?"), s["ts"], s["end"], s["args"].get("status"))
                 for items in slices.values() for s in items)
    assert got == [("d", 0, 1e6, "ok"), ("d.a", 0.25e6, 0.5e6, "ok"), ("d.b", 0.6e6, 0.7e6, "unfinished"),
                   ("d.b", 0.7e6, 0.9e6, "ok")]
    doc = perfetto(trace, tmp_path)
    (warning,) = [e for e in doc["traceEvents"] if e["ph"] == "n"]
    assert warning["name"] == "warning" and warning["args"]["message"] == "careful"
    spans = otlp(trace, tmp_path)
    (b_ok,) = [s for s in spans if s["attrs"]["pflow.path"] == "d.b" and s["attrs"]["pflow.status"] == "ok"]
    assert [(name, attrs["pflow.message"]) for name, _, attrs in b_ok["events"]] == [("warning", "careful")]


def test_a_slice_still_open_when_its_container_ends_is_cut_in_perfetto_only(tmp_path: Path) -> None:
    def event(seq: int, kind: str, path: str, **fields: Any) -> dict[str, Any]:
        return {"seq": seq, "t": seq / 10, "kind": kind, "path": path, **fields}

    events = [  # damaged: the iteration ends before the node nested in it
        event(1, "run.start", "d", flow="d", inputs={}, source="x"),
        event(2, "node.start", "d.b", node="b", type="workflow", batch={"parallel": True}),
        event(3, "item.start", "d.b.iteration_0", index=0, item=0),
        event(4, "node.start", "d.b.iteration_0.x", node="x", type="echo"),
        event(5, "item.end", "d.b.iteration_0", index=0, status="ok"),
        event(6, "node.end", "d.b.iteration_0.x", node="x", status="ok"),
        event(7, "node.end", "d.b", node="b", status="ok"),
        event(8, "run.end", "d", status="ok"),
    ]
    trace = write_trace(tmp_path / "t.json", events, flow="d")
    spans = by_path(check_chrome_trace(perfetto(trace, tmp_path)))
    track, x = spans["d.b.iteration_0.x"]
    assert track == spans["d.b.iteration_0"][0]
    assert (x["ts"], x["end"]) == (pytest.approx(0.4e6), pytest.approx(0.5e6))
    assert x["args"]["status"] == "unfinished" and "still running" in x["args"]["note"]
    otlp_x = next(s for s in otlp(trace, tmp_path) if s["attrs"]["pflow.path"] == "d.b.iteration_0.x")
    assert otlp_x["attrs"]["pflow.status"] == "ok"
    assert otlp_x["end"] - otlp_x["start"] == 200_000_000  # OTLP spans need not nest: the real times


def test_a_reformatted_trace_exports_the_same(demo: Path, tmp_path: Path) -> None:
    pretty = tmp_path / "pretty.json"
    pretty.write_text(json.dumps(json.loads(demo.read_text()), indent=2))
    assert otlp(pretty, tmp_path) == otlp(demo, tmp_path)


def test_recorded_fixtures_export_valid(tmp_path: Path) -> None:
    for name in ("parallel_batch_failures", "llm_classify", "nested_index", "sequential_batch"):
        trace = fixture_trace(name, tmp_path / f"{name}.json")
        _, events = trace_dict(trace)
        n_spans = sum(e["kind"] in SPAN_STARTS for e in events)
        assert len(otlp(trace, tmp_path)) == n_spans
        slices = check_chrome_trace(perfetto(trace, tmp_path))
        assert len(by_path(slices)) == n_spans


# --- a run on a Dask cluster: each worker its own process (Perfetto) and resource (OTLP) ---------

A, B = "tcp://10.0.0.5:40001", "tcp://[fd00::7]:40002"
LIMIT = "cluster tcp://10.0.0.5:8786"


def cluster_events() -> list[dict[str, Any]]:
    """A run on two workers: a batch that may retry (attempt events; item 1 retried on the
    other worker, items 0 and 2 side by side on A), a single cluster node and a batch that
    records no attempts (the work ends with its item; one item cancelled while queued), and a
    batch that ran here."""
    sq, plain = "demo.sq.iteration_", "demo.plain.iteration_"

    def taken(t: float, path: str, attempt: int, worker: str) -> tuple[float, str, str, dict[str, Any]]:
        """The wait of ``attempt`` ends: ``worker`` started it."""
        return t, "wait.end", path, {"on": "cluster", "attempt": attempt, "status": "ok", "duration": 0.01,
                                     "worker": worker}

    rows: list[tuple[float, str, str, dict[str, Any]]] = [
        (0.000, "run.start", "demo", {"flow": "demo", "source": "<test>", "inputs": {}}),
        (0.005, "node.start", "demo.sq", {"node": "sq", "type": "code",
                                          "batch": {"count": 3, "parallel": True, "max_concurrent": 3}}),
    ]
    for i in range(3):
        rows += [(0.010, "item.start", f"{sq}{i}", {"index": i, "item": i}),
                 (0.011, "wait.start", f"{sq}{i}", {"on": "cluster", "attempt": 1, "limit": LIMIT})]
    rows += [
        taken(0.020, f"{sq}0", 1, A),
        (0.020, "attempt.start", f"{sq}0", {"attempt": 1, "worker": A}),
        taken(0.025, f"{sq}1", 1, B),
        (0.025, "attempt.start", f"{sq}1", {"attempt": 1, "worker": B}),
        taken(0.030, f"{sq}2", 1, A),
        (0.030, "attempt.start", f"{sq}2", {"attempt": 1, "worker": A}),
        (0.040, "attempt.end", f"{sq}1", {"attempt": 1, "status": "error", "duration": 0.015, "worker": B,
                                          "will_retry": True,
                                          "error": {"type": "WorkerLost", "message": f"worker lost: {B}"}}),
        (0.041, "wait.start", f"{sq}1", {"on": "cluster", "attempt": 2, "limit": LIMIT}),
        (0.045, "attempt.end", f"{sq}2", {"attempt": 1, "status": "ok", "duration": 0.015, "worker": A}),
        (0.046, "item.end", f"{sq}2", {"index": 2, "status": "ok", "duration": 0.036, "attempts": 1,
                                       "outputs": {}, "worker": A}),
        (0.050, "attempt.end", f"{sq}0", {"attempt": 1, "status": "ok", "duration": 0.03, "worker": A}),
        (0.051, "item.end", f"{sq}0", {"index": 0, "status": "ok", "duration": 0.041, "attempts": 1,
                                       "outputs": {}, "worker": A}),
        taken(0.055, f"{sq}1", 2, A),
        (0.055, "attempt.start", f"{sq}1", {"attempt": 2, "worker": A}),
        (0.080, "attempt.end", f"{sq}1", {"attempt": 2, "status": "ok", "duration": 0.025, "worker": A}),
        (0.081, "item.end", f"{sq}1", {"index": 1, "status": "ok", "duration": 0.071, "attempts": 2,
                                       "outputs": {}, "worker": A}),
        (0.090, "node.end", "demo.sq", {"node": "sq", "status": "ok"}),
        (0.100, "node.start", "demo.solo", {"node": "solo", "type": "code"}),
        (0.101, "wait.start", "demo.solo", {"on": "cluster", "attempt": 1, "limit": LIMIT}),
        taken(0.110, "demo.solo", 1, B),
        (0.130, "node.end", "demo.solo", {"node": "solo", "status": "ok"}),
        (0.135, "node.start", "demo.plain", {"node": "plain", "type": "code",
                                             "batch": {"count": 2, "parallel": True, "max_concurrent": 2}}),
        (0.140, "item.start", f"{plain}0", {"index": 0, "item": "x"}),
        (0.140, "item.start", f"{plain}1", {"index": 1, "item": "y"}),
        (0.141, "wait.start", f"{plain}0", {"on": "cluster", "attempt": 1, "limit": LIMIT}),
        (0.141, "wait.start", f"{plain}1", {"on": "cluster", "attempt": 1, "limit": LIMIT}),
        taken(0.150, f"{plain}0", 1, B),
        (0.160, "wait.end", f"{plain}1", {"on": "cluster", "attempt": 1, "status": "cancelled",
                                          "duration": 0.019}),
        (0.160, "item.end", f"{plain}1", {"index": 1, "status": "cancelled", "duration": 0.02,
                                          "attempts": 1}),
        (0.170, "item.end", f"{plain}0", {"index": 0, "status": "error", "duration": 0.03, "attempts": 1,
                                          "outputs": {}, "worker": B,
                                          "error": {"type": "ValueError", "message": "bad x",
                                                    "traceback": "Traceback ...\nValueError: bad x"}}),
        (0.171, "node.end", "demo.plain", {"node": "plain", "status": "ok"}),
        (0.175, "node.start", "demo.loc", {"node": "loc", "type": "echo",
                                           "batch": {"count": 1, "parallel": True, "max_concurrent": 1}}),
        (0.180, "item.start", "demo.loc.iteration_0", {"index": 0, "item": 1}),
        (0.190, "item.end", "demo.loc.iteration_0", {"index": 0, "status": "ok", "duration": 0.01,
                                                     "attempts": 1, "outputs": {}}),
        (0.195, "node.end", "demo.loc", {"node": "loc", "status": "ok"}),
        (0.200, "run.end", "demo", {"status": "ok"}),
    ]
    return [{"seq": n, "t": t, "kind": kind, "path": path, **fields}
            for n, (t, kind, path, fields) in enumerate(rows, 1)]


# what ran on each worker: (slice name on its track, path, attempt, status)
ON_WORKERS = {
    A: [("sq[0]", "demo.sq.iteration_0", 1, "ok"), ("sq[1] attempt 2", "demo.sq.iteration_1", 2, "ok"),
        ("sq[2]", "demo.sq.iteration_2", 1, "ok")],
    B: [("plain[0]", "demo.plain.iteration_0", 1, "error"), ("solo", "demo.solo", 1, "ok"),
        ("sq[1]", "demo.sq.iteration_1", 1, "error")],
}


@pytest.fixture
def on_cluster(tmp_path: Path) -> Path:
    return write_trace(tmp_path / "cluster.json", cluster_events())


def test_perfetto_puts_each_worker_on_a_process_of_its_own(on_cluster: Path, tmp_path: Path) -> None:
    doc = perfetto(on_cluster, tmp_path)
    slices = check_chrome_trace(doc)
    meta = {(e["pid"], e["name"]): e["args"] for e in doc["traceEvents"] if e["ph"] == "M"}
    assert meta[(4243, "process_name")] == {"name": f"worker {A}"}
    assert meta[(4244, "process_name")] == {"name": f"worker {B}"}
    assert [meta[(p, "process_sort_index")]["sort_index"] for p in (4242, 4243, 4244)] == [0, 1, 2]
    assert meta[(4242, "process_name")] == {"name": "pflow-tui: demo"}
    ran = {A: [], B: []}
    for (pid, _, _), items in slices.items():
        for s in items:
            if pid != 4242:
                worker = {4243: A, 4244: B}[pid]
                assert s["args"]["kind"] == "attempt" and s["args"]["worker"] == worker
                ran[worker].append((s["name"], s["args"]["path"], s["args"]["attempt"], s["args"]["status"]))
            else:  # nothing that ran on a worker is on the run's process
                assert s["args"]["kind"] != "attempt", s
    assert {w: sorted(v) for w, v in ran.items()} == ON_WORKERS
    # items 0 and 2 ran side by side on A: two tracks of A's process
    a_tracks = {key for key, items in slices.items() if key[0] == 4243 for s in items
                if s["args"]["path"] in ("demo.sq.iteration_0", "demo.sq.iteration_2")}
    assert len(a_tracks) == 2
    # the work that records no attempts: from its wait's end to its item's (node's) end
    spans = by_path(slices)
    solo = next(s for k, items in slices.items() if k[0] == 4244 for s in items if s["name"] == "solo")
    assert (solo["ts"], solo["end"]) == (pytest.approx(110_000), pytest.approx(130_000))
    # items, their waits (queued on the scheduler) and local work stay on the run's process
    for path in ("demo.sq.iteration_1", "demo.plain.iteration_1", "demo.loc.iteration_0", "demo.solo"):
        assert spans[path][0][0] == 4242
    waits = [s for key, items in slices.items() for s in items if s["args"]["kind"] == "wait"]
    assert len(waits) == 7 and all(w["name"] == "wait: a cluster worker" for w in waits)
    assert {k[0] for k, items in slices.items() for s in items if s["args"]["kind"] == "wait"} == {4242}
    assert spans["demo.sq.iteration_1"][1]["args"]["worker"] == A  # where its last attempt ran
    assert doc["otherData"]["spans"]["attempt"] == 6


def test_otlp_puts_the_work_of_each_worker_under_its_own_resource(on_cluster: Path, tmp_path: Path) -> None:
    out = tmp_path / "c.otlp.jsonl"
    export_file(on_cluster, "otlp", out)
    (line,) = out.read_bytes().splitlines()
    groups = json.loads(line)["resourceSpans"]
    assert len(groups) == 3  # the run's, A's, B's: each once
    spans = parse_otlp(out.read_bytes())
    assert len({s["trace_id"] for s in spans}) == 1 and len({s["span_id"] for s in spans}) == len(spans)
    by_id = {s["span_id"]: s for s in spans}
    ran: dict[str, list[tuple[str, str, int, str]]] = {A: [], B: []}
    for s in spans:
        service = s["resource"]["service.name"]["stringValue"]
        if s["attrs"]["pflow.kind"] != "attempt":
            assert service == "demo", s  # the run's resource: items, nodes, waits
            continue
        assert service == "pflow-tui worker"
        worker = s["resource"]["service.instance.id"]["stringValue"]
        assert s["attrs"]["pflow.worker"] == worker
        assert s["resource"]["host.name"]["stringValue"] == {A: "10.0.0.5", B: "fd00::7"}[worker]
        assert s["resource"]["pflow.flow"]["stringValue"] == "demo"
        owner = by_id[s["parent"]]  # the parent is in the run's resource, in the same trace
        assert owner["attrs"]["pflow.path"] == s["attrs"]["pflow.path"]
        assert owner["attrs"]["pflow.kind"] in ("item", "node")
        assert owner["start"] <= s["start"] <= s["end"] <= owner["end"]
        assert s["name"] == f"{owner['attrs']['pflow.node']} attempt"
        a = s["attrs"]
        ran[worker].append((a["pflow.path"], int(a["pflow.attempt"]), a["pflow.status"]))
    assert {w: sorted(v) for w, v in ran.items()} == {
        w: sorted((p, n, st_) for _, p, n, st_ in rows) for w, rows in ON_WORKERS.items()}
    failed = next(s for s in spans if s["attrs"]["pflow.kind"] == "attempt"
                  and s["attrs"]["pflow.path"] == "demo.plain.iteration_0")
    assert failed["status"] == Status.STATUS_CODE_ERROR and failed["message"] == "bad x"
    assert [e[0] for e in failed["events"]] == ["exception"]
    items = {s["attrs"]["pflow.path"]: s for s in spans if s["attrs"]["pflow.kind"] == "item"}
    assert items["demo.sq.iteration_1"]["attrs"]["pflow.worker"] == A
    retried = [e for e in items["demo.sq.iteration_1"]["events"] if e[0] == "attempt"]
    assert [(e[2]["pflow.attempt"], e[2]["pflow.status"]) for e in retried] == [("1", "error"), ("2", "ok")]
    assert not [e for e in items["demo.plain.iteration_0"]["events"] if e[0] == "attempt"]
    waits = [s for s in spans if s["attrs"]["pflow.kind"] == "wait"]
    assert len(waits) == 7 and {w["resource"]["service.name"]["stringValue"] for w in waits} == {"demo"}
    assert sorted(w["attrs"].get("pflow.worker", "-") for w in waits) == sorted([A, A, A, B, B, B, "-"])


def test_otlp_lines_split_keep_each_span_under_its_resource(on_cluster: Path) -> None:
    header, events = trace_dict(on_cluster)
    placed = list(otlp_spans(header, events))
    lines = list(otlp_lines(header, placed, status="ok", truncated=False, line_bytes=1500))
    assert len(lines) > 3
    found = []
    for line in lines:
        for group in json.loads(line)["resourceSpans"]:
            attrs = {a["key"]: a["value"] for a in group["resource"]["attributes"]}
            worker = attrs["service.instance.id"]["stringValue"] if "service.instance.id" in attrs else ""
            found += [(worker, s["spanId"]) for s in group["scopeSpans"][0]["spans"]]
    assert sorted(found) == sorted((w or "", s["spanId"]) for w, s in placed)
    parse_otlp(b"".join(lines))


def test_the_collector_gets_each_workers_resource(on_cluster: Path, collector: Collector,
                                                   tmp_path: Path) -> None:
    done = push_trace(on_cluster, collector.url)
    assert done.counts["attempt"] == 6
    (request,) = collector.requests
    services = [{a["key"]: a["value"].get("stringValue") for a in g["resource"]["attributes"]}
                for g in json.loads(request["body"])["resourceSpans"]]
    assert sorted((s["service.name"], s.get("service.instance.id") or "") for s in services) == [
        ("demo", ""), ("pflow-tui worker", A), ("pflow-tui worker", B)]
    export_file(on_cluster, "otlp", tmp_path / "f.jsonl")
    assert parse_otlp(request["body"] + b"\n") == parse_otlp((tmp_path / "f.jsonl").read_bytes())


# --- any run: a property over generated event streams ----------------------------------------------

@st.composite
def runs(draw: st.DrawFn) -> list[dict[str, Any]]:
    """Events of a made-up run: nodes, parallel or sequential batches with nested flows,
    fan-outs with branches, attempts, warnings; strictly nested in time, in time order."""
    out: list[tuple[int, int, dict[str, Any]]] = []

    def add(t: int, kind: str, path: str, **fields: Any) -> None:
        out.append((t, len(out), {"kind": kind, "path": path, **fields}))

    def gap() -> int:
        return draw(st.integers(1, 4))

    def leaf(kind: str, path: str, start: int, **fields: Any) -> int:
        add(start, f"{kind}.start", path, **fields)
        t = start
        if draw(st.booleans()):  # on a cluster: a wait, then a worker (attempt events or none)
            traced = draw(st.booleans())
            for n in range(1, (draw(st.integers(1, 2)) if traced else 1) + 1):
                worker = draw(st.sampled_from(["tcp://w1:1", "tcp://w2:2"]))
                add(t + 1, "wait.start", path, on="cluster", attempt=n, limit="local cluster")
                t += 1 + gap()
                add(t, "wait.end", path, on="cluster", attempt=n, status="ok", worker=worker)
                if traced:
                    add(t, "attempt.start", path, attempt=n, worker=worker)
                    t += gap()
                    add(t, "attempt.end", path, attempt=n, status="ok", worker=worker)
            fields = {**fields, "worker": worker}
        for n in range(1, draw(st.integers(0, 2)) + 1):
            add(t + 1, "attempt.start", path, attempt=n)
            t += 1 + gap()
            add(t, "attempt.end", path, attempt=n, status="ok")
        if draw(st.booleans()):
            add(t + 1, "warning", path, message="w")
        t += gap() + 1
        add(t, f"{kind}.end", path, status=draw(st.sampled_from(["ok", "error"])), **fields)
        return t

    def container(path: str, start: int, depth: int) -> int:
        t = start
        for n in range(draw(st.integers(1, 3))):
            node = f"{path}.n{n}"
            shape = draw(st.sampled_from(["node", "batch", "fan"]) if depth < 2 else st.just("node"))
            t += gap()
            if shape == "node":
                t = leaf("node", node, t, node=f"n{n}", type="echo")
                continue
            if shape == "batch":
                parallel = draw(st.booleans())
                add(t, "node.start", node, node=f"n{n}", type="echo", batch={"parallel": parallel})
                ends, s = [t], t
                for i in range(draw(st.integers(1, 5))):
                    s = (t + gap()) if parallel else (max(ends) + gap())
                    item = f"{node}.iteration_{i}"
                    if draw(st.booleans()):
                        add(s, "item.start", item, index=i, item=i)
                        e = container(item, s, depth + 1) + gap()
                        add(e, "item.end", item, index=i, status="ok")
                    else:
                        e = leaf("item", item, s, index=i)
                    ends.append(e)
                t = max(ends) + gap()
                add(t, "node.end", node, node=f"n{n}", status="ok")
                continue
            t = leaf("node", node, t, node=f"n{n}", type="echo")
            ends = [t]
            for i in range(draw(st.integers(1, 3))):
                s = t + gap()
                branch = f"{node}.branch_{i}"
                add(s, "branch.start", branch, group="g", index=i, start="x")
                e = container(branch, s, depth + 1) + gap()
                add(e, "branch.end", branch, group="g", index=i, status="ok")
                ends.append(e)
            t = max(ends)
        return t

    add(0, "run.start", "r", flow="r", inputs={}, source="x")
    end = container("r", 0, 0) + 1
    add(end, "run.end", "r", status="ok")
    out.sort(key=lambda x: (x[0], x[1]))
    return [{"seq": i + 1, "t": t / 1000, **e} for i, (t, _, e) in enumerate(out)]


@pytest.mark.slow
@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(events=runs(), data=st.data())
def test_any_run_cut_anywhere_exports_consistently(events: list[dict[str, Any]], data: st.DataObject) -> None:
    keep = data.draw(st.integers(1, len(events)))
    events = events[:keep]
    header = {"created": CREATED, "flow_name": "r", "pid": 7}
    begun = [e["path"] for e in events if e["kind"] in SPAN_STARTS]
    ended = {e["path"] for e in events if e["kind"] in ("run.end", "node.end", "item.end", "branch.end")}
    last_t = events[-1]["t"]
    counts: dict[str, int] = {}
    doc = {"traceEvents": list(trace_events(header, events, counts))}
    slices = check_chrome_trace(doc)
    assert "note" not in json.dumps(doc)  # well nested runs are never cut
    spans = by_path(slices)
    assert sorted(spans) == sorted(begun)
    for path, (_, s) in spans.items():
        assert (s["args"]["status"] == "unfinished") == (path not in ended)
        if path not in ended:
            assert s["end"] == pytest.approx(last_t * 1e6)
    for items in slices.values():  # tracks hold one span at a time at each depth
        for a in items:
            for b in items:
                if a is not b and a["depth"] == b["depth"]:
                    assert a["end"] <= b["ts"] or b["end"] <= a["ts"]
    workers = {e["pid"]: e["args"]["name"] for e in doc["traceEvents"] if e["name"] == "process_name"}
    started = sorted((e["path"], e["worker"]) for e in events if e["kind"] == "wait.end")
    on_workers = []
    for (pid, _, _), items in slices.items():  # what a worker ran is on its process, the rest here
        for s in items:
            assert (pid != 7) == ("worker" in s["args"] and s["args"]["kind"] == "attempt")
            if pid != 7:
                assert workers[pid] == f"worker {s['args']['worker']}"
                on_workers.append((s["args"]["path"], s["args"]["worker"]))
    assert sorted(on_workers) == started
    assert counts.get("unfinished", 0) == len(set(begun) - ended)
    otlp_out = list(otlp_spans(header, events))
    tid = trace_id(header)
    paths = [(w, s["attributes"][0]["value"]["stringValue"], s["attributes"][1]["value"]["stringValue"])
             for w, s in otlp_out]
    assert sorted(p for _, kind, p in paths if kind not in ("wait", "attempt")) == sorted(begun)
    assert sorted((p, w) for w, kind, p in paths if kind == "attempt") == started
    for (worker, kind, path), (_, s) in zip(paths, otlp_out, strict=True):
        assert (worker is not None) == (kind == "attempt")
        parent = path if kind in ("wait", "attempt") else path_parent(path)
        assert s.get("parentSpanId") == (span_id(tid, parent) if parent else None)
        assert int(s["endTimeUnixNano"]) >= int(s["startTimeUnixNano"])


# --- the command line ------------------------------------------------------------------------------

def test_cli_export_writes_beside_the_trace_by_default(demo: Path, tmp_path: Path,
                                                       capsys: pytest.CaptureFixture[str]) -> None:
    trace = tmp_path / "run.json"
    trace.write_bytes(demo.read_bytes())
    assert main(["export", str(trace)]) == 0
    out = tmp_path / "run.perfetto.json"
    check_chrome_trace(json.loads(out.read_text()))
    err = capsys.readouterr().err
    assert "run.perfetto.json" in err and "16 iterations" in err and "2 branches" in err
    assert main(["export", str(trace), "--format", "otlp"]) == 0
    assert len(parse_otlp((tmp_path / "run.otlp.jsonl").read_bytes())) == sum(DEMO_COUNTS.values())
    assert default_output("a/b.trace", "otlp") == Path("a/b.trace.otlp.jsonl")
    assert not list(tmp_path.glob(".*.tmp"))


def test_cli_export_to_stdout(demo: Path, capsysbinary: pytest.CaptureFixture[bytes]) -> None:
    assert main(["export", str(demo), "--format", "otlp", "-o", "-"]) == 0
    assert len(parse_otlp(capsysbinary.readouterr().out)) == sum(DEMO_COUNTS.values())
    assert main(["export", str(demo), "-o", "-"]) == 0
    check_chrome_trace(json.loads(capsysbinary.readouterr().out))


@pytest.mark.parametrize(("args", "expected"), [
    (["nothing.json"], "nothing.json: cannot read"),
    (["{trace}", "-o", "{trace}"], "that is the trace itself"),
    (["{trace}", "-o", "no/such/dir/out.json"], "no/such/dir/out.json: cannot write"),
    (["{text}"], "not a pflow-tui trace"),
])
def test_cli_export_bad_input_exits_2(demo: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                      args: list[str], expected: str) -> None:
    text = tmp_path / "notes.txt"
    text.write_text("hello\n")
    args = [a.format(trace=demo, text=text) for a in args]
    assert main(["export", *args]) == 2
    err = " ".join(capsys.readouterr().err.split())
    assert "error:" in err and expected in err
    assert "Traceback" not in err


def test_cli_export_unknown_format_exits_2(demo: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["export", str(demo), "--format", "jaeger"]) == 2
    assert "invalid choice: 'jaeger'" in capsys.readouterr().err


def test_otlp_needs_the_created_time(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    trace = write_trace(tmp_path / "t.json", [{"seq": 1, "t": 0.0, "kind": "run.start", "path": "demo",
                                               "flow": "demo", "inputs": {}, "source": "x"}],
                        created="yesterday")
    assert main(["export", str(trace), "--format", "otlp"]) == 2
    assert "created" in capsys.readouterr().err
    assert main(["export", str(trace)]) == 0  # Perfetto's times are relative: it needs none


# --- pushing to a collector (OTLP/HTTP) ------------------------------------------------------


class Collector:
    """A stub OTLP/HTTP collector: records each request; answers from ``answers`` (status,
    body, headers) in turn, then 200 ``{}``."""

    def __init__(self) -> None:
        self.requests: list[dict[str, Any]] = []
        self.answers: list[tuple[int, bytes, dict[str, str]]] = []
        stub = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["Content-Length"]))
                stub.requests.append({"path": self.path, "headers": dict(self.headers), "body": body})
                status, answer, headers = stub.answers.pop(0) if stub.answers else (200, b"{}", {})
                self.send_response(status)
                for k, v in {"Content-Type": "application/json", **headers}.items():
                    self.send_header(k, v)
                self.send_header("Content-Length", str(len(answer)))
                self.end_headers()
                self.wfile.write(answer)

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()


@pytest.fixture
def collector() -> Iterator[Collector]:
    c = Collector()
    yield c
    c.server.shutdown()
    c.server.server_close()


def test_the_collector_gets_the_spans_the_export_writes(demo: Path, collector: Collector,
                                                        tmp_path: Path) -> None:
    done = push_trace(demo, collector.url)
    assert done.output == collector.url + "/v1/traces" and done.counts["item"] == DEMO_COUNTS["item"]
    assert [r["path"] for r in collector.requests] == ["/v1/traces"]
    request = collector.requests[0]
    assert request["headers"]["Content-Type"] == "application/json"
    pushed = parse_otlp(b"".join(r["body"] + b"\n" for r in collector.requests))
    export_file(demo, "otlp", tmp_path / "f.jsonl")
    written = parse_otlp((tmp_path / "f.jsonl").read_bytes())
    assert pushed == written  # the same spans, ids and times as the file


def test_busy_collector_is_retried_then_a_refusal_is_an_error(demo: Path, collector: Collector) -> None:
    collector.answers = [(503, b"busy", {"Retry-After": "0"}), (429, b"slow down", {"Retry-After": "0"})]
    push_trace(demo, collector.url)
    assert len(collector.requests) == 3  # two refusals, then accepted
    collector.answers = [(400, b'{"message":"bad span"}', {})]
    with pytest.raises(ExportError, match=r"answered HTTP 400: .*bad span"):
        push_trace(demo, collector.url)


def test_partial_success_is_reported(demo: Path, collector: Collector) -> None:
    answer = json.dumps({"partialSuccess": {"rejectedSpans": "2", "errorMessage": "too old"}}).encode()
    collector.answers = [(200, answer, {})]
    done = push_trace(demo, collector.url)
    assert done.rejected == 2 and "the collector rejected 2 spans (too old)" in done.summary()


def test_no_collector_and_bad_endpoints_are_clear_errors(demo: Path) -> None:
    with pytest.raises(ExportError, match=r"cannot reach the collector at http://127\.0\.0\.1:9/v1/traces"):
        push_trace(demo, "http://127.0.0.1:9")
    with pytest.raises(ExportError, match="not an http:// or https:// URL"):
        push_trace(demo, "localhost:4318")


def test_traces_url() -> None:
    assert traces_url("http://c:4318") == "http://c:4318/v1/traces"
    assert traces_url("https://c/") == "https://c/v1/traces"
    assert traces_url("http://c:4318/custom/traces") == "http://c:4318/custom/traces"


def test_cli_export_otlp_endpoint_sends_to_the_collector(demo: Path, collector: Collector,
                                                          capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["export", str(demo), "--otlp-endpoint", collector.url]) == 0
    assert len(collector.requests) == 1
    assert f"sent to {collector.url}/v1/traces: 1 run" in capsys.readouterr().err
    assert main(["export", str(demo), "--otlp-endpoint", "http://127.0.0.1:9"]) == 2
    assert "cannot reach the collector" in capsys.readouterr().err
    assert main(["export", str(demo), "--otlp-endpoint", collector.url, "-o", "x.json"]) == 2

