"""The app under load: a 10,000-item parallel batch run in the app vs headless, and key latency.

    python bench/bench_app.py [--items N]

The app is driven headless by Textual's ``run_test`` and Pilot; its run (a worker
process, from spawn to exit) is compared with ``pflow-tui run`` of the same flow (a
process, from spawn to exit), alternating, best of several rounds. Targets
(issue 4): the app run takes at most 1.3 x the headless wall time; a key press during
the run is answered within 100 ms.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import ClassVar

import orjson
from textual import events
from textual.binding import Binding, BindingType

from pflow_tui.app.app import DebuggerApp
from pflow_tui.engine.ir import build_flow

TMP = Path(tempfile.mkdtemp(prefix="pflow-bench-app-"))


def flow(n: int):
    return build_flow({"name": "load", "nodes": [
        {"id": "make", "type": "echo", "params": {"message": "go"}},
        {"id": "work", "type": "echo", "params": {"message": "item ${item}"},
         "batch": {"items": list(range(n)), "parallel": True, "max_concurrent": 20}}],
        "edges": [{"from": "make", "to": "work"}]})


class ProbeApp(DebuggerApp):
    """The real app plus one key whose handling time is recorded."""

    BINDINGS: ClassVar[list[BindingType]] = [*DebuggerApp.BINDINGS, Binding("f12", "probe", show=False)]

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.answered: list[float] = []

    def action_probe(self) -> None:
        self.answered.append(time.perf_counter())


def headless(n: int) -> float:
    """Wall time of ``pflow-tui run`` on the flow, start-up included (as a user runs it)."""
    path = TMP / f"load-{n}.json"
    path.write_bytes(orjson.dumps(flow(n).ir))
    (TMP / "h.json").unlink(missing_ok=True)  # a trace file holds one run
    t = time.perf_counter()
    subprocess.run([sys.executable, "-m", "pflow_tui", "run", str(path), "--trace", str(TMP / "h.json")],
                   check=True, capture_output=True)
    return time.perf_counter() - t


async def in_app(n: int, latencies: list[float]) -> tuple[float, float]:
    """(the run's wall time inside the app, the app's start-up until the run began)."""
    app = ProbeApp.live(flow(n), {}, TMP / "a.json")
    t = time.perf_counter()
    async with app.run_test(size=(140, 40)) as pilot:
        while not app.runs or app.runs[-1].running:
            sent = time.perf_counter()
            count = len(app.answered)
            app.post_message(events.Key("f12", None))
            while len(app.answered) == count and time.perf_counter() - sent < 2:
                await asyncio.sleep(0.001)
            during_run = app.runs[-1].running and app.screen.model.events
            if len(app.answered) > count and during_run:
                latencies.append(app.answered[-1] - sent)
            await asyncio.sleep(0.01)
        await pilot.pause(0.2)
        assert app.screen.model.latest["work"].items.done == n, "the app missed items"
        start, end = app.runs[-1].wall
    return end - start, start - t


def main() -> None:
    # as on a user's machine: byte-code cached, for `pflow-tui run` and the app's worker alike
    os.environ.pop("PYTHONDONTWRITEBYTECODE", None)
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--items", type=int, default=10_000)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    n = args.items
    headless(200)  # warm imports
    best_headless = best_app = startup = float("inf")
    latencies: list[float] = []
    for _ in range(args.rounds):
        best_headless = min(best_headless, headless(n))
        run_time, started_after = asyncio.run(in_app(n, latencies))
        best_app = min(best_app, run_time)
        startup = min(startup, started_after)
    print(f"{n:,}-item parallel batch (echo, max_concurrent 20), best of {args.rounds}")
    print(f"  headless `pflow-tui run`            {best_headless:.3f} s")
    print(f"  in the app (Pilot), worker process  {best_app:.3f} s   ratio {best_app / best_headless:.2f}"
          "  (target <= 1.3)")
    print(f"  (the app's own start-up before the run began: {startup:.3f} s, not counted)")
    ms = sorted(x * 1000 for x in latencies)
    print(f"  key press answered    p50 {statistics.median(ms):.1f} ms  max {ms[-1]:.1f} ms  "
          f"over {len(ms)} presses during the runs  (target <= 100)")


if __name__ == "__main__":
    main()
