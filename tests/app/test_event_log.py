"""The event log pane: filter terms, counts, incremental updates, cursor, follow, safety."""

from __future__ import annotations

from array import array
from typing import Any, ClassVar

import pytest
from recording import deterministic
from textual.app import App, ComposeResult
from textual.binding import Binding, BindingType
from textual.events import MouseScrollUp

from pflow_tui.app.event_filter import EventFilter
from pflow_tui.app.graph import Graph
from pflow_tui.app.messages import Selection, SelectionRequested
from pflow_tui.app.model import RunModel
from pflow_tui.app.widgets.event_log import EventList, EventLogView, event_selection
from pflow_tui.engine.ir.load import build_flow
from pflow_tui.engine.run.executor import run_flow

HOSTILE = "hello [bold red]x[/] \x1b[31m red"
FAILING = (3, 10, 17)  # items that are ints: echo fails on them

FLOW = {
    "name": "demo",
    "nodes": [
        {"id": "greet", "type": "echo", "params": {"message": HOSTILE}},
        {"id": "square", "type": "echo", "params": {"message": "${item}"},
         "batch": {"items": [i if i in FAILING else f"v{i}" for i in range(20)],
                   "error_handling": "continue"}},
        {"id": "report", "type": "echo", "params": {"message": "${square.error_count} failed"}},
    ],
    "edges": [{"from": "greet", "to": "square"}, {"from": "square", "to": "report"}],
}




@pytest.fixture(scope="module")
def recorded(tmp_path_factory) -> tuple[Graph, list[dict[str, Any]]]:
    spec = build_flow(FLOW)
    events: list[dict[str, Any]] = []
    run_flow(spec, {}, trace=tmp_path_factory.mktemp("trace") / "t.json", sinks=[events.append])
    return Graph.from_ir(spec.ir, spec.name), deterministic(events)


def make_model(recorded, upto: int | None = None) -> RunModel:
    graph, events = recorded
    model = RunModel(graph)
    model.apply(events[:upto] if upto is not None else events)
    return model


class LogApp(App):
    BINDINGS: ClassVar[list[BindingType]] = [Binding("slash", "filter")]  # as the run screen's

    def __init__(self, model: RunModel) -> None:
        super().__init__()
        self.model = model
        self.requested: list[Selection] = []

    def compose(self) -> ComposeResult:
        yield EventLogView(self.model, id="log")

    def on_mount(self) -> None:
        self.query_one(EventList).focus()

    def on_selection_requested(self, message: SelectionRequested) -> None:
        self.requested.append(message.selection)

    def action_filter(self) -> None:
        self.query_one(EventLogView).action_focus_filter()


def shown(lst: EventList) -> list[dict[str, Any]]:
    return [lst.model.events[i] for i in lst.matches]


def screen_lines(lst: EventList) -> list[str]:
    return [lst.render_line(y).text for y in range(lst.size.height)]


# --- the filter alone ----------------------------------------------------------------------


def test_filter_grammar():
    f = EventFilter.parse('kind:Item.end status:error path:Square node:square#2 "two words" Foo:bar')
    assert f.kinds == ("item.end",)
    assert f.statuses == ("error",)
    assert f.paths == ("square",)
    assert f.nodes == ("square#2",)
    assert f.words == ("two words", "foo:bar")
    assert not EventFilter.parse("  ")
    assert EventFilter.parse("kind:") == EventFilter()


def test_node_term_matches_every_visit_or_one():
    events = [{"kind": "node.start", "path": "f.review"}, {"kind": "node.start", "path": "f.review#2"},
              {"kind": "node.start", "path": "f.reviewer"}, {"kind": "run.start", "path": "f"}]
    out = array("I")
    EventFilter.parse("node:review").scan(events, 0, len(events), out)
    assert list(out) == [0, 1]
    out = array("I")
    EventFilter.parse("node:review#2").scan(events, 0, len(events), out)
    assert list(out) == [1]
    assert event_selection(events[1]) == Selection("review", None)
    assert event_selection({"path": "f.sq#3.iteration_12"}) == Selection("sq", 12)
    assert event_selection(events[3]) is None


def test_filtering_100k_events_by_kind():
    kinds = ("item.start", "item.end", "attempt.start", "store.write")
    events = [{"seq": i + 1, "t": i * 0.001, "kind": kinds[i % 4], "path": f"f.sq.iteration_{i}",
               "status": "ok"} for i in range(100_000)]
    out = array("I")
    EventFilter.parse("kind:item.end status:ok path:sq").scan(events, 0, len(events), out)
    assert len(out) == 25_000
    assert all(events[i]["kind"] == "item.end" for i in out[:100])


# --- the pane ------------------------------------------------------------------------------


@pytest.mark.anyio
async def test_big_log_refilters_in_slices():
    graph = Graph.from_ir({"nodes": [{"id": "sq", "type": "echo", "batch": {"items": []}}]}, "f")
    model = RunModel(graph)
    model.apply({"seq": i + 1, "t": i * 0.001, "kind": ("item.start", "item.end")[i % 2],
                 "path": f"f.sq.iteration_{i // 2}", "status": "ok", "outputs": {"echo": f"v{i}"}}
                for i in range(100_000))
    app = LogApp(model)
    async with app.run_test(size=(100, 30)) as pilot:
        view = app.query_one(EventLogView)
        lst = view.list
        for query, expected in (("kind:item.end", 50_000), ("v99999", 1), ("node:sq path:iteration_7", 2222)):
            view.set_filter(query)
            for _ in range(500):
                if not lst.scanning:
                    break
                await pilot.pause(0.02)
            assert not lst.scanning
            assert len(lst.matches) == expected
            assert f"{expected:,} / 100,000 events" in str(view.status_row.render())


@pytest.mark.anyio
async def test_filter_terms_and_counts(recorded):
    model = make_model(recorded)
    total = len(model.events)
    app = LogApp(model)
    async with app.run_test(size=(100, 30)) as pilot:
        view = app.query_one(EventLogView)
        lst = view.list
        assert len(lst.matches) == total
        assert str(view.status_row.render()).startswith(f"{total:,} events")
        assert lst.following and lst.scroll_offset.y == lst.max_scroll_y > 0
        assert "run.end" in screen_lines(lst)[-1]

        view.set_filter("kind:item.end status:error")
        await pilot.pause()
        assert [e["path"] for e in shown(lst)] == [f"demo.square.iteration_{i}" for i in FAILING]
        assert f"3 / {total:,} events" in str(view.status_row.render())
        lines = screen_lines(lst)
        assert "square.iteration_3" in lines[0] and "✗ error" in lines[0]
        assert "TypeError: echo message must be" in lines[0]

        view.set_filter("kind:item")  # a prefix of the kind
        await pilot.pause()
        assert {e["kind"] for e in shown(lst)} == {"item.start", "item.end"}
        assert len(lst.matches) == 40

        view.set_filter("path:iteration_3")
        await pilot.pause()
        assert [(e["kind"], e["path"]) for e in shown(lst)] == [
            ("item.start", "demo.square.iteration_3"), ("item.end", "demo.square.iteration_3")]

        view.set_filter("node:report")
        await pilot.pause()
        assert [e["kind"] for e in shown(lst)] == ["node.start", "store.write", "node.end"]

        view.set_filter("V12")  # free text, case-insensitive, over the event's JSON
        await pilot.pause()
        found = shown(lst)
        assert [(e["kind"], e["path"]) for e in found] == [
            ("item.start", "demo.square.iteration_12"), ("item.end", "demo.square.iteration_12")]
        assert found[1]["outputs"]["echo"] == "v12"

        view.set_filter("")
        await pilot.pause()
        assert len(lst.matches) == total


@pytest.mark.anyio
async def test_typing_in_the_filter_input(recorded):
    app = LogApp(make_model(recorded))
    async with app.run_test(size=(100, 30)) as pilot:
        view = app.query_one(EventLogView)
        await pilot.press("/")
        assert view.filter_input.has_focus
        await pilot.press(*"status:error")
        await pilot.pause()
        assert [e["path"] for e in shown(view.list)] == [f"demo.square.iteration_{i}" for i in FAILING]
        await pilot.press("escape")
        assert view.list.has_focus
        await pilot.press("/", "backspace", "enter")  # "/" selects the text; enter goes back
        await pilot.pause()
        assert view.list.has_focus
        assert not view.list.filter and len(view.list.matches) == len(app.model.events)


@pytest.mark.anyio
async def test_incremental_updates_filter_only_new_events(recorded):
    graph, events = recorded
    half = len(events) // 2
    one = LogApp(RunModel(graph))
    two = LogApp(RunModel(graph))
    async with one.run_test(size=(100, 30)) as p1, two.run_test(size=(100, 30)) as p2:
        whole, halves = one.query_one(EventLogView), two.query_one(EventLogView)
        for view in (whole, halves):
            view.set_filter("kind:item.end status:error")
        await p1.pause()
        await p2.pause()

        whole.update_from(one.model.apply(events))
        halves.update_from(two.model.apply(events[:half]))
        calls: list[dict[str, Any]] = []
        matcher = halves.list._matcher
        assert matcher is not None
        halves.list._matcher = lambda e: calls.append(e) or matcher(e)
        halves.update_from(two.model.apply(events[half:]))
        await p1.pause()
        await p2.pause()

        assert calls == events[half:]  # only the new events were looked at
        assert list(halves.list.matches) == list(whole.list.matches)
        assert len(whole.list.matches) == len(FAILING)
        assert str(halves.status_row.render()) == str(whole.status_row.render())


@pytest.mark.anyio
async def test_enter_and_click_post_the_selection(recorded):
    app = LogApp(make_model(recorded))
    async with app.run_test(size=(100, 30)) as pilot:
        view = app.query_one(EventLogView)
        view.set_filter("path:iteration_10")
        await pilot.pause()
        await pilot.press("home", "enter")
        await pilot.pause()
        assert app.requested == [Selection("square", 10)]

        view.set_filter("node:greet")
        await pilot.pause()
        await pilot.click(EventList, offset=(20, 1))  # the second row
        await pilot.pause()
        assert app.requested[-1] == Selection("greet", None)
        assert view.list.cursor == 1


@pytest.mark.anyio
async def test_select_moves_to_the_first_event_of_the_selection(recorded):
    app = LogApp(make_model(recorded))
    async with app.run_test(size=(100, 30)) as pilot:
        lst = app.query_one(EventList)
        view = app.query_one(EventLogView)
        view.select(Selection("square", 10))
        await pilot.pause()
        event = lst.cursor_event
        assert event is not None
        assert (event["kind"], event["path"]) == ("item.start", "demo.square.iteration_10")
        assert not lst.following
        top = lst.scroll_offset.y
        assert top <= lst.cursor < top + lst.size.height
        assert any(line.startswith("▌") for line in screen_lines(lst))  # the selection's events


@pytest.mark.anyio
async def test_follow_mode_sticks_to_the_bottom(recorded):
    events = recorded[1]
    half = len(events) // 2
    app = LogApp(make_model(recorded, upto=half))
    async with app.run_test(size=(100, 30)) as pilot:
        view = app.query_one(EventLogView)
        lst = view.list
        await pilot.pause()
        assert lst.following and lst.cursor == half - 1

        view.update_from(app.model.apply(events[half:]))
        await pilot.pause()
        assert lst.cursor == len(events) - 1
        assert lst.max_scroll_y > 0 and lst.scroll_offset.y == lst.max_scroll_y
        assert "run.end" in screen_lines(lst)[-1]
        assert "following" in str(view.status_row.render())

        await pilot.press("up")
        assert not lst.following
        cursor, scroll = lst.cursor, lst.scroll_offset.y
        extra = [{"seq": len(events) + i + 1, "t": 99.0, "kind": "warning", "path": "demo.report",
                  "message": f"late {i}"} for i in range(5)]
        view.update_from(app.model.apply(extra))
        await pilot.pause()
        assert (lst.cursor, lst.scroll_offset.y) == (cursor, scroll)
        assert len(lst.matches) == len(events) + 5

        await pilot.press("end")
        await pilot.pause()
        assert lst.following and lst.cursor == len(lst.matches) - 1
        assert lst.scroll_offset.y == lst.max_scroll_y

        lst.post_message(MouseScrollUp(lst, 5, 5, 0, -1, 0, False, False, False))
        await pilot.pause()
        assert lst.scroll_offset.y < lst.max_scroll_y
        assert not lst.following


@pytest.mark.anyio
async def test_untrusted_text_renders_literally(recorded):
    model = make_model(recorded)
    n = len(model.events)
    model.apply([{"seq": n + 1, "t": 9.0, "kind": "warning", "path": "demo.greet",
                  "message": "[bold red]x[/] \x1b[31mred\x07\nnext\u202eevil"}])
    app = LogApp(model)
    async with app.run_test(size=(160, 30)) as pilot:
        view = app.query_one(EventLogView)
        lst = view.list
        view.set_filter("node:greet")
        await pilot.pause()
        strips = [lst.render_line(y) for y in range(len(lst.matches))]
        for strip in strips:
            for segment in strip:
                assert "\x1b" not in segment.text and "\x07" not in segment.text
                assert "\n" not in segment.text and "\u202e" not in segment.text
        texts = [s.text for s in strips]
        outputs = next(t for t in texts if "node.end" in t)
        assert "[bold red]x[/]" in outputs
        warning = next(t for t in texts if "warning" in t)
        assert "[bold red]x[/] \\x1b[31mred\\x07\\nnext\\u202eevil" in warning


def test_snapshot(snap_compare, recorded):
    def build() -> App:
        app = LogApp(make_model(recorded))
        return app

    async def before(pilot) -> None:
        view = pilot.app.query_one(EventLogView)
        view.select(Selection("square", 3))
        await pilot.pause()

    assert snap_compare(build(), terminal_size=(100, 30), run_before=before)
