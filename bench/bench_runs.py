"""The list of runs at scale: 1,000 traces of realistic size, listed from their ends.

    python bench/bench_runs.py [--traces N] [--repeat R]

Runs ``sample_flows/parallel_batch_failures.json`` once (40 items, 6 failures: a trace of
about 60 KB) and ``llm_classify.json`` once (about 100 KB), then writes N traces into a
temporary folder, alternating the two with distinct start times, a tenth of them cut
short (no footer, as after ``kill -9``) and a few foreign or empty files. It then measures,
side by side in one run (best of R, warm page cache, as when you list the same folder
again):

- listing: ``list_runs(folder)``, every trace's header and footer lines, sorted;
- one record: ``read_run`` of one trace (its header and footer lines);
- one header: the first line of one trace, parsed (``header_of``);
- one full read: ``read_trace`` of one trace (every event): what listing would cost if it
  read the whole files.

It prints the times and the ratios: listing / (N x one record), and the listing against
N full reads. The budget for N = 1,000 is 0.5 s.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from pflow_tui.engine.ir.load import load_flow  # noqa: E402
from pflow_tui.engine.run.executor import run_flow  # noqa: E402
from pflow_tui.engine.run.inputs import prepare_inputs  # noqa: E402
from pflow_tui.engine.trace.reader import header_of  # noqa: E402
from pflow_tui.engine.trace.runs import list_runs, read_run  # noqa: E402
from pflow_tui.engine.trace.writer import read_trace  # noqa: E402


def _run(name: str, out: Path) -> Path:
    spec = load_flow(ROOT / "sample_flows" / f"{name}.json")
    path = out / f"{name}.json"
    worker = threading.Thread(target=run_flow, args=(spec, prepare_inputs(spec, {})),
                              kwargs={"trace": path})
    worker.start()
    worker.join()
    return path


def make_folder(n: int, base: Path) -> tuple[Path, list[Path]]:
    """N traces in ``base/traces`` (see the module docs); returns the folder and the originals."""
    originals = [_run("parallel_batch_failures", base), _run("llm_classify", base)]
    blobs = [p.read_bytes() for p in originals]
    folder = base / "traces"
    folder.mkdir()
    for i in range(n):
        data = blobs[i % 2]
        stamp = f"2026-01-{1 + i // 100 % 28:02d}T{i // 60 % 24:02d}:{i % 60:02d}:00.000000+00:00"
        head, _, rest = data.partition(b'"created":"')
        data = head + b'"created":"' + stamp.encode() + rest[rest.index(b'"'):]
        if i % 10 == 9:  # cut short: no footer
            data = data[: data.rindex(b"\n],")]
        elif i % 250 == 0:  # foreign or empty
            data = b'{"not": "a trace"}\n' if i % 500 else b""
        path = folder / f"run-{i:04d}.json"
        path.write_bytes(data)
        os.utime(path, (time.time() - 3600, time.time() - 3600))  # old runs: none is still going
    return folder, originals


def best(fn, repeat: int) -> float:
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return min(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--traces", type=int, default=1000)
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    base = Path(tempfile.mkdtemp(prefix="bench-runs-"))
    try:
        folder, originals = make_folder(args.traces, base)
        size = sum(f.stat().st_size for f in folder.iterdir())
        records = list_runs(folder)
        statuses = {s: sum(r.status == s for r in records) for s in {r.status for r in records}}
        one = originals[0]

        def head_only() -> None:
            with open(one, "rb") as f:
                header_of(f.readline(), one)

        listing = best(lambda: list_runs(folder), args.repeat)
        record = best(lambda: read_run(one), args.repeat * 20)
        header = best(head_only, args.repeat * 20)
        full = best(lambda: read_trace(one), args.repeat * 4)
        n = args.traces
        print(f"{n:,} traces, {size / 1e6:.1f} MB ({one.stat().st_size / 1e3:.0f} KB and "
              f"{originals[1].stat().st_size / 1e3:.0f} KB each), statuses {dict(sorted(statuses.items()))}")
        print(f"listing (list_runs)          {listing * 1e3:8.1f} ms   budget 500 ms for 1,000: "
              f"{'ok' if listing * 1000 / n <= 0.5 else 'OVER'}")
        print(f"one record (read_run)        {record * 1e6:8.1f} µs   listing / ({n} x one record) "
              f"= {listing / (n * record):.2f}")
        print(f"one header line (header_of)  {header * 1e6:8.1f} µs   one record / one header "
              f"= {record / header:.2f}")
        print(f"one full read (read_trace)   {full * 1e6:8.1f} µs   {n} full reads would take "
              f"{n * full * 1e3:.0f} ms = {n * full / listing:.1f}x the listing")
    finally:
        shutil.rmtree(base, ignore_errors=True)


if __name__ == "__main__":
    os.environ.setdefault("PFLOW_TUI_PROCESSES", "1")
    main()
