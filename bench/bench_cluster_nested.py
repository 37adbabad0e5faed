"""A ``workflow`` batch on a Dask cluster: what streaming the child flows' events costs.

    python bench/bench_cluster_nested.py [--items 200] [--workers 2] [--rounds 3]

``--items`` items of a ``workflow`` node whose child has 3 nodes (two ``code`` nodes in
threads, an ``echo``; 11 events per item), parallel (``max_concurrent`` 8), four ways:

1. ``local``: the child runs in this process (``code`` in threads), no cluster;
2. ``cluster``: on a LocalCluster of ``--workers`` worker processes, each child's events sent
   in chunks (within 10 ms of an event: cluster_child.FLUSH_EVERY), as pflow-tui does;
3. ``cluster, a message per event``: the same, each event a message of its own;
4. ``cluster, no inner events``: the workers drop the children's events (what the run
   costs without streaming them: the difference to 2 is the streaming's cost).

Whole runs (``run_flow``: every event, the trace file on disk), the best of ``--rounds``;
the cluster is started before the timings.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path
from typing import Any

from distributed import Client, LocalCluster

from pflow_tui.engine.ir.load import build_flow
from pflow_tui.engine.run.executor import run_flow

TMP = Path(tempfile.mkdtemp(prefix="pflow-bench-nested-"))
CHILD = {"ir_version": "0.1.0", "inputs": {"x": {"type": "number", "required": True}},
         "nodes": [
             {"id": "a", "type": "code", "executor": "thread",
              "params": {"inputs": {"x": "${x}"}, "code": "x: int\nresult: int = x + 1"}},
             {"id": "b", "type": "code", "executor": "thread",
              "params": {"inputs": {"y": "${a.result}"}, "code": "y: int\nresult: int = y * 2"}},
             {"id": "c", "type": "echo", "params": {"message": "b=${b.result}"}}],
         "edges": [{"from": "a", "to": "b"}, {"from": "b", "to": "c"}],
         "outputs": {"out": {"source": "${b.result}"}}}
_runs = 0


def flow(n: int, executor: str | None) -> dict[str, Any]:
    node: dict[str, Any] = {"id": "stage", "type": "workflow",
                            "batch": {"items": list(range(n)), "parallel": True, "max_concurrent": 8},
                            "params": {"workflow_ir": CHILD, "param_mapping": {"x": "${item}"}}}
    if executor:
        node["executor"] = executor
    return {"ir_version": "0.1.0", "nodes": [node]}


def timed(doc: dict[str, Any], cluster: str | None) -> tuple[float, int]:
    global _runs
    _runs += 1
    spec = build_flow(doc, base_dir=TMP)
    t = time.perf_counter()
    result = run_flow(spec, {}, trace=TMP / f"t{_runs}.json", cluster=cluster)
    elapsed = time.perf_counter() - t
    items = doc["nodes"][0]["batch"]["items"]
    assert result.status == "ok" and result.store["stage"]["success_count"] == len(items)
    return elapsed, result.events


def per_event() -> None:  # on each worker: a message for every event
    from pflow_tui.engine.run import cluster_child

    def send_each(self: Any, event: dict[str, Any]) -> None:
        self.events.append(event)
        self.flush()

    cluster_child.Outbox.__call__ = send_each


def dropped() -> None:  # on each worker: the children's events are not sent
    from pflow_tui.engine.run import cluster_child

    cluster_child.Outbox.__call__ = lambda self, event: None


def batched() -> None:
    import importlib

    from pflow_tui.engine.run import cluster_child

    importlib.reload(cluster_child)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--items", type=int, default=200)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    with LocalCluster(n_workers=args.workers, threads_per_worker=1, processes=True,
                      dashboard_address=":0") as cluster, Client(cluster) as client:
        address = cluster.scheduler_address
        timed(flow(10, "cluster"), address)  # warm the workers up (imports)
        best: dict[str, tuple[float, int]] = {}
        for _ in range(args.rounds):
            for name, executor, setup in (("local", None, None), ("cluster", "cluster", batched),
                                          ("cluster, a message per event", "cluster", per_event),
                                          ("cluster, no inner events", "cluster", dropped)):
                if setup is not None:
                    client.run(setup)
                took = timed(flow(args.items, executor), address if executor else None)
                if name not in best or took[0] < best[name][0]:
                    best[name] = took
    print(f"{args.items} items x a child of 3 nodes, {args.workers} workers, best of {args.rounds}:")
    for name, (seconds, events) in best.items():
        print(f"  {name:30s} {seconds:7.3f} s  {seconds / args.items * 1000:6.2f} ms/item  "
              f"{events} events")


if __name__ == "__main__":
    main()
