"""The ``vote`` merge strategy: the most common output of the branches.

Registered through pflow-tui's own ``pflow_tui.merges`` entry point, as any plugin is.

- Branches that failed or were cancelled do not vote.
- ``options.key`` (e.g. ``"response"`` or ``"response.label"``) votes on that value of each
  output instead of the whole output; dots step into objects, digits into lists, and a
  JSON string is parsed when stepped into. A branch whose output has no such value
  abstains (a warning says so).
- Values are compared as canonical JSON: object key order does not matter, ``1`` and
  ``1.0`` are the same vote, ``true`` and ``1`` are not; lists and objects vote like
  any other value. Strings are compared exactly (``"Yes"`` is not ``"yes"``).
- The winner has the most votes; on a tie, the value that was voted for first (in edge
  order) wins, ``tie`` is true and a warning names the tied values.

Outputs: ``result`` (the winning value, null when nobody voted), ``votes`` (each distinct
value with its ``count`` and the ``branches`` that voted for it, most votes first), ``tie``.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any

import orjson

from pflow_tui.engine.nodes.base import NodeFailure
from pflow_tui.engine.run.merge_strategies import Branch, MergeStrategy, ok_output

_MISSING = object()
OPTIONS = ("key",)


def canonical(value: Any) -> str:
    """A text that is equal for equal JSON values (sorted keys, 1.0 as 1)."""
    try:
        return orjson.dumps(_canon(value), option=orjson.OPT_SORT_KEYS | orjson.OPT_NON_STR_KEYS).decode()
    except TypeError:  # not JSON (a plugin's object): its repr stands for it
        return json.dumps(_canon(value), sort_keys=True, default=repr)


def _canon(value: Any) -> Any:
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, dict):
        return {k: _canon(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_canon(v) for v in value]
    return value


def pick(value: Any, key: str) -> Any:
    """The value at a dotted ``key`` path, or ``_MISSING``."""
    for step in key.split("."):
        if isinstance(value, str) and value[:1] in ("{", "["):
            try:
                value = orjson.loads(value)
            except orjson.JSONDecodeError:
                return _MISSING
        if isinstance(value, Mapping) and step in value:
            value = value[step]
        elif isinstance(value, list) and step.isdigit() and int(step) < len(value):
            value = value[int(step)]
        else:
            return _MISSING
    return value


def vote(branches: Sequence[Branch], options: Mapping[str, Any]) -> dict[str, Any]:
    unknown = [k for k in options if k not in OPTIONS]
    if unknown:
        raise NodeFailure(f"vote: unknown option {unknown[0]!r}; vote takes {', '.join(OPTIONS)}")
    key = options.get("key")
    if key is not None and (not isinstance(key, str) or not key):
        raise NodeFailure(f"vote: options.key must be a path like \"response\", got {key!r}")
    tally: dict[str, dict[str, Any]] = {}  # canonical text -> {value, count, branches}; first vote first
    warnings: list[str] = []
    for b in branches:
        if b.get("status") != "ok":
            continue
        value = ok_output(b)
        if key is not None:
            value = pick(value, key)
            if value is _MISSING:
                warnings.append(f"branch '{b['start']}' has no '{key}' in its output: it does not vote")
                continue
        entry = tally.setdefault(canonical(value), {"value": value, "count": 0, "branches": []})
        entry["count"] += 1
        entry["branches"].append(b["start"])
    votes = sorted(tally.values(), key=lambda e: -e["count"])  # stable: first vote first on a tie
    tied = [e for e in votes if votes and e["count"] == votes[0]["count"]]
    out: dict[str, Any] = {"result": votes[0]["value"] if votes else None, "votes": votes,
                           "tie": len(tied) > 1}
    if len(tied) > 1:
        shown = ", ".join(canonical(e["value"])[:40] for e in tied)
        warnings.append(f"tie: {len(tied)} values have {tied[0]['count']} vote(s) each ({shown}); "
                        f"the first voted for wins (branch '{tied[0]['branches'][0]}')")
    if warnings:
        out["warnings"] = warnings
    return out


VOTE = MergeStrategy("vote", vote, "the most common output (or options.key value); ties: the first voted for")
