"""A saved run on a two-worker Dask cluster in the real ``pflow-tui`` (tmux): the header names
the cluster and its workers, ``w`` typed in the timeline groups its rows by worker and
ungroups them, at 120x40 and at 80x24."""

from __future__ import annotations

import re
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import Terminal

sys.path.insert(0, str(Path(__file__).parents[1] / "app"))
from synthetic_cluster import A, B, write_cluster_trace
from test_keys_in_tmux import pane


@pytest.fixture(scope="module")
def trace(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_cluster_trace(tmp_path_factory.mktemp("cluster") / "cl.json")


def headings(screen: str) -> list[str]:
    """The Timeline's group headings (``─ tcp://… · 4 items: …``)."""
    return [row.strip() for row in pane(screen, "Timeline") if row.strip().startswith("─ ")]


def rows(screen: str) -> list[int]:
    """The item indexes of the Timeline's rows, top to bottom."""
    return [int(m.group(1)) for m in (re.match(r"\s*#(\d+)\s", r) for r in pane(screen, "Timeline")) if m]


@pytest.fixture(params=[(120, 40), (80, 24)], ids=["120x40", "80x24"])
def term(trace: Path, request: pytest.FixtureRequest) -> Iterator[Terminal]:
    width, height = request.param
    term = Terminal(trace.parent, width, height).start("replay", trace)
    term.wait_for("event 50 / 50", what="the replay at its end")
    yield term
    term.close()


def test_w_groups_the_timeline_by_worker_and_back(term: Terminal) -> None:
    # (at 80 columns the cluster's name gives way, from its start: its workers stay)
    term.wait_for("cluster tcp://10.0.0.5:8786 · 2 workers" if term.width >= 120 else ":8786 · 2 workers",
                  what="the cluster in the header")
    term.press("Tab")
    term.press("Tab")  # DAG -> Namespaces -> Timeline (the batch is selected)
    term.wait_for("w By worker", what="the timeline's keys")
    term.press("Home")  # the first row
    screen = term.wait_for(lambda s: rows(s)[:3] == [0, 1, 2], what="the rows in index order")
    assert headings(screen) == []
    term.type("w")
    screen = term.wait_for(lambda s: len(headings(s)) >= 1, what="the rows grouped by worker")
    first = headings(screen)[0]
    assert first.startswith(f"─ {A[:20]}") and "4 items" in first
    if term.height >= 40:  # both groups on the screen, each item under its worker
        assert headings(screen)[1].startswith(f"─ {B[:20]}")
        assert rows(screen) == [0, 2, 4, 5, 1, 3, 6]
    else:
        assert rows(screen)[:2] == [0, 2]
    term.type("w")
    term.wait_for(lambda s: not headings(s) and rows(s)[:3] == [0, 1, 2], what="the rows ungrouped")
