"""``pflow-tui run --output-format json``: how the run ended, as one JSON document on stdout.

The keys are pflow's (``pflow --output-format json``) where pflow has one: ``success``,
``status`` (``"success"`` or ``"failed"``; pflow-tui adds ``"interrupted"``, ``"terminated"``
and ``"invalid"``: the flow, its inputs or the command line was wrong, nothing ran),
``error``, ``duration_ms``, ``trace_path``, ``total_cost_usd``. pflow calls the outputs
``result``; here they are ``outputs``, as in the trace. Every key is always there
(``null`` when there is nothing to say): ``usage`` is the run's LLM tokens per model
(``run.end``'s usage, see pflow_tui/engine/trace/usage.py) and ``total_cost_usd`` its cost
when the user's price table names every model. See docs/cli.md.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

from ..engine.problems import FlowError
from ..engine.run.executor import RunResult
from ..engine.trace.writer import dumps

STATUS = {"ok": "success", "failed": "failed", "interrupted": "interrupted"}


def run_document(result: RunResult, flow: str | None = None) -> dict[str, Any]:
    """The document of a run that ended (ok, failed, or interrupted inside the engine)."""
    usage = result.usage
    return document(
        STATUS.get(result.status, result.status), flow=flow, outputs=result.outputs,
        error=_error(result.error), duration=result.duration,
        trace=result.trace_path, usage=usage if isinstance(usage, dict) else None)


def stopped_document(status: str, message: str, *, kind: str, flow: str | None = None,
                     trace: Path | str | None = None) -> dict[str, Any]:
    """The document of a run that did not start or end (``invalid``, ``interrupted``,
    ``terminated``): ``kind`` names the error (``TraceExists``, ``KeyboardInterrupt``...)."""
    return document(status, flow=flow, error={"type": kind, "message": message}, trace=trace)


def invalid_document(exc: FlowError, flow: str | None = None) -> dict[str, Any]:
    """The document of a flow (or its inputs) that is wrong: every problem, with its fix."""
    n = len(exc.problems)
    error = {"type": "FlowError", "message": f"{exc.source}: {n} problem{'s' if n != 1 else ''}",
             "problems": [{"where": p.where, "what": p.what, "fix": p.fix} for p in exc.problems]}
    return document("invalid", flow=flow, error=error)


def document(status: str, *, flow: str | None = None, outputs: dict[str, Any] | None = None,
             error: dict[str, Any] | None = None, duration: float | None = None,
             trace: Path | str | None = None, usage: dict[str, Any] | None = None) -> dict[str, Any]:
    cost = usage.get("cost") if usage else None
    return {"success": status == "success", "status": status, "flow": flow, "outputs": outputs or {},
            "error": error,
            "duration_ms": None if duration is None else round(duration * 1000, 3),
            "trace_path": None if trace is None else str(trace), "usage": usage,
            "total_cost_usd": cost}


def write_document(doc: dict[str, Any]) -> None:
    """The document on stdout, one line (values JSON cannot hold are written as their repr)."""
    sys.stdout.write(dumps(doc).decode() + "\n")
    sys.stdout.flush()


def _error(error: dict[str, Any] | None) -> dict[str, Any] | None:
    """A run's error without its traceback (that stays in the trace and the log)."""
    if not error:
        return None
    return {k: v for k, v in error.items() if k in ("type", "message", "node", "path", "internal")}
