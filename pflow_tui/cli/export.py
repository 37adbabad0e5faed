"""``pflow-tui export TRACE.json [--format perfetto|otlp] [-o OUT]``: a saved run for other
tools (docs/export.md)."""

from __future__ import annotations

import os
import sys

from ..engine.trace.export import ExportError, export_file
from .output import note, print_error
from .parsing import Options


def command(opts: Options) -> int:
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
