"""Items by value, as a user sees them: labels in the tree and the timeline, the filter, the palette."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from recording import deterministic
from textual.pilot import Pilot
from textual.widgets import Input

from pflow_tui.app.app import DebuggerApp
from pflow_tui.app.graph import Graph
from pflow_tui.app.messages import Selection
from pflow_tui.engine.ir.load import build_flow
from pflow_tui.engine.run.executor import run_flow

TASKS = [{"name": "alpha ok", "n": 1}, {"name": "bravo ok", "n": 2}, {"name": "charlie ok", "n": 3},
         {"name": "delta bad", "n": 4}, {"name": "echo ok", "n": 5}, {"name": "foxtrot bad", "n": 6},
         {"n": 7}, {"name": "a task name far too long for any column", "n": 8}]
FLOW = {
    "name": "labels",
    "nodes": [
        {"id": "tasks", "type": "echo", "params": {"message": "eight tasks"}},
        # sequential: the same events in the same order on every run
        {"id": "run", "type": "shell", "params": {"command": "case '${task.name}' in *bad) exit 3;; esac"},
         "batch": {"items": TASKS, "as": "task", "label": "${task.name}", "error_handling": "continue"}},
        {"id": "words", "type": "echo", "params": {"message": "${item}"},
         "batch": {"items": ["plain", "[bold]not markup[/]", "tab\there", 42, {"path": "/srv/in/fox.txt"}],
                   "error_handling": "continue"}},
    ],
    "edges": [{"from": "tasks", "to": "run"}, {"from": "run", "to": "words"}],
}


@pytest.fixture(scope="module")
def recorded(tmp_path_factory: pytest.TempPathFactory) -> tuple[Graph, list[dict[str, Any]]]:
    spec = build_flow(FLOW)
    events: list[dict[str, Any]] = []
    run_flow(spec, {}, trace=Path(tmp_path_factory.mktemp("labels")) / "t.json", sinks=[events.append])
    for e in events:  # what differs between machines: the shell's own words
        if isinstance(e.get("outputs"), dict):
            e["outputs"].pop("stderr", None)
    return Graph.from_ir(spec.ir, spec.name), deterministic(events)


async def settle(pilot: Pilot) -> None:
    """Wait for the app to be idle, with every text box's cursor shown steadily (no blink)."""
    await pilot.pause()
    for box in pilot.app.screen.query(Input):
        box.cursor_blink = False
    await pilot.pause(0.1)


def select(selection: Selection):
    async def run_before(pilot: Pilot) -> None:
        await settle(pilot)
        pilot.app.select(selection)
        await settle(pilot)

    return run_before


class TestItemLabels:
    """Labels beside indexes, and finding an item by its label."""

    def test_tree_and_timeline(self, snap_compare, recorded) -> None:
        app = DebuggerApp.from_events(*recorded)
        assert snap_compare(app, terminal_size=(120, 36), run_before=select(Selection("run", 3)))

    def test_derived_labels_at_80x24(self, snap_compare, recorded) -> None:
        app = DebuggerApp.from_events(*recorded)
        assert snap_compare(app, terminal_size=(80, 24), run_before=select(Selection("words", 1)))

    def test_filter_by_label(self, snap_compare, recorded) -> None:
        async def run_before(pilot: Pilot) -> None:
            await settle(pilot)
            pilot.app.screen.query_one("#event-filter").focus()
            await pilot.press(*"label:bad")
            await settle(pilot)

        app = DebuggerApp.from_events(*recorded)
        assert snap_compare(app, terminal_size=(120, 36), run_before=run_before)

    def test_palette_finds_an_item_by_its_label(self, snap_compare, recorded) -> None:
        async def run_before(pilot: Pilot) -> None:
            await settle(pilot)
            await pilot.press("ctrl+p")
            await settle(pilot)
            await pilot.press(*"delta")
            await pilot.pause(0.5)
            await settle(pilot)

        app = DebuggerApp.from_events(*recorded)
        assert snap_compare(app, terminal_size=(120, 36), run_before=run_before)

    def test_palette_goes_to_the_item(self, snap_compare, recorded) -> None:
        async def run_before(pilot: Pilot) -> None:
            await settle(pilot)
            await pilot.press("ctrl+p")
            await settle(pilot)
            await pilot.press(*"foxtrot")
            await pilot.pause(0.5)
            await pilot.press("enter")
            await settle(pilot)
            assert pilot.app.screen.selection == Selection("run", 5)

        app = DebuggerApp.from_events(*recorded)
        assert snap_compare(app, terminal_size=(120, 36), run_before=run_before)
