"""A Python PocketFlow program in the debugger: the DAG from its objects, live panes,
stepping (sync and async programs run in the worker process)."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest
from recording import wait_for

from pflow_tui.app.app import DebuggerApp
from pflow_tui.engine.python.pyprogram import load_program
from pflow_tui.engine.run.gate import NodeBreak
from pflow_tui.engine.trace.writer import read_trace

pytestmark = pytest.mark.anyio

SAMPLE = Path(__file__).parents[2] / "sample_flows" / "map_reduce.py"

SYNC = """
from pocketflow import BatchNode, Flow, Node

class Make(Node):
    def post(self, shared, prep_res, exec_res):
        shared["xs"] = [1, 2, 3, 4]

class Double(BatchNode):
    def prep(self, shared):
        return shared["xs"]
    def exec(self, x):
        return 2 * x
    def post(self, shared, prep_res, exec_res):
        shared["doubled"] = exec_res

class Done(Node):
    def post(self, shared, prep_res, exec_res):
        shared["done"] = True

def flow():
    m, d = Make(), Double()
    m >> d >> Done()
    return Flow(start=m)
"""


def started(model) -> list[str]:
    return [s.path for s in model.visits.values()]


async def test_the_sample_program_fills_every_pane(tmp_path):
    program = load_program(f"{SAMPLE}:flow")
    app = DebuggerApp.live(program, {}, tmp_path / "t.json")
    assert set(app.graph.nodes) == {"load_corpus", "map_documents", "per_topic", "reduce_report"}
    assert set(app.graph.children["per_topic"].nodes) == {"collect_topic", "score_topic", "mark_hot",
                                                          "mark_cold"}
    async with app.run_test(size=(140, 40)) as pilot:
        model = app.screen.model
        await wait_for(pilot, lambda: model.status not in ("pending", "running"))
        assert model.status == "ok"
        items = model.latest["map_documents"].items
        assert (items.count, items.done, items.failed) == (24, 24, 0)
        assert max(items.attempts) == 2  # the flaky first attempts
        topics = model.latest["per_topic"].items
        assert (topics.count, topics.done) == (4, 4)
        scored = model.summary(("per_topic",), "score_topic")
        assert scored is not None and scored.items.count == 4
    assert read_trace(tmp_path / "t.json").store["report"].startswith("24 documents")


async def test_step_through_a_sync_program(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "prog.py").write_text(textwrap.dedent(SYNC))
    app = DebuggerApp.live(load_program("prog.py:flow"), {}, tmp_path / "t.json", paused=True)
    async with app.run_test(size=(120, 36)) as pilot:
        model = app.screen.model
        await wait_for(pilot, lambda: model.status == "running")
        await pilot.pause(0.3)
        assert started(model) == []
        await pilot.press(".")
        await wait_for(pilot, lambda: started(model) == ["prog.make"])
        await pilot.press(".")  # the batch node starts; its items wait
        await wait_for(pilot, lambda: "prog.double" in started(model))
        for n in (1, 2):
            await pilot.press(".")
            await wait_for(pilot, lambda n=n: model.latest["double"].items.done == n)
            await pilot.pause(0.2)
            assert model.latest["double"].items.done == n
        await pilot.press("p")
        await wait_for(pilot, lambda: model.status == "ok")
    assert read_trace(tmp_path / "t.json").store["doubled"] == [2, 4, 6, 8]


async def test_a_breakpoint_pauses_an_async_program(tmp_path):
    app = DebuggerApp.live(load_program(f"{SAMPLE}:flow"), {}, tmp_path / "t.json",
                           breakpoints=[NodeBreak("reduce_report")])
    async with app.run_test(size=(120, 36)) as pilot:
        model = app.screen.model
        await wait_for(pilot, lambda: model.paused is not None)
        assert model.latest["per_topic"].items.done == 4
        assert "reduce_report" not in model.latest
        await pilot.press("p")
        await wait_for(pilot, lambda: model.status == "ok")


async def test_stop_while_a_sync_node_waits_in_an_async_program(tmp_path):
    # load_corpus is a sync node of an AsyncFlow: paused before it, it blocks the event loop
    app = DebuggerApp.live(load_program(f"{SAMPLE}:flow"), {}, tmp_path / "t.json", paused=True)
    async with app.run_test(size=(120, 36)) as pilot:
        model = app.screen.model
        await wait_for(pilot, lambda: model.paused is not None)
        await pilot.press("s")  # it asks first
        await pilot.pause(0.3)
        assert model.status == "running"
        await pilot.press("y")
        await wait_for(pilot, lambda: model.status not in ("pending", "running"))
        assert model.status == "cancelled" and started(model) == []
    assert read_trace(tmp_path / "t.json").status == "interrupted"
