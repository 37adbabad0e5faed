"""Statistics over a batch's or a parallel group's results, for ``${node.aggregate.STAT.key}``.

The rules (docs/parallelism.md, "Aggregates"):

- the entries are a batch node's ``results`` (``iteration_N``) or a parallel group's
  ``branch_results`` (``branch_N``, kept at its fan-out node);
- failed entries are skipped: a failed item's result (``None``, or a dict with ``error``),
  a failed or cancelled branch (``None``);
- the value at the key of each remaining entry must be a number: an int or float (not a
  boolean, not NaN or infinite) or a string holding a JSON number (``"42\\n"`` from a shell's
  stdout); ``None`` (JSON null) is skipped; anything else is an error naming the entry;
- ``count`` is the number of values counted (entries without a key: the successful ones);
  ``mean`` = ``sum`` / ``count``;
- with no values, ``count`` and ``sum`` are 0 and the others are None;
- ``p50`` and ``p95`` are nearest-rank percentiles: the value at rank ``ceil(q/100 * n)`` of
  the sorted values, always one of the values (``p50`` of an even count is the lower
  middle value, as ``statistics.median_low``). The debugger's timeline and the ``slower
  p95`` breakpoint use the same definition.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from .spill import LazyList

STATS = ("count", "sum", "min", "max", "mean", "p50", "p95")
AGGREGATE = "aggregate"  # the template step: ${node.aggregate.STAT.key}
_JSON_NUMBER = re.compile(r"-?(?:0|[1-9]\d*)(\.\d+)?([eE][+-]?\d+)?")

Number = int | float


def nearest_rank(sorted_values: Sequence[Any], q: float) -> Any:
    """The q-th percentile (0..100) of already sorted, non-empty values (nearest rank)."""
    n = len(sorted_values)
    return sorted_values[max(0, min(n - 1, math.ceil(q / 100 * n) - 1))]


def entries(value: Any) -> Iterable[tuple[str, Any]] | None:
    """``(label, entry)`` of what an aggregate runs over, or None if ``value`` is neither a
    batch output nor a parallel group's fan-out. A spilled batch's results (``batch_size``)
    are read one at a time."""
    if not isinstance(value, Mapping):
        return None
    results = value.get("results")
    if isinstance(results, (list, LazyList)) and "batch_metadata" in value:
        return ((f"iteration_{i}", r) for i, r in enumerate(results))
    branches = value.get("branch_results")
    if isinstance(branches, list):
        return [(f"branch_{i}", r) for i, r in enumerate(branches)]
    return None


def failed(entry: Any) -> bool:
    """A failed item or branch: no result, or a result with an ``error``."""
    return entry is None or (isinstance(entry, Mapping) and "error" in entry)


def as_number(value: Any) -> Number | None:
    """``value`` as a finite number, or None when it is not one."""
    if value.__class__ is bool:
        return None
    if isinstance(value, str):
        text = value.strip()
        m = _JSON_NUMBER.fullmatch(text)
        if not m:
            return None
        value = float(text) if m.group(1) or m.group(2) else int(text)
    if isinstance(value, int):
        return value
    if isinstance(value, float) and math.isfinite(value):
        return value
    return None


def compute(stat: str, values: Sequence[Number]) -> Number | None:
    """One statistic of ``values`` (see the module's rules)."""
    n = len(values)
    if stat == "count":
        return n
    if stat == "sum":
        return _sum(values)
    if not n:
        return None
    if stat == "mean":
        return _sum(values) / n
    if stat == "min":
        return min(values)
    if stat == "max":
        return max(values)
    return nearest_rank(sorted(values), 50 if stat == "p50" else 95)


def _sum(values: Sequence[Number]) -> Number:
    if all(v.__class__ is int for v in values):
        return sum(values)
    return math.fsum(values)
