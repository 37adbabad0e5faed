"""The options the commands share, and the parser of the commands that take a flow or a
trace (``pflow-tui FLOW.json``, ``run``, ``validate``, ``replay``)."""

from __future__ import annotations

import argparse

from .. import __version__

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


def flow_parser(command: str) -> argparse.ArgumentParser:
    """The parser of ``pflow-tui FLOW.json`` (``command`` ``""``), ``run``, ``validate`` and
    ``replay``."""
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
        parser.add_argument("--trace", metavar="PATH", type=trace_arg,
                            help="where to write the trace (default .pflow-tui/traces/)")
        parser.add_argument("--shared", metavar="FILE.py:NAME",
                            help="Python programs: the shared store to start with (a dict, or a "
                                 "function that returns one); NAME=VALUE then sets its keys")
        parser.add_argument("--cluster", metavar="tcp://HOST:PORT|local", type=cluster_arg,
                            help='where nodes with "executor": "cluster" run: a running Dask '
                                 "scheduler, or local (a cluster on this machine, started and "
                                 "stopped by the run); default $PFLOW_TUI_CLUSTER, else local")
        gate_arguments(parser, shown=command == "")
    parser.add_argument("--version", action="version", version=f"pflow-tui {__version__}")
    return parser


def common_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--debug", action="store_true", help="show Python tracebacks")
    parser.add_argument("--version", action="version", version=f"pflow-tui {__version__}")


def trace_arg(value: str) -> str:
    """``--trace PATH``: a path, never empty (an empty one would silently mean the default)."""
    if not value.strip():
        raise argparse.ArgumentTypeError(
            "the trace path is empty: give a file (--trace run.json), or leave --trace out "
            "for the default folder .pflow-tui/traces/")
    return value


def cluster_arg(value: str) -> str:
    """``--cluster``: ``local`` or a Dask scheduler's address, as a cluster spec; the run gets
    it as ``PFLOW_TUI_CLUSTER`` (the debugger's run process inherits it)."""
    import os

    from ..engine.run.cluster import ENV, parse_cluster  # (start-up time: only when given)

    try:
        spec = parse_cluster(value)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None
    os.environ[ENV] = spec
    return spec


def gate_arguments(parser: argparse.ArgumentParser, *, shown: bool = True) -> None:
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
