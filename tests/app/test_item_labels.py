"""Items by value: labels beside indexes in the tree and the timeline, in the filter and the palette."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import orjson
import pytest
from recording import record_run
from rich.console import Console

from pflow_tui.app.app import DebuggerApp
from pflow_tui.app.commands import labelled
from pflow_tui.app.event_filter import EventFilter
from pflow_tui.app.graph import Graph
from pflow_tui.app.messages import Selection
from pflow_tui.app.model import RunModel
from pflow_tui.engine.ir.load import build_flow
from pflow_tui.engine.trace.reader import BIG_LINE, TraceIndex
from pflow_tui.engine.trace.replay import LazyEvents

pytestmark = pytest.mark.anyio

NAMES = ["alpha ok", "bravo ok", "charlie ok", "delta bad", "echo ok", "foxtrot bad"]
FLOW = {
    "name": "labels",
    "nodes": [
        # objects with a name: the label template names them; echo's output never does
        {"id": "square", "type": "echo", "params": {"message": "item ${__index__}"},
         "batch": {"items": [{"name": n, "n": i} for i, n in enumerate(NAMES)], "as": "task",
                   "label": "${task.name}", "parallel": True, "max_concurrent": 2,
                   "error_handling": "continue"}},
        # strings, with a hostile one: derived labels
        {"id": "words", "type": "echo", "params": {"message": "${item}"},
         "batch": {"items": ["plain", "[bold red]x[/] \x1b[31mred\nnext", 7],
                   "error_handling": "continue"}},
    ],
    "edges": [{"from": "square", "to": "words"}],
}


def record(doc: dict[str, Any], trace: Path) -> tuple[Graph, list[dict[str, Any]]]:
    return record_run(build_flow(doc), trace)


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> tuple[Graph, list[dict[str, Any]], Path]:
    trace = tmp_path_factory.mktemp("labels") / "t.json"
    graph, events = record(FLOW, trace)
    return graph, events, trace


def text_of(renderable: Any) -> str:
    console = Console(width=200, record=True, color_system=None)
    console.print(renderable)
    return console.export_text()


def model_of(graph: Graph, events: list[dict[str, Any]]) -> RunModel:
    model = RunModel(graph)
    model.apply(events)
    return model


# --- the view model -------------------------------------------------------------------------------

def test_the_model_reads_each_items_label(run) -> None:
    model = model_of(*run[:2])
    square, words = model.latest["square"], model.latest["words"]
    assert [model.item_label(square, i) for i in range(len(NAMES))] == NAMES
    assert model.item_label(words, 1) == "[bold red]x[/] \\x1b[31mred\\nnext"  # one literal line
    assert model.item_label(words, 2) == "7"
    assert model.item_label(words, 99) == "" and model.item_label(None, 0) == ""
    assert model.labels_at("labels.square.iteration_3") == ["delta bad"]
    assert model.labels_at("labels.square") == []


def test_a_trace_written_before_labels_gets_labels_from_its_items(run) -> None:
    graph, events, _ = run
    old = [{k: v for k, v in e.items() if k != "label"} for e in events]
    model = model_of(graph, old)
    assert model.item_label(model.latest["square"], 3) == "delta bad"  # the item's name
    assert model.item_label(model.latest["words"], 0) == "plain"
    bare = [{k: v for k, v in e.items() if k not in ("label", "item")} for e in events]
    model = model_of(graph, bare)
    assert model.item_label(model.latest["square"], 3) == ""  # nothing to show: the index only


def test_a_hostile_label_in_a_trace_is_made_one_safe_line(run) -> None:
    graph, events, _ = run
    forged = [dict(e, label="x\x1b]0;pwned\x07\n" + "y" * 80) if e["kind"] == "item.start" else e
              for e in events]
    model = model_of(graph, forged)
    label = model.item_label(model.latest["square"], 0)
    assert label.startswith("x\\x1b]0;pwned\\x07\\ny") and len(label) == 32 and label.endswith("…")


def test_a_replay_reads_the_label_of_a_big_item_without_parsing_it(tmp_path: Path) -> None:
    big = {"name": "huge", "blob": "z" * (2 * BIG_LINE)}
    doc = {"name": "big", "nodes": [{"id": "e", "type": "echo", "params": {"message": "${item.name}"},
                                      "batch": {"items": [big, {"name": "small"}]}}]}
    _, _ = record(doc, tmp_path / "t.json")
    index = TraceIndex(tmp_path / "t.json")
    model = RunModel(Graph.from_ir(index.header["flow"], "big"), LazyEvents(index))
    model.apply(index.summaries(0, len(index)))
    state = model.latest["e"]
    assert not model.events.ready(state.items.start_seq[0] - 1)  # a big line
    assert model.item_label(state, 0) == "huge"
    assert model.item_label(state, 1) == "small"


# --- the filter -----------------------------------------------------------------------------------

def matching(model: RunModel, text: str) -> list[tuple[str, str]]:
    flt = EventFilter.parse(text)
    match = flt.matcher(model.labels_at)
    return [(e["kind"], e["path"].partition(".")[2]) for e in model.events if match is None or match(e)]


def test_the_filter_matches_item_labels(run) -> None:
    model = model_of(*run[:2])
    assert EventFilter.parse('label:"delta b" kind:item').labels == ("delta b",)
    assert matching(model, "label:delta kind:item") == [
        ("item.start", "square.iteration_3"), ("item.end", "square.iteration_3")]
    assert matching(model, "label:bad status:error") == []  # (echo never fails here)
    assert {p for _, p in matching(model, "label:bad")} == {"square.iteration_3", "square.iteration_5"}
    # free text: the item.end's JSON has no "delta", its item's label has
    assert matching(model, '"delta bad"') == [("item.start", "square.iteration_3"),
                                             ("item.end", "square.iteration_3")]
    assert matching(model, "label:nothing-like-it") == []
    # without the model's labels, a label term matches nothing and words only the JSON
    json_only = EventFilter.parse('"delta bad"').matcher()
    assert [e["kind"] for e in model.events if json_only(e)] == ["item.start"]


async def test_typing_a_label_filter_in_the_app(run) -> None:
    app = DebuggerApp.from_events(*run[:2])
    async with app.run_test(size=(120, 36)) as pilot:
        await pilot.pause()
        log = app.screen.query_one("EventLogView")
        await pilot.press(*"/label:delta")  # as typed: "/" opens the filter from any pane
        await pilot.pause()
        events = [app.model.events[i] for i in log.list.matches]
        assert [(e["kind"], e["path"]) for e in events] == [
            ("item.start", "labels.square.iteration_3"), ("item.end", "labels.square.iteration_3")]


# --- the panes ------------------------------------------------------------------------------------

async def test_tree_and_timeline_rows_show_the_label_beside_the_index(run) -> None:
    app = DebuggerApp.from_events(*run[:2])
    async with app.run_test(size=(120, 36)) as pilot:
        await pilot.pause()
        app.select(Selection("square", 3))
        await pilot.pause()
        await pilot.pause()
        tree = app.screen.query_one("#tree")
        rows = [tree.get_node_by_id(n.id).label.plain for n in tree._items.values()]
        assert "✓ iteration_3  delta bad" in rows
        timeline = app.screen.query_one("#timeline")
        lines = [timeline.render_line(y).text for y in range(1, 1 + len(NAMES))]
        assert lines[3].startswith("#3 delta bad")
        assert all(line.startswith(f"#{i} {name}")
                   for i, (line, name) in enumerate(zip(lines, NAMES, strict=True)))
        heading = app.screen.query_one("#inspector").head().content.renderables[0]
        assert "square.iteration_3  delta bad  echo" in text_of(heading)  # the Inspector names it too
        app.select(Selection("words", 1))
        await pilot.pause()
        await pilot.pause()
        assert "[bold red]x[/]" in text_of(app.screen.query_one("#inspector").head().content)  # literally
        line = timeline.render_line(2).text
        assert line.startswith("#1 [bold red]x[/] \\… ✓")  # literal, one line, cut to the column
        assert "\x1b" not in "".join(s.text for s in timeline.render_line(2))


async def test_a_path_label_keeps_its_end_in_a_narrow_column(tmp_path: Path) -> None:
    item = {"path": "/srv/data/" + "d" * 40 + "/in/fox.txt"}
    doc = {"name": "paths", "nodes": [{"id": "e", "type": "echo", "params": {"message": "x"},
                                       "batch": {"items": [item]}}]}
    app = DebuggerApp.from_events(*record(doc, tmp_path / "t.json"))
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.pause()
        app.select(Selection("e", 0))
        await pilot.pause()
        line = app.screen.query_one("#timeline").render_line(1).text
        assert line.startswith("#0 …") and "fox.txt ✓" in line


async def test_a_big_batch_keeps_its_index_column_when_the_pane_is_narrow(run) -> None:
    app = DebuggerApp.from_events(*run[:2])
    async with app.run_test(size=(60, 24)) as pilot:
        await pilot.pause()
        app.select(Selection("square", 0))
        await pilot.pause()
        line = app.screen.query_one("#timeline").render_line(1).text
        assert line.startswith("#0 ")


# --- the palette ----------------------------------------------------------------------------------

def test_the_palette_finds_items_by_every_word_of_their_label(run) -> None:
    model = model_of(*run[:2])
    assert [(n, i) for n, i, _, _ in labelled(model, "BAD")] == [("square", 3), ("square", 5)]
    assert [(n, i, s) for n, i, _, s in labelled(model, "bad delta")] == [("square", 3, [(0, 5), (6, 9)])]
    assert list(labelled(model, "  ")) == []


async def test_go_to_an_item_by_its_label_from_the_palette(run) -> None:
    app = DebuggerApp.from_events(*run[:2])
    async with app.run_test(size=(120, 36)) as pilot:
        await pilot.pause()
        await pilot.press("ctrl+p")
        await pilot.pause()
        await pilot.press(*"delta bad")
        await pilot.pause(0.5)
        await pilot.press("enter")
        await pilot.pause()
        assert app.screen.selection == Selection("square", 3)


async def test_a_label_in_the_palette_is_never_markup(run) -> None:
    app = DebuggerApp.from_events(*run[:2])
    async with app.run_test(size=(120, 36)) as pilot:
        await pilot.pause()
        await pilot.press("ctrl+p")
        await pilot.pause()
        await pilot.press(*"bold")
        await pilot.pause(0.5)
        shown = app.screen.query_one("CommandList")
        prompts = [str(o.prompt) for o in shown._options]
        assert any("[bold red]x[/] \\x1b[31mred\\nnext" in p for p in prompts), prompts
        await pilot.press("enter")
        await pilot.pause()
        assert app.screen.selection == Selection("words", 1)


def test_labels_are_plain_json_in_the_trace(run) -> None:
    doc = orjson.loads(run[2].read_bytes())
    starts = [e for e in doc["events"] if e["kind"] == "item.start"]
    assert [e["label"] for e in starts if e["path"].startswith("labels.square")] == NAMES
