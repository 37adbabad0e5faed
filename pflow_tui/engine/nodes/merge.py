"""The ``merge`` node type: the join of a parallel group, combining its branches' outputs.

As the join of a group it reads each branch's last node output (``ctx.branches``);
anywhere else it merges the list given in ``inputs``. Built-in strategies:

- ``array``: the outputs as a list, in edge order (a failed branch gives None);
- ``dict``: a shallow merge of the outputs in edge order; a key that a later branch
  overrides with another value is a conflict, listed in ``warnings``;
- ``by_branch``: ``{branch start node id: output}``.

More strategies come from plugins (``pflow_tui.merges`` entry points; pflow-tui ships
``vote``); ``options`` is handed to the strategy. Failed branches
(``error_handling: continue``) are listed in ``failed``.
"""

from __future__ import annotations

from typing import Any

from ..plugins import PluginNames, merge_strategies
from .base import NodeType, Param, RunContext

STRATEGIES = PluginNames(merge_strategies)


def merge(params: dict[str, Any], ctx: RunContext) -> dict[str, Any]:
    name = params.get("strategy", "array")
    strategies = merge_strategies()
    if not isinstance(name, str) or name not in strategies:
        broken = strategies.why_missing(name) if isinstance(name, str) else None
        if broken:
            return {"error": f"merge strategy {name!r} comes from a plugin that failed to load "
                             f"({broken})"}
        return {"error": f"unknown merge strategy {name!r}; use one of {', '.join(strategies)}"}
    options = params.get("options")
    if options is None:
        options = {}
    elif not isinstance(options, dict):
        return {"error": f"merge options must be an object, got {type(options).__name__}"}
    if ctx.branches is not None:
        branches = ctx.branches
    elif isinstance(params.get("inputs"), list):
        branches = [{"index": i, "start": f"input_{i}", "last": f"input_{i}", "status": "ok",
                     "output": v} for i, v in enumerate(params["inputs"])]
    else:
        return {"error": "merge has nothing to merge: make it the join of a parallel group, "
                         "or give it \"inputs\": [...]"}
    out = dict(strategies[name].merge(branches, options))
    if "result" not in out:
        return {"error": f"merge strategy {name!r} returned no 'result' (its keys: "
                         f"{', '.join(map(str, out)) or 'none'})"}
    failed = [{"branch": b["index"], "start": b["start"], "last": b.get("last"),
               "error": b.get("error")} for b in branches if b.get("status") != "ok"]
    if failed:
        out["failed"] = failed
    return out


MERGE = NodeType(
    name="merge",
    run=merge,
    params=(
        Param("strategy", "str", default="array",
              description="array, dict, by_branch or a plugin's (vote ships with pflow-tui)",
              choices=STRATEGIES),
        Param("inputs", "list", description="values to merge when this is not a group's join"),
        Param("options", "dict",
              description="settings for the strategy, e.g. vote's {\"key\": \"response\"}"),
    ),
    outputs=("result", "failed", "warnings"),
    description="Join parallel branches: their outputs as a list, a merged dict, by branch, "
                "or by a plugin's strategy.",
)
