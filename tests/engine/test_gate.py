"""Live stepping: pause, step, step over a node, continue, breakpoints, the worker's commands.

Every test asserts which nodes and items ran at each step. The flows use ``probe``, an
async node type that records when it starts (in the run's thread) and sleeps, fails or
pauses the gate as its params say. Runs go in a thread (``run_flow``), the gate is
commanded from the test's thread, as the app and the worker's stdin reader do.
"""

from __future__ import annotations

import queue
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import anyio
import jsonschema
import orjson
import pytest

from pflow_tui.engine.ir.load import build_flow
from pflow_tui.engine.nodes.base import NodeType, Param, RunContext
from pflow_tui.engine.registry import registry
from pflow_tui.engine.run.child import job_message
from pflow_tui.engine.run.executor import RunResult, execute, run_flow
from pflow_tui.engine.run.gate import (
    PAUSED,
    RUNNING,
    STEPPING,
    FailureBreak,
    Gate,
    ItemBreak,
    NodeBreak,
    breakpoint_from_json,
)
from pflow_tui.engine.trace import events as ev
from pflow_tui.engine.trace.writer import read_trace, trace_schema

TIMEOUT = 5.0


class Probe:
    """``probe``: records its start, sleeps ``sleep`` s, raises ``fail`` (a message) if
    given, and pauses the gate when ``pause`` is true, or gives it the ``command``
    (``step``, ``step_node``) as it starts: from inside the run's loop, so exactly then."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.started: list[str] = []
        self.in_flight = 0
        self.gate: Gate | None = None

    async def run(self, params: dict[str, Any], ctx: RunContext) -> dict[str, Any]:
        with self.lock:
            self.started.append(ctx.path)
            self.in_flight += 1
        try:
            if params.get("pause") and self.gate is not None:
                self.gate.pause()
            if params.get("command") and self.gate is not None:
                getattr(self.gate, params["command"])()
            await anyio.sleep(params.get("sleep") or 0)
        finally:
            with self.lock:
                self.in_flight -= 1
        if params.get("fail"):
            raise RuntimeError(str(params["fail"]))
        return {"value": params.get("value")}

    def node_type(self) -> NodeType:
        return NodeType("probe", self.run, params=(
            Param("sleep"), Param("fail"), Param("pause"), Param("command"), Param("value")))


class LiveRun:
    """A run in a thread, with its gate, its events and what its probes started."""

    def __init__(self, doc: dict[str, Any], tmp_path: Path, gate: Gate, *,
                 stop: threading.Event | None = None) -> None:
        self.probe = Probe()
        self.probe.gate = gate
        self.gate = gate
        self.reg = {**registry(), "probe": self.probe.node_type()}
        self.spec = build_flow(doc, registry=self.reg)
        self.trace = tmp_path / "trace.json"
        self.trace.unlink(missing_ok=True)  # a test may run twice: the latest run's trace
        self.events: list[dict[str, Any]] = []
        self.result: RunResult | None = None
        self.error: BaseException | None = None
        self.stop = stop
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self) -> None:
        try:
            self.result = run_flow(self.spec, {}, trace=self.trace, sinks=[self.events.append],
                                   registry=self.reg, stop=self.stop, gate=self.gate)
        except BaseException as exc:  # shown by finish()
            self.error = exc

    @property
    def done(self) -> bool:
        return not self.thread.is_alive()

    def started(self) -> list[str]:
        """What the probes started, in order (paths relative to the flow)."""
        with self.probe.lock:
            return [p.partition(".")[2] for p in self.probe.started]

    def items(self, node: str = "b") -> set[int]:
        """The indexes of ``node``'s items that started."""
        prefix = f"{node}.iteration_"
        return {int(p[len(prefix):]) for p in self.started() if p.startswith(prefix)}

    def waiting(self) -> list[str]:
        return [p.partition(".")[2] for p in self.gate.waiting()]

    def settle(self) -> None:
        """Wait until nothing runs: every probe has returned and the units that wait at the
        gate are the same for a while (or the run is over)."""
        deadline = time.monotonic() + TIMEOUT
        last: tuple[Any, ...] | None = None
        while time.monotonic() < deadline:
            with self.probe.lock:
                state = (self.probe.in_flight, len(self.probe.started), tuple(self.gate.waiting()),
                         len(self.events))
            if self.done or (state[0] == 0 and state[2]):
                if state == last:
                    return
                last = state
                time.sleep(0.03)
            else:
                last = None
                time.sleep(0.005)
        raise AssertionError(f"the run did not settle: started {self.started()}, "
                             f"waiting {self.waiting()}")

    def do(self, command: Callable[[], Any]) -> None:
        command()
        self.settle()

    def finish(self) -> RunResult:
        self.thread.join(TIMEOUT)
        assert not self.thread.is_alive(), "the run did not end"
        if self.error is not None:
            raise self.error
        assert self.result is not None
        return self.result

    def of(self, kind: str, **match: Any) -> list[dict[str, Any]]:
        return [e for e in list(self.events)
                if e["kind"] == kind and all(e.get(k) == v for k, v in match.items())]

    def node_starts(self) -> list[str]:
        return [e["path"].partition(".")[2] for e in self.of(ev.NODE_START)]


def flow(n: int = 6, *, parallel: bool = True, max_concurrent: int = 3, items: Any = None,
         item_params: dict[str, Any] | None = None, error_handling: str = "continue",
         name: str = "f") -> dict[str, Any]:
    """a -> b (a batch of ``n`` probes, or over ``items``) -> c."""
    return {
        "name": name,
        "nodes": [
            {"id": "a", "type": "probe"},
            {"id": "b", "type": "probe", "params": item_params or {"value": "${item}"},
             "batch": {"items": items if items is not None else list(range(n)),
                       "parallel": parallel, "max_concurrent": max_concurrent,
                       "error_handling": error_handling}},
            {"id": "c", "type": "probe"},
        ],
        "edges": [{"from": "a", "to": "b"}, {"from": "b", "to": "c"}],
    }


def timed(sleeps: list[float], fails: dict[int, str] | None = None) -> list[dict[str, Any]]:
    """Items that sleep (and fail with a message) as said, for ``SLOW_PARAMS``."""
    return [{"i": i, "sleep": s, "fail": (fails or {}).get(i)} for i, s in enumerate(sleeps)]


SLOW_PARAMS = {"value": "${item.i}", "sleep": "${item.sleep}", "fail": "${item.fail}"}


# --------------------------------------------------------------------------- stepping


def test_started_paused_nothing_runs(tmp_path: Path) -> None:
    run = LiveRun(flow(), tmp_path, Gate(paused=True))
    run.settle()
    assert run.started() == []
    assert run.waiting() == ["a"]
    assert run.node_starts() == []
    assert run.gate.mode == PAUSED
    [pause] = run.of(ev.PAUSE)
    assert pause["reason"] == "start" and pause["path"] == "f" and pause["breakpoint"] is None
    time.sleep(0.3)  # the trace's flush thread hands a paused run's events to the OS too
    on_disk = read_trace(run.trace)
    assert on_disk.truncated and [e["kind"] for e in on_disk.events] == [ev.RUN_START, ev.PAUSE]
    run.gate.resume()
    assert run.finish().status == "ok"


def test_step_releases_one_node_then_one_item_at_a_time(tmp_path: Path) -> None:
    run = LiveRun(flow(6, max_concurrent=3, item_params={"value": "${item}", "sleep": 0.01}),
                  tmp_path, Gate(paused=True))
    run.settle()
    run.do(run.gate.step)
    assert run.started() == ["a"], "the first step starts exactly the first node"
    assert run.node_starts() == ["a"]
    assert run.waiting() == ["b"]

    run.do(run.gate.step)  # into the batch: it starts, none of its items does
    assert run.node_starts() == ["a", "b"]
    assert run.items() == set()
    assert run.waiting() == ["b.iteration_0", "b.iteration_1", "b.iteration_2"]

    for k in range(6):  # one item per step, while the pool's other workers wait
        run.do(run.gate.step)
        assert run.items() == set(range(k + 1)), f"after step {k + 1}"
        assert [e["index"] for e in run.of(ev.ITEM_START)] == list(range(k + 1))
        assert run.gate.mode == PAUSED
        remaining = [f"b.iteration_{i}" for i in range(k + 1, min(k + 4, 6))]
        assert run.waiting() == (remaining or ["c"])
    assert run.node_starts() == ["a", "b"], "c waits for its own step"

    run.do(run.gate.step)
    assert run.started()[-1] == "c"
    result = run.finish()
    assert result.status == "ok"
    # each step is a resume (reason step) at what it lets go, then a pause where the run waits
    marks = [(e["kind"], e["path"].partition(".")[2], e["reason"]) for e in run.events
             if e["kind"] in (ev.PAUSE, ev.RESUME)]
    assert marks[:5] == [(ev.PAUSE, "", "start"), (ev.RESUME, "a", "step"), (ev.PAUSE, "b", "step"),
                         (ev.RESUME, "b", "step"), (ev.PAUSE, "b.iteration_0", "step")]
    assert marks[5:7] == [(ev.RESUME, "b.iteration_0", "step"), (ev.PAUSE, "b.iteration_1", "step")]
    assert marks[-2:] == [(ev.PAUSE, "c", "step"), (ev.RESUME, "c", "step")]


def test_step_releases_one_of_several_waiting_parallel_items_while_others_run(
        tmp_path: Path) -> None:
    run = LiveRun(flow(6, max_concurrent=3, item_params={"value": "${item}", "sleep": 0.3}),
                  tmp_path, Gate(paused=True))
    run.settle()
    run.do(run.gate.step)
    run.do(run.gate.step)
    run.gate.step()
    run.gate.step()  # two items released in quick succession: both run together
    deadline = time.monotonic() + TIMEOUT
    while run.probe.in_flight < 2 and time.monotonic() < deadline:
        time.sleep(0.005)
    assert run.items() == {0, 1}
    assert run.probe.in_flight == 2
    assert run.waiting() == ["b.iteration_2"]
    run.settle()
    assert run.items() == {0, 1}
    assert run.waiting() == ["b.iteration_2", "b.iteration_3", "b.iteration_4"]
    run.gate.resume()
    assert run.finish().status == "ok"


def test_step_node_runs_the_rest_of_the_batch_and_stops_before_the_next_node(
        tmp_path: Path) -> None:
    run = LiveRun(flow(6, max_concurrent=3), tmp_path, Gate(paused=True))
    run.settle()
    run.do(run.gate.step)  # a
    run.do(run.gate.step)  # b starts
    run.do(run.gate.step)  # item 0
    assert run.items() == {0}
    run.do(run.gate.step_node)
    assert run.items() == set(range(6))
    assert run.node_starts() == ["a", "b"]
    assert run.waiting() == ["c"]
    assert run.gate.mode == PAUSED
    assert run.of(ev.NODE_END, path="f.b")[0]["status"] == "ok"
    run.gate.resume()
    assert run.finish().status == "ok"
    assert run.started()[-1] == "c"


def test_step_node_steps_over_whole_nodes(tmp_path: Path) -> None:
    run = LiveRun(flow(4, parallel=False), tmp_path, Gate(paused=True))
    run.settle()
    run.do(run.gate.step_node)
    assert run.started() == ["a"]
    assert run.waiting() == ["b"]
    run.do(run.gate.step_node)  # the whole batch, items included
    assert run.started() == ["a", *(f"b.iteration_{i}" for i in range(4))]
    assert run.waiting() == ["c"]
    run.do(run.gate.step_node)
    result = run.finish()
    assert result.status == "ok"
    assert run.started()[-1] == "c"


def test_continue_runs_to_the_end(tmp_path: Path) -> None:
    run = LiveRun(flow(6), tmp_path, Gate(paused=True))
    run.settle()
    run.do(run.gate.step)
    run.do(run.gate.step)
    run.do(run.gate.step)
    assert run.items() == {0}
    run.gate.resume()
    result = run.finish()
    assert result.status == "ok"
    assert run.items() == set(range(6))
    assert run.started()[-1] == "c"
    *steps, resume = run.of(ev.RESUME)
    assert [e["reason"] for e in steps] == ["step"] * 3
    assert resume["reason"] == "user" and resume["path"] == "f"
    assert result.store["b"]["success_count"] == 6


def test_step_while_running_pauses_after_the_next_unit(tmp_path: Path) -> None:
    doc = flow(5, parallel=False)
    doc["nodes"][0]["params"] = {"command": "step"}  # a steps, while running
    run = LiveRun(doc, tmp_path, Gate())
    run.settle()
    assert run.started() == ["a"]
    assert run.node_starts() == ["a", "b"], "the one unit after the step: b starts"
    assert run.waiting() == ["b.iteration_0"]
    [pause] = run.of(ev.PAUSE)  # said once it waits, where it waits
    assert pause["reason"] == "step" and pause["path"] == "f.b.iteration_0"
    assert not run.of(ev.RESUME)
    run.gate.resume()
    assert run.finish().status == "ok"


def test_step_node_while_running_stops_before_the_node_after_next(tmp_path: Path) -> None:
    doc = flow(5, parallel=False)
    doc["nodes"][0]["params"] = {"command": "step_node"}
    run = LiveRun(doc, tmp_path, Gate())
    run.settle()
    assert run.started() == ["a", *(f"b.iteration_{i}" for i in range(5))]
    assert run.waiting() == ["c"]
    run.gate.resume()
    assert run.finish().status == "ok"


CHILD = {"nodes": [{"id": "x", "type": "probe"}, {"id": "y", "type": "probe"}],
         "edges": [{"from": "x", "to": "y"}]}


def nested() -> dict[str, Any]:
    """a -> w (a nested flow: x -> y) -> c."""
    return {"name": "f",
            "nodes": [{"id": "a", "type": "probe"},
                      {"id": "w", "type": "workflow", "params": {"workflow_ir": CHILD}},
                      {"id": "c", "type": "probe"}],
            "edges": [{"from": "a", "to": "w"}, {"from": "w", "to": "c"}]}


def test_step_goes_into_a_nested_flow_and_step_node_over_it(tmp_path: Path) -> None:
    run = LiveRun(nested(), tmp_path, Gate(paused=True))
    run.settle()
    run.do(run.gate.step)
    run.do(run.gate.step)  # into w: its first node waits
    assert run.node_starts() == ["a", "w"]
    assert run.waiting() == ["w.x"]
    run.do(run.gate.step_node)  # over x, inside the child
    assert run.started() == ["a", "w.x"]
    assert run.waiting() == ["w.y"]
    run.do(run.gate.step)
    assert run.started() == ["a", "w.x", "w.y"]
    assert run.waiting() == ["c"]
    run.gate.resume()
    assert run.finish().status == "ok"

    run = LiveRun(nested(), tmp_path, Gate(paused=True))
    run.settle()
    run.do(run.gate.step)
    assert run.waiting() == ["w"]
    run.do(run.gate.step_node)  # over w: the nested flow runs through
    assert run.started() == ["a", "w.x", "w.y"]
    assert run.waiting() == ["c"]
    run.gate.resume()
    assert run.finish().status == "ok"


# --------------------------------------------------------------------------- pause


def test_pause_mid_batch_running_items_finish_and_no_new_one_starts(tmp_path: Path) -> None:
    # item 1 pauses the gate as it starts (from inside the run, so exactly then)
    items = [{"i": 0, "sleep": 0.1, "pause": False}, {"i": 1, "sleep": 0.1, "pause": True},
             *({"i": i, "sleep": 0.01, "pause": False} for i in range(2, 8))]
    run = LiveRun(flow(items=items, max_concurrent=3,
                       item_params={"value": "${item.i}", "sleep": "${item.sleep}",
                                    "pause": "${item.pause}"}),
                  tmp_path, Gate())
    run.settle()
    assert run.items() == {0, 1}, "nothing started after the pause"
    ends = {e["index"]: e["status"] for e in run.of(ev.ITEM_END)}
    assert ends == {0: "ok", 1: "ok"}, "what was running finished"
    assert run.waiting() == ["b.iteration_2", "b.iteration_3", "b.iteration_4"]
    [pause] = run.of(ev.PAUSE)
    assert pause["reason"] == "user"
    time.sleep(0.2)
    assert run.items() == {0, 1}
    run.gate.resume()
    result = run.finish()
    assert result.status == "ok"
    assert run.items() == set(range(8))
    assert result.store["b"]["success_count"] == 8


def test_pause_from_another_thread_at_any_moment(tmp_path: Path) -> None:
    run = LiveRun(flow(30, max_concurrent=3, item_params={"value": "${item}", "sleep": 0.03}),
                  tmp_path, Gate())
    deadline = time.monotonic() + TIMEOUT
    while len(run.items()) < 4 and time.monotonic() < deadline:
        time.sleep(0.002)
    run.gate.pause()
    run.settle()
    frozen = run.items()
    assert 4 <= len(frozen) < 30
    assert {e["index"] for e in run.of(ev.ITEM_END)} == frozen, "every started item finished"
    time.sleep(0.15)
    assert run.items() == frozen
    assert not run.done
    run.gate.resume()
    assert run.finish().status == "ok"
    assert run.items() == set(range(30))


# --------------------------------------------------------------------------- breakpoints


def test_node_breakpoint_pauses_before_the_node(tmp_path: Path) -> None:
    run = LiveRun(flow(3), tmp_path, Gate(breakpoints=[NodeBreak("c")]))
    run.settle()
    assert run.node_starts() == ["a", "b"]
    assert run.items() == {0, 1, 2}
    assert run.waiting() == ["c"]
    assert not run.of(ev.NODE_START, node="c"), "node.start waits for the resume"
    [pause] = run.of(ev.PAUSE)
    assert pause["path"] == "f.c" and pause["reason"] == "breakpoint"
    assert pause["breakpoint"] == {"kind": "node", "node_id": "c", "id": "node:c"}
    run.gate.resume()
    assert run.finish().status == "ok"
    kinds = [(e["kind"], e["path"]) for e in run.events if e["kind"] in (ev.PAUSE, ev.RESUME)
             or (e["path"] == "f.c" and e["kind"] == ev.NODE_START)]
    assert kinds == [(ev.PAUSE, "f.c"), (ev.RESUME, "f"), (ev.NODE_START, "f.c")]


def test_node_breakpoint_hits_each_visit_and_a_step_passes_it(tmp_path: Path) -> None:
    gate = Gate(breakpoints=[NodeBreak("b")])
    run = LiveRun(flow(2, parallel=False), tmp_path, gate)
    run.settle()
    assert run.started() == ["a"]
    run.do(gate.step)  # passes the breakpoint: b starts, its first item waits
    assert run.node_starts() == ["a", "b"]
    assert run.waiting() == ["b.iteration_0"]
    assert gate.remove_breakpoint("node:b")
    assert not gate.remove_breakpoint("node:b")
    gate.resume()
    assert run.finish().status == "ok"


def test_failure_breakpoint_pauses_right_after_the_first_failing_item(tmp_path: Path) -> None:
    items = timed([0.15, 0.0, 0.15, 0.15, 0.15, 0.0, 0.0, 0.0], fails={1: "boom", 5: "again"})
    run = LiveRun(flow(items=items, max_concurrent=3, item_params=SLOW_PARAMS),
                  tmp_path, Gate(breakpoints=[FailureBreak()]))
    run.settle()
    assert run.items() == {0, 1, 2}, "no item started after the failure"
    assert {e["index"]: e["status"] for e in run.of(ev.ITEM_END)} == {0: "ok", 1: "error", 2: "ok"}
    [pause] = run.of(ev.PAUSE)
    assert pause["reason"] == "failure" and pause["path"] == "f.b.iteration_1"
    assert pause["breakpoint"] == {"kind": "failure", "id": "failure"}
    seqs = {(e["kind"], e["path"]): e["seq"] for e in run.events}
    assert seqs[(ev.ITEM_END, "f.b.iteration_1")] < pause["seq"]
    assert all(e["seq"] < pause["seq"] for e in run.of(ev.ITEM_START))
    assert run.waiting() == ["b.iteration_3", "b.iteration_4", "b.iteration_5"]

    run.do(run.gate.resume)  # item 5 fails too: paused again
    assert run.items() == {0, 1, 2, 3, 4, 5}
    assert [p["path"] for p in run.of(ev.PAUSE)] == ["f.b.iteration_1", "f.b.iteration_5"]
    run.gate.resume()
    result = run.finish()
    assert result.status == "ok", "a pause does not fail the run"
    assert result.store["b"]["error_count"] == 2


def test_failure_breakpoint_on_a_failing_node(tmp_path: Path) -> None:
    doc = flow(2)
    doc["nodes"][0]["params"] = {"fail": "a is broken"}
    doc["nodes"].append({"id": "handler", "type": "probe"})
    doc["edges"].append({"from": "a", "to": "handler", "action": "error"})
    run = LiveRun(doc, tmp_path, Gate(breakpoints=[FailureBreak()]))
    run.settle()
    assert run.started() == ["a"]
    assert run.waiting() == ["handler"], "the error handler waits"
    [pause] = run.of(ev.PAUSE)
    assert pause["path"] == "f.a" and pause["reason"] == "failure"
    run.gate.resume()
    run.finish()
    assert run.started() == ["a", "handler"]


def test_item_breakpoint_by_index(tmp_path: Path) -> None:
    bp = ItemBreak("b", index=3)
    run = LiveRun(flow(6, parallel=False), tmp_path, Gate(breakpoints=[bp]))
    run.settle()
    assert run.items() == {0, 1, 2}
    assert run.waiting() == ["b.iteration_3"]
    [pause] = run.of(ev.PAUSE)
    assert pause["path"] == "f.b.iteration_3" and pause["breakpoint"] == bp.to_json()
    run.do(run.gate.step)
    assert run.items() == {0, 1, 2, 3}
    run.gate.resume()
    assert run.finish().status == "ok"
    assert run.items() == set(range(6))


def test_item_breakpoint_by_index_in_a_parallel_batch(tmp_path: Path) -> None:
    run = LiveRun(flow(8, max_concurrent=3, item_params={"value": "${item}", "sleep": 0.02}),
                  tmp_path, Gate(breakpoints=[ItemBreak("b", index=4)]))
    run.settle()
    assert run.items() == {0, 1, 2, 3}
    assert run.waiting()[0] == "b.iteration_4"
    assert set(run.waiting()) == {"b.iteration_4", "b.iteration_5", "b.iteration_6"}
    run.gate.resume()
    assert run.finish().status == "ok"


@pytest.mark.parametrize(("match", "stops_before"), [
    ("cher", 2),  # a substring of the item
    ("^d", 3),  # a regex on the item
    ("banana-x", 1),  # in the resolved params
    (r'"value":"e\w+-x"', 4),  # a regex on the params' JSON
])
def test_item_breakpoint_by_match(tmp_path: Path, match: str, stops_before: int) -> None:
    items = ["apple", "banana", "cherry", "date", "elder"]
    run = LiveRun(flow(items=items, parallel=False, item_params={"value": "${item}-x"}),
                  tmp_path, Gate(breakpoints=[ItemBreak("b", match=match)]))
    run.settle()
    assert run.items() == set(range(stops_before))
    assert run.waiting() == [f"b.iteration_{stops_before}"]
    run.gate.resume()
    assert run.finish().status == "ok"


def test_item_breakpoint_by_error_regex(tmp_path: Path) -> None:
    items = timed([0] * 6, fails={1: "timeout talking to the API", 3: "HTTP 429: rate limited"})
    bp = ItemBreak("b", error=r"rate\s+limit")
    run = LiveRun(flow(items=items, parallel=False, item_params=SLOW_PARAMS), tmp_path,
                  Gate(breakpoints=[bp]))
    run.settle()
    assert run.items() == {0, 1, 2, 3}, "item 1 failed too, not matching: no pause there"
    assert run.waiting() == ["b.iteration_4"]
    [pause] = run.of(ev.PAUSE)
    assert pause["path"] == "f.b.iteration_3" and pause["breakpoint"]["error"] == r"rate\s+limit"
    run.gate.resume()
    assert run.finish().status == "ok"


def test_item_breakpoint_by_duration(tmp_path: Path) -> None:
    items = timed([0, 0, 0.2, 0, 0])
    run = LiveRun(flow(items=items, parallel=False, item_params=SLOW_PARAMS), tmp_path,
                  Gate(breakpoints=[ItemBreak("b", slower_than=0.1)]))
    run.settle()
    assert run.items() == {0, 1, 2}
    assert run.waiting() == ["b.iteration_3"]
    [pause] = run.of(ev.PAUSE)
    assert pause["path"] == "f.b.iteration_2"
    run.gate.resume()
    assert run.finish().status == "ok"


def test_item_breakpoint_slower_than_the_p95_of_its_siblings(tmp_path: Path) -> None:
    # item 0 is slow but has no siblings yet; item 7 is slower than every one before it
    items = timed([0.12, 0.005, 0.005, 0.005, 0.005, 0.005, 0.005, 0.3, 0.005])
    run = LiveRun(flow(items=items, parallel=False, item_params=SLOW_PARAMS), tmp_path,
                  Gate(breakpoints=[ItemBreak("b", slower_than_p95=True, min_siblings=5)]))
    run.settle()
    assert run.items() == set(range(8))
    assert run.waiting() == ["b.iteration_8"]
    [pause] = run.of(ev.PAUSE)
    assert pause["path"] == "f.b.iteration_7"
    run.gate.resume()
    assert run.finish().status == "ok"


def test_breakpoints_added_and_removed_while_running(tmp_path: Path) -> None:
    gate = Gate(paused=True)
    run = LiveRun(flow(4, parallel=False), tmp_path, gate)
    run.settle()
    bp_id = gate.add_breakpoint(ItemBreak("b", index=2))
    gate.add_breakpoint(NodeBreak("c"))
    run.do(gate.resume)
    assert run.items() == {0, 1}
    assert gate.remove_breakpoint(bp_id)
    run.do(gate.resume)
    assert run.items() == {0, 1, 2, 3}
    assert run.waiting() == ["c"]
    assert [b.id for b in gate.breakpoints()] == ["node:c"]
    gate.resume()
    assert run.finish().status == "ok"


# --------------------------------------------------------------------------- groups


def test_parallel_branches_wait_and_step_one_at_a_time(tmp_path: Path) -> None:
    doc = {
        "name": "g",
        "nodes": [{"id": "fan", "type": "probe"},
                  *({"id": f"br{i}", "type": "probe"} for i in range(3)),
                  {"id": "join", "type": "merge"}],
        "edges": [*({"from": "fan", "to": f"br{i}", "parallel_group": "p"} for i in range(3)),
                  *({"from": f"br{i}", "to": "join"} for i in range(3))],
    }
    run = LiveRun(doc, tmp_path, Gate(paused=True))
    run.settle()
    run.do(run.gate.step)
    assert run.started() == ["fan"]
    assert sorted(run.waiting()) == [f"fan.branch_{i}.br{i}" for i in range(3)]
    run.do(run.gate.step)
    assert len(run.started()) == 2, "one branch's first node per step"
    run.do(run.gate.step)
    assert len(run.started()) == 3
    run.gate.resume()
    assert run.finish().status == "ok"
    assert sorted(run.started()) == sorted(["fan", *(f"fan.branch_{i}.br{i}" for i in range(3))])


# --------------------------------------------------------------------------- stop, trace


def test_stop_while_paused_ends_the_run_cancelled_promptly(tmp_path: Path) -> None:
    stop = threading.Event()
    run = LiveRun(flow(6, item_params={"value": "${item}", "sleep": 0.01}), tmp_path,
                  Gate(paused=True), stop=stop)
    run.settle()
    run.do(run.gate.step)
    run.do(run.gate.step)
    run.do(run.gate.step)  # item 0 ran, 1-3 wait
    t0 = time.monotonic()
    stop.set()
    result = run.finish()
    assert time.monotonic() - t0 < 1.0
    assert result.status == "interrupted"
    assert run.of(ev.RUN_END)[0]["status"] == "cancelled"
    assert run.items() == {0}
    assert not run.of(ev.ITEM_START, index=1), "waiting items never started"
    assert run.of(ev.NODE_END, path="f.b")[0]["status"] == "cancelled"
    doc = orjson.loads(run.trace.read_bytes())
    assert doc["status"] == "interrupted"


def test_pause_and_resume_events_are_in_the_trace_and_valid(tmp_path: Path) -> None:
    gate = Gate(paused=True, breakpoints=[NodeBreak("c"), ItemBreak("b", index=1, match="1"),
                                          ItemBreak("b", error="x", slower_than=5)])
    run = LiveRun(flow(3, parallel=False), tmp_path, gate)
    run.settle()
    run.do(gate.resume)  # to item 1
    run.do(gate.pause)  # already paused: no event
    run.do(gate.resume)  # to c
    gate.resume()
    assert run.finish().status == "ok"
    doc = orjson.loads(run.trace.read_bytes())
    schema = trace_schema()
    jsonschema.Draft202012Validator(schema).validate(doc)
    marks = [(e["kind"], e["path"], e["reason"]) for e in doc["events"]
             if e["kind"] in (ev.PAUSE, ev.RESUME)]
    assert marks == [("pause", "f", "start"), ("resume", "f", "user"),
                     ("pause", "f.b.iteration_1", "breakpoint"), ("resume", "f", "user"),
                     ("pause", "f.c", "breakpoint"), ("resume", "f", "user")]
    bad = dict(doc)
    bad["events"] = [*doc["events"]]
    bad["events"][1] = {**bad["events"][1], "reason": "because"}
    assert not jsonschema.Draft202012Validator(schema).is_valid(bad)


@pytest.mark.anyio
async def test_execute_in_a_task_with_the_gate_commanded_from_the_loop(tmp_path: Path) -> None:
    probe = Probe()
    reg = {**registry(), "probe": probe.node_type()}
    spec = build_flow(flow(4, parallel=False), registry=reg)
    gate = Gate(paused=True)
    events: list[dict[str, Any]] = []
    async with anyio.create_task_group() as tg:
        tg.start_soon(lambda: execute(spec, {}, [events.append], registry=reg, gate=gate))
        for expected in (["f.a"], ["f.a"], ["f.a", "f.b.iteration_0"]):
            await anyio.sleep(0.05)
            gate.step()
            await anyio.sleep(0.05)
            assert probe.started == expected
        gate.resume()
    assert events[-1]["kind"] == ev.RUN_END and events[-1]["status"] == "ok"
    assert len(probe.started) == 6


def test_no_gate_no_waiting() -> None:
    probe = Probe()
    reg = {**registry(), "probe": probe.node_type()}
    events: list[dict[str, Any]] = []
    result = anyio.run(lambda: execute(build_flow(flow(3), registry=reg), {}, [events.append],
                                       registry=reg))
    assert result.status == "ok"
    assert not [e for e in events if e["kind"] in (ev.PAUSE, ev.RESUME)]


# --------------------------------------------------------------------------- the API


def test_breakpoints_round_trip_as_json() -> None:
    for bp in (NodeBreak("x"), FailureBreak(),
               ItemBreak("b", index=2, match="foo", error="t.o", slower_than=1.5),
               ItemBreak(None, slower_than_p95=True, min_siblings=3)):
        data = orjson.loads(orjson.dumps(bp.to_json()))
        assert breakpoint_from_json(data) == bp
        assert breakpoint_from_json(orjson.dumps(data)) == bp
    assert ItemBreak("b", index=2).id == ItemBreak("b", index=2).id != ItemBreak("b", index=3).id
    for bad in ('{"kind": "nope"}', '{"kind": "node"}', '{"kind": "item", "indx": 1}',
                '{"kind": "item", "error": "("}', '{"kind": "item", "index": -1}', "[1]", "{"):
        with pytest.raises(ValueError):
            breakpoint_from_json(bad)


def test_gate_modes() -> None:
    gate = Gate()
    assert gate.mode == RUNNING
    gate.pause()
    assert gate.mode == PAUSED
    gate.step()  # nothing waits: the next unit to arrive will pass
    assert gate.mode == STEPPING
    gate.resume()
    assert gate.mode == RUNNING


# --------------------------------------------------------------------------- the worker


class Worker:
    """``python -m pflow_tui.engine.run.child`` with a job; its events read by a thread."""

    def __init__(self, ir: dict[str, Any], tmp_path: Path, **job: Any) -> None:
        self.proc = subprocess.Popen([sys.executable, "-m", "pflow_tui.engine.run.child"],
                                     stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                     stderr=subprocess.PIPE)
        assert self.proc.stdin is not None
        self.proc.stdin.write(job_message(ir, name=ir["name"], source="<flow>", base_dir=tmp_path,
                                          inputs={}, trace=tmp_path / "w.json", **job))
        self.proc.stdin.flush()
        self.lines: queue.Queue[dict[str, Any]] = queue.Queue()
        self.events: list[dict[str, Any]] = []
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.lines.put(orjson.loads(line))

    def send(self, line: str) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.write(line.encode() + b"\n")
        self.proc.stdin.flush()

    def until(self, kind: str, path: str | None = None) -> dict[str, Any]:
        while True:
            e = self.lines.get(timeout=10)
            self.events.append(e)
            if e["kind"] == kind and (path is None or e["path"] == path):
                return e

    def quiet(self, wait: float = 0.3) -> list[dict[str, Any]]:
        """The events that come within ``wait`` s."""
        out = []
        deadline = time.monotonic() + wait
        while (left := deadline - time.monotonic()) > 0:
            try:
                out.append(self.lines.get(timeout=left))
            except queue.Empty:
                break
        self.events.extend(out)
        return out

    def starts(self) -> list[str]:
        return [e["path"].partition(".")[2] for e in self.events
                if e["kind"] in (ev.NODE_START, ev.ITEM_START)]


@pytest.mark.slow
def test_worker_protocol_paused_steps_breakpoints(tmp_path: Path) -> None:
    ir = {"name": "w", "nodes": [
        {"id": "a", "type": "echo", "params": {"message": "hi"}},
        {"id": "b", "type": "echo", "params": {"message": "${item}"},
         "batch": {"items": ["x", "y", "z", "u", "v"], "parallel": True, "max_concurrent": 2}},
        {"id": "c", "type": "echo", "params": {"message": "done"}}],
        "edges": [{"from": "a", "to": "b"}, {"from": "b", "to": "c"}]}
    w = Worker(ir, tmp_path, paused=True, breakpoints=[NodeBreak("c")])
    try:
        assert w.until(ev.PAUSE)["reason"] == "start"
        assert w.quiet(0.2) == [] and w.starts() == []
        w.send("step")
        w.until(ev.NODE_END, "w.a")
        w.quiet()
        assert w.starts() == ["a"]
        w.send("step")
        w.until(ev.NODE_START, "w.b")
        w.quiet()
        assert w.starts() == ["a", "b"]
        for i in range(2):
            w.send("step")
            w.until(ev.ITEM_END, f"w.b.iteration_{i}")
            w.quiet()
            assert w.starts() == ["a", "b", *(f"b.iteration_{k}" for k in range(i + 1))]
        w.send('break {"kind": "item", "node_id": "b", "index": 4}')
        w.send("nonsense")
        w.send("resume")
        pause = w.until(ev.PAUSE)
        assert pause["path"] == "w.b.iteration_4" and pause["breakpoint"]["index"] == 4
        w.quiet()
        assert w.starts() == ["a", "b", *(f"b.iteration_{k}" for k in range(4))]
        w.send("step_node")  # the rest of b; c's breakpoint does not matter when paused
        w.until(ev.NODE_END, "w.b")
        w.quiet()
        assert w.starts()[-1] == "b.iteration_4"
        w.send("unbreak node:c")
        w.send("resume")
        end = w.until(ev.RUN_END)
        assert end["status"] == "ok"
        assert w.starts()[-1] == "c"
        assert w.proc.wait(10) == 0
        assert w.proc.stderr is not None
        assert b"unknown command 'nonsense'" in w.proc.stderr.read()
    finally:
        if w.proc.poll() is None:
            w.proc.kill()


def test_worker_stop_while_paused(tmp_path: Path) -> None:
    ir = {"name": "w", "nodes": [{"id": "a", "type": "echo", "params": {"message": "hi"}}],
          "edges": []}
    w = Worker(ir, tmp_path, paused=True)
    try:
        w.until(ev.PAUSE)
        t0 = time.monotonic()
        w.send("stop")
        assert w.until(ev.RUN_END)["status"] == "cancelled"
        assert w.proc.wait(10) == 1
        assert time.monotonic() - t0 < 2
        assert w.starts() == []
    finally:
        if w.proc.poll() is None:
            w.proc.kill()


# --------------------------------------------------------------------------- the command line


CLI_FLOW = {"name": "cli", "nodes": [{"id": "a", "type": "echo", "params": {"message": "hi"}},
                                     {"id": "b", "type": "echo", "params": {"message": "yo"}}],
            "edges": [{"from": "a", "to": "b"}]}


@pytest.mark.parametrize("flag", [["--paused"], ["--break", "a"], ["--break-on-failure"]])
def test_headless_run_rejects_the_stepping_flags(tmp_path: Path, flag: list[str],
                                                 capsys: pytest.CaptureFixture[str]) -> None:
    from pflow_tui.cli import main

    path = tmp_path / "flow.json"
    path.write_bytes(orjson.dumps(CLI_FLOW))
    assert main(["run", str(path), "--trace", str(tmp_path / "t.json"), *flag]) == 2
    assert "need the debugger" in " ".join(capsys.readouterr().err.split())
    assert not (tmp_path / "t.json").exists(), "nothing ran"


def test_app_launch_passes_paused_and_breakpoints(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                  capsys: pytest.CaptureFixture[str]) -> None:
    from pflow_tui import cli
    from pflow_tui.app import app as app_module

    seen: dict[str, Any] = {}

    class FakeApp:
        runs = ()

        def run(self) -> str:
            return "ok"

    def live(spec: Any, inputs: Any, trace: Any, at: Any = None, *, paused: bool = False,
             breakpoints: Any = ()) -> FakeApp:
        seen.update(paused=paused, breakpoints=list(breakpoints))
        return FakeApp()

    monkeypatch.setattr(app_module.DebuggerApp, "live", staticmethod(live))
    path = tmp_path / "flow.json"
    path.write_bytes(orjson.dumps(CLI_FLOW))
    assert cli.main([str(path), "--paused", "--break", "b", "--break", "a", "--break", "b",
                     "--break-on-failure"]) == 0
    assert seen == {"paused": True,
                    "breakpoints": [NodeBreak("b"), NodeBreak("a"), FailureBreak()]}
    job = orjson.loads(job_message({}, name="x", source="s", base_dir=tmp_path, inputs={},
                                   trace=tmp_path / "t", paused=True,
                                   breakpoints=seen["breakpoints"]))
    assert job["paused"] is True
    assert [breakpoint_from_json(b) for b in job["breakpoints"]] == seen["breakpoints"]
    assert "paused" not in orjson.loads(job_message({}, name="x", source="s", base_dir=tmp_path,
                                                    inputs={}, trace=tmp_path / "t"))

    seen.clear()
    assert cli.main([str(path), "--break", "nope"]) == 2
    assert not seen
    err = " ".join(capsys.readouterr().err.split())
    assert "--break nope" in err and "no node with this id" in err
