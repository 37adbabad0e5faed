"""Saved runs with fixed times, for tests that show them (the run browser, the diff view).

``write_runs(folder)`` writes five traces of one small flow (``demo``: ``gen`` then a batch
``sq`` of 4 items) into ``folder``: a run with a failed item, its re-run (``cached``
events, item 2 ran again), an ok run of another flow, a run cut short (no footer) and a
file that is not a trace. Times and durations are fixed, so what the screens show is too.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import orjson

FLOW = {"ir_version": "0.1.0", "name": "demo", "nodes": [
    {"id": "gen", "type": "echo", "params": {"message": "x", "data": [1, 2, 3, 4]}},
    {"id": "sq", "type": "shell", "params": {"command": "echo ${item}"},
     "batch": {"items": "${gen.data}", "error_handling": "continue"}}],
    "edges": [{"from": "gen", "to": "sq"}]}


def _events(flow: str, failed: set[int], cached: bool, durations: list[float]) -> list[dict[str, Any]]:
    events: list[dict[str, Any]] = []
    t = 0.0

    def add(kind: str, path: str, **fields: Any) -> None:
        events.append({"seq": len(events) + 1, "t": round(t, 6), "kind": kind, "path": path, **fields})

    extra = {"cached": True} if cached else {}
    add("run.start", flow, flow=flow, inputs={}, source="flows/demo.json")
    add("node.start", f"{flow}.gen", node="gen", type="echo", params={"message": "x"}, **extra)
    add("node.end", f"{flow}.gen", node="gen", status="ok", duration=0.0 if cached else 0.002,
        action="default", attempts=0 if cached else 1, outputs={"echo": "x", "data": [1, 2, 3, 4]}, **extra)
    t += 0.003
    add("node.start", f"{flow}.sq", node="sq", type="shell", params={},
        batch={"count": 4, "parallel": False, "max_concurrent": 1, "error_handling": "continue",
               "as": "item"})
    for i, d in enumerate(durations):
        path = f"{flow}.sq.iteration_{i}"
        restored = cached and i not in failed and d == 0.0
        mark = {"cached": True} if restored else {}
        add("item.start", path, index=i, item=i + 1, params={"command": f"echo {i + 1}"}, **mark)
        t += d
        if i in failed:
            add("item.end", path, index=i, status="error", duration=d, attempts=1,
                outputs={"stdout": "", "exit_code": 1}, error={"type": "NodeError", "message": "exit code 1"})
        else:
            add("item.end", path, index=i, status="ok", duration=d, attempts=0 if restored else 1,
                outputs={"stdout": str(i + 1), "exit_code": 0}, **mark)
    add("node.end", f"{flow}.sq", node="sq", status="ok", duration=round(sum(durations), 6),
        action="default", outputs={"count": 4}, progress={"done": 4 - len(failed), "failed": len(failed),
                                                          "total": 4})
    t += 0.001
    add("run.end", flow, status="ok", duration=round(t, 6), outputs={})
    return events


def write_trace(path: Path, *, flow: str = "demo", created: str, failed: set[int] = frozenset(),
                cached: bool = False, durations: list[float] | None = None, footer: bool = True,
                rerun_of: str | None = None) -> Path:
    durations = durations or [0.2, 0.3, 0.25, 0.21]
    header = {"format": "pflow-tui-trace", "version": 1, "created": created, "flow_name": flow,
              "source": "flows/demo.json", "flow": {**FLOW, "name": flow}, "children": {}, "inputs": {},
              "pid": 0, "python": "3.12.0", "base_dir": "flows",
              **({"rerun_of": rerun_of} if rerun_of else {})}
    events = _events(flow, set(failed), cached, durations)
    lines = [orjson.dumps(header)[:-1] + b',"events":[']
    lines += [orjson.dumps(e) + b"," for e in events]
    lines[-1] = lines[-1][:-1]
    items = len(durations)
    summary = {"duration": events[-1]["duration"], "nodes": 2, "items": items, "failed": len(failed),
               "cancelled": 0, "restored": (1 + items - len(failed)) if cached else 0}
    error = None
    data = b"\n".join(lines) + b"\n"
    if footer:
        foot = {"status": "ok", "finished": created.replace(":00.", ":02."), "summary": summary,
                "outputs": {}, "store": {}, "error": error}
        data += b"]," + orjson.dumps(foot)[1:] + b"\n"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return path


def write_runs(folder: Path) -> dict[str, Path]:
    """The five files of the module docs, by name: first, rerun, other, cut, junk."""
    first = write_trace(folder / "demo-1.json", created="2026-03-01T09:00:00.000000+00:00", failed={2})
    rerun = write_trace(folder / "demo-2.json", created="2026-03-01T09:05:00.000000+00:00", failed={2},
                        cached=True, durations=[0.0, 0.0, 0.26, 0.0], rerun_of=str(first))
    other = write_trace(folder / "other-3.json", flow="other", created="2026-03-01T08:00:00.000000+00:00")
    cut = write_trace(folder / "demo-4.json", created="2026-03-01T10:00:00.000000+00:00", footer=False)
    junk = folder / "notes.json"
    junk.write_bytes(b'{"not": "a trace"}\n')
    return {"first": first, "rerun": rerun, "other": other, "cut": cut, "junk": junk}
