"""Replay: a saved trace in the same panes, a cursor through it, and nothing executed."""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pflow_tui.app.app import DebuggerApp
from pflow_tui.app.messages import Selection, selection_at
from pflow_tui.app.model import Graph, RunModel
from pflow_tui.engine.executor import run_flow
from pflow_tui.engine.ir import build_flow, children_ir
from pflow_tui.engine.replay import LazyEvents, TraceIndex

FLOW = {
    "name": "rp",
    # items of sq and the branches a, b wait for their limits (queued in the model)
    "rate_limits": {"shell": {"max_concurrent": 1}, "api": {"max_concurrent": 1}},
    "nodes": [
        {"id": "make", "type": "echo", "params": {"message": "x", "data": [1, 2, 3, 4, 5, 6]}},
        {"id": "sq", "type": "shell", "params": {"command": "test ${item} -ne 4 && echo ${item}"},
         "batch": {"items": "${make.data}", "parallel": True, "max_concurrent": 2,
                   "error_handling": "continue"}},
        {"id": "fan", "type": "echo", "params": {"message": "go"}},
        {"id": "a", "type": "llm", "params": {"prompt": "a", "model": "offline", "latency": 0.01,
                                              "rate_limit_key": "api"}},
        {"id": "b", "type": "llm", "params": {"prompt": "b", "model": "offline", "latency": 0.01,
                                              "rate_limit_key": "api"}},
        {"id": "join", "type": "merge", "params": {"strategy": "array"}},
    ],
    "edges": [{"from": "make", "to": "sq"}, {"from": "sq", "to": "fan"},
              {"from": "fan", "to": "a", "parallel_group": "g"},
              {"from": "fan", "to": "b", "parallel_group": "g"},
              {"from": "a", "to": "join"}, {"from": "b", "to": "join"}],
}


@pytest.fixture(scope="module")
def recorded(tmp_path_factory) -> tuple[Path, list[dict[str, Any]], Graph]:
    path = tmp_path_factory.mktemp("replay") / "t.json"
    spec = build_flow(FLOW)
    events: list[dict[str, Any]] = []
    worker = threading.Thread(target=run_flow, args=(spec, {}),
                              kwargs={"trace": path, "sinks": [events.append]})
    worker.start()
    worker.join()
    return path, events, Graph.from_ir(spec.ir, spec.name, children_ir(spec))


def snapshot(model: RunModel) -> dict[str, Any]:
    """What the panes show, as plain data."""
    out: dict[str, Any] = {"status": model.status, "t": model.t, "n": len(model.events)}
    for path, state in model.visits.items():
        row: dict[str, Any] = {"status": state.status, "t": repr((state.t_start, state.t_end)),
                               "seq": (state.start_seq, state.end_seq),
                               "wait": (state.wait_seq, state.ready_seq, repr(state.t_ready))}
        for name in ("items", "branches"):
            table = getattr(state, name)
            if table is not None:
                row[name] = (bytes(table.status), table.t_start.tobytes(), table.t_end.tobytes(),
                             list(table.attempts), table.done, table.failed, table.running,
                             list(table.failures),  # bytes: NaN (not started) compares equal
                             [list(w) for w in table.waits] if table.waits and any(table.waits[0])
                             else None)
        out[path] = row
    return out


def test_the_recorded_run_waits_for_its_limits(recorded):
    """So that the properties below cover queued items and nodes."""
    _, events, _ = recorded
    waits = {e["path"].rpartition(".")[2] for e in events if e["kind"] == "wait.start"}
    assert waits & {"a", "b"} and any(w.startswith("iteration_") for w in waits)


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_replay_at_any_cursor_is_the_live_state(recorded, data):
    path, events, graph = recorded
    k = data.draw(st.integers(0, len(events)), label="cursor")
    # live: the events of the prefix, in whatever batches the ticks happened to take them
    cuts = sorted(data.draw(st.lists(st.integers(0, k), max_size=6), label="ticks"))
    live = RunModel(graph)
    for a, b in zip([0, *cuts], [*cuts, k], strict=True):
        live.apply(events[a:b])
    # replay: the trace file up to the cursor, through the lazy index
    index = TraceIndex(path)
    replayed = RunModel(graph, LazyEvents(index))
    replayed.apply(index.summaries(0, k))
    assert snapshot(replayed) == snapshot(live)
    if k:
        assert replayed.event(k) == live.event(k) == events[k - 1]


def test_selection_at_addresses():
    assert selection_at("rp.sq.iteration_3") == Selection("sq", 3)
    assert selection_at("rp.fan.branch_1.b") == Selection("b")
    assert selection_at("rp.review#2") == Selection("review", None, "rp.review#2")
    assert selection_at("rp.per.iteration_2.read") == Selection("read", None, "rp.per.iteration_2.read")


async def _settle(pilot) -> None:
    for _ in range(5):
        await pilot.pause()


@pytest.mark.anyio
async def test_the_cursor_moves_through_the_run(recorded):
    path, events, _ = recorded
    app = DebuggerApp.replay(TraceIndex(path), selection_at("rp.sq.iteration_3"))
    async with app.run_test(size=(120, 36)) as pilot:
        await _settle(pilot)
        screen = app.screen
        assert len(screen.model.events) == len(events)
        assert screen.selection == Selection("sq", 3)  # --at
        await pilot.press("g")  # to the start: nothing has happened
        await _settle(pilot)
        screen = app.screen
        assert len(screen.model.events) == 0 and screen.model.status == "pending"
        await pilot.press("period", "period")
        await _settle(pilot)
        assert len(app.screen.model.events) == 2
        await pilot.press("greater_than_sign")  # the next node event
        await _settle(pilot)
        last = app.screen.model.event(len(app.screen.model.events))
        assert last["kind"].startswith("node.")
        await pilot.press("f")  # the next failure: item 3 (the value 4) of sq
        await _settle(pilot)
        failed = app.screen.model.event(len(app.screen.model.events))
        assert failed["kind"] == "item.end" and failed["status"] == "error"
        assert failed["path"] == "rp.sq.iteration_3"
        assert app.screen.model.latest["sq"].items.failed == 1
        await pilot.press("comma")  # one event back: the failure has not happened yet
        await _settle(pilot)
        assert app.screen.model.latest["sq"].items.failed == 0
        await pilot.press("G")
        await _settle(pilot)
        assert app.screen.model.status == "ok" and len(app.screen.model.events) == len(events)


def test_a_trace_cut_short_opens_with_what_it_holds(recorded, tmp_path):
    path, events, _ = recorded
    data = path.read_bytes()
    cut = tmp_path / "cut.json"
    cut.write_bytes(data[: len(data) * 2 // 3])
    index = TraceIndex(cut)
    assert index.truncated and index.status == "interrupted"
    assert 0 < len(index) < len(events)
    assert index.events(0, len(index)) == events[: len(index)]


def test_the_index_agrees_with_the_reader_at_every_cut(recorded, tmp_path):
    from pflow_tui.engine.trace import read_trace

    path, _, _ = recorded
    data = path.read_bytes()
    cut = tmp_path / "cut.json"
    first_event = data.index(b"\n") + 1
    for size in range(first_event, len(data) + 1, max(1, len(data) // 401)):
        cut.write_bytes(data[:size])
        index, trace = TraceIndex(cut), read_trace(cut)
        assert index.events(0, len(index)) == trace.events, size
        assert (index.status, index.truncated) == (trace.status, trace.truncated), size


@pytest.mark.anyio
async def test_the_diff_view_shows_changed_paths_side_by_side(tmp_path):
    from pflow_tui.engine.diff import diff_traces

    def run(ok_item: int) -> Path:
        flow = {"name": "d", "nodes": [{"id": "sq", "type": "shell", "batch": {
            "items": [1, 2, 3], "error_handling": "continue"},
            "params": {"command": f"test ${{item}} -ne {ok_item} && echo ${{item}}"}}]}
        path = tmp_path / f"{ok_item}.json"
        worker = threading.Thread(target=run_flow, args=(build_flow(flow), {}), kwargs={"trace": path})
        worker.start()
        worker.join()
        return path

    diff = diff_traces(run(2), run(3))
    app = DebuggerApp.diff_view(diff)
    async with app.run_test(size=(140, 36)) as pilot:
        await pilot.pause()
        table = app.screen.query_one("DataTable")
        paths = [str(table.get_row_at(i)[0]) for i in range(table.row_count)]
        assert "sq.iteration_1" in paths and "sq.iteration_2" in paths
        assert all(str(table.get_row_at(i)[1]) != "same" for i in range(table.row_count))
        await pilot.press("a")  # every path, changed or not
        assert app.screen.query_one("DataTable").row_count == len(diff.rows)


def _masked(snap: dict[str, Any]) -> dict[str, Any]:
    """Attempts and retry times of items still running (or queued after their start, waiting for
    a limit) are not kept per event: leave them out."""
    out = {}
    for key, row in snap.items():
        if isinstance(row, dict):
            row = dict(row)
            for name in ("items", "branches"):
                if name in row:
                    status, ts, te, attempts, *rest = row[name]
                    attempts = [a if s not in (0, 1) else None for a, s in zip(attempts, status, strict=True)]
                    row[name] = (status, ts, te, attempts, *rest)
        out[key] = row
    return out


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_going_back_in_time_equals_replaying_to_there(recorded, data):
    """The cursor going back derives the state from the later one, without re-applying."""
    path, events, graph = recorded
    index = TraceIndex(path)
    full = RunModel(graph, LazyEvents(index))
    later = data.draw(st.integers(0, len(events)), label="from")
    full.apply(index.summaries(0, later))
    k = data.draw(st.integers(0, later), label="back to")
    replayed = RunModel(graph, LazyEvents(index))
    replayed.apply(index.summaries(0, k))
    derived = full.as_of(k)
    assert _masked(snapshot(derived)) == _masked(snapshot(replayed))
    assert derived.paused == replayed.paused and derived.error == replayed.error
    # and it goes on from there like any model
    derived.apply(index.summaries(k, len(events)))
    whole = RunModel(graph, LazyEvents(index))
    whole.apply(index.summaries(0, len(events)))
    assert _masked(snapshot(derived)) == _masked(snapshot(whole))
