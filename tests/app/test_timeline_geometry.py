"""The timeline's geometry without Textual: lines, axis, zoom and pan, ticks, bars, aggregates."""

from __future__ import annotations

import math

import pytest

from pflow_tui.app.item_table import ItemTable
from pflow_tui.app.model import NodeState
from pflow_tui.app.status import CANCELLED, ERROR, OK, PENDING, RUNNING
from pflow_tui.app.timeline_geometry import (
    EMPTY,
    MAX_ZOOM,
    NODE_ROW,
    QUEUED,
    RETRY,
    Axis,
    BranchLanes,
    Line,
    Stats,
    bar_cells,
    body_lines,
    clamp_pan,
    concurrency,
    item_stats,
    label_width,
    lane,
    make_axis,
    nice_step,
    panned,
    row_spans,
    status_role,
    tick_label,
    ticks,
    zoomed,
)


def batch(spans: list[tuple[float, float | None]], status: int = RUNNING) -> NodeState:
    """A batch node started at 0 whose item i ran over ``spans[i]`` (end None: still running)."""
    items = ItemTable(len(spans))
    seq = 1
    for i, (start, end) in enumerate(spans):
        items.start(i, start, seq := seq + 1)
        if end is not None:
            items.end(i, OK, end, seq := seq + 1, 1)
    return NodeState("work", "flow.work", "llm", status, 0.0, items=items)


def no_stats() -> Stats:
    raise AssertionError("the summary is not shown: no stats needed")


# --- the axis ----------------------------------------------------------------------------------


def test_ticks_and_their_labels() -> None:
    assert nice_step(1.0, 100) == 0.1
    assert nice_step(0.66, 88) == 0.1
    assert nice_step(20, 88) == 5
    assert nice_step(0.0, 88) == 1.0 and nice_step(math.nan, 88) == 1.0
    assert tick_label(0.0, 0.5) == "0s"
    assert tick_label(0.5, 0.5) == "0.5s"
    assert tick_label(1.0, 0.5) == "1.0s"
    assert tick_label(0.25, 0.05) == "0.25s"
    assert tick_label(120, 60) == "2m"
    assert tick_label(150, 60) == "2m30s"
    assert tick_label(0.0004, 0.0002) == "400µs"  # not 0.0004s
    assert tick_label(0.006, 0.002) == "6ms"
    assert tick_label(0.0025, 0.0005) == "2.5ms"  # 500µs, 1.0ms ...
    assert tick_label(0.02, 0.01) == "0.02s"
    # 4 seconds on 40 cells: a label every second, 10 cells apart
    axis = Axis(t0=0.0, v0=0.0, dt=0.1, label_w=0, bar_w=40)
    assert ticks(axis) == "0s        1s        2s        3s        "
    # panned half a second on: the first label is the next whole second
    assert ticks(Axis(t0=0.0, v0=0.5, dt=0.1, label_w=0, bar_w=40)).startswith("     1s        2s")
    # a label that would not fit at the right edge is left out
    assert ticks(Axis(t0=0.0, v0=0.0, dt=0.1, label_w=0, bar_w=31)) == "0s        1s        2s         "


def test_the_axis_maps_times_to_eighths_of_a_cell() -> None:
    axis = make_axis(10.0, 14.0, 5, 45, zoom=0, pan=0.0)
    assert axis == Axis(t0=10.0, v0=10.0, dt=0.1, label_w=5, bar_w=40)
    assert axis.eighth(10.0) == 0 and axis.eighth(10.1) == 8 and axis.eighth(14.0) == 320
    zoomed_in = make_axis(10.0, 14.0, 5, 45, zoom=1, pan=0.5)
    assert zoomed_in.v0 == 12.0 and zoomed_in.dt == pytest.approx(0.05)
    # a node too short to measure still gets a span (1 ms), and a bar column at least
    tiny = make_axis(1.0, 1.0, 50, 40, zoom=0, pan=0.0)
    assert tiny.bar_w == 1 and tiny.dt == pytest.approx(1e-3)


def test_zoom_keeps_the_middle_and_pan_stays_inside() -> None:
    assert zoomed(0, 0.0, 1) == (1, 0.25)  # the middle (half way) stays in the middle
    assert zoomed(1, 0.25, -1) == (0, 0.0)
    assert zoomed(0, 0.0, -1) == (0, 0.0)
    assert zoomed(MAX_ZOOM, 0.3, 1) == (MAX_ZOOM, 0.3)
    assert zoomed(1, 0.5, 1) == (2, 0.625)  # the right half, magnified: its middle stays
    assert panned(1, 0.25, 1) == 0.375
    assert panned(1, 0.4, 1) == 0.5  # the view's right edge at the node's end
    assert panned(1, 0.1, -1) == 0.0
    assert panned(0, 0.0, 1) == 0.0  # the whole run shown: nothing to pan
    assert clamp_pan(-1.0, 3) == 0.0 and clamp_pan(2.0, 3) == 1.0 - 1 / 8


def test_the_label_column() -> None:
    node = NodeState("square", "flow.square", "llm", OK, 0.0, 1.0)
    assert label_width(node, 100, lambda: True) == len("square") + 3
    assert label_width(NodeState("n" * 40, "flow.x", "llm"), 100, lambda: False) == 16 + 3
    work = batch([(0.0, 1.0)] * 12)
    assert label_width(work, 100, lambda: False) == len("#11") + 7
    assert label_width(work, 100, lambda: True) == len("#11") + 7 + 19  # the items' labels too
    assert label_width(work, 30, lambda: True) == 12  # (2/5 of 30 cells)
    assert label_width(work, 6, lambda: False) == 2  # never more than a third of the width
    fan = NodeState("fan", "flow.fan", "fanout", OK, 0.0, 1.0, branches=ItemTable(2),
                    branch_starts=["a", "bbbb"])
    assert label_width(BranchLanes(fan), 100, lambda: True) == 4 + 5


# --- the lines shown -------------------------------------------------------------------------


def test_body_lines() -> None:
    assert body_lines(None, None, aggregate=False, stats=no_stats, index=None, page=10) == [
        Line("text", text="Select a node to see its timeline.")]
    assert body_lines("a\x1bb", None, aggregate=False, stats=no_stats, index=None, page=10) == [
        Line("text", text="a\\x1bb has not started.")]  # (an id is shown literally)
    node = NodeState("square", "flow.square", "llm", OK, 0.0, 1.0)
    assert body_lines("square", node, aggregate=False, stats=no_stats, index=None, page=10) == [
        Line("row", NODE_ROW)]
    empty = batch([])
    assert body_lines("work", empty, aggregate=True, stats=no_stats, index=None, page=10) == [
        Line("text", text="Empty batch: no items.")]
    work = batch([(0.0, 1.0), (0.0, 3.0), (0.0, 2.0)])
    assert body_lines("work", work, aggregate=False, stats=no_stats, index=1, page=10) is None


def test_the_summary_lists_the_selected_the_slowest_and_the_failed() -> None:
    work = batch([(0.0, 1.0), (0.0, 3.0), (0.0, 2.0), (0.0, None), (0.0, None)])
    work.items.end(3, ERROR, 0.5, 100, 1)  # type: ignore[union-attr]
    work.items.end(4, ERROR, 0.5, 101, 1)  # type: ignore[union-attr]
    stats = Stats([0] * 6, 5, 0.0, 0.0, 3.0, slowest=[1, 2])

    def lines(index: int | None, page: int = 10) -> list[Line] | None:
        return body_lines("work", work, aggregate=True, stats=lambda: stats, index=index, page=page)

    top = [Line("lane"), Line("counts"), Line("durations")]
    assert lines(None) == [*top, Line("heading", text="2 slowest"), Line("row", 1), Line("row", 2),
                           Line("heading", text="2 failed"), Line("row", 3), Line("row", 4)]
    # the selected item first, when it is neither among the slowest nor the failed shown
    assert lines(0)[3:5] == [Line("heading", text="selected"), Line("row", 0)]  # type: ignore[index]
    assert lines(1)[3] == Line("heading", text="2 slowest")  # type: ignore[index]
    # more failures than a page: the first page, and how to see them all
    assert lines(None, page=1)[-2:] == [Line("heading", text="2 failed (first 1; z shows all rows)"),  # type: ignore[index]
                                        Line("row", 3)]
    assert lines(4, page=1)[3:5] == [Line("heading", text="selected"), Line("row", 4)]  # type: ignore[index]


# --- one row's bars --------------------------------------------------------------------------


def test_row_spans_of_items() -> None:
    work = batch([(1.0, 2.0), (1.5, None), (math.nan, None)])
    items = work.items
    assert items is not None
    items.status[2], items.running = PENDING, items.running - 1  # (item 2 never started)
    items.retry(1, 2, 1.8, 10)
    axis = make_axis(0.0, 4.0, 0, 32, zoom=0, pan=0.0)  # 8 seconds a cell: 64 eighths a second
    assert row_spans(work, 0, axis, now=3.0) == ((0, 64), [(64, 128, status_role(OK))])
    # a retried item: its failed attempts in the retry colour, the last one in its status's
    assert row_spans(work, 1, axis, now=3.0) == ((0, 96), [(96, 115, RETRY),
                                                          (115, 192, status_role(RUNNING))])
    assert row_spans(work, 2, axis, now=3.0) == ((0, 192), [])  # queued while the node runs
    work.status = CANCELLED
    assert row_spans(work, 2, axis, now=3.0) == (None, [])  # never ran


def test_row_spans_of_a_node() -> None:
    axis = make_axis(0.0, 4.0, 0, 32, zoom=0, pan=0.0)
    node = NodeState("n", "flow.n", "llm", OK, 0.0, 2.0)
    assert row_spans(node, NODE_ROW, axis, now=3.0) == (None, [(0, 128, status_role(OK))])
    node.wait_seq, node.t_ready = 2, 0.5  # it waited half a second for a rate limit
    assert row_spans(node, NODE_ROW, axis, now=3.0) == ((0, 32), [(32, 128, status_role(OK))])
    node.t_ready, node.t_end, node.status = math.nan, math.nan, RUNNING  # still waiting
    assert row_spans(node, NODE_ROW, axis, now=3.0) == ((0, 192), [])
    assert row_spans(NodeState("n", "flow.n", "llm"), NODE_ROW, axis, now=3.0) == (None, [])


def test_bar_cells() -> None:
    ok = status_role(OK)
    # a bar from 2.25 to 5.5 cells, queued before: starts inside cell 2, ends inside cell 5
    assert bar_cells((0, 18), [(18, 44, ok)], 8) == [
        ("──", (QUEUED, None)), ("▎", (EMPTY, ok)), ("██▌", (ok, None)), ("  ", (None, None))]
    # two colours meeting inside a cell: a failed attempt, then the last one
    assert bar_cells(None, [(0, 12, RETRY), (12, 24, ok)], 3) == [
        ("█", (RETRY, None)), ("▌", (RETRY, ok)), ("█", (ok, None))]
    # shorter than an eighth: still visible
    assert "".join(text for text, _ in bar_cells(None, [(9, 9, ok)], 2)).strip()
    # out of the view (zoomed in elsewhere): blank cells
    assert bar_cells((-80, -40), [(-40, -8, ok)], 4) == [("    ", (None, None))]
    assert bar_cells(None, [(0, 800, ok)], 4) == [("████", (ok, None))]  # cut at the right edge


# --- aggregates ------------------------------------------------------------------------------


def test_item_stats() -> None:
    work = batch([(0.0, 1.0), (0.0, 5.0), (0.0, 3.0), (0.0, 2.0), (0.0, 4.0), (1.0, None)])
    stats = item_stats(work.items)  # type: ignore[arg-type]
    assert stats.counts[OK] == 5 and stats.counts[RUNNING] == 1 and stats.finished == 5
    assert stats.p50 == 3.0 and stats.p95 == 5.0 and stats.longest == 5.0
    assert stats.slowest == [1, 4, 2, 3, 0]
    none = item_stats(batch([(0.0, None)]).items)  # type: ignore[arg-type]
    assert none.slowest == [] and math.isnan(none.p50) and math.isnan(none.longest)


def test_concurrency_and_its_lane() -> None:
    work = batch([(0.0, 2.0), (1.0, 3.0), (1.0, 2.0), (2.5, None)])
    axis = make_axis(0.0, 4.0, 0, 4, zoom=0, pan=0.0)  # a second a cell
    assert concurrency(work.items, 3.2, axis) == [1, 3, 2, 1]  # type: ignore[arg-type]
    assert lane([0, 2, 4]) == (4, " ▄█")
    assert lane([1, 3, 2, 1]) == (3, "▃█▆▃")
    assert lane([]) == (0, "")


def test_branch_lanes() -> None:
    table = ItemTable(2)
    table.start(0, 1.0, 2)
    table.start(1, 1.5, 3)
    fan = NodeState("fan", "flow.fan", "fanout", OK, 0.0, 0.5, branches=table, branch_starts=["a", "b"])
    lanes = BranchLanes(fan)
    assert lanes.items is table and lanes.t_start == 1.0 and math.isnan(lanes.t_end)
    assert lanes.status == RUNNING and lanes.id == "fan"
    table.end(0, OK, 2.0, 4, 1)
    table.end(1, ERROR, 3.0, 5, 1)
    assert lanes.t_end == 3.0 and lanes.status == ERROR
