"""What the main screen shows, on recorded runs of the sample flows (fixed sizes, fixed clocks)."""

from __future__ import annotations

from pathlib import Path

import orjson
import pytest
from textual.pilot import Pilot

from pflow_tui.app.app import DebuggerApp
from pflow_tui.app.graph import Graph
from pflow_tui.app.messages import Selection

FIXTURES = Path(__file__).parent / "fixtures"


def app_for(name: str, upto: float = 1.0, theme: str | None = None) -> DebuggerApp:
    doc = orjson.loads((FIXTURES / f"{name}.events.json").read_bytes())
    events = doc["events"][: int(len(doc["events"]) * upto)]
    app = DebuggerApp.from_events(Graph.from_ir(doc["flow"], doc["flow_name"], doc.get("children")), events)
    if theme:
        app.theme = theme
    return app


async def settle(pilot: Pilot) -> None:
    await pilot.pause()
    await pilot.pause(0.1)


@pytest.mark.parametrize("name", ["parallel_batch_failures", "llm_classify", "nested_index"])
def test_finished_run(snap_compare, name):
    assert snap_compare(app_for(name), terminal_size=(120, 36), run_before=settle)


def test_smallest_layout(snap_compare):
    assert snap_compare(app_for("parallel_batch_failures"), terminal_size=(100, 30), run_before=settle)


def test_run_in_progress(snap_compare):
    assert snap_compare(app_for("llm_classify", upto=0.5), terminal_size=(120, 36), run_before=settle)


def test_light_theme(snap_compare):
    assert snap_compare(app_for("sequential_batch", theme="textual-light"), terminal_size=(120, 36),
                        run_before=settle)


def test_python_program(snap_compare):
    async def open_the_map(pilot: Pilot) -> None:
        await settle(pilot)
        pilot.app.select(Selection("map_documents"))
        await settle(pilot)

    assert snap_compare(app_for("map_reduce"), terminal_size=(120, 36), run_before=open_the_map)
