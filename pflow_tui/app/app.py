"""The debugger app: a run screen of five panes over one view model.

``DebuggerApp.live(spec, inputs, trace)`` runs a flow in a worker process and shows it as
it goes; ``DebuggerApp.from_events(graph, events)`` and ``DebuggerApp.replay(index)`` show
recorded events through the very same panes. A timer drains the events that arrived (ten
times a second), applies them to the model in one batch, and lets each pane repaint what
changed. A replay's cursor going back undoes the later events in the model
(``RunModel.rewind``) and the panes repaint the same way.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import re
import signal
import time
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any, ClassVar

import orjson
from rich.text import Text as RichText
from textual import on
from textual.app import App, ComposeResult, SystemCommand
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, Vertical
from textual.notifications import SeverityLevel
from textual.screen import Screen
from textual.timer import Timer
from textual.widget import Widget
from textual.widgets import Input, TextArea

from ..crash import EXIT_INTERNAL, report
from ..engine.ir.spec import FlowSpec, children_ir
from ..engine.problems import FlowError
from ..engine.python.pyprogram import Program
from ..engine.run.gate import Breakpoint, FailureBreak, ItemBreak, NodeBreak
from ..engine.trace.check import MALFORMED_NOTE, malformed_note
from ..engine.trace.diff import TraceDiff, diff_traces
from ..engine.trace.events import Event
from ..engine.trace.reader import TraceIndex
from ..engine.trace.replay import LazyEvents
from ..engine.trace.rerun import prepare_rerun
from ..engine.trace.trust import fork_plan, rerun_plan, verify
from ..engine.trace.writer import DEFAULT_DIR, TraceError, default_trace_path
from ..text import literal, plural
from .commands import GoToProvider
from .contracts import EventSource, Pane
from .graph import Graph
from .messages import Selection, SelectionRequested, SelectionSource
from .model import Changes, RunModel
from .runner import EventFeed, LiveRun, TraceFeed
from .screens.ask import AskPath
from .screens.confirm import Confirm, Consent
from .screens.diff import DiffScreen
from .screens.fork import ForkScreen
from .screens.help import HelpScreen
from .screens.runs import RunsScreen
from .status import RUNNING
from .widgets.dag import DagView
from .widgets.event_log import EventLogView
from .widgets.inspector import Inspector
from .widgets.key_bar import KeyBar
from .widgets.namespace_tree import NamespaceTree
from .widgets.run_header import RunHeader
from .widgets.scrubber import Scrubber
from .widgets.timeline import TimelineView

TICK = 1 / 10  # the screen follows the run in batches, ten times a second
# Events are applied in short slices (at a tick, and between ticks a short pause apart while
# more are waiting; the panes show them at the next tick), so a key never waits long for its
# turn, even in a flood.
FEED_BUDGET = 0.012
FEED_PAUSE = 0.008
EVENTS_PER_STEP = 500
PANES = ("dag", "tree", "timeline", "inspector", "log")
TITLES = {"dag": "DAG", "tree": "Namespaces", "timeline": "Timeline", "inspector": "Inspector",
          "log": "Events"}


class RunScreen(Screen[None]):
    """One run (live or recorded) in five panes."""

    # Key names are what a terminal sends for the typed character (textual.keys:
    # "." is full_stop, not period); key_display shows the character in the footer.
    BINDINGS: ClassVar[list[BindingType]] = [
        # a priority binding, so keys typed right after it ("/status" at once) go into the
        # box: the others are sent to the pane that had focus before it handles "/"
        Binding("slash", "filter_events", "Filter", key_display="/", priority=True),
        Binding("n", "next_failure(1)", "Next failure"),
        Binding("N", "next_failure(-1)", "Prev failure", show=False),
        Binding("escape", "up", "Back", show=False),
        Binding("1", "toggle('dag')", "DAG", show=False),
        Binding("2", "toggle('tree')", "Tree", show=False),
        Binding("3", "toggle('timeline')", "Timeline", show=False),
        Binding("4", "toggle('inspector')", "Inspector", show=False),
        Binding("5", "toggle('log')", "Events", show=False),
        Binding("m", "maximize_pane", "Maximise"),
        Binding("e", "fork", "Fork item", show=False),
        Binding("L", "load_large", "Load large values", show=False),
        Binding("left_square_bracket", "resize(-5)", "Narrower", show=False, key_display="["),
        Binding("right_square_bracket", "resize(5)", "Wider", show=False, key_display="]"),
        # live: pause, step, breakpoints
        Binding("p", "pause", "Pause/continue"),
        Binding("b", "toggle_break", "Breakpoint", show=False),
        Binding("x", "toggle_break_on_failure", "Break on failure", show=False),
        # replay: the cursor (live: "." steps one node or item, ">" to the next node)
        Binding("full_stop", "step(1)", "Step", key_display="."),
        Binding("comma", "step(-1)", "Back", key_display=","),
        Binding("greater_than_sign", "step_kind(1, 'node')", "Next node", show=False, key_display=">"),
        Binding("less_than_sign", "step_kind(-1, 'node')", "Prev node", show=False, key_display="<"),
        Binding("right_curly_bracket", "step_kind(1, 'item')", "Next item", show=False,
                key_display="}"),
        Binding("left_curly_bracket", "step_kind(-1, 'item')", "Prev item", show=False,
                key_display="{"),
        Binding("f", "step_kind(1, 'failure')", "Next failure event", show=False),
        Binding("F", "step_kind(-1, 'failure')", "Prev failure event", show=False),
        Binding("g", "cursor(0)", "Start", show=False),
        Binding("G", "cursor(-1)", "End", show=False),
        # the run: these ask first while it is going (a text box that has focus takes the
        # letters first, so typing in the filter never stops or quits anything)
        Binding("s", "app.stop", "Stop"),
        Binding("r", "app.rerun", "Re-run"),
        Binding("R", "app.rerun_failed", "Re-run failed"),
        Binding("q", "app.request_quit", "Quit"),
    ]

    def __init__(self, model: RunModel, source: EventSource, at: Selection | None = None) -> None:
        super().__init__()
        self.model = model
        self.source = source
        self.selection = Selection()
        self.pending_at = at  # --at: select this once it exists
        self.user_selected = at is not None
        self.left_width = 42
        self._finished = False
        self.skipped_noted = 0  # malformed events of a replay the user was told about
        self._fed = Changes()  # what the replay's feed applied since the last tick
        self._feeder: Timer | None = None
        self._clock_origin: float | None = None
        self._pause_asked = False
        runs_breaks = source.breakpoints if isinstance(source, LiveRun) else []
        self.breaks: set[str] = {b.node_id for b in runs_breaks if isinstance(b, NodeBreak)}
        self.break_on_failure = any(isinstance(b, FailureBreak) for b in runs_breaks)
        self.item_breaks: list[ItemBreak] = [b for b in runs_breaks if isinstance(b, ItemBreak)]
        trace = str(source.trace_path) if source.trace_path else ""
        self.header = RunHeader(model, live=source.live, trace=trace, id="header")
        self.dag = DagView(model, id="dag")
        self.inspector = Inspector(model, id="inspector")
        self.event_log = EventLogView(model, id="log")
        tree, timeline = NamespaceTree(model, id="tree"), TimelineView(model, id="timeline")
        self.panes: dict[str, Widget] = {"dag": self.dag, "tree": tree, "timeline": timeline,
                                         "inspector": self.inspector, "log": self.event_log}
        # the same panes, as what the screen asks of them (a type checker checks here that
        # each one is a contracts.Pane)
        self.views: tuple[Pane, ...] = (self.dag, tree, timeline, self.inspector, self.event_log)

    def compose(self) -> ComposeResult:
        yield self.header
        with Horizontal(id="main"):
            with Vertical(id="left"):
                yield self.panes["dag"]
                yield self.panes["tree"]
            with Vertical(id="right"):
                yield self.panes["timeline"]
                yield self.panes["inspector"]
        yield self.panes["log"]
        if isinstance(self.source, TraceFeed):
            yield Scrubber(self.model, self.source.index, id="scrubber")
        yield KeyBar()

    def on_mount(self) -> None:
        for name, pane in self.panes.items():
            pane.add_class("pane")
            pane.border_title = TITLES[name]
        self.tick()
        self.set_interval(TICK, self.tick)
        if self.selection.node_id is None and self.model.graph.start:
            self.select(Selection(self.model.graph.start))
        self.dag.breakpoints = set(self.breaks)
        self.dag.focus()
        self.call_after_refresh(self.source.start)  # run once the screen is up

    # --- the event pump -------------------------------------------------------------------

    def tick(self, changes: Changes | None = None) -> None:
        """Apply whatever events arrived, then let every pane repaint what changed (and what
        ``changes`` says changed before: the replay cursor going back)."""
        changes = changes if changes is not None else Changes()
        changes.merge(self._fed)
        self._fed = Changes()
        changes.merge(self._apply_some(FEED_BUDGET))
        self._feed_later()
        self._follow_clock(changes)
        if changes:
            with self.app.batch_update():
                for pane in self.views:
                    pane.update_from(changes)
                if not self.user_selected and (changes.new_nodes or changes.gone):
                    target = self._follow_target()
                    if target is not None and target != self.selection:
                        self.select(target)
        if changes or self.source.running or not self._finished:
            self.header.refresh_status()
            if self.replay:
                self.query_one(Scrubber).refresh()
        if self.pending_at is not None and self._exists(self.pending_at):
            self.select(self.pending_at)
            self.pending_at = None
        elif self.pending_at is not None:
            self._check_pending()
        self._note_skipped()
        if not self._finished and not self.source.running and self.model.status not in (
                "pending", "running"):
            self._finished = True
            self._on_finished()
        elif not self._finished and self._worker_died():
            self._finished = True
            run = self.source
            assert isinstance(run, LiveRun)  # (only a live run has a process: see _worker_died)
            stderr = run.stderr.decode(errors="replace").strip().splitlines()
            self.notify(literal("\n".join(stderr[-8:]) or "no message"), severity="error", timeout=30,
                        title=f"The run's process ended without finishing (exit code "
                              f"{run.returncode}); its trace has what it wrote")

    def _note_skipped(self) -> None:
        """A replay says how many malformed events it skipped (events are checked as they are
        read: said once the events up to the cursor are in, again if more are found)."""
        source = self.source
        if not isinstance(source, TraceFeed) or source.loading:
            return
        n = source.index.skipped
        if n > self.skipped_noted:
            self.skipped_noted = n
            self.notify(f"{malformed_note(n)}: they are left out of this replay ({MALFORMED_NOTE})",
                        title="Malformed trace", severity="warning", timeout=10)

    def _follow_clock(self, changes: Changes) -> None:
        """In a live run, time goes on between events: running bars and clocks keep growing.
        (Recorded runs keep the events' own time, so they always look the same.)"""
        model = self.model
        if not self.source.live or model.status != "running" or not model.events:
            return
        now = time.perf_counter()
        if self._clock_origin is None:
            self._clock_origin = now - model.t
        t = now - self._clock_origin
        if t > model.t:
            model.t = t
            changes.clock = True

    def _feed_later(self) -> None:
        """While events wait (a flood, a replay loading), apply the next slice after a pause."""
        if self._feeder is None and self.source.drain_pending():
            self._feeder = self.set_timer(FEED_PAUSE, self._feed)

    def _feed(self) -> None:
        """Between ticks: apply a slice of the waiting events (shown at the next tick)."""
        self._feeder = None
        self._fed.merge(self._apply_some(FEED_BUDGET))
        self._feed_later()

    def _apply_some(self, budget: float) -> Changes:
        """Apply the events that arrived, within a time budget (the rest wait for next time)."""
        changes = Changes()
        deadline = time.perf_counter() + budget
        while events := self.source.drain(EVENTS_PER_STEP):
            changes.merge(self.model.apply(events))
            if time.perf_counter() > deadline:
                break
        return changes

    def _exists(self, selection: Selection) -> bool:
        if selection.path is not None:
            return selection.path in self.model.visits
        state = self.model.latest.get(selection.node_id or "")
        if state is None or selection.index is None:
            return state is not None
        return state.items is not None and selection.index < state.items.count

    def _check_pending(self) -> None:
        """Say so when ``--at`` can no longer be shown: an iteration beyond its batch's size
        (known once the batch started), or a place the run ended without reaching."""
        at = self.pending_at
        assert at is not None
        if not at.node_id:  # the run itself (--at FLOW): nothing to wait for
            self.pending_at = None
            return
        node = at.node_id
        state = (self.model.visits.get(at.path) if at.path is not None
                 else self.model.latest.get(node))
        items = state.items if state is not None else None
        if at.index is not None and items is not None and (items.declared or state.status != RUNNING):
            why = (f"{literal(node)} has {items.count:,} item{'s' if items.count != 1 else ''}: "
                   f"there is no iteration_{at.index}")
        elif self._finished:
            why = f"the run ended without reaching {literal(at.path or node)}"
        else:
            return
        self.pending_at = None
        self.notify(why, title="--at", severity="warning", timeout=10)
        if state is not None:
            self.user_selected = True
            self.select(Selection(at.node_id, None, at.path))

    def _worker_died(self) -> bool:
        """A live run's process is gone, but the run never ended (a crash, a kill)."""
        source = self.source
        return (isinstance(source, LiveRun) and not source.running and source.returncode is not None
                and self.model.status in ("pending", "running") and not source.drain_pending())

    def _follow_target(self) -> Selection | None:
        """While the user has not chosen, follow the node that started last."""
        last = self.model.last_started
        return Selection(last.id) if last is not None else None

    def _on_finished(self) -> None:
        self.app.refresh_bindings()
        model = self.model
        failures = model.failures()
        if failures and not self.user_selected:
            node_id, index = failures[0]
            self.select(Selection(node_id, index))
        if self.source.live:
            word = {"ok": "finished ok", "error": "failed", "cancelled": "stopped"}.get(model.status,
                                                                                        model.status)
            detail = f"{plural(len(failures), 'failure')} · " if failures else ""
            self.notify(f"{detail}trace: {self.source.trace_path}", title=f"Run {word}",
                        severity="error" if model.status == "error" else "information", timeout=8)

    # --- selection ------------------------------------------------------------------------

    def select(self, selection: Selection) -> None:
        self.selection = selection
        for pane in self.views:
            pane.select(selection)

    @on(SelectionRequested)
    def _selection_requested(self, message: SelectionRequested) -> None:
        message.stop()
        if message.pane is not None and message.pane.requested == message.selection:
            message.pane.requested = None
        self.user_selected = True
        if message.selection != self.selection:
            self.select(message.selection)

    def settled(self) -> Selection:
        """The selection the keys act on: first the one the focused pane has just asked for,
        when its message is still on the way (``down`` then ``b`` typed fast)."""
        pane = self.focused
        if isinstance(pane, SelectionSource) and pane.requested is not None:
            requested = pane.requested
            pane.requested = None
            self.user_selected = True
            if requested != self.selection:
                self.select(requested)
        return self.selection

    def action_next_failure(self, step: int) -> None:
        failures = self.model.failures()
        if not failures:
            self.notify("No failures (yet).", timeout=3)
            return
        settled = self.settled()
        current = (settled.node_id, settled.index)
        keys = [(n, i) for n, i in failures]
        if current in keys:
            pos = (keys.index(current) + step) % len(keys)
        else:
            pos = 0 if step > 0 else len(keys) - 1
        self.user_selected = True
        node_id, index = keys[pos]
        self.select(Selection(node_id, index))
        self.notify(f"failure {pos + 1} of {len(keys)}", timeout=2)

    def action_filter_events(self) -> None:
        """``/`` from any pane: show the Events pane (restoring a maximised other pane) and
        put the cursor in its filter; enter or escape goes back to the events."""
        log = self.event_log
        if self.maximized is not None and self.maximized is not log:
            self.minimize()
        if not log.display:
            self.action_toggle("log")
        log.action_focus_filter()

    def action_up(self) -> None:
        if self.screen.maximized is not None:
            self.screen.minimize()
        elif self.settled().index is not None:
            self.user_selected = True
            self.select(Selection(self.selection.node_id))
        else:
            self.app.back_to_runs()  # type: ignore[attr-defined]

    # --- replay: the cursor ----------------------------------------------------------------

    @property
    def replay(self) -> bool:
        return isinstance(self.source, TraceFeed)

    @property
    def live(self) -> bool:
        return isinstance(self.source, LiveRun)

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        if action == "filter_events":  # in a text box "/" is a character
            return not isinstance(self.focused, (Input, TextArea))
        if action == "cursor" or (action in ("step", "step_kind") and parameters and
                                  parameters[0] == -1):
            return self.replay  # going back in time: only in a replay
        if action in ("step", "step_kind"):
            return self.replay or (self.live and self.source.running)
        if action == "pause":
            return self.live and self.source.running
        if action in ("toggle_break", "toggle_break_on_failure"):
            return self.live  # (kept for a re-run once the run is over)
        return True

    def action_step(self, step: int) -> None:
        if self.live:
            self._command("step")  # release one node start or one batch item
            return
        self.move_cursor(len(self.model.events) + step)

    def action_step_kind(self, step: int, kind: str) -> None:
        """To the next (or previous) event of a kind: node, item or failure."""
        if self.live:
            self._command("step_node" if kind == "node" else "step")
            return
        assert isinstance(self.source, TraceFeed)
        # from the event the cursor is after: the next one of the kind may be right after it
        found = self.source.index.find(len(self.model.events) - 1, step, kind)
        if found is None:
            self.notify(f"No {'later' if step > 0 else 'earlier'} {kind} event.", timeout=2)
        else:
            self.move_cursor(found + 1)  # the cursor is after the event: it has happened

    def action_cursor(self, at: int) -> None:
        assert isinstance(self.source, TraceFeed)
        self.move_cursor(len(self.source.index) if at < 0 else at)

    # --- fork one item ---------------------------------------------------------------------

    def action_load_large(self) -> None:
        """Show the selection's large values (stored beside the trace) in full, instead of
        their preview."""
        self.inspector.load_large()

    def action_fork(self) -> None:
        """Run the selected iteration (or node) again, alone, with params edited in an editor."""
        sel, model = self.settled(), self.model
        trace = self.source.trace_path
        if sel.node_id is None or trace is None or self.source.running:
            self.notify("Select a node or an iteration of a finished run to fork it.", timeout=3)
            return
        state = model.visits.get(sel.path) if sel.path else model.latest.get(sel.node_id)
        if state is None:
            self.notify("It has not run: nothing to fork.", timeout=3)
            return
        node_start = model.event(state.start_seq) or {}
        params = dict(node_start.get("params") or {})
        end: dict[str, Any] = model.event(state.end_seq) or {}
        if sel.index is not None and state.items is not None:
            params.update((model.iteration_event(state, sel.index, end=False) or {}).get("params") or {})
            end = model.iteration_event(state, sel.index) or {}
        original = {"status": end.get("status"), "outputs": end.get("outputs"),
                    "error": end.get("error"), "duration": end.get("duration")} if end else None
        fork = ForkScreen(Path(trace), state.path, sel.index, params, original)
        verdict = verify(trace)
        if verdict.trusted:
            self.app.push_screen(fork)
            return
        where = state.path if sel.index is None else f"{state.path}.iteration_{sel.index}"
        plan = fork_plan(where, str(node_start.get("type", "?")), params, verdict, str(trace))
        self.app.push_screen(Consent("Fork an item of a trace you did not make?", plan),
                             lambda yes: self.app.push_screen(fork) if yes else None)

    # --- live: pause, step, breakpoints ----------------------------------------------------

    def _command(self, line: str) -> None:
        if isinstance(self.source, LiveRun):
            self.source.command(line)

    def action_pause(self) -> None:
        """Pause (running items finish, nothing new starts) or continue."""
        if self.model.paused is not None or self._pause_asked:
            self._pause_asked = False
            self._command("resume")
        else:
            self._pause_asked = True
            self._command("pause")

    def action_toggle_break(self) -> None:
        """Break before the selected node starts (again: clear it)."""
        node = self.settled().node_id
        if node is None:
            return
        if node in self.breaks:
            self.breaks.discard(node)
            self._command(f"unbreak node:{node}")
            self.notify(f"breakpoint on {literal(node)} cleared", timeout=2)
        else:
            self.breaks.add(node)
            self._command("break " + orjson.dumps(NodeBreak(node).to_json()).decode())
            self.notify(f"breakpoint: pause before {literal(node)} starts", timeout=2)
        self.dag.breakpoints = set(self.breaks)

    def add_item_break(self, condition: str | None) -> None:
        """A conditional breakpoint on the selected batch node's items, from a short text:
        ``index 3``, ``match TEXT`` (value or params), ``error REGEX``, ``slower 0.5`` (seconds)
        or ``slower p95`` (than its finished siblings so far)."""
        node = self.settled().node_id
        if not condition or node is None:
            return
        word, _, rest = condition.strip().partition(" ")
        rest = rest.strip()
        try:
            if word == "index":
                bp = ItemBreak(node, index=int(rest))
            elif word == "match" and rest:
                bp = ItemBreak(node, match=rest)
            elif word == "error" and rest:
                bp = ItemBreak(node, error=rest)
            elif word == "slower" and rest == "p95":
                bp = ItemBreak(node, slower_than_p95=True)
            elif word == "slower":
                bp = ItemBreak(node, slower_than=float(rest))
            else:
                raise ValueError("use: index N, match TEXT, error REGEX, slower SECONDS or slower p95")
        except ValueError as exc:
            self.notify(literal(str(exc)), title="Not a breakpoint", severity="error")
            return
        self.item_breaks.append(bp)
        self._command("break " + orjson.dumps(bp.to_json()).decode())
        self.notify(f"breakpoint on {literal(node)} items: {literal(condition)}", timeout=3)

    def breakpoints(self) -> list[Breakpoint]:
        """The breakpoints set now (on the command line or in the app): a re-run keeps them."""
        found: list[Breakpoint] = [NodeBreak(node) for node in sorted(self.breaks)]
        if self.break_on_failure:
            found.append(FailureBreak())
        return found + self.item_breaks

    def action_toggle_break_on_failure(self) -> None:
        self.break_on_failure = not self.break_on_failure
        if self.break_on_failure:
            self._command("break " + orjson.dumps(FailureBreak().to_json()).decode())
        else:
            self._command("unbreak failure")
        self.notify("break on failure " + ("on" if self.break_on_failure else "off"), timeout=2)

    @on(Scrubber.Moved)
    def _scrubbed(self, message: Scrubber.Moved) -> None:
        self.move_cursor(message.cursor)

    def move_cursor(self, cursor: int) -> None:
        """Show the run as it was after ``cursor`` events: forward by feeding more events,
        back by undoing the later ones in the model (:meth:`RunModel.rewind`, the same state
        as feeding events up to there); the panes repaint what changed, in place."""
        source = self.source
        if not isinstance(source, TraceFeed):
            return
        cursor = max(0, min(cursor, len(source.index)))
        if cursor >= len(self.model.events):
            source.upto = cursor
            self.tick()
        else:
            changes = self.model.rewind(cursor)
            source.pos = source.upto = cursor
            self._finished = False  # it ends again when the cursor gets there
            if self.selection.node_id is not None:  # stay on what is shown, at another time
                self.user_selected = True
                if not self._exists(self.selection):
                    self.pending_at = self.selection  # selected again once it exists
            self.tick(changes)
        self.inspector.show_now()
        self.event_log.follow()

    # --- layout ---------------------------------------------------------------------------

    def action_toggle(self, name: str) -> None:
        """Show or hide a pane; what is left shares the room (a column alone takes the width,
        a pane alone its column's height, Events alone the screen)."""
        pane = self.panes[name]
        pane.display = not pane.display
        shown = {}
        for column, members in (("#left", ("dag", "tree")), ("#right", ("timeline", "inspector"))):
            visible = [m for m in members if self.panes[m].display]
            shown[column] = self.query_one(column)
            shown[column].display = bool(visible)
            shown[column].set_class(len(visible) == 1, "-solo")
        main = self.query_one("#main")
        main.display = shown["#left"].display or shown["#right"].display
        main.set_class(not (shown["#left"].display and shown["#right"].display), "-solo")
        self._set_left_width()
        if not pane.display and (self.focused is None or not self.focused.display
                                 or pane in self.focused.ancestors_with_self):
            self._focus_a_shown_pane()

    def _focus_a_shown_pane(self) -> None:
        for pane in self.panes.values():
            if pane.display and pane.parent is not None and pane.parent.display:
                target = pane.list if isinstance(pane, EventLogView) else pane
                target.focus()
                return

    def _watch_maximized(self, before: Widget | None, now: Widget | None) -> None:
        """Mark the maximised pane only. Textual's own watcher also sets a class on the
        screen, which restyles every widget in it (~25 ms at 140x40, on every ``m``); this
        screen's layout needs no screen class to show one pane."""
        if before is not None:
            before.remove_class("-maximized")
        if now is not None:
            now.add_class("-maximized")

    def action_maximize_pane(self) -> None:
        """Fill the screen with the focused pane (``m`` or escape again: back)."""
        if self.maximized is not None:
            self.minimize()
            return
        focused = self.focused
        for pane in self.panes.values():
            if focused is not None and (focused is pane or pane in focused.ancestors):
                self.maximized = pane  # every pane, not only those Textual deems maximisable
                return

    def action_resize(self, delta: int) -> None:
        self.left_width = max(20, min(80, self.left_width + delta))
        self._set_left_width()

    def _set_left_width(self) -> None:
        """The left column's share of the width; all of it when the right one is hidden."""
        alone = self.query_one("#main").has_class("-solo")
        self.query_one("#left").styles.width = "1fr" if alone else f"{self.left_width}%"


def _replay_graph(index: TraceIndex) -> Graph:
    """The flow's graph as a trace's header holds it."""
    header = index.header
    return Graph.from_ir(header.get("flow") or {}, str(header.get("flow_name") or "flow"),
                         header.get("children"))


class DebuggerApp(App[str]):
    """pflow-tui's app; the return value is the run's final status."""

    CSS_PATH = Path(__file__).with_name("app.tcss")  # absolute, so subclasses elsewhere work
    TITLE = "pflow-tui"
    COMMANDS = App.COMMANDS | {GoToProvider}
    # a maximised pane keeps the header (status, failures, where it is paused), the replay's
    # scrubber and the keys
    ALLOW_IN_MAXIMIZED_VIEW = "RunHeader, Scrubber, KeyBar"
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("question_mark", "help", "Help", key_display="?"),
        Binding("ctrl+s", "save_screenshot", "Screenshot", show=False),
    ]

    def __init__(self, graph: Graph, *, spec: FlowSpec | Program | None = None,
                 inputs: dict[str, Any] | None = None, trace: Path | None = None,
                 events: Sequence[Event] | None = None, index: TraceIndex | None = None,
                 at: Selection | None = None, diff: TraceDiff | None = None,
                 runs_dir: Path | None = None) -> None:
        super().__init__()
        self.runs_dir = runs_dir  # the run browser's folder: the app opens on the list of runs
        self.graph = graph
        self.spec = spec
        self.inputs = inputs or {}
        self.first_trace = trace
        self.events = events
        self.index = index
        self.at = at
        self.diff = diff
        self.paused = False
        self.breakpoints: list[Breakpoint] = []
        self.rerun_of: Path | None = None
        self.rerun_upto: int | None = None  # restore only from the first bytes (the signed part)
        self.runs: list[LiveRun] = []

    @classmethod
    def live(cls, spec: FlowSpec | Program, inputs: dict[str, Any], trace: Path | None = None,
             at: Selection | None = None, *, paused: bool = False,
             breakpoints: Sequence[Breakpoint] = ()) -> DebuggerApp:
        """Run ``spec`` (a pflow flow or a Python program) and show it live (``at``: focus on
        that node or iteration; ``paused``: nothing starts before a step or continue;
        ``breakpoints``: where the run pauses)."""
        children = spec.children_ir if isinstance(spec, Program) else children_ir(spec)
        graph = Graph.from_ir(spec.ir, spec.name, children)
        app = cls(graph, spec=spec, inputs=inputs, trace=trace, at=at)
        app.paused, app.breakpoints = paused, list(breakpoints)
        return app

    @classmethod
    def from_events(cls, graph: Graph, events: Iterable[Event]) -> DebuggerApp:
        """Show recorded events (no code runs)."""
        return cls(graph, events=list(events))

    @classmethod
    def replay(cls, index: TraceIndex, at: Selection | None = None) -> DebuggerApp:
        """Open a saved trace, with a cursor to move through it. No code from it runs."""
        return cls(_replay_graph(index), index=index, at=at)

    @classmethod
    def browser(cls, folder: Path) -> DebuggerApp:
        """The saved runs in ``folder`` (``pflow-tui runs``): open, re-run or diff them."""
        return cls(Graph("runs", {}, [], ""), runs_dir=folder)

    @property
    def model(self) -> RunModel:
        return self._run_screen.model

    def _handle_exception(self, error: Exception) -> None:
        """An exception nothing handled (a bug): no Rich traceback with locals (they may hold
        commands, params, values of the run), but a short message after the app closes, the
        details in a log file (see pflow_tui.crash), and exit code 70 (``return_code``).

        Textual's own handler (``App._handle_exception``) renders the traceback with
        ``_fatal_error``; this one keeps the rest: the exception is noted for Pilot (tests
        still see it raised) and the app closes."""
        self._return_code = EXIT_INTERNAL
        if self._exception is not None:  # the app is closing on the first one already
            return
        self._exception = error
        self._exception_event.set()
        try:
            text = report(error, debug_hint=False)
        except Exception:  # the report itself failed: still no traceback
            text = f"internal error ({type(error).__name__}): this is a bug in pflow-tui"
        self._exit_renderables.append(RichText.assemble(("error: ", "bold red"), text))
        self._close_messages_no_wait()

    def notify(self, message: str, *, title: str = "", severity: SeverityLevel = "information",
               timeout: float | None = None, markup: bool = False) -> None:
        """Every toast shows its text literally (``markup`` is ignored): toasts carry paths,
        node ids, labels and error messages from runs and traces, which may hold ``[...]``."""
        super().notify(message, title=title, severity=severity, timeout=timeout, markup=False)

    @classmethod
    def diff_view(cls, diff: TraceDiff) -> DebuggerApp:
        """Two runs side by side, aligned by path (``pflow-tui diff A B --view``)."""
        return cls(Graph("diff", {}, [], ""), diff=diff)

    def on_mount(self) -> None:
        if self.diff is not None:
            self.push_screen(DiffScreen(self.diff))
        elif self.runs_dir is not None:
            self.push_screen(RunsScreen(self.runs_dir))
        else:
            self.push_screen(self._new_run_screen(self.first_trace))
        # What exists once the screen is up (modules, the flow's IR, which may hold a big
        # literal list) lives as long as the app: leave it out of the garbage collector's
        # full passes, which would otherwise stall the screen for tens of milliseconds.
        self.call_after_refresh(gc.freeze)
        # SIGTERM (kill PID, a service manager, CI): the run ends as interrupted with its
        # trace footer, the terminal is restored, exit code 143 (see _terminated)
        with contextlib.suppress(NotImplementedError, RuntimeError, ValueError):
            asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, self._terminated)

    def on_unmount(self) -> None:
        gc.unfreeze()
        with contextlib.suppress(NotImplementedError, RuntimeError, ValueError):
            asyncio.get_running_loop().remove_signal_handler(signal.SIGTERM)

    def _terminated(self) -> None:
        """SIGTERM: pass it on to a run going (it writes its footer: interrupted,
        ``Terminated``), wait for it, then leave as ``q`` does: ``terminated``, exit 143."""
        for run in self.runs:
            if run.running:
                run.terminate()
                run.join(10)
        self.exit("terminated")

    def compare_with(self, other: str) -> None:
        """Open the diff view of this run's trace against another trace."""
        mine = self._run_screen.source.trace_path
        if mine is None:
            self.notify("This run has no trace file to compare.", severity="warning")
            return
        try:
            diff = diff_traces(other, mine)
        except (TraceError, OSError) as exc:
            self.notify(literal(str(exc)), title="Cannot compare", severity="error")
            return
        self.push_screen(DiffScreen(diff))

    # --- the run browser ------------------------------------------------------------------

    def open_trace(self, path: Path) -> bool:
        """Open a saved run over the run browser (escape comes back); False when it cannot."""
        try:
            index = TraceIndex(path)
        except TraceError as exc:
            self.notify(literal(str(exc)), title="Cannot open this run", severity="error")
            return False
        self.graph, self.index = _replay_graph(index), index
        self.spec, self.inputs, self.events, self.at = None, {}, None, None
        self.push_screen(self._new_run_screen(None))
        return True

    def rerun_trace(self, path: Path) -> None:
        """Re-run a saved run from its failures: the same path as ``R`` in its replay."""
        if self.open_trace(path):
            self.action_rerun_failed()

    def diff_traces(self, a: Path, b: Path) -> None:
        """The diff view of two saved runs (A the older)."""
        try:
            diff = diff_traces(a, b)
        except (TraceError, OSError) as exc:
            self.notify(literal(str(exc)), title="Cannot compare", severity="error")
            return
        self.push_screen(DiffScreen(diff))

    def back_to_runs(self) -> None:
        """From a run opened in the run browser, back to the list (not while it runs)."""
        if self.runs_dir is None or not isinstance(self.screen, RunScreen):
            return
        if self.screen.source.running:
            self.notify("The run is still going: stop it first (s).", timeout=3)
            return
        self.pop_screen()

    def _new_run_screen(self, trace: Path | None) -> RunScreen:
        at = self.at
        previous = getattr(self, "_run_screen", None)
        if previous is not None and previous.live:  # a re-run keeps the breakpoints set now
            self.breakpoints = previous.breakpoints()
        if self.spec is not None:
            run = LiveRun(self.spec, self.inputs, trace or default_trace_path(self.spec.name),
                          paused=self.paused, breakpoints=self.breakpoints, rerun_of=self.rerun_of,
                          rerun_upto=self.rerun_upto)
            self.runs.append(run)
            screen = RunScreen(RunModel(self.graph), run, at)
        elif self.index is not None:
            screen = RunScreen(RunModel(self.graph, LazyEvents(self.index)), TraceFeed(self.index), at)
        else:
            screen = RunScreen(RunModel(self.graph), EventFeed(self.events or []), at)
        self._run_screen = screen
        return screen

    def select(self, selection: Selection) -> None:
        """Select a node or iteration in every pane (used by the command palette)."""
        self._run_screen.user_selected = True
        self._run_screen.select(selection)

    def get_system_commands(self, screen: Screen) -> Iterable[SystemCommand]:
        yield from super().get_system_commands(screen)
        if not isinstance(screen, RunScreen):  # the run browser, a diff: no run to act on
            return
        run = screen
        yield SystemCommand("Next failure", "Jump to the next failed node or iteration",
                            lambda: run.action_next_failure(1))
        if run.live:  # (a recorded run has nothing to stop, nor a flow to run again)
            yield SystemCommand("Stop the run", "Running items end as cancelled; the trace is kept",
                                self.action_stop)
            yield SystemCommand("Re-run the flow", "Run the same flow and inputs again",
                                self.action_rerun)
        for name in PANES:
            yield SystemCommand(f"Toggle the {TITLES[name]} pane", f"Show or hide {TITLES[name]}",
                                lambda name=name: run.action_toggle(name))
        if run.live:
            yield SystemCommand("Pause / continue", "Running items finish; nothing new starts",
                                run.action_pause)
            yield SystemCommand("Step", "Let one node or one batch item start", lambda: run.action_step(1))
            yield SystemCommand("Step to the next node", "Finish the current batch, stop before the "
                                "next node", lambda: run.action_step_kind(1, "node"))
            yield SystemCommand("Toggle a breakpoint on the selected node", "Pause before it starts",
                                run.action_toggle_break)
            yield SystemCommand("Toggle break on failure", "Pause as soon as anything fails",
                                run.action_toggle_break_on_failure)
            yield SystemCommand("Break on an item of the selected node…",
                                "index N · match TEXT · error REGEX · slower SECONDS · slower p95",
                                lambda: self.push_screen(
                                    AskPath("Pause on items where (index 3 · match TEXT · error REGEX · "
                                            "slower 0.5 · slower p95):"), run.add_item_break))
        yield SystemCommand("Compare with another trace…", "Diff this run against a saved run, "
                            "path by path", lambda: self.push_screen(AskPath(), self._compare))
        yield SystemCommand("Help", "Keys, symbols and panes", self.action_help)

    def _compare(self, path: str | None) -> None:
        if path:
            self.compare_with(path)

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        if action in ("stop", "rerun", "rerun_failed") and not isinstance(self.screen, RunScreen):
            return False  # the run browser has its own R; a diff has no run
        if action == "stop":
            return self._run_going()
        if action == "rerun":
            return self.spec is not None  # a recorded run cannot run again (R can: from its trace)
        if action == "rerun_failed":
            screen = getattr(self, "_run_screen", None)
            return screen is not None and screen.source.trace_path is not None
        return True

    def action_help(self) -> None:
        """The help, built once and kept: opening it again costs nothing."""
        if not self.is_screen_installed("help"):
            self.install_screen(HelpScreen(), "help")
        self.push_screen("help")

    # --- keys that change a live run: they ask first while it is going ----------------------

    def _run_going(self) -> bool:
        """A live run whose end has not arrived (its process may take a moment longer to
        exit once it has: that is no run going)."""
        screen = getattr(self, "_run_screen", None)
        return (screen is not None and screen.source.running
                and screen.model.status in ("pending", "running"))

    def _ask(self, question: str, detail: str, then: Callable[[], object]) -> None:
        """Ask once (y/enter yes, n/escape no); ``then`` runs on yes."""
        self.push_screen(Confirm(question, detail), lambda yes: then() if yes else None)

    def _when_stopped(self, then: Callable[[], object]) -> None:
        """Stop the live run; ``then`` runs once its process has ended (its trace is whole)."""
        source = self._run_screen.source
        self._stop()

        def check() -> None:
            if not source.running:
                timer.stop()
                then()

        timer = self.set_interval(0.05, check)

    def action_stop(self) -> None:
        if not self._run_going():
            self.notify("The run has ended: nothing to stop.", timeout=3)
            return
        self._ask("Stop the run?", "Running items end as cancelled; the trace is kept.",
                  self._stop)

    def _stop(self) -> None:
        source = self._run_screen.source
        if source.running:
            source.stop()
            self.notify("Stopping: running items finish as cancelled.", timeout=3)

    def action_rerun(self) -> None:
        if self.spec is None:
            self.notify("Nothing to re-run: this is a recorded run.", timeout=3)
            return
        if self._run_going():
            self._ask("Stop the run and run the flow again?",
                      "This run ends as cancelled (its trace is kept); a new run starts.",
                      lambda: self._when_stopped(self._rerun))
            return
        self._rerun()

    def _rerun(self) -> None:
        self.switch_screen(self._new_run_screen(None))

    def action_rerun_failed(self) -> None:
        """Re-run from failure: restore what ended ok in this run's trace, run the rest."""
        screen = self._run_screen
        if screen.source.trace_path is None:
            self.notify("This run has no trace to re-run.", severity="warning")
            return
        if self._run_going():
            self._ask("Stop the run and re-run from failure?",
                      "What ended ok is restored; what failed, was stopped or never ran runs again.",
                      lambda: self._when_stopped(self._rerun_failed))
            return
        if self._nothing_failed(screen):
            self.notify("Nothing failed: there is nothing to re-run from failure "
                        "(r runs the whole flow again).", title="Re-run from failure", timeout=5)
            return
        self._rerun_failed()

    @staticmethod
    def _nothing_failed(screen: RunScreen) -> bool:
        """The run ended ok with no failed node or item (a replay: once it is all loaded)."""
        model, source = screen.model, screen.source
        if isinstance(source, TraceFeed) and len(model.events) < len(source.index):
            return False
        return model.status == "ok" and not model.failures()

    def _rerun_failed(self) -> None:
        source = self._run_screen.source
        assert source.trace_path is not None
        path = Path(source.trace_path)
        verdict = verify(path)  # only what this user's key signed runs without asking
        upto = verdict.upto if verdict.trusted else None
        try:
            spec, inputs, cache = prepare_rerun(path, upto=upto)
        except (FlowError, TraceError, OSError) as exc:
            self.notify(literal(str(exc))[:500], title="Cannot re-run", severity="error")
            return
        if verdict.trusted:
            self._start_rerun(spec, inputs, path, upto)
            return
        self.push_screen(Consent("Re-run a trace you did not make?",
                                 rerun_plan(spec, cache, verdict, str(path))),
                         lambda yes: self._start_rerun(spec, inputs, path, None) if yes else None)

    def _start_rerun(self, spec: FlowSpec, inputs: dict[str, Any], path: Path, upto: int | None) -> None:
        if self.spec is None:  # a replay becomes live from here on
            self.graph = Graph.from_ir(spec.ir, spec.name, children_ir(spec))
        self.spec, self.inputs = spec, inputs
        self.rerun_of, self.rerun_upto = path, upto
        self.switch_screen(self._new_run_screen(None))
        self.rerun_of = self.rerun_upto = None
        self.notify(f"re-running from failure: restoring what ended ok in {path}", timeout=4)

    def action_save_screenshot(self) -> None:
        """An SVG of the screen, in .pflow-tui/screenshots beside the traces (not the current
        folder); the toast says where."""
        screen = getattr(self, "_run_screen", None)
        folder = screenshot_folder(screen.source.trace_path if screen is not None else None)
        folder.mkdir(parents=True, exist_ok=True)
        stamp = time.strftime("%Y%m%d-%H%M%S")
        name = re.sub(r"[^\w.-]+", "_", self.graph.name)[:60] or "pflow-tui"
        path = self.save_screenshot(f"{name}-{stamp}.svg", str(folder))
        self.notify(literal(path), title="Screenshot saved", timeout=6)

    def action_request_quit(self) -> None:
        """``q``: quit at once, unless a run is going: then ask (it ends as interrupted)."""
        if self._run_going():
            self._ask("Quit while the run is going?",
                      "It ends as interrupted (exit code 130); its trace is kept.", self._quit)
        else:
            self._quit()

    async def action_quit(self) -> None:
        """Quit now (``ctrl+q``): a run still going ends as interrupted."""
        self._quit()

    def _quit(self) -> None:
        interrupted = self._run_going()
        for run in self.runs:
            if run.running:
                run.stop()
                run.join(10)
        screen = getattr(self, "_run_screen", None)
        if interrupted:
            self.exit("interrupted")
        else:
            self.exit(screen.model.status if screen is not None else None)


def screenshot_folder(trace: Path | str | None) -> Path:
    """Where ``ctrl+s`` saves: ``.pflow-tui/screenshots``, beside the traces folder when the
    trace is in one, else under the current folder."""
    if trace is not None and Path(trace).parent.name == DEFAULT_DIR.name:
        return Path(trace).parent.with_name("screenshots")
    return Path.cwd() / DEFAULT_DIR.parent / "screenshots"
