"""Crafted traces (tests/bad_traces/) in the app: it opens, says how many malformed events
it skipped, takes keys, allocates by the events present; a bad header never opens it.
And an exception inside the app: a short message, a log file, exit code 70."""

from __future__ import annotations

import json
import tracemalloc
from pathlib import Path
from typing import Any

import pytest
from textual.widget import Widget

from pflow_tui.app.app import DebuggerApp
from pflow_tui.app.graph import Graph
from pflow_tui.app.model import ITEM_FLOOR, RunModel
from pflow_tui.cli import main
from pflow_tui.crash import EXIT_INTERNAL
from pflow_tui.engine.trace.check import malformed_note
from pflow_tui.engine.trace.reader import TraceIndex
from pflow_tui.engine.trace.replay import LazyEvents

CORPUS = Path(__file__).resolve().parents[1] / "bad_traces"
CASES: dict[str, dict[str, Any]] = json.loads((CORPUS / "cases.json").read_text())
READ = sorted(n for n, c in CASES.items() if not c.get("refused"))
REFUSED = sorted(n for n, c in CASES.items() if c.get("refused"))
KEYS = ["G", "g", "full_stop", "full_stop", "greater_than_sign", "f", "G", "tab", "down", "enter",
        "tab", "down", "enter", "comma", "end"]


async def _settle(pilot) -> None:
    for _ in range(4):
        await pilot.pause()


@pytest.mark.anyio
@pytest.mark.parametrize("name", READ)
async def test_a_crafted_trace_replays_and_says_what_it_skipped(name: str) -> None:
    expected = CASES[name]["skipped"]
    index = TraceIndex(CORPUS / f"{name}.json")
    app = DebuggerApp.replay(index)
    async with app.run_test(size=(120, 36), notifications=True) as pilot:
        await _settle(pilot)
        assert len(app.screen.model.events) == len(index)  # all of it fed, holes included
        for key in KEYS:
            await pilot.press(key)
        await _settle(pilot)
        notes = [n.message for n in app._notifications]
    assert app.return_code in (None, 0)
    skipped = [n for n in notes if "malformed" in n]
    if expected:
        assert index.skipped == expected
        assert any(malformed_note(expected) in n for n in skipped), notes
    elif expected == 0:
        assert not skipped


@pytest.mark.parametrize("name", ["batch_count_is_10e8", "batch_count_is_10e11",
                                  "batch_count_is_null_and_index_is_10e9", "branch_index_is_10e9",
                                  "many_batches_each_count_10e8"])
def test_tables_are_sized_by_the_events_present(name: str) -> None:
    """The app's model of a 2.7 KB trace whose batch says 10^8 (or 10^11) items, or whose
    item or branch index is 10^9: its tables hold at most ITEM_FLOOR more items in all than
    the trace has events."""
    index = TraceIndex(CORPUS / f"{name}.json")
    model = RunModel(Graph.from_ir(index.header["flow"], "corpus"), LazyEvents(index))
    tracemalloc.start()
    try:
        model.apply(index.summaries(0, len(index)))
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 16 << 20
    tables = [t for s in model.visits.values() for t in (s.items, s.branches) if t is not None]
    assert tables and sum(t.count for t in tables) <= len(index) + ITEM_FLOOR == model.item_cap
    if name != "many_batches_each_count_10e8":
        sq = model.latest["sq"].items
        assert sq is not None and sq.done == (3 if name != "batch_count_is_null_and_index_is_10e9" else 2)


@pytest.mark.parametrize("name", REFUSED)
def test_replay_refuses_a_bad_header_with_exit_2(name: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["replay", str(CORPUS / f"{name}.json")]) == 2
    err = " ".join(capsys.readouterr().err.split())
    assert err.startswith("error:") and "Traceback" not in err


class Broken(Widget):
    def render(self) -> str:
        raise RuntimeError("boom in a widget: secret-param-value")


@pytest.mark.anyio
async def test_an_exception_in_the_app_exits_70_with_a_short_message_and_a_log(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "state"))
    app = DebuggerApp.replay(TraceIndex(CORPUS / "event_is_a_number.json"))
    with pytest.raises(RuntimeError, match="boom"):  # Pilot re-raises it for the test
        async with app.run_test(size=(100, 30)) as pilot:
            await _settle(pilot)
            await app.screen.mount(Broken())
            await _settle(pilot)
    assert app.return_code == EXIT_INTERNAL
    shown = " ".join(capsys.readouterr().err.split())  # printed as the app closed
    logs = list((tmp_path / "state" / "pflow-tui" / "logs").glob("crash-*.log"))
    assert len(logs) == 1 and "RuntimeError: boom in a widget" in logs[0].read_text()
    assert logs[0].stat().st_mode & 0o777 == 0o600
    assert shown.startswith("error: internal error (RuntimeError: boom in a widget")
    assert "the details are in" in shown and logs[0].name in shown
    assert "Traceback" not in shown and "locals" not in shown.lower() and "self" not in shown


@pytest.mark.anyio
@pytest.mark.parametrize("name", ["node_end_outputs_is_a_list", "node_end_error_is_a_string",
                                  "every_event_is_a_scalar", "event_is_nested_100k_deep", "crlf_line_ends"])
async def test_the_diff_view_of_a_crafted_trace(name: str) -> None:
    from pflow_tui.engine.trace.diff import diff_traces

    diff = diff_traces(CORPUS / "seq_twice_the_same.json", CORPUS / f"{name}.json")
    app = DebuggerApp.diff_view(diff)
    async with app.run_test(size=(120, 36)) as pilot:
        await _settle(pilot)
        for key in ("down", "down", "a", "down", "up", "enter", "down"):
            await pilot.press(key)
        await _settle(pilot)
    assert app.return_code in (None, 0)
