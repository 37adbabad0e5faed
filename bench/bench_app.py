"""The app under load: a 10,000-item parallel batch run in the app vs headless, and key latency.

    python bench/bench_app.py [--items N]

The app is driven headless by Textual's ``run_test`` and Pilot; its run (a worker
process, from spawn to exit) is compared with ``pflow-tui run`` of the same flow (a
process, from spawn to exit), alternating, best of several rounds. Targets
(issues 4 and 11): the app run takes at most 1.2 x the headless wall time while it is
watched; every key pressed during a run is answered within 50 ms at p99. The keys are
pressed in runs of their own (as many as it takes to press --presses keys), back to back
(a storm no person types): they cost the
app time that the run, on the same cores, would otherwise have had.

The keys are the app's own, under the names Textual gives the characters a terminal
sends (``textual.keys._character_to_key``: ``/`` is ``slash``, ``[`` is
``left_square_bracket``), plus one probe key; a key is answered when the action its
binding runs has returned. Keys that would change the run (p . > s r R q) are left out:
they would change what is measured.
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
from typing import Any, ClassVar

import orjson
from textual import events
from textual.binding import Binding, BindingType
from textual.keys import _character_to_key

from pflow_tui.app.app import DebuggerApp
from pflow_tui.engine.ir.load import build_flow

TMP = Path(tempfile.mkdtemp(prefix="pflow-bench-app-"))


def flow(n: int):
    return build_flow({"name": "load", "nodes": [
        {"id": "make", "type": "echo", "params": {"message": "go"}},
        {"id": "work", "type": "echo", "params": {"message": "item ${item}"},
         "batch": {"items": list(range(n)), "parallel": True, "max_concurrent": 20}}],
        "edges": [{"from": "make", "to": "work"}]})


ESCAPE = "\x1b"
# as typed: next/previous failure, panes off and on, maximise and back, narrower and wider,
# the filter and back to the events, help and closed, and the probe
TYPED = ["n", "N", "1", "1", "3", "3", "m", "m", "[", "]", "/", ESCAPE, "?", ESCAPE, None]


def key_of(char: str | None) -> tuple[str, str | None]:
    """(the key name Textual gives ``char``, the character); None: the probe key."""
    if char is None:
        return "f12", None
    if char == ESCAPE:
        return "escape", char
    return (char if char.isalnum() else _character_to_key(char)), char


class ProbeApp(DebuggerApp):
    """The real app; the time each binding's action returns is recorded."""

    BINDINGS: ClassVar[list[BindingType]] = [*DebuggerApp.BINDINGS, Binding("f12", "probe", show=False)]

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.answered: list[float] = []

    async def run_action(self, action: Any, default_namespace: Any = None) -> bool:
        done = await super().run_action(action, default_namespace)
        self.answered.append(time.perf_counter())
        return done

    def action_probe(self) -> None:
        """Nothing: its time is recorded by run_action like every other key's."""


def headless(n: int) -> float:
    """Wall time of ``pflow-tui run`` on the flow, start-up included (as a user runs it)."""
    path = TMP / f"load-{n}.json"
    path.write_bytes(orjson.dumps(flow(n).ir))
    (TMP / "h.json").unlink(missing_ok=True)  # a trace file holds one run
    t = time.perf_counter()
    subprocess.run([sys.executable, "-m", "pflow_tui", "run", str(path), "--trace", str(TMP / "h.json")],
                   check=True, capture_output=True)
    return time.perf_counter() - t


async def in_app(n: int, latencies: dict[str, list[float]], missed: list[str],
                 first: int | None = None) -> tuple[float, float]:
    """(the run's wall time inside the app, the app's start-up until the run began); each
    key's answer times go into ``latencies``, keys never answered into ``missed``; the keys
    start at ``TYPED[first]`` (each round at another, so that every key is pressed), and
    with ``first`` None no key is pressed: the run is only watched."""
    (TMP / "a.json").unlink(missing_ok=True)  # a trace file holds one run
    app = ProbeApp.live(flow(n), {}, TMP / "a.json")
    t = time.perf_counter()
    async with app.run_test(size=(140, 40)) as pilot:
        i = first or 0
        while first is None and (not app.runs or app.runs[-1].running):
            await asyncio.sleep(0.01)
        while not app.runs or app.runs[-1].running:
            key, char = key_of(TYPED[i % len(TYPED)])
            sent = time.perf_counter()
            count = len(app.answered)
            app.post_message(events.Key(key, char))
            while len(app.answered) == count and time.perf_counter() - sent < 2:
                await asyncio.sleep(0.001)
            during_run = app.runs[-1].running and app.model.events
            if len(app.answered) > count and during_run:
                latencies.setdefault(key, []).append(app.answered[-1] - sent)
                i += 1
            elif during_run:
                missed.append(key)
                i += 1
            await asyncio.sleep(0.01)
        for _ in range(100):  # the events that arrived last are shown within a few ticks
            await pilot.pause(0.1)
            if app.model.latest["work"].items.done == n:
                break
        assert app.model.latest["work"].items.done == n, "the app missed items"
        start, end = app.runs[-1].wall
    return end - start, start - t


def main() -> None:
    # as on a user's machine: byte-code cached, for `pflow-tui run` and the app's worker alike
    os.environ.pop("PYTHONDONTWRITEBYTECODE", None)
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--items", type=int, default=10_000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--presses", type=int, default=300,
                        help="runs with keys go on until this many presses (a p99 needs 100s)")
    args = parser.parse_args()
    n = args.items
    headless(200)  # warm imports
    best_headless = best_app = best_keyed = startup = float("inf")
    latencies: dict[str, list[float]] = {}
    missed: list[str] = []
    for r in range(args.rounds):
        best_headless = min(best_headless, headless(n))
        run_time, started_after = asyncio.run(in_app(n, {}, []))
        best_app = min(best_app, run_time)
        startup = min(startup, started_after)
        keyed, _ = asyncio.run(in_app(n, latencies, missed, first=r * 4 % len(TYPED)))
        best_keyed = min(best_keyed, keyed)
    keyed_runs = args.rounds
    while sum(map(len, latencies.values())) < args.presses:
        asyncio.run(in_app(n, latencies, missed, first=keyed_runs * 4 % len(TYPED)))
        keyed_runs += 1
    print(f"{n:,}-item parallel batch (echo, max_concurrent 20), best of {args.rounds}")
    print(f"  headless `pflow-tui run`            {best_headless:.3f} s")
    print(f"  in the app (Pilot), worker process  {best_app:.3f} s   ratio {best_app / best_headless:.2f}"
          "  (target <= 1.2)")
    print(f"  the same, keys pressed back to back {best_keyed:.3f} s   ratio "
          f"{best_keyed / best_headless:.2f}")
    print(f"  (the app's own start-up before the run began: {startup:.3f} s, not counted)")
    every = sorted(x * 1000 for xs in latencies.values() for x in xs)
    print(f"  every key answered    p50 {statistics.median(every):.1f} ms  p99 {p99(every):.1f} ms  "
          f"max {every[-1]:.1f} ms  over {len(every)} presses during {keyed_runs} runs  (target p99 <= 50)")
    for key, xs in sorted(latencies.items(), key=lambda kv: -p99(sorted(kv[1]))):
        ms = sorted(x * 1000 for x in xs)
        print(f"    {key:<22} p50 {statistics.median(ms):5.1f} ms  p99 {p99(ms):5.1f} ms  "
              f"max {ms[-1]:5.1f} ms  ({len(ms)})")
    if missed:
        print(f"  never answered: {', '.join(sorted(set(missed)))} ({len(missed)} presses)")


def p99(sorted_ms: list[float]) -> float:
    """The 99th percentile (nearest rank) of sorted values."""
    return sorted_ms[min(len(sorted_ms) - 1, max(0, round(0.99 * len(sorted_ms)) - 1))]


if __name__ == "__main__":
    main()
