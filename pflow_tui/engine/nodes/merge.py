"""The ``merge`` node type: the join of a parallel group, combining its branches' outputs.

As the join of a group it reads each branch's last node output (``ctx.branches``);
anywhere else it merges the list given in ``inputs``. Strategies:

- ``array``: the outputs as a list, in edge order (a failed branch gives None);
- ``dict``: a shallow merge of the outputs in edge order; a key that a later branch
  overrides with another value is a conflict, listed in ``warnings``;
- ``by_branch``: ``{branch start node id: output}``.

Failed branches (``error_handling: continue``) are listed in ``failed``.
"""

from __future__ import annotations

from typing import Any

from .base import NodeType, Param, RunContext

STRATEGIES = ("array", "dict", "by_branch")


def merge(params: dict[str, Any], ctx: RunContext) -> dict[str, Any]:
    strategy = params.get("strategy", "array")
    if strategy not in STRATEGIES:
        return {"error": f"unknown merge strategy {strategy!r}; use one of {', '.join(STRATEGIES)}"}
    if ctx.branches is not None:
        branches = ctx.branches
    elif isinstance(params.get("inputs"), list):
        branches = [{"index": i, "start": f"input_{i}", "status": "ok", "output": v}
                    for i, v in enumerate(params["inputs"])]
    else:
        return {"error": "merge has nothing to merge: make it the join of a parallel group, "
                         "or give it \"inputs\": [...]"}
    outputs = [b.get("output") if b.get("status") == "ok" else None for b in branches]
    out: dict[str, Any] = {}
    if strategy == "array":
        out["result"] = outputs
    elif strategy == "by_branch":
        out["result"] = {b["start"]: o for b, o in zip(branches, outputs, strict=True)}
    else:
        merged: dict[str, Any] = {}
        owner: dict[str, str] = {}
        warnings = []
        for b, o in zip(branches, outputs, strict=True):
            if not isinstance(o, dict):
                continue
            for key, value in o.items():
                if key in merged and merged[key] != value:
                    warnings.append(f"key '{key}': branch '{b['start']}' overrides branch "
                                    f"'{owner[key]}'")
                merged[key] = value
                owner[key] = b["start"]
        out["result"] = merged
        if warnings:
            out["warnings"] = warnings
    failed = [{"branch": b["index"], "start": b["start"], "last": b.get("last"),
               "error": b.get("error")} for b in branches if b.get("status") != "ok"]
    if failed:
        out["failed"] = failed
    return out


MERGE = NodeType(
    name="merge",
    run=merge,
    params=(
        Param("strategy", "str", default="array", description="array, dict or by_branch",
              choices=STRATEGIES),
        Param("inputs", "list", description="values to merge when this is not a group's join"),
    ),
    outputs=("result", "failed", "warnings"),
    description="Join parallel branches: their outputs as a list, a merged dict, or by branch.",
)
