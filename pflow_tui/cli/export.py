"""``pflow-tui export TRACE.json [--format perfetto|otlp] [-o OUT]``: a saved run for other
tools (docs/export.md)."""

from __future__ import annotations

import argparse
import os
import sys

from ..engine.trace.export import ExportError, export_file
from .output import error_console, print_error
from .parsing import common_arguments


def parser() -> argparse.ArgumentParser:
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
    common_arguments(parser)
    return parser


def command(opts: argparse.Namespace) -> int:
    try:
        done = export_file(opts.trace, opts.format, opts.output)
    except ExportError as exc:
        print_error(str(exc))
        return 2
    except BrokenPipeError:  # `-o - | head`: the reader has what it wanted
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 141
    where = "standard output" if done.output == "-" else done.output
    error_console().print(f"wrote {where}: {done.summary()}", highlight=False, markup=False)
    return 0
