"""Event paths and the one duration format (engine/paths.py)."""

from __future__ import annotations

import math

import pytest

from pflow_tui.engine.paths import (
    ITERATION,
    branch_index,
    format_duration,
    iteration_index,
    iteration_path,
    leaf,
    parent,
    split_iteration,
)


def test_format_duration() -> None:
    seconds = (None, math.nan, math.inf, -1.0, 0.0, 0.00004, 0.0004994, 0.4121, 0.9996, 3.21, 59.96,
               64.4, 3725.0)
    assert [format_duration(s) for s in seconds] == [
        "", "", "", "0ms", "0ms", "40µs", "499µs", "412ms", "1.0s", "3.2s", "1m00s", "1m04s", "1h02m"]


def test_a_missing_duration_shows_the_given_placeholder() -> None:
    assert format_duration(None, "—") == "—"
    assert format_duration(math.nan, "–") == "–"
    assert format_duration(0.5, "—") == "500ms"


@pytest.mark.parametrize(("step", "index"), [
    ("iteration_0", 0), ("iteration_12", 12), ("iteration_", None), ("iteration_x", None),
    ("iteration_²", None), ("iteration_-1", None), ("branch_1", None), ("square", None),
])
def test_iteration_index(step: str, index: int | None) -> None:
    assert iteration_index(step) == index


def test_paths() -> None:
    assert iteration_path("f.square", 6) == "f.square.iteration_6" == f"f.square.{ITERATION}6"
    assert split_iteration("f.square.iteration_6") == ("f.square", 6)
    assert split_iteration("f.per_file.iteration_3.read") is None
    assert split_iteration("f.square") is None
    assert parent("f.square.iteration_6") == "f.square" and parent("f") == ""
    assert leaf("f.fan.branch_1") == "branch_1" and branch_index("branch_1") == 1
    assert branch_index("iteration_1") is None
