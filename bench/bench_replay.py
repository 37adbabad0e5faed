"""Replay at scale: open a trace of about a million events in the app, move the cursor.

    python bench/bench_replay.py [--items N] [--trace PATH]

Makes (or reuses) a trace of a parallel batch of N items (2 events each: 500,000 items
give a million events), then in one run measures, side by side with the time to just
read the file: opening the trace index, the app's first screen (Pilot, headless), how
long a key takes to be answered while the trace loads, the full load, cursor moves once
it is loaded (back and forward by one event at the end and in the middle of the run,
jumps back) timed until the panes show the state at the new cursor, and the peak memory
against the size of all events as Python objects. Targets (issue 5): opens within 3 s,
keys answered within 100 ms, bounded memory.
"""

from __future__ import annotations

import argparse
import asyncio
import resource
import sys
import tempfile
import time
from pathlib import Path

from textual import events
from textual.binding import Binding

from pflow_tui.app.app import DebuggerApp
from pflow_tui.app.screens.run import RunScreen
from pflow_tui.app.widgets.scrubber import Scrubber
from pflow_tui.engine.ir.load import build_flow
from pflow_tui.engine.run.executor import run_flow
from pflow_tui.engine.trace.reader import TraceIndex


def make_trace(n: int, path: Path) -> None:
    spec = build_flow({"name": "big", "nodes": [
        {"id": "gen", "type": "echo", "params": {"message": "x", "data": list(range(n))}},
        {"id": "sq", "type": "echo", "params": {"message": "item ${item}"},
         "batch": {"items": "${gen.data}", "parallel": True, "max_concurrent": 50}}],
        "edges": [{"from": "gen", "to": "sq"}]})
    run_flow(spec, {}, trace=path)


class ProbeApp(DebuggerApp):
    BINDINGS = [*DebuggerApp.BINDINGS, Binding("f12", "probe", show=False)]  # noqa: RUF012

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.answered: list[float] = []

    def action_probe(self) -> None:
        self.answered.append(time.perf_counter())


async def shown_at(app: ProbeApp, cursor: int, started: float) -> float:
    """Seconds from ``started`` until the panes show the run after ``cursor`` events."""
    while True:
        screen = app.screen
        model = getattr(screen, "model", None)
        if model is not None and screen.is_mounted and len(model.events) == cursor:
            break
        await asyncio.sleep(0.001)
    await screen.wait_for_refresh()
    return time.perf_counter() - started


async def press(app: ProbeApp, key: str, character: str | None, cursor: int) -> float:
    """Press a cursor key; seconds until the panes show the state at ``cursor``."""
    t = time.perf_counter()
    app.post_message(events.Key(key, character))
    return await shown_at(app, cursor, t)


async def measure(path: Path) -> None:
    t0 = time.perf_counter()
    raw = path.read_bytes()
    read_s = time.perf_counter() - t0
    size_mb = len(raw) / 1e6
    del raw
    t0 = time.perf_counter()
    index = TraceIndex(path)
    index_s = time.perf_counter() - t0
    n_events = len(index)
    app = ProbeApp.replay(index)
    t0 = time.perf_counter()
    latencies: list[float] = []
    moves: dict[str, list[float]] = {}
    async with app.run_test(size=(140, 40)):
        while not isinstance(app.screen, RunScreen) or not app.screen.is_mounted:
            await asyncio.sleep(0.001)
        await app.screen.wait_for_refresh()  # the first screen is painted
        first_screen = time.perf_counter() - t0
        while len(app.screen.model.events) < n_events:
            sent = time.perf_counter()
            count = len(app.answered)
            app.post_message(events.Key("f12", None))
            while len(app.answered) == count and time.perf_counter() - sent < 5:
                await asyncio.sleep(0.001)
            latencies.append(app.answered[-1] - sent)
            await asyncio.sleep(0.05)
        loaded = time.perf_counter() - t0
        await app.screen.wait_for_refresh()
        middle = n_events // 2
        for where, at in (("at the end", n_events), ("mid-trace", middle)):
            if at != len(app.screen.model.events):  # a jump back: a click on the scrubber
                t = time.perf_counter()
                app.screen.post_message(Scrubber.Moved(at))
                moves["jump back to mid-trace (scrubber)"] = [await shown_at(app, at, t)]
            for _ in range(5):
                at -= 1
                moves.setdefault(f"one event back, {where}", []).append(await press(app, "comma", ",", at))
                await asyncio.sleep(0.05)
            for _ in range(5):
                at += 1
                moves.setdefault(f"one event forward, {where}", []).append(
                    await press(app, "period", ".", at))
                await asyncio.sleep(0.05)
        node_start = (index.find(middle, -1, "node") or 0) + 1
        await asyncio.sleep(0.2)
        moves["back to the batch node's start (<)"] = [await press(app, "less_than_sign", "<", node_start)]
        await asyncio.sleep(0.2)
        moves["back to the start (g)"] = [await press(app, "g", "g", 0)]
    rss_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"trace: {n_events:,} events, {size_mb:.0f} MB on disk")
    print(f"  reading the file (baseline)     {read_s:.2f} s")
    print(f"  indexing it (memory-mapped)     {index_s:.2f} s")
    print(f"  the app's first screen          {first_screen + index_s:.2f} s  (target: opens within 3 s)")
    print(f"  every event applied             {loaded + index_s:.2f} s  (the panes fill in meanwhile)")
    ms = sorted(x * 1000 for x in latencies)
    print(f"  a key while it loads            p50 {ms[len(ms) // 2]:.0f} ms  max {ms[-1]:.0f} ms  "
          f"over {len(ms)} presses  (target <= 100)")
    print("  the cursor, once loaded (until the panes show it; target <= 100 ms):")
    for name, times in moves.items():
        ms = sorted(x * 1000 for x in times)
        detail = f"median {ms[len(ms) // 2]:.0f} ms  max {ms[-1]:.0f} ms  of {len(ms)}" if len(ms) > 1 \
            else f"{ms[0]:.0f} ms"
        print(f"    {name:38s}{detail}")
    objects_mb = n_events * 1.2 / 1000
    print(f"  peak RSS {rss_mb:.0f} MB; the events as Python objects would be ~{objects_mb:.0f} MB+")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--items", type=int, default=500_000)
    parser.add_argument("--trace", type=Path, help="reuse this trace instead of making one")
    args = parser.parse_args()
    path = args.trace
    if path is None:
        path = Path(tempfile.mkdtemp(prefix="pflow-bench-replay-")) / f"big-{args.items}.json"
        t = time.perf_counter()
        make_trace(args.items, path)
        print(f"(made the trace in {time.perf_counter() - t:.1f} s)", file=sys.stderr)
    asyncio.run(measure(path))


if __name__ == "__main__":
    main()
