"""Snapshots of a saved run on a two-worker Dask cluster (synthetic_cluster: fixed times and
addresses): the header naming the cluster and its workers, the timeline grouped by worker
(``w``) with the item retried on another worker selected, at 120x40 and 80x24."""

from __future__ import annotations

from pathlib import Path

import pytest
from synthetic_cluster import write_cluster_trace
from test_snapshots_labels import settle
from textual.pilot import Pilot

from pflow_tui.app.app import DebuggerApp
from pflow_tui.app.messages import Selection
from pflow_tui.engine.trace import trust
from pflow_tui.engine.trace.reader import TraceIndex

TRACE = Path(".pflow-tui") / "traces" / "cl.json"


@pytest.fixture(autouse=True)
def _trace(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The saved run at a relative path (what the header shows is fixed), signed by the
    suite's key (a run of this user's)."""
    monkeypatch.chdir(tmp_path)
    write_cluster_trace(TRACE)
    TRACE.write_bytes(trust.sign(TRACE.read_bytes(), trust.load_key()))


def replay() -> DebuggerApp:
    return DebuggerApp.replay(TraceIndex(TRACE))


def grouped(index: int):
    """Item ``index`` selected, the timeline focused, ``w`` typed."""
    async def run_before(pilot: Pilot) -> None:
        await settle(pilot)
        pilot.app.select(Selection("sq", index))
        await settle(pilot)
        pilot.app.screen.panes["timeline"].focus()
        await pilot.pause()
        await pilot.press("w")
        await settle(pilot)

    return run_before


class TestClusterRun:
    def test_the_timeline_grouped_by_worker(self, snap_compare):
        """Item 3's first attempt died with its worker (A); its retry ran on B: it is in B's
        group, the inspector lists both attempts."""
        assert snap_compare(replay(), terminal_size=(120, 40), run_before=grouped(3))

    def test_grouped_at_80x24(self, snap_compare):
        assert snap_compare(replay(), terminal_size=(80, 24), run_before=grouped(3))

    def test_the_header_and_the_timeline_ungrouped(self, snap_compare):
        async def run_before(pilot: Pilot) -> None:
            await settle(pilot)
            pilot.app.select(Selection("sq", 3))
            await settle(pilot)

        assert snap_compare(replay(), terminal_size=(120, 40), run_before=run_before)
