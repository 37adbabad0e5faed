"""Batch items on a Dask cluster: pflow-tui (``"executor": "cluster"``) vs a bare ``client.map``.

    python bench/bench_cluster.py [--sleep-items 2000] [--sleep 0.02] [--items 100000]
                                  [--workers 2] [--rounds 1]

One LocalCluster of ``--workers`` worker processes (one thread each) serves both sides, in
one run, interleaved (bare first, then pflow-tui, ``--rounds`` times; the best of each is
kept, the least disturbed by a shared machine):

1. ``--sleep-items`` items that each sleep ``--sleep`` s: a ``code`` node (``time.sleep``)
   in a parallel batch on the cluster, vs ``client.map`` of a function that sleeps as long,
   gathered. Target (issue 15): pflow-tui <= 1.2 x bare for 2,000 items of 20 ms on 2
   workers.
2. ``--items`` trivial items (``result = x``): the per-item cost of each side, whole runs
   divided by the items. Target: pflow-tui <= 1.5 x bare Dask per item.
3. Memory (run first): the peak RSS of a whole run (a fresh process each) of ``--memory-items`` and of
   5 x as many trivial items read from a JSON-lines file with ``batch_size`` 1000, on the
   same cluster: with ``batch_size`` the run's memory does not grow with the items (target:
   the bigger run's peak within 1.2 x the smaller's).

A part given 0 items (``--sleep-items 0``, ``--items 0``, ``--memory-items 0``) is skipped.

The pflow-tui times are whole runs (``run_flow``: compile, every event, the trace file on
disk, the node's code compiled and run per item); the bare side runs a plain function and
keeps nothing but the results. The cluster is started before the timings (``--cluster
local`` in a real run starts its own, ~1 s, not counted here).
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from distributed import Client, LocalCluster

from pflow_tui.engine.ir.load import build_flow
from pflow_tui.engine.run.executor import run_flow

TMP = Path(tempfile.mkdtemp(prefix="pflow-bench-cluster-"))
_runs = 0


def sleeper(x: int, seconds: float) -> int:
    time.sleep(seconds)
    return x


def same(x: int) -> int:
    return x


def flow(n: int, code: str, max_concurrent: int, **inputs: Any) -> dict[str, Any]:
    return {"ir_version": "0.1.0", "nodes": [
        {"id": "work", "type": "code", "executor": "cluster",
         "batch": {"items": list(range(n)), "parallel": True, "max_concurrent": max_concurrent},
         "params": {"inputs": {"x": "${item}", **inputs}, "code": code}}]}


def pflow_run(doc: dict[str, Any], address: str) -> float:
    global _runs
    _runs += 1
    spec = build_flow(doc, base_dir=TMP)
    t = time.perf_counter()
    result = run_flow(spec, {}, trace=TMP / f"run{_runs}.json", cluster=address)
    took = time.perf_counter() - t
    work = result.store["work"]
    assert result.status == "ok" and work["success_count"] == work["count"], result.error
    return took


def bare_map(client: Client, fn: Any, n: int, *args: Any) -> float:
    t = time.perf_counter()
    futures = client.map(fn, range(n), *[[a] * n for a in args], pure=False)
    results = client.gather(futures)
    took = time.perf_counter() - t
    assert len(results) == n
    del futures
    return took


def peak_rss_mb(items: int, address: str) -> float:
    """The peak RSS (MB) of a fresh process running ``items`` trivial items from a
    JSON-lines file on the cluster with ``batch_size`` 1000 (part 3)."""
    source = TMP / f"items{items}.jsonl"
    source.write_text("".join(f"{i}\n" for i in range(items)))
    doc = {"ir_version": "0.1.0", "nodes": [
        {"id": "work", "type": "code", "executor": "cluster",
         "batch": {"items": {"jsonl_file": str(source)}, "parallel": True, "max_concurrent": 100,
                   "batch_size": 1000},
         "params": {"inputs": {"x": "${item}"}, "code": "x: int\nresult: int = x"}}]}
    out = subprocess.run([sys.executable, __file__, "--memory-child", json.dumps(doc), address],
                         capture_output=True, text=True, check=True)
    return float(out.stdout.split()[-1])


def memory_child(doc: str, address: str) -> None:
    """Part 3's process: one run, then its peak RSS in MB on stdout."""
    pflow_run(json.loads(doc), address)  # (a trace in this process's own TMP)
    print(f"{peak_mb():.1f}")


def peak_mb() -> float:
    """This process's peak RSS in MB: VmHWM on Linux (ru_maxrss there keeps the peak of the
    process this one was forked from: the bench's, which holds 100k futures)."""
    try:
        status = Path("/proc/self/status").read_text()
    except OSError:
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # (macOS: bytes, else KB)
        return peak / 1024 / (1024 if sys.platform == "darwin" else 1)
    kb = next(line.split()[1] for line in status.splitlines() if line.startswith("VmHWM:"))
    return int(kb) / 1024


def main() -> None:
    if len(sys.argv) == 4 and sys.argv[1] == "--memory-child":
        memory_child(sys.argv[2], sys.argv[3])
        return
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sleep-items", type=int, default=2000)
    parser.add_argument("--sleep", type=float, default=0.02)
    parser.add_argument("--items", type=int, default=100_000, help="trivial items (part 2)")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--max-concurrent", type=int, default=100,
                        help="the batch's max_concurrent: items in flight on the cluster (at most 100)")
    parser.add_argument("--rounds", type=int, default=1)
    parser.add_argument("--memory-items", type=int, default=20_000,
                        help="part 3: a run of this many items and one of 5 x as many")
    opts = parser.parse_args()

    with LocalCluster(n_workers=opts.workers, threads_per_worker=1, processes=True,
                      dashboard_address=":0") as cluster, Client(cluster) as client:
        address = cluster.scheduler_address
        client.gather(client.map(same, range(100)))  # workers warm: imports, connections
        pflow_run(flow(20, "x: int\nresult: int = x", 8), address)
        if opts.memory_items:  # first: fresh processes, forked before this one has grown
            memory(opts.memory_items, address)
        if opts.sleep_items:
            sleeping(client, address, opts)
        if opts.items:
            trivial(client, address, opts)


def memory(small: int, address: str) -> None:
    big = 5 * small
    rss_small, rss_big = peak_rss_mb(small, address), peak_rss_mb(big, address)
    print("peak RSS of a whole run, batch_size 1000 (a fresh process each):")
    print(f"  {small:>9} items   {rss_small:7.1f} MB")
    print(f"  {big:>9} items   {rss_big:7.1f} MB   ratio {rss_big / rss_small:.3f}  "
          "(target <= 1.2: bounded)")


def sleeping(client: Client, address: str, opts: argparse.Namespace) -> None:
    doc = flow(opts.sleep_items, "x: int\ns: float\nimport time\ntime.sleep(s)\nresult: int = x",
               opts.max_concurrent, s=opts.sleep)
    bare, ours = [], []
    for _ in range(opts.rounds):
        bare.append(bare_map(client, sleeper, opts.sleep_items, opts.sleep))
        ours.append(pflow_run(doc, address))
    ideal = opts.sleep_items * opts.sleep / opts.workers
    b, o = min(bare), min(ours)
    print(f"{opts.sleep_items} items of {opts.sleep * 1000:g} ms on {opts.workers} workers "
          f"(ideal {ideal:.2f} s):")
    print(f"  bare client.map   {b:7.2f} s")
    print(f"  pflow-tui         {o:7.2f} s   ratio {o / b:.3f} x bare  (target <= 1.2)")


def trivial(client: Client, address: str, opts: argparse.Namespace) -> None:
    doc = flow(opts.items, "x: int\nresult: int = x", opts.max_concurrent)
    bare, ours = [], []
    for _ in range(opts.rounds):
        bare.append(bare_map(client, same, opts.items))
        ours.append(pflow_run(doc, address))
    b, o = min(bare) / opts.items, min(ours) / opts.items
    print(f"{opts.items} trivial items on {opts.workers} workers, per item:")
    print(f"  bare client.map   {b * 1e3:7.3f} ms")
    print(f"  pflow-tui         {o * 1e3:7.3f} ms   ratio {o / b:.3f} x bare  (target <= 1.5)")

if __name__ == "__main__":
    main()
