"""Event paths and durations, as every view shows them.

An event path is dot-separated (docs/trace-format.md, *Paths*): ``flow``, ``flow.square``,
``flow.review#2`` (a node's second visit), ``flow.square.iteration_6`` (item 6 of a batch
node), ``flow.fan.branch_1.analyze`` (a node on branch 1 of a parallel group), and nested
flows under their node or iteration (``flow.per_file.iteration_3.read``).

:func:`format_duration` is the one way a duration is written, in the app, the console
and ``pflow-tui diff``.
"""

from __future__ import annotations

import math

#: The step of a batch item: ``iteration_<index>``.
ITERATION = "iteration_"
#: The step of a parallel branch: ``branch_<index>``.
BRANCH = "branch_"
_ITERATION_LEN = len(ITERATION)
_BRANCH_LEN = len(BRANCH)


def parent(path: str) -> str:
    """The path one step up: ``flow.square.iteration_6`` -> ``flow.square``; ``""`` for a
    path of one step."""
    return path.rpartition(".")[0]


def leaf(path: str) -> str:
    """The last step of a path: ``flow.square.iteration_6`` -> ``iteration_6``."""
    return path.rpartition(".")[2]


def _index(step: str, prefix: str, size: int) -> int | None:
    if not step.startswith(prefix):
        return None
    digits = step[size:]
    return int(digits) if digits.isdecimal() else None


def iteration_index(step: str) -> int | None:
    """``iteration_6`` -> 6; None for a step that is no iteration."""
    return _index(step, ITERATION, _ITERATION_LEN)


def branch_index(step: str) -> int | None:
    """``branch_1`` -> 1; None for a step that is no branch."""
    return _index(step, BRANCH, _BRANCH_LEN)


def split_iteration(path: str) -> tuple[str, int] | None:
    """``flow.square.iteration_6`` -> ``("flow.square", 6)``: the batch node's path and the
    item's index; None when the path does not end in an iteration."""
    head, _, last = path.rpartition(".")
    index = iteration_index(last)
    return None if index is None else (head, index)


def iteration_path(node_path: str, index: int) -> str:
    """The path of item ``index`` of the batch node at ``node_path``."""
    return f"{node_path}.{ITERATION}{index}"


def format_duration(seconds: float | None, missing: str = "") -> str:
    """A duration for people, short enough for a pane: ``40µs``, ``412ms``, ``3.2s``,
    ``1m04s``, ``2h05m``; ``missing`` for no duration (None or NaN)."""
    if seconds is None or seconds != seconds or seconds == math.inf:
        return missing
    seconds = max(0.0, seconds)
    ms = math.floor(seconds * 1000 + 0.5)
    if ms < 1:
        micro = math.floor(seconds * 1_000_000 + 0.5)
        return f"{micro}µs" if micro else "0ms"
    if ms < 1000:
        return f"{ms}ms"
    tenths = math.floor(seconds * 10 + 0.5)
    if tenths < 600:
        return f"{tenths / 10:.1f}s"
    whole = math.floor(seconds + 0.5)
    if whole < 3600:
        return f"{whole // 60}m{whole % 60:02d}s"
    minutes = whole // 60
    return f"{minutes // 60}h{minutes % 60:02d}m"
