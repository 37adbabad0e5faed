"""The run screen's layout: pane sizes as panes are hidden, maximising every pane, and the DAG
fitting its graph at 80x24, 120x40 and 200x60 (Pilot; keys as a terminal sends them)."""

from __future__ import annotations

from pathlib import Path

import orjson
import pytest
from textual.widget import Widget

from pflow_tui.app.app import DebuggerApp
from pflow_tui.app.dag_layout import GROUP_MARK
from pflow_tui.app.graph import Graph
from pflow_tui.app.screens.run import PANES
from pflow_tui.app.widgets.dag import DagView
from pflow_tui.app.widgets.event_log import EventLogView
from pflow_tui.app.widgets.key_bar import KeyBar
from pflow_tui.app.widgets.run_header import RunHeader

pytestmark = pytest.mark.anyio

FIXTURES = Path(__file__).parent / "fixtures"
SAMPLES = Path(__file__).parents[2] / "sample_flows"
SIZES = [(80, 24), (120, 40), (200, 60)]


def recorded(name: str) -> DebuggerApp:
    """A finished run of a sample flow, from its recorded events."""
    doc = orjson.loads((FIXTURES / f"{name}.events.json").read_bytes())
    return DebuggerApp.from_events(Graph.from_ir(doc["flow"], doc["flow_name"], doc.get("children")),
                                   doc["events"])


def flow_only(path: Path) -> DebuggerApp:
    """A flow's graph with no events (nothing ran): the layout alone."""
    ir = orjson.loads(path.read_bytes())
    return DebuggerApp.from_events(Graph.from_ir(ir, ir["name"]), [])


def pane(app: DebuggerApp, name: str) -> Widget:
    return app.screen.query_one(f"#{name}")


def usable(app: DebuggerApp) -> int:
    """Rows between the header and the footer."""
    return app.screen.size.height - 2


def dag_lines(view: DagView) -> list[str]:
    return [view.render_line(y).text for y in range(view.size.height)]


def assert_boxes_whole(view: DagView) -> None:
    """Every box in view is drawn whole: inside the pane's columns and rows, with its title."""
    layout = view.graph_layout
    x0, y0 = view.scroll_offset
    width, height = view.scrollable_content_region.size
    lines = dag_lines(view)
    for node, box in layout.boxes.items():
        if not y0 <= box.y < y0 + height:
            continue
        left = view.origin_x + box.x - x0
        assert left >= 0 and left + box.width <= width, (node, box, x0, width)
        assert box.bottom <= y0 + height or box.height == 1, (node, box)
        rows = [lines[y - y0][left:left + box.width] for y in range(box.y, min(box.bottom, y0 + height))]
        assert rows[0][0] in "┌┏[" and rows[0][-1] in "┐┓]", (node, rows[0])
        assert any(node[i:i + 3] in rows[0] for i in range(len(node) - 2)), (node, rows[0])
        for row in rows[1:]:  # every row exactly the box's width, borders at both ends
            assert row[0] in "│┃└┗" and row[-1] in "│┃┘┛", (node, row)


async def test_events_take_a_third_of_the_height_and_all_of_it_alone() -> None:
    app = recorded("fanout_merge")
    async with app.run_test(size=(120, 40)) as pilot:
        await pilot.pause()
        log, main = pane(app, "log"), app.screen.query_one("#main")
        assert abs(log.outer_size.height - usable(app) / 3) <= 1
        assert main.outer_size.height + log.outer_size.height == usable(app)
        await pilot.press("1", "2", "3", "4")
        await pilot.pause()
        assert not main.display
        assert log.outer_size.height == usable(app) and log.outer_size.width == 120
        await pilot.press("1", "2", "3", "4", "5")
        await pilot.pause()
        assert not log.display and main.outer_size.height == usable(app)


async def test_hiding_the_right_column_gives_its_width_to_the_left() -> None:
    app = recorded("fanout_merge")
    async with app.run_test(size=(120, 40)) as pilot:
        await pilot.pause()
        left = app.screen.query_one("#left")
        await pilot.press("right_square_bracket")  # a width set by hand yields too
        await pilot.pause()
        assert left.outer_size.width == int(120 * 0.47)
        await pilot.press("3", "4")
        await pilot.pause()
        assert not app.screen.query_one("#right").display
        assert left.outer_size.width == 120
        assert pane(app, "dag").outer_size.width == pane(app, "tree").outer_size.width == 120
        await pilot.press("5")  # and the Events' height to the DAG and the tree
        await pilot.pause()
        assert left.outer_size.height == usable(app)
        await pilot.press("3")
        await pilot.pause()
        assert left.outer_size.width == int(120 * 0.47)
        assert pane(app, "timeline").outer_size.width == 120 - left.outer_size.width


async def test_a_pane_alone_in_its_column_takes_all_of_it() -> None:
    app = recorded("fanout_merge")
    async with app.run_test(size=(120, 40)) as pilot:
        await pilot.pause()
        column = app.screen.query_one("#left").outer_size.height
        dag, tree = pane(app, "dag"), pane(app, "tree")
        assert dag.outer_size.height <= column * 0.6 + 1 and tree.outer_size.height > 2
        await pilot.press("2")
        await pilot.pause()
        assert dag.outer_size.height == column
        await pilot.press("2", "1")
        await pilot.pause()
        assert tree.outer_size.height == column
        await pilot.press("4")
        await pilot.pause()
        assert pane(app, "timeline").outer_size.height == column
        await pilot.press("4", "3")
        await pilot.pause()
        assert pane(app, "inspector").outer_size.height == column


async def test_hiding_the_focused_pane_moves_the_focus_to_a_shown_one() -> None:
    app = recorded("fanout_merge")
    async with app.run_test(size=(120, 40)) as pilot:
        await pilot.pause()
        assert app.focused is pane(app, "dag")
        await pilot.press("1")
        await pilot.pause()
        assert app.focused is pane(app, "tree")


@pytest.mark.parametrize("name", PANES)
async def test_every_pane_maximises_and_restores(name: str) -> None:
    app = recorded("fanout_merge")
    async with app.run_test(size=(120, 40)) as pilot:
        await pilot.pause()
        target = pane(app, name)
        (target.list if isinstance(target, EventLogView) else target).focus()
        before = target.region
        await pilot.press("m")
        await pilot.pause()
        assert app.screen.maximized is target
        assert target.region.width == 120 and target.region.height == 40 - 2
        # the header and the keys stay: the status, the failures, what the keys do
        header, keys = app.screen.query_one(RunHeader), app.screen.query_one(KeyBar)
        assert header.region.y == 0 and header.region.height == 1 and "m Maximise" in str(keys.render())
        assert keys.region.y == 39 and keys.region.height == 1
        await pilot.press("m")
        await pilot.pause()
        assert app.screen.maximized is None and target.region == before
        await pilot.press("m")
        await pilot.pause()
        assert app.screen.maximized is target
        await pilot.press("escape")
        await pilot.pause()
        assert app.screen.maximized is None and target.region == before


async def test_the_maximised_dag_lays_out_for_the_whole_screen() -> None:
    app = recorded("fanout_merge")
    async with app.run_test(size=(120, 40)) as pilot:
        await pilot.pause()
        view = app.screen.query_one(DagView)
        small = view.graph_layout.metrics
        await pilot.press("m")
        await pilot.pause()
        assert view.graph_layout.metrics.box_h == 4 > small.box_h  # full boxes now fit
        assert view.graph_layout.height <= view.size.height
        assert_boxes_whole(view)
        await pilot.press("m")
        await pilot.pause()
        assert view.graph_layout.metrics == small


@pytest.mark.parametrize("size", SIZES, ids=lambda s: f"{s[0]}x{s[1]}")
@pytest.mark.parametrize("flow", ["fanout_merge", "pipeline", "agent_loop", "parallel_batch_failures",
                                  "judges", "cpu_and_limits", "wide_long"])
async def test_the_dag_never_clips_a_box(flow: str, size: tuple[int, int]) -> None:
    path = FIXTURES / f"{flow}.json" if flow == "wide_long" else SAMPLES / f"{flow}.json"
    app = flow_only(path)
    async with app.run_test(size=size) as pilot:
        await pilot.pause()
        view = app.screen.query_one(DagView)
        layout = view.graph_layout
        if layout.width <= view.scrollable_content_region.width:
            assert_boxes_whole(view)
        # moving the selection through every node keeps it whole in view
        for _ in range(len(layout.layers)):
            await pilot.press("down")
            await pilot.pause()
            box = layout.boxes[view.selected]
            x0, y0 = view.scroll_offset
            region = view.scrollable_content_region
            assert y0 <= box.y and box.bottom <= y0 + region.height
            assert x0 <= view.origin_x + box.x and view.origin_x + box.right <= x0 + region.width
            assert y0 == 0 or y0 in layout.layer_tops()  # no arrow from a box out of view


@pytest.mark.parametrize("size", SIZES[1:], ids=lambda s: f"{s[0]}x{s[1]}")
@pytest.mark.parametrize("flow", ["fanout_merge", "judges", "cpu_and_limits", "agent_loop"])
async def test_the_whole_graph_fits_and_groups_are_labelled(flow: str, size: tuple[int, int]) -> None:
    app = flow_only(SAMPLES / f"{flow}.json")
    async with app.run_test(size=size) as pilot:
        await pilot.pause()
        view = app.screen.query_one(DagView)
        layout = view.graph_layout
        assert layout.width <= view.size.width and layout.height <= view.size.height
        assert view.scroll_offset == (0, 0)
        assert_boxes_whole(view)
        text = "\n".join(dag_lines(view))
        groups = [label for label in layout.labels if label.group]
        assert len(groups) == len(view.graph.groups)
        for label in groups:
            assert label.text in text and label.text.startswith(GROUP_MARK)
        if flow == "fanout_merge":
            assert f"{GROUP_MARK}analysis" in text


async def test_a_finished_run_shows_its_first_node() -> None:
    """After a run the DAG is not left scrolled to the last node with the first out of view."""
    for size in SIZES[1:]:
        app = recorded("fanout_merge")
        async with app.run_test(size=size) as pilot:
            await pilot.pause()
            await pilot.pause(0.2)
            view = app.screen.query_one(DagView)
            assert view.scroll_offset.y == 0
            assert "filter" in dag_lines(view)[0]


async def test_at_80x24_every_pane_shows_rows() -> None:
    app = recorded("judges")
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.pause()
        for name in PANES:
            assert pane(app, name).size.height >= 4, name
        assert pane(app, "log").size.height >= 5
        view = app.screen.query_one(DagView)
        assert view.graph_layout.metrics.box_h == 1  # one-line boxes: the most in view
        assert_boxes_whole(view)


@pytest.mark.parametrize("size", SIZES, ids=lambda s: f"{s[0]}x{s[1]}")
@pytest.mark.parametrize("flow", ["parallel_batch_failures", "judges", "fanout_merge"])
async def test_finished_runs_draw_whole_boxes(flow: str, size: tuple[int, int]) -> None:
    """With durations, progress and failures in the boxes, at every size (maximised too)."""
    app = recorded(flow)
    async with app.run_test(size=size) as pilot:
        await pilot.pause()
        view = app.screen.query_one(DagView)
        assert_boxes_whole(view)
        await pilot.press("m")
        await pilot.pause()
        assert_boxes_whole(view)
