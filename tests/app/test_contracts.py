"""The app's contracts (app/contracts.py) hold: every pane is a Pane, every source of events
an EventSource, the app a Debugger, and the panes that ask for selections SelectionSources."""

from __future__ import annotations

import ast
import inspect
from pathlib import Path

import pytest

from pflow_tui.app.app import DebuggerApp
from pflow_tui.app.commands import GoToProvider
from pflow_tui.app.contracts import Debugger, EventSource, Pane
from pflow_tui.app.graph import Graph
from pflow_tui.app.messages import SelectionSource
from pflow_tui.app.model import RunModel
from pflow_tui.app.runner import EventFeed, LiveRun, TraceFeed
from pflow_tui.app.screens.run import RunScreen
from pflow_tui.app.widgets.dag import DagView
from pflow_tui.app.widgets.event_log import EventList, EventLogView
from pflow_tui.app.widgets.inspector import Inspector
from pflow_tui.app.widgets.namespace_tree import NamespaceTree
from pflow_tui.app.widgets.timeline import TimelineView
from pflow_tui.engine.ir.load import build_flow
from pflow_tui.engine.run.executor import run_flow
from pflow_tui.engine.trace.reader import TraceIndex

PANES = (DagView, NamespaceTree, TimelineView, Inspector, EventLogView)
FLOW = {"name": "tiny", "nodes": [{"id": "a", "type": "echo", "params": {"value": 1}}], "edges": []}


def parameters(function: object) -> list[str]:
    return list(inspect.signature(function).parameters)  # type: ignore[arg-type]


def members(protocol: type) -> list[str]:
    return sorted(n for n in vars(protocol) if not n.startswith("_"))


@pytest.mark.parametrize("pane", PANES, ids=lambda cls: cls.__name__)
def test_every_pane_is_a_pane(pane: type) -> None:
    assert issubclass(pane, Pane)
    for name in members(Pane):
        assert parameters(getattr(pane, name)) == parameters(getattr(Pane, name)), name


def test_the_run_screen_holds_its_panes_as_panes() -> None:
    screen = RunScreen(RunModel(Graph.from_ir(FLOW, "tiny")), EventFeed([]))
    assert [type(view) for view in screen.views] == list(PANES)
    assert list(screen.panes.values()) == list(screen.views)  # the same widgets, in order


def test_every_source_of_events_is_an_event_source(tmp_path: Path) -> None:
    trace = tmp_path / "t.json"
    run_flow(build_flow(FLOW), {}, trace=trace)
    sources = [EventFeed([]), TraceFeed(TraceIndex(trace)),
               LiveRun(build_flow(FLOW), {}, tmp_path / "live.json")]
    for source in sources:
        assert isinstance(source, EventSource), type(source).__name__
        for name in ("start", "drain", "drain_pending", "stop", "join"):
            assert parameters(getattr(source, name)) == parameters(getattr(EventSource, name))[1:], name
    assert [s.live for s in sources] == [False, False, True]
    assert not isinstance(object(), EventSource)


def test_the_app_is_what_the_command_palette_needs() -> None:
    """commands.py knows the app only as a contracts.Debugger (no import of app.py: no cycle)."""
    app = DebuggerApp.from_events(Graph.from_ir(FLOW, "tiny"), [])
    assert isinstance(inspect.getattr_static(DebuggerApp, "model"), property)
    assert parameters(app.select) == parameters(Debugger.select)[1:]
    tree = ast.parse(inspect.getsource(inspect.getmodule(GoToProvider)))  # type: ignore[arg-type]
    imported = {node.module for node in ast.walk(tree) if isinstance(node, ast.ImportFrom)}
    assert "app" not in imported and "contracts" in imported


@pytest.mark.parametrize("pane", [DagView, NamespaceTree, TimelineView, EventList], ids=lambda c: c.__name__)
def test_panes_that_ask_for_selections_are_selection_sources(pane: type) -> None:
    model = RunModel(Graph.from_ir(FLOW, "tiny"))
    widget = pane(model)
    assert isinstance(widget, SelectionSource) and widget.requested is None
