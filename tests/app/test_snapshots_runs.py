"""Interaction snapshots: the run browser and the diff view it opens (fixed runs, UTC clock)."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from synthetic_runs import write_runs
from textual.pilot import Pilot

from pflow_tui.app.app import DebuggerApp

TRACES = Path(".pflow-tui") / "traces"


@pytest.fixture(autouse=True)
def _fixed_runs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    """The synthetic runs in ./.pflow-tui/traces (relative paths on screen), times in UTC."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("TZ", "UTC")
    time.tzset()
    write_runs(TRACES)
    yield
    monkeypatch.undo()
    time.tzset()


async def settle(pilot: Pilot) -> None:
    await pilot.pause()
    await pilot.pause(0.1)


def pressing(*keys: str):
    async def run_before(pilot: Pilot) -> None:
        await settle(pilot)
        await pilot.press(*keys)
        await settle(pilot)

    return run_before


class TestRunBrowser:
    def test_the_list_at_80x24(self, snap_compare):
        assert snap_compare(DebuggerApp.browser(TRACES), terminal_size=(80, 24), run_before=settle)

    def test_the_list_at_120x40(self, snap_compare):
        assert snap_compare(DebuggerApp.browser(TRACES), terminal_size=(120, 40), run_before=settle)

    def test_a_rerun_under_the_cursor_and_two_marked(self, snap_compare):
        assert snap_compare(DebuggerApp.browser(TRACES), terminal_size=(100, 24),
                            run_before=pressing("down", "space", "space", "up", "up"))

    def test_an_unreadable_file_says_why(self, snap_compare):
        assert snap_compare(DebuggerApp.browser(TRACES), terminal_size=(100, 24),
                            run_before=pressing("down", "down", "down", "down"))


class TestDiffView:
    def test_a_rerun_against_its_original(self, snap_compare):
        assert snap_compare(DebuggerApp.browser(TRACES), terminal_size=(120, 30),
                            run_before=pressing("down", "space", "space", "d"))

    def test_every_path_restored_ones_say_so(self, snap_compare):
        assert snap_compare(DebuggerApp.browser(TRACES), terminal_size=(120, 30),
                            run_before=pressing("down", "space", "space", "d", "a"))
