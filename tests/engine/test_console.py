"""The headless reporter of ``pflow-tui run``: what its lines count."""

from __future__ import annotations

import io
import threading
from pathlib import Path

from rich.console import Console

from pflow_tui.console import ConsoleReporter
from pflow_tui.engine.ir.load import build_flow
from pflow_tui.engine.run.executor import run_flow


def report(events: list[dict]) -> str:
    out = io.StringIO()
    reporter = ConsoleReporter(Console(file=out, width=200, force_terminal=False))
    with reporter:
        for e in events:
            reporter(e)
    return out.getvalue()


def test_cancelled_items_are_counted_as_cancelled_not_failed() -> None:
    ends = [("ok", 0), ("error", 1), ("cancelled", 2), ("cancelled", 3), ("cancelled", 4)]
    events = [{"seq": 1, "t": 0.0, "kind": "node.start", "path": "f.sq", "node": "sq", "type": "shell",
               "batch": {"count": 5}}]
    events += [{"seq": 2 + i, "t": 0.1, "kind": "item.end", "path": f"f.sq.iteration_{i}", "index": i,
                "status": status, "duration": 0.01, "attempts": 1} for status, i in ends]
    events.append({"seq": 9, "t": 0.2, "kind": "node.end", "path": "f.sq", "node": "sq", "status": "error",
                   "duration": 0.2, "error": {"type": "BatchItemError", "message": "item 1 failed"}})
    line = report(events)
    assert "5/5" in line and "1 failed" in line and "3 cancelled" in line, line
    assert "4 failed" not in line


def test_a_fail_fast_batch_reports_its_cancelled_items(tmp_path: Path) -> None:
    flow = build_flow({"name": "ff", "nodes": [{"id": "sq", "type": "shell", "batch": {
        "items": [1, 2, 3, 4, 5, 6], "parallel": True, "max_concurrent": 6, "error_handling": "fail_fast"},
        "params": {"command": "test ${item} -ne 1 && sleep 2; test ${item} -ne 1"}}]})
    out = io.StringIO()
    reporter = ConsoleReporter(Console(file=out, width=200, force_terminal=False))
    worker = threading.Thread(target=run_flow, args=(flow, {}),
                              kwargs={"trace": tmp_path / "t.json", "sinks": [reporter]})
    worker.start()
    worker.join()
    line = out.getvalue()
    assert "1 failed" in line and "5 cancelled" in line, line
