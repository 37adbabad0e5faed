"""Recorded events for UI tests: clock values made the same from run to run."""

from __future__ import annotations

from typing import Any


def deterministic(events: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The same events with ``t = seq x 10 ms`` and durations from those times."""
    starts: dict[tuple[str, str], float] = {}
    out = []
    for e in events:
        e = dict(e)
        e["t"] = round(e["seq"] * 0.01, 6)
        kind, _, phase = e["kind"].partition(".")
        if phase == "start":
            starts[(kind, e["path"])] = e["t"]
        elif phase == "end" and "duration" in e:
            e["duration"] = round(e["t"] - starts.get((kind, e["path"]), 0.0), 6)
        out.append(e)
    return out
