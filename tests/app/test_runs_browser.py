"""The run browser driven by keys as a terminal sends them: enter, escape, space, d, R."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest
from recording import wait_for
from synthetic_runs import write_runs

from pflow_tui.app.app import DebuggerApp
from pflow_tui.app.messages import Selection
from pflow_tui.app.screens.diff import DiffScreen
from pflow_tui.app.screens.run import RunScreen
from pflow_tui.app.screens.runs import RunsScreen
from pflow_tui.engine.ir.load import build_flow
from pflow_tui.engine.run.executor import run_flow

TRACES = Path(".pflow-tui") / "traces"
pytestmark = pytest.mark.anyio


@pytest.fixture
def folder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, Path]:
    monkeypatch.chdir(tmp_path)  # a re-run's trace goes to ./.pflow-tui/traces: here
    return write_runs(TRACES)


def rows(screen: RunsScreen) -> list[str]:
    return [r.path.name for r in screen.records]


async def test_enter_opens_the_replay_and_escape_comes_back(folder) -> None:
    app = DebuggerApp.browser(TRACES)
    async with app.run_test(size=(120, 36)) as pilot:
        await pilot.pause()
        browser = app.screen
        assert isinstance(browser, RunsScreen)
        assert rows(browser) == ["demo-4.json", "demo-2.json", "demo-1.json", "other-3.json", "notes.json"]
        await pilot.press("down", "down")  # demo-1: a failed item
        await pilot.press("enter")
        await wait_for(pilot, lambda: isinstance(app.screen, RunScreen) and app.screen.model.status == "ok")
        replay = app.screen
        assert replay.replay and Path(replay.source.trace_path).name == "demo-1.json"
        await wait_for(pilot, lambda: replay.selection == Selection("sq", 2))  # the failure first
        await pilot.press("escape")  # from the item to its node
        assert app.screen is replay and replay.selection.index is None
        await pilot.press("escape")  # back to the list, the cursor where it was
        await pilot.pause()
        assert app.screen is browser and browser.current.path.name == "demo-1.json"
        await pilot.press("down", "down", "enter")  # notes.json: not a trace, says so, stays
        await pilot.pause()
        assert app.screen is browser


async def test_space_marks_two_runs_and_d_diffs_them(folder) -> None:
    app = DebuggerApp.browser(TRACES)
    async with app.run_test(size=(120, 36)) as pilot:
        await pilot.pause()
        browser = app.screen
        await pilot.press("d")  # nothing marked: says how
        assert app.screen is browser
        await pilot.press("down", "space", "space")  # demo-2 (re-run), then demo-1
        assert [p.name for p in browser.marked] == ["demo-2.json", "demo-1.json"]
        await pilot.press("d")
        await pilot.pause()
        diff = app.screen
        assert isinstance(diff, DiffScreen)
        assert (Path(diff.diff.a.file).name, Path(diff.diff.b.file).name) == ("demo-1.json", "demo-2.json")
        assert diff.diff.counts["restored"] == 4 and not diff.diff.differs
        await pilot.press("a")  # every path: the restored ones say so
        table = diff.query_one("DataTable")
        changes = {str(table.get_row_at(i)[0]): str(table.get_row_at(i)[1]) for i in range(table.row_count)}
        assert changes["sq.iteration_0"] == "restored" and changes["sq.iteration_2"] == "same"
        await pilot.press("escape")
        await pilot.pause()
        assert app.screen is browser


async def test_r_reruns_from_failure_and_the_list_shows_the_new_run(tmp_path: Path,
                                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    flag = tmp_path / "fixed"
    flow = build_flow({"name": "rb", "nodes": [{"id": "work", "type": "shell", "batch": {
        "items": [0, 1, 2, 3], "error_handling": "continue"},
        "params": {"command": f"test ${{item}} -ne 2 -o -e {flag} && echo ${{item}}"}}]})
    first = tmp_path / TRACES / "rb-1.json"
    worker = threading.Thread(target=run_flow, args=(flow, {}), kwargs={"trace": first})
    worker.start()
    worker.join()
    flag.write_text("fixed")
    app = DebuggerApp.browser(TRACES)
    async with app.run_test(size=(120, 36)) as pilot:
        await pilot.pause()
        browser = app.screen
        await pilot.press("R")
        await wait_for(pilot, lambda: isinstance(app.screen, RunScreen) and app.screen.live
                       and app.screen.model.status == "ok" and not app.runs[-1].running)
        model = app.screen.model
        ends = [model.event(s) for s in model.latest["work"].items.end_seq]
        assert [e.get("cached", False) for e in ends] == [True, True, False, True]
        assert app.runs[-1].trace_path.parent.resolve() == (tmp_path / TRACES).resolve()
        await pilot.press("escape")
        await pilot.pause()
        assert app.screen is browser
        assert len(browser.records) == 2 and browser.records[0].rerun_of == str(first)
        assert browser.records[0].restored == 3 and browser.records[0].failed == 0


async def test_r_on_a_run_without_failures_says_so(folder) -> None:
    app = DebuggerApp.browser(TRACES)
    async with app.run_test(size=(120, 36), notifications=True) as pilot:
        await pilot.pause()
        await pilot.press("down", "down", "down", "R")  # other-3: ok, nothing failed
        await pilot.pause()
        assert isinstance(app.screen, RunsScreen)
        assert any("Nothing failed" in n.message for n in app._notifications)


async def test_an_iteration_beyond_a_live_batch_is_said_once_its_size_is_known(tmp_path: Path) -> None:
    flow = build_flow({"name": "at", "nodes": [{"id": "work", "type": "echo", "batch": {"items": [1, 2, 3]},
                                                "params": {"message": "${item}"}}]})
    app = DebuggerApp.live(flow, {}, tmp_path / "t.json", Selection("work", 99))
    async with app.run_test(size=(120, 36), notifications=True) as pilot:
        await wait_for(pilot, lambda: any("no iteration_99" in n.message for n in app._notifications))
        note = next(n for n in app._notifications if "no iteration_99" in n.message)
        assert note.message == "work has 3 items: there is no iteration_99"
        assert app.screen.selection == Selection("work")


async def test_at_scrolls_the_timeline_to_its_item(tmp_path: Path) -> None:
    from pflow_tui.engine.trace.reader import TraceIndex

    flow = build_flow({"name": "sc", "nodes": [{"id": "work", "type": "echo",
                                                "batch": {"items": list(range(80))},
                                                "params": {"message": "${item}"}}]})
    path = tmp_path / "t.json"
    worker = threading.Thread(target=run_flow, args=(flow, {}), kwargs={"trace": path})
    worker.start()
    worker.join()
    app = DebuggerApp.replay(TraceIndex(path), Selection("work", 70))
    async with app.run_test(size=(120, 36)) as pilot:
        await wait_for(pilot, lambda: app.screen.selection == Selection("work", 70))
        await pilot.pause(0.2)
        timeline = app.screen.query_one("#timeline")
        top = round(timeline.scroll_offset.y)
        assert top <= 70 < top + timeline.size.height - 1, (top, timeline.size)
