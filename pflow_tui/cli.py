"""Command line: ``pflow-tui FLOW.json``, ``run``, ``validate``.

Exit codes: 0 the flow succeeded (or is valid), 1 the flow failed, 2 bad input (file,
JSON, IR or inputs), 130 interrupted. Errors fit on one screen and show no Python
traceback unless ``--debug`` is given. Textual is imported only when the app is opened.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from . import __version__

SUBCOMMANDS = ("run", "validate", "replay")
MAX_PROBLEMS_SHOWN = 15

USAGE = """\
pflow-tui FLOW.json [NAME=VALUE ...] [--trace PATH]     open the debugger and run the flow live
pflow-tui run FLOW.json [NAME=VALUE ...] [--trace PATH] run a flow headless with progress
pflow-tui validate FLOW.json                            check a flow and report every problem
pflow-tui replay TRACE.json [--at PATH]                 open a saved run (no code runs)
"""


def _parser(command: str) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog=f"pflow-tui {command}".strip(), usage=None,
                                     description=USAGE if not command else None,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    if command == "replay":
        parser.add_argument("trace", metavar="TRACE.json", help="a trace file written by a run")
    else:
        parser.add_argument("flow", metavar="FLOW.json", help="the flow file (pflow IR JSON)")
    parser.add_argument("--debug", action="store_true", help="show Python tracebacks")
    if command in ("", "replay"):
        parser.add_argument("--at", metavar="PATH",
                            help="open focused on a node or iteration, e.g. flow.square.iteration_6")
    if command not in ("validate", "replay"):
        parser.add_argument("inputs", nargs="*", metavar="NAME=VALUE", help="workflow inputs")
        parser.add_argument("--trace", metavar="PATH",
                            help="where to write the trace (default .pflow-tui/traces/)")
    parser.add_argument("--version", action="version", version=f"pflow-tui {__version__}")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    command = args[0] if args and args[0] in SUBCOMMANDS else ""
    if command:
        args = args[1:]
    opts = _parser(command).parse_args(args)
    try:
        if command == "validate":
            return _validate(opts)
        if command == "replay":
            return _replay(opts)
        return _run(opts, headless=command == "run")
    except KeyboardInterrupt:
        return 130


def _error_console():
    from rich.console import Console

    return Console(stderr=True, highlight=False)


def _report_flow_error(exc: Exception) -> int:
    from rich.text import Text

    from .engine.problems import FlowError
    from .text import literal

    console = _error_console()
    assert isinstance(exc, FlowError)
    n = len(exc.problems)
    console.print(Text.assemble(("error: ", "bold red"),
                                literal(f"{exc.source}: {n} problem{'s' if n != 1 else ''}")))
    for p in exc.problems[:MAX_PROBLEMS_SHOWN]:
        console.print(Text.assemble("  ", (literal(p.where), "bold"), ": ", literal(p.what)))
        if p.fix:
            console.print(Text.assemble("      ", ("fix: ", "green"), literal(p.fix)))
    if n > MAX_PROBLEMS_SHOWN:
        console.print(Text(f"  ... and {n - MAX_PROBLEMS_SHOWN} more "
                           "(fix these and run `pflow-tui validate` again)", "dim"))
    return 2


def _load(path: str):
    from .engine.ir import load_flow

    return load_flow(path)


def _validate(opts: argparse.Namespace) -> int:
    from rich.text import Text

    from .engine.problems import FlowError
    from .text import literal

    try:
        spec = _load(opts.flow)
    except FlowError as exc:
        return _report_flow_error(exc)
    console = _error_console()
    for w in spec.warnings:
        console.print(Text.assemble(("warning: ", "yellow"), (literal(w.where), "bold"), ": ",
                                    literal(w.what), f"  ({literal(w.fix)})" if w.fix else ""))
    console.print(Text.assemble(("✓ ", "green"), literal(opts.flow),
                                f": valid ({len(spec.nodes)} nodes, {len(spec.edges)} edges)"))
    return 0


def _prepare(opts: argparse.Namespace):
    """Load the flow and its inputs (raises FlowError)."""
    from .engine.executor import parse_assignments, prepare_inputs

    spec = _load(opts.flow)
    stdin = None
    if any(i.stdin for i in spec.inputs.values()) and not sys.stdin.isatty():
        stdin = sys.stdin.read()
    return spec, prepare_inputs(spec, parse_assignments(opts.inputs), as_text=True, stdin=stdin)


def _run(opts: argparse.Namespace, *, headless: bool) -> int:
    from .engine.problems import FlowError
    from .engine.trace import default_trace_path

    try:
        spec, inputs = _prepare(opts)
    except FlowError as exc:
        return _report_flow_error(exc)
    trace = opts.trace or default_trace_path(spec.name)
    if not headless:
        return _open_app(spec, inputs, trace, opts.at)
    from .console import ConsoleReporter
    from .engine.executor import run_flow

    reporter = ConsoleReporter()
    try:
        with reporter:
            result = run_flow(spec, inputs, trace=trace, sinks=[reporter])
    except KeyboardInterrupt:
        reporter.console.print(f"interrupted: {trace} holds everything that ran until then")
        return 130
    except OSError as exc:
        if opts.debug:
            raise
        _error_console().print(f"error: cannot write the trace: {exc}")
        return 2
    reporter.summary(result)
    return 0 if result.status == "ok" else 1


def _replay(opts: argparse.Namespace) -> int:
    from rich.text import Text

    from .engine.replay import TraceIndex
    from .engine.trace import TraceError
    from .text import literal

    try:
        index = TraceIndex(opts.trace)
    except TraceError as exc:
        _error_console().print(Text.assemble(("error: ", "bold red"), literal(str(exc))))
        return 2
    from .app.app import DebuggerApp
    from .app.messages import selection_at

    DebuggerApp.replay(index, selection_at(opts.at) if opts.at else None).run()
    return 0


def _open_app(spec, inputs, trace, at: str | None = None) -> int:
    from .app.app import DebuggerApp
    from .app.messages import selection_at

    app = DebuggerApp.live(spec, inputs, trace, selection_at(at) if at else None)
    status = app.run()
    last = app.runs[-1].trace_path if app.runs else trace
    console = _error_console()
    console.print(f"run {status or 'not finished'} · trace: {last}")
    return {"ok": 0, "cancelled": 130}.get(status or "", 1)


if __name__ == "__main__":
    raise SystemExit(main())
