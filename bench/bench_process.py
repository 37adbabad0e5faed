"""CPU-bound work: a parallel batch in worker processes vs the same batch in threads.

    python bench/bench_process.py [--rounds N] [--items 8] [--seconds 0.2]

A parallel batch of ``--items`` code-node items, each a pure-Python loop of about
``--seconds`` s, runs with ``"executor": "thread"`` and with ``"executor": "process"``,
interleaved, ``--rounds`` times; the best wall time of each is kept (the least disturbed
by a shared machine). Threads share one GIL, so they take about items x seconds; processes
spread the items over the cores (PFLOW_TUI_PROCESSES, default one per core). Target
(issue 7): processes <= 0.6 x threads for 8 items of 0.2 s on 2 cores. The times are whole
runs (``run_flow``: compile, worker start-up, events, trace); the batch node's own
duration is shown beside them, and a control: the same items on a bare
``ProcessPoolExecutor``, which shows how many cores the (shared) machine gives right now.
"""

from __future__ import annotations

import argparse
import math
import os
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

from pflow_tui.engine.ir.load import build_flow
from pflow_tui.engine.nodes.base import RunContext
from pflow_tui.engine.nodes.code import run_code
from pflow_tui.engine.run.executor import run_flow
from pflow_tui.engine.run.pool import pool_size

TMP = Path(tempfile.mkdtemp(prefix="pflow-bench-process-"))
CODE = """\
n: int
total = 0
for i in range(n):
    total += i * i % 7
result: int = total
"""


def one_item(n: int) -> float:
    t = time.perf_counter()
    run_code({"code": CODE, "inputs": {"n": n}}, RunContext("calibrate"))
    return time.perf_counter() - t


def calibrate(seconds: float) -> int:
    """Loop iterations that take about ``seconds`` in the code node, on this machine now
    (the fastest of a few tries: the least disturbed)."""
    n = 100_000
    while one_item(n) < 0.05:
        n *= 4
    for _ in range(2):  # refine at about the target size
        n = max(1, int(n * seconds / min(one_item(n) for _ in range(3))))
    return n


def bare_processes(items: int, n: int, cores: int) -> float:
    """The same items on a bare ``ProcessPoolExecutor`` (no pflow-tui): what this machine's
    cores give right now, the control beside the other two."""
    with ProcessPoolExecutor(cores) as pool:
        t = time.perf_counter()
        list(pool.map(one_item, [n] * items))
        return time.perf_counter() - t


def flow(executor: str, items: int, n: int) -> dict:
    return {"name": f"cpu_{executor}", "nodes": [{
        "id": "burn", "type": "code", "executor": executor,
        "batch": {"items": list(range(items)), "parallel": True, "max_concurrent": items},
        "params": {"inputs": {"n": n}, "code": CODE}}]}


def timed(executor: str, items: int, n: int) -> tuple[float, float]:
    """(wall time of the whole run, the batch node's duration from its events)."""
    spec = build_flow(flow(executor, items, n))
    events: list[dict] = []
    (TMP / f"{executor}.json").unlink(missing_ok=True)  # a trace file holds one run
    t = time.perf_counter()
    result = run_flow(spec, {}, trace=TMP / f"{executor}.json", sinks=[events.append])
    wall = time.perf_counter() - t
    assert result.status == "ok", result.error
    node = next(e for e in events if e["kind"] == "node.end" and e["node"] == "burn")
    return wall, node["duration"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--items", type=int, default=8)
    parser.add_argument("--seconds", type=float, default=0.2, help="CPU time of one item")
    args = parser.parse_args()
    # as on a user's machine: worker processes import byte-code cached modules
    os.environ.pop("PYTHONDONTWRITEBYTECODE", None)
    n = calibrate(args.seconds)
    timed("process", 2, 1000)  # compiles the modules a worker imports (.pyc), as an installed copy has
    best = {"thread": (float("inf"), 0.0), "process": (float("inf"), 0.0)}
    item = bare = float("inf")  # one item alone, and the control, measured in the same rounds
    cores = pool_size()
    for _ in range(args.rounds):
        for executor in best:
            wall, node = timed(executor, args.items, n)
            if wall < best[executor][0]:
                best[executor] = (wall, node)
        item = min(item, one_item(n))
        bare = min(bare, bare_processes(args.items, n, cores))
    print(f"parallel batch of {args.items} code items of {item:.3f} s of pure-Python CPU each (alone) "
          f"({n:,} loop steps), best of {args.rounds}; {cores} worker processes, "
          f"{os.cpu_count()} cores")
    print(f"  {'':10} {'run':>8} {'batch node':>11}")
    for executor, (wall, node) in best.items():
        print(f"  {executor + 'es' if executor == 'process' else executor + 's':10} {wall:7.3f}s "
              f"{node:10.3f}s")
    ideal = math.ceil(args.items / min(cores, args.items)) * item
    print(f"  ratio processes/threads: {best['process'][0] / best['thread'][0]:.2f} (run), "
          f"{best['process'][1] / best['thread'][1]:.2f} (batch node)   (target <= 0.6)")
    print(f"  ideal on {cores} cores: {ideal:.3f} s; processes/ideal {best['process'][0] / ideal:.2f}")
    print(f"  control, a bare ProcessPoolExecutor({cores}) on the same items: {bare:.3f} s, "
          f"{bare / best['thread'][0]:.2f} x threads (what the machine allows now)")


if __name__ == "__main__":
    main()
