"""The per-item timeline pane, fed with real events of small runs (with deterministic times)."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import pytest
from recording import deterministic
from textual.app import App, ComposeResult

from pflow_tui.app.graph import Graph
from pflow_tui.app.messages import Selection, SelectionRequested
from pflow_tui.app.model import RunModel
from pflow_tui.app.status import ERROR, PENDING, RUNNING
from pflow_tui.app.styles import RETRY_VAR, theme_color
from pflow_tui.app.timeline_geometry import EIGHTHS
from pflow_tui.app.widgets.timeline import AGGREGATE_OVER, TimelineView, bar_segments
from pflow_tui.engine.ir.load import build_flow
from pflow_tui.engine.run.executor import run_flow

pytestmark = pytest.mark.anyio

SIZE = (100, 30)
BLOCKS = set(EIGHTHS[1:])
PARTIAL = set(EIGHTHS[1:8])
ITEMS = 12

PARALLEL = {
    "name": "timeline",
    "nodes": [
        {"id": "ask", "type": "llm",
         "batch": {"items": list(range(ITEMS)), "as": "n", "parallel": True, "max_concurrent": 3,
                   "error_handling": "continue", "max_retries": 3, "retry_wait": 0},
         "params": {"prompt": "item ${n}", "model": "offline", "latency": 0.02, "fail_rate": 0.4}},
        {"id": "report", "type": "echo", "params": {"message": "${ask.error_count} failed"}},
    ],
    "edges": [{"from": "ask", "to": "report"}],
}

SEQUENTIAL = {
    "name": "big",
    "nodes": [{"id": "echo", "type": "echo", "batch": {"items": list(range(1000)), "as": "n"},
               "params": {"message": "n=${n}"}}],
    "edges": [],
}




def run_events(doc: dict[str, Any], tmp: Path) -> tuple[Any, list[dict[str, Any]]]:
    spec = build_flow(doc)
    events: list[dict[str, Any]] = []
    run_flow(spec, {}, trace=tmp / "t.json", sinks=[events.append])
    return spec, deterministic(events)


def model_of(spec: Any, events: list[dict[str, Any]]) -> RunModel:
    model = RunModel(Graph.from_ir(spec.ir, spec.name))
    model.apply(events)
    return model


@pytest.fixture(scope="module")
def parallel_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[Any, list[dict[str, Any]]]:
    return run_events(PARALLEL, tmp_path_factory.mktemp("parallel"))


@pytest.fixture(scope="module")
def parallel(parallel_run: tuple[Any, list[dict[str, Any]]]) -> RunModel:
    return model_of(*parallel_run)


@pytest.fixture(scope="module")
def big_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[Any, list[dict[str, Any]]]:
    return run_events(SEQUENTIAL, tmp_path_factory.mktemp("big"))


@pytest.fixture(scope="module")
def big(big_run: tuple[Any, list[dict[str, Any]]]) -> RunModel:
    return model_of(*big_run)


class TimelineApp(App[None]):
    """The pane alone, wired like the app: a selection request selects."""

    def __init__(self, model: RunModel, selection: Selection) -> None:
        super().__init__()
        self.model = model
        self.selection = selection
        self.requests: list[Selection] = []

    def compose(self) -> ComposeResult:
        yield TimelineView(self.model, id="timeline")

    def on_mount(self) -> None:
        view = self.query_one(TimelineView)
        view.select(self.selection)
        view.focus()

    def on_selection_requested(self, message: SelectionRequested) -> None:
        self.requests.append(message.selection)
        self.query_one(TimelineView).select(message.selection)


def screen_text(view: TimelineView) -> list[str]:
    return [view.render_line(y).text for y in range(view.size.height)]


def bar_columns(rows: list[str], label_w: int) -> list[int]:
    """For each bar column, how many rows draw a bar (any eighth block) in it."""
    width = max(len(r) for r in rows) - label_w
    return [sum(1 for r in rows if r[label_w + c] in BLOCKS) for c in range(width)]


# --- pure helpers -----------------------------------------------------------------------------


def test_bar_segments_sub_cell_ends() -> None:
    def style(fg: str | None, bg: str | None) -> Any:
        return (fg, bg)

    # a bar from 2.25 to 5.5 cells: starts inside cell 2, ends inside cell 5
    segs = bar_segments((0, 18), [(18, 44, "ok")], 8, style)  # type: ignore[arg-type]
    text = "".join(s.text for s in segs)
    assert text == "──▎██▌  "
    by_char = {c: s.style for s in segs for c in s.text}
    assert by_char["▎"] == ("empty", "ok")  # background-coloured block over the bar
    assert by_char["▌"] == ("ok", None)
    # two colours meeting inside a cell: failed attempt then the last one
    segs = bar_segments(None, [(0, 12, "retry"), (12, 24, "ok")], 3, style)  # type: ignore[arg-type]
    assert "".join(s.text for s in segs) == "█▌█"
    assert [s.style for s in segs] == [("retry", None), ("retry", "ok"), ("ok", None)]
    # shorter than an eighth: still visible
    assert "".join(s.text for s in bar_segments(None, [(9, 9, "ok")], 2, style)).strip()  # type: ignore[arg-type]


# --- the pane ---------------------------------------------------------------------------------


async def test_rows_of_a_parallel_batch(parallel: RunModel) -> None:
    items = parallel.latest["ask"].items
    assert items is not None and items.failed and items.attempts.tolist().count(1) < ITEMS
    app = TimelineApp(parallel, Selection("ask"))
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause()
        view = app.query_one(TimelineView)
        lines = screen_text(view)
        header, rows = lines[0], lines[1:1 + ITEMS]
        assert header.split()[:2] == ["0s", "0.1s"]
        assert all(not line.strip() for line in lines[1 + ITEMS:])
        assert [r.split()[0] for r in rows] == [f"#{i}" for i in range(ITEMS)]
        for i, row in enumerate(rows):
            label = row.split("─")[0]
            assert ("✗" in label) == (items.status[i] == ERROR), row
            assert ("✓" in label) == (items.status[i] != ERROR), row
            assert (f"↻{items.attempts[i]}" in label) == (items.attempts[i] > 1), row
            bar = row.rstrip()
            assert bar[-1] in PARTIAL or bar[-1] == "█"
        assert sum("✗" in r for r in rows) == items.failed
        axis = view.axis()
        assert axis is not None
        # sub-cell block characters at bar ends
        assert sum(r.rstrip()[-1] in PARTIAL for r in rows) >= ITEMS // 2
        # queued lines before the bars, and never more than max_concurrent bars in one column
        assert all(r[axis.label_w] == "─" or r[axis.label_w] in BLOCKS for r in rows)
        columns = bar_columns(rows, axis.label_w)
        assert max(columns) == 3
        # a retried item: failed attempts in the warning colour, then its final status colour
        retried = next(i for i in range(ITEMS) if items.attempts[i] > 1)
        colors = {seg.style.color.name for seg in view.render_line(1 + retried)
                  if seg.style and seg.style.color}
        bgs = {seg.style.bgcolor.name for seg in view.render_line(1 + retried)
               if seg.style and seg.style.bgcolor}
        assert theme_color(app, RETRY_VAR).lower() in colors | bgs


async def test_running_bars_grow(parallel_run: tuple[Any, list[dict[str, Any]]]) -> None:
    spec, events = parallel_run
    model = RunModel(Graph.from_ir(spec.ir, spec.name))
    cut = next(i for i, e in enumerate(events) if e["kind"] == "item.start" and e.get("index") == 6)
    model.apply(events[:cut + 1])
    app = TimelineApp(model, Selection("ask"))
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause()
        view = app.query_one(TimelineView)
        items = model.latest["ask"].items
        assert items is not None
        running = [i for i in range(ITEMS) if items.status[i] == RUNNING]
        assert 0 < len(running) <= 3
        lines = screen_text(view)
        rows = lines[1:1 + ITEMS]
        assert all("◐" in rows[i] for i in running)
        # pending items wait in the queue up to now
        assert rows[ITEMS - 1].split()[1] == "·" and rows[ITEMS - 1].rstrip().endswith("─")
        before = rows[running[0]].rstrip()
        changes = model.apply(events[cut + 1:cut + 8])
        view.update_from(changes)
        await pilot.pause()
        after = view.render_line(1 + running[0]).text
        assert after.split()[0] == f"#{running[0]}" and after != before
        # nothing of this node changed: no work
        version = view._version
        view.update_from(model.apply([]))
        assert view._version == version


async def test_node_without_items(parallel: RunModel) -> None:
    app = TimelineApp(parallel, Selection("report"))
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause()
        view = app.query_one(TimelineView)
        lines = screen_text(view)
        assert lines[1].startswith("report ✓")
        assert any(c in BLOCKS for c in lines[1])
        assert not lines[2].strip()
        await pilot.press("enter")
        assert app.requests[-1] == Selection("report", None)


async def test_cursor_enter_and_click(parallel: RunModel) -> None:
    app = TimelineApp(parallel, Selection("ask"))
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause()
        view = app.query_one(TimelineView)
        await pilot.press("down", "down", "down")
        assert view.cursor == 2
        await pilot.press("enter")
        await pilot.pause()
        assert app.requests == [Selection("ask", 2)]
        await pilot.press("up", "enter")
        await pilot.pause()
        assert app.requests[-1] == Selection("ask", 1)
        # a click on a row (line 1 + index) selects that item
        await pilot.click(TimelineView, offset=(30, 1 + 9))
        await pilot.pause()
        assert app.requests[-1] == Selection("ask", 9) and view.cursor == 9
        # the app selects an item: the cursor follows
        view.select(Selection("ask", 4))
        assert view.cursor == 4
        highlighted = {seg.style.bgcolor for seg in view.render_line(1 + 4) if seg.style}
        plain = {seg.style.bgcolor for seg in view.render_line(1 + 5) if seg.style}
        assert highlighted != plain


async def test_zoom(parallel: RunModel) -> None:
    app = TimelineApp(parallel, Selection("ask"))
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause()
        view = app.query_one(TimelineView)
        whole = view.axis()
        await pilot.press("plus")
        zoomed = view.axis()
        assert whole is not None and zoomed is not None
        assert zoomed.dt == pytest.approx(whole.dt / 2)
        assert view.render_line(0).text.startswith("×2")
        await pilot.press("right")
        assert view.axis().v0 > zoomed.v0  # type: ignore[union-attr]
        await pilot.press("minus")
        assert view.axis() == whole
        await pilot.press("plus", "plus", "0")
        assert view.axis() == whole


async def test_aggregate_view(big: RunModel) -> None:
    items = big.latest["echo"].items
    assert items is not None and items.count > AGGREGATE_OVER
    app = TimelineApp(big, Selection("echo"))
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause()
        view = app.query_one(TimelineView)
        assert view.aggregate
        text = "\n".join(screen_text(view))
        assert "peak 1" in text  # a sequential batch: one at a time
        assert "✓ 1000 ok" in text and "✗ 0 failed" in text and "· 0 pending" in text
        assert "p50 10ms" in text and "p95 10ms" in text and "of 1000 finished" in text
        assert "10 slowest" in text
        assert sum(line.startswith("#") for line in screen_text(view)) == 10
        await pilot.press("z")
        assert not view.aggregate
        lines = screen_text(view)
        assert [line.split()[0] for line in lines[1:]] == [f"#{i}" for i in range(len(lines) - 1)]
        await pilot.press("end")
        assert view.cursor == 999 and view.render_line(view.size.height - 1).text.startswith("#999")
        await pilot.press("z")
        assert view.aggregate and view.render_line(1).text.startswith("peak 1")


async def test_aggregate_while_running(big_run: tuple[Any, list[dict[str, Any]]]) -> None:
    spec, events = big_run
    model = RunModel(Graph.from_ir(spec.ir, spec.name))
    first = next(i for i, e in enumerate(events) if e["kind"] == "item.start" and e["index"] == 400)
    model.apply(events[:first + 1])
    app = TimelineApp(model, Selection("echo"))
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause()
        view = app.query_one(TimelineView)
        assert "✓ 400 ok   ✗ 0 failed   ◐ 1 running   · 599 pending" in view.render_line(2).text
        assert "of 400 finished" in view.render_line(3).text
        end = next(i for i, e in enumerate(events) if e["kind"] == "item.end" and e["index"] == 499)
        view._not_before["stats"] = math.inf  # as if the last summary had just been computed
        view.update_from(model.apply(events[first + 1:end + 1]))
        await pilot.pause()
        assert "✓ 400 ok" in view.render_line(2).text  # paced while the node runs
        view.update_from(model.apply(events[end + 1:]))
        await pilot.pause()
        assert "✓ 1000 ok" in view.render_line(2).text  # the node has ended: always exact


async def test_messages_without_a_node(parallel: RunModel) -> None:
    app = TimelineApp(parallel, Selection(None))
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause()
        view = app.query_one(TimelineView)
        assert view.render_line(1).text.startswith("Select a node")
        view.select(Selection("nowhere"))
        assert view.render_line(1).text.startswith("nowhere has not started")
        await pilot.press("down", "enter")
        assert not app.requests


async def test_aggregate_of_a_parallel_batch(parallel: RunModel) -> None:
    items = parallel.latest["ask"].items
    assert items is not None
    app = TimelineApp(parallel, Selection("ask"))
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause()
        view = app.query_one(TimelineView)
        assert not view.aggregate
        await pilot.press("z")
        lines = screen_text(view)
        assert lines[1].startswith("peak 3")  # max_concurrent
        assert "max_concurrent 3" in lines[2] and f"✗ {items.failed} failed" in lines[2]
        failed_at = next(i for i, line in enumerate(lines) if f"{items.failed} failed" in line
                         and line.startswith("─"))
        assert [line.split()[0] for line in lines[failed_at + 1:failed_at + 1 + items.failed]] == [
            f"#{i}" for i in items.failures]
        # the cursor walks over item rows only, and Enter selects the item under it
        await pilot.press("end", "enter")
        await pilot.pause()
        assert app.requests[-1] == Selection("ask", items.failures[-1])


async def test_untrusted_node_id_is_literal() -> None:
    node = "[bold red]x\x1b[31m"
    model = RunModel(Graph({"name": "t"}.get("name", "t"), {node: {"id": node, "type": "echo"}}, [], node))
    model.apply([
        {"seq": 1, "t": 0.0, "kind": "run.start", "path": "t"},
        {"seq": 2, "t": 0.1, "kind": "node.start", "path": "t.x", "node": node, "type": "echo"},
        {"seq": 3, "t": 0.5, "kind": "node.end", "path": "t.x", "node": node, "status": "ok"},
    ])
    app = TimelineApp(model, Selection(node))
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause()
        row = app.query_one(TimelineView).render_line(1).text
        assert row.startswith("[bold red]x\\x1b…")
        assert "\x1b" not in row


LIMITED = {
    "name": "limited",
    "rate_limits": {"llm": {"max_concurrent": 1}},
    "nodes": [
        {"id": "ask", "type": "llm", "batch": {"items": [0, 1, 2, 3], "parallel": True},
         "params": {"prompt": "item ${item}", "model": "offline", "latency": 0.02}},
        {"id": "fan", "type": "echo", "params": {"message": "go"}},
        {"id": "a", "type": "llm", "params": {"prompt": "a", "model": "offline", "latency": 0.02}},
        {"id": "b", "type": "llm", "params": {"prompt": "b", "model": "offline", "latency": 0.02}},
        {"id": "join", "type": "merge", "params": {}},
    ],
    "edges": [{"from": "ask", "to": "fan"}, {"from": "fan", "to": "a", "parallel_group": "g"},
              {"from": "fan", "to": "b", "parallel_group": "g"},
              {"from": "a", "to": "join"}, {"from": "b", "to": "join"}],
}


@pytest.fixture(scope="module")
def limited_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[Any, list[dict[str, Any]]]:
    return run_events(LIMITED, tmp_path_factory.mktemp("limited"))


async def test_waiting_for_a_rate_limit_is_queueing(limited_run: tuple[Any, list[dict[str, Any]]]) -> None:
    spec, events = limited_run
    first_end = next(i for i, e in enumerate(events) if e["kind"] == "item.end")
    model = model_of(spec, events[:first_end])  # every item started; one runs, three wait
    items = model.latest["ask"].items
    assert items is not None and items.running == 1 and list(items.status).count(PENDING) == 3
    app = TimelineApp(model, Selection("ask"))
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause()
        view = app.query_one(TimelineView)
        rows = screen_text(view)[1:5]
        axis = view.axis()
        assert axis is not None
        bars = [any(c in BLOCKS for c in r[axis.label_w:]) for r in rows]
        assert bars.count(True) == 1  # only the running one has a bar
        assert all(r.rstrip().endswith("─") for r, bar in zip(rows, bars, strict=True) if not bar)
        assert all(r.split()[1] == "·" for r, bar in zip(rows, bars, strict=True) if not bar)
        # the whole run: each item queued (the line) until it got the limit, then ran alone
        view.update_from(model.apply(events[first_end:]))
        await pilot.pause()
        rows = screen_text(view)[1:5]
        assert all(r[axis.label_w] == "─" for r in rows[1:])  # the first one never waited
        assert max(bar_columns(rows, axis.label_w)) == 1
        await pilot.press("z")
        assert view.render_line(1).text.startswith("peak 1")  # waiting items do not count
        # a single node that waited: queued from its start, then its bar
        view.select(Selection("b" if model.latest["b"].wait_seq else "a"))
        await pilot.pause()
        row = view.render_line(1).text
        bar = row[view.axis().label_w:].strip()  # type: ignore[union-attr]
        assert bar.startswith("─") and bar[-1] in BLOCKS


def test_snapshot(snap_compare: Any, parallel: RunModel) -> None:
    async def before(pilot: Any) -> None:
        pilot.app.query_one(TimelineView).select(Selection("ask", 6))
        await pilot.pause()

    assert snap_compare(TimelineApp(parallel, Selection("ask")), terminal_size=SIZE, run_before=before)
