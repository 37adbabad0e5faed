"""The parallelism samples run headless and do what they say: fan-out/merge, pipeline, agent loop.

Each sample runs from a scratch directory (no dependence on the repository as cwd); the
assertions read the run's events (order by ``seq``, times by ``t``) and its store.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from pflow_tui.engine.ir.load import load_flow
from pflow_tui.engine.nodes.llm import offline_answer
from pflow_tui.engine.run.executor import RunResult, run_flow
from pflow_tui.engine.run.inputs import prepare_inputs

SAMPLES = Path(__file__).resolve().parents[2] / "sample_flows"
Event = dict[str, Any]


@pytest.fixture(autouse=True)
def _elsewhere(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)


def run(name: str, tmp_path: Path, trace: str = "trace.json", *, ok: bool = True,
        **inputs: Any) -> tuple[RunResult, list[Event]]:
    spec = load_flow(SAMPLES / f"{name}.json")
    assert all("pflow" in w.what for w in spec.warnings)  # only notes on what pflow does otherwise
    events: list[Event] = []
    (tmp_path / trace).unlink(missing_ok=True)  # a test may run twice: the latest run's trace
    result = run_flow(spec, prepare_inputs(spec, inputs, as_text=True), trace=tmp_path / trace,
                      sinks=[events.append])
    if ok:
        assert result.status == "ok", result.error
    # the trace on disk holds the same events (and the seal lines of its signature)
    recorded = [e for e in json.loads((tmp_path / trace).read_text())["events"] if e["kind"] != "seal"]
    assert [(e["seq"], e["kind"], e["path"]) for e in recorded] == [
        (e["seq"], e["kind"], e["path"]) for e in events]
    return result, events


def of_kind(events: list[Event], kind: str) -> list[Event]:
    return [e for e in events if e["kind"] == kind]


def spans(events: list[Event], kind: str) -> dict[str, tuple[Event, Event]]:
    """path -> (start event, end event) for ``node`` / ``item`` / ``branch`` events."""
    starts = {e["path"]: e for e in of_kind(events, f"{kind}.start")}
    return {e["path"]: (starts[e["path"]], e) for e in of_kind(events, f"{kind}.end")}


# --- fan-out and merge ---------------------------------------------------------------------------

FANOUT_REPORT = (
    "trend down; chart bar: Offline answer 66aa419d: Describe a bar chart of 5 of 8 regions sold "
    "more than 100 un; summary: Offline answer 97e30bcf: Summarize in one line: 5 of 8 regions "
    "sold more than 100 uni")


def test_fanout_merge_branches_overlap_and_merge(tmp_path: Path) -> None:
    result, events = run("fanout_merge", tmp_path)
    root = "fanout_merge.filter"
    starts = of_kind(events, "branch.start")
    ends = of_kind(events, "branch.end")
    assert [e["path"] for e in starts] == [f"{root}.branch_{i}" for i in range(3)]
    assert [(e["index"], e["start"], e["group"]) for e in starts] == [
        (0, "analyze", "analysis"), (1, "visualize", "analysis"), (2, "summarize", "analysis")]
    assert sorted(e["path"] for e in ends) == [f"{root}.branch_{i}" for i in range(3)]
    assert all(e["status"] == "ok" for e in ends)
    # concurrent: every branch started before the first one ended
    assert max(e["seq"] for e in starts) < min(e["seq"] for e in ends)
    # the shortest branch (summarize, 0.3 s) ends first; the two 0.4 s branches after it
    assert ends[0]["path"] == f"{root}.branch_2"
    assert {e["path"]: e["last"] for e in ends} == {
        f"{root}.branch_0": "analyze", f"{root}.branch_1": "chart", f"{root}.branch_2": "summarize"}
    # the fan-out takes about one branch's time (0.4 s), not the sum (0.4 + 0.4 + 0.3 = 1.1 s)
    span = max(e["t"] for e in ends) - min(e["t"] for e in starts)
    assert 0.4 <= span < 0.6, span
    durations = {e["path"]: e["duration"] for e in ends}
    assert 0.3 <= durations[f"{root}.branch_2"] < 0.4
    assert 0.4 <= durations[f"{root}.branch_0"] < 0.5
    assert 0.4 <= durations[f"{root}.branch_1"] < 0.5  # visualize 0.2 s, then chart 0.2 s
    # each branch's nodes are addressed under their branch
    assert [e["path"] for e in of_kind(events, "node.start")] == [
        "fanout_merge.filter", f"{root}.branch_0.analyze", f"{root}.branch_1.visualize",
        f"{root}.branch_2.summarize", f"{root}.branch_1.chart", "fanout_merge.merge",
        "fanout_merge.report"]
    # the join: one edge per branch, from its last node, after every branch ended
    joins = [e for e in of_kind(events, "edge") if e["to"] == "merge"]
    assert [(e["path"], e["from"], e["group"]) for e in joins] == [
        (f"{root}.branch_0", "analyze", "analysis"), (f"{root}.branch_1", "chart", "analysis"),
        (f"{root}.branch_2", "summarize", "analysis")]
    assert min(e["seq"] for e in joins) > max(e["seq"] for e in ends)
    assert of_kind(events, "race") == []

    store = result.store
    merged = store["merge"]["result"]
    assert list(merged) == ["analyze", "visualize", "summarize"]  # by_branch: start node ids
    assert set(store["merge"]) == {"result"}  # no failed branches, no conflicts
    assert merged["analyze"]["response"] == "down"
    # a branch's output is its last node's: chart's, under the branch's start node id
    assert merged["visualize"] == store["chart"]
    assert merged["visualize"]["response"].startswith(
        "Offline answer 66aa419d: Describe a bar chart of 5 of 8 regions")
    assert merged["summarize"]["response"] == (
        "Offline answer 97e30bcf: Summarize in one line: 5 of 8 regions sold more than 100 uni")
    # ${filter.branch_1...}: the fan-out node keeps each branch's own store
    assert sorted(store["filter"]) == ["branch_0", "branch_1", "branch_2", "branch_results", "data",
                                       "echo", "metadata"]
    assert store["filter"]["branch_results"] == [store[n] for n in ("analyze", "chart", "summarize")]
    assert sorted(store["filter"]["branch_1"]) == ["chart", "visualize"]
    assert store["filter"]["branch_1"]["visualize"]["response"] == "bar"
    assert store["filter"]["branch_0"] == {"analyze": store["analyze"]}
    assert result.outputs == {"report": FANOUT_REPORT, "trend": "down"}


def test_fanout_merge_is_deterministic(tmp_path: Path) -> None:
    first, _ = run("fanout_merge", tmp_path, "one.json")
    second, _ = run("fanout_merge", tmp_path, "two.json")
    assert second.outputs == first.outputs
    assert second.store["merge"] == first.store["merge"]


# --- pipeline ------------------------------------------------------------------------------------

STAGES = ("read", "process", "write")


def test_pipeline_all_items_and_outputs(tmp_path: Path) -> None:
    result, _ = run("pipeline", tmp_path)
    out_dir = Path.cwd() / ".pflow-tui" / "samples" / "pipeline"
    batch = result.store["per_file"]
    assert (batch["count"], batch["success_count"], batch["error_count"], batch["errors"]) == (
        20, 20, 0, None)
    assert batch["batch_metadata"]["execution_mode"] == "parallel"
    assert batch["batch_metadata"]["max_concurrent"] == 4
    names = [f"file_{i:02d}.txt" for i in range(1, 21)]
    assert [r["item"] for r in batch["results"]] == names
    for i, (name, r) in enumerate(zip(names, batch["results"], strict=True)):
        lines = i * 7 % 13 + 1  # what the read stage's shell command prints
        assert r["summary"] == offline_answer(f"Summarise in one line: {name}: {lines} lines of notes")
        assert r["written"] == f"Successfully wrote to '{out_dir / name}'"
        assert (out_dir / name).read_text() == r["summary"] + "\n"
    assert batch["results"][0]["summary"] == (
        "Offline answer 8ef7274e: Summarise in one line: file_01.txt: 1 lines of notes")
    assert sorted(p.name for p in out_dir.iterdir()) == names
    assert result.outputs == {
        "report": f"20 of 20 files written (parallel, 4 at a time); first: "
                  f"Successfully wrote to '{out_dir / 'file_01.txt'}'",
        "written": 20,
    }


def test_pipeline_stages_overlap_across_items(tmp_path: Path) -> None:
    _, events = run("pipeline", tmp_path)
    base = "pipeline.per_file"
    nodes = spans(events, "node")
    items = spans(events, "item")
    assert sorted(items) == sorted(f"{base}.iteration_{i}" for i in range(20))
    stage = {(i, s): nodes[f"{base}.iteration_{i}.{s}"] for i in range(20) for s in STAGES}
    assert all(end["status"] == "ok" for _, end in stage.values())
    assert len([p for p in nodes if p.startswith(f"{base}.iteration_")]) == 60

    # within one item the stages run in order, inside the item
    for i in range(20):
        item_start, item_end = items[f"{base}.iteration_{i}"]
        seqs = [item_start["seq"]]
        for s in STAGES:
            start, end = stage[(i, s)]
            seqs += [start["seq"], end["seq"]]
        seqs.append(item_end["seq"])
        assert seqs == sorted(seqs), i

    # at most 4 items in flight at once, and 4 reached
    in_flight = peak = 0
    for e in events:
        if e["kind"] == "item.start":
            in_flight += 1
            peak = max(peak, in_flight)
        elif e["kind"] == "item.end":
            in_flight -= 1
    assert peak == 4

    def running(i: int, s: str, seq: int) -> bool:
        start, end = stage[(i, s)]
        return start["seq"] < seq < end["seq"]

    # pipelining: when item 0 starts its process stage (its read took 20 ms), items 1, 2 and 3
    # are still reading (40, 60 and 80 ms); item 1 then starts processing while item 3 reads
    p0 = stage[(0, "process")][0]["seq"]
    assert [i for i in range(1, 4) if running(i, "read", p0)] == [1, 2, 3]
    p1 = stage[(1, "process")][0]["seq"]
    assert running(0, "process", p1) and running(3, "read", p1)

    # over the whole run, every item but the first was read while another item was processed
    def overlap(a: tuple[int, str], b: tuple[int, str]) -> bool:
        (a0, a1), (b0, b1) = stage[a], stage[b]
        return a0["seq"] < b1["seq"] and b0["seq"] < a1["seq"]

    pipelined = [i for i in range(20)
                 if any(overlap((i, "read"), (j, "process")) for j in range(20) if j != i)]
    assert pipelined == list(range(1, 20))

    # 20 items of ~100 ms each, 4 at a time: about 0.5 s of wall time for ~2 s of work
    node_end = next(e for e in of_kind(events, "node.end") if e["path"] == base)
    work = sum(end["duration"] for _, end in items.values())
    assert work / node_end["duration"] > 3.0, (work, node_end["duration"])


# --- agent loop ----------------------------------------------------------------------------------

AGENT_PATHS = [
    "agent_loop.decide", "agent_loop.route", "agent_loop.act",
    "agent_loop.decide#2", "agent_loop.route#2", "agent_loop.act#2",
    "agent_loop.decide#3", "agent_loop.route#3", "agent_loop.act#3",
    "agent_loop.decide#4", "agent_loop.route#4", "agent_loop.act#4",
    "agent_loop.decide#5", "agent_loop.route#5", "agent_loop.answer",
]
AGENT_ANSWER = 'Offline answer f3e625da: Answer the question "Which moon has an atmosphere?" from the'


def _agent(tmp_path: Path, trace: str) -> tuple[RunResult, list[Event]]:
    result, events = run("agent_loop", tmp_path, trace)
    assert [e["path"] for e in of_kind(events, "node.start")] == AGENT_PATHS
    assert [e["path"] for e in of_kind(events, "node.end")] == AGENT_PATHS
    routes = [(e["path"], e["to"], e["action"]) for e in of_kind(events, "edge")
              if e["from"] == "route"]
    assert routes == [("agent_loop.route", "act", "search"), ("agent_loop.route#2", "act", "search"),
                      ("agent_loop.route#3", "act", "search"), ("agent_loop.route#4", "act", "search"),
                      ("agent_loop.route#5", "answer", "answer")]
    return result, events


def test_agent_loop_visits_and_answer(tmp_path: Path) -> None:
    result, _ = _agent(tmp_path, "one.json")
    store = result.store
    visits = store["__visits__"]
    assert {k: len(v) for k, v in visits.items()} == {"decide": 5, "route": 5, "act": 4}
    assert [v["response"] for v in visits["decide"]] == ["search"] * 4 + ["answer"]
    assert store["decide"] == visits["decide"][-1]  # the namespace holds the latest visit
    observations = [v["response"] for v in visits["act"]]
    assert len(set(observations)) == 4  # every search saw a different prompt
    # the act prompt shows the decisions so far: ${decide[*].response}
    assert observations[1] == offline_answer(
        'Search the web (decisions so far: ["search", "search"]) for: Which moon has an atmosphere?')
    # the final answer read every observation: ${act[*].response}
    assert store["answer"]["response"] == AGENT_ANSWER == offline_answer(
        'Answer the question "Which moon has an atmosphere?" from these observations: '
        + json.dumps(observations, ensure_ascii=False))
    assert result.outputs == {
        "final_answer": AGENT_ANSWER,
        "decisions": ["search", "search", "search", "search", "answer"],
        "second_observation": observations[1],
    }


def test_agent_loop_is_deterministic(tmp_path: Path) -> None:
    first, _ = _agent(tmp_path, "one.json")
    second, _ = _agent(tmp_path, "two.json")
    assert second.outputs == first.outputs
    assert second.store["__visits__"] == first.store["__visits__"]


def test_agent_loop_that_never_answers_stops_at_max_visits(tmp_path: Path) -> None:
    result, events = run("agent_loop", tmp_path, ok=False, question="Which planet has the longest day?")
    assert result.status == "failed"
    assert result.error["path"] == "agent_loop.decide#9"
    message = result.error["message"]
    assert message.startswith("node 'decide' was reached 9 times, more than max_visits (8)")
    assert message.endswith('raise "max_visits" in the flow')
    assert len([e for e in of_kind(events, "node.end") if e["node"] == "act"]) == 8
