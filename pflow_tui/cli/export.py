"""``pflow-tui export TRACE.json [--format perfetto|otlp] [-o OUT] [--otlp-endpoint URL]``:
a saved run for other tools, or its spans sent to an OpenTelemetry collector (docs/export.md)."""

from __future__ import annotations

import os
import sys

from ..engine.trace.export import ExportError, export_file, push_trace
from .output import note, print_error
from .parsing import Options


def command(opts: Options) -> int:
    if opts.otlp_endpoint:
        if opts.output:
            print_error("--otlp-endpoint sends the spans to a collector: leave out -o")
            return 2
        try:
            done = push_trace(opts.trace, opts.otlp_endpoint)
        except ExportError as exc:
            print_error(str(exc))
            return 2
        note(f"sent to {done.output}: {done.summary()}")
        return 0
    try:
        done = export_file(opts.trace, opts.format, opts.output)
    except ExportError as exc:
        print_error(str(exc))
        return 2
    except BrokenPipeError:  # `-o - | head`: the reader has what it wanted
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 141
    where = "standard output" if done.output == "-" else done.output
    note(f"wrote {where}: {done.summary()}")
    return 0
