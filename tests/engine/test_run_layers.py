"""The layers of engine/run and engine/trace: the event kinds' fields, the StepCache protocol
(a re-run's cache is a data source; the compiler lands what it returns), and the one reader's
queries (scan, ends_by_path) agreeing with the events parsed in full."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from pflow_tui.engine.ir.load import build_flow, load_flow
from pflow_tui.engine.ir.templates import Scope
from pflow_tui.engine.run.cache import RecordedItem, RecordedNode, Step, StepCache
from pflow_tui.engine.run.executor import run_flow
from pflow_tui.engine.run.inputs import prepare_inputs
from pflow_tui.engine.trace import events as ev
from pflow_tui.engine.trace.reader import TraceIndex, TraceStream, ends_of_events
from pflow_tui.engine.trace.writer import read_trace

SAMPLES = Path(__file__).resolve().parents[2] / "sample_flows"
FLOW = {"name": "f", "nodes": [
    {"id": "a", "type": "echo", "params": {"message": "hi"}},
    {"id": "b", "type": "echo", "params": {"message": "item ${item}"}, "batch": {"items": [1, 2, 3]}},
    {"id": "c", "type": "echo", "params": {"message": "${a.echo}"}},
], "edges": [{"from": "a", "to": "b"}, {"from": "b", "to": "c"}]}


def sample_events(tmp_path: Path) -> list[dict[str, Any]]:
    events: list[dict[str, Any]] = []
    for name in ("parallel_batch_failures", "fanout_merge", "agent_loop", "sequential_batch"):
        spec = load_flow(SAMPLES / f"{name}.json")
        run_flow(spec, prepare_inputs(spec, {}), trace=tmp_path / f"{name}.json", sinks=[events.append])
    return events


# --- the event kinds ------------------------------------------------------------------------------

def test_every_kind_has_its_typed_dict() -> None:
    assert set(ev.FIELDS) == set(ev.KINDS)
    for kind, typed in ev.FIELDS.items():
        assert {"seq", "t", "kind", "path"} <= typed.__required_keys__, kind


def test_events_have_the_fields_their_kind_declares(tmp_path: Path) -> None:
    events = sample_events(tmp_path)
    seen = set()
    for e in events:
        typed = ev.FIELDS[e["kind"]]
        seen.add(e["kind"])
        assert typed.__required_keys__ <= e.keys(), e
        assert e.keys() <= typed.__required_keys__ | typed.__optional_keys__, e
    assert {ev.RUN_START, ev.NODE_END, ev.ITEM_END, ev.BRANCH_END, ev.EDGE, ev.STORE_WRITE} <= seen


# --- StepCache: a data source; the compiler lands what it returns ----------------------------------

class DictCache:
    """A StepCache that is no trace: recorded outcomes by node id."""

    source = "<dict>"

    def __init__(self, nodes: dict[str, RecordedNode], items: dict[tuple[str, int], RecordedItem]) -> None:
        self.nodes, self.items, self.asked = nodes, items, []

    def bind(self, spec: Any) -> None:
        self.asked.clear()

    def observe(self, event: dict[str, Any]) -> None:
        pass

    def node(self, step: Step, frame_path: str, scope: Scope) -> RecordedNode | None:
        self.asked.append(step.path)
        return self.nodes.get(step.spec.id)

    def item(self, step: Step, index: int, item: Any, frame_path: str,
             scope: Scope) -> RecordedItem | None:
        self.asked.append(f"{step.path}.iteration_{index}")
        return self.items.get((step.spec.id, index))


def test_a_step_cache_restores_nodes_and_items_that_land_as_ran_ones_do(tmp_path: Path) -> None:
    import anyio

    from pflow_tui.engine.run.executor import execute

    spec = build_flow(FLOW)
    cache: StepCache = DictCache({"a": RecordedNode({"message": "hi"}, {"echo": "recorded"}, "default")},
                                 {("b", 1): RecordedItem({"message": "item 2"}, {"echo": "two"})})
    events: list[dict[str, Any]] = []
    result = anyio.run(lambda: execute(spec, {}, [events.append], cache=cache))
    assert result.status == "ok"
    assert cache.asked == ["f.a", "f.b.iteration_0", "f.b.iteration_1", "f.b.iteration_2", "f.c"]
    # the restored node: its outputs in the store, the next node reads them
    assert result.store["a"] == {"echo": "recorded"}
    assert result.store["c"]["echo"] == "recorded"
    by = {(e["kind"], e["path"]): e for e in events}
    assert by[(ev.NODE_START, "f.a")]["cached"] is True
    end = by[(ev.NODE_END, "f.a")]
    ran = by[(ev.NODE_END, "f.c")]
    assert end["cached"] is True and end["duration"] == 0.0 and end["attempts"] == 0
    assert list(end)[:-1] == list(ran)  # the same fields as a node that ran, then "cached"
    # the restored item, between two that ran, in its place
    item = by[(ev.ITEM_END, "f.b.iteration_1")]
    assert item["cached"] is True and item["outputs"] == {"echo": "two"}
    assert list(item)[:-1] == list(by[(ev.ITEM_END, "f.b.iteration_0")])
    assert by[(ev.ITEM_START, "f.b.iteration_1")]["params"] == {"message": "item 2"}
    assert [r["echo"] for r in result.store["b"]["results"]] == ["item 1", "two", "item 3"]
    # order: a lands (store write, then node.end) before b starts
    seqs = [e["seq"] for e in events]
    assert seqs == sorted(seqs)
    order = [(e["kind"], e["path"]) for e in events if e["path"] in ("f.a", "f.b")]
    assert order.index((ev.NODE_END, "f.a")) < order.index((ev.NODE_START, "f.b"))


# --- the one reader ---------------------------------------------------------------------------------

@pytest.mark.parametrize("opened", ["index", "stream"])
def test_scan_filters_as_the_parsed_events_say(tmp_path: Path, opened: str) -> None:
    spec = build_flow(FLOW)
    run_flow(spec, {}, trace=tmp_path / "t.json")
    every = read_trace(tmp_path / "t.json").events
    source = TraceIndex(tmp_path / "t.json") if opened == "index" else TraceStream(tmp_path / "t.json")
    assert [e for _, e in source.scan()] == every
    assert [e for _, e in source.scan(exclude=("item.", "attempt."))] == [
        e for e in every if not e["kind"].startswith(("item.", "attempt."))]
    assert [e for _, e in source.scan((ev.ITEM_START, ev.ITEM_END, ev.NODE_END), path="f.b",
                                      iterations=True)] == [
        e for e in every if e["kind"] in (ev.ITEM_START, ev.ITEM_END, ev.NODE_END)
        and (e["path"] == "f.b" or e["path"].startswith("f.b.iteration_"))]
    assert [e["kind"] for _, e in source.scan((ev.NODE_END,), path="f.a")] == [ev.NODE_END]
    after, first = next(iter(source.scan((ev.NODE_START,))))
    assert first["path"] == "f.a"
    assert [e["path"] for _, e in source.scan((ev.NODE_START,), start=after)] == ["f.b", "f.c"]


def test_ends_by_path_of_the_raw_lines_matches_the_parsed_events(tmp_path: Path) -> None:
    spec = build_flow(FLOW)
    run_flow(spec, {}, trace=tmp_path / "t.json")
    index = TraceIndex(tmp_path / "t.json")
    parsed = ends_of_events(read_trace(tmp_path / "t.json").events, lambda v: repr(v))
    raw, skipped = index.ends_by_path(lambda text: text, lambda v: repr(v))
    assert skipped == 0
    assert list(raw) == list(parsed) == ["", "a", "b", "b.iteration_0", "b.iteration_1",
                                         "b.iteration_2", "c"]
    for path, rec in raw.items():
        other = parsed[path]
        assert rec[:3] == other[:3] and rec[4:] == other[4:], path  # kind, status, duration, ...
        assert (rec[3] is None) == (other[3] is None), path  # outputs digested in both or neither
    assert index.mentions("f.b.iteration_2") and not index.mentions("f.b.iteration_3")
