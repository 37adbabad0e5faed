"""The debugger app: the screens around runs, and the keys that start, stop and re-run them.

``DebuggerApp.live(spec, inputs, trace)`` runs a flow in a worker process and shows it as
it goes; ``DebuggerApp.from_events(graph, events)`` and ``DebuggerApp.replay(index)`` show
recorded events through the very same run screen (:mod:`pflow_tui.app.screens.run`);
``DebuggerApp.browser(folder)`` opens on the list of saved runs.
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

from rich.text import Text as RichText
from textual.app import App, SystemCommand
from textual.binding import Binding, BindingType
from textual.notifications import SeverityLevel
from textual.screen import Screen

from ..crash import EXIT_INTERNAL, report
from ..engine.ir.spec import FlowSpec, children_ir
from ..engine.problems import FlowError
from ..engine.python.pyprogram import Program
from ..engine.run.gate import Breakpoint
from ..engine.trace.diff import TraceDiff, diff_traces
from ..engine.trace.events import Event
from ..engine.trace.reader import TraceIndex
from ..engine.trace.replay import LazyEvents
from ..engine.trace.rerun import prepare_rerun
from ..engine.trace.trust import rerun_plan, verify
from ..engine.trace.writer import DEFAULT_DIR, TraceError, default_trace_path
from ..text import literal
from .commands import GoToProvider
from .graph import Graph
from .messages import Selection
from .model import RunModel
from .runner import EventFeed, LiveRun, TraceFeed
from .screens.ask import AskPath
from .screens.confirm import Confirm, Consent
from .screens.diff import DiffScreen
from .screens.help import HelpScreen
from .screens.run import PANES, TITLES, RunScreen
from .screens.runs import RunsScreen


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
        #: how the run on screen ended when the app was closed from outside (no status to
        #: return: a browser tab of ``serve`` closed), for the line printed after it
        self.closed_status: str | None = None

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
        if self.return_value is None:  # closed from outside (a browser tab of `serve`), not by q
            self.closed_status = self._stop_runs()

    def _stop_runs(self) -> str | None:
        """Stop the runs still going and wait for their footers: how the run on screen ended
        (``interrupted`` when it was still going)."""
        interrupted = self._run_going()
        for run in self.runs:
            if run.running:
                run.stop()
                run.join(10)
        screen = getattr(self, "_run_screen", None)
        return "interrupted" if interrupted else screen.model.status if screen is not None else None

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
        self.exit(self._stop_runs())


def screenshot_folder(trace: Path | str | None) -> Path:
    """Where ``ctrl+s`` saves: ``.pflow-tui/screenshots``, beside the traces folder when the
    trace is in one, else under the current folder."""
    if trace is not None and Path(trace).parent.name == DEFAULT_DIR.name:
        return Path(trace).parent.with_name("screenshots")
    return Path.cwd() / DEFAULT_DIR.parent / "screenshots"
