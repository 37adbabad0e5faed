"""Node types for the process-pool tests.

Their ``run`` functions are module-level, so a worker process imports them by name (it
gets the test process's ``sys.path``).
"""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

from pflow_tui.engine.nodes.base import NodeType, Param, RunContext


def where(params: dict[str, Any], ctx: RunContext) -> dict[str, Any]:
    """Reports the process and the context it ran in; fails, crashes or sleeps on request."""
    if params.get("pid_dir"):  # for tests that look for the process afterwards
        Path(params["pid_dir"], f"{ctx.index}.{ctx.attempt}").write_text(str(os.getpid()))
    if params.get("wait_for"):  # until another item got this far
        deadline = time.monotonic() + 30
        while not Path(params["wait_for"]).exists() and time.monotonic() < deadline:
            time.sleep(0.01)
    if params.get("sleep"):
        time.sleep(params["sleep"])
    if ctx.attempt <= (params.get("fail_until") or 0):
        raise RuntimeError(f"attempt {ctx.attempt} fails at {ctx.path}")
    if ctx.attempt <= (params.get("crash_until") or 0):
        os._exit(3)
    if params.get("unpicklable"):
        return {"f": lambda: 1}
    if params.get("print"):
        print("stray output on fd 1", flush=True)
        os.write(1, b"and below Python\n")
    return {"pid": os.getpid(), "attempt": ctx.attempt, "index": ctx.index, "path": ctx.path,
            "value": params.get("value"), "branches": ctx.branches}


WHERE = NodeType("where", where, params=(
    Param("value"), Param("sleep"), Param("fail_until"), Param("crash_until"), Param("pid_dir"),
    Param("unpicklable"), Param("print"), Param("wait_for")), blocking=True, cpu_bound=True)
