"""Validation, loading and compiling of a long chain of default edges: time per node.

    python bench/bench_validate.py [--sizes 1000,10000,100000]

A flow of N ``echo`` nodes, each reading the one before it (``${nK.echo}``), linked by
default edges. Prints, per size, the time to validate (``build_flow``: normalise and
check), to load the file (``load_flow``: read, parse, validate) and to compile it
(PocketFlow objects), and the microseconds per node, all in CPU time of the process
(wall time on a shared machine measures the neighbours): linear work keeps the per-node
column flat as N grows, so the ratio to the smallest size is what to read. Target
(issue 14): a 100,000-node chain validates in <= 2 s.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

from pflow_tui.engine.ir.load import build_flow, load_flow
from pflow_tui.engine.registry import registry
from pflow_tui.engine.run.execution import Execution
from pflow_tui.engine.run.flow import compile_flow
from pflow_tui.engine.trace.events import Emitter


def chain(n: int) -> dict:
    """A flow of ``n`` echo nodes in a line, each reading its predecessor's output."""
    nodes = [{"id": "n0", "type": "echo", "params": {"message": "start"}}]
    nodes += [{"id": f"n{i}", "type": "echo", "params": {"message": f"${{n{i - 1}.echo}}"}}
              for i in range(1, n)]
    edges = [{"from": f"n{i}", "to": f"n{i + 1}"} for i in range(n - 1)]
    return {"ir_version": "0.1.0", "nodes": nodes, "edges": edges}


def timed(fn) -> tuple[float, object]:
    """(CPU seconds of this process, result): steadier than wall time on a shared machine."""
    start = time.process_time()
    out = fn()
    return time.process_time() - start, out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sizes", default="1000,10000,100000",
                        help="comma-separated chain lengths (default 1000,10000,100000)")
    sizes = [int(s) for s in parser.parse_args().sizes.split(",")]
    folder = Path(tempfile.mkdtemp(prefix="pflow-bench-validate-"))
    reg = registry()
    build_flow(chain(100), registry=reg)  # warm up: first-call imports and caches
    print(f"{'nodes':>8} {'validate cpu s':>14} {'us/node':>8} {'load cpu s':>10} {'compile cpu s':>13} "
          f"{'us/node':>8} {'ratio':>6}")
    base = None
    for n in sizes:
        doc = chain(n)
        t_validate, _ = timed(lambda doc=doc: build_flow(doc, registry=reg))
        path = folder / f"chain{n}.json"
        path.write_text(json.dumps(doc))
        t_load, spec = timed(lambda path=path: load_flow(path, reg))
        ex = Execution(spec, Emitter([]), {}, {})
        t_compile, _ = timed(lambda spec=spec, ex=ex: compile_flow(spec, ex, reg))
        per_node = t_validate / n * 1e6
        base = base or per_node
        print(f"{n:>8} {t_validate:>14.3f} {per_node:>8.1f} {t_load:>10.3f} {t_compile:>13.3f} "
              f"{t_compile / n * 1e6:>8.1f} {per_node / base:>5.2f}x")
        sys.stdout.flush()


if __name__ == "__main__":
    main()
