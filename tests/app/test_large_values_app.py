"""A large value (stored beside the trace, engine/large.py) in the inspector: its preview and
where it is; ``L`` loads it from its side file, shown literally."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from rich.console import Console

from pflow_tui.app.app import DebuggerApp
from pflow_tui.app.messages import selection_at
from pflow_tui.engine.ir.load import build_flow
from pflow_tui.engine.run.executor import run_flow
from pflow_tui.engine.trace.reader import TraceIndex

pytestmark = pytest.mark.anyio


def text_of(renderable: Any, width: int = 200) -> str:
    console = Console(width=width, record=True, color_system=None)
    console.print(renderable)
    return console.export_text()


@pytest.fixture
def big_trace(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("PFLOW_TUI_LARGE_VALUE", "5000")
    text = "[red]x[/red]\x1b[31m" + "y" * 6000 + "THE-END"
    flow = {"nodes": [{"id": "big", "type": "echo", "params": {"message": text}}], "edges": []}
    path = tmp_path / "t.json"
    run_flow(build_flow(flow), {}, trace=path)
    return path


async def test_the_inspector_shows_a_preview_and_L_loads_the_value(big_trace: Path) -> None:
    app = DebuggerApp.replay(TraceIndex(big_trace), selection_at("big"))
    async with app.run_test(size=(120, 40)) as pilot:
        await pilot.pause()
        await pilot.press("G")  # the end of the run
        await pilot.pause()
        inspector = app.screen.query_one("#inspector")
        shown = text_of(inspector.build())
        assert "large value: 6,024 characters, stored once in t.results/value-" in shown
        assert "L loads it" in shown
        assert "THE-END" not in shown  # the preview only
        assert "[red]x[/red]" in shown  # literally, not as markup
        await pilot.press("L")
        await pilot.pause()
        shown = text_of(inspector.build())
        assert "THE-END" in shown
        assert "L loads it" not in shown
        assert "[red]x[/red]" in shown
