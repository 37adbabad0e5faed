"""``pflow-tui FLOW.json`` (the debugger, live) and ``pflow-tui run FLOW.json`` (headless,
with progress on the terminal); a Python PocketFlow program (``FILE.py:NAME``) runs the same
way. Pause, step and breakpoints (``--paused``, ``--break``, ``--break-on-failure``) need
the debugger."""

from __future__ import annotations

import os
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from rich.text import Text

from ..console import ConsoleReporter, values_table
from ..crash import EXIT_INTERNAL
from ..engine.ir.load import load_flow
from ..engine.ir.spec import FlowSpec
from ..engine.problems import FlowError, Problem, did_you_mean
from ..engine.python.target import is_target
from ..engine.run.executor import RunResult, run_flow
from ..engine.run.gate import Breakpoint, FailureBreak, NodeBreak
from ..engine.run.inputs import parse_assignments, prepare_inputs
from ..engine.run.interrupts import EXIT_CODE, Terminated, sigterm_interrupts
from ..engine.trace.writer import TraceExists, check_trace_path, default_trace_path
from ..text import literal
from .output import error_console, print_error, print_warnings, report_flow_error, themed
from .parsing import Options

if TYPE_CHECKING:
    from ..engine.python.pyprogram import Program

GATE_NEEDS_DEBUGGER = (
    "error: --paused, --break and --break-on-failure need the debugger, where you step, "
    "continue and see where the run stopped: open the flow with `pflow-tui FLOW.json ...` "
    "(a headless `pflow-tui run` never pauses)")

Headless = tuple[RunResult, ConsoleReporter]  # a run that ended, and what printed its progress


def command(opts: Options, *, headless: bool) -> int:
    json_out = headless and getattr(opts, "output_format", "text") == "json"
    if headless and gate_given(opts):
        error_console().print(GATE_NEEDS_DEBUGGER)
        return stopped(opts, "invalid", GATE_NEEDS_DEBUGGER.removeprefix("error: "), "UsageError")
    try:
        spec, inputs, found = load(opts, debugger=not headless)
    except FlowError as exc:
        if json_out:
            from .json_output import invalid_document, write_document

            write_document(invalid_document(exc))
        return report_flow_error(exc)
    trace = opts.trace or default_trace_path(spec.name)
    if trace_taken(trace):
        return stopped(opts, "invalid", f"{trace}: a trace is there already", "TraceExists", spec.name)
    if not headless:
        return open_app(spec, inputs, trace, opts.at, paused=opts.paused, breakpoints=found)
    if not isinstance(spec, FlowSpec):  # a Python program
        from ..engine.python.pyprogram import run_program

        program_spec: Program = spec  # type: ignore[assignment]
        ended = run_headless(opts, trace, lambda sinks: run_program(program_spec, trace=trace, sinks=sinks))
    else:
        flow = spec
        print_warnings(flow.warnings)
        ended = run_headless(opts, trace, lambda sinks: run_flow(flow, inputs, trace=trace, sinks=sinks))
    if isinstance(ended, int):
        return stopped(opts, *STOPPED.get(ended, ("invalid", "the run could not start", "TraceError")),
                       spec.name, trace, code=ended)
    result, reporter = ended
    reporter.summary(result, outputs=not json_out)
    show_what_ran(reporter, result)
    if json_out:
        from .json_output import run_document, write_document

        write_document(run_document(result, spec.name))
    return 0 if result.status == "ok" else 1


# how a headless run that did not end reads in --output-format json, by its exit code
STOPPED = {130: ("interrupted", "interrupted (Ctrl-C)", "KeyboardInterrupt"),
           EXIT_CODE: ("terminated", "terminated (SIGTERM)", "Terminated")}


def stopped(opts: Options, status: str, message: str, kind: str, flow: str | None = None,
            trace: Path | str | None = None, *, code: int = 2) -> int:
    """``code``, after writing the document of a run that did not end (--output-format json)."""
    if getattr(opts, "output_format", "text") == "json":
        from .json_output import stopped_document, write_document

        write_document(stopped_document(status, message, kind=kind, flow=flow, trace=trace))
    return code


def load(opts: Options, *, debugger: bool,
         stdin: bool = True) -> tuple[FlowSpec | Program, dict[str, Any], list[Breakpoint]]:
    """The flow (or Python program), its inputs and breakpoints, checked; ``debugger``: ``--at``
    too. ``stdin=False``: inputs declared ``stdin`` are not read from it (raises FlowError)."""
    spec: FlowSpec | Program
    if is_target(opts.flow):
        from ..engine.python.pyprogram import load_program  # (programs only: start-up time)

        spec = load_program(opts.flow, shared=opts.shared, inputs=parse_assignments(opts.inputs))
        inputs, ids = spec.inputs, spec.node_ids
    elif opts.shared:
        raise FlowError("command line", [Problem(
            "--shared", "only Python programs take a shared store",
            "a pflow flow gets its inputs as NAME=VALUE; drop --shared")])
    else:
        spec, inputs = prepare(opts, stdin=stdin)
        ids = node_ids(spec)
    found = breakpoints(opts, ids)
    if debugger and opts.at:
        from .at import check_at, graph_of  # (the debugger's --at only: start-up time)

        check_at(opts.at, graph_of(spec))
    return spec, inputs, found


#: set in the environment of the debugger that ``pflow-tui serve`` runs per browser tab: its
#: standard input carries the browser's keys, no input of the flow
SERVED = "PFLOW_TUI_SERVED"


def prepare(opts: Options, *, stdin: bool = True) -> tuple[FlowSpec, dict[str, Any]]:
    """Load the flow and its inputs (raises FlowError); ``stdin``: read inputs declared
    ``stdin`` from a piped standard input."""
    spec = load_flow(opts.flow)
    piped = None
    if (stdin and any(i.stdin for i in spec.inputs.values()) and not os.environ.get(SERVED)
            and not sys.stdin.isatty()):
        piped = sys.stdin.read()
    return spec, prepare_inputs(spec, parse_assignments(opts.inputs), as_text=True, stdin=piped)


def show_what_ran(reporter: ConsoleReporter, result: RunResult) -> None:
    """A run stopped because its trace could not be written: print what it made so far."""
    if (result.error or {}).get("type") != "TraceWriteError":
        return
    shown = {k: v for k, v in result.store.items() if not k.startswith("__")}
    if shown:  # the nodes that ended (a batch cut short shows in its progress line)
        reporter.console.print(values_table("what ran until the trace could not be written", shown))


def run_headless(opts: Options, trace: Path | str,
                 run: Callable[[list[Any]], RunResult]) -> Headless | int:
    """``run(sinks)`` with the console reporter among the sinks: (result, reporter), or an exit
    code (130, 2)."""
    reporter = ConsoleReporter(verbosity=opts.verbosity)
    if opts.verbosity > 0:
        reporter.console.print(Text.assemble(("trace: ", "dim"), literal(str(trace))))
    try:
        with sigterm_interrupts(), reporter:
            result = run([reporter])
    except KeyboardInterrupt as exc:
        what = "terminated (SIGTERM)" if isinstance(exc, Terminated) else "interrupted"
        reporter.console.print(Text(f"{what}: {literal(str(trace))} holds everything that ran "
                                    "until then"))
        return EXIT_CODE if isinstance(exc, Terminated) else 130
    except TraceExists as exc:  # another run took the path since trace_taken looked
        print_error(str(exc))
        return 2
    except OSError as exc:
        if opts.debug:
            raise
        print_error(f"cannot write the trace: {exc}")
        return 2
    return result, reporter


def trace_taken(trace: Path | str) -> bool:
    """Whether a trace is at ``trace`` already (then say so: one run per trace file)."""
    try:
        check_trace_path(trace)
    except TraceExists as exc:
        print_error(str(exc))
        return True
    return False


# --- pause, step, breakpoints (the debugger only) ------------------------------------------------


def gate_given(opts: Options) -> bool:
    return bool(opts.paused or opts.breaks or opts.break_on_failure)


def node_ids(spec: FlowSpec) -> set[str]:
    """Every node id of a flow, its nested flows' too (a node breakpoint stops at them)."""
    ids: set[str] = set()
    flows = [spec]
    while flows:
        flow = flows.pop()
        ids.update(flow.nodes)
        flows.extend(flow.children.values())
    return ids


def breakpoints(opts: Options, ids: set[str]) -> list[Breakpoint]:
    """The breakpoints of ``--break`` and ``--break-on-failure`` (FlowError: an unknown node)."""
    problems = [Problem(f"--break {node}", "no node with this id in the flow",
                        did_you_mean(node, ids, "its nodes")) for node in opts.breaks if node not in ids]
    if problems:
        raise FlowError("command line", problems)
    found: list[Breakpoint] = [NodeBreak(node) for node in dict.fromkeys(opts.breaks)]
    if opts.break_on_failure:
        found.append(FailureBreak())
    return found


def open_app(spec: FlowSpec | Program, inputs: dict[str, Any], trace: Path | str, at: str | None = None, *,
             paused: bool = False, breakpoints: Sequence[Breakpoint] = ()) -> int:
    """Run the flow in the debugger. ``paused``, ``breakpoints``: for the worker's job."""
    from ..app.app import DebuggerApp  # (textual only when the app opens: start-up time)
    from ..app.messages import selection_at  # (textual too)

    app = DebuggerApp.live(spec, inputs, trace, selection_at(at) if at else None,  # (str or Path, as given)
                           paused=paused, breakpoints=breakpoints)
    bad = themed(app)
    if bad is not None:
        return bad
    status = app.run() or app.closed_status
    if getattr(app, "return_code", None) == EXIT_INTERNAL:
        return EXIT_INTERNAL
    last = app.runs[-1].trace_path if app.runs else trace
    word = "terminated (SIGTERM)" if status == "terminated" else status or "not finished"
    error_console().print(Text(f"run {word} · trace: {literal(str(last))}"))
    return {"ok": 0, "cancelled": 130, "interrupted": 130, "terminated": 143}.get(status or "", 1)
