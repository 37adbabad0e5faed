"""Engine benchmark: ours vs raw PocketFlow vs the ideal, measured side by side in one run.

    python bench/bench_engine.py [--quick]
    python bench/bench_engine.py --against REV [--quick]   (REV: a commit, e.g. a193b3d)

Each case runs its variants interleaved, several rounds, and keeps the best time of each
(the least disturbed by a noisy machine); the ratios are what to read. Targets (issue 2):
sequential batch <= 10 us/item with full events and trace; parallel batch at
max_concurrent 20 <= 30 us/item; 200 offline-llm items of 50 ms at max_concurrent 20
<= 1.05 x the ideal 0.5 s; `pflow-tui run` of a one-node flow <= 0.5 s; a 100,000-item
sequential batch in < 500 MB peak RSS.

``--against REV`` measures the per-item cases of commit REV and of the working tree side by
side instead: REV is checked out in a temporary ``git worktree``, and each round runs one
fresh process per tree, alternating (old, new, old, new ...); the best of each is kept.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import pocketflow

from pflow_tui.engine.ir.load import build_flow
from pflow_tui.engine.nodes.echo import echo
from pflow_tui.engine.run.executor import run_flow

TMP = Path(tempfile.mkdtemp(prefix="pflow-bench-"))


def best_of(rounds: int, fns: dict[str, Callable[[], object]]) -> dict[str, float]:
    """Run the variants interleaved ``rounds`` times; the best wall time of each."""
    best = dict.fromkeys(fns, float("inf"))
    for _ in range(rounds):
        for name, fn in fns.items():
            t = time.perf_counter()
            fn()
            best[name] = min(best[name], time.perf_counter() - t)
    return best


def ours(doc: dict) -> Callable[[], object]:
    spec = build_flow(doc)

    def go() -> object:
        (TMP / "bench.json").unlink(missing_ok=True)  # a trace file holds one run
        result = run_flow(spec, {}, trace=TMP / "bench.json")
        assert result.status == "ok", result.error
        return result

    return go


def raw_batch(n: int) -> Callable[[], object]:
    class Echo(pocketflow.BatchNode):
        def prep(self, shared):
            return range(n)

        def exec(self, i):
            return echo({"message": f"item {i}"}, None)

        def post(self, shared, prep_res, exec_res):
            shared["e"] = exec_res

    return lambda: pocketflow.Flow(Echo()).run({})


def raw_parallel(n: int, limit: int) -> Callable[[], object]:
    class Echo(pocketflow.AsyncParallelBatchNode):
        async def prep_async(self, shared):
            self.sem = asyncio.Semaphore(limit)
            return range(n)

        async def exec_async(self, i):
            async with self.sem:
                return echo({"message": f"item {i}"}, None)

        async def post_async(self, shared, prep_res, exec_res):
            shared["e"] = exec_res

    return lambda: asyncio.run(pocketflow.AsyncFlow(Echo()).run_async({}))


def batch_doc(n: int, parallel: bool, node: dict | None = None) -> dict:
    node = node or {"type": "echo", "params": {"message": "item ${item}"}}
    return {"name": "bench", "nodes": [{"id": "e", **node, "batch": {
        "items": list(range(n)), "parallel": parallel, "max_concurrent": 20}}]}


def case_sequential(n: int, rounds: int) -> None:
    t = best_of(rounds, {"ours": ours(batch_doc(n, False)), "pocketflow": raw_batch(n)})
    us = {k: v / n * 1e6 for k, v in t.items()}
    print(f"sequential batch, {n:,} echo items, full events + trace")
    print(f"  ours            {us['ours']:7.2f} us/item   (target <= 10)")
    ratio = us["ours"] / us["pocketflow"]
    print(f"  raw BatchNode   {us['pocketflow']:7.2f} us/item   ratio ours/raw {ratio:.1f}x")


def case_parallel(n: int, rounds: int) -> None:
    t = best_of(rounds, {"ours": ours(batch_doc(n, True)), "pocketflow": raw_parallel(n, 20)})
    us = {k: v / n * 1e6 for k, v in t.items()}
    print(f"parallel batch, {n:,} echo items, max_concurrent 20, full events + trace")
    print(f"  ours                          {us['ours']:7.2f} us/item   (target <= 30)")
    print(f"  raw AsyncParallelBatchNode+sem {us['pocketflow']:6.2f} us/item   "
          f"ratio ours/raw {us['ours'] / us['pocketflow']:.1f}x")


def case_llm(rounds: int) -> None:
    node = {"type": "llm", "params": {"prompt": "classify ${item}", "model": "offline", "latency": 0.05}}
    doc = batch_doc(200, True, node)

    async def ideal_sleeps() -> None:
        sem = asyncio.Semaphore(20)

        async def one() -> None:
            async with sem:
                await asyncio.sleep(0.05)

        await asyncio.gather(*(one() for _ in range(200)))

    t = best_of(rounds, {"ours": ours(doc), "asyncio": lambda: asyncio.run(ideal_sleeps())})
    print("200 offline-llm items, latency 50 ms, max_concurrent 20 (ideal 0.500 s)")
    print(f"  ours            {t['ours']:.3f} s   ratio to ideal {t['ours'] / 0.5:.3f}  (target <= 1.05)")
    print(f"  bare asyncio    {t['asyncio']:.3f} s   ratio to ideal {t['asyncio'] / 0.5:.3f}")


def case_cli(rounds: int) -> None:
    flow = TMP / "one.json"
    flow.write_text(json.dumps({"nodes": [{"id": "hi", "type": "echo", "params": {"message": "hi"}}]}))
    cmd = [sys.executable, "-m", "pflow_tui", "run", str(flow), "--trace", str(TMP / "one.trace.json")]

    # as on a user's machine: byte-code cached (this sandbox sets PYTHONDONTWRITEBYTECODE)
    env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    subprocess.run(cmd, check=True, capture_output=True, env=env)  # writes the .pyc files
    (TMP / "one.trace.json").unlink()

    def cli() -> None:
        (TMP / "one.trace.json").unlink(missing_ok=True)  # a trace file holds one run
        subprocess.run(cmd, check=True, capture_output=True, env=env)

    def bare() -> None:
        subprocess.run([sys.executable, "-c", "pass"], check=True)

    t = best_of(rounds, {"cli": cli, "python": bare})
    print("`pflow-tui run` of a one-node flow, wall time with start-up")
    print(f"  pflow-tui run   {t['cli']:.3f} s   (target <= 0.5)")
    print(f"  bare python     {t['python']:.3f} s")


MEMORY_CHILD = """
import resource, sys
from pflow_tui.engine.ir.load import build_flow
from pflow_tui.engine.run.executor import run_flow
n = int(sys.argv[1])
spec = build_flow({"name": "mem", "nodes": [{"id": "e", "type": "echo",
    "params": {"message": "item ${item}"}, "batch": {"items": list(range(n))}}]})
r = run_flow(spec, {}, trace=sys.argv[2])
assert r.status == "ok"
print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)
"""


def case_memory(n: int) -> None:
    out = subprocess.run([sys.executable, "-c", MEMORY_CHILD, str(n), str(TMP / "mem.json")],
                         check=True, capture_output=True, text=True)
    rss_mb = int(out.stdout.strip()) / 1024
    size_mb = (TMP / "mem.json").stat().st_size / 1e6
    print(f"peak RSS of a {n:,}-item sequential batch run headless: {rss_mb:.0f} MB "
          f"(target < 500); trace {size_mb:.0f} MB")


# one round of the per-item cases in the tree it runs in (old module paths too)
AGAINST_CHILD = """
import json, sys, tempfile, time
from pathlib import Path
try:
    from pflow_tui.engine.ir.load import build_flow
    from pflow_tui.engine.run.executor import run_flow
except ImportError:  # before the engine/ir/ and engine/run/ packages
    from pflow_tui.engine.ir import build_flow
    from pflow_tui.engine.executor import run_flow
n, tmp = int(sys.argv[1]), Path(tempfile.mkdtemp(prefix="pflow-bench-against-"))
def doc(parallel):
    return {"name": "bench", "nodes": [{"id": "e", "type": "echo",
            "params": {"message": "item ${item}"},
            "batch": {"items": list(range(n)), "parallel": parallel, "max_concurrent": 20}}]}
run_flow(build_flow(doc(False)), {}, trace=tmp / "warm.json")
out = {}
for name, parallel in (("sequential", False), ("parallel", True)):
    spec = build_flow(doc(parallel))
    t = time.perf_counter()
    r = run_flow(spec, {}, trace=tmp / (name + ".json"))
    out[name] = (time.perf_counter() - t) / n * 1e6
    assert r.status == "ok", r.error
print(json.dumps(out))
"""


def against(rev: str, n: int, rounds: int) -> None:
    """The per-item cases of commit ``rev`` and of the working tree, side by side."""
    here = Path(__file__).resolve().parent.parent
    old = Path(tempfile.mkdtemp(prefix="pflow-bench-rev-")) / "tree"
    subprocess.run(["git", "-C", str(here), "worktree", "add", "--detach", "--quiet", str(old), rev],
                   check=True)
    try:
        sha = subprocess.run(["git", "-C", str(old), "rev-parse", "--short", "HEAD"], check=True,
                             capture_output=True, text=True).stdout.strip()
        trees = {f"old {sha}": old, "new (working tree)": here}
        best: dict[str, dict[str, float]] = {k: {} for k in trees}
        for _ in range(rounds):
            for name, tree in trees.items():  # alternating, a fresh process each time
                env = {**os.environ, "PYTHONPATH": str(tree)}
                out = subprocess.run([sys.executable, "-c", AGAINST_CHILD, str(n)], cwd=tree, env=env,
                                     check=True, capture_output=True, text=True)
                for case, us in json.loads(out.stdout).items():
                    best[name][case] = min(best[name].get(case, float("inf")), us)
        print(f"per-item cost, {n:,} echo items, full events + trace; best of {rounds} "
              "alternating rounds")
        print(f"  {'':22}{'sequential':>14}{'parallel x20':>16}")
        for name in trees:
            b = best[name]
            print(f"  {name:22}{b['sequential']:>9.2f} us/it{b['parallel']:>11.2f} us/it")
        o, w = best[f"old {sha}"], best["new (working tree)"]
        print(f"  {'new / old':22}{w['sequential'] / o['sequential']:>13.3f}x"
              f"{w['parallel'] / o['parallel']:>15.3f}x")
    finally:
        subprocess.run(["git", "-C", str(here), "worktree", "remove", "--force", str(old)], check=False)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer rounds and items")
    parser.add_argument("--against", metavar="REV",
                        help="compare the per-item cases with commit REV, side by side")
    args = parser.parse_args()
    rounds = 2 if args.quick else 5
    n = 2_000 if args.quick else 10_000
    if args.against:
        against(args.against, n, rounds * 2)
        return
    run_flow(build_flow(batch_doc(10, False)), {}, trace=TMP / "warm.json")  # warm imports
    case_sequential(n, rounds)
    case_parallel(n, rounds)
    case_llm(max(2, rounds // 2))
    case_cli(rounds)
    case_memory(10_000 if args.quick else 100_000)


if __name__ == "__main__":
    main()
