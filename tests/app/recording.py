"""Helpers for UI tests: runs recorded with clocks made the same from run to run, and
waiting for the app."""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

from pflow_tui.app.graph import Graph
from pflow_tui.engine.ir.spec import FlowSpec
from pflow_tui.engine.run.executor import run_flow


def deterministic(events: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The same events with ``t = seq x 10 ms`` and durations from those times."""
    starts: dict[tuple[str, str], float] = {}
    out = []
    for e in events:
        e = dict(e)
        e["t"] = round(e["seq"] * 0.01, 6)
        kind, _, phase = e["kind"].partition(".")
        if phase == "start":
            starts[(kind, e["path"])] = e["t"]
        elif phase == "end" and "duration" in e:
            e["duration"] = round(e["t"] - starts.get((kind, e["path"]), 0.0), 6)
        out.append(e)
    return out


def record_run(spec: FlowSpec, trace: Path, inputs: dict[str, Any] | None = None
               ) -> tuple[Graph, list[dict[str, Any]]]:
    """Run ``spec`` (tracing to ``trace``) and return its graph and deterministic events.
    ``run_flow`` starts its own event loop: it runs in a thread, off the test's loop."""
    events: list[dict[str, Any]] = []
    worker = threading.Thread(target=run_flow, args=(spec, inputs or {}),
                              kwargs={"trace": trace, "sinks": [events.append]})
    worker.start()
    worker.join()
    return Graph.from_ir(spec.ir, spec.name), deterministic(events)


async def wait_for(pilot: Any, check: Any, timeout: float = 20.0) -> None:
    """Let the app run until ``check()`` holds (AssertionError after ``timeout`` seconds)."""
    for _ in range(int(timeout / 0.05)):
        await pilot.pause(0.05)
        if check():
            return
    raise AssertionError("timed out")
