"""The app as a user drives it: selection, navigation, next failure, safety, live runs."""

from __future__ import annotations

from typing import Any

import pytest
from recording import record_run

from pflow_tui.app.app import DebuggerApp
from pflow_tui.app.graph import Graph
from pflow_tui.app.messages import Selection
from pflow_tui.engine.ir.load import build_flow

pytestmark = pytest.mark.anyio

FLOW = {
    "name": "demo",
    "nodes": [
        {"id": "make", "type": "shell", "params": {"command": "echo '[0,1,2,3,4,5,6,7]'"}},
        {"id": "square", "type": "shell",
         "params": {"command": "test ${item} -ne 3 && test ${item} -ne 6 && echo $(( ${item} * ${item} ))"},
         "batch": {"items": "${make.stdout}", "parallel": True, "max_concurrent": 3,
                   "error_handling": "continue"}},
        {"id": "report", "type": "echo", "params": {"message": "failed: ${square.error_count}"}},
    ],
    "edges": [{"from": "make", "to": "square"}, {"from": "square", "to": "report"}],
}

HOSTILE = {
    "name": "hostile",
    "nodes": [{"id": "evil", "type": "shell", "params": {
        "command": "printf '[bold red]x[/] [link=http://e.vil]click[/link] \\033[31mred\\033[0m'"}}],
}




def recorded(doc: dict[str, Any], tmp_path) -> tuple[Graph, list[dict[str, Any]]]:
    return record_run(build_flow(doc), tmp_path / "t.json")


@pytest.fixture
def demo(tmp_path):
    return recorded(FLOW, tmp_path)


async def test_next_failure_walks_the_failed_iterations(demo):
    app = DebuggerApp.from_events(*demo)
    async with app.run_test(size=(120, 36)) as pilot:
        await pilot.pause()
        screen = app.screen
        # a finished run with failures opens on its first failure
        assert screen.selection == Selection("square", 3)
        await pilot.press("n")
        assert screen.selection == Selection("square", 6)
        await pilot.press("n")  # wraps around
        assert screen.selection == Selection("square", 3)
        await pilot.press("N")
        assert screen.selection == Selection("square", 6)
        await pilot.press("escape")
        assert screen.selection == Selection("square")


async def test_inspector_shows_the_selected_iteration(demo):
    app = DebuggerApp.from_events(*demo)
    async with app.run_test(size=(120, 36)) as pilot:
        await pilot.pause()
        app.select(Selection("square", 2))
        await pilot.pause()
        from rich.console import Console

        console = Console(width=80, record=True, color_system=None)
        console.print(app.screen.query_one("#inspector").build())
        text = console.export_text()
        assert "square.iteration_2  shell" in text  # the path under the flow (the header names it)
        assert "echo $(( 2 * 2 ))" in text  # the resolved param, beside its template
        assert "${item}" in text
        assert '"stdout": "4"' in text


async def test_selection_from_the_tree_drives_the_other_panes(demo):
    app = DebuggerApp.from_events(*demo)
    async with app.run_test(size=(120, 36)) as pilot:
        await pilot.pause()
        tree = app.screen.query_one("#tree")
        tree.focus()
        await pilot.press("home", "down")  # the root, then its first node: "make"
        await pilot.pause()
        assert app.screen.selection == Selection("make")
        assert app.screen.user_selected
        # a move the app makes (here: selecting elsewhere) does not echo back from the tree
        app.select(Selection("report"))
        await pilot.pause()
        await pilot.pause()
        assert app.screen.selection == Selection("report")


async def test_toggle_and_maximise_panes(demo):
    app = DebuggerApp.from_events(*demo)
    async with app.run_test(size=(100, 30)) as pilot:
        await pilot.pause()
        log = app.screen.query_one("#log")
        assert log.display
        await pilot.press("5")
        assert not log.display
        await pilot.press("5")
        assert log.display
        app.screen.query_one("#dag").focus()
        await pilot.press("m")
        assert app.screen.maximized is app.screen.query_one("#dag")
        await pilot.press("m")
        assert app.screen.maximized is None


async def test_untrusted_output_is_shown_literally(tmp_path):
    app = DebuggerApp.from_events(*recorded(HOSTILE, tmp_path))
    async with app.run_test(size=(120, 36)) as pilot:
        await pilot.pause()
        app.select(Selection("evil"))
        await pilot.pause()
        svg = app.export_screenshot().replace("&#160;", " ")
        assert "[bold red]x[/]" in svg
        assert "[link=http://e.vil]click[/link]" in svg
        assert "\x1b" not in svg
        from rich.console import Console

        console = Console(width=100, record=True, color_system=None)
        console.print(app.screen.query_one("#inspector").build())
        text = console.export_text()
        assert '"stdout": "[bold red]x[/] [link=http://e.vil]click[/link] \\u001b[31mred' in text
        assert "\x1b" not in text  # the escape is made visible, never sent


async def test_live_run_fills_the_panes_and_writes_the_trace(tmp_path):
    spec = build_flow(FLOW)
    app = DebuggerApp.live(spec, {}, tmp_path / "live.json")
    async with app.run_test(size=(120, 36)) as pilot:
        for _ in range(400):  # the run is a worker process: allow for a slow machine
            await pilot.pause(0.05)
            if app.screen.model.status not in ("pending", "running"):
                break
        model = app.screen.model
        assert model.status == "ok"
        assert model.latest["square"].items.failed == 2
        for _ in range(10):  # the run's thread finishes the trace, then the app reacts
            await pilot.pause(0.05)
        # the finished run lands on its first failure, whatever was followed before
        assert app.screen.selection == Selection("square", 3)
        assert (tmp_path / "live.json").exists()
    from pflow_tui.engine.trace.writer import read_trace

    assert read_trace(tmp_path / "live.json").status == "ok"


async def test_a_live_run_with_processes_and_rate_limits(tmp_path):
    """The sample with a code batch in worker processes and branches sharing an llm limit."""
    from pathlib import Path

    from pflow_tui.app.status import PENDING
    from pflow_tui.engine.ir.load import load_flow

    spec = load_flow(Path(__file__).resolve().parents[2] / "sample_flows" / "cpu_and_limits.json")
    app = DebuggerApp.live(spec, {"bounds": [500, 1000, 1500, 2000, 2500, 3000]}, tmp_path / "live.json")
    async with app.run_test(size=(120, 36)) as pilot:
        for _ in range(600):  # the run is a worker process: allow for a slow machine
            await pilot.pause(0.05)
            if app.screen.model.status not in ("pending", "running"):
                break
        model = app.screen.model
        assert model.status == "ok", model.error
        assert model.latest["primes"].items.done == 6
        parity = model.latest["parity"].items
        waited = [i for i in range(parity.count) if parity.waits and parity.waits[0][i]]
        assert waited and PENDING not in parity.status  # they waited, and then ran
        app.select(Selection("parity", waited[0]))
        await pilot.pause()
        from rich.console import Console

        console = Console(width=120, record=True, color_system=None)
        console.print(app.screen.query_one("#inspector").build())
        text = " ".join(console.export_text().split())
        assert "waiting for rate limit 'llm': max_concurrent 3)" in text


FAN = {
    "name": "fan",
    "nodes": [
        {"id": "filter", "type": "echo", "params": {"message": "data"}},
        {"id": "analyze", "type": "echo", "params": {"message": "a ${filter.echo}"}},
        {"id": "visualize", "type": "shell", "params": {"command": "exit 4"}},
        {"id": "merge", "type": "merge", "params": {"strategy": "by_branch"}},
    ],
    "edges": [
        {"from": "filter", "to": "analyze", "parallel_group": "g"},
        {"from": "filter", "to": "visualize", "parallel_group": "g"},
        {"from": "analyze", "to": "merge"}, {"from": "visualize", "to": "merge"},
    ],
    "parallel_groups": {"g": {"error_handling": "continue"}},
}

PIPE = {
    "name": "pipe",
    "nodes": [
        {"id": "per_file", "type": "workflow", "batch": {"items": [1, 2, 3], "parallel": True},
         "params": {"param_mapping": {"n": "${item}"}, "workflow_ir": {
             "inputs": {"n": {"type": "integer"}},
             "nodes": [{"id": "read", "type": "echo", "params": {"message": "read ${n}"}},
                       {"id": "write", "type": "echo", "params": {"message": "${read.echo}!"}}],
             "edges": [{"from": "read", "to": "write"}]}}},
    ],
}


async def test_branches_nest_in_the_tree_and_fill_the_timeline(tmp_path):
    app = DebuggerApp.from_events(*recorded(FAN, tmp_path))
    async with app.run_test(size=(120, 36)) as pilot:
        await pilot.pause()
        tree = app.screen.query_one("#tree")
        fan_node = next(n for n in tree.root.children if n.data.node_id == "filter")
        labels = [str(n.label) for n in fan_node.children if n.data.kind == "branch"]
        assert labels == ["✓ branch_0  → analyze", "✗ branch_1  → visualize"]
        branch_1 = next(n for n in fan_node.children if n.data.kind == "branch" and n.data.lo == 1)
        assert [c.data.path for c in branch_1.children] == ["fan.filter.branch_1.visualize"]
        app.select(Selection("filter"))
        await pilot.pause()
        timeline = app.screen.query_one("#timeline")
        rows = [timeline.render_line(y).text for y in range(1, 3)]
        assert rows[0].startswith("analyze ✓") and rows[1].startswith("visualize ✗")


async def test_the_dag_opens_a_nested_flow(tmp_path):
    app = DebuggerApp.from_events(*recorded(PIPE, tmp_path))
    async with app.run_test(size=(120, 36)) as pilot:
        await pilot.pause()
        dag = app.screen.query_one("#dag")
        dag.focus()
        app.select(Selection("per_file"))
        await pilot.press("enter")
        assert dag.key == ("per_file",)
        assert set(dag.graph_layout.boxes) == {"read", "write"}
        text = "\n".join(dag.render_line(y).text for y in range(dag.graph_layout.height))
        assert "read" in text and "3/3" in text  # one run per item, summed up
        await pilot.press("down", "down")  # "read", then "write": its latest run is selected
        assert app.screen.selection.path is not None
        assert app.screen.selection.path.endswith(".write")
        await pilot.press("backspace")
        assert dag.key == () and dag.selected == "per_file"


async def test_toasts_show_markup_from_a_run_literally(tmp_path) -> None:
    """A path or message holding ``[...]`` (from a run, a trace, a user) is shown as typed, from
    the app and from any pane alike."""
    from textual.widgets._toast import Toast

    app = DebuggerApp.from_events(Graph("f", {}, [], ""), [])
    async with app.run_test(size=(100, 30), notifications=True) as pilot:
        app.notify("cannot open [red]x[/red].json", title="[b]t[/b]")
        app.screen.notify("[bold]node[/bold] failed")
        await pilot.pause()
        shown = [toast.render().plain for toast in app.screen.query(Toast)]
        assert any("cannot open [red]x[/red].json" in text and "[b]t[/b]" in text for text in shown), shown
        assert any("[bold]node[/bold] failed" in text for text in shown), shown
