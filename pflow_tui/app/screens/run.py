"""The run screen: five panes (DAG, namespaces, timeline, inspector, events) over one run.

A timer drains the events that arrived (ten times a second), applies them to the view model
in one batch, and lets each pane repaint what changed; a replay's cursor going back undoes
the later events (``RunModel.rewind``) and the panes repaint the same way. The screen also
owns the layout keys (``1``-``5``, ``m``, ``[``/``]``), stepping, breakpoints and the fork.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any, ClassVar

import orjson
from textual import on
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, Vertical
from textual.screen import Screen
from textual.timer import Timer
from textual.widget import Widget
from textual.widgets import Input, TextArea

from ...engine.run.gate import Breakpoint, FailureBreak, ItemBreak, NodeBreak
from ...engine.trace.check import MALFORMED_NOTE, malformed_note
from ...engine.trace.trust import fork_plan, verify
from ...text import literal, plural
from ..contracts import EventSource, Pane
from ..messages import Selection, SelectionRequested, SelectionSource
from ..model import Changes, RunModel
from ..runner import LiveRun, TraceFeed
from ..status import RUNNING
from ..widgets.dag import DagView
from ..widgets.event_log import EventLogView
from ..widgets.inspector import Inspector
from ..widgets.key_bar import KeyBar
from ..widgets.namespace_tree import NamespaceTree
from ..widgets.run_header import RunHeader
from ..widgets.scrubber import Scrubber
from ..widgets.timeline import TimelineView
from .confirm import Consent
from .fork import ForkScreen

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
