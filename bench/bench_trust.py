"""What signing traces costs: the trace writer and a whole run, signed vs unsigned, side by
side in one run (interleaved rounds, best of each), and how fast a trace is verified.

    python bench/bench_trust.py [--quick]

Signing is a running HMAC-SHA256 over the bytes written: each event line goes through the
inner SHA-256 as it is written (one C call), and the flush thread writes a seal line every
FLUSH_EVERY seconds (engine/trust.py). Its floor is SHA-256's speed (about 0.3 us for an
event line of 250 bytes at 750 MB/s).
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from pflow_tui.engine.ir.load import build_flow
from pflow_tui.engine.run.executor import run_flow
from pflow_tui.engine.trace import trust
from pflow_tui.engine.trace.writer import TraceWriter

TMP = Path(tempfile.mkdtemp(prefix="pflow-bench-trust-"))
os.environ.setdefault(trust.ENV, str(TMP / "config"))  # never the user's real key
KEY = trust.load_key()


def best_of(rounds: int, fns: dict[str, Callable[[], object]]) -> dict[str, float]:
    best = dict.fromkeys(fns, float("inf"))
    for _ in range(rounds):
        for name, fn in fns.items():
            t = time.perf_counter()
            fn()
            best[name] = min(best[name], time.perf_counter() - t)
    return best


def events(n: int) -> list[dict]:
    """Item events as a batch writes them (start and end of n items)."""
    out = []
    for i in range(n):
        path = f"bench.items.iteration_{i}"
        out.append({"seq": 2 * i + 1, "t": i * 1e-5, "kind": "item.start", "path": path, "index": i,
                    "label": str(i), "item": i, "params": {"message": f"item {i}"}})
        out.append({"seq": 2 * i + 2, "t": i * 1e-5, "kind": "item.end", "path": path, "index": i,
                    "status": "ok", "duration": 1e-5, "attempts": 1,
                    "outputs": {"echo": f"item {i}", "data": None, "metadata": {"count": 1}}})
    return out


def writer(evs: list[dict], key: bytes | bool) -> Callable[[], object]:
    def go() -> object:
        path = TMP / "w.json"
        path.unlink(missing_ok=True)
        w = TraceWriter(path, {"flow_name": "bench", "flow": {"nodes": []}, "inputs": {}}, key=key)
        for e in evs:
            w.write(e)
        w.finish("ok", outputs={}, store={}, error=None)
        return w

    return go


def run(n: int, signed: bool) -> Callable[[], object]:
    spec = build_flow({"name": "bench", "nodes": [{"id": "items", "type": "echo",
                                                    "params": {"message": "n ${item}"},
                                                    "batch": {"items": list(range(n))}}]})

    def go() -> object:
        path = TMP / "run.json"
        path.unlink(missing_ok=True)
        if not signed:
            trust._keys.clear()
            os.environ[trust.ENV] = str(TMP / "no-key" / "file" / "x")  # no key can be made
            (TMP / "no-key").mkdir(exist_ok=True)
            (TMP / "no-key" / "file").write_text("")
        try:
            result = run_flow(spec, {}, trace=path)
        finally:
            os.environ[trust.ENV] = str(TMP / "config")
            trust._keys.clear()
        assert result.status == "ok"
        return result

    return go


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--quick", action="store_true")
    quick = parser.parse_args().quick
    n, rounds = (20_000, 3) if quick else (100_000, 5)
    evs = events(n)
    best = best_of(rounds, {"unsigned": writer(evs, False), "signed": writer(evs, KEY)})
    per = {k: v / len(evs) * 1e6 for k, v in best.items()}
    print(f"TraceWriter, {len(evs):,} item events: unsigned {per['unsigned']:.2f} us/event, "
          f"signed {per['signed']:.2f} us/event, "
          f"ratio signed/unsigned {best['signed'] / best['unsigned']:.3f}")
    items = n // 5
    best = best_of(rounds, {"unsigned": run(items, False), "signed": run(items, True)})
    print(f"run_flow, sequential batch of {items:,} echo items: unsigned {best['unsigned']:.3f} s, "
          f"signed {best['signed']:.3f} s, ratio signed/unsigned {best['signed'] / best['unsigned']:.3f}")
    assert trust.verify(TMP / "run.json").trusted  # (the signed variant ran last)
    size = (TMP / "run.json").stat().st_size
    t = time.perf_counter()
    verdict = trust.verify(TMP / "run.json")
    took = time.perf_counter() - t
    print(f"verify: {size / 1e6:.1f} MB in {took * 1000:.0f} ms ({size / 1e6 / took:.0f} MB/s): "
          f"{verdict.describe()}")


if __name__ == "__main__":
    main()
