"""Command line: ``pflow-tui FLOW.json``, ``run``, ``validate``, ``replay``, ``rerun``, ``diff``,
``export``, ``runs``, ``schema`` (and ``pflow-tui`` alone: the runs, when there are any).

Exit codes: 0 the flow succeeded (or is valid), 1 the flow failed, 2 bad input (file,
JSON, IR or inputs), 70 an internal error (a short message; the details go to a log file,
see :mod:`pflow_tui.crash`), 130 interrupted (``diff``: 0 no differences, 1 the runs differ, 2 not a
trace; ``export``: 0 written, 2 not a trace or cannot write, 141 ``-o -`` closed early).
Errors fit on one screen and show no Python traceback unless ``--debug`` is given.
Textual is imported only when the app is opened.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

from . import __version__

SUBCOMMANDS = ("run", "validate", "replay", "diff", "rerun", "export", "runs", "schema")
MAX_PROBLEMS_SHOWN = 15

USAGE = """\
pflow-tui FLOW.json [NAME=VALUE ...] [--trace PATH]     open the debugger and run the flow live
pflow-tui FILE.py:NAME [NAME=VALUE ...] [--shared F]    the same for a Python PocketFlow program
                                                        (or MODULE:NAME; NAME: a Flow, or a function
                                                        that returns one)
pflow-tui run FLOW.json [NAME=VALUE ...] [--trace PATH] run a flow headless with progress
pflow-tui validate FLOW.json [--explain]                check a flow and report every problem;
                                                        --explain prints it as it runs (aliases rewritten)
pflow-tui runs [--dir DIR] [--json | --plain]          the saved runs, newest first: open, re-run,
                                                        diff (also `pflow-tui` alone, when there are runs)
pflow-tui replay TRACE.json|--last [--at PATH]          open a saved run (no code runs; R re-runs it,
                                                        asking first for a trace you did not sign)
pflow-tui rerun TRACE.json [--flow FLOW.json] [NAME=VALUE ...] [--trace PATH] [--trust]
                                                        re-run a saved run: restore what succeeded,
                                                        run what failed or never ran
pflow-tui diff A.json B.json [--all] [--limit N] [--view]
                                                        compare two runs path by path (--view: in the app)
pflow-tui export TRACE.json [--format perfetto|otlp] [-o OUT]
                                                        a saved run for Perfetto or OpenTelemetry
pflow-tui schema                                        the JSON Schema of flow files, for editors
                                                        ("$schema" in a flow names it)
"""

SHORT_USAGE = """\
pflow-tui FLOW.json [NAME=VALUE ...]    run a flow in the debugger
pflow-tui run FLOW.json [NAME=VALUE ...]
                                        run it headless (NAME=VALUE: its inputs)
pflow-tui replay TRACE.json             open a saved run
pflow-tui runs                          the saved runs (none yet)
pflow-tui --help                        every command and option
"""


def _parser(command: str) -> argparse.ArgumentParser:
    if command == "diff":
        return _diff_parser()
    if command == "rerun":
        return _rerun_parser()
    if command == "export":
        return _export_parser()
    if command == "runs":
        return _runs_parser()
    if command == "schema":
        return _schema_parser()
    parser = argparse.ArgumentParser(prog=f"pflow-tui {command}".strip(), usage=None,
                                     description=USAGE if not command else None,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    if command == "replay":
        parser.add_argument("trace", metavar="TRACE.json", nargs="?",
                            help="a trace file written by a run")
        parser.add_argument("--last", action="store_true",
                            help="open the newest run in .pflow-tui/traces/ (or --dir)")
        parser.add_argument("--dir", metavar="DIR", help="with --last: the folder of traces "
                            "(default .pflow-tui/traces/)")
    else:
        parser.add_argument("flow", metavar="FLOW.json|FILE.py:NAME",
                            help="the flow file (pflow IR JSON), or a Python PocketFlow program: "
                                 "FILE.py:NAME or MODULE:NAME")
    parser.add_argument("--debug", action="store_true", help="show Python tracebacks")
    if command == "validate":
        parser.add_argument("--explain", action="store_true",
                            help="print the flow as it runs (JSON on stdout: aliases such as batch_mode, "
                                 "execution_mode, batch_config and pflow's shorthands rewritten) and "
                                 "list what was rewritten (on stderr)")
    if command in ("", "replay"):
        parser.add_argument("--at", metavar="PATH",
                            help="open focused on a node or iteration, e.g. flow.square.iteration_6")
    if command not in ("validate", "replay"):
        parser.add_argument("inputs", nargs="*", metavar="NAME=VALUE", help="workflow inputs")
        parser.add_argument("--trace", metavar="PATH", type=_trace_arg,
                            help="where to write the trace (default .pflow-tui/traces/)")
        parser.add_argument("--shared", metavar="FILE.py:NAME",
                            help="Python programs: the shared store to start with (a dict, or a "
                                 "function that returns one); NAME=VALUE then sets its keys")
        _gate_arguments(parser, shown=command == "")
    parser.add_argument("--version", action="version", version=f"pflow-tui {__version__}")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    command = args[0] if args and args[0] in SUBCOMMANDS else ""
    if command:
        args = args[1:]
    opts = None
    try:
        if not args and not command:
            return _no_arguments()
        opts = _parser(command).parse_intermixed_args(args)  # NAME=VALUE may follow options
        return _command(command, opts)
    except KeyboardInterrupt:
        return 130
    except (Exception, RecursionError, MemoryError) as exc:  # a bug: no traceback unless --debug
        if getattr(opts, "debug", False):
            raise
        return _internal_error(exc)


def _internal_error(exc: BaseException) -> int:
    """Log ``exc`` (see :mod:`.crash`), say so in one paragraph, exit 70."""
    from .crash import EXIT_INTERNAL, report

    text = report(exc)
    try:
        _print_error(text)
    except Exception:  # not even rich works: plain text
        sys.stderr.write(f"error: {text}\n")
    return EXIT_INTERNAL


def _run_app(app) -> int | None:
    """Run a Textual app; 70 when it ended on an internal error (the app has shown the
    message and logged the details: see DebuggerApp._handle_exception), 143 when it ended
    on SIGTERM (the terminal restored, as on q), else None."""
    from .crash import EXIT_INTERNAL

    status = app.run()
    if getattr(app, "return_code", None) == EXIT_INTERNAL:
        return EXIT_INTERNAL
    return 143 if status == "terminated" else None


def _skipped_note(what: str, n: int) -> None:
    """``warning: TRACE: N malformed events skipped`` on stderr (nothing when n is 0)."""
    if not n:
        return
    from rich.text import Text

    from .engine.eventcheck import MALFORMED_NOTE, malformed_note
    from .text import literal

    _error_console().print(Text.assemble(("warning: ", "yellow"), literal(f"{what}: {malformed_note(n)}"),
                                         (f" ({MALFORMED_NOTE})", "dim")))


def _command(command: str, opts: argparse.Namespace) -> int:
    if command == "validate":
        return _validate(opts)
    if command == "replay":
        return _replay(opts)
    if command == "diff":
        return _diff(opts)
    if command == "rerun":
        return _rerun(opts)
    if command == "export":
        return _export(opts)
    if command == "runs":
        return _runs(opts)
    if command == "schema":
        return _schema(opts)
    return _run(opts, headless=command == "run")


def _schema_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="pflow-tui schema",
        description="Print the JSON Schema (draft-07) of pflow-tui's flow files on stdout: keys, node "
                    "types and their params. Save it and name it in a flow (\"$schema\": "
                    "\"flow.schema.json\") or in your editor's settings for completion and checks "
                    "while typing; `pflow-tui validate` checks more (templates, edges, ids).")
    parser.add_argument("-o", "--output", metavar="FILE", help="write it to FILE instead of stdout")
    _common_arguments(parser)
    return parser


def _schema(opts: argparse.Namespace) -> int:
    import json

    from .engine.ir.jsonschema import flow_schema

    text = json.dumps(flow_schema(), indent=2, ensure_ascii=False) + "\n"
    if not opts.output:
        sys.stdout.write(text)
        return 0
    try:
        Path(opts.output).write_text(text, encoding="utf-8")
    except OSError as exc:
        _print_error(f"cannot write {opts.output}: {exc.strerror or exc}")
        return 2
    return 0


def _error_console():
    from rich.console import Console

    return Console(stderr=True, highlight=False)


def _common_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--debug", action="store_true", help="show Python tracebacks")
    parser.add_argument("--version", action="version", version=f"pflow-tui {__version__}")


def _trace_arg(value: str) -> str:
    """``--trace PATH``: a path, never empty (an empty one would silently mean the default)."""
    if not value.strip():
        raise argparse.ArgumentTypeError(
            "the trace path is empty: give a file (--trace run.json), or leave --trace out "
            "for the default folder .pflow-tui/traces/")
    return value


def _print_error(message: str) -> None:
    """One line on stderr: ``error: <message>``, shown literally."""
    from rich.text import Text

    from .text import literal

    _error_console().print(Text.assemble(("error: ", "bold red"), literal(message)))


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


def _print_warnings(warnings) -> None:
    """The validator's warnings (what runs here but not on pflow, likely typos), on stderr."""
    from rich.text import Text

    from .text import literal

    console = _error_console()
    for w in warnings:
        console.print(Text.assemble(("warning: ", "yellow"), (literal(w.where), "bold"), ": ",
                                    literal(w.what), f"  ({literal(w.fix)})" if w.fix else ""))


def _load(path: str):
    from .engine.ir.load import load_flow

    return load_flow(path)


def _validate(opts: argparse.Namespace) -> int:
    from rich.text import Text

    from .engine.problems import FlowError
    from .engine.python.pyprogram import is_target, load_program
    from .text import literal, plural

    if is_target(opts.flow):
        if opts.explain:
            _print_error("--explain prints a JSON flow as it runs (aliases rewritten); a Python "
                         "program has no IR to rewrite: leave --explain out")
            return 2
        try:
            program = load_program(opts.flow)
        except FlowError as exc:
            return _report_flow_error(exc)
        _error_console().print(Text.assemble(
            ("✓ ", "green"), literal(opts.flow),
            f": a PocketFlow program ({plural(len(program.node_ids), 'node')}, nested flows included)"))
        return 0
    try:
        if opts.explain:
            _explain(opts.flow)
        spec = _load(opts.flow)
    except FlowError as exc:
        return _report_flow_error(exc)
    console = _error_console()
    _print_warnings(spec.warnings)
    console.print(Text.assemble(("✓ ", "green"), literal(opts.flow),
                                f": valid ({plural(len(spec.nodes), 'node')}, "
                                f"{plural(len(spec.edges), 'edge')})"))
    aliases = sum(r.alias for r in spec.rewrites)
    if aliases and not opts.explain:
        console.print(Text(f"  {aliases} alias{'es' if aliases != 1 else ''} rewritten into pflow-tui's "
                           "forms; `pflow-tui validate --explain FLOW.json` shows the result", "dim"))
    return 0


def _explain(path: str) -> None:
    """Print the normalised flow (stdout, JSON) and what was rewritten (stderr); FlowError
    when the file cannot be read or is not JSON."""
    import orjson
    from rich.text import Text

    from .engine.ir.load import explain, read_doc
    from .text import literal

    normalized = explain(read_doc(path))
    sys.stdout.write(orjson.dumps(normalized.doc, option=orjson.OPT_INDENT_2).decode() + "\n")
    sys.stdout.flush()
    console = _error_console()
    for alias, title in ((True, "aliases rewritten"), (False, "pflow's shorthands and defaults")):
        shown = [r for r in normalized.rewrites if r.alias == alias]
        if shown:
            console.print(Text(f"{title} ({len(shown)}):", "bold"))
            for r in shown:
                console.print(Text.assemble("  ", (literal(r.where), "cyan"), ": ", literal(r.note)))
    if not normalized.rewrites:
        console.print(Text("nothing rewritten: the file is already in pflow-tui's form", "dim"))


def _prepare(opts: argparse.Namespace):
    """Load the flow and its inputs (raises FlowError)."""
    from .engine.executor import parse_assignments, prepare_inputs

    spec = _load(opts.flow)
    stdin = None
    if any(i.stdin for i in spec.inputs.values()) and not sys.stdin.isatty():
        stdin = sys.stdin.read()
    return spec, prepare_inputs(spec, parse_assignments(opts.inputs), as_text=True, stdin=stdin)


def _run(opts: argparse.Namespace, *, headless: bool) -> int:
    from .engine.executor import parse_assignments, run_flow
    from .engine.problems import FlowError, Problem
    from .engine.python.pyprogram import is_target, load_program, run_program
    from .engine.trace import default_trace_path

    if headless and _gate_given(opts):
        _error_console().print(GATE_NEEDS_DEBUGGER)
        return 2
    program = is_target(opts.flow)
    try:
        if program:
            spec = load_program(opts.flow, shared=opts.shared, inputs=parse_assignments(opts.inputs))
            inputs, ids = spec.inputs, spec.node_ids
        elif opts.shared:
            raise FlowError("command line", [Problem(
                "--shared", "only Python programs take a shared store",
                "a pflow flow gets its inputs as NAME=VALUE; drop --shared")])
        else:
            spec, inputs = _prepare(opts)
            ids = _node_ids(spec)
        breakpoints = _breakpoints(opts, ids)
        if not headless and opts.at:
            _check_at(opts.at, _graph_of(spec))
    except FlowError as exc:
        return _report_flow_error(exc)
    trace = opts.trace or default_trace_path(spec.name)
    if _trace_taken(trace):
        return 2
    if not headless:
        return _open_app(spec, inputs, trace, opts.at, paused=opts.paused, breakpoints=breakpoints)
    if program:
        ended = _run_headless(opts, trace, lambda sinks: run_program(spec, trace=trace, sinks=sinks))
    else:
        _print_warnings(spec.warnings)
        ended = _run_headless(opts, trace, lambda sinks: run_flow(spec, inputs, trace=trace, sinks=sinks))
    if isinstance(ended, int):
        return ended
    result, reporter = ended
    reporter.summary(result)
    _show_what_ran(reporter, result)
    return 0 if result.status == "ok" else 1


def _show_what_ran(reporter, result) -> None:
    """A run stopped because its trace could not be written: print what it made so far."""
    from .console import _values_table

    if (result.error or {}).get("type") != "TraceWriteError":
        return
    shown = {k: v for k, v in result.store.items() if not k.startswith("__")}
    if shown:  # the nodes that ended (a batch cut short shows in its progress line)
        reporter.console.print(_values_table("what ran until the trace could not be written", shown))


def _run_headless(opts: argparse.Namespace, trace, run):
    """``run(sinks)`` with the console reporter among the sinks: (result, reporter), or an exit
    code (130, 2)."""
    from rich.text import Text

    from .console import ConsoleReporter
    from .engine.interrupts import EXIT_CODE, Terminated, sigterm_interrupts
    from .engine.trace import TraceExists
    from .text import literal

    reporter = ConsoleReporter()
    try:
        with sigterm_interrupts(), reporter:
            result = run([reporter])
    except KeyboardInterrupt as exc:
        what = "terminated (SIGTERM)" if isinstance(exc, Terminated) else "interrupted"
        reporter.console.print(Text(f"{what}: {literal(str(trace))} holds everything that ran "
                                    "until then"))
        return EXIT_CODE if isinstance(exc, Terminated) else 130
    except TraceExists as exc:  # another run took the path since _trace_taken looked
        _print_error(str(exc))
        return 2
    except OSError as exc:
        if opts.debug:
            raise
        _print_error(f"cannot write the trace: {exc}")
        return 2
    return result, reporter


def _trace_taken(trace) -> bool:
    """Whether a trace is at ``trace`` already (then say so: one run per trace file)."""
    from .engine.trace import TraceExists, check_trace_path

    try:
        check_trace_path(trace)
    except TraceExists as exc:
        _print_error(str(exc))
        return True
    return False


def _replay(opts: argparse.Namespace) -> int:
    from .engine.problems import FlowError
    from .engine.replay import TraceIndex
    from .engine.runs import newest_trace
    from .engine.trace import DEFAULT_DIR, TraceError

    folder = opts.dir or str(DEFAULT_DIR)
    if opts.last == bool(opts.trace) or (opts.dir and not opts.last):
        _print_error("give a trace file, or --last for the newest run (in .pflow-tui/traces/ or "
                     "--dir DIR): `pflow-tui replay TRACE.json` or `pflow-tui replay --last`")
        return 2
    trace = opts.trace
    if opts.last:
        trace = newest_trace(folder)
        if trace is None:
            _print_error(f"no runs in {folder}/: run a flow first (`pflow-tui FLOW.json` or "
                         "`pflow-tui run FLOW.json`), or give --dir")
            return 2
    try:
        index = TraceIndex(trace)
        if opts.at:
            _check_at(opts.at, _replay_graph(index.header), index)
    except TraceError as exc:
        _print_error(str(exc))
        return 2
    except FlowError as exc:
        return _report_flow_error(exc)
    from .app.app import DebuggerApp
    from .app.messages import selection_at

    app = DebuggerApp.replay(index, selection_at(opts.at) if opts.at else None)
    crashed = _run_app(app)
    if crashed:
        return crashed
    _skipped_note(str(trace), index.skipped)
    return 0


# --- --at: a path that exists ----------------------------------------------------------------------

def _graph_of(spec):
    from .app.model import Graph
    from .engine.ir.spec import children_ir
    from .engine.python.pyprogram import Program

    children = spec.children_ir if isinstance(spec, Program) else children_ir(spec)
    return Graph.from_ir(spec.ir, spec.name, children)


def _replay_graph(header: dict):
    from .app.model import Graph

    return Graph.from_ir(header.get("flow") or {}, str(header.get("flow_name") or "flow"),
                         header.get("children"))


def _check_at(address: str, graph, index=None) -> None:
    """FlowError when ``--at`` names no place of the flow, or (``index``: a saved run) no
    place the run reached, with a did-you-mean."""
    from .app.address import check_address, check_in_trace
    from .engine.problems import FlowError, Problem

    wrong = check_address(address, graph)
    if wrong is None and index is not None:
        wrong = check_in_trace(address, index)
    if wrong is not None:
        what, fix = wrong
        raise FlowError("command line", [Problem(f"--at {address}", what, fix)])


# --- the saved runs --------------------------------------------------------------------------------

def _no_arguments() -> int:
    """``pflow-tui`` alone: the list of runs when there are any, else a short usage."""
    from .engine.runs import list_runs
    from .engine.trace import DEFAULT_DIR

    if list_runs(DEFAULT_DIR):
        return _runs(argparse.Namespace(dir=None, json=False, plain=False))
    sys.stderr.write(SHORT_USAGE)
    return 2


def _runs_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="pflow-tui runs", description="The saved runs (traces), newest first: flow, started, "
        "status, duration, items, failures. In the app: enter opens a run, R re-runs it from its "
        "failures, space marks two runs and d diffs them, escape goes back to the list.")
    parser.add_argument("--dir", metavar="DIR", help="the folder of traces (default .pflow-tui/traces/)")
    out = parser.add_mutually_exclusive_group()
    out.add_argument("--json", action="store_true", help="print the list as JSON lines, one run a line")
    out.add_argument("--plain", action="store_true", help="print the list as text (no app)")
    _common_arguments(parser)
    return parser


def _runs(opts: argparse.Namespace) -> int:
    from .engine.runs import list_runs
    from .engine.trace import DEFAULT_DIR

    folder = opts.dir or str(DEFAULT_DIR)
    if opts.dir and not Path(folder).is_dir():
        _print_error(f"{folder}: no such folder (--dir takes the folder of the traces, e.g. "
                     ".pflow-tui/traces)")
        return 2
    if opts.json:
        import orjson

        for record in list_runs(folder):
            sys.stdout.write(orjson.dumps(record.to_json()).decode() + "\n")
        return 0
    if opts.plain or not sys.stdout.isatty():
        return _print_runs(folder, list_runs(folder))
    return _open_runs(folder)


def _print_runs(folder: str, records: list) -> int:
    from rich.console import Console
    from rich.table import Table
    from rich.text import Text

    from .engine.paths import format_duration
    from .engine.runs import started_text
    from .text import literal, plural

    console = Console(highlight=False)
    if not console.is_terminal:  # piped: one line per run, never folded
        console = Console(highlight=False, width=100_000)
    if not records:
        console.print(Text(f"no runs in {literal(folder)}/", "dim"))
        return 0
    table = Table(box=None, pad_edge=False, header_style="bold")
    for name in ("flow", "started", "status", "duration", "items", "failures", "trace"):
        table.add_column(name, no_wrap=True, overflow="fold" if name == "trace" else "ellipsis",
                         justify="right" if name in ("duration", "items", "failures") else "left")
    for r in records:
        table.add_row(Text(literal(r.flow or "?")), Text(literal(started_text(r.started))),
                      Text(r.status, _STATUS_STYLES.get(r.status, "")),
                      format_duration(r.duration, "—"),
                      _count(r.items), _count(r.failed), Text(literal(str(r.path))))
    console.print(table)
    console.print(Text(f"{plural(len(records), 'run')} in {literal(folder)}/", "dim"))
    return 0


def _count(n: int | None) -> str:
    return "—" if n is None else f"{n:,}"


def _open_runs(folder: str) -> int:
    from .app.app import DebuggerApp

    return _run_app(DebuggerApp.browser(Path(folder))) or 0


# --- pause, step, breakpoints (the debugger only) ------------------------------------------------

GATE_NEEDS_DEBUGGER = (
    "error: --paused, --break and --break-on-failure need the debugger, where you step, "
    "continue and see where the run stopped: open the flow with `pflow-tui FLOW.json ...` "
    "(a headless `pflow-tui run` never pauses)")


def _gate_arguments(parser: argparse.ArgumentParser, *, shown: bool = True) -> None:
    """The stepping options. ``shown=False`` (``run``): parsed, so that ``run --paused`` says
    why it needs the debugger, but left out of the help (``run`` rejects them)."""
    def hidden(text: str) -> str:
        return text if shown else argparse.SUPPRESS

    parser.add_argument("--paused", action="store_true",
                        help=hidden("start paused: nothing runs until you step or continue"))
    parser.add_argument("--break", dest="breaks", action="append", default=[], metavar="NODE",
                        help=hidden("pause before NODE starts; repeatable"))
    parser.add_argument("--break-on-failure", action="store_true",
                        help=hidden("pause as soon as a node or an item fails"))


def _gate_given(opts: argparse.Namespace) -> bool:
    return bool(opts.paused or opts.breaks or opts.break_on_failure)


def _node_ids(spec) -> set[str]:
    """Every node id of a flow, its nested flows' too (a node breakpoint stops at them)."""
    ids: set[str] = set()
    flows = [spec]
    while flows:
        flow = flows.pop()
        ids.update(flow.nodes)
        flows.extend(flow.children.values())
    return ids


def _breakpoints(opts: argparse.Namespace, ids: set[str]) -> list:
    """The breakpoints of ``--break`` and ``--break-on-failure`` (FlowError: an unknown node)."""
    from .engine.gate import FailureBreak, NodeBreak
    from .engine.problems import FlowError, Problem, did_you_mean

    problems = [Problem(f"--break {node}", "no node with this id in the flow",
                        did_you_mean(node, ids, "its nodes")) for node in opts.breaks if node not in ids]
    if problems:
        raise FlowError("command line", problems)
    found: list = [NodeBreak(node) for node in dict.fromkeys(opts.breaks)]
    if opts.break_on_failure:
        found.append(FailureBreak())
    return found


def _open_app(spec, inputs, trace, at: str | None = None, *, paused: bool = False,
              breakpoints: Sequence = ()) -> int:
    """``paused``, ``breakpoints`` (gate.Breakpoint objects): for the worker's job."""
    from rich.text import Text

    from .app.app import DebuggerApp
    from .app.messages import selection_at
    from .text import literal

    app = DebuggerApp.live(spec, inputs, trace, selection_at(at) if at else None, paused=paused,
                           breakpoints=breakpoints)
    status = app.run()
    from .crash import EXIT_INTERNAL

    if getattr(app, "return_code", None) == EXIT_INTERNAL:
        return EXIT_INTERNAL
    last = app.runs[-1].trace_path if app.runs else trace
    console = _error_console()
    word = "terminated (SIGTERM)" if status == "terminated" else status or "not finished"
    console.print(Text(f"run {word} · trace: {literal(str(last))}"))
    return {"ok": 0, "cancelled": 130, "interrupted": 130, "terminated": 143}.get(status or "", 1)


# --- diff ------------------------------------------------------------------------------------------

_DIFF_STYLES = {"added": "green", "removed": "red", "status": "bold red", "outputs": "yellow",
                "slower": "magenta", "faster": "cyan", "restored": "blue", "same": "dim"}
_STATUS_STYLES = {"ok": "green", "error": "red", "failed": "red", "cancelled": "magenta",
                  "interrupted": "magenta", "unfinished": "yellow", "not run": "dim",
                  "running": "yellow", "unreadable": "dim"}


def _diff_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="pflow-tui diff", description="Compare two runs path by path (nodes, iterations, "
        "branches): status, outputs, duration. Exit code 0: no differences, 1: they differ, "
        "2: a file is not a trace.")
    parser.add_argument("a", metavar="A.json", help="the first trace (the baseline)")
    parser.add_argument("b", metavar="B.json", help="the second trace")
    parser.add_argument("--all", action="store_true", help="list the unchanged paths too")
    parser.add_argument("--limit", type=int, default=50, metavar="N",
                        help="show at most N rows (default 50; 0: no limit)")
    parser.add_argument("--view", action="store_true",
                        help="open the diff in the app: rows on the left, A and B side by side")
    _common_arguments(parser)
    return parser


def _diff(opts: argparse.Namespace) -> int:
    from rich.console import Console
    from rich.table import Table
    from rich.text import Text

    from .engine.diff import diff_traces, summary_line
    from .engine.paths import format_duration
    from .engine.trace import TraceError
    from .text import literal

    try:
        diff = diff_traces(opts.a, opts.b)
    except TraceError as exc:
        _print_error(str(exc))
        return 2
    if opts.view:
        from .app.app import DebuggerApp

        crashed = _run_app(DebuggerApp.diff_view(diff))
        if crashed:
            return crashed
        for run in (diff.a, diff.b):
            _skipped_note(run.file, run.skipped)
        return 1 if diff.differs else 0
    console = Console(highlight=False)
    for side, run in (("A", diff.a), ("B", diff.b)):
        line = Text.assemble((f"{side}  ", "bold"), (literal(run.file), "bold"), ("  flow ", "dim"),
                             literal(run.flow), "  ",
                             (literal(run.status), _STATUS_STYLES.get(run.status, "")), "  ",
                             (format_duration(run.duration, "—"), "cyan"), ("  source ", "dim"),
                             literal(run.source))
        if run.truncated:
            line.append("  (trace cut short)", "yellow")
        console.print(line)
        _skipped_note(f"{side} {run.file}", run.skipped)
    rows = diff.rows if opts.all else diff.changed()
    shown = rows if opts.limit <= 0 else rows[: opts.limit]
    if shown:
        cells = []
        for r in shown:
            status = Text(literal(r.status_a), _STATUS_STYLES.get(r.status_a, ""))
            if r.status_b != r.status_a:
                status.append(" → ")
                status.append(literal(r.status_b), _STATUS_STYLES.get(r.status_b, ""))
            cells.append((Text(literal(r.label)), Text(r.change, _DIFF_STYLES.get(r.change, "")), status,
                          Text(f"{format_duration(r.duration_a, '—')} → "
                               f"{format_duration(r.duration_b, '—')}"),
                          Text(literal(r.note()), "dim")))
        table = Table(box=None, pad_edge=False, header_style="bold")
        names = ("path", "change", "status A → B", "duration A → B")
        used = 2 * len(names)  # the gaps between columns
        for i, name in enumerate(names):  # the note gives way first; a long path folds
            width = min(max(len(name), *(c[i].cell_len for c in cells)), 60 if i == 0 else 30)
            table.add_column(name, overflow="fold", min_width=width)
            used += width
        table.add_column("note", no_wrap=True, overflow="ellipsis", max_width=max(12, console.width - used))
        for row in cells:
            table.add_row(*row)
        console.print()
        console.print(table)
        if len(rows) > len(shown):
            console.print(Text(f"... and {len(rows) - len(shown)} more (--limit 0 shows every row)", "dim"))
        console.print()
    console.print(Text(summary_line(diff), "bold" if diff.differs else "green"))
    return 1 if diff.differs else 0


def _rerun_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="pflow-tui rerun", description="Re-run a saved run headless: the recorded outputs of "
        "every node and batch iteration that succeeded are restored; what failed or never ran "
        "runs (with --flow, changed nodes and everything downstream of them run too). "
        "Exit code 0: ok, 1: the run failed, 2: bad input, 130: interrupted. See docs/rerun.md.")
    parser.add_argument("source", metavar="TRACE.json", help="the trace of the run to re-run")
    parser.add_argument("inputs", nargs="*", metavar="NAME=VALUE",
                        help="inputs to change (the others keep their recorded values)")
    parser.add_argument("--flow", metavar="FLOW.json",
                        help="run this (edited) flow file instead of the flow recorded in the trace")
    parser.add_argument("--trace", metavar="PATH", dest="out", type=_trace_arg,
                        help="where to write the new trace (default .pflow-tui/traces/)")
    parser.add_argument("--trust", action="store_true",
                        help="run a trace you did not make (not signed by your key) without asking: "
                             "its commands and code run, its recorded outputs are restored. Without "
                             "it such a re-run shows what would run and asks (refused with exit code "
                             "2 when there is no terminal). See docs/security.md")
    _common_arguments(parser)
    return parser


def _consent(lines: list[str], command: str) -> bool:
    """Show what a trace this user did not sign would run; True once the user said yes on
    the terminal. Without a terminal: refused (the caller exits 2)."""
    from rich.text import Text

    from .text import literal

    console = _error_console()
    for line in lines:
        console.print(Text(literal(line)), overflow="fold", crop=False)
    console.print()
    if not sys.stdin.isatty():
        console.print(Text.assemble(("refused: ", "bold red"), "this trace is not signed by you, and "
                                    "there is no terminal to ask. Nothing ran. If you trust where it "
                                    "came from, run it with --trust: ", (command, "bold")))
        return False
    console.print(Text("Run it? [y/N] ", "bold"), end="")
    try:
        answer = input()
    except EOFError:
        answer = ""
    if answer.strip().lower() in ("y", "yes"):
        return True
    console.print("Nothing ran.")
    return False


def _rerun(opts: argparse.Namespace) -> int:
    from rich.text import Text

    from .engine import trust
    from .engine.executor import parse_assignments
    from .engine.problems import FlowError
    from .engine.rerun import check_output, prepare_rerun
    from .engine.trace import TraceError, default_trace_path
    from .text import literal

    verdict = trust.verify(opts.source)
    try:
        spec, inputs, cache = prepare_rerun(opts.source, flow=opts.flow, as_text=True,
                                            inputs=parse_assignments(opts.inputs),
                                            upto=verdict.upto if verdict.trusted else None)
        trace = opts.out or default_trace_path(spec.name)
        check_output(trace, cache)
    except TraceError as exc:
        _print_error(str(exc))
        return 2
    except FlowError as exc:
        return _report_flow_error(exc)
    if not verdict.trusted and not opts.trust:
        import shlex

        again = shlex.join(["pflow-tui", "rerun", opts.source, *(["--flow", opts.flow] if opts.flow
                                                                  else []),
                            *opts.inputs, *(["--trace", str(opts.out)] if opts.out else []), "--trust"])
        if not _consent(trust.rerun_plan(spec, cache, verdict, opts.source), again):
            return 2
    elif verdict.trusted and not verdict.complete:
        _error_console().print(Text(literal(f"{opts.source}: {verdict.describe()}"), "yellow"))
    if _trace_taken(trace):
        return 2
    from .engine.executor import run_flow

    ended = _run_headless(opts, trace, lambda sinks: run_flow(spec, inputs, trace=trace, sinks=sinks,
                                                              cache=cache))
    if isinstance(ended, int):
        return ended
    result, reporter = ended
    c = cache.counts
    from .text import plural as count

    line = Text.assemble(("re-run of ", "dim"), literal(cache.source), ": ",
                         (f"restored {count(c['restored_nodes'], 'node')}, "
                          f"{count(c['restored_items'], 'item')}", "blue"), "; ",
                         (f"ran {count(c['ran_nodes'], 'node')}, {count(c['ran_items'], 'item')}",
                          "bold"))
    if cache.changed:
        line.append(f"  (changed: {', '.join(sorted(cache.changed))})", "yellow")
    reporter.console.print(line)
    _skipped_note(str(cache.source), cache.skipped)
    reporter.summary(result)
    _show_what_ran(reporter, result)
    return 0 if result.status == "ok" else 1


def _export_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="pflow-tui export", description="Write a saved run for other tools: Chrome Trace Event "
        "JSON for ui.perfetto.dev and chrome://tracing (--format perfetto, the default), or "
        "OpenTelemetry spans as OTLP/JSON lines (--format otlp). Exit code 0: written, 2: bad "
        "input or output. See docs/export.md.")
    parser.add_argument("trace", metavar="TRACE.json", help="a trace file written by a run")
    parser.add_argument("--format", choices=("perfetto", "otlp"), default="perfetto",
                        help="perfetto (default): Chrome Trace Event JSON; otlp: OpenTelemetry spans")
    parser.add_argument("-o", "--output", metavar="OUT", help="where to write; - for standard output "
                        "(default: beside the trace, TRACE.perfetto.json or TRACE.otlp.jsonl)")
    _common_arguments(parser)
    return parser


def _export(opts: argparse.Namespace) -> int:
    import os

    from .engine.export import ExportError, export_file

    try:
        done = export_file(opts.trace, opts.format, opts.output)
    except ExportError as exc:
        _print_error(str(exc))
        return 2
    except BrokenPipeError:  # `-o - | head`: the reader has what it wanted
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 141
    where = "standard output" if done.output == "-" else done.output
    _error_console().print(f"wrote {where}: {done.summary()}", highlight=False, markup=False)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
