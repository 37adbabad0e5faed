"""A run on a Dask cluster in the debugger: its waits on the cluster read as such, the
header names the cluster and its workers, ``w`` groups the timeline's rows by worker, the
inspector says where each attempt ran; a run recorded on an in-process LocalCluster and a
saved two-worker run (synthetic_cluster), replayed and shown from its events as a live run
is (the same code), with worker addresses shown literally.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

distributed = pytest.importorskip("distributed")

from synthetic_cluster import CLUSTER, A, B, cluster_events, write_cluster_trace  # noqa: E402
from synthetic_cluster import FLOW as SYNTHETIC  # noqa: E402
from textual.pilot import Pilot  # noqa: E402

from pflow_tui.app.app import DebuggerApp  # noqa: E402
from pflow_tui.app.graph import Graph  # noqa: E402
from pflow_tui.app.messages import Selection  # noqa: E402
from pflow_tui.app.widgets.run_header import fit  # noqa: E402
from pflow_tui.engine.ir.load import build_flow  # noqa: E402
from pflow_tui.engine.run.executor import run_flow  # noqa: E402
from pflow_tui.engine.trace.reader import TraceIndex  # noqa: E402

FLOW = {"ir_version": "0.1.0", "name": "cl", "nodes": [
    {"id": "sq", "type": "code", "executor": "cluster",
     "batch": {"items": [1, 2, 3], "parallel": True, "max_concurrent": 3},
     "params": {"inputs": {"x": "${item}"}, "code": "x: int\nresult: int = x * x"}}]}


def text(renderable: Any) -> str:
    from rich.console import Console

    console = Console(width=120, record=True, color_system=None)
    console.print(renderable)
    return console.export_text()


@pytest.fixture
def recorded(tmp_path: Path) -> Path:
    """The trace of FLOW run on a LocalCluster (in-process workers)."""
    with distributed.LocalCluster(n_workers=1, threads_per_worker=2, processes=False, protocol="tcp",
                                  dashboard_address=":0") as cluster:
        result = run_flow(build_flow(FLOW, base_dir=tmp_path), {}, trace=tmp_path / "t.json",
                          cluster=cluster.scheduler_address)
    assert result.status == "ok"
    return tmp_path / "t.json"


@pytest.mark.anyio
async def test_a_cluster_run_replays_with_its_waits_on_the_cluster(recorded: Path) -> None:
    app = DebuggerApp.replay(TraceIndex(recorded))
    async with app.run_test(size=(140, 40)) as pilot:
        for _ in range(10):
            await pilot.pause()
        app.select(Selection("sq", 1))
        for _ in range(10):
            await pilot.pause()
        await pilot.pause(0.3)
        inspector = text(app.screen.panes["inspector"].build())
        assert "waiting for a cluster worker: cluster tcp://" in " ".join(inspector.split())
    from pflow_tui.app.widgets.event_log import summary

    index = TraceIndex(recorded)
    waits = [e for e in index.events(0, len(index)) if e["kind"] == "wait.start"]
    assert waits and all("a cluster worker" in summary(e) for e in waits)


# --- the cluster, its workers, and where items ran ---------------------------------------------


async def settled(pilot: Pilot) -> None:
    for _ in range(10):
        await pilot.pause()
    await pilot.pause(0.3)


def timeline_lines(app: DebuggerApp) -> list[str]:
    """What the timeline pane shows, line by line."""
    view = app.screen.panes["timeline"]
    return [view.render_line(y).text.rstrip() for y in range(view.size.height)]


def header(app: DebuggerApp) -> str:
    """Everything the header says (as on a screen wide enough for all of it)."""
    return fit(app.screen.header.parts(), 1000).plain


def cluster_of(events: list[dict[str, Any]]) -> tuple[str, list[str], dict[int, str]]:
    """From the events: the cluster, its workers in order of first use, each item's last worker."""
    cluster = next(e["limit"] for e in events if e["kind"] == "wait.start" and e.get("on") == "cluster")
    workers = list(dict.fromkeys(e["worker"] for e in events if e["kind"] == "wait.end" and e.get("worker")))
    last = {e["index"]: e["worker"] for e in events if e["kind"] == "item.end"}
    return cluster, workers, last


async def toggle_workers(app: DebuggerApp, pilot: Pilot) -> None:
    app.screen.panes["timeline"].focus()
    await pilot.pause()
    await pilot.press("w")
    await settled(pilot)


@pytest.mark.anyio
@pytest.mark.parametrize("source", ["replay", "events"])
async def test_the_recorded_runs_cluster_workers_and_groups(recorded: Path, source: str) -> None:
    index = TraceIndex(recorded)
    events = index.events(0, len(index))
    cluster, workers, last = cluster_of(events)
    assert cluster == f"cluster {cluster.split()[-1]}" and cluster.split()[-1].startswith("tcp://")
    app = (DebuggerApp.replay(index) if source == "replay" else
           DebuggerApp.from_events(Graph.from_ir(FLOW, "cl", {}), events))
    async with app.run_test(size=(160, 40)) as pilot:
        await settled(pilot)
        app.select(Selection("sq", 1))
        await settled(pilot)
        head = " ".join(header(app).split())
        assert f"{cluster} · {len(workers)} worker{'s' if len(workers) > 1 else ''}" in head
        inspector = " ".join(text(app.screen.panes["inspector"].build()).split())
        assert f"on {last[1]}" in inspector and f"worker {last[1]}" in inspector
        assert not any(line.lstrip().startswith("─ tcp://") for line in timeline_lines(app))
        await toggle_workers(app, pilot)
        lines = timeline_lines(app)
        shown: dict[int, str] = {}
        group = ""
        for line in lines:
            if line.startswith("─ "):
                group = line[2:].split(" · ")[0]
            elif line.startswith("#"):
                shown[int(line[1:].split()[0])] = group
        assert shown == last  # every item under the worker that ran it
        assert [line[2:].split(" · ")[0] for line in lines if line.startswith("─ ")] == \
            [w for w in workers if w in last.values()]


def synthetic_app(path: Path, source: str, **kwargs: Any) -> DebuggerApp:
    trace = write_cluster_trace(path, **kwargs)
    if source == "replay":
        return DebuggerApp.replay(TraceIndex(trace))
    return DebuggerApp.from_events(Graph.from_ir(SYNTHETIC, "cl", {}), cluster_events(**kwargs))


@pytest.mark.anyio
@pytest.mark.parametrize("source", ["replay", "events"])
async def test_an_item_retried_on_another_worker_shows_both(tmp_path: Path, source: str) -> None:
    app = synthetic_app(tmp_path / "t.json", source)
    async with app.run_test(size=(140, 40)) as pilot:
        await settled(pilot)
        assert f"{CLUSTER} · 2 workers" in header(app)
        app.select(Selection("sq", 3))
        await settled(pilot)
        inspector = text(app.screen.panes["inspector"].build())
        assert f"ok · 1.5s · 2 attempts · on {B}" in inspector
        rows = [" ".join(line.split()) for line in inspector.splitlines()]
        assert "workers (2 attempts)" in rows
        assert f"attempt 1 {A} WorkerLost, retried" in rows and f"attempt 2 {B} ok" in rows


@pytest.mark.anyio
async def test_items_not_yet_on_a_worker_have_a_group_of_their_own(tmp_path: Path) -> None:
    """Back in the replay: items waiting for the cluster are in no worker's group; as the
    cursor moves on, they join their workers' groups."""
    app = synthetic_app(tmp_path / "t.json", "replay")
    events = cluster_events()
    first_worker = next(e["seq"] for e in events if e["kind"] == "wait.end")
    async with app.run_test(size=(140, 40)) as pilot:
        await settled(pilot)
        await toggle_workers(app, pilot)
        screen = app.screen
        screen.action_cursor(0)
        await settled(pilot)
        for _ in range(first_worker):
            await pilot.press("full_stop")
        await settled(pilot)
        headings = [line for line in timeline_lines(app) if line.startswith("─ ")]
        assert headings == [f"─ {A} · 1 item: 1 running",
                            "─ no worker (this machine, or not started) · 6 items: 6 pending"]
        assert f"{CLUSTER} · 1 worker" in header(app)


@pytest.mark.anyio
@pytest.mark.parametrize("source", ["replay", "events"])
async def test_worker_addresses_are_shown_literally(tmp_path: Path, source: str) -> None:
    evil = ("tcp://[bold red]evil[/]:1", "tcp://\x1b[31mred\x07:2")
    app = synthetic_app(tmp_path / "t.json", source, workers=evil, cluster="cluster tcp://[i]x[/i]:8786")
    async with app.run_test(size=(160, 40)) as pilot:
        await settled(pilot)
        assert "cluster tcp://[i]x[/i]:8786 · 2 workers" in header(app)
        app.select(Selection("sq", 3))
        await settled(pilot)
        inspector = " ".join(text(app.screen.panes["inspector"].build()).split())
        assert "on tcp://\\x1b[31mred\\x07:2" in inspector
        assert "attempt 1 tcp://[bold red]evil[/]:1 WorkerLost, retried" in inspector
        await toggle_workers(app, pilot)
        headings = [line for line in timeline_lines(app) if line.startswith("─ ")]
        assert headings[0].startswith("─ tcp://[bold red]evil[/]:1 · 4 items")
        assert headings[1].startswith("─ tcp://\\x1b[31mred\\x07:2 · 3 items")


@pytest.mark.anyio
async def test_the_help_screen_lists_w(tmp_path: Path) -> None:
    from textual.widgets import Static

    from pflow_tui.app.screens.help import HelpScreen

    app = synthetic_app(tmp_path / "t.json", "replay")
    async with app.run_test(size=(140, 40)) as pilot:
        await settled(pilot)
        await pilot.press("question_mark")
        await settled(pilot)
        assert isinstance(app.screen, HelpScreen)
        shown = " ".join(text(app.screen.query_one(Static).content).split())
        assert "w groups the rows by the cluster worker that ran them" in shown
        assert "z / w timeline: all rows or the aggregate view / rows grouped by cluster worker" in shown
