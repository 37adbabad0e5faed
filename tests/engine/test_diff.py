"""Diffing two runs: rows aligned by relative path, change kinds, truncated traces, the CLI."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import pytest

from pflow_tui.cli import main
from pflow_tui.engine.ir.load import build_flow
from pflow_tui.engine.run.executor import run_flow
from pflow_tui.engine.run.inputs import prepare_inputs
from pflow_tui.engine.trace.diff import CHANGES, diff_traces, summary_line
from pflow_tui.engine.trace.reader import TraceIndex
from pflow_tui.engine.trace.writer import TraceError, TraceWriter, read_trace


@pytest.fixture(autouse=True)
def _isolated(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("COLUMNS", "250")


def run_doc(tmp_path: Path, doc: dict[str, Any], name: str, source: str = "flow.json",
            **inputs: Any) -> Path:
    spec = build_flow(doc, source=source, base_dir=tmp_path)
    trace = tmp_path / f"{name}.json"
    run_flow(spec, prepare_inputs(spec, inputs), trace=trace)
    return trace


def changes(diff: Any) -> dict[str, str]:
    return {r.path: r.change for r in diff.changed()}


def flat(text: str) -> str:
    return " ".join(text.split())


# An echo batch (echo fails on a message that is not a string), then an offline LLM whose
# latency is an input, then a constant echo.
CALC = {
    "name": "calc",
    "inputs": {"items": {"type": "array"}, "delay": {"type": "number", "required": False, "default": 0}},
    "nodes": [
        {"id": "square", "type": "echo", "batch": {"items": "${items}", "error_handling": "continue"},
         "params": {"message": "${item}"}},
        {"id": "think", "type": "llm",
         "params": {"model": "offline", "latency": "${delay}", "prompt": "Is the batch fine?"}},
        {"id": "report", "type": "echo", "params": {"message": "done"}},
    ],
    "edges": [{"from": "square", "to": "think"}, {"from": "think", "to": "report"}],
    "outputs": {"answer": {"source": "${think.response}"}},
}
ITEMS = ["a", "b", "c", "d"]


@pytest.fixture
def calc_a(tmp_path: Path) -> Path:
    return run_doc(tmp_path, CALC, "a", items=ITEMS)


@pytest.fixture
def calc_b(tmp_path: Path) -> Path:
    """One item's result changes (c -> x), another item fails (an int), think is slower."""
    return run_doc(tmp_path, CALC, "b", items=["a", "b", "x", 7], delay=0.3)


# --- what changed ------------------------------------------------------------------------------

def test_changed_item_failed_item_and_slower_node(calc_a: Path, calc_b: Path) -> None:
    diff = diff_traces(calc_a, calc_b)
    assert changes(diff) == {
        "": "slower",  # the run waited for think
        "square": "outputs",
        "square.iteration_2": "outputs",
        "square.iteration_3": "status",
        "think": "slower",
    }
    assert [r.path for r in diff.rows] == [
        "", "square", "square.iteration_0", "square.iteration_1", "square.iteration_2",
        "square.iteration_3", "think", "report"]
    kinds = {r.path: r.kind for r in diff.rows}
    assert kinds[""] == "run" and kinds["square"] == "node" and kinds["square.iteration_3"] == "item"

    item2 = diff.get("square.iteration_2")
    assert item2 is not None and item2.outputs_equal is False and item2.outputs_key == "echo"
    assert item2.status_a == item2.status_b == "ok"
    assert item2.note() == "outputs differ: key echo"

    item3 = diff.get("square.iteration_3")
    assert item3 is not None and (item3.status_a, item3.status_b) == ("ok", "error")
    assert item3.error_a is None and item3.error_b == "echo message must be a string, got int"
    assert item3.note() == "echo message must be a string, got int"

    square = diff.get("square")
    assert square is not None and square.outputs_key == "success_count"

    think = diff.get("think")
    assert think is not None and think.outputs_equal is True
    assert think.duration_a is not None and think.duration_b is not None
    assert think.duration_a < 0.1 <= 0.29 <= think.duration_b
    assert think.note().endswith("× slower")

    same = diff.get("square.iteration_0")
    assert same is not None and same.change == "same" and same.outputs_equal is True

    assert diff.counts == {"added": 0, "removed": 0, "status": 1, "outputs": 2, "slower": 2,
                           "restored": 0, "faster": 0, "same": 3}
    assert diff.a.flow == diff.b.flow == "calc"
    assert diff.a.status == diff.b.status == "ok" and diff.a.source == "flow.json"
    assert diff.b.duration is not None and diff.b.duration >= 0.3
    assert summary_line(diff) == "5 of 8 paths differ: 1 status, 2 outputs, 2 slower"

    back = diff_traces(calc_b, calc_a)  # the other way round
    assert changes(back) == {"": "faster", "square": "outputs", "square.iteration_2": "outputs",
                             "square.iteration_3": "status", "think": "faster"}
    row = back.get("square.iteration_3")
    assert row is not None and row.note() == "was: echo message must be a string, got int"


def test_identical_runs_have_no_changed_rows(tmp_path: Path, calc_a: Path) -> None:
    again = run_doc(tmp_path, CALC, "again", items=ITEMS)
    diff = diff_traces(calc_a, again)
    assert diff.changed() == [] and not diff.differs
    assert diff.counts["same"] == len(diff.rows) == 8
    assert all(r.outputs_equal for r in diff.rows)
    assert summary_line(diff).startswith("no differences: 8 paths")
    assert diff_traces(calc_a, calc_a).changed() == []


def test_an_added_node_in_an_edited_flow_with_another_name(tmp_path: Path) -> None:
    before = {"name": "pipe", "nodes": [
        {"id": "fetch", "type": "echo", "params": {"message": "data"}},
        {"id": "store", "type": "echo", "params": {"message": "${fetch.echo}"}}],
        "edges": [{"from": "fetch", "to": "store"}]}
    after = {"name": "pipe_v2", "nodes": [
        {"id": "fetch", "type": "echo", "params": {"message": "data"}},
        {"id": "clean", "type": "echo", "params": {"message": "${fetch.echo}"}},
        {"id": "store", "type": "echo", "params": {"message": "${clean.echo}"}}],
        "edges": [{"from": "fetch", "to": "clean"}, {"from": "clean", "to": "store"}]}
    a, b = run_doc(tmp_path, before, "before"), run_doc(tmp_path, after, "after")
    diff = diff_traces(a, b, duration_floor=60.0)  # real runs: their speed is the machine's
    assert (diff.a.flow, diff.b.flow) == ("pipe", "pipe_v2")
    assert changes(diff) == {"clean": "added"}
    assert [r.path for r in diff.rows] == ["", "fetch", "store", "clean"]  # B's new paths last
    clean = diff.get("clean")
    assert clean is not None and (clean.status_a, clean.status_b) == ("not run", "ok")
    assert clean.event_a is None and clean.event_b is not None
    assert clean.path_in(diff.b.flow) == "pipe_v2.clean"
    event = TraceIndex(b).event(clean.event_b)
    assert (event["kind"], event["path"]) == ("node.end", "pipe_v2.clean")
    assert changes(diff_traces(b, a)) == {"clean": "removed"}


# --- nested flows and branches -----------------------------------------------------------------

CHILD = {"inputs": {"x": {"required": True}},
         "nodes": [{"id": "read", "type": "echo", "params": {"message": "${x}"}},
                   {"id": "shout", "type": "echo", "params": {"message": "${read.echo}", "uppercase": True}}],
         "edges": [{"from": "read", "to": "shout"}],
         "outputs": {"loud": {"source": "${shout.echo}"}}}


def nested_flow(name: str) -> dict[str, Any]:
    return {
        "name": name,
        "inputs": {"xs": {"type": "array"}},
        "parallel_groups": {"g": {"error_handling": "continue"}},
        "nodes": [
            {"id": "fan", "type": "echo", "params": {"message": "go"}},
            {"id": "left", "type": "echo", "params": {"message": "L"}},
            {"id": "right", "type": "echo", "params": {"message": "R"}},
            {"id": "right2", "type": "echo", "params": {"message": "${right.echo}!"}},
            {"id": "join", "type": "merge", "params": {"strategy": "by_branch"}},
            {"id": "per", "type": "workflow", "batch": {"items": "${xs}", "error_handling": "continue"},
             "params": {"workflow_ir": CHILD, "param_mapping": {"x": "${item}"}}},
        ],
        "edges": [
            {"from": "fan", "to": "left", "parallel_group": "g"},
            {"from": "fan", "to": "right", "parallel_group": "g"},
            {"from": "right", "to": "right2"},
            {"from": "left", "to": "join"}, {"from": "right2", "to": "join"},
            {"from": "join", "to": "per"},
        ],
    }


def test_nested_flow_and_branch_paths_align(tmp_path: Path) -> None:
    a = run_doc(tmp_path, nested_flow("nest"), "a", xs=["p", "q", "r"])
    b = run_doc(tmp_path, nested_flow("nest_renamed"), "b", xs=["p", 1, "r"])
    diff = diff_traces(a, b, duration_floor=60.0)  # real runs: their speed is the machine's
    kinds = {r.path: r.kind for r in diff.rows}
    assert kinds["fan.branch_0"] == kinds["fan.branch_1"] == "branch"
    assert kinds["fan.branch_1.right2"] == "node" and kinds["per.iteration_2.shout"] == "node"
    assert kinds["per.iteration_1"] == "item"
    for path in ("fan", "fan.branch_0", "fan.branch_0.left", "fan.branch_1", "fan.branch_1.right",
                 "fan.branch_1.right2", "join", "per.iteration_0", "per.iteration_0.read",
                 "per.iteration_0.shout", "per.iteration_2", "per.iteration_2.read",
                 "per.iteration_2.shout"):
        row = diff.get(path)
        assert row is not None and row.change == "same" and row.status_a == row.status_b == "ok", path
    assert changes(diff) == {
        "per": "outputs",  # one error more in the batch summary
        "per.iteration_1": "status",
        "per.iteration_1.read": "status",
        "per.iteration_1.shout": "removed",  # the child stopped at read
    }
    read = diff.get("per.iteration_1.read")
    assert read is not None and read.error_b == "echo message must be a string, got int"
    assert read.path_in("nest") == "nest.per.iteration_1.read"


# --- outputs, durations and sources (synthetic traces) -----------------------------------------

def write_trace(path: Path, ends: list[tuple[str, str, float, Any]], *, finish: bool = True,
                flow: str = "syn") -> Path:
    """A trace with one batch node ``b``: ``ends`` are (path, status, duration, outputs)."""
    w = TraceWriter(path, {"flow_name": flow, "source": "<syn>", "flow": {}, "inputs": {}})
    seq = 0

    def emit(kind: str, p: str, **fields: Any) -> None:
        nonlocal seq
        seq += 1
        w.write({"seq": seq, "t": seq * 0.001, "kind": kind, "path": p, **fields})

    emit("run.start", flow, flow=flow, inputs={}, source="<syn>")
    emit("node.start", f"{flow}.b", node="b", type="echo")
    for i, (p, status, duration, outputs) in enumerate(ends):
        emit("item.start", f"{flow}.{p}", index=i, item=i)
        fields: dict[str, Any] = {"index": i, "status": status, "duration": duration, "attempts": 1}
        if outputs is not None:
            fields["outputs"] = outputs
        if status == "error":
            fields["error"] = {"type": "NodeError", "message": f"{p} broke"}
        emit("item.end", f"{flow}.{p}", **fields)
    summary = {"count": len(ends), "batch_metadata": {"parallel": False, "timing": {"total_items_ms": seq}}}
    emit("node.end", f"{flow}.b", node="b", status="ok", duration=0.5, action="default", outputs=summary,
         progress={"done": len(ends), "failed": 0, "total": len(ends)})
    emit("run.end", flow, status="ok", duration=0.6, outputs={})
    if finish:
        w.finish("ok", outputs={}, store={}, error=None)
    else:
        w.flush()
    return path


def test_outputs_compare_as_canonical_json_and_durations_need_ratio_and_floor(tmp_path: Path) -> None:
    a = write_trace(tmp_path / "a.json", [
        ("b.iteration_0", "ok", 0.01, {"x": 1, "y": [1, 2]}),
        ("b.iteration_1", "ok", 0.01, {"x": 1}),
        ("b.iteration_2", "ok", 0.1, {"x": 1}),
        ("b.iteration_3", "ok", 0.3, {"x": 1}),
        ("b.iteration_4", "ok", 0.1, {"x": 1}),
        ("b.iteration_5", "ok", 0.0, {"x": 1}),
        ("b.iteration_6", "error", 0.1, {"error": "e"}),
        ("b.iteration_7", "cancelled", 0.1, None),
        ("b.iteration_8", "ok", 0.1, {"keep": 1, "x": 1}),
    ], flow="one")
    b = write_trace(tmp_path / "b.json", [
        ("b.iteration_0", "ok", 0.011, {"y": [1, 2], "x": 1}),  # key order aside: the same
        ("b.iteration_1", "ok", 0.03, {"x": 1}),  # 3x, but 0.02 s: within the floor
        ("b.iteration_2", "ok", 0.25, {"x": 1}),  # 2.5x and 0.15 s
        ("b.iteration_3", "ok", 0.1, {"x": 1}),
        ("b.iteration_4", "ok", 0.19, {"x": 1}),  # 1.9x
        ("b.iteration_5", "ok", 0.06, {"x": 1}),  # from 0 s
        ("b.iteration_6", "error", 0.1, {"error": "e"}),
        ("b.iteration_7", "cancelled", 0.1, None),
        ("b.iteration_8", "ok", 0.1, {"keep": 1, "x": 2, "new": 0}),
    ], flow="two")
    diff = diff_traces(a, b)
    assert changes(diff) == {"b.iteration_2": "slower", "b.iteration_3": "faster",
                             "b.iteration_5": "slower", "b.iteration_8": "outputs"}
    assert diff.get("b") is not None and diff.get("b").change == "same"  # batch timing is not compared
    assert diff.get("b.iteration_0").outputs_equal is True  # type: ignore[union-attr]
    assert diff.get("b.iteration_6").error_a == "b.iteration_6 broke"  # type: ignore[union-attr]
    assert diff.get("b.iteration_7").outputs_equal is True  # type: ignore[union-attr]
    assert diff.get("b.iteration_8").outputs_key == "x"  # type: ignore[union-attr]
    assert diff.get("b.iteration_3").note() == "3.0× faster"  # type: ignore[union-attr]
    assert changes(diff_traces(a, b, duration_ratio=1.5, duration_floor=0.0))["b.iteration_4"] == "slower"
    assert "b.iteration_2" not in changes(diff_traces(a, b, duration_floor=1.0))

    # an opened index, a Trace in memory and a trace re-formatted by another tool diff the same
    pretty = tmp_path / "pretty.json"
    pretty.write_text(json.dumps(json.loads(b.read_bytes()), indent=2))
    for other in (TraceIndex(b), read_trace(b), pretty):
        assert changes(diff_traces(TraceIndex(a), other)) == changes(diff)


def test_a_truncated_trace_diffs_with_what_it_holds(tmp_path: Path, calc_a: Path) -> None:
    lines = calc_a.read_bytes().split(b"\n")
    at = next(i for i, line in enumerate(lines)
              if b'"kind":"item.start","path":"calc.square.iteration_2"' in line)
    cut = tmp_path / "cut.json"
    cut.write_bytes(b"\n".join(lines[: at + 1]) + b"\n" + lines[at + 1][:25])  # a half line at the end
    diff = diff_traces(calc_a, cut)
    assert diff.b.truncated and diff.b.status == "interrupted" and diff.b.duration is None
    assert not diff.a.truncated
    assert changes(diff) == {
        "": "status", "square": "status", "square.iteration_2": "status",  # started, never ended
        "square.iteration_3": "removed", "think": "removed", "report": "removed",
    }
    row = diff.get("square.iteration_2")
    assert row is not None and (row.status_a, row.status_b) == ("ok", "unfinished")
    assert row.duration_b is None and row.outputs_equal is None
    assert diff.get("square.iteration_1").change == "same"  # type: ignore[union-attr]
    assert diff_traces(cut, cut).changed() == []

    unfinished = write_trace(tmp_path / "open.json", [("b.iteration_0", "ok", 0.1, {"x": 1})],
                             finish=False)
    finished = write_trace(tmp_path / "done.json", [("b.iteration_0", "ok", 0.1, {"x": 1})])
    d = diff_traces(finished, unfinished)  # every event there, only the footer missing
    assert d.b.truncated and d.b.status == "interrupted" and d.changed() == []


def test_not_a_trace_raises(tmp_path: Path) -> None:
    (tmp_path / "notes.txt").write_text("hello\n")
    with pytest.raises(TraceError, match="not a pflow-tui trace"):
        diff_traces(tmp_path / "notes.txt", tmp_path / "notes.txt")


# --- the command line --------------------------------------------------------------------------

def test_cli_exit_codes_and_rows(tmp_path: Path, calc_a: Path, calc_b: Path,
                                 capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["diff", str(calc_a), str(calc_b)]) == 1
    out = capsys.readouterr().out
    lines = [flat(line) for line in out.splitlines()]
    assert any(line.startswith(f"A {calc_a} flow calc ok") for line in lines)
    assert any(line.startswith(f"B {calc_b} flow calc ok") and "source flow.json" in line
               for line in lines)
    assert "path change status A → B duration A → B note" in lines
    rows = [line for line in lines if line.startswith(("(run) ", "square", "think", "report"))]
    assert len(rows) == 5
    assert rows[0].startswith("(run) slower ok ")
    assert rows[1].startswith("square outputs ok ") and rows[1].endswith("outputs differ: key success_count")
    assert rows[2].startswith("square.iteration_2 outputs ok ") and rows[2].endswith("key echo")
    assert rows[3].startswith("square.iteration_3 status ok → error ")
    assert rows[3].endswith("echo message must be a string, got int")
    assert rows[4].startswith("think slower ok ") and rows[4].endswith("× slower")
    assert lines[-1] == "5 of 8 paths differ: 1 status, 2 outputs, 2 slower"

    assert main(["diff", str(calc_a), str(calc_b), "--limit", "2"]) == 1
    out = flat(capsys.readouterr().out)
    assert "square.iteration_2" not in out and "... and 3 more" in out

    assert main(["diff", str(calc_a), str(calc_b), "--all", "--limit", "0"]) == 1
    out = flat(capsys.readouterr().out)
    assert "square.iteration_0 same ok" in out and "report same ok" in out

    assert main(["diff", str(calc_a), str(calc_a)]) == 0
    out = capsys.readouterr().out
    assert "path change" not in out and "no differences: 8 paths" in flat(out)


def test_cli_identical_deterministic_runs_exit_0(tmp_path: Path, calc_a: Path,
                                                 capsys: pytest.CaptureFixture[str]) -> None:
    again = run_doc(tmp_path, CALC, "again", items=ITEMS)
    assert main(["diff", str(calc_a), str(again)]) == 0
    assert "no differences" in capsys.readouterr().out


def test_cli_exit_2_when_a_file_is_not_a_trace(tmp_path: Path, calc_a: Path,
                                               capsys: pytest.CaptureFixture[str]) -> None:
    flow = tmp_path / "flow.json"
    flow.write_text(json.dumps(CALC))
    assert main(["diff", str(calc_a), str(flow)]) == 2
    assert "not a pflow-tui trace" in capsys.readouterr().err
    assert main(["diff", str(tmp_path / "missing.json"), str(calc_a)]) == 2
    assert "cannot read" in capsys.readouterr().err
    (tmp_path / "binary.json").write_bytes(b"\x00\x01\x02")
    assert main(["diff", str(calc_a), str(tmp_path / "binary.json")]) == 2
    capsys.readouterr()


def test_cli_shows_untrusted_text_literally(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    a = run_doc(tmp_path, CALC, "a", source="[bold red]src[/bold red]\x1b[2J", items=["a"])
    b = run_doc(tmp_path, CALC, "b", source="[bold red]src[/bold red]\x1b[2J", items=[1])
    assert main(["diff", str(a), str(b)]) == 1
    out = capsys.readouterr().out
    assert "[bold red]src[/bold red]\\x1b[2J" in out and "\x1b" not in out


def test_cli_usage_lists_diff(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--help"]) == 0
    assert "pflow-tui diff A.json B.json" in capsys.readouterr().out


# --- scale -------------------------------------------------------------------------------------

@pytest.mark.slow
def test_a_20000_item_batch_diffs(tmp_path: Path) -> None:
    doc = {"name": "big", "inputs": {"items": {"type": "array"}},
           "nodes": [{"id": "sq", "type": "echo",
                      "batch": {"items": "${items}", "error_handling": "continue"},
                      "params": {"message": "${item}", "count": 2}},
                     {"id": "done", "type": "echo", "params": {"message": "x"}}],
           "edges": [{"from": "sq", "to": "done"}]}
    n = 20_000
    items = [f"v{i}" for i in range(n)]
    a = run_doc(tmp_path, doc, "a", items=items)
    items[5], items[12_345] = "changed", 7
    b = run_doc(tmp_path, doc, "b", items=items)
    t0 = time.perf_counter()
    diff = diff_traces(a, b, duration_floor=60.0)  # durations aside: the counts are exact
    elapsed = time.perf_counter() - t0
    print(f"20,000-item diff: {elapsed:.2f} s")
    assert len(diff.rows) == n + 3
    assert diff.counts == {"added": 0, "removed": 0, "status": 1, "outputs": 2, "slower": 0,
                           "restored": 0, "faster": 0, "same": n}
    assert changes(diff) == {"sq": "outputs", "sq.iteration_5": "outputs", "sq.iteration_12345": "status"}
    assert sum(diff.counts[c] for c in CHANGES) == len(diff.rows)


# --- a re-run against the run it re-ran ----------------------------------------------------------

SLOW = {"name": "slow", "nodes": [
    {"id": "prep", "type": "shell", "params": {"command": "sleep 0.06; echo ready"}},
    {"id": "sq", "type": "shell", "batch": {"items": [1, 2, 3], "error_handling": "continue"},
     "params": {"command": "sleep 0.06; test ${item} -ne 2 && echo ${item}"}}],
    "edges": [{"from": "prep", "to": "sq"}]}


def test_work_a_rerun_restored_is_restored_not_faster(tmp_path: Path, capsys) -> None:
    from pflow_tui.engine.trace.rerun import prepare_rerun

    original = run_doc(tmp_path, SLOW, "orig")
    spec, inputs, cache = prepare_rerun(original)
    again = tmp_path / "again.json"
    run_flow(spec, inputs, trace=again, cache=cache)
    for a, b, side in ((original, again, "B"), (again, original, "A")):
        diff = diff_traces(a, b, duration_floor=60.0)
        by_path = {r.path: r for r in diff.rows}
        for path in ("prep", "sq.iteration_0", "sq.iteration_2"):
            assert by_path[path].change == "restored", (path, by_path[path])
            assert by_path[path].note() == f"restored in {side} from the run it re-ran"
        assert by_path["sq.iteration_1"].change == "same"  # it ran again, and failed again
        for path in ("sq", ""):  # they hold restored work: 0 s of it says nothing about speed
            assert by_path[path].change == "same" and by_path[path].partly_restored
            assert by_path[path].note() == "partly restored: durations not compared"
        assert not diff.differs and diff.changed() == []
        assert summary_line(diff).endswith("; 3 restored by a re-run")
        assert sum(diff.counts[c] for c in CHANGES) == len(diff.rows)
    # the slow path (events in memory) agrees with the fast one
    mem = diff_traces(read_trace(original), read_trace(again))
    fast = diff_traces(original, again)
    assert [(r.path, r.change) for r in mem.rows] == [(r.path, r.change) for r in fast.rows]
    assert main(["diff", str(original), str(again), "--all"]) == 0
    out = flat(capsys.readouterr().out)
    assert "sq.iteration_0 restored ok" in out and "faster" not in out
