"""Replay: a saved trace in the same panes, a cursor through it, and nothing executed."""

from __future__ import annotations

import random
import threading
from array import array
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pflow_tui.app.app import DebuggerApp
from pflow_tui.app.graph import Graph
from pflow_tui.app.item_table import ItemTable
from pflow_tui.app.messages import Selection, selection_at
from pflow_tui.app.model import RunModel
from pflow_tui.engine.ir.load import build_flow, load_flow
from pflow_tui.engine.ir.spec import children_ir
from pflow_tui.engine.run.executor import run_flow
from pflow_tui.engine.run.inputs import prepare_inputs
from pflow_tui.engine.trace.reader import BIG_LINE, TraceIndex
from pflow_tui.engine.trace.replay import LazyEvents

FLOW = {
    "name": "rp",
    # items of sq and the branches a, b wait for their limits (queued in the model)
    "rate_limits": {"shell": {"max_concurrent": 1}, "api": {"max_concurrent": 1}},
    "nodes": [
        {"id": "make", "type": "echo", "params": {"message": "x", "data": [1, 2, 3, 4, 5, 6]}},
        {"id": "sq", "type": "shell", "params": {"command": "test ${item} -ne 4 && echo ${item}"},
         "batch": {"items": "${make.data}", "parallel": True, "max_concurrent": 2,
                   "error_handling": "continue"}},
        {"id": "ask", "type": "llm",  # flaky: retries (attempt events)
         "params": {"prompt": "n ${item}", "model": "offline", "latency": 0.005, "fail_rate": 0.5},
         "batch": {"items": "${make.data}", "parallel": True, "max_concurrent": 3,
                   "error_handling": "continue", "max_retries": 3, "retry_wait": 0}},
        {"id": "per", "type": "workflow",  # a nested flow per item
         "batch": {"items": "${make.data}", "parallel": True, "max_concurrent": 2},
         "params": {"param_mapping": {"n": "${item}"}, "workflow_ir": {"inputs": {"n": {"type": "integer"}},
             "nodes": [{"id": "one", "type": "echo", "params": {"message": "n=${n}"}},
                       {"id": "two", "type": "echo", "params": {"message": "${one.echo}!"}}],
             "edges": [{"from": "one", "to": "two"}]}}},
        {"id": "fan", "type": "echo", "params": {"message": "go"}},
        {"id": "a", "type": "llm", "params": {"prompt": "a", "model": "offline", "latency": 0.01,
                                              "rate_limit_key": "api"}},
        {"id": "b", "type": "llm", "params": {"prompt": "b", "model": "offline", "latency": 0.01,
                                              "rate_limit_key": "api"}},
        {"id": "join", "type": "merge", "params": {"strategy": "array"}},
    ],
    "edges": [{"from": "make", "to": "sq"}, {"from": "sq", "to": "ask"}, {"from": "ask", "to": "per"},
              {"from": "per", "to": "fan"},
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


def table_state(table: ItemTable | None) -> tuple[Any, ...] | None:
    """Everything an item table holds (float arrays as bytes: NaN, not started, compares equal)."""
    if table is None:
        return None
    return tuple(_waits(table.waits) if name == "waits" else getattr(table, name).tobytes()
                 if isinstance(getattr(table, name), array) else getattr(table, name)
                 for name in ItemTable.__slots__)


def _waits(waits: tuple[array, array] | None) -> Any:
    """Wait seqs, the same whether no item has waited yet or the arrays are allocated."""
    return [list(w) for w in waits] if waits is not None and any(waits[0]) else None


def snapshot(model: RunModel) -> dict[str, Any]:
    """Everything the model holds (what the panes show and what a rewind needs), as plain data."""
    out: dict[str, Any] = {
        "run": (model.status, model.t, len(model.events), model.error, model.outputs, model.warnings,
                model.paused, [e["seq"] for e in model.marks]),
        "latest": {nid: st.path for nid, st in model.latest.items()},
        "last": model.last_started.path if model.last_started else None,
        "children": model.children,
        "nested": {key: [st.path for st in runs] for key, runs in model.nested.items()},
        "ended": [st.path for st in model.ended],
        "tables": [st.path for st in model.tables],
    }
    for path, state in model.visits.items():
        out[path] = (state.status, repr((state.t_start, state.t_end)), state.start_seq, state.end_seq,
                     (state.wait_seq, state.ready_seq, repr(state.t_ready)),
                     state.previous.path if state.previous else None, state.branch_starts,
                     table_state(state.items), table_state(state.branches))
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
        await pilot.press(".", ".")
        await _settle(pilot)
        assert len(app.screen.model.events) == 2
        await pilot.press(">")  # the next node event
        await _settle(pilot)
        last = app.screen.model.event(len(app.screen.model.events))
        assert last["kind"].startswith("node.")
        await pilot.press("f")  # the next failure: item 3 (the value 4) of sq
        await _settle(pilot)
        failed = app.screen.model.event(len(app.screen.model.events))
        assert failed["kind"] == "item.end" and failed["status"] == "error"
        assert failed["path"] == "rp.sq.iteration_3"
        assert app.screen.model.latest["sq"].items.failed == 1
        await pilot.press(",")  # one event back: the failure has not happened yet
        await _settle(pilot)
        assert app.screen.model.latest["sq"].items.failed == 0
        await pilot.press("G")
        await _settle(pilot)
        assert app.screen.model.status == "ok" and len(app.screen.model.events) == len(events)


@pytest.mark.anyio
async def test_stepping_by_kind_stops_at_every_event_of_it_even_side_by_side(recorded):
    path, events, _ = recorded
    app = DebuggerApp.replay(TraceIndex(path))
    async with app.run_test(size=(120, 36)) as pilot:
        await _settle(pilot)
        await pilot.press("g")
        await _settle(pilot)
        seen = []
        for _ in range(6):
            await pilot.press("}")
            await _settle(pilot)
            seen.append(len(app.screen.model.events))
        items = [i + 1 for i, e in enumerate(events) if e["kind"].startswith("item.")]
        assert seen == items[:6]
        await pilot.press("{")
        await _settle(pilot)
        assert len(app.screen.model.events) == items[4]
        await pilot.press("g", ">", ">")
        await _settle(pilot)
        nodes = [i + 1 for i, e in enumerate(events) if e["kind"].startswith("node.")]
        assert len(app.screen.model.events) == nodes[1]


@pytest.mark.anyio
async def test_the_events_pane_shows_what_the_cursor_just_applied(recorded):
    """After ``g`` (the list empties: not a scroll up by the user) and steps on, the Events
    pane's cursor is on the event the replay cursor applied last, back and forth."""
    path = recorded[0]
    app = DebuggerApp.replay(TraceIndex(path))
    async with app.run_test(size=(120, 36)) as pilot:
        await _settle(pilot)
        log = app.screen.query_one("EventLogView").list
        for keys in (("G",), ("g", *"}" * 8), (",", ","), ("f",)):
            await pilot.press(*keys)
            await _settle(pilot)
            applied = len(app.screen.model.events)
            assert log.following and log.cursor == len(log.matches) - 1 == applied - 1, keys
            assert log.scroll_offset.y == log.max_scroll_y, keys


def shown(screen: Any) -> dict[str, Any]:
    """What the panes say about the run, not where their cursors and scroll bars are."""
    from rich.console import Console

    def text(renderable: Any) -> str:
        console = Console(width=100, record=True, color_system=None)
        console.print(renderable)
        return console.export_text()

    def labels(node: Any) -> list[Any]:
        return [(str(node.label), labels(child)) for child in node.children]

    dag, tree, timeline, log = (screen.panes[name] for name in ("dag", "tree", "timeline", "log"))
    axis = timeline.axis(80)
    rows = [line.row for line in timeline._lines if line.kind == "row"] if timeline._lines is not None \
        else range(timeline._state.items.count)
    return {
        "header": text(screen.header.render()), "scrubber": text(screen.query_one("#scrubber").render()),
        "dag": [dag._render_row(y).text for y in range(dag.graph_layout.height)],
        "tree": labels(tree.root),
        "timeline": ([(ln.kind, ln.row, ln.text) for ln in timeline._lines or ()],
                     [timeline._row_strip(row, axis, 80, False).text for row in rows]),
        "inspector": text(screen.panes["inspector"].build()),
        "events": (list(log.list.matches), str(log.status_row.render()).replace("  following", "")),
    }


@pytest.mark.anyio
async def test_the_panes_after_going_back_show_what_replaying_to_there_shows(recorded, monkeypatch):
    """The cursor going back updates the panes in place: they show what a screen opened at
    that cursor shows (for the same selection)."""
    import pflow_tui.app.app as app_module
    from pflow_tui.app.runner import TraceFeed

    path, events, _ = recorded
    n = len(events)
    failure = next(e["seq"] for e in events if e.get("status") == "error")
    nested = next(e["seq"] for e in events if e["path"].startswith("rp.per.iteration_"))
    selection = Selection("sq", 3)

    async def opened_at(cursor: int) -> dict[str, Any]:
        class At(TraceFeed):
            def __init__(self, index: TraceIndex) -> None:
                super().__init__(index, cursor)

        with monkeypatch.context() as m:
            m.setattr(app_module, "TraceFeed", At)
            app = DebuggerApp.replay(TraceIndex(path), selection)
            async with app.run_test(size=(120, 36)) as pilot:
                app.screen.panes["log"].set_filter("kind:item")
                await _settle(pilot)
                app.select(selection)  # (--at waits for it to exist, and selects the start till then)
                await _settle(pilot)
                await pilot.pause(0.3)  # the inspector follows a moment later
                return shown(app.screen)

    app = DebuggerApp.replay(TraceIndex(path), selection)
    async with app.run_test(size=(120, 36)) as pilot:
        app.screen.panes["log"].set_filter("kind:item")
        await _settle(pilot)
        screen = app.screen
        for cursor in (n - 1, failure, failure - 1, nested + 3, 2, n // 2, nested - 1, 0, n - 5):
            screen.move_cursor(cursor)
            await _settle(pilot)
            assert app.screen is screen and len(screen.model.events) == cursor  # the same panes
            assert screen.panes["log"].filter_input.value == "kind:item"
            assert shown(screen) == await opened_at(cursor), cursor


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_finding_the_next_event_of_a_kind(trace, data):
    """From any event, either way, before the trace is read, while and after: the next node
    event, item event or failure (an event whose status is error, not an attempt's)."""
    index, _ = trace
    events = index.events(0, len(index))

    def is_(kind: str, e: dict[str, Any]) -> bool:
        if kind == "failure":
            return e.get("status") == "error" and not e["kind"].startswith("attempt.")
        return e["kind"].startswith(kind + ".")

    fresh = TraceIndex(index.path)
    read = data.draw(st.integers(0, len(events)), label="read")
    fresh.summaries(0, read)
    near = st.integers(max(0, read - 2), min(len(events) - 1, read + 2))  # where the notes end
    for _ in range(5):
        start = data.draw(st.one_of(near, st.integers(0, len(events) - 1)), label="from")
        step = data.draw(st.sampled_from([1, -1]), label="step")
        kind = data.draw(st.sampled_from(["node", "item", "failure"]), label="kind")
        seek = range(start + 1, len(events)) if step > 0 else range(start - 1, -1, -1)
        assert fresh.find(start, step, kind) == next((i for i in seek if is_(kind, events[i])), None)


BIG = {"name": "big", "nodes": [
    {"id": "make", "type": "echo", "params": {"message": "x", "data": list(range(15_000))}},
    {"id": "again", "type": "echo", "params": {"message": "${make.echo}", "data": "${make.data}"}}],
    "edges": [{"from": "make", "to": "again"}]}


def test_big_events_read_by_the_panes_are_kept_within_a_budget(tmp_path, monkeypatch):
    import pflow_tui.engine.trace.reader as replay

    path = tmp_path / "t.json"
    run_flow(build_flow(BIG), {}, trace=path)
    index = TraceIndex(path)
    events = index.events(0, len(index))
    big = [i for i in range(len(index)) if index.ends[i] - index.starts[i] > replay.BIG_LINE]
    assert len(big) >= 4  # node.start (params), store.write, node.end (outputs) of each
    monkeypatch.setattr(replay, "BIG_CACHE", 3 * max(index.ends[i] - index.starts[i] for i in big))
    for i in [*big, *reversed(big), *range(len(index)), *big[:2], *big[:2]]:
        assert index.event(i) == events[i]
        assert len(index._big) <= 3 and index._big_size == sum(
            index.ends[j] - index.starts[j] for j in index._big)
    assert list(index._big)[-2:] == big[:2]  # the ones read last


@pytest.mark.anyio
async def test_big_events_are_shown_whole_once_parsed(tmp_path):
    """A big event's row comes first from its leading fields (the key is answered at once),
    then whole; the tree shows its outputs once read."""
    path = tmp_path / "t.json"
    worker = threading.Thread(target=run_flow, args=(build_flow(BIG), {}), kwargs={"trace": path})
    worker.start()
    worker.join()
    index = TraceIndex(path)
    app = DebuggerApp.replay(index)
    async with app.run_test(size=(120, 60)) as pilot:
        await _settle(pilot)
        log = app.screen.panes["log"].list
        big = [i for i in range(len(index)) if index.ends[i] - index.starts[i] > BIG_LINE]
        assert log._later and set(log._later) <= set(big)  # shown from their heads first
        assert all(index.ready(i) for i in log._later)  # ... then parsed
        log.action_first()
        await _settle(pilot)
        rows = [log.render_line(y).text for y in range(log.size.height)]
        assert any("make" in row and "data=[…15000]" in row for row in rows), rows
        # the tree reads a big end event after the frame too, and shows its outputs
        keys = [str(child.label) for child in app.screen.panes["tree"]._visits["big.make"].children]
        assert "data = [0,1,2,3,4,5,6,7,8,9,10,11,12,13,14,15,16,17,18,19,20,21,22…" in keys, keys


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
    from pflow_tui.engine.trace.writer import read_trace

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
    from pflow_tui.engine.trace.diff import diff_traces

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


@pytest.fixture(scope="module", params=["rp", "agent_loop"])
def trace(request, recorded, tmp_path_factory) -> tuple[TraceIndex, Graph]:
    """Saved runs with failures, retries, nested runs, a fan-out (rp) and a loop (agent_loop)."""
    if request.param == "rp":
        path, _, graph = recorded
        return TraceIndex(path), graph
    spec = load_flow(Path(__file__).resolve().parents[2] / "sample_flows" / "agent_loop.json")
    path = tmp_path_factory.mktemp("loop") / "t.json"
    worker = threading.Thread(target=run_flow, args=(spec, prepare_inputs(spec, {})), kwargs={"trace": path})
    worker.start()
    worker.join()
    return TraceIndex(path), Graph.from_ir(spec.ir, spec.name, children_ir(spec))


def replayed_to(index: TraceIndex, graph: Graph, k: int) -> RunModel:
    model = RunModel(graph, LazyEvents(index))
    model.apply(index.summaries(0, k))
    return model


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_the_cursor_going_anywhere_equals_replaying_to_there(trace, data):
    """Back by undoing the later events (rewind), forward by applying more: at every stop the
    model is the one replaying the trace up to there builds, and goes on like it."""
    index, graph = trace
    n = len(index)
    model = RunModel(graph, LazyEvents(index))
    for cursor in data.draw(st.lists(st.integers(0, n), min_size=1, max_size=6), label="cursor moves"):
        at = len(model.events)
        if cursor >= at:
            model.apply(index.summaries(at, cursor))
        else:
            changes = model.rewind(cursor)
            assert changes.rewound and changes.events == cursor
        assert snapshot(model) == snapshot(replayed_to(index, graph, cursor)), cursor


def batch_trace(rng: random.Random, n: int, concurrency: int, shuffled: bool,
                known: bool = True) -> list[dict[str, Any]]:
    """Events of one batch node: ``concurrency`` items at a time, taken in index order (or
    shuffled), each with 0-2 retries, ending ok or failed at random moments; ``known``: the
    node start says how many items there are (else the table grows as they start)."""
    queue = list(range(n))
    if shuffled:
        rng.shuffle(queue)
    running: dict[int, int] = {}  # item -> its attempt
    kinds: list[tuple[str, int]] = []
    while queue or running:
        if queue and len(running) < concurrency and (not running or rng.random() < 0.5):
            i = queue.pop(0)
            running[i] = 1
            kinds += [("item.start", i), ("attempt.start", i)]
        else:
            i = rng.choice(sorted(running))
            if running[i] < 3 and rng.random() < 0.3:
                running[i] += 1
                kinds.append(("attempt.start", i))
            else:
                kinds.append(("item.end", i))
                attempts = running.pop(i)
                kinds[-1] = ("item.end", i, attempts)  # type: ignore[assignment]
    events: list[dict[str, Any]] = [
        {"kind": "run.start", "path": "b"},
        {"kind": "node.start", "path": "b.work", "node": "work", "type": "echo",
         "batch": {"count": n if known else None, "parallel": True, "max_concurrent": concurrency}}]
    for kind, i, *rest in kinds:
        e: dict[str, Any] = {"kind": kind, "path": f"b.work.iteration_{i}", "index": i}
        if kind == "item.end":
            e.update(status=rng.choice(["ok", "ok", "error", "cancelled"]), attempts=rest[0])
        elif kind == "attempt.start":
            e["attempt"] = sum(1 for k in events if k["path"] == e["path"] and k["kind"] == kind) + 1
        events.append(e)
    events += [{"kind": "node.end", "path": "b.work", "node": "work", "status": "ok"},
               {"kind": "run.end", "path": "b", "status": "ok"}]
    for seq, e in enumerate(events, 1):
        e["seq"], e["t"] = seq, seq / 100
    return events


@settings(max_examples=150, deadline=None)
@given(seed=st.integers(0, 2**32), n=st.integers(1, 60), concurrency=st.integers(1, 8),
       shuffled=st.booleans(), known=st.booleans(), data=st.data())
def test_a_batch_rewinds_to_any_earlier_event(seed, n, concurrency, shuffled, known, data):
    """Items taken in index order (the progress front: slices) or not (one by one), retries,
    failures, a batch of unknown size: the table after a rewind is the table of the events
    up to there."""
    events = batch_trace(random.Random(seed), n, concurrency, shuffled, known)
    graph = Graph("b", {"work": {"id": "work", "type": "echo"}}, [], "work")
    model = RunModel(graph)
    for cursor in data.draw(st.lists(st.integers(0, len(events)), min_size=1, max_size=5), label="moves"):
        if cursor >= len(model.events):
            model.apply(events[len(model.events):cursor])
        else:
            model.rewind(cursor)
        fresh = RunModel(graph)
        fresh.apply(events[:cursor])
        assert snapshot(model) == snapshot(fresh), cursor


@pytest.mark.parametrize("ready", [False, True])
def test_rewinding_a_wait_that_began_after_the_cursor(ready):
    """An item that started, then waited for a limit after the cursor: running again since its start."""
    times = {5: 1.0, 6: 1.5, 7: 2.0}
    table = ItemTable(2)
    table.start(0, 1.0, 5)
    table.wait(0, 6)
    if ready:
        table.ready(0, 2.0, 7)
    table.rewind(5, times.__getitem__)
    fresh = ItemTable(2)
    fresh.start(0, 1.0, 5)
    assert (bytes(table.status), table.t_start[0], table.running) == (bytes(fresh.status), 1.0, 1)
    assert table_state(table) == table_state(fresh)
