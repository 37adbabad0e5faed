"""Interaction snapshots: stepping through a saved run's batch item by item, and forking one.

A recorded run of ``parallel_batch_failures`` is written as a trace at a relative path (what
the header shows is fixed), opened as a replay, and driven by the keys a terminal sends
(``g``, ``}``, ``.``, ``,``, ``f``, ``n``, ``e``)."""

from __future__ import annotations

from pathlib import Path

import orjson
import pytest
from test_snapshots import FIXTURES
from test_snapshots_labels import settle
from textual.pilot import Pilot

from pflow_tui.app.app import DebuggerApp
from pflow_tui.engine.trace import trust
from pflow_tui.engine.trace.reader import TraceIndex

TRACE = Path(".pflow-tui") / "traces" / "pbf.json"


@pytest.fixture(autouse=True)
def _trace(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The recorded run as a trace file, one event per line, as the writer lays it out, signed
    by the suite's key (a run of this user's)."""
    monkeypatch.chdir(tmp_path)
    doc = orjson.loads((FIXTURES / "parallel_batch_failures.events.json").read_bytes())
    header = {"format": "pflow-tui-trace", "version": 1, "created": "2026-03-01T09:00:00+00:00",
              "flow_name": doc["flow_name"], "flow": doc["flow"], "children": doc.get("children") or {},
              "inputs": {}}
    events = doc["events"]
    lines = [orjson.dumps(header)[:-1] + b',"events":[']
    lines += [orjson.dumps(e) + (b"," if i < len(events) - 1 else b"") for i, e in enumerate(events)]
    footer = {"status": events[-1].get("status", "ok"), "finished": "2026-03-01T09:00:02+00:00",
              "outputs": {}, "store": {}, "error": None}
    TRACE.parent.mkdir(parents=True)
    data = b"\n".join(lines) + b"\n]," + orjson.dumps(footer)[1:] + b"\n"
    TRACE.write_bytes(trust.sign(data, trust.load_key()))  # the user's own run: e asks nothing


def replay() -> DebuggerApp:
    return DebuggerApp.replay(TraceIndex(TRACE))


def pressing(*keys: str):
    async def run_before(pilot: Pilot) -> None:
        await settle(pilot)
        for key in keys:
            await pilot.press(key)
            await pilot.pause()
        await settle(pilot)

    return run_before


class TestStepping:
    def test_from_the_start_three_items_on(self, snap_compare):
        """``g`` to the start, then ``}`` three times: the batch's first three item events."""
        assert snap_compare(replay(), terminal_size=(120, 40), run_before=pressing("g", *"}}}"))

    def test_one_event_on_and_one_back(self, snap_compare):
        assert snap_compare(replay(), terminal_size=(120, 40),
                            run_before=pressing("g", *"}}}", ".", ".", ","))

    def test_to_the_second_failure_at_80x24(self, snap_compare):
        assert snap_compare(replay(), terminal_size=(80, 24), run_before=pressing("g", *"ff"))


class TestFork:
    def test_e_on_a_failed_item_opens_its_params(self, snap_compare):
        assert snap_compare(replay(), terminal_size=(120, 40), run_before=pressing("n", "e"))
