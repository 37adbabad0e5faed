"""Export at scale: a trace of about a million events to Perfetto and to OTLP.

    python bench/bench_export.py [--items N] [--trace PATH] [--repeat R]

Makes (or reuses) a trace of a parallel batch of N items (2 events each: 500,000 items
give a million events), then measures, side by side in one run, each in a fresh process
(best of R by CPU time, which other work on a shared machine disturbs less than wall time;
the peak of its anonymous resident memory, sampled every 20 ms: what it allocated, not the
pages of the memory-mapped trace):

- reading: every event parsed from the memory-mapped file (TraceIndex), nothing else;
- loading: the whole trace as Python objects (read_trace), what a non-streaming export
  would hold;
- perfetto and otlp: ``export_file`` to a file.

It prints the times (CPU and wall), the ratios to reading (CPU), and the peak memory of each.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from bench_replay import make_trace

_JOBS = {
    "reading": "from pflow_tui.engine.trace.reader import TraceIndex\n"
               "n = sum(1 for _ in TraceIndex(path))",
    "loading": "from pflow_tui.engine.trace.writer import read_trace\n"
               "n = len(read_trace(path).events)",
    "perfetto": "from pflow_tui.engine.trace.export import export_file\n"
                "export_file(path, 'perfetto', out + '.perfetto.json')",
    "otlp": "from pflow_tui.engine.trace.export import export_file\n"
            "export_file(path, 'otlp', out + '.otlp.jsonl')",
}
_RUN = """
import re, sys, threading, time
path, out = sys.argv[1], sys.argv[2]
peak = [0]

def anon():  # resident memory that is not the memory-mapped trace: what the job allocated
    with open("/proc/self/status") as f:
        return int(re.search(r"RssAnon:\\s+(\\d+)", f.read()).group(1)) / 1024

def sample():
    while True:
        peak[0] = max(peak[0], anon())
        time.sleep(0.02)

threading.Thread(target=sample, daemon=True).start()
t0, c0 = time.perf_counter(), time.process_time()
{job}
seconds, cpu = time.perf_counter() - t0, time.process_time() - c0
print(seconds, cpu, max(peak[0], anon()))
"""


def measure(job: str, path: Path, out: Path) -> tuple[float, float, float]:
    """(seconds, CPU seconds, peak anonymous RSS in MB) of ``job`` in a fresh interpreter."""
    done = subprocess.run([sys.executable, "-c", _RUN.format(job=_JOBS[job]), str(path), str(out)],
                          capture_output=True, text=True, check=True)
    seconds, cpu, rss = done.stdout.split()
    return float(seconds), float(cpu), float(rss)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--items", type=int, default=500_000)
    parser.add_argument("--trace", type=Path, help="reuse this trace instead of making one")
    parser.add_argument("--repeat", type=int, default=3, help="runs of each job (best time kept)")
    args = parser.parse_args()
    workdir = Path(tempfile.mkdtemp(prefix="pflow-bench-export-"))
    path = args.trace
    if path is None:
        path = workdir / f"big-{args.items}.json"
        t = time.perf_counter()
        make_trace(args.items, path)
        print(f"(made the trace in {time.perf_counter() - t:.1f} s)", file=sys.stderr)
    out = workdir / "out"
    best: dict[str, tuple[float, float, float]] = {}
    for _ in range(args.repeat):  # interleaved, so that load on the machine hits every job alike
        for job in _JOBS:
            result = measure(job, path, out)
            if job not in best or result[1] < best[job][1]:
                best[job] = result
    from pflow_tui.engine.trace.reader import TraceIndex

    n_events = len(TraceIndex(path))
    print(f"trace: {n_events:,} events, {path.stat().st_size / 1e6:.0f} MB on disk "
          f"(best of {args.repeat}, each in a fresh process)")
    base = best["reading"][1]
    for job, (seconds, cpu, rss) in best.items():
        size = ""
        for suffix in (".perfetto.json", ".otlp.jsonl"):
            if job in suffix:
                size = f"  output {(out.parent / (out.name + suffix)).stat().st_size / 1e6:.0f} MB"
        print(f"  {job:<9} {cpu:6.2f} s CPU ({seconds:5.1f} s wall)  {cpu / base:4.1f}x reading  "
              f"peak memory {rss:5.0f} MB{size}")


if __name__ == "__main__":
    main()
