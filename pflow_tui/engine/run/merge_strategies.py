"""Merge strategies: how a ``merge`` node combines the outputs of parallel branches.

A strategy is a name and one function. The function receives the branches in edge order,
each a dict ``{"index", "start", "last", "status", "output", "error"}`` (``status`` is
``ok``, ``error`` or ``cancelled``; ``output`` is the outputs of the branch's last node),
and the merge node's ``options`` param (a dict, ``{}`` when not given). It returns the
merge node's outputs: a dict with at least ``result``; ``warnings`` (a list of strings)
become warning events. The merge node adds ``failed`` itself.

Outside a parallel group, a merge node's ``inputs`` list arrives as branches
``input_0``, ``input_1``, ... that all succeeded.

``array``, ``dict`` and ``by_branch`` are built in; more come from packages through the
``pflow_tui.merges`` entry-point group (see :mod:`pflow_tui.engine.plugins`)::

    [project.entry-points."pflow_tui.merges"]
    vote = "pflow_tui.plugins.vote:VOTE"    # a MergeStrategy instance
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

Branch = Mapping[str, Any]
MergeFn = Callable[[Sequence[Branch], Mapping[str, Any]], Mapping[str, Any]]


@dataclass(frozen=True)
class MergeStrategy:
    """A registered merge strategy: ``merge(branches, options)`` returns the outputs."""

    name: str
    merge: MergeFn
    description: str = ""


def ok_output(branch: Branch) -> Any:
    """A branch's output, or None when it failed or was cancelled."""
    return branch.get("output") if branch.get("status") == "ok" else None


def _array(branches: Sequence[Branch], options: Mapping[str, Any]) -> dict[str, Any]:
    return {"result": [ok_output(b) for b in branches]}


def _by_branch(branches: Sequence[Branch], options: Mapping[str, Any]) -> dict[str, Any]:
    return {"result": {b["start"]: ok_output(b) for b in branches}}


def _dict(branches: Sequence[Branch], options: Mapping[str, Any]) -> dict[str, Any]:
    merged: dict[str, Any] = {}
    owner: dict[str, str] = {}
    warnings = []
    for b in branches:
        output = ok_output(b)
        if not isinstance(output, dict):
            continue
        for key, value in output.items():
            if key in merged and merged[key] != value:
                warnings.append(f"key '{key}': branch '{b['start']}' overrides branch '{owner[key]}'")
            merged[key] = value
            owner[key] = b["start"]
    return {"result": merged, "warnings": warnings} if warnings else {"result": merged}


BUILTIN_STRATEGIES = (
    MergeStrategy("array", _array, "the outputs as a list, in edge order (null for a failed branch)"),
    MergeStrategy("dict", _dict, "a shallow merge of the outputs; conflicting keys are warnings"),
    MergeStrategy("by_branch", _by_branch, "{first node of the branch: its output}"),
)
