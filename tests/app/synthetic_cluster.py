"""A saved run on a Dask cluster of two workers, with fixed times, for tests that show it.

``write_cluster_trace(path)`` writes the trace of a flow ``cl`` whose batch ``sq`` (7 items,
``executor: cluster``, ``max_retries 2``) ran on ``cluster tcp://10.0.0.5:8786``: items on
workers ``tcp://10.0.0.5:40001`` (A) and ``tcp://10.0.0.6:40002`` (B); item 3's first
attempt was on A when A died (``WorkerLost``) and its retry ran on B; item 6 failed on B.
The events are those the engine writes for a cluster run (docs/cluster.md, "Events").
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import orjson

A, B = "tcp://10.0.0.5:40001", "tcp://10.0.0.6:40002"
CLUSTER = "cluster tcp://10.0.0.5:8786"
FLOW = {"ir_version": "0.1.0", "name": "cl", "nodes": [
    {"id": "sq", "type": "code", "executor": "cluster",
     "batch": {"items": [1, 2, 3, 4, 5, 6, 7], "parallel": True, "max_concurrent": 4, "max_retries": 2,
               "error_handling": "continue"},
     "params": {"inputs": {"x": "${item}"}, "code": "x: int\nresult: int = x * x"}}]}
LOST = {"type": "WorkerLost", "message": f"worker lost: the Dask worker {A} died while it ran this "
                                         "(crashed, ran out of memory, or was killed)"}
FAILED = {"type": "ValueError", "message": "no square for 7",
          "traceback": 'Traceback (most recent call last):\n  File "<code sq>", line 2, in <module>\n'
                       "ValueError: no square for 7\n"}
# per item: its start, then each attempt as (queued on the cluster, ran, worker, error or None)
PLAN: list[tuple[float, list[tuple[float, float, str, dict[str, Any] | None]]]] = [
    (0.00, [(0.30, 0.50, A, None)]),
    (0.00, [(0.32, 0.80, B, None)]),
    (0.00, [(0.35, 0.40, A, None)]),
    (0.00, [(0.36, 0.45, A, LOST), (0.05, 0.60, B, None)]),
    (0.80, [(0.02, 0.55, A, None)]),
    (1.05, [(0.03, 0.50, A, None)]),
    (1.12, [(0.04, 0.35, B, FAILED)]),
]


def cluster_events(workers: tuple[str, str] = (A, B), cluster: str = CLUSTER) -> list[dict[str, Any]]:
    """The run's events, in the order of their times (``workers`` replace A and B)."""
    rename = {A: workers[0], B: workers[1]}
    timed: list[tuple[float, int, str, str, dict[str, Any]]] = []
    order = 0

    def add(t: float, kind: str, path: str, **fields: Any) -> None:
        nonlocal order
        order += 1
        timed.append((round(t, 6), order, kind, path, fields))

    add(0.0, "run.start", "cl", flow="cl", inputs={}, source="cl.json")
    add(0.0, "node.start", "cl.sq", node="sq", type="code", params={},
        batch={"count": len(PLAN), "parallel": True, "max_concurrent": 4, "error_handling": "continue",
               "as": "item"})
    end = 0.0
    for i, (t, attempts) in enumerate(PLAN):
        path = f"cl.sq.iteration_{i}"
        t0 = t
        add(t, "item.start", path, index=i, label=str(i + 1), item=i + 1, params={"x": i + 1})
        error: dict[str, Any] | None = None
        worker = ""
        for n, (queued, ran, worker, error) in enumerate(attempts, 1):
            worker = rename[worker]
            add(t, "wait.start", path, on="cluster", attempt=n, limit=cluster)
            t += queued
            add(t, "wait.end", path, on="cluster", attempt=n, status="ok", duration=queued, worker=worker)
            add(t, "attempt.start", path, attempt=n, worker=worker)
            t += ran
            if error is None:
                add(t, "attempt.end", path, attempt=n, status="ok", duration=ran, worker=worker)
            else:
                if error["type"] == "WorkerLost":
                    error = {**error, "message": error["message"].replace(A, rename[A])}
                add(t, "attempt.end", path, attempt=n, status="error", duration=ran, error=error,
                    will_retry=n < 2, worker=worker)
        status = "error" if error is not None else "ok"
        fields: dict[str, Any] = {"outputs": {"result": (i + 1) ** 2}} if error is None else {"error": error}
        add(t, "item.end", path, index=i, status=status, duration=round(t - t0, 6), attempts=len(attempts),
            **fields, worker=worker)
        end = max(end, t)
    add(end + 0.001, "node.end", "cl.sq", node="sq", status="ok", duration=round(end + 0.001, 6),
        action="default", outputs={"count": len(PLAN)},
        progress={"done": len(PLAN) - 1, "failed": 1, "total": len(PLAN)})
    add(end + 0.002, "run.end", "cl", status="ok", duration=round(end + 0.002, 6), outputs={})
    timed.sort(key=lambda e: (e[0], e[1]))
    return [{"seq": seq, "t": t, "kind": kind, "path": path, **fields}
            for seq, (t, _, kind, path, fields) in enumerate(timed, 1)]


def write_cluster_trace(path: Path, workers: tuple[str, str] = (A, B), cluster: str = CLUSTER) -> Path:
    """The run as a trace file at ``path`` (one event per line, as the writer lays it out)."""
    events = cluster_events(workers, cluster)
    header = {"format": "pflow-tui-trace", "version": 1, "created": "2026-03-01T09:00:00.000000+00:00",
              "flow_name": "cl", "source": "cl.json", "flow": FLOW, "children": {}, "inputs": {},
              "pid": 0, "python": "3.12.0", "base_dir": "."}
    lines = [orjson.dumps(header)[:-1] + b',"events":[']
    lines += [orjson.dumps(e) + (b"," if i < len(events) - 1 else b"") for i, e in enumerate(events)]
    footer = {"status": "ok", "finished": "2026-03-01T09:00:02.000000+00:00",
              "summary": {"duration": events[-1]["duration"], "nodes": 1, "items": len(PLAN), "failed": 1,
                          "cancelled": 0, "restored": 0},
              "outputs": {}, "store": {}, "error": None}
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"\n".join(lines) + b"\n]," + orjson.dumps(footer)[1:] + b"\n")
    return path
