"""The hardened reader's cost: open a big trace's index, scan it as replay does, read it all.

    python bench/bench_reader.py [--items N] [--trace PATH] [--repeat R]

Makes (or reuses) the trace of bench_replay.py (a parallel batch of N items: 2N events)
and times, best of R: ``TraceIndex(path)`` (open), ``summaries`` over every event in
chunks of 20,000 (what the app's feed does), iterating every event in full (export's
read) and ``read_trace`` (diff, rerun and export of a re-formatted file). Every event
read is checked against the trace schema (pflow_tui.engine.events_check); compare with
the numbers of a checkout before the check to see what it costs.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from pflow_tui.engine.trace.reader import TraceIndex
from pflow_tui.engine.trace.writer import read_trace


def best(fn, repeat: int) -> str:
    """The best wall time and the best CPU time of the process (steadier on a busy machine)."""
    wall, cpu = [], []
    for _ in range(repeat):
        t, c = time.perf_counter(), time.process_time()
        fn()
        wall.append(time.perf_counter() - t)
        cpu.append(time.process_time() - c)
    return f"{min(wall):.3f} s  (CPU {min(cpu):.3f} s)"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--items", type=int, default=500_000)
    parser.add_argument("--trace", type=Path, help="reuse this trace instead of making one")
    parser.add_argument("--repeat", type=int, default=3)
    opts = parser.parse_args()
    path = opts.trace
    if path is None or not path.exists():
        sys.path.insert(0, str(Path(__file__).parent))
        from bench_replay import make_trace

        path = path or Path(f"/tmp/pflow-bench-reader-{opts.items}.json")
        t = time.perf_counter()
        make_trace(opts.items, path)
        print(f"(made the trace in {time.perf_counter() - t:.1f} s)", file=sys.stderr)
    index = TraceIndex(path)
    n = len(index)

    def scan() -> None:
        ix = TraceIndex(path)
        for a in range(0, len(ix), 20_000):
            ix.summaries(a, a + 20_000)

    def full() -> None:
        for _ in TraceIndex(path):
            pass

    print(f"trace: {n:,} events, {path.stat().st_size / 1e6:.0f} MB")
    print(f"  open (index)          {best(lambda: TraceIndex(path), opts.repeat)}")
    print(f"  open + summaries      {best(scan, opts.repeat)}")
    print(f"  open + every event    {best(full, opts.repeat)}")
    print(f"  read_trace            {best(lambda: read_trace(path), opts.repeat)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
