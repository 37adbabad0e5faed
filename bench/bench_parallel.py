"""Parallelism benchmark: fan-out, pipeline and per-branch overhead, side by side in one run.

    python bench/bench_parallel.py [--quick]

Each case runs its variants interleaved, several rounds, and keeps the best time of each
(the least disturbed by a noisy machine); the ratios are what to read. Targets:
three branches of 0.3 s each finish in <= 0.33 s (ideal 0.3 s, sequential 0.9 s); a
pipeline of 3 stages x 20 items x 50 ms at max_concurrent 4 takes <= 1.1 x its ideal
20/4 x 3 x 50 ms = 0.75 s; a branch of a parallel group costs <= 50 us more than the
same node run in sequence.
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

from bench_engine import best_of  # the scripts sit side by side in bench/

from pflow_tui.engine.ir.load import build_flow
from pflow_tui.engine.registry import registry
from pflow_tui.engine.run.execution import Execution
from pflow_tui.engine.run.executor import run_flow
from pflow_tui.engine.run.flow import compile_flow
from pflow_tui.engine.trace.events import Emitter

TMP = Path(tempfile.mkdtemp(prefix="pflow-bench-parallel-"))




def ours(doc: dict[str, Any]) -> Callable[[], object]:
    """Run ``doc`` headless with full events and trace, as `pflow-tui run` does."""
    spec = build_flow(doc)
    assert not spec.warnings, spec.warnings

    def go() -> object:
        (TMP / "bench.json").unlink(missing_ok=True)  # a trace file holds one run
        result = run_flow(spec, {}, trace=TMP / "bench.json")
        assert result.status == "ok", result.error
        return result

    return go


def compiling(doc: dict[str, Any]) -> Callable[[], object]:
    """Only build the PocketFlow objects of ``doc`` (a part of every run)."""
    spec, reg = build_flow(doc), registry()
    return lambda: compile_flow(spec, Execution(spec, Emitter([]), {}, {}), reg)


def llm(node_id: str, latency: float, prompt: str = "step") -> dict[str, Any]:
    return {"id": node_id, "type": "llm",
            "params": {"model": "offline", "latency": latency, "prompt": f"{prompt} {node_id}"}}


def echo(node_id: str) -> dict[str, Any]:
    return {"id": node_id, "type": "echo", "params": {"message": node_id}}


def fanout_doc(branches: list[dict[str, Any]], join: dict[str, Any]) -> dict[str, Any]:
    """start -[g]-> every branch node -> join."""
    ids = [b["id"] for b in branches]
    return {"name": "fanout", "nodes": [echo("start"), *branches, join],
            "edges": [*({"from": "start", "to": i, "parallel_group": "g"} for i in ids),
                      *({"from": i, "to": join["id"]} for i in ids)]}


def chain_doc(nodes: list[dict[str, Any]]) -> dict[str, Any]:
    """The same nodes one after the other."""
    return {"name": "chain", "nodes": nodes,
            "edges": [{"from": a["id"], "to": b["id"]} for a, b in itertools.pairwise(nodes)]}


def case_fanout(rounds: int) -> None:
    branches = [llm(f"b{i}", 0.3) for i in range(3)]
    join = {"id": "join", "type": "merge", "params": {"strategy": "by_branch"}}
    fan = fanout_doc(branches, join)
    seq = chain_doc([echo("start"), *branches, join | {"type": "echo", "params": {"message": "j"}}])

    async def ideal() -> None:
        await asyncio.gather(*(asyncio.sleep(0.3) for _ in range(3)))

    t = best_of(rounds, {"fanout": ours(fan), "sequential": ours(seq),
                         "asyncio": lambda: asyncio.run(ideal())})
    print("fan-out: 3 branches of one offline-llm node (0.3 s each) -> merge (ideal 0.300 s)")
    print(f"  ours, parallel group  {t['fanout']:.3f} s   ratio to ideal {t['fanout'] / 0.3:.3f}  "
          "(target <= 0.33 s)")
    print(f"  ours, in sequence     {t['sequential']:.3f} s   ratio to ideal {t['sequential'] / 0.3:.3f}"
          f"   speed-up of the group {t['sequential'] / t['fanout']:.2f}x (ideal 3x)")
    print(f"  bare asyncio.gather   {t['asyncio']:.3f} s   ratio to ideal {t['asyncio'] / 0.3:.3f}")


def case_pipeline(rounds: int, items: int = 20, limit: int = 4, stage: float = 0.05) -> None:
    ideal_s = items / limit * 3 * stage
    child = chain_doc([llm("read", stage, "read ${name}"), llm("process", stage, "process ${name}"),
                       llm("write", stage, "write ${name}")])
    child["inputs"] = {"name": {"type": "string"}}
    doc = {"name": "pipeline", "nodes": [
        {"id": "files", "type": "echo",
         "params": {"message": "files", "data": [f"file_{i:02d}" for i in range(items)]}},
        {"id": "per_file", "type": "workflow",
         "batch": {"items": "${files.data}", "as": "file", "parallel": True, "max_concurrent": limit},
         "params": {"workflow_ir": child, "param_mapping": {"name": "${file}"}}}],
        "edges": [{"from": "files", "to": "per_file"}]}

    async def ideal() -> None:
        sem = asyncio.Semaphore(limit)

        async def one() -> None:
            async with sem:
                for _ in range(3):
                    await asyncio.sleep(stage)

        await asyncio.gather(*(one() for _ in range(items)))

    t = best_of(rounds, {"ours": ours(doc), "asyncio": lambda: asyncio.run(ideal())})
    print(f"pipeline: read -> process -> write (offline llm, {stage * 1000:.0f} ms each) x {items} items, "
          f"a batched workflow node at max_concurrent {limit} (ideal {ideal_s:.3f} s)")
    print(f"  ours                  {t['ours']:.3f} s   ratio to ideal {t['ours'] / ideal_s:.3f}  "
          "(target <= 1.1)")
    print(f"  bare asyncio + sem    {t['asyncio']:.3f} s   ratio to ideal {t['asyncio'] / ideal_s:.3f}")


def case_overhead(rounds: int, n: int) -> None:
    nodes = [echo(f"e{i}") for i in range(n)]
    fan = fanout_doc(nodes, echo("end"))
    seq = chain_doc([echo("start"), *nodes, echo("end")])
    t = best_of(rounds, {"fanout": ours(fan), "sequence": ours(seq),
                         "compile fanout": compiling(fan), "compile sequence": compiling(seq)})
    per = (t["fanout"] - t["sequence"]) / n * 1e6
    per_compile = (t["compile fanout"] - t["compile sequence"]) / n * 1e6
    print(f"per-branch overhead: a fan-out of {n} one-echo branches vs the same {n + 2} echo nodes "
          "in sequence (full events + trace)")
    for name, label in (("fanout", "fan-out"), ("sequence", "sequence")):
        print(f"  {label:22s}{t[name] * 1e3:7.2f} ms   {t[name] / (n + 2) * 1e6:6.1f} us/node")
    print(f"  overhead per branch   {per:7.1f} us   ratio fan-out/sequence "
          f"{t['fanout'] / t['sequence']:.2f}x  (target <= 50 us)")
    print(f"    of which compiling  {per_compile:7.1f} us   (the rest: task, limiter, events, join)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer rounds")
    args = parser.parse_args()
    rounds = 2 if args.quick else 5
    ours(fanout_doc([echo("a"), echo("b")], echo("j")))()  # warm imports and the registry
    case_fanout(rounds)
    case_pipeline(rounds)
    case_overhead(rounds * 4, 50)
    case_overhead(rounds * 2, 500)


if __name__ == "__main__":
    main()
