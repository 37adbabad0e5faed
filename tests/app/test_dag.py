"""The DAG pane: its layout (pure) and its widget (Pilot, snapshot)."""

from __future__ import annotations

from itertools import pairwise
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from recording import deterministic
from textual.app import App, ComposeResult
from textual.message import Message

from pflow_tui.app.dag_layout import (
    BOX_H,
    BOX_W,
    CHANNEL,
    GROUP_MARK,
    KINDS,
    LINE_MIN,
    DagLayout,
    Metrics,
    fit_layout,
    layout_graph,
)
from pflow_tui.app.graph import Graph, GraphEdge
from pflow_tui.app.messages import Selection, SelectionRequested
from pflow_tui.app.model import Changes, RunModel
from pflow_tui.app.widgets.dag import DagView, format_duration
from pflow_tui.engine.ir.load import build_flow
from pflow_tui.engine.run.executor import run_flow

# --- helpers ---------------------------------------------------------------------------------


def graph(nodes: list[str], edges: list[tuple[str, ...]], start: str | None = None,
          types: dict[str, str] | None = None, batches: frozenset[str] = frozenset()) -> Graph:
    ir_nodes: dict[str, dict[str, Any]] = {}
    for n in nodes:
        node: dict[str, Any] = {"id": n, "type": (types or {}).get(n, "echo")}
        if n in batches:
            node["batch"] = {"items": "${x}"}
        ir_nodes[n] = node
    return Graph("flow", ir_nodes, [GraphEdge(*e) for e in edges], start or nodes[0])


def fan_out() -> Graph:
    return graph(list("abcde"), [("a", "b"), ("a", "c"), ("a", "d"), ("b", "e"), ("c", "e"), ("d", "e")])




def box_text(view: DagView, node: str) -> list[str]:
    """The rendered rows of a node's box (canvas rows, no scrolling assumed)."""
    box = view.graph_layout.boxes[node]
    left = view.origin_x + box.x
    return [view.render_line(y).text[left:left + box.width] for y in range(box.y, box.bottom)]


def screen_text(view: DagView) -> str:
    return "\n".join(view.render_line(y).text for y in range(view.size.height))


class DagApp(App[None]):
    """A test app that does what the real one does with SelectionRequested."""

    def __init__(self, model: RunModel, select: str | None = None) -> None:
        super().__init__()
        self.model = model
        self.initial = select
        self.requests: list[Selection] = []

    def compose(self) -> ComposeResult:
        yield DagView(self.model, id="dag")

    def on_mount(self) -> None:
        view = self.query_one(DagView)
        view.focus()
        if self.initial:
            view.select(Selection(self.initial))

    def on_selection_requested(self, message: SelectionRequested) -> None:
        self.requests.append(message.selection)
        self.query_one(DagView).select(message.selection)


# --- layout ----------------------------------------------------------------------------------


def assert_sane(layout: DagLayout, nodes: list[str]) -> None:
    """Every box inside the canvas, none overlapping; strokes and labels on free cells;
    every edge joins its two boxes: it leaves from the row under its source, inside the
    source's columns, and ends in a ▼ right above its target."""
    m = layout.metrics
    assert set(layout.boxes) == set(nodes)
    boxes = list(layout.boxes.values())
    for i, a in enumerate(boxes):
        assert a.x >= 0 and a.y >= 0 and a.right <= layout.width and a.bottom <= layout.height
        if m.box_h == 1:
            assert a.height == 1 and LINE_MIN <= a.width <= m.box_w
        else:
            assert (a.width, a.height) == (m.box_w, m.box_h)
        for b in boxes[i + 1:]:
            assert a.right <= b.x or b.right <= a.x or a.bottom <= b.y or b.bottom <= a.y, (a, b)
    for x, y in layout.strokes:
        assert 0 <= x < layout.width and 0 <= y < layout.height
        assert layout.box_at(x, y) is None, (x, y)
    taken = set()
    for label in layout.labels:
        assert label.x >= 0 and label.x + label.width <= layout.width and 0 <= label.y < layout.height
        for x in range(label.x, label.x + label.width):
            assert layout.box_at(x, label.y) is None
            assert (x, label.y) not in layout.strokes
            assert (x, label.y) not in taken
            taken.add((x, label.y))
    for edge in layout.edges:
        src, dst = layout.boxes[edge.src], layout.boxes[edge.dst]
        assert any(y == src.bottom and src.x <= x < src.right for x, y in edge.cells), edge
        into = [(x, y) for x, y in edge.cells if y == dst.y - 1 and dst.x <= x < dst.right]
        assert into, edge
        if m.channel > 1:  # a 1-row channel has no arrows: its corners point down
            assert any(layout.strokes.get(cell) == "▼" for cell in into), edge


def test_single_node() -> None:
    layout = layout_graph(graph(["only"], []))
    assert (layout.width, layout.height) == (BOX_W, BOX_H)
    box = layout.boxes["only"]
    assert (box.x, box.y, box.layer, box.order) == (0, 0, 0, 0)
    assert layout.strokes == {} and layout.labels == [] and layout.layers == [["only"]]
    assert layout.box_at(5, 2) == "only" and layout.box_at(5, 4) is None


def test_empty_graph() -> None:
    layout = layout_graph(Graph("flow", {}, [], ""))
    assert (layout.width, layout.height, layout.boxes) == (0, 0, {})


def test_long_chain_is_one_straight_column() -> None:
    ids = [f"step-{i}" for i in range(20)]
    layout = layout_graph(graph(ids, list(pairwise(ids))))
    assert_sane(layout, ids)
    assert layout.layers == [[i] for i in ids]
    assert {layout.boxes[i].x for i in ids} == {0}
    assert [layout.boxes[i].y for i in ids] == [n * (BOX_H + CHANNEL) for n in range(20)]
    assert list(layout.strokes.values()).count("▼") == 19
    assert layout.height == 20 * BOX_H + 19 * CHANNEL


def test_fan_out_fan_in() -> None:
    layout = layout_graph(fan_out())
    assert_sane(layout, list("abcde"))
    assert layout.layers == [["a"], ["b", "c", "d"], ["e"]]
    b = layout.boxes
    assert b["b"].y == b["c"].y == b["d"].y and b["b"].x < b["c"].x < b["d"].x
    assert b["a"].centre == b["c"].centre == b["e"].centre
    assert b["c"].x - b["b"].right == 2  # siblings side by side, 2 columns apart
    assert layout.text() == [
        "                          ┌─ a ──────────────────┐",
        "                          │                      │",
        "                          │                      │",
        "                          └───────────┬──────────┘",
        "                                      │",
        "            ┌─────────────────────────┼─────────────────────────┐",
        "            ▼                         ▼                         ▼",
        "┌─ b ──────────────────┐  ┌─ c ──────────────────┐  ┌─ d ──────────────────┐",
        "│                      │  │                      │  │                      │",
        "│                      │  │                      │  │                      │",
        "└───────────┬──────────┘  └───────────┬──────────┘  └───────────┬──────────┘",
        "            │                         │                         │",
        "            └─────────────────────────┼─────────────────────────┘",
        "                                      ▼",
        "                          ┌─ e ──────────────────┐",
        "                          │                      │",
        "                          │                      │",
        "                          └──────────────────────┘",
    ]


def test_diamond_with_error_edge() -> None:
    layout = layout_graph(graph(list("abcd"), [("a", "b"), ("a", "c", "error"), ("b", "d"), ("c", "d")]))
    assert_sane(layout, list("abcd"))
    assert layout.layers == [["a"], ["b", "c"], ["d"]]
    (label,) = layout.labels
    a, c = layout.boxes["a"], layout.boxes["c"]
    assert (label.text, label.src, label.dst, label.back) == ("error", "a", "c", False)
    assert a.bottom <= label.y < c.y  # in the channel
    assert a.centre < label.x and label.x + label.width <= c.centre  # on the edge's own run
    assert layout.text()[5] == "            ┌────────────┴───error────┐"
    edge = next(e for e in layout.edges if e.dst == "c")
    assert edge.label == label and edge.actions == ("error",)


def test_loop_is_a_back_edge_along_the_right_margin() -> None:
    layout = layout_graph(graph(["start", "work", "check", "done"],
                                [("start", "work"), ("work", "check"), ("check", "work", "again"),
                                 ("check", "done")]))
    assert_sane(layout, ["start", "work", "check", "done"])
    assert layout.layers == [["start"], ["work"], ["check"], ["done"]]
    (back,) = [e for e in layout.edges if e.back]
    assert (back.src, back.dst, back.actions) == ("check", "work", ("again",))
    assert back.label is not None and back.label.text == "again" and back.label.back
    right = max(b.right for b in layout.boxes.values())
    lane = {x for x, _ in back.cells if x >= right}
    assert lane, "the back edge runs right of every box"
    arrows = [cell for cell, ch in layout.strokes.items() if ch == "▲"]
    assert len(arrows) == 1 and arrows[0][0] > right and arrows[0] in back.cells
    assert back.label.x > arrows[0][0] and back.label.y == arrows[0][1]
    work = layout.boxes["work"]
    assert layout.strokes[(work.x + BOX_W - 3, work.y - 1)] == "▼"  # enters work from above


def test_self_loop_and_loop_to_the_start() -> None:
    layout = layout_graph(graph(["a", "b"], [("a", "a", "again"), ("a", "b")]))
    assert_sane(layout, ["a", "b"])
    assert layout.boxes["a"].y == CHANNEL  # room above the start node for the loop to come in
    assert [e.back for e in layout.edges] == [True, False]


def test_disconnected_nodes_come_after_in_ir_order() -> None:
    layout = layout_graph(graph(["a", "b", "lonely", "x", "y"], [("a", "b"), ("x", "y"), ("y", "b")]))
    assert_sane(layout, ["a", "b", "lonely", "x", "y"])
    layer = {n: b.layer for n, b in layout.boxes.items()}
    assert layer["a"] == 0 and layer["b"] == 1
    assert min(layer["lonely"], layer["x"]) > layer["b"] and layer["y"] > layer["x"]
    assert layout.layers[2] == ["lonely", "x"]
    up = next(e for e in layout.edges if e.src == "y")
    assert up.back  # goes up into the reached part: routed along the margin


def test_long_ids_and_actions_are_truncated() -> None:
    long_a, long_b = "a" * 45, "b" * 60
    layout = layout_graph(graph([long_a, long_b], [(long_a, long_b, "a-very-long-action-name-indeed")]))
    assert_sane(layout, [long_a, long_b])
    assert all(b.width == BOX_W for b in layout.boxes.values())
    text = layout.text()
    assert text[0] == "┌─ " + "a" * 17 + "… ─┐" and len(text[0]) == BOX_W
    (label,) = layout.labels
    assert label.text.endswith("…") and label.width == 16


def test_parallel_edges_are_drawn_once_with_both_actions() -> None:
    layout = layout_graph(graph(["a", "b"], [("a", "b"), ("a", "b", "error")]))
    (edge,) = layout.edges
    assert edge.actions == ("default", "error")
    assert edge.label is not None and edge.label.text == "default/error"


def test_untrusted_actions_are_literal() -> None:
    layout = layout_graph(graph(["a", "b"], [("a", "b", "\x1b[31mx")]))
    (label,) = layout.labels
    assert "\x1b" not in label.text and label.text.startswith("\\x1b")


ACTIONS = st.sampled_from(["default", "default", "error", "again", "a-rather-long-action-name"])


@st.composite
def random_graphs(draw: st.DrawFn) -> Graph:
    ids = draw(st.lists(st.text(min_size=1, max_size=50), min_size=1, max_size=12, unique=True))
    n = len(ids)
    edges = draw(st.lists(st.tuples(st.integers(0, n - 1), st.integers(0, n - 1), ACTIONS), max_size=30))
    start = draw(st.integers(0, n))  # n: a start node that does not exist
    g = Graph("flow", {i: {"id": i, "type": "echo"} for i in ids},
              [GraphEdge(ids[a], ids[b], act) for a, b, act in edges],
              ids[start] if start < n else "missing")
    for a, b, _ in edges:  # some fan-outs are parallel groups
        if a != b and draw(st.booleans()):
            g.fanouts.setdefault(ids[a], []).append(ids[b])
            g.groups.setdefault(ids[a], draw(st.sampled_from(["g", "analysis", "a-long-group-name"])))
    return g


METRICS = st.sampled_from([Metrics(w, h, ch, gap, fit) for h, ch, gap, widths in KINDS
                           for w in (widths[0], widths[-1]) for fit in ((0, 30) if h == 1 else (0,))])


@settings(max_examples=300, deadline=None)
@given(random_graphs(), METRICS)
def test_random_graphs_lay_out_cleanly(g: Graph, metrics: Metrics) -> None:
    layout = layout_graph(g, metrics)
    assert layout.metrics == metrics
    assert_sane(layout, list(g.nodes))
    assert sorted(n for layer in layout.layers for n in layer) == sorted(g.nodes)
    for nid, box in layout.boxes.items():
        assert layout.layers[box.layer][box.order] == nid
    for label in layout.labels:
        if label.group:
            assert label.text.startswith(GROUP_MARK[0]) and label.src in g.groups
    layout.text()


@settings(max_examples=200, deadline=None)
@given(random_graphs(), st.integers(10, 200), st.integers(3, 60))
def test_fit_layout_shows_the_whole_graph_when_any_size_can(g: Graph, width: int, height: int) -> None:
    cache: dict[Metrics, DagLayout] = {}
    layout = fit_layout(g, width, height, cache)
    assert_sane(layout, list(g.nodes))
    whole = [lay for lay in cache.values() if lay.width <= width and lay.height <= height]
    if whole:  # the first kind that fits, at its widest box that fits
        assert layout.width <= width and layout.height <= height
        assert layout.metrics.box_h == max(lay.metrics.box_h for lay in whole)
    else:  # one-line boxes, as narrow as the view (beside a scrollbar) asks
        assert layout.metrics.box_h == 1 and layout.metrics.fit_w == width - 1


def test_compact_and_one_line_layouts_of_a_fan_out() -> None:
    g = fan_out()
    g.fanouts["a"], g.groups["a"] = ["b", "c", "d"], "analysis"
    compact = layout_graph(g, Metrics(16, 3, 2))
    assert_sane(compact, list("abcde"))
    assert compact.text()[:5] == [
        "                  ┌─ a ──────────┐",
        "                  │              │",
        "                  └───────┬──────┘",
        "        ┌─────────────────┼─────────────────┐",
        "        ▼                 ▼ ‖ analysis      ▼",
    ]
    line = layout_graph(g, Metrics(30, 1, 2, 1))
    assert_sane(line, list("abcde"))
    assert line.text() == [
        "         [a     ]",
        "    ┌────────┼────────┐",
        "    ▼        ▼ ‖ an…  ▼",
        "[b     ] [c     ] [d     ]",
        "    └────────┼────────┘",
        "             ▼",
        "         [e     ]",
    ]


def test_one_line_boxes_share_a_layer_too_wide() -> None:
    ids = ["plan", *(f"fetch-{n}" for n in ("users", "orders", "inventory", "prices", "reviews")), "join"]
    g = graph(ids, [*(("plan", b) for b in ids[1:6]), *((b, "join") for b in ids[1:6])])
    wide = layout_graph(g, Metrics(30, 1, 2, 1))
    assert wide.boxes["fetch-inventory"].width == len("fetch-inventory") + 4  # as wide as its id
    assert wide.boxes["plan"].width == LINE_MIN
    narrow = layout_graph(g, Metrics(30, 1, 2, 1, fit_w=60))
    assert narrow.width <= 60 and len({narrow.boxes[b].width for b in ids[1:6]}) <= 2
    assert_sane(narrow, ids)


# --- the widget ------------------------------------------------------------------------------


def fan_out_model() -> RunModel:
    model = RunModel(fan_out())
    model.apply([{"seq": 1, "t": 0.0, "kind": "run.start", "path": "flow"}])
    return model


@pytest.mark.anyio
async def test_arrow_keys_move_the_selection_on_a_fan_out() -> None:
    posted: list[Selection] = []
    seen_messages: list[Message] = []  # kept alive, so identities are never reused

    def hook(message: Message) -> None:  # called once per widget the message bubbles through
        if isinstance(message, SelectionRequested) and not any(m is message for m in seen_messages):
            seen_messages.append(message)
            posted.append(message.selection)

    app = DagApp(fan_out_model())
    async with app.run_test(size=(100, 30), message_hook=hook) as pilot:
        view = app.query_one(DagView)
        seen = []
        for key in ("down", "down", "left", "right", "right", "right", "down", "up", "up"):
            await pilot.press(key)
            seen.append(view.selected)
        assert seen == ["a", "c", "b", "c", "d", "d", "e", "c", "a"]
        # every move posted a request; pressing right at the end of a layer did not
        assert posted == [Selection(n) for n in ("a", "c", "b", "c", "d", "e", "c", "a")]
        assert app.requests == posted
        await pilot.press("enter")
        assert posted[-1] == Selection("a")
        assert "┏" in screen_text(view)  # the selected box is heavy


@pytest.mark.anyio
async def test_a_click_on_a_box_selects_it() -> None:
    app = DagApp(fan_out_model())
    async with app.run_test(size=(100, 30)) as pilot:
        view = app.query_one(DagView)
        box = view.graph_layout.boxes["d"]
        assert await pilot.click(DagView, offset=(view.origin_x + box.x + 5, box.y + 2))
        assert view.selected == "d" and app.requests == [Selection("d")]
        assert box_text(view, "d")[0].startswith("┏") and box_text(view, "d")[3].startswith("┗")
        # the app selecting something else moves the highlight
        view.select(Selection("b", index=3))
        await pilot.pause()
        assert view.selected == "b" and box_text(view, "d")[0].startswith("┌")
        view.select(Selection(None))
        assert view.selected is None


@pytest.mark.anyio
async def test_the_selection_is_scrolled_into_view_and_clicks_follow_the_scroll() -> None:
    ids = [f"step-{i}" for i in range(20)]
    app = DagApp(RunModel(graph(ids, list(pairwise(ids)))))
    async with app.run_test(size=(100, 30)) as pilot:
        view = app.query_one(DagView)
        await pilot.pause()
        layout = view.graph_layout
        assert layout.metrics.box_h == 1 and layout.height > view.size.height  # the most in view
        for _ in range(17):
            await pilot.press("down")
        await pilot.pause()
        box = view.graph_layout.boxes["step-16"]
        assert view.selected == "step-16"
        top = view.scroll_offset.y
        assert 0 < top <= box.y and box.bottom <= top + view.size.height
        assert top in layout.layer_tops()  # a whole box at the top, no arrow from out of view
        line = view.render_line(box.y - top).text
        assert line.strip().startswith("[· step-16")
        above = view.graph_layout.boxes["step-15"]
        assert await pilot.click(DagView, offset=(view.origin_x + above.x + 2, above.y - top))
        assert view.selected == "step-15"
        view.select(Selection("step-0"))
        await pilot.pause()
        assert view.scroll_offset.y == 0
        view.select(Selection("step-19"))  # the last layer: its top can be the view's top
        await pilot.pause()
        assert view.scroll_offset.y in layout.layer_tops()
        assert view.render_line(layout.boxes["step-19"].y - view.scroll_offset.y).text.strip()[:2] == "[·"

    app = DagApp(RunModel(graph(ids, list(pairwise(ids)))), select="step-19")  # before the first layout
    async with app.run_test(size=(100, 30)) as pilot:
        await pilot.pause()
        view = app.query_one(DagView)
        box = view.graph_layout.boxes["step-19"]
        assert view.scroll_offset.y <= box.y < view.scroll_offset.y + view.size.height


BATCH_FLOW = {
    "name": "batchfail", "ir_version": "0.1.0",
    "nodes": [
        {"id": "make", "type": "shell", "params": {"command": "echo '[0,1,2,3,4,5]'"}},
        {"id": "work", "type": "shell",
         "batch": {"items": "${make.stdout}", "as": "n", "error_handling": "continue"},
         "params": {"command": "if [ $(( ${n} % 3 )) -eq 2 ]; then exit 3; fi; echo ok ${n}"}},
        {"id": "check", "type": "shell", "params": {"command": "exit 2"}},
        {"id": "on-error", "type": "echo", "params": {"message": "failed"}},
        {"id": "never", "type": "echo", "params": {"message": "x"}},
    ],
    "edges": [{"from": "make", "to": "work"}, {"from": "work", "to": "check"},
              {"from": "check", "to": "never"}, {"from": "check", "to": "on-error", "action": "error"}],
}


@pytest.fixture(scope="module")
def batch_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[Graph, list[dict[str, Any]]]:
    spec = build_flow(BATCH_FLOW)
    events: list[dict[str, Any]] = []
    run_flow(spec, {}, trace=tmp_path_factory.mktemp("dag") / "t.json", sinks=[events.append])
    return Graph.from_ir(spec.ir, spec.name), deterministic(events)


@pytest.mark.anyio
async def test_statuses_and_progress_from_a_real_batch_run(batch_run: tuple[Graph, list]) -> None:
    g, events = batch_run
    model = RunModel(g)
    model.apply(events)
    app = DagApp(model)
    async with app.run_test(size=(100, 40)):
        view = app.query_one(DagView)
        work = box_text(view, "work")
        assert work[0].startswith("┌ ✓ work ")
        assert "shell" in work[1] and work[1].rstrip(" │").endswith("6/6 ✗2")
        state = model.latest["work"]
        assert format_duration(state.t_end - state.t_start) in work[2]
        assert box_text(view, "check")[0].startswith("┌ ✗ check ")
        assert box_text(view, "on-error")[0].startswith("┌ ✓ on-error ")
        never = box_text(view, "never")
        assert never[0].startswith("┌ · never ") and never[2].strip("│ ") == ""
        assert "error" in screen_text(view)  # the error edge's label
        # the failed count is drawn in the theme's error colour
        row = view.render_line(view.graph_layout.boxes["work"].y + 1)
        failed = next(s for s in row if "✗2" in s.text)
        assert failed.style is not None and failed.style.color is not None
        assert failed.style.color.triplet.hex == app.theme_variables["error"].lower()


@pytest.mark.anyio
async def test_live_updates_repaint_only_what_changed(batch_run: tuple[Graph, list]) -> None:
    g, events = batch_run
    model = RunModel(g)
    cut = next(i for i, e in enumerate(events) if e["kind"] == "item.end" and e["index"] == 3)
    model.apply(events[:cut])  # work is running, 3 items done (one failed)
    app = DagApp(model)
    async with app.run_test(size=(100, 40)) as pilot:
        await pilot.pause()
        view = app.query_one(DagView)
        work = box_text(view, "work")
        assert work[0].startswith("┌ ◐ work ") and "3/6 ✗1" in work[1]
        started = model.latest["work"].t_start
        assert format_duration(model.t - started) in work[2]
        cached = dict(view._rows)
        view.update_from(Changes())  # an idle tick
        assert view._rows == cached
        await pilot.pause()
        view.update_from(model.apply(events[cut:cut + 1]))  # item 3 ends
        work = box_text(view, "work")
        assert "4/6 ✗1" in work[1] and format_duration(model.t - started) in work[2]
        rows = view.graph_layout.boxes
        untouched = rows["make"].y
        assert untouched in cached and view._rows.get(untouched) is cached[untouched]  # kept its strip
        view.update_from(model.apply(events[cut + 1:]))
        assert box_text(view, "work")[0].startswith("┌ ✓ work ")
        assert box_text(view, "never")[0].startswith("┌ · never ")


@pytest.mark.anyio
async def test_node_ids_are_rendered_literally() -> None:
    nasty = "[b]x[/b]\x1b[31m"
    model = RunModel(graph([nasty, "b"], [(nasty, "b", "[i]no[/i]")]))
    app = DagApp(model)
    async with app.run_test(size=(100, 30)):
        view = app.query_one(DagView)
        text = screen_text(view)
        assert "[b]x[/b]\\x1b[31m" in text and "[i]no[/i]" in text
        for y in range(view.size.height):
            assert all("\x1b" not in s.text for s in view.render_line(y))


# --- snapshot --------------------------------------------------------------------------------


def snapshot_model() -> RunModel:
    """A fan-out flow: one branch failed (its error edge ran), a batch is running."""
    g = graph(["fetch", "parse-json", "resize-images", "summarize", "publish", "alert"],
              [("fetch", "parse-json"), ("fetch", "resize-images"), ("fetch", "summarize"),
               ("parse-json", "publish"), ("resize-images", "publish"), ("summarize", "publish"),
               ("summarize", "alert", "error")],
              types={"fetch": "http", "parse-json": "shell", "resize-images": "shell",
                     "summarize": "llm", "publish": "shell", "alert": "echo"},
              batches=frozenset({"resize-images"}))
    seq = 0
    events: list[dict[str, Any]] = []

    def emit(t: float, kind: str, path: str, **fields: Any) -> None:
        nonlocal seq
        seq += 1
        events.append({"seq": seq, "t": t, "kind": kind, "path": f"flow.{path}" if path else "flow",
                       **fields})

    emit(0.0, "run.start", "")
    emit(0.1, "node.start", "fetch", node="fetch", type="http")
    emit(0.512, "node.end", "fetch", node="fetch", status="ok", duration=0.412)
    emit(0.6, "node.start", "parse-json", node="parse-json", type="shell")
    emit(1.8, "node.end", "parse-json", node="parse-json", status="ok", duration=1.2)
    emit(2.0, "node.start", "resize-images", node="resize-images", type="shell",
         batch={"count": 40, "parallel": True, "max_concurrent": 4})
    for i in range(14):
        emit(2.0 + i, "item.start", f"resize-images.iteration_{i}", index=i)
        if i < 12:
            status = "error" if i in (3, 7, 10) else "ok"
            emit(2.5 + i, "item.end", f"resize-images.iteration_{i}", index=i, status=status, duration=0.5)
    emit(20.0, "node.start", "summarize", node="summarize", type="llm")
    emit(23.2, "node.end", "summarize", node="summarize", status="error", duration=3.2, action="error")
    emit(23.3, "node.start", "alert", node="alert", type="echo")
    emit(23.31, "node.end", "alert", node="alert", status="ok", duration=0.01)
    emit(66.0, "warning", "", message="still resizing")
    model = RunModel(g)
    model.apply(events)
    return model


def test_snapshot(snap_compare: Any) -> None:
    assert snap_compare(DagApp(snapshot_model(), select="summarize"), terminal_size=(100, 30))


def test_snapshot_model_is_what_the_snapshot_shows() -> None:
    model = snapshot_model()
    assert model.t == 66.0
    assert model.node_status("summarize") == "error" and model.node_status("publish") == "pending"
    items = model.latest["resize-images"].items
    assert items is not None and (items.done, items.failed, items.running) == (9, 3, 2)


@pytest.mark.anyio
async def test_one_line_boxes_drop_the_stem_siblings_share() -> None:
    ids = ["plan", *(f"fetch-{n}" for n in ("users", "orders", "inventory", "prices", "reviews"))]
    app = DagApp(RunModel(graph(ids, [("plan", b) for b in ids[1:]])))
    async with app.run_test(size=(50, 12)) as pilot:
        await pilot.pause()
        view = app.query_one(DagView)
        assert view.graph_layout.metrics.box_h == 1
        text = screen_text(view)
        for word in ("use", "ord", "inv", "pri", "rev"):
            assert f"· {word}" in text or f"…{word}" in text
        assert "[· plan]" in text
