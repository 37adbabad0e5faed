"""Re-run from failure (RunCache, rerun_flow, the rerun command) and fork_item.

Flows use ``probe``: an async node type that records every call (its event path), and
fails while a flag file is missing (``fail_unless``), for the items listed in ``fail_on``
only when given. A re-run after creating the flag succeeds, so what ran again is
exactly the list of calls.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Any

import jsonschema
import orjson
import pytest

from pflow_tui.cli import main
from pflow_tui.engine.ir.load import build_flow
from pflow_tui.engine.nodes.base import NodeType, Param, RunContext
from pflow_tui.engine.problems import FlowError
from pflow_tui.engine.registry import registry
from pflow_tui.engine.run.cache import RunCache
from pflow_tui.engine.run.executor import RunResult, run_flow
from pflow_tui.engine.trace import events as ev
from pflow_tui.engine.trace.fork import ForkError, fork_item
from pflow_tui.engine.trace.reader import TraceIndex
from pflow_tui.engine.trace.rerun import rerun_flow
from pflow_tui.engine.trace.writer import TraceError, read_trace, trace_schema


@pytest.fixture(autouse=True)
def _in_tmp(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)


class Probe:
    def __init__(self) -> None:
        self.calls: list[str] = []

    async def run(self, params: dict[str, Any], ctx: RunContext) -> dict[str, Any]:
        self.calls.append(ctx.path)
        flag = params.get("fail_unless")
        fail_on = params.get("fail_on")
        if flag and not Path(flag).exists() and (fail_on is None or params.get("v") in fail_on):
            raise RuntimeError(f"probe failed at {ctx.path}")
        v = params.get("v")
        return {"v": v, "sq": v * v if isinstance(v, int) else None, **(params.get("out") or {})}

    def node_type(self) -> NodeType:
        return NodeType("probe", self.run, params=(
            Param("v"), Param("out", "dict"), Param("fail_unless", "str"), Param("fail_on", "list")))


@pytest.fixture
def probe() -> Probe:
    return Probe()


@pytest.fixture
def reg(probe: Probe) -> dict[str, NodeType]:
    return {**registry(), "probe": probe.node_type()}


@pytest.fixture(scope="module")
def validator() -> jsonschema.Draft202012Validator:
    schema = trace_schema()
    jsonschema.Draft202012Validator.check_schema(schema)
    return jsonschema.Draft202012Validator(
        schema, format_checker=jsonschema.Draft202012Validator.FORMAT_CHECKER)


def first_run(doc: dict[str, Any], reg: dict[str, NodeType], trace: Path,
              inputs: dict[str, Any] | None = None) -> RunResult:
    return run_flow(build_flow(doc, registry=reg), inputs or {}, trace=trace, registry=reg)


def rerun(trace: Path, out: Path, reg: dict[str, NodeType], **kw: Any
          ) -> tuple[RunResult, list[dict[str, Any]]]:
    events: list[dict[str, Any]] = []
    result = rerun_flow(trace, trace=out, sinks=[events.append], registry=reg, **kw)
    return result, events


def of(events: list[dict[str, Any]], kind: str, **match: Any) -> list[dict[str, Any]]:
    return [e for e in events if e["kind"] == kind and all(e.get(k) == v for k, v in match.items())]


def cached_paths(events: list[dict[str, Any]], kind: str) -> list[str]:
    return [e["path"] for e in of(events, kind) if e.get("cached")]


def assert_valid(validator: jsonschema.Draft202012Validator, path: Path) -> dict[str, Any]:
    doc = orjson.loads(path.read_bytes())
    errors = sorted(validator.iter_errors(doc), key=lambda e: list(e.absolute_path))
    assert not errors, "\n".join(f"{e.json_path}: {e.message[:300]}" for e in errors[:10])
    return doc


def batch_flow(flag: Path, *, parallel: bool = True, handling: str = "continue") -> dict[str, Any]:
    return {"name": "b", "nodes": [
        {"id": "gen", "type": "probe", "params": {"v": 10}},
        {"id": "sq", "type": "probe",
         "params": {"v": "${item}", "fail_unless": str(flag), "fail_on": [2, 5, 7]},
         "batch": {"items": list(range(10)), "parallel": parallel, "max_concurrent": 4,
                   "error_handling": handling}},
        {"id": "total", "type": "probe", "params": {"v": "${sq.success_count}"}},
    ], "edges": [{"from": "gen", "to": "sq"}, {"from": "sq", "to": "total"}]}


# --- batches: only the failed items run ---------------------------------------------------------

def test_a_parallel_batch_reruns_exactly_its_failed_items(
        tmp_path: Path, probe: Probe, reg: dict[str, NodeType],
        validator: jsonschema.Draft202012Validator) -> None:
    flag = tmp_path / "fixed"
    first = first_run(batch_flow(flag), reg, tmp_path / "t1.json")
    assert first.status == "ok"  # error_handling continue: the batch ends ok with 3 failures
    assert first.store["sq"]["error_count"] == 3
    assert first.store["total"]["v"] == 7
    flag.touch()
    probe.calls.clear()

    result, events = rerun(tmp_path / "t1.json", tmp_path / "t2.json", reg)

    assert result.status == "ok", result.error
    # exactly the 3 failed items ran, and the node after the batch (its input changed)
    assert sorted(probe.calls) == ["b.sq.iteration_2", "b.sq.iteration_5", "b.sq.iteration_7",
                                   "b.total"]
    assert sorted(cached_paths(events, ev.ITEM_END)) == [
        f"b.sq.iteration_{i}" for i in (0, 1, 3, 4, 6, 8, 9)]
    assert [e["path"] for e in of(events, ev.ITEM_START) if not e.get("cached")] == [
        f"b.sq.iteration_{i}" for i in (2, 5, 7)]
    # the batch's output is complete and in order
    out = result.store["sq"]
    assert [r["v"] for r in out["results"]] == list(range(10))
    assert [r["item"] for r in out["results"]] == list(range(10))
    assert (out["count"], out["success_count"], out["error_count"], out["errors"]) == (10, 10, 0, None)
    assert result.store["total"]["v"] == 10
    assert cached_paths(events, ev.NODE_END) == ["b.gen"]  # the batch ran (in part): not cached
    assert result.rerun is not None
    assert {k: result.rerun[k] for k in ("restored_nodes", "ran_nodes", "restored_items",
                                          "ran_items")} == {
        "restored_nodes": 1, "ran_nodes": 2, "restored_items": 7, "ran_items": 3}
    # restored events carry the recorded values, duration 0, no attempts
    e0 = of(events, ev.ITEM_END, path="b.sq.iteration_0")[0]
    assert (e0["status"], e0["duration"], e0["attempts"], e0["outputs"]["sq"]) == ("ok", 0.0, 0, 0)
    s4 = of(events, ev.ITEM_START, path="b.sq.iteration_4")[0]
    assert (s4["item"], s4["params"], s4["cached"]) == (4, {"v": 4}, True)
    # the new trace links back, and is valid
    doc = assert_valid(validator, tmp_path / "t2.json")
    assert doc["rerun_of"] == str((tmp_path / "t1.json").resolve())
    assert doc["events"][0]["rerun_of"] == doc["rerun_of"]
    assert doc["status"] == "ok"


def test_a_rerun_of_a_complete_run_restores_everything(
        tmp_path: Path, probe: Probe, reg: dict[str, NodeType],
        validator: jsonschema.Draft202012Validator) -> None:
    flag = tmp_path / "fixed"
    flag.touch()
    first = first_run(batch_flow(flag), reg, tmp_path / "t1.json")
    probe.calls.clear()
    result, events = rerun(tmp_path / "t1.json", tmp_path / "t2.json", reg)
    assert result.status == "ok"
    assert probe.calls == []
    # a batch whose items were all restored still writes its full output, and is cached
    assert result.store["sq"]["results"] == first.store["sq"]["results"]
    assert cached_paths(events, ev.NODE_END) == ["b.gen", "b.sq", "b.total"]
    assert len(cached_paths(events, ev.ITEM_END)) == 10
    assert {k: v for k, v in result.store.items() if k != "sq"} == {
        k: v for k, v in first.store.items() if k != "sq"}
    assert_valid(validator, tmp_path / "t2.json")
    # a re-run of the re-run restores from the restored results
    result3, _ = rerun(tmp_path / "t2.json", tmp_path / "t3.json", reg)
    assert probe.calls == []
    assert result3.store["sq"]["results"] == first.store["sq"]["results"]
    assert read_trace(tmp_path / "t3.json").header["rerun_of"] == str(tmp_path / "t2.json")


def test_fail_fast_sequential_batch_runs_the_failed_item_and_those_never_started(
        tmp_path: Path, probe: Probe, reg: dict[str, NodeType]) -> None:
    flag = tmp_path / "fixed"
    first = first_run(batch_flow(flag, parallel=False, handling="fail_fast"), reg,
                      tmp_path / "t1.json")
    assert first.status == "failed"
    assert probe.calls == ["b.gen", *(f"b.sq.iteration_{i}" for i in range(3))]
    flag.touch()
    probe.calls.clear()
    result, events = rerun(tmp_path / "t1.json", tmp_path / "t2.json", reg)
    assert result.status == "ok", result.error
    assert probe.calls == [*(f"b.sq.iteration_{i}" for i in range(2, 10)), "b.total"]
    assert cached_paths(events, ev.ITEM_END) == ["b.sq.iteration_0", "b.sq.iteration_1"]
    assert [r["v"] for r in result.store["sq"]["results"]] == list(range(10))


# --- chains: upstream restored, the failed node and what follows run ------------------------------

def chain(flag: Path) -> dict[str, Any]:
    return {"name": "c", "nodes": [
        {"id": "a", "type": "probe", "params": {"v": 2}},
        {"id": "b", "type": "probe", "params": {"v": "${a.sq}"}},
        {"id": "c", "type": "probe", "params": {"v": "${b.sq}", "fail_unless": str(flag)}},
        {"id": "d", "type": "probe", "params": {"v": "${c.v}"}},
    ], "edges": [{"from": "a", "to": "b"}, {"from": "b", "to": "c"}, {"from": "c", "to": "d"}]}


def test_a_failed_node_in_a_chain_runs_again_after_its_restored_upstream(
        tmp_path: Path, probe: Probe, reg: dict[str, NodeType]) -> None:
    flag = tmp_path / "fixed"
    first = first_run(chain(flag), reg, tmp_path / "t1.json")
    assert first.status == "failed"
    assert probe.calls == ["c.a", "c.b", "c.c"]
    flag.touch()
    probe.calls.clear()
    result, events = rerun(tmp_path / "t1.json", tmp_path / "t2.json", reg)
    assert result.status == "ok", result.error
    assert probe.calls == ["c.c", "c.d"]
    assert cached_paths(events, ev.NODE_START) == cached_paths(events, ev.NODE_END) == ["c.a", "c.b"]
    # restored outputs are in the store, so the nodes that ran resolved their templates
    assert result.store["b"] == first.store["b"] == {"v": 4, "sq": 16}
    assert result.store["d"]["v"] == 16
    # the flow followed its edges as before
    assert [(e["from"], e["to"]) for e in of(events, ev.EDGE)] == [("a", "b"), ("b", "c"), ("c", "d")]


def test_an_edited_node_and_everything_downstream_of_it_run_again(
        tmp_path: Path, probe: Probe, reg: dict[str, NodeType]) -> None:
    flag = tmp_path / "fixed"
    flag.touch()
    doc = chain(flag)
    first_run(doc, reg, tmp_path / "t1.json")
    doc["nodes"][1]["params"]["out"] = {"edited": True}  # b changes
    edited = tmp_path / "edited.json"
    edited.write_bytes(orjson.dumps(doc))
    probe.calls.clear()
    result, events = rerun(tmp_path / "t1.json", tmp_path / "t2.json", reg, flow=edited)
    assert result.status == "ok", result.error
    assert probe.calls == ["c.b", "c.c", "c.d"]
    assert cached_paths(events, ev.NODE_END) == ["c.a"]
    assert result.store["b"]["edited"] is True
    assert result.rerun is not None
    assert (result.rerun["changed"], result.rerun["invalidated"]) == (["b"], ["b", "c", "d"])
    # an edge moved: its target changed
    doc2 = chain(flag)
    doc2["nodes"].append({"id": "x", "type": "probe", "params": {"v": 1}})
    doc2["edges"] = [{"from": "a", "to": "b"}, {"from": "b", "to": "c"}, {"from": "c", "to": "x"},
                     {"from": "x", "to": "d"}]
    edited.write_bytes(orjson.dumps(doc2))
    probe.calls.clear()
    result, _ = rerun(tmp_path / "t1.json", tmp_path / "t3.json", reg, flow=edited)
    assert probe.calls == ["c.x", "c.d"]
    # execution settings of a batch do not invalidate its items; what it iterates does
    batch = batch_flow(flag)
    first_run(batch, reg, tmp_path / "b1.json")
    batch["nodes"][1]["batch"].update(max_concurrent=2, max_retries=3)
    edited.write_bytes(orjson.dumps(batch))
    probe.calls.clear()
    rerun(tmp_path / "b1.json", tmp_path / "b2.json", reg, flow=edited)
    assert probe.calls == []
    batch["nodes"][1]["batch"]["items"] = list(range(11))
    edited.write_bytes(orjson.dumps(batch))
    rerun(tmp_path / "b1.json", tmp_path / "b3.json", reg, flow=edited)
    assert len(probe.calls) == 12  # every item and the node after it


def test_a_changed_input_reruns_the_nodes_that_use_it_and_their_downstream(
        tmp_path: Path, probe: Probe, reg: dict[str, NodeType]) -> None:
    doc = {"name": "i", "inputs": {"n": {"type": "integer"}, "m": {"type": "integer"}}, "nodes": [
        {"id": "a", "type": "probe", "params": {"v": "${m}"}},
        {"id": "b", "type": "probe", "params": {"v": "${n}"}},
        {"id": "c", "type": "probe", "params": {"v": 1}},
    ], "edges": [{"from": "a", "to": "b"}, {"from": "b", "to": "c"}]}
    first_run(doc, reg, tmp_path / "t1.json", {"n": 2, "m": 3})
    probe.calls.clear()
    result, _ = rerun(tmp_path / "t1.json", tmp_path / "t2.json", reg, inputs={"n": 5})
    assert probe.calls == ["i.b", "i.c"]  # a uses m (unchanged): restored
    assert (result.store["a"]["v"], result.store["b"]["v"]) == (3, 5)
    assert read_trace(tmp_path / "t2.json").header["inputs"] == {"n": 5, "m": 3}
    probe.calls.clear()
    rerun(tmp_path / "t1.json", tmp_path / "t3.json", reg, inputs={"n": "2"}, as_text=True)
    assert probe.calls == []  # the same value, given as command-line text
    with pytest.raises(FlowError, match="not an input of this flow"):
        rerun(tmp_path / "t1.json", tmp_path / "t4.json", reg, inputs={"zz": 1})


# --- nested flows and parallel branches restore by path ------------------------------------------

def test_nested_flows_restore_by_path(tmp_path: Path, probe: Probe, reg: dict[str, NodeType],
                                      validator: jsonschema.Draft202012Validator) -> None:
    flag = tmp_path / "fixed"
    child = {"inputs": {"x": {"type": "integer"}}, "outputs": {"y": {"source": "${proc.sq}"}},
             "nodes": [{"id": "read", "type": "probe", "params": {"v": "${x}"}},
                       {"id": "proc", "type": "probe",
                        "params": {"v": "${read.v}", "fail_unless": str(flag), "fail_on": [3]}}],
             "edges": [{"from": "read", "to": "proc"}]}
    doc = {"name": "n", "nodes": [
        {"id": "per_file", "type": "workflow", "batch": {"items": [0, 1, 2, 3, 4],
                                                         "error_handling": "continue"},
         "params": {"workflow_ir": child, "param_mapping": {"x": "${item}"}}},
        {"id": "one", "type": "workflow", "params": {"workflow_ir": child, "param_mapping": {"x": 3}}},
        {"id": "end", "type": "probe", "params": {"v": "${per_file.success_count}"}},
    ], "edges": [{"from": "per_file", "to": "one"}, {"from": "one", "to": "end"}]}
    first = first_run(doc, reg, tmp_path / "t1.json")
    assert first.status == "failed"  # 'one' fails (x=3), after item 3 of per_file failed
    assert "n.per_file.iteration_3.proc" in probe.calls
    flag.touch()
    probe.calls.clear()
    result, events = rerun(tmp_path / "t1.json", tmp_path / "t2.json", reg)
    assert result.status == "ok", result.error
    # item 3 ran, its 'read' restored by path; in 'one', the same; ok items never entered
    assert probe.calls == ["n.per_file.iteration_3.proc", "n.one.proc", "n.end"]
    assert "n.per_file.iteration_3.read" in cached_paths(events, ev.NODE_END)
    assert "n.one.read" in cached_paths(events, ev.NODE_END)
    assert not of(events, ev.NODE_START, path="n.per_file.iteration_0.read")
    assert [r["y"] for r in result.store["per_file"]["results"]] == [0, 1, 4, 9, 16]
    assert result.store["one"] == {"y": 9}
    assert result.store["end"]["v"] == 5
    assert_valid(validator, tmp_path / "t2.json")


def test_parallel_branches_restore_by_path(tmp_path: Path, probe: Probe, reg: dict[str, NodeType],
                                           validator: jsonschema.Draft202012Validator) -> None:
    flag = tmp_path / "fixed"
    doc = {"name": "f", "nodes": [
        {"id": "fan", "type": "probe", "params": {"v": 1}},
        {"id": "a", "type": "probe", "params": {"v": 2}},
        {"id": "a2", "type": "probe", "params": {"v": "${a.sq}"}},
        {"id": "b", "type": "probe", "params": {"v": 3, "fail_unless": str(flag)}},
        {"id": "join", "type": "merge"},
        {"id": "after", "type": "probe", "params": {"v": 0}},
    ], "edges": [
        {"from": "fan", "to": "a", "parallel_group": "g"},
        {"from": "fan", "to": "b", "parallel_group": "g"},
        {"from": "a", "to": "a2"}, {"from": "a2", "to": "join"}, {"from": "b", "to": "join"},
        {"from": "join", "to": "after"},
    ], "parallel_groups": {"g": {"error_handling": "continue"}}}
    first = first_run(doc, reg, tmp_path / "t1.json")
    assert first.status == "ok"  # error_handling continue: the join gets the failed branch
    assert first.store["b"] == {"error": "probe failed at f.fan.branch_1.b"}
    flag.touch()
    probe.calls.clear()
    result, events = rerun(tmp_path / "t1.json", tmp_path / "t2.json", reg)
    assert result.status == "ok", result.error
    assert probe.calls == ["f.fan.branch_1.b", "f.after"]  # the merge node ran too (no probe)
    assert cached_paths(events, ev.NODE_END) == ["f.fan", "f.fan.branch_0.a", "f.fan.branch_0.a2"]
    assert [e["path"] for e in of(events, ev.NODE_END) if not e.get("cached")] == [
        "f.fan.branch_1.b", "f.join", "f.after"]
    assert result.store["join"]["result"] == [{"v": 4, "sq": 16}, {"v": 3, "sq": 9}]
    assert_valid(validator, tmp_path / "t2.json")


# --- the cache itself ------------------------------------------------------------------------------

def test_run_cache_keeps_only_ok_results_keyed_by_path(tmp_path: Path, reg: dict[str, NodeType]) -> None:
    first_run(batch_flow(tmp_path / "missing"), reg, tmp_path / "t1.json")
    cache = RunCache.from_trace(tmp_path / "t1.json")
    assert set(cache.nodes) == {"gen", "sq", "total"}
    assert cache.nodes["gen"].ok and cache.nodes["gen"].outputs == {"v": 10, "sq": 100}
    items = dict(cache.recorded_items("sq"))
    assert sorted(i for i, rec in items.items() if rec is not None) == [0, 1, 3, 4, 6, 8, 9]
    assert sorted(items) == list(range(10))  # the failed ones are there, without a record
    assert items[4] is not None and items[4].item == 4
    assert items[4].outputs == {"v": 4, "sq": 16}
    assert list(cache.recorded_items("gen")) == []  # not a batch
    # a parsed Trace and a TraceIndex give the same (positions: event numbers, not bytes)
    for source in (read_trace(tmp_path / "t1.json"), TraceIndex(tmp_path / "t1.json")):
        other = RunCache.from_trace(source)
        assert dict(other.recorded_items("sq")) == items
        assert {k: replace(r, at=0) for k, r in other.nodes.items()} == {
            k: replace(r, at=0) for k, r in cache.nodes.items()}


def test_a_trace_cut_short_restores_what_it_holds(tmp_path: Path, probe: Probe,
                                                  reg: dict[str, NodeType]) -> None:
    flag = tmp_path / "fixed"
    flag.touch()
    first_run(chain(flag), reg, tmp_path / "t1.json")
    lines = (tmp_path / "t1.json").read_bytes().split(b"\n")
    cut = next(i for i, line in enumerate(lines) if b'"kind":"node.start","path":"c.c"' in line)
    (tmp_path / "cut.json").write_bytes(b"\n".join(lines[:cut]) + b"\n")  # killed as c started
    probe.calls.clear()
    result, _ = rerun(tmp_path / "cut.json", tmp_path / "t2.json", reg)
    assert result.status == "ok"
    assert probe.calls == ["c.c", "c.d"]


def test_bad_sources_are_reported(tmp_path: Path, reg: dict[str, NodeType]) -> None:
    with pytest.raises(TraceError, match="cannot read"):
        rerun_flow(tmp_path / "nope.json", registry=reg)
    (tmp_path / "flow.json").write_bytes(orjson.dumps(chain(tmp_path)))
    with pytest.raises(TraceError, match="not a pflow-tui trace"):
        rerun_flow(tmp_path / "flow.json", registry=reg)
    first_run(chain(tmp_path), reg, tmp_path / "t1.json")
    with pytest.raises(FlowError, match="the trace being re-run"):
        rerun_flow(tmp_path / "t1.json", trace=tmp_path / "t1.json", registry=reg)
    (tmp_path / "bad.json").write_bytes(b'{"nodes": [{"id": "a", "type": "nope"}]}')
    with pytest.raises(FlowError):
        rerun_flow(tmp_path / "t1.json", flow=tmp_path / "bad.json", registry=reg)


# --- the command ---------------------------------------------------------------------------------

def shell_chain(tmp_path: Path) -> Path:
    flow = tmp_path / "flow.json"
    flow.write_bytes(orjson.dumps({"name": "s", "inputs": {"n": {"type": "integer", "default": 3}},
                                   "nodes": [
        {"id": "a", "type": "echo", "params": {"message": "hi"}},
        {"id": "b", "type": "shell", "params": {"command": "test -f ok.flag && echo ${n}"}},
        {"id": "c", "type": "echo", "params": {"message": "${b.stdout}"}}],
        "edges": [{"from": "a", "to": "b"}, {"from": "b", "to": "c"}]}))
    return flow


def test_cli_rerun_exit_codes(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                              monkeypatch: pytest.MonkeyPatch) -> None:
    flow = shell_chain(tmp_path)
    assert main(["run", str(flow), "--trace", "t1.json"]) == 1
    assert main(["rerun", "t1.json", "--trace", "t2.json"]) == 1  # still failing
    capsys.readouterr()
    (tmp_path / "ok.flag").touch()
    assert main(["rerun", "t1.json", "--trace", "t3.json"]) == 0
    err = " ".join(capsys.readouterr().err.split())  # as one line (rich wraps at 80 columns)
    assert "restored 1 node, 0 items; ran 2 nodes, 0 items" in err
    trace = read_trace(tmp_path / "t3.json")
    assert trace.header["rerun_of"] == str(tmp_path / "t1.json")
    assert [e["path"] for e in trace.events if e["kind"] == ev.NODE_END and e.get("cached")] == ["s.a"]
    assert main(["rerun", "t3.json", "n=7", "--trace", "t4.json"]) == 0
    assert read_trace(tmp_path / "t4.json").store["c"]["echo"] == "7"
    # bad input: 2
    assert main(["rerun", "nope.json"]) == 2
    assert main(["rerun", str(flow)]) == 2
    assert main(["rerun", "t1.json", "zz=1"]) == 2
    assert main(["rerun", "t1.json", "--trace", "t1.json"]) == 2
    (tmp_path / "bad.json").write_text("{")
    assert main(["rerun", "t1.json", "--flow", "bad.json"]) == 2
    err = " ".join(capsys.readouterr().err.split())
    assert "cannot read" in err and "not a pflow-tui trace" in err and "not an input" in err
    # Ctrl-C: 130

    def interrupted(*args: Any, **kwargs: Any) -> RunResult:
        raise KeyboardInterrupt

    monkeypatch.setattr("pflow_tui.cli.rerun.run_flow", interrupted)  # (the run the command starts)
    assert main(["rerun", "t1.json", "--trace", "t5.json"]) == 130


# --- fork one item -------------------------------------------------------------------------------

def test_fork_item_reruns_one_iteration_alone_with_edited_params(
        tmp_path: Path, probe: Probe, reg: dict[str, NodeType]) -> None:
    flag = tmp_path / "fixed"
    first_run(batch_flow(flag), reg, tmp_path / "t1.json")
    before = sorted(p.name for p in tmp_path.rglob("*"))
    probe.calls.clear()

    forked = fork_item(tmp_path / "t1.json", "sq", 4, {"v": 12}, registry=reg)

    assert probe.calls == ["b.sq.iteration_4"]  # that node only, nothing else
    assert sorted(p.name for p in tmp_path.rglob("*")) == before  # no trace written
    assert forked["status"] == "ok"
    assert forked["outputs"] == {"v": 12, "sq": 144}
    assert forked["params"] == {"v": 12, "fail_unless": str(flag), "fail_on": [2, 5, 7]}
    assert forked["original"]["outputs"] == {"v": 4, "sq": 16}
    assert forked["original"]["params"]["v"] == 4
    assert forked["duration"] >= 0 and forked["attempts"] == 1
    # a failed item, forked with its recorded params, fails the same way; fixed, it succeeds
    failed = fork_item(tmp_path / "t1.json", "sq", 2, {}, registry=reg)
    assert failed["status"] == "error" and failed["original"]["status"] == "error"
    assert "probe failed at b.sq.iteration_2" in failed["error"]["message"]
    fixed = fork_item(tmp_path / "t1.json", "sq", 2, {"fail_on": []}, registry=reg)
    assert fixed["status"] == "ok" and fixed["outputs"]["sq"] == 4
    # a single node, by path; from a FlowSpec (no recorded params: constants and overrides)
    single = fork_item(tmp_path / "t1.json", "b.total", None, {"v": 3}, registry=reg)
    assert single["outputs"]["sq"] == 9 and single["original"]["outputs"]["v"] == 7
    spec = build_flow(batch_flow(flag), registry=reg)
    assert fork_item(spec, "gen", None, {"v": 5}, registry=reg)["outputs"]["sq"] == 25
    with pytest.raises(ForkError, match="templated param"):
        fork_item(spec, "sq", 0, {}, registry=reg)
    # bad requests are clear errors
    with pytest.raises(ForkError, match=r"'vv' is not a param of probe nodes.*did you mean 'v'"):
        fork_item(tmp_path / "t1.json", "sq", 4, {"vv": 1}, registry=reg)
    with pytest.raises(ForkError, match="no node 'nope'"):
        fork_item(tmp_path / "t1.json", "nope", None, {}, registry=reg)
    with pytest.raises(ForkError, match="batch node: give the index"):
        fork_item(tmp_path / "t1.json", "sq", None, {}, registry=reg)
    with pytest.raises(ForkError, match=r"iteration 40 of 'b\.sq' did not run.*10 items"):
        fork_item(tmp_path / "t1.json", "sq", 40, {}, registry=reg)


def test_fork_item_of_a_nested_flow_iteration(tmp_path: Path, probe: Probe,
                                              reg: dict[str, NodeType]) -> None:
    child = {"inputs": {"x": {"type": "integer"}}, "outputs": {"y": {"source": "${read.sq}"}},
             "nodes": [{"id": "read", "type": "probe", "params": {"v": "${x}"}}]}
    doc = {"name": "n", "nodes": [
        {"id": "per_file", "type": "workflow", "batch": {"items": [1, 2, 3]},
         "params": {"workflow_ir": child, "param_mapping": {"x": "${item}"}}}]}
    first_run(doc, reg, tmp_path / "t1.json")
    probe.calls.clear()
    forked = fork_item(tmp_path / "t1.json", "per_file", 1, {"param_mapping": {"x": 10}},
                       registry=reg)
    assert forked["outputs"] == {"y": 100} and forked["original"]["outputs"] == {"y": 4}
    assert probe.calls == ["n.per_file.iteration_1.read"]
    inner = fork_item(tmp_path / "t1.json", "n.per_file.iteration_2.read", None, {"v": 6},
                      registry=reg)
    assert inner["outputs"]["sq"] == 36 and inner["original"]["outputs"]["sq"] == 9


def test_a_loop_is_replayed_visit_by_visit_with_the_recorded_actions(
        tmp_path: Path, probe: Probe, reg: dict[str, NodeType]) -> None:
    answers = iter(["again", "again", "done"])
    decided: list[str] = []

    def decide(params: dict[str, Any], ctx: RunContext) -> dict[str, Any]:
        decided.append(ctx.path)
        return {"response": next(answers)}

    reg = {**reg, "decide": NodeType("decide", decide, action_key="response")}
    flag = tmp_path / "fixed"
    doc = {"name": "l", "nodes": [
        {"id": "step", "type": "probe", "params": {"v": 1}},
        {"id": "decide", "type": "decide"},
        {"id": "check", "type": "probe", "params": {"v": 2, "fail_unless": str(flag)}},
    ], "edges": [{"from": "step", "to": "decide"},
                 {"from": "decide", "to": "step", "action": "again"},
                 {"from": "decide", "to": "check", "action": "done"}]}
    assert first_run(doc, reg, tmp_path / "t1.json").status == "failed"
    assert decided == ["l.decide", "l.decide#2", "l.decide#3"]
    flag.touch()
    probe.calls.clear()
    result, events = rerun(tmp_path / "t1.json", tmp_path / "t2.json", reg)
    assert result.status == "ok", result.error
    assert decided == ["l.decide", "l.decide#2", "l.decide#3"]  # not called again
    assert probe.calls == ["l.check"]
    assert cached_paths(events, ev.NODE_END) == [
        "l.step", "l.decide", "l.step#2", "l.decide#2", "l.step#3", "l.decide#3"]
    assert [e["action"] for e in of(events, ev.EDGE)] == [
        "default", "again", "default", "again", "default", "done"]
    assert result.store["__visits__"]["step"] == [{"v": 1, "sq": 1}] * 3


# --- node types that read the store (NodeType.reads) --------------------------------------------

def delete_flow() -> dict[str, Any]:
    confirm = {"type": "boolean", "required": False, "default": True}
    return {"name": "rm", "inputs": {"confirm_delete": confirm},
            "nodes": [{"id": "rm", "type": "delete-file", "params": {"file_path": "${item}"},
                       "batch": {"items": ["a.txt", "d", "c.txt"], "error_handling": "continue"}},
                      {"id": "one", "type": "delete-file", "params": {"file_path": "z.txt"}}],
            "edges": [{"from": "rm", "to": "one"}]}


def test_a_node_that_reads_the_store_is_forked_and_rerun_with_it(tmp_path: Path,
                                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    """delete-file reads confirm_delete from the store, not from its params: a fork of one
    of its items (whose recorded params hold no __store__) and a re-run give it again."""
    monkeypatch.chdir(tmp_path)
    for name in ("a.txt", "c.txt"):
        (tmp_path / name).write_text("x")
    (tmp_path / "d").mkdir()  # deleting a directory fails: the item to re-run
    spec = build_flow(delete_flow(), base_dir=tmp_path)
    first = run_flow(spec, {"confirm_delete": True}, trace=tmp_path / "t1.json")
    assert first.store["rm"]["error_count"] == 1 and not (tmp_path / "a.txt").exists()

    (tmp_path / "d").rmdir()
    (tmp_path / "d").write_text("now a file")
    forked = fork_item(tmp_path / "t1.json", "rm", 1)
    assert forked["status"] == "ok", forked["error"]
    assert forked["params"] == {"file_path": "d", "__store__": {"confirm_delete": True}}
    assert not (tmp_path / "d").exists()
    # the store key can be overridden like a param; from a FlowSpec the input's default is used
    (tmp_path / "d").write_text("again")
    refused = fork_item(tmp_path / "t1.json", "rm", 1, {"confirm_delete": False})
    assert refused["status"] == "error" and "not confirmed" in refused["outputs"]["error"]
    assert fork_item(TraceIndex(tmp_path / "t1.json"), "rm", 1)["status"] == "ok"
    (tmp_path / "e.txt").write_text("x")
    assert fork_item(spec, "rm", 0, {"file_path": "e.txt"})["status"] == "ok"
    assert not (tmp_path / "e.txt").exists()

    (tmp_path / "d").write_text("once more")
    again = rerun_flow(tmp_path / "t1.json", trace=tmp_path / "t2.json")
    assert again.status == "ok" and again.store["rm"]["error_count"] == 0
    assert not (tmp_path / "d").exists()
