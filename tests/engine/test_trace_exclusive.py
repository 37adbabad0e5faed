"""One run per trace file: a second run on a trace path refuses (exit 2); default paths never
collide; a trace a run is writing is never written over."""

from __future__ import annotations

import os
from pathlib import Path

import orjson
import pytest

from pflow_tui.cli import main
from pflow_tui.engine.ir.load import build_flow
from pflow_tui.engine.run.executor import run_flow
from pflow_tui.engine.trace.writer import TraceExists, TraceWriter, default_trace_path, read_trace

FLOW = {"nodes": [{"id": "a", "type": "echo", "params": {"message": "hi"}}], "edges": []}
BATCHED = {"nodes": [{"id": "sq", "type": "echo", "params": {"message": "${item}"},
                      "batch": {"items": ["1", "2", "3"], "batch_size": 2}}], "edges": []}


@pytest.fixture(autouse=True)
def _isolated(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("COLUMNS", "250")


def flat(text: str) -> str:
    return " ".join(text.split())


def test_a_second_run_on_the_same_path_refuses_and_leaves_the_first_intact(tmp_path: Path) -> None:
    path = tmp_path / "t.json"
    spec = build_flow(BATCHED)
    first = run_flow(spec, {}, trace=path)
    before = path.read_bytes()
    results = sorted(p.name for p in (tmp_path / "t.results").iterdir())
    with pytest.raises(TraceExists) as info:
        run_flow(spec, {}, trace=path)
    assert info.value.path == path
    assert path.read_bytes() == before  # not truncated, nothing appended
    assert sorted(p.name for p in (tmp_path / "t.results").iterdir()) == results  # kept
    assert read_trace(path).status == first.status == "ok"


def test_cli_run_on_an_existing_trace_exits_2_with_what_where_and_the_fix(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    flow = tmp_path / "flow.json"
    flow.write_bytes(orjson.dumps(FLOW))
    trace = tmp_path / "t.json"
    assert main(["run", str(flow), "--trace", str(trace)]) == 0
    before = trace.read_bytes()
    capsys.readouterr()
    assert main(["run", str(flow), "--trace", str(trace)]) == 2
    err = flat(capsys.readouterr().err)
    assert err.startswith(f"error: {trace} already exists and it holds another run")
    assert "Pick another path (--trace NEW.json)" in err
    assert f"rm {trace}" in err
    assert "Traceback" not in err and len(err.splitlines()) <= 3
    assert trace.read_bytes() == before


def test_rerun_into_an_existing_trace_exits_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    flow = tmp_path / "flow.json"
    flow.write_bytes(orjson.dumps(FLOW))
    assert main(["run", str(flow), "--trace", "a.json"]) == 0
    assert main(["run", str(flow), "--trace", "b.json"]) == 0
    before = Path("b.json").read_bytes()
    capsys.readouterr()
    assert main(["rerun", "a.json", "--trace", "b.json"]) == 2
    assert "b.json already exists" in flat(capsys.readouterr().err)
    assert Path("b.json").read_bytes() == before


def test_the_default_path_never_collides(tmp_path: Path) -> None:
    paths = [default_trace_path("demo", tmp_path) for _ in range(50)]  # within a second or two
    assert len(set(paths)) == 50
    assert all(p.name.startswith("demo-") and f"-{os.getpid()}" in p.name for p in paths)
    taken = tmp_path / ".pflow-tui" / "traces"
    taken.mkdir(parents=True, exist_ok=True)
    nxt = default_trace_path("other", tmp_path)
    nxt.write_text("x")  # a file there already (another run of an earlier process, same pid)
    following = default_trace_path("other", tmp_path)
    assert following != nxt and not following.exists()


def test_two_runs_of_one_flow_in_a_process_get_two_traces(tmp_path: Path) -> None:
    spec = build_flow(FLOW)
    a, b = run_flow(spec, {}), run_flow(spec, {})
    assert a.trace_path != b.trace_path
    assert read_trace(a.trace_path).status == read_trace(b.trace_path).status == "ok"


def test_replace_writes_over_a_finished_trace_but_never_a_live_one(tmp_path: Path) -> None:
    path = tmp_path / "t.json"
    live = TraceWriter(path, {"flow_name": "x"})
    with pytest.raises(TraceExists, match="another run is writing it now"):
        TraceWriter(path, {"flow_name": "y"}, replace=True)
    with pytest.raises(TraceExists, match="it holds another run"):
        TraceWriter(path, {"flow_name": "y"})
    live.finish("ok", outputs={})
    assert read_trace(path).header["flow_name"] == "x"
    again = TraceWriter(path, {"flow_name": "y"}, replace=True)
    again.finish("ok", outputs={})
    trace = read_trace(path)
    assert trace.header["flow_name"] == "y" and trace.status == "ok" and not trace.truncated
