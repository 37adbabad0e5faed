"""Stepping and breakpoints in the app: which items ran at each step (the run is a worker process)."""

from __future__ import annotations

import pytest
from recording import wait_for

from pflow_tui.app.app import DebuggerApp
from pflow_tui.app.messages import Selection
from pflow_tui.engine.ir.load import build_flow
from pflow_tui.engine.run.gate import NodeBreak

pytestmark = pytest.mark.anyio

FLOW = {
    "name": "st",
    "nodes": [
        {"id": "make", "type": "echo", "params": {"message": "x", "data": [0, 1, 2, 3, 4, 5]}},
        {"id": "work", "type": "llm", "params": {"prompt": "p ${item}", "model": "offline", "latency": 0.05},
         "batch": {"items": "${make.data}", "parallel": True, "max_concurrent": 3}},
        {"id": "done", "type": "echo", "params": {"message": "done"}},
    ],
    "edges": [{"from": "make", "to": "work"}, {"from": "work", "to": "done"}],
}


def started(model) -> list[str]:
    return [s.path for s in model.visits.values()]


def items_started(model) -> int:
    state = model.latest.get("work")
    if state is None or state.items is None:
        return 0
    return sum(1 for t in state.items.t_start if t == t)


async def test_step_through_nodes_and_items(tmp_path):
    app = DebuggerApp.live(build_flow(FLOW), {}, tmp_path / "t.json", paused=True)
    async with app.run_test(size=(120, 36)) as pilot:
        model = app.screen.model
        await wait_for(pilot, lambda: model.status == "running")
        await pilot.pause(0.3)
        assert started(model) == []  # paused: nothing started
        await pilot.press(".")
        await wait_for(pilot, lambda: started(model) == ["st.make"])
        await pilot.press(".")  # the batch node starts, its items wait
        await wait_for(pilot, lambda: "st.work" in started(model))
        for n in (1, 2, 3):  # one item per step, though three may run at once
            await pilot.press(".")
            await wait_for(pilot, lambda n=n: items_started(model) == n)
            await pilot.pause(0.2)
            assert items_started(model) == n
        await pilot.press(">")  # the rest of the batch, then stop before "done"
        await wait_for(pilot, lambda: model.latest["work"].items.done == 6)
        await pilot.pause(0.3)
        assert "st.done" not in started(model)
        await pilot.press("p")  # continue
        await wait_for(pilot, lambda: model.status == "ok")


async def test_a_breakpoint_set_in_the_dag_pauses_before_the_node(tmp_path):
    app = DebuggerApp.live(build_flow(FLOW), {}, tmp_path / "t.json", breakpoints=[NodeBreak("done")])
    async with app.run_test(size=(120, 36)) as pilot:
        model = app.screen.model
        await wait_for(pilot, lambda: model.paused is not None)
        assert model.latest["work"].items.done == 6 and "st.done" not in started(model)
        assert "●" in "".join(app.screen.query_one("#dag").render_line(y).text
                              for y in range(app.screen.query_one("#dag").graph_layout.height))
        app.select(Selection("done"))
        await pilot.press("b")  # clear it, then continue
        assert "done" not in app.screen.breaks
        await pilot.press("p")
        await wait_for(pilot, lambda: model.status == "ok")


async def test_rerun_from_failure_restores_what_ended_ok(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # the re-run's trace goes to .pflow-tui/traces here, not the checkout
    flag = tmp_path / "fixed"
    flow = {"name": "rr", "nodes": [
        {"id": "work", "type": "shell", "batch": {"items": [0, 1, 2, 3], "parallel": True,
                                                  "error_handling": "continue"},
         "params": {"command": f"test ${{item}} -ne 2 -o -e {flag} && echo ${{item}}"}},
    ]}
    app = DebuggerApp.live(build_flow(flow), {}, tmp_path / "first.json")
    async with app.run_test(size=(120, 36)) as pilot:
        await wait_for(pilot, lambda: app.screen.model.status == "ok" and not app.runs[-1].running)
        assert app.screen.model.latest["work"].items.failed == 1
        flag.write_text("now it works")
        await pilot.press("R")
        await wait_for(pilot, lambda: app.screen.model.status == "ok" and len(app.runs) == 2
                       and not app.runs[-1].running)
        model = app.screen.model
        assert model.latest["work"].items.done == 4
        ends = [model.event(s) for s in model.latest["work"].items.end_seq]
        assert [e.get("cached", False) for e in ends] == [True, True, False, True]
        from pflow_tui.engine.trace.writer import read_trace

        trace = read_trace(app.runs[-1].trace_path)
        assert trace.header["rerun_of"] == str(tmp_path / "first.json")
        assert app.runs[-1].trace_path.is_relative_to(tmp_path)


async def test_fork_an_item_with_edited_params(tmp_path):
    flow = {"name": "fk", "nodes": [
        {"id": "work", "type": "shell", "batch": {"items": [1, 2, 3], "error_handling": "continue"},
         "params": {"command": "test ${item} -ne 2 && echo item ${item}"}},
    ]}
    app = DebuggerApp.live(build_flow(flow), {}, tmp_path / "t.json")
    async with app.run_test(size=(140, 40)) as pilot:
        await wait_for(pilot, lambda: app.screen.model.status == "ok" and not app.runs[-1].running)
        await pilot.pause(0.2)
        app.select(Selection("work", 1))  # the failed one
        await pilot.pause()
        await pilot.press("e")
        await pilot.pause(0.2)
        fork = app.screen
        assert type(fork).__name__ == "ForkScreen"
        editor = fork.query_one("TextArea")
        assert '"command": "test 2 -ne 2 && echo item 2"' in editor.text
        editor.text = editor.text.replace("test 2 -ne 2 && ", "")
        await pilot.press("ctrl+r")
        await wait_for(pilot, lambda: fork.result is not None)
        assert fork.result["status"] == "ok"
        assert fork.result["outputs"]["stdout"] == "item 2"
        assert fork.original["status"] == "error"
        assert len(app.runs) == 1  # the flow did not run again


async def test_a_conditional_item_breakpoint_from_the_palette_pauses_on_that_item(tmp_path):
    app = DebuggerApp.live(build_flow(FLOW), {}, tmp_path / "t.json", paused=True)
    async with app.run_test(size=(120, 36)) as pilot:
        model = app.screen.model
        await wait_for(pilot, lambda: model.status == "running")
        app.select(Selection("work"))
        app.screen.add_item_break("index 4")
        await pilot.press("p")  # continue: it runs until item 4 is about to start
        await wait_for(pilot, lambda: model.paused is not None and model.paused.get("reason") == "breakpoint")
        await pilot.pause(0.3)
        started_items = {i for i, t in enumerate(model.latest["work"].items.t_start) if t == t}
        assert 4 not in started_items
        await pilot.press("p")
        await wait_for(pilot, lambda: model.status == "ok")


async def test_a_killed_run_is_reported_and_its_trace_kept(tmp_path):
    import signal

    from pflow_tui.engine.trace.writer import read_trace

    app = DebuggerApp.live(build_flow(FLOW), {}, tmp_path / "t.json", paused=True)
    async with app.run_test(size=(120, 36), notifications=True) as pilot:
        model = app.screen.model
        await wait_for(pilot, lambda: model.status == "running")
        await pilot.pause(0.4)  # the run.start event has reached the trace file
        app.runs[-1]._proc.send_signal(signal.SIGKILL)
        await wait_for(pilot, lambda: app.screen._finished)
        # (a toast is a message the app handles after the tick that posts it)
        await wait_for(pilot, lambda: any("ended without finishing" in n.title for n in app._notifications))
        assert model.status == "running"  # the run never ended: it was killed
    trace = read_trace(tmp_path / "t.json")
    assert trace.truncated and trace.events[0]["kind"] == "run.start"
