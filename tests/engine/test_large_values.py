"""Large values are stored once, in a side file beside the trace (large.py), referenced by a
marker from every event and from the footer; rerun restores them, diff compares them by hash,
export references them."""

from __future__ import annotations

import errno
import hashlib
import os
import stat
from pathlib import Path

import orjson
import pytest

from pflow_tui.cli import main
from pflow_tui.engine.ir.load import build_flow
from pflow_tui.engine.run.executor import run_flow
from pflow_tui.engine.trace import events as ev
from pflow_tui.engine.trace import large
from pflow_tui.engine.trace.diff import diff_traces
from pflow_tui.engine.trace.rerun import rerun_flow
from pflow_tui.engine.trace.writer import read_trace

SIZE = 3_000_000  # over the 1 MB limit


def big_flow(markers: Path | None = None) -> dict:
    """A node printing SIZE characters, a node reading them, a declared output of them."""
    mark = f"echo x >> {markers}/big; " if markers else ""
    return {"nodes": [{"id": "big", "type": "shell",
                       "params": {"command": f"{mark}head -c {SIZE} /dev/zero | tr '\\0' a; echo b"}},
                      {"id": "size", "type": "shell",
                       "params": {"command": "wc -c", "stdin": "${big.stdout}"}}],
            "edges": [{"from": "big", "to": "size"}],
            "outputs": {"out": {"source": "${big.stdout}"}}}


def markers_in(value: object) -> list[dict]:
    if isinstance(value, dict):
        if large.is_marker(value):
            return [value]
        return [m for v in value.values() for m in markers_in(v)]
    if isinstance(value, list):
        return [m for v in value for m in markers_in(v)]
    return []


def test_a_large_value_is_stored_once_and_referenced_everywhere(tmp_path: Path) -> None:
    path = tmp_path / "t.json"
    result = run_flow(build_flow(big_flow()), {}, trace=path)
    assert result.status == "ok", result.error
    value = "a" * SIZE + "b"
    assert result.outputs["out"] == value  # the run itself has the real value
    assert path.stat().st_size < 50_000  # not 5 copies of 3 MB
    files = list((tmp_path / "t.results").iterdir())
    assert len(files) == 1  # stored once
    side = files[0]
    assert side.read_bytes() == value.encode()
    assert stat.S_IMODE(side.stat().st_mode) == 0o600
    trace = read_trace(path)
    found = markers_in([trace.events, trace.footer])
    # node.end outputs, store.write of big, node.start params and item of size, the output's
    # store.write, run.end outputs, the footer's outputs and store (twice)
    assert len(found) >= 6
    digest = hashlib.sha256(value.encode()).hexdigest()
    for m in found:
        assert m == {"large_value": f"t.results/{side.name}", "size": SIZE + 1, "sha256": digest,
                     "type": "str", "preview": "a" * large.PREVIEW}
        assert large.load(m, path) == value
    end = next(e for e in trace.events if e["kind"] == ev.NODE_END and e["node"] == "size")
    assert end["outputs"]["stdout"].strip() == str(SIZE + 1)  # the next node got it whole
    assert not any(p.name.endswith(".part") for p in (tmp_path / "t.results").iterdir())


def test_small_values_stay_inline_and_the_limit_is_configurable(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    flow = {"nodes": [{"id": "e", "type": "echo", "params": {"message": "x" * 5000}}], "edges": []}
    run_flow(build_flow(flow), {}, trace=tmp_path / "a.json")
    assert not (tmp_path / "a.results").exists()
    assert not markers_in(read_trace(tmp_path / "a.json").events)
    monkeypatch.setenv(large.ENV, "1000")
    run_flow(build_flow(flow), {}, trace=tmp_path / "b.json")
    assert markers_in(read_trace(tmp_path / "b.json").events)
    assert len(list((tmp_path / "b.results").iterdir())) == 1


def test_a_big_list_of_small_parts_goes_out_whole(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(large.ENV, "10000")
    items = [{"n": i, "text": "y" * 20} for i in range(2000)]
    flow = {"inputs": {"data": {"type": "array"}},
            "nodes": [{"id": "e", "type": "echo", "params": {"message": "hi"}}], "edges": []}
    run_flow(build_flow(flow), {"data": items}, trace=tmp_path / "t.json")
    trace = read_trace(tmp_path / "t.json")
    found = markers_in(trace.events)  # run.start's inputs, the input's store.write
    assert found and all(m["type"] == "json" for m in found)
    assert large.load(found[0], tmp_path / "t.json") == items


def test_rerun_restores_the_real_value_from_the_side_file(tmp_path: Path) -> None:
    marks = tmp_path / "m"
    marks.mkdir()
    path = tmp_path / "t.json"
    run_flow(build_flow(big_flow(marks)), {}, trace=path)
    again = rerun_flow(path, trace=tmp_path / "r.json")
    assert again.status == "ok", again.error
    assert again.rerun is not None and again.rerun["restored_nodes"] == 2
    assert (marks / "big").read_text().count("x") == 1  # restored, not run again
    assert again.outputs["out"] == "a" * SIZE + "b"
    assert len(list((tmp_path / "r.results").iterdir())) == 1  # the re-run stores it once too


def test_rerun_runs_again_when_the_side_file_is_gone(tmp_path: Path) -> None:
    marks = tmp_path / "m"
    marks.mkdir()
    path = tmp_path / "t.json"
    run_flow(build_flow(big_flow(marks)), {}, trace=path)
    for f in (tmp_path / "t.results").iterdir():
        f.write_bytes(b"something else")  # sha256 no longer matches
    again = rerun_flow(path, trace=tmp_path / "r.json")
    assert again.status == "ok", again.error
    assert (marks / "big").read_text().count("x") == 2
    assert again.outputs["out"] == "a" * SIZE + "b"


def test_diff_compares_large_values_by_hash(tmp_path: Path) -> None:
    run_flow(build_flow(big_flow()), {}, trace=tmp_path / "a.json")
    run_flow(build_flow(big_flow()), {}, trace=tmp_path / "b.json")
    other = big_flow()
    params = other["nodes"][0]["params"]
    params["command"] = params["command"].replace("echo b", "echo c")
    run_flow(build_flow(other), {}, trace=tmp_path / "c.json")
    same = diff_traces(tmp_path / "a.json", tmp_path / "b.json")
    assert same.get("big").change in ("same", "slower", "faster")
    assert same.get("big").outputs_equal
    differs = diff_traces(tmp_path / "a.json", tmp_path / "c.json")
    assert differs.get("big").outputs_equal is False


def test_export_references_the_value(tmp_path: Path) -> None:
    path = tmp_path / "t.json"
    run_flow(build_flow(big_flow()), {}, trace=path)
    for fmt in ("perfetto", "otlp"):
        out = tmp_path / f"e.{fmt}"
        assert main(["export", str(path), "--format", fmt, "-o", str(out)]) == 0
        assert out.stat().st_size < 100_000


def test_a_side_file_that_cannot_be_written_stops_the_run(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    real = os.open

    def full(path: object, flags: int, mode: int = 0o777) -> int:
        if str(path).endswith(".part"):
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        return real(path, flags, mode)

    monkeypatch.setattr(large.os, "open", full)
    path = tmp_path / "t.json"
    result = run_flow(build_flow(big_flow()), {}, trace=path)
    assert result.status == "failed"
    assert result.error is not None and result.error["type"] == "TraceWriteError"
    assert result.error["errno"] == errno.ENOSPC
    trace = read_trace(path)
    assert trace.truncated
    assert not any(e["kind"] == ev.NODE_START and e["node"] == "size" for e in trace.events)


def test_a_crafted_marker_cannot_read_outside_the_trace_folder(tmp_path: Path) -> None:
    (tmp_path / "secret").write_text("s")
    marker = {"large_value": "../secret", "size": 1, "sha256": "0" * 64, "type": "str", "preview": ""}
    with pytest.raises(large.LargeValueMissing):
        large.load(marker, tmp_path / "sub" / "t.json")


def test_the_marker_is_small_json(tmp_path: Path) -> None:
    path = tmp_path / "t.json"
    run_flow(build_flow(big_flow()), {}, trace=path)
    m = markers_in(read_trace(path).footer)[0]
    assert len(orjson.dumps(m)) < 1000


def test_large_item_outputs_are_stored_once_per_value(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(large.ENV, "5000")
    flow = {"nodes": [{"id": "b", "type": "shell", "batch": {"items": [1, 2, 1]},
                       "params": {"command": "head -c 6000 /dev/zero | tr '\\0' ${item}"}}],
            "edges": []}
    path = tmp_path / "t.json"
    result = run_flow(build_flow(flow), {}, trace=path)
    assert result.status == "ok", result.error
    ends = [e for e in read_trace(path).events if e["kind"] == ev.ITEM_END]
    assert [large.load(e["outputs"]["stdout"], path) for e in ends] == ["1" * 6000, "2" * 6000, "1" * 6000]
    assert len(list((tmp_path / "t.results").glob("value-*"))) == 2  # items 0 and 2: one file
