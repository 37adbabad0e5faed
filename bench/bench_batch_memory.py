"""Bounded-memory batches (batch.batch_size): peak RSS as the item count grows, and what
the window costs in time, measured side by side in one run.

    python bench/bench_batch_memory.py [--quick] [--rounds N]

1. Memory. A parallel batch (max_concurrent 10) of echo items read from a JSON-lines
   file, run headless exactly as a user runs it (`python -m pflow_tui run FLOW --trace
   T`, trace written), each size in a fresh process; the peak RSS is the child's
   ru_maxrss (os.wait4). With batch_size 1,000 at 100k, 250k, 500k and 1M items, and
   without batch_size at 100k for comparison. Target (issue 7): flat as the count grows.
2. Re-run. `pflow-tui rerun` of such a batch whose every 100th item failed, at the
   smallest and largest size (fresh processes, ru_maxrss): it restores 99% of the items
   from the recorded trace, read as a stream, and runs the rest.
3. The window. With batch_size, a parallel batch starts item i only while
   i < (the oldest item still running or waiting to be written) + batch_size, and
   refills as items end. Compared, for the same latencies, with the ideal (no bound:
   a semaphore of max_concurrent) and with strict chunks (batch_size items, wait for all,
   next chunk), both in bare asyncio.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from pflow_tui.engine.ir.load import build_flow
from pflow_tui.engine.run.executor import run_flow

TMP = Path(tempfile.mkdtemp(prefix="pflow-bench-batch-"))
ENV = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}  # as a user's machine


# --- 1. memory -----------------------------------------------------------------------------------

def rows_file(n: int) -> Path:
    path = TMP / f"rows-{n}.jsonl"
    if not path.exists():
        with open(path, "w") as f:
            for i in range(n):
                f.write(f'{{"id": {i}, "name": "n{i}"}}\n')
    return path


def flow_file(n: int, batch_size: int | None) -> Path:
    batch = {"items": {"jsonl_file": rows_file(n).name}, "as": "row", "parallel": True,
             "max_concurrent": 10}
    if batch_size is not None:
        batch["batch_size"] = batch_size
    doc = {"name": "mem", "nodes": [
        {"id": "each", "type": "echo", "params": {"message": "row ${row.id}: ${row.name}"},
         "batch": batch},
        {"id": "done", "type": "echo",
         "params": {"message": "${each.success_count} ok, last ${each.iteration_" + str(n - 1)
                    + ".echo}"}}],
        "edges": [{"from": "each", "to": "done"}]}
    path = TMP / f"flow-{n}-{batch_size}.json"
    path.write_text(json.dumps(doc))
    return path


def child(cmd: list[str]) -> tuple[float, float]:
    """(seconds, peak RSS in MB: the child's ru_maxrss) of a command that must succeed."""
    with open(TMP / "stderr.txt", "wb") as err:
        t = time.perf_counter()
        proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=err, env=ENV)
        _, status, usage = os.wait4(proc.pid, 0)
        seconds = time.perf_counter() - t
        proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode != 0:
        raise SystemExit(f"{' '.join(cmd[2:])} failed ({proc.returncode}): "
                         f"{(TMP / 'stderr.txt').read_text()[-2000:]}")
    return seconds, usage.ru_maxrss / 1024


def run_headless(n: int, batch_size: int | None) -> tuple[float, float, float]:
    """(seconds, peak RSS in MB, trace + results MB) of one `pflow-tui run` in a fresh process."""
    flow = flow_file(n, batch_size)
    trace = TMP / f"trace-{n}-{batch_size}.json"
    seconds, rss = child([sys.executable, "-m", "pflow_tui", "run", str(flow), "--trace", str(trace)])
    results = trace.with_suffix(".results")
    disk = trace.stat().st_size + sum(p.stat().st_size for p in results.glob("*")) if results.exists() \
        else trace.stat().st_size
    trace.unlink()
    shutil.rmtree(results, ignore_errors=True)
    return seconds, rss, disk / 1e6


def case_memory(sizes: list[int], rounds: int) -> None:
    runs = [(n, 1000) for n in sizes] + [(sizes[0], None)]
    for n, _ in runs:
        rows_file(n)
    subprocess.run([sys.executable, "-m", "pflow_tui", "run", str(flow_file(10, 1000)), "--trace",
                    str(TMP / "warm.json")], check=True, capture_output=True, env=ENV)  # .pyc files
    best: dict[tuple[int, int | None], tuple[float, float, float]] = {}
    for _ in range(rounds):  # interleaved, so that a noisy moment hits every size alike
        for key in runs:
            s, rss, disk = run_headless(*key)
            old = best.get(key)
            best[key] = (min(s, old[0]), min(rss, old[1]), disk) if old else (s, rss, disk)
    print(f"1. peak RSS of `pflow-tui run` (headless, trace written), parallel echo batch from a "
          f"JSON-lines file, max_concurrent 10, best of {rounds}")
    print(f"   {'items':>9}  {'batch_size':>10}  {'peak RSS':>9}  {'us/item':>8}  {'trace+results':>13}")
    for (n, size), (s, rss, disk) in best.items():
        print(f"   {n:>9,}  {size if size else 'unset':>10}  {rss:>6.0f} MB  {s / n * 1e6:>8.1f}  "
              f"{disk:>10.0f} MB")
    small, big = best[(sizes[0], 1000)], best[(sizes[-1], 1000)]
    unset = best[(sizes[0], None)]
    print(f"   RSS {sizes[-1]:,} / {sizes[0]:,} items with batch_size 1000: {big[1] / small[1]:.2f}x "
          f"for {sizes[-1] / sizes[0]:.0f}x the items (target: flat, ~1.0x)")
    print(f"   RSS at {sizes[0]:,} items, batch_size unset / 1000: {unset[1] / small[1]:.2f}x; "
          f"time per item unset / 1000: {unset[0] / small[0]:.2f}x")


# --- 2. re-run ----------------------------------------------------------------------------------

def case_rerun(sizes: list[int]) -> None:
    """Peak RSS of `pflow-tui rerun` of a chunked batch whose every 100th item failed."""
    print("2. peak RSS of `pflow-tui rerun` of that batch (batch_size 1000) with every 100th item "
          "failed: 99% restored from the trace, 1% run again")
    for n in sizes:
        rows = TMP / f"rerun-{n}.jsonl"
        with open(rows, "w") as f:  # a number where echo wants text: the item fails, every time
            for i in range(n):
                f.write(f'{{"id": {i}, "msg": {i if i % 100 == 0 else json.dumps(f"n{i}")}}}\n')
        flow = TMP / f"rerun-{n}.json"
        flow.write_text(json.dumps({"name": "again", "nodes": [
            {"id": "each", "type": "echo", "params": {"message": "${row.msg}"}, "batch": {
                "items": {"jsonl_file": rows.name}, "as": "row", "parallel": True,
                "max_concurrent": 10, "batch_size": 1000, "error_handling": "continue"}}]}))
        first, second = TMP / f"rerun-{n}-1.json", TMP / f"rerun-{n}-2.json"
        subprocess.run([sys.executable, "-m", "pflow_tui", "run", str(flow), "--trace", str(first)],
                       capture_output=True, env=ENV)  # exit code 0: the failures are "continue"d
        s, rss = child([sys.executable, "-m", "pflow_tui", "rerun", str(first), "--trace", str(second)])
        print(f"   {n:>9,} items: {rss:4.0f} MB, {s / n * 1e6:5.1f} us/item")
        for p in (first, second, rows):
            p.unlink()
        for p in (first, second):
            shutil.rmtree(p.with_suffix(".results"), ignore_errors=True)


# --- 3. the window -------------------------------------------------------------------------------

async def ideal(latencies: list[float], limit: int) -> None:
    sem = asyncio.Semaphore(limit)

    async def one(s: float) -> None:
        async with sem:
            await asyncio.sleep(s)

    await asyncio.gather(*(one(s) for s in latencies))


async def strict_chunks(latencies: list[float], limit: int, size: int) -> None:
    for a in range(0, len(latencies), size):
        await ideal(latencies[a: a + size], limit)


def ours(latencies: list[float], limit: int, size: int) -> float:
    rows = TMP / "latencies.jsonl"
    rows.write_text("".join(f'{{"s": {s}}}\n' for s in latencies))
    spec = build_flow({"name": "win", "nodes": [{"id": "ask", "type": "llm", "params": {
        "model": "offline", "prompt": "${item.s}", "latency": "${item.s}"}, "batch": {
        "items": {"jsonl_file": str(rows)}, "parallel": True, "max_concurrent": limit,
        "batch_size": size}}]})
    (TMP / "win.json").unlink(missing_ok=True)  # a trace file holds one run
    t = time.perf_counter()
    result = run_flow(spec, {}, trace=TMP / "win.json")
    assert result.status == "ok", result.error
    return time.perf_counter() - t


def timed(coro_fn, *args) -> float:
    t = time.perf_counter()
    asyncio.run(coro_fn(*args))
    return time.perf_counter() - t


def case_window(name: str, latencies: list[float], limit: int, sizes: list[int], rounds: int) -> None:
    best: dict[str, float] = {}
    for _ in range(rounds):
        runs = {"ideal": lambda: timed(ideal, latencies, limit)}
        for size in sizes:
            runs[f"ours {size}"] = lambda size=size: ours(latencies, limit, size)
            runs[f"chunks {size}"] = lambda size=size: timed(strict_chunks, latencies, limit, size)
        for key, fn in runs.items():
            best[key] = min(best.get(key, float("inf")), fn())
    work = sum(latencies) / limit
    print(f"   {name}: {len(latencies)} items, max_concurrent {limit}, "
          f"ideal {best['ideal']:.3f} s (work / concurrency {work:.3f} s)")
    for size in sizes:
        o, c = best[f"ours {size}"], best[f"chunks {size}"]
        print(f"     batch_size {size:>3}: window {o:.3f} s = {o / best['ideal']:.2f}x ideal;  "
              f"strict chunks {c:.3f} s = {c / best['ideal']:.2f}x ideal")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="10x fewer items, one round")
    parser.add_argument("--rounds", type=int, default=2, help="rounds (best of N), default 2")
    args = parser.parse_args()
    rounds = 1 if args.quick else args.rounds
    sizes = [10_000, 25_000, 50_000, 100_000] if args.quick else [100_000, 250_000, 500_000, 1_000_000]
    try:
        case_memory(sizes, rounds)
        case_rerun([sizes[0], sizes[-1]])
        rng = random.Random(7)
        print("3. the window (refilled as items end) vs strict chunks, offline llm latencies, best of "
              f"{max(rounds, 3)}")
        jitter = [round(rng.uniform(0.01, 0.05), 4) for _ in range(300)]
        case_window("jitter 10-50 ms", jitter, 10, [10, 20, 50], max(rounds, 3))
        tail = [0.2 if i % 10 == 0 else 0.02 for i in range(200)]
        case_window("every 10th item 200 ms, others 20 ms", tail, 10, [20, 100], max(rounds, 3))
    finally:
        shutil.rmtree(TMP, ignore_errors=True)


if __name__ == "__main__":
    main()
