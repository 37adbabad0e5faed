"""The cost of ``w`` (the timeline grouped by cluster worker) on a big finished batch.

    python bench/bench_timeline_workers.py [--items 10000] [--workers 4]

A batch of ``--items`` items spread over ``--workers`` cluster workers (events made here, shown
as a live run's are) is selected in the app (140x40, headless); the timeline is focused and
``w`` is typed, in the summary (the default for a big batch) and with every row (``z``).
Measured: the time from the key to its action's return plus the drawing of the lines on
screen (what a key costs the app; the only pane redrawn, with no layout), and the whole
press as Textual's Pilot sees it (the same for ``z``, as a baseline). Target: the p99 of the
key's own cost within 50 ms at 10,000 items (issue 11's budget for a key during a run).
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import time
from typing import Any

from pflow_tui.app.app import DebuggerApp
from pflow_tui.app.graph import Graph
from pflow_tui.app.messages import Selection

FLOW = {"ir_version": "0.1.0", "name": "big", "nodes": [
    {"id": "w", "type": "code", "executor": "cluster", "batch": {"items": "${x}", "parallel": True},
     "params": {"code": "result: int = 1"}}]}


def events(n: int, workers: int) -> list[dict[str, Any]]:
    """A finished run of ``n`` items on ``workers`` workers, each item's events in turn."""
    out: list[dict[str, Any]] = []

    def add(t: float, kind: str, path: str, **fields: Any) -> None:
        out.append({"seq": len(out) + 1, "t": t, "kind": kind, "path": path, **fields})

    add(0.0, "run.start", "big", flow="big", inputs={})
    add(0.0, "node.start", "big.w", node="w", type="code",
        batch={"count": n, "parallel": True, "max_concurrent": 8})
    for i in range(n):
        path, t = f"big.w.iteration_{i}", i * 0.001
        add(t, "item.start", path, index=i, item=i)
        add(t, "wait.start", path, on="cluster", attempt=1, limit="cluster tcp://10.0.0.5:8786")
        add(t + 0.0005, "wait.end", path, on="cluster", attempt=1, status="ok", duration=0.0005,
            worker=f"tcp://10.0.1.{i % workers}:40000")
        add(t + 0.002, "item.end", path, index=i, status="ok", duration=0.002, attempts=1, outputs={})
    add(n * 0.001 + 0.01, "node.end", "big.w", node="w", status="ok", duration=n * 0.001)
    add(n * 0.001 + 0.02, "run.end", "big", status="ok", duration=n * 0.001)
    return out


def pct(values: list[float], q: float) -> float:
    values = sorted(values)
    return values[min(len(values) - 1, round(q / 100 * (len(values) - 1)))]


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--items", type=int, default=10_000)
    parser.add_argument("--workers", type=int, default=4)
    parser.add_argument("--presses", type=int, default=60)
    args = parser.parse_args()
    made = events(args.items, args.workers)
    app = DebuggerApp.from_events(Graph.from_ir(FLOW, "big", {}), made)
    async with app.run_test(size=(140, 40)) as pilot:
        while app.screen.model.status != "ok":  # every event applied (at the app's pace)
            await pilot.pause(0.2)
        await pilot.pause(1.0)
        app.select(Selection("w", args.items // 2))
        await pilot.pause(0.5)
        view = app.screen.panes["timeline"]
        view.focus()
        await pilot.pause()
        print(f"{args.items:,} items on {args.workers} workers")
        for mode in ("summary", "every row"):
            if mode == "every row":
                await pilot.press("z")
                await pilot.pause(0.2)
            own: list[float] = []
            for _ in range(args.presses):
                t = time.perf_counter()
                view.action_toggle_workers()
                for y in range(view.size.height):
                    view.render_line(y)
                own.append((time.perf_counter() - t) * 1000)
            presses: dict[str, list[float]] = {"w": [], "z": []}
            for key in ("w", "z"):
                for _ in range(20):  # (an even number: the view ends as it was)
                    t = time.perf_counter()
                    await pilot.press(key)
                    presses[key].append((time.perf_counter() - t) * 1000)
            print(f"  {mode:9}: w itself p50 {statistics.median(own):.1f} ms  p99 {pct(own, 99):.1f} ms"
                  f"  (target p99 <= 50)   a Pilot press: w p50 {statistics.median(presses['w']):.0f} ms,"
                  f" z p50 {statistics.median(presses['z']):.0f} ms")


if __name__ == "__main__":
    asyncio.run(main())
