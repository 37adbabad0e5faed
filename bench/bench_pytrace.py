"""Tracing Python PocketFlow programs: traced vs raw PocketFlow vs the ideal, side by side.

    python bench/bench_pytrace.py [--quick]

Each case runs its variants interleaved, several rounds, and keeps the best time of each
(the least disturbed by a noisy machine); the ratios are what to read.

- a sync BatchNode of 10,000 trivial items: the tracer's cost per item (events and the
  trace file), against the same program untraced;
- an AsyncParallelBatchNode of 200 items that each sleep 50 ms: traced vs the ideal 50 ms;
- a loop of 1,000 node visits over a store of 50 keys of 200-element lists: the cost of
  finding the store's changes at every node boundary.
"""

from __future__ import annotations

import argparse
import asyncio
import tempfile
from collections.abc import Callable
from pathlib import Path

from bench_engine import best_of  # the scripts sit side by side in bench/
from pocketflow import AsyncFlow, AsyncParallelBatchNode, BatchNode, Flow, Node

import pflow_tui

TMP = Path(tempfile.mkdtemp(prefix="pflow-bench-pytrace-"))


def traced(run: Callable[[], object]) -> Callable[[], object]:
    def go() -> object:
        with pflow_tui.trace(TMP / "bench.json"):
            return run()

    return go


def sync_batch(n: int) -> Callable[[], object]:
    class Double(BatchNode):
        def prep(self, shared):
            return list(range(n))

        def exec(self, x):
            return 2 * x

        def post(self, shared, prep_res, exec_res):
            shared["out"] = len(exec_res)

    return lambda: Flow(start=Double()).run({})


def parallel_sleep(n: int, delay: float) -> Callable[[], object]:
    class Sleep(AsyncParallelBatchNode):
        async def prep_async(self, shared):
            return list(range(n))

        async def exec_async(self, x):
            await asyncio.sleep(delay)
            return x

    return lambda: asyncio.run(AsyncFlow(start=Sleep()).run_async({}))


def store_loop(visits: int, keys: int, size: int) -> Callable[[], object]:
    class Step(Node):
        def post(self, shared, prep_res, exec_res):
            shared["i"] += 1
            shared[f"k{shared['i'] % keys}"][0] = shared["i"]  # one key changes in place
            return "again" if shared["i"] < visits else "stop"

    def run() -> object:
        step = Step()
        step - "again" >> step
        step - "stop" >> Node()
        shared = {"i": 0, **{f"k{k}": list(range(size)) for k in range(keys)}}
        return Flow(start=step).run(shared)

    return run


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer rounds (a smoke run)")
    rounds = 2 if parser.parse_args().quick else 5

    n = 10_000
    raw, ours = sync_batch(n), traced(sync_batch(n))
    best = best_of(rounds, {"raw": raw, "traced": ours})
    per_item = (best["traced"] - best["raw"]) / n * 1e6
    print(f"sync BatchNode, {n:,} items: raw {best['raw'] * 1e3:.1f} ms, traced "
          f"{best['traced'] * 1e3:.1f} ms  ({best['traced'] / best['raw']:.1f}x raw; "
          f"+{per_item:.1f} us/item for 2 events each, written to the trace)")

    n, delay = 200, 0.05
    best = best_of(rounds, {"raw": parallel_sleep(n, delay), "traced": traced(parallel_sleep(n, delay))})
    print(f"AsyncParallelBatchNode, {n} items x {delay * 1e3:.0f} ms: raw {best['raw']:.3f} s, "
          f"traced {best['traced']:.3f} s  ({best['traced'] / delay:.3f}x the ideal {delay:.2f} s, "
          f"{best['traced'] / best['raw']:.3f}x raw)")

    visits, keys, size = 1000, 50, 200
    best = best_of(rounds, {"raw": store_loop(visits, keys, size),
                            "traced": traced(store_loop(visits, keys, size))})
    per_visit = (best["traced"] - best["raw"]) / visits * 1e6
    print(f"{visits:,} node visits, store of {keys} keys x {size}-element lists: raw "
          f"{best['raw'] * 1e3:.1f} ms, traced {best['traced'] * 1e3:.1f} ms  "
          f"(+{per_visit:.0f} us per visit: the store compared at each boundary)")


if __name__ == "__main__":
    main()
