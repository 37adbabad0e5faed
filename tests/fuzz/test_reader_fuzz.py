"""Fuzzing the readers: the IR loader and the trace readers get random and mutated
documents (mutations of sample_flows/ and of recorded runs of them, tests/app/fixtures).

Each either reads the document or raises its documented error with a message (FlowError
with problems; TraceError), never another exception; what a trace reader hands out passes
the event check; the app's model takes what replay feeds it; memory stays bounded
(tracemalloc peak). A few mutated files also go through the CLI as a subprocess: exit 0,
1 or 2, no traceback. (Mutated flows are only validated, never run: sample flows run
shell commands.)
"""

from __future__ import annotations

import io
import json
import os
import random
import subprocess
import sys
import tracemalloc
from pathlib import Path
from typing import Any

import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pflow_tui.app.graph import Graph
from pflow_tui.app.model import RunModel
from pflow_tui.engine.ir.load import load_flow
from pflow_tui.engine.problems import FlowError
from pflow_tui.engine.run.cache import RunCache
from pflow_tui.engine.trace.check import check_event
from pflow_tui.engine.trace.diff import diff_traces
from pflow_tui.engine.trace.export import ExportError, open_trace, write_otlp, write_perfetto
from pflow_tui.engine.trace.reader import TraceIndex, TraceStream
from pflow_tui.engine.trace.replay import LazyEvents
from pflow_tui.engine.trace.writer import EVENTS_OPEN, FORMAT, TraceError, parse_trace, read_trace

ROOT = Path(__file__).resolve().parents[2]
SAMPLES = sorted((ROOT / "sample_flows").glob("*.json"))
FIXTURES = sorted((ROOT / "tests" / "app" / "fixtures").glob("*.events.json"))
PFLOW_TUI = Path(sys.executable).parent / "pflow-tui"
PEAK = 64 << 20  # bytes: what reading a mutated document of a few KB may allocate at most
EXAMPLES = int(os.environ.get("PFLOW_TUI_FUZZ_EXAMPLES", "60"))  # more for a longer hunt
FUZZ = settings(max_examples=EXAMPLES, deadline=None,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture,
                                       HealthCheck.data_too_large])

scalars = (st.none() | st.booleans() | st.integers(-(2**70), 2**70) | st.floats(allow_nan=False)
           | st.text(max_size=8))
json_values = st.recursive(scalars, lambda c: st.lists(c, max_size=3)
                           | st.dictionaries(st.text(max_size=6), c, max_size=3), max_leaves=8)


def dump(value: Any) -> bytes:
    """JSON of any value, big integers included (as a file from elsewhere may hold them)."""
    return json.dumps(value, separators=(",", ":")).encode()


def trace_bytes(fixture: Path) -> bytes:
    """A recorded run laid out as pflow-tui writes traces."""
    doc = json.loads(fixture.read_text())
    head = {"format": FORMAT, "version": 1, "created": "2026-12-05T18:00:00+00:00",
            "flow_name": doc["flow_name"], "source": f"{doc['flow_name']}.json", "flow": doc["flow"],
            "children": doc.get("children") or {}, "inputs": {}}
    foot = {"status": "ok", "finished": "2026-12-05T18:00:01+00:00", "outputs": {}, "store": {},
            "error": None}
    return (orjson.dumps(head)[:-1] + EVENTS_OPEN + b",\n".join(orjson.dumps(e) for e in doc["events"])
            + b"\n]," + orjson.dumps(foot)[1:] + b"\n")


TRACES = {f.name.split(".")[0]: trace_bytes(f) for f in FIXTURES}


def mutate_bytes(data: bytes, ops: list[tuple[int, int, int, bytes]]) -> bytes:
    """Apply byte-level edits: (kind, where, length, bytes) with kind 0 delete, 1 insert,
    2 overwrite, 3 cut the file there, 4 repeat a line, 5 swap two lines."""
    for kind, where, length, new in ops:
        at = where % (len(data) + 1)
        if kind == 0:
            data = data[:at] + data[at + length:]
        elif kind == 1:
            data = data[:at] + new + data[at:]
        elif kind == 2:
            data = data[:at] + new + data[at + len(new):]
        elif kind == 3:
            data = data[:at]
        else:
            lines = data.split(b"\n")
            i, j = at % len(lines), (at + length) % len(lines)
            if kind == 4:
                lines.insert(i, lines[i])
            else:
                lines[i], lines[j] = lines[j], lines[i]
            data = b"\n".join(lines)
    return data


byte_ops = st.lists(st.tuples(st.integers(0, 5), st.integers(0, 1 << 20), st.integers(0, 64),
                              st.binary(min_size=1, max_size=8)
                              | st.sampled_from([b"{", b"}", b"\n", b",", b'"', b"[", b"]", b"null",
                                                 b"1e999", b"-1", b"\r\n", b'"kind":"seal"'])),
                    min_size=1, max_size=4)


def mutate_events(data: bytes, edits: list[tuple[int, str | None, Any]]) -> bytes:
    """Event-level edits of a trace: (event number, field or None for the whole event, value)."""
    head, _, rest = data.partition(b"\n")
    body, sep, foot = rest.rpartition(b"\n],")
    lines = body.split(b",\n")
    for n, key, value in edits:
        i = n % len(lines)
        if key is None:
            lines[i] = dump(value)
            continue
        event = json.loads(lines[i])
        if isinstance(event, dict):
            event[key] = value
        lines[i] = dump(event)
    return head + b"\n" + b",\n".join(lines) + sep + foot


event_edits = st.lists(st.tuples(st.integers(0, 10_000),
                                 st.none() | st.sampled_from(["seq", "t", "kind", "path", "index", "status",
                                                              "batch", "node", "type", "attempts", "label",
                                                              "outputs", "error", "params", "item", "count"]),
                                 json_values | st.sampled_from([10**30, -1, 10**11, {"count": 10**9},
                                                                {"count": -3}, "iteration_x"])),
                       min_size=1, max_size=4)


def bounded(fn) -> Any:
    """Run ``fn`` and fail if it allocated more than PEAK at once."""
    tracemalloc.start()
    try:
        result = fn()
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < PEAK, f"peak {peak / 1e6:.0f} MB"
    return result


def read_everything(path: Path) -> None:
    """Every reader on ``path``: a result, or TraceError (ExportError, FlowError) with a message."""
    try:
        whole = read_trace(path)
    except TraceError as exc:
        assert str(exc).strip()
    else:
        assert all(check_event(e) is None for e in whole.events) and whole.skipped >= 0
    try:
        index = TraceIndex(path)
    except TraceError as exc:
        assert str(exc).strip()
        return
    n = len(index)
    summaries = index.summaries(0, n)
    assert len(summaries) == n
    assert all(isinstance(e, dict) and isinstance(e.get("kind"), str) for e in summaries)
    events = list(index)
    assert all(check_event(e) is None for e in events)
    for i in range(0, n, max(1, n // 7)):
        assert isinstance(index.event(i), dict) and isinstance(index.head(i), dict)
    assert isinstance(index.footer, dict)
    model = RunModel(Graph.from_ir(index.header.get("flow") or {}, str(index.header.get("flow_name") or "f"),
                                   index.header.get("children")), LazyEvents(index))
    model.apply(summaries)
    for e in summaries:  # what the panes ask for
        model.event(e["seq"])
    model.failures()
    diff_traces(path, path)
    source = open_trace(path)
    try:
        write_perfetto(source, io.BytesIO())
        write_otlp(open_trace(path), io.BytesIO())
    except ExportError as exc:
        assert str(exc).strip()
    try:  # (a stream reads the engine's layout only: rerun falls back to read_trace)
        stream = TraceStream(path)
    except TraceError as exc:
        assert str(exc).strip()
    else:
        assert all(check_event(e) is None for _, e in stream.scan(exclude=("item.", "attempt.")))
    try:
        RunCache.from_trace(path)
    except TraceError as exc:
        assert str(exc).strip()


@FUZZ
@given(name=st.sampled_from(sorted(TRACES)), ops=byte_ops)
def test_byte_mutations_of_recorded_traces(name: str, ops, tmp_path_factory) -> None:
    path = tmp_path_factory.mktemp("t") / "t.json"
    path.write_bytes(mutate_bytes(TRACES[name], ops))
    bounded(lambda: read_everything(path))


@FUZZ
@given(name=st.sampled_from(sorted(TRACES)), edits=event_edits)
def test_field_mutations_of_recorded_traces(name: str, edits, tmp_path_factory) -> None:
    path = tmp_path_factory.mktemp("t") / "t.json"
    path.write_bytes(mutate_events(TRACES[name], edits))
    bounded(lambda: read_everything(path))


@FUZZ
@given(doc=json_values, events=st.lists(json_values, max_size=6))
def test_random_documents_as_traces(doc: Any, events: list[Any]) -> None:
    """Any JSON as a whole file, and a sound header followed by any values as events."""
    try:
        parse_trace(dump(doc))
    except TraceError as exc:
        assert str(exc).strip()
    head = {"format": FORMAT, "version": 1, "flow": {"nodes": []}, "inputs": {}}
    data = orjson.dumps(head)[:-1] + EVENTS_OPEN + b",\n".join(
        dump(e) for e in events)
    trace = parse_trace(data)
    assert all(check_event(e) is None for e in trace.events)
    assert trace.skipped + len(trace.events) <= len(events) + 1


# --- the IR loader ---------------------------------------------------------------------------------

def mutate_flow(doc: Any, edits: list[tuple[list[int], Any]]) -> Any:
    """Replace a value somewhere in the document (a path of indexes into dicts and lists)."""
    for path, value in edits:
        if not isinstance(doc, (dict, list)):
            return value
        node = doc
        for step in path:
            children = list(node.values()) if isinstance(node, dict) else node
            if not children:
                break
            nxt = children[step % len(children)]
            if not isinstance(nxt, (dict, list)):
                if isinstance(node, dict):
                    node[list(node)[step % len(node)]] = value
                else:
                    node[step % len(node)] = value
                break
            node = nxt
        else:
            if isinstance(node, dict):
                node[f"k{len(node)}"] = value
            else:
                node.append(value)
    return doc


def load_checked(path: Path) -> None:
    try:
        spec = load_flow(path)
    except FlowError as exc:
        assert exc.problems and all(isinstance(p.where, str) and p.what.strip() for p in exc.problems)
    else:
        assert spec.nodes is not None


@FUZZ
@given(sample=st.sampled_from(SAMPLES),
       edits=st.lists(st.tuples(st.lists(st.integers(0, 50), max_size=6), json_values), min_size=1,
                      max_size=4))
def test_mutated_sample_flows_load_or_say_why(sample: Path, edits, tmp_path_factory) -> None:
    path = tmp_path_factory.mktemp("f") / sample.name
    path.write_bytes(dump(mutate_flow(json.loads(sample.read_text()), edits)))
    bounded(lambda: load_checked(path))


@FUZZ
@given(sample=st.sampled_from(SAMPLES), ops=byte_ops)
def test_byte_mutations_of_sample_flows_load_or_say_why(sample: Path, ops, tmp_path_factory) -> None:
    path = tmp_path_factory.mktemp("f") / sample.name
    path.write_bytes(mutate_bytes(sample.read_bytes(), ops))
    bounded(lambda: load_checked(path))


# --- the CLI, as a user runs it -----------------------------------------------------------------------

def test_the_cli_on_mutated_files(tmp_path: Path) -> None:
    rng = random.Random(14)
    runs = []
    for n in range(6):
        name = sorted(TRACES)[n % len(TRACES)]
        ops = [(rng.randrange(6), rng.randrange(1 << 20), rng.randrange(64),
                rng.choice([b"{", b"\n", b"null", b"1e999", b"-1", bytes([rng.randrange(256)])]))
               for _ in range(rng.randint(1, 3))]
        trace = tmp_path / f"t{n}.json"
        trace.write_bytes(mutate_bytes(TRACES[name], ops))
        flow = tmp_path / f"f{n}.json"
        sample = SAMPLES[n % len(SAMPLES)]
        flow.write_bytes(mutate_bytes(sample.read_bytes(), ops))
        runs += [(["validate", str(flow)], {0, 2}), (["diff", str(trace), str(trace)], {0, 1, 2}),
                 (["export", str(trace), "-o", str(tmp_path / f"o{n}.json")], {0, 2})]
    for args, codes in runs:
        done = subprocess.run([str(PFLOW_TUI), *args], capture_output=True, text=True, timeout=60,
                              check=False, cwd=tmp_path)
        assert done.returncode in codes, (args, done.stderr)
        assert "Traceback" not in done.stderr, (args, done.stderr)


@pytest.mark.parametrize("name", sorted(TRACES))
def test_the_unmutated_traces_have_nothing_malformed(name: str, tmp_path: Path) -> None:
    path = tmp_path / "t.json"
    path.write_bytes(TRACES[name])
    index = TraceIndex(path)
    assert index.check_all() == 0 and read_trace(path).skipped == 0
