"""``pflow-tui runs [--dir DIR] [--json | --plain | --prune]``: the saved runs, newest first
(in the app on a terminal); ``pflow-tui`` alone opens them when there are any. The folder:
``--dir``, else the ``trace_dir`` setting."""

from __future__ import annotations

import sys
from pathlib import Path

import orjson
from rich.console import Console
from rich.table import Table
from rich.text import Text

from ..engine.paths import format_duration
from ..engine.trace.runs import RunRecord, list_runs, started_text
from ..text import literal, plural
from .output import STATUS_STYLES, print_error, run_app
from .parsing import SHORT_USAGE, Options


def no_arguments(opts: Options) -> int:
    """``pflow-tui`` alone: the list of runs when there are any, else a short usage."""
    if list_runs(opts.settings.trace_dir):
        return command(Options(dir=None, json=False, plain=False, prune=False,
                               settings=opts.settings))
    sys.stderr.write(SHORT_USAGE)
    return 2


def command(opts: Options) -> int:
    if sum(map(bool, (opts.json, opts.plain, opts.prune))) > 1:
        print_error("--json, --plain and --prune each do one thing: give one of them")
        return 2
    folder = opts.dir or str(opts.settings.trace_dir)
    if opts.dir and not Path(folder).is_dir():
        print_error(f"{folder}: no such folder (--dir takes the folder of the traces, e.g. "
                    ".pflow-tui/traces)")
        return 2
    if opts.prune:
        from .retention import prune_now

        return prune_now(Path(folder), opts.settings)
    if opts.json:
        for record in list_runs(folder):
            sys.stdout.write(orjson.dumps(record.to_json()).decode() + "\n")
        return 0
    if opts.plain or not sys.stdout.isatty():
        return print_runs(folder, list_runs(folder))
    return open_runs(folder)


def print_runs(folder: str, records: list[RunRecord]) -> int:
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
                      Text(r.status, STATUS_STYLES.get(r.status, "")),
                      format_duration(r.duration) if r.duration is not None else "—",
                      count(r.items), count(r.failed), Text(literal(str(r.path))))
    console.print(table)
    console.print(Text(f"{plural(len(records), 'run')} in {literal(folder)}/", "dim"))
    return 0


def count(n: int | None) -> str:
    return "—" if n is None else f"{n:,}"


def open_runs(folder: str) -> int:
    from ..app.app import DebuggerApp  # (textual only when the app opens: start-up time)

    return run_app(DebuggerApp.browser(Path(folder))) or 0
