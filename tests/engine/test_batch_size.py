"""Bounded-memory batches: ``batch.batch_size``, items from lines and JSON-lines files.

The ``probe`` node type counts the items running at once and yields to the event loop a
number of times that depends on the item, so that parallel items end out of order
without any timing in the tests.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import anyio
import jsonschema
import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pflow_tui.cli import main
from pflow_tui.engine.ir.load import build_flow
from pflow_tui.engine.nodes.base import NodeType, Param, RunContext
from pflow_tui.engine.registry import registry
from pflow_tui.engine.run import collect
from pflow_tui.engine.run.executor import RunResult, run_flow
from pflow_tui.engine.run.spill import SpilledList, open_ref
from pflow_tui.engine.trace import events as ev
from pflow_tui.engine.trace.rerun import rerun_flow
from pflow_tui.engine.trace.writer import read_trace, trace_schema


class Probe:
    def __init__(self) -> None:
        self.running = 0
        self.peak = 0
        self.calls: list[Any] = []

    async def run(self, params: dict[str, Any], ctx: RunContext) -> dict[str, Any]:
        value = params.get("value")
        self.calls.append(value)
        self.running += 1
        self.peak = max(self.peak, self.running)
        try:
            for _ in range(params.get("turns") or 0):  # end out of order, deterministically
                await anyio.sleep(0)
        finally:
            self.running -= 1
        flag = params.get("fail_unless")
        if value in (params.get("fail_on") or ()) and not (flag and Path(flag).exists()):
            if params.get("raise"):
                raise RuntimeError(f"probe raised on {value}")
            return {"error": f"bad {value}", "value": value}
        return {"value": value, "sq": value * value if isinstance(value, int) else None}

    def node_type(self) -> NodeType:
        return NodeType("probe", self.run, params=(
            Param("value"), Param("turns", "int"), Param("fail_on", "list"), Param("raise", "bool"),
            Param("fail_unless", "str")))


def reg_with(probe: Probe) -> dict[str, NodeType]:
    return {**registry(), "probe": probe.node_type()}


def run(doc: dict[str, Any], trace: Path, probe: Probe | None = None) -> tuple[RunResult, list]:
    reg = reg_with(probe or Probe())
    events: list[dict[str, Any]] = []
    trace.unlink(missing_ok=True)  # hypothesis examples share tmp_path: one run per trace file
    result = run_flow(build_flow(doc, registry=reg, base_dir=trace.parent), {}, trace=trace,
                      sinks=[events.append], registry=reg)
    return result, events


def batch_doc(n: int, batch: dict[str, Any], *, fail_on: list[int] = (), raising: bool = False,
              after: dict[str, Any] | None = None) -> dict[str, Any]:
    nodes = [{"id": "p", "type": "probe", "batch": {"items": list(range(n)), **batch},
              "params": {"value": "${item}", "turns": "${item}", "fail_on": list(fail_on),
                         "raise": raising}}]
    if after is not None:
        nodes.append({"id": "after", **after})
    return {"name": "f", "nodes": nodes,
            "edges": [{"from": "p", "to": "after"}] if after is not None else []}


def as_json(value: Any) -> Any:
    return orjson.loads(orjson.dumps(value, default=lambda v: v.tolist()))


def comparable(output: dict[str, Any]) -> dict[str, Any]:
    """A batch output without what may differ between runs (timing) or modes (batch_size)."""
    out = {k: v for k, v in output.items() if k != "results"}
    meta = dict(out.pop("batch_metadata"))
    meta.pop("timing")
    meta.pop("batch_size", None)
    return {**out, "batch_metadata": meta, "results": as_json(list(output["results"]))}


def window_ok(events: list[dict[str, Any]], path: str, size: int, concurrency: int) -> None:
    """Never more than ``size`` items from the oldest one not ended to the newest started,
    nor more than ``concurrency`` between their start and end."""
    ended: set[int] = set()
    oldest = running = 0
    for e in events:
        if not e["path"].startswith(path + ".iteration_"):
            continue
        if e["kind"] == ev.ITEM_START:
            running += 1
            assert running <= concurrency
            assert e["index"] < oldest + size, (e["index"], oldest, size)
        elif e["kind"] == ev.ITEM_END:
            running -= 1
            ended.add(e["index"])
            while oldest in ended:
                oldest += 1


# --- the window and the results --------------------------------------------------------------------

@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(n=st.integers(1, 45), size=st.integers(1, 12), concurrency=st.integers(1, 8),
       parallel=st.booleans(), fail_on=st.lists(st.integers(0, 44), max_size=4),
       raising=st.booleans())
def test_outputs_are_the_same_with_and_without_batch_size(
        tmp_path: Path, n: int, size: int, concurrency: int, parallel: bool, fail_on: list[int],
        raising: bool) -> None:
    batch = {"parallel": parallel, "max_concurrent": concurrency, "error_handling": "continue"}
    plain, _ = run(batch_doc(n, batch, fail_on=fail_on, raising=raising), tmp_path / "a.json")
    probe = Probe()
    chunked, events = run(batch_doc(n, {**batch, "batch_size": size}, fail_on=fail_on,
                                    raising=raising), tmp_path / "b.json", probe)
    assert isinstance(chunked.store["p"]["results"], SpilledList)
    assert comparable(chunked.store["p"]) == comparable(plain.store["p"])
    assert chunked.store["p"]["batch_metadata"]["batch_size"] == size
    limit = min(size, concurrency) if parallel else 1
    assert probe.peak <= limit
    window_ok(events, "f.p", size, limit)
    assert sorted(probe.calls) == list(range(n))


@pytest.mark.parametrize("size,concurrency", [(3, 10), (10, 3), (4, 4), (1, 5)])
def test_a_parallel_batch_keeps_its_window_full(tmp_path: Path, size: int, concurrency: int) -> None:
    probe = Probe()
    result, events = run(batch_doc(60, {"parallel": True, "max_concurrent": concurrency,
                                        "batch_size": size}), tmp_path / "t.json", probe)
    assert result.status == "ok"
    assert probe.peak == min(size, concurrency)  # refilled as items end, up to the limit
    window_ok(events, "f.p", size, min(size, concurrency))
    start = next(e for e in events if e["kind"] == ev.NODE_START)
    assert start["batch"]["batch_size"] == size and start["batch"]["count"] == 60


def test_fail_fast_stops_and_keeps_what_ended(tmp_path: Path) -> None:
    for parallel in (False, True):
        result, events = run(batch_doc(40, {"parallel": parallel, "max_concurrent": 4,
                                            "batch_size": 5}, fail_on=[7]), tmp_path / "t.json")
        assert result.status == "failed"
        assert result.error["message"] == "item 7 failed: bad 7"
        assert result.error["path"] == "f.p.iteration_7"
        out = result.store["p"]
        results = list(out["results"])
        assert len(results) == 40 and results[7] == {"error": "bad 7", "value": 7, "item": 7}
        assert all(r is None for r in results[12:])  # never started: the window ends at 11
        ended = {e["index"] for e in events if e["kind"] == ev.ITEM_END and e["status"] != "cancelled"}
        assert {i for i, r in enumerate(results) if r is not None} == ended


def test_errors_are_listed_in_index_order_and_capped(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setattr(collect, "MAX_ERRORS", 3)
    fail_on = [30, 2, 11, 25, 5]
    result, _ = run(batch_doc(35, {"parallel": True, "max_concurrent": 6, "batch_size": 8,
                                   "error_handling": "continue"}, fail_on=fail_on, raising=True),
                    tmp_path / "t.json")
    out = result.store["p"]
    assert out["error_count"] == 5 and out["success_count"] == 30
    assert [e["index"] for e in out["errors"]] == [2, 5, 11]
    assert out["errors_omitted"] == 2
    assert out["errors"][0]["exception"]["message"] == "probe raised on 2"
    assert [i for i, r in enumerate(out["results"]) if r is None] == sorted(fail_on)
    plain, _ = run(batch_doc(35, {"parallel": True, "max_concurrent": 6, "error_handling": "continue"},
                             fail_on=fail_on, raising=True), tmp_path / "u.json")
    assert "errors_omitted" not in plain.store["p"] and len(plain.store["p"]["errors"]) == 5


# --- item sources ---------------------------------------------------------------------------------

def test_lines_of_a_shell_nodes_stdout(tmp_path: Path) -> None:
    doc = {"name": "f", "nodes": [
        {"id": "ls", "type": "shell", "params": {"command": "printf 'b.txt\\n\\na.txt\\r\\nc d.txt\\n'"}},
        {"id": "each", "type": "echo", "params": {"message": "${__index__}:${name}"},
         "batch": {"items": {"lines_of": "${ls.stdout}"}, "as": "name", "batch_size": 2}},
        {"id": "all", "type": "echo", "params": {"message": "${each[*].echo}"}}],
        "edges": [{"from": "ls", "to": "each"}, {"from": "each", "to": "all"}]}
    result, events = run(doc, tmp_path / "t.json")
    assert result.status == "ok", result.error
    assert [r["echo"] for r in result.store["each"]["results"]] == ["0:b.txt", "1:a.txt", "2:c d.txt"]
    assert json.loads(result.store["all"]["echo"]) == ["0:b.txt", "1:a.txt", "2:c d.txt"]
    start = next(e for e in events if e["kind"] == ev.NODE_START and e["path"] == "f.each")
    assert start["batch"]["count"] == 3


def test_jsonl_and_lines_files_stream_their_items(tmp_path: Path) -> None:
    (tmp_path / "data").mkdir()
    rows = [{"id": i, "name": f"n{i}"} for i in range(25)]
    (tmp_path / "data" / "rows.jsonl").write_text("\n".join(json.dumps(r) for r in rows) + "\n\n")
    (tmp_path / "data" / "names.txt").write_text("x\ny\n")
    doc = {"name": "f", "inputs": {"dir": {"type": "string", "default": "data"}}, "nodes": [
        {"id": "rows", "type": "echo", "params": {"message": "${row.name}", "data": "${row.id}"},
         "batch": {"items": {"jsonl_file": "${dir}/rows.jsonl"}, "as": "row", "parallel": True,
                   "max_concurrent": 3, "batch_size": 4}},
        {"id": "names", "type": "echo", "params": {"message": "${item}"},
         "batch": {"items": {"lines_file": "data/names.txt"}}}],
        "edges": [{"from": "rows", "to": "names"}]}
    spec = build_flow(doc, base_dir=tmp_path)
    result = run_flow(spec, {"dir": "data"}, trace=tmp_path / "out" / "t.json")
    assert result.status == "ok", result.error
    assert [r["data"] for r in result.store["rows"]["results"]] == list(range(25))
    assert result.store["rows"]["results"][24]["item"] == rows[24]
    assert [r["echo"] for r in result.store["names"]["results"]] == ["x", "y"]  # without batch_size


def test_a_bad_line_in_the_middle_fails_the_node_after_the_items_before_it(tmp_path: Path) -> None:
    (tmp_path / "rows.jsonl").write_text('{"v": 1}\n{"v": 2}\n\n{"v": 3\n{"v": 4}\n')
    doc = {"name": "f", "nodes": [
        {"id": "p", "type": "probe", "params": {"value": "${item.v}"},
         "batch": {"items": {"jsonl_file": "rows.jsonl"}, "batch_size": 2}},
        {"id": "on_error", "type": "echo", "params": {"message": "${p.error}"}}],
        "edges": [{"from": "p", "to": "on_error", "action": "error"}]}
    probe = Probe()
    result, events = run(doc, tmp_path / "t.json", probe)
    assert probe.calls == [1, 2]
    message = result.store["on_error"]["echo"]
    assert message.startswith("batch.items.jsonl_file: rows.jsonl line 4 is not JSON (")
    assert message.endswith('): {"v": 3')
    end = next(e for e in events if e["kind"] == ev.NODE_END and e["path"] == "f.p")
    assert end["status"] == "error" and end["error"]["type"] == "ItemsError"
    assert end["progress"] == {"done": 2, "failed": 0, "total": 4}
    assert list(result.store["p"]["results"])[:2] == [{"value": 1, "sq": 1, "item": {"v": 1}},
                                                      {"value": 2, "sq": 4, "item": {"v": 2}}]


def test_a_missing_file_is_a_clear_run_time_error(tmp_path: Path, capsys) -> None:
    flow = tmp_path / "flow.json"
    flow.write_text(json.dumps({"nodes": [{"id": "p", "type": "echo", "params": {"message": "${item}"},
                                           "batch": {"items": {"lines_file": "in/names.txt"}}}]}))
    code = main(["run", str(flow), "--trace", str(tmp_path / "t.json")])
    out = " ".join((capsys.readouterr().err).split())
    assert code == 1
    assert f"batch.items.lines_file: file not found: in/names.txt (looked for {tmp_path}/in/names.txt" in out
    assert "Traceback" not in out


# --- templates over spilled results -----------------------------------------------------------------

def test_templates_read_spilled_results_like_a_list(tmp_path: Path) -> None:
    after = {"type": "echo", "params": {
        "message": "${p.results[3].sq} ${p.results[8].value} ${p.iteration_5.sq} ${p.count}",
        "data": {"all": "${p[*].sq}", "whole": "${p.results}"}}}
    doc = batch_doc(9, {"batch_size": 2, "parallel": True}, after=after)
    result, _ = run(doc, tmp_path / "t.json")
    assert result.status == "ok", result.error
    out = result.store["after"]
    assert out["echo"] == "9 8 25 9"
    assert out["data"]["all"] == [i * i for i in range(9)]
    assert out["data"]["whole"] == [{"value": i, "sq": i * i, "item": i} for i in range(9)]
    assert type(out["data"]["whole"]) is list  # a node is given plain values


def test_aggregates_read_spilled_results_one_at_a_time(tmp_path: Path) -> None:
    stats = ("count", "sum", "min", "max", "mean", "p50", "p95")
    after = {"type": "echo", "params": {"message": "n=${p.aggregate.count}",
                                        "data": {s: f"${{p.aggregate.{s}.sq}}" for s in stats}}}
    outs = []
    for batch in ({"batch_size": 4, "parallel": True, "error_handling": "continue"},
                  {"error_handling": "continue"}):
        result, _ = run(batch_doc(30, batch, fail_on=[3], after=after), tmp_path / "t.json")
        assert result.status == "ok", result.error
        outs.append(result.store["after"])
    assert outs[0] == outs[1]
    squares = [i * i for i in range(30) if i != 3]
    assert outs[0]["echo"] == "n=29" and outs[0]["data"]["sum"] == sum(squares)
    assert outs[0]["data"]["p95"] == sorted(squares)[27] and outs[0]["data"]["max"] == 841


def test_a_batch_over_spilled_results_streams_them(tmp_path: Path) -> None:
    doc = batch_doc(12, {"batch_size": 3}, after={
        "type": "echo", "params": {"message": "n=${item}"},
        "batch": {"items": "${p[*].sq}", "batch_size": 5, "parallel": True, "max_concurrent": 2}})
    result, _ = run(doc, tmp_path / "t.json")
    assert result.status == "ok", result.error
    assert [r["echo"] for r in result.store["after"]["results"]] == [f"n={i * i}" for i in range(12)]


def test_the_trace_holds_a_reference_to_the_results_file(tmp_path: Path) -> None:
    trace = tmp_path / "runs" / "t.json"
    result, _ = run(batch_doc(30, {"batch_size": 7, "parallel": True}), trace)
    data = orjson.loads(trace.read_bytes())
    jsonschema.Draft202012Validator(trace_schema()).validate(data)
    ref = data["store"]["p"]["results"]
    assert ref == {"jsonl_file": "t.results/f.p.jsonl", "count": 30}
    assert (tmp_path / "runs" / "t.results" / "f.p.jsonl").is_file()
    assert open_ref(ref, trace) == list(result.store["p"]["results"])
    store = next(e for e in data["events"] if e["kind"] == ev.STORE_WRITE and e["key"] == "p")
    assert store["omitted"] == ["results"] and "results" not in store["value"]
    # the same trace written again: its results folder is written again, nothing stale left
    (tmp_path / "runs" / "t.results" / "stale.jsonl").write_text("1\n")
    run(batch_doc(3, {"batch_size": 7}), trace)
    assert sorted(p.name for p in (tmp_path / "runs" / "t.results").iterdir()) == ["f.p.jsonl"]


def test_the_analysis_batch_config_alias_gives_a_chunked_batch(tmp_path: Path) -> None:
    doc = {**batch_doc(20, {"parallel": True, "max_concurrent": 8}), "batch_config": {"batch_size": 3}}
    probe = Probe()
    result, events = run(doc, tmp_path / "t.json", probe)
    assert isinstance(result.store["p"]["results"], SpilledList)
    assert probe.peak <= 3
    window_ok(events, "f.p", 3, 3)


def test_a_batched_workflow_node_spills_too(tmp_path: Path) -> None:
    doc = {"name": "f", "nodes": [{"id": "w", "type": "workflow", "batch": {
        "items": ["a", "b", "c", "d"], "parallel": True, "max_concurrent": 2, "batch_size": 3},
        "params": {"param_mapping": {"x": "${item}"}, "workflow_ir": {
            "inputs": {"x": {"type": "string"}},
            "nodes": [{"id": "up", "type": "echo", "params": {"message": "${x}", "uppercase": True}}],
            "outputs": {"loud": {"source": "${up.echo}"}}}}}]}
    result, events = run(doc, tmp_path / "t.json")
    assert result.status == "ok", result.error
    assert [r["loud"] for r in result.store["w"]["results"]] == ["A", "B", "C", "D"]
    assert any(e["path"] == "f.w.iteration_3.up" for e in events)


# --- re-run -----------------------------------------------------------------------------------------

def test_a_rerun_of_a_failed_chunked_batch_runs_only_the_failed_items(tmp_path: Path) -> None:
    flag = tmp_path / "fixed"
    doc = batch_doc(50, {"parallel": True, "max_concurrent": 4, "batch_size": 6,
                         "error_handling": "continue"}, after={
        "type": "echo", "params": {"message": "${p.success_count} ${p.error_count} ${p.results[18].value}"}})
    doc["nodes"][0]["params"]["fail_unless"] = str(flag)
    fail_on = [3, 17, 18, 49]
    doc["nodes"][0]["params"]["fail_on"] = fail_on
    probe = Probe()
    first, _ = run(doc, tmp_path / "t1.json", probe)
    assert first.store["p"]["error_count"] == 4
    assert first.store["after"]["echo"] == "46 4 18"
    flag.touch()
    probe.calls.clear()
    reg = reg_with(probe)
    events: list[dict[str, Any]] = []
    again = rerun_flow(tmp_path / "t1.json", trace=tmp_path / "t2.json", sinks=[events.append],
                       registry=reg)
    assert again.status == "ok", again.error
    assert sorted(probe.calls) == fail_on
    assert again.rerun["restored_items"] == 46 and again.rerun["ran_items"] == 4
    assert again.store["after"]["echo"] == "50 0 18"
    fresh, _ = run({**doc, "nodes": [dict(n) for n in doc["nodes"]]}, tmp_path / "t3.json")
    assert comparable(again.store["p"]) == comparable(fresh.store["p"])
    cached = [e["index"] for e in events if e["kind"] == ev.ITEM_END and e.get("cached")]
    assert sorted(cached) == sorted(set(range(50)) - set(fail_on))
    # a re-run of the re-run restores everything, from its own results
    probe.calls.clear()
    third = rerun_flow(tmp_path / "t2.json", trace=tmp_path / "t4.json", registry=reg)
    assert probe.calls == [] and third.rerun["ran_items"] == 0
    assert read_trace(tmp_path / "t4.json").store["p"]["results"]["count"] == 50


# --- replay and diff ----------------------------------------------------------------------------------

def test_replay_and_diff_read_a_chunked_run_from_its_events(tmp_path: Path) -> None:
    from pflow_tui.app.graph import Graph
    from pflow_tui.app.model import RunModel
    from pflow_tui.engine.ir.spec import children_ir
    from pflow_tui.engine.trace.diff import diff_traces
    from pflow_tui.engine.trace.reader import TraceIndex
    from pflow_tui.engine.trace.replay import LazyEvents

    doc = batch_doc(40, {"parallel": True, "max_concurrent": 3, "batch_size": 5,
                         "error_handling": "continue"}, fail_on=[6, 30])
    _, events = run(doc, tmp_path / "a.json")
    run(doc, tmp_path / "b.json")
    spec = build_flow(doc, registry=reg_with(Probe()))
    graph = Graph.from_ir(spec.ir, spec.name, children_ir(spec))
    live = RunModel(graph)
    live.apply(events)
    index = TraceIndex(tmp_path / "a.json")
    replayed = RunModel(graph, LazyEvents(index))
    replayed.apply(index.summaries(0, len(index)))
    for model in (live, replayed):
        table = model.latest["p"].items
        assert (table.done, table.failed, list(table.failures)) == (38, 2, [6, 30])
    assert index.footer["store"]["p"]["results"] == {"jsonl_file": "a.results/f.p.jsonl", "count": 40}
    assert not diff_traces(tmp_path / "a.json", tmp_path / "b.json").changed()
