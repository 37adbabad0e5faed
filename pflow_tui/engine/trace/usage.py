"""LLM token usage and cost, rolled up from a run's events: per model, and for the run.

Every ``llm`` call records ``llm_usage`` in its outputs (``input_tokens``,
``output_tokens``, ``cache_read_input_tokens``, ``cache_creation_input_tokens``; the
offline provider counts words, deterministically). The run adds each call's outputs to a
:class:`UsageTally` where the call lands (a single node's step, or one batch item; never a
batch node's own output, which holds its items' results again, nor a step a re-run
restored: that cost nothing this time). Only node types that declare an ``llm_usage``
output are looked at, so runs without llm nodes pay nothing.

Cost comes from a price table, in US dollars per million tokens::

    {"gpt-4o-mini": {"input": 0.15, "output": 0.6, "cached_input": 0.075}}

read from ``$PFLOW_TUI_PRICES`` (that JSON object; the CLI puts the ``[prices]`` table of
the user's config there, see docs/configuration.md), else from ``prices.json`` in the
user's config folder (see :func:`pflow_tui.engine.trace.trust.config_dir`). pflow-tui
ships no prices (they change): a cost is shown only for the models the table names.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import orjson

from .trust import config_dir

PRICES_FILE = "prices.json"
PRICES_ENV = "PFLOW_TUI_PRICES"
FIELDS = ("input_tokens", "output_tokens", "cache_read_input_tokens", "cache_creation_input_tokens")
MAX_PRICES_BYTES = 1 << 20


class UsageTally:
    """Token counts per model, from the outputs of the llm calls of a run."""

    __slots__ = ("calls", "models")

    def __init__(self) -> None:
        self.models: dict[str, dict[str, int]] = {}
        self.calls = 0

    def add(self, outputs: Any) -> None:
        """Count one call's ``llm_usage`` (outputs without one are no call)."""
        usage = outputs.get("llm_usage") if isinstance(outputs, dict) else None
        if not isinstance(usage, dict) or not usage:
            return
        model = usage.get("model")
        counts = self.models.setdefault(model if isinstance(model, str) else "unknown",
                                        dict.fromkeys(FIELDS, 0))
        for key in FIELDS:
            value = usage.get(key)
            if isinstance(value, int) and not isinstance(value, bool) and value > 0:
                counts[key] += value
        self.calls += 1

    def merge(self, models: Mapping[str, Mapping[str, int]], calls: int) -> None:
        """Add another tally's counts (a nested flow that ran on a cluster worker)."""
        for model, theirs in models.items():
            counts = self.models.setdefault(model, dict.fromkeys(FIELDS, 0))
            for key in FIELDS:
                counts[key] += theirs.get(key, 0)
        self.calls += calls

    def to_json(self, prices: Mapping[str, Any] | None = None) -> dict[str, Any] | None:
        """``{"calls", "input_tokens", ..., "models": {model: counts}, "cost"?}``; None when
        no llm call ran. ``cost`` (US dollars) only when every model has a price."""
        if not self.calls:
            return None
        total = {key: sum(m[key] for m in self.models.values()) for key in FIELDS}
        out: dict[str, Any] = {"calls": self.calls, **total,
                               "models": {name: dict(c) for name, c in self.models.items()}}
        cost = run_cost(self.models, prices if prices is not None else load_prices())
        if cost is not None:
            out["cost"] = cost
        return out


def run_cost(models: Mapping[str, Mapping[str, int]], prices: Mapping[str, Any]) -> float | None:
    """The cost in US dollars, or None when a model has no price."""
    total = 0.0
    for name, counts in models.items():
        price = prices.get(name)
        if not isinstance(price, Mapping):
            return None
        rate_in, rate_out = _rate(price.get("input")), _rate(price.get("output"))
        if rate_in is None or rate_out is None:
            return None
        rate_cached = _rate(price.get("cached_input"))
        cached = counts.get("cache_read_input_tokens", 0)
        uncached = max(0, counts.get("input_tokens", 0) - cached) if rate_cached is not None else \
            counts.get("input_tokens", 0)
        total += (uncached * rate_in + counts.get("output_tokens", 0) * rate_out
                  + (cached * rate_cached if rate_cached is not None else 0)) / 1e6
    return round(total, 6)


def _rate(value: Any) -> float | None:
    ok = isinstance(value, (int, float)) and not isinstance(value, bool) and value >= 0
    return float(value) if ok else None


def load_prices(folder: Path | None = None) -> dict[str, Any]:
    """The user's price table (``{}`` when there is none, or it is not a JSON object):
    ``$PFLOW_TUI_PRICES``, else ``prices.json`` in ``folder`` (the config folder)."""
    given = os.environ.get(PRICES_ENV, "").strip()
    if given and folder is None:
        with contextlib.suppress(orjson.JSONDecodeError):
            data = orjson.loads(given)
            return data if isinstance(data, dict) else {}
        return {}
    path = (folder if folder is not None else config_dir()) / PRICES_FILE
    with contextlib.suppress(OSError, orjson.JSONDecodeError):
        if path.is_file() and path.stat().st_size <= MAX_PRICES_BYTES:
            data = orjson.loads(path.read_bytes())
            if isinstance(data, dict):
                return data
    return {}


def usage_text(usage: Mapping[str, Any] | None) -> str:
    """``1,234 in · 56 out tokens (800 cached) · $0.0123``; "" without usage."""
    if not usage:
        return ""
    text = f"{usage.get('input_tokens', 0):,} in · {usage.get('output_tokens', 0):,} out tokens"
    if usage.get("cache_read_input_tokens"):
        text += f" ({usage['cache_read_input_tokens']:,} cached)"
    if isinstance(usage.get("cost"), (int, float)):
        text += f" · ${usage['cost']:.4f}"
    return text
