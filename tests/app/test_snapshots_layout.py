"""Interaction snapshots of the layout: maximising panes, hiding them, and the DAG at small and
large sizes (recorded runs, fixed clocks; keys pressed as a terminal sends them)."""

from __future__ import annotations

from pathlib import Path

import orjson
from textual.pilot import Pilot

from pflow_tui.app.app import DebuggerApp
from pflow_tui.app.graph import Graph

FIXTURES = Path(__file__).parent / "fixtures"


def recorded(name: str) -> DebuggerApp:
    doc = orjson.loads((FIXTURES / f"{name}.events.json").read_bytes())
    return DebuggerApp.from_events(Graph.from_ir(doc["flow"], doc["flow_name"], doc.get("children")),
                                   doc["events"])


def wide_long() -> DebuggerApp:
    """A 5-way parallel fan-out then a chain of 12 nodes, before it runs."""
    ir = orjson.loads((FIXTURES / "wide_long.json").read_bytes())
    return DebuggerApp.from_events(Graph.from_ir(ir, ir["name"]), [])


async def settle(pilot: Pilot) -> None:
    await pilot.pause()
    await pilot.pause(0.1)


def focusing(name: str):
    """A ``run_before`` that focuses a pane (Events: its list), then settles."""

    async def run_before(pilot: Pilot) -> None:
        await settle(pilot)
        pane = pilot.app.screen.query_one(f"#{name}")
        getattr(pane, "list", pane).focus()
        await pilot.pause()

    return run_before


class TestMaximise:
    """`m` fills the screen with the focused pane, whichever it is."""

    def test_inspector(self, snap_compare) -> None:
        assert snap_compare(recorded("judges"), press=["m"], terminal_size=(100, 30),
                            run_before=focusing("inspector"))

    def test_events(self, snap_compare) -> None:
        assert snap_compare(recorded("judges"), press=["m"], terminal_size=(100, 30),
                            run_before=focusing("log"))

    def test_dag_at_80x24(self, snap_compare) -> None:
        assert snap_compare(wide_long(), press=["m"], terminal_size=(80, 24), run_before=settle)

    def test_restored(self, snap_compare) -> None:
        assert snap_compare(recorded("judges"), press=["m", "escape"], terminal_size=(100, 30),
                            run_before=focusing("inspector"))


class TestHiddenPanes:
    """Hidden panes give their room to the rest."""

    def test_right_column_and_events_hidden(self, snap_compare) -> None:
        assert snap_compare(recorded("fanout_merge"), press=["3", "4", "5"], terminal_size=(120, 40),
                            run_before=settle)

    def test_events_alone(self, snap_compare) -> None:
        assert snap_compare(recorded("fanout_merge"), press=["1", "2", "3", "4"], terminal_size=(80, 24),
                            run_before=settle)

    def test_narrower_left_column(self, snap_compare) -> None:
        assert snap_compare(recorded("fanout_merge"), press=["left_square_bracket"] * 2,
                            terminal_size=(120, 40), run_before=settle)


class TestDagSizes:
    """The DAG at the size that shows the most of it: one-line boxes when space is short,
    compact or full ones when there is room; parallel groups labelled."""

    def test_fan_out_at_80x24(self, snap_compare) -> None:
        assert snap_compare(recorded("fanout_merge"), terminal_size=(80, 24), run_before=settle)

    def test_fan_out_at_120x40(self, snap_compare) -> None:
        assert snap_compare(recorded("fanout_merge"), terminal_size=(120, 40), run_before=settle)

    def test_fan_out_at_200x60(self, snap_compare) -> None:
        assert snap_compare(recorded("fanout_merge"), terminal_size=(200, 60), run_before=settle)

    def test_wide_and_long_at_120x40(self, snap_compare) -> None:
        assert snap_compare(wide_long(), terminal_size=(120, 40), run_before=settle)

    def test_judges_at_200x60(self, snap_compare) -> None:
        assert snap_compare(recorded("judges"), terminal_size=(200, 60), run_before=settle)
