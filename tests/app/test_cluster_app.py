"""A run on a Dask cluster in the debugger: its waits on the cluster read as such.

(The header's cluster, the timeline grouped by worker and the inspector's worker are not
built yet: docs/cluster.md, "Not yet".)
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

distributed = pytest.importorskip("distributed")

from pflow_tui.app.app import DebuggerApp  # noqa: E402
from pflow_tui.app.messages import Selection  # noqa: E402
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
