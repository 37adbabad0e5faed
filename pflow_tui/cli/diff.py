"""``pflow-tui diff A.json B.json [--all] [--limit N] [--view]``: two runs compared path by
path (nodes, iterations, branches): status, outputs, duration; ``--view`` in the app."""

from __future__ import annotations

from rich.console import Console
from rich.table import Table
from rich.text import Text

from ..engine.paths import format_duration
from ..engine.trace.diff import diff_traces, summary_line
from ..engine.trace.writer import TraceError
from ..text import literal
from .output import STATUS_STYLES, print_error, run_app, skipped_note
from .parsing import Options

DIFF_STYLES = {"added": "green", "removed": "red", "status": "bold red", "outputs": "yellow",
               "slower": "magenta", "faster": "cyan", "restored": "blue", "same": "dim"}



def command(opts: Options) -> int:
    try:
        diff = diff_traces(opts.a, opts.b)
    except TraceError as exc:
        print_error(str(exc))
        return 2
    if opts.view:
        from ..app.app import DebuggerApp  # (textual only when the app opens: start-up time)

        crashed = run_app(DebuggerApp.diff_view(diff))
        if crashed:
            return crashed
        for run in (diff.a, diff.b):
            skipped_note(run.file, run.skipped)
        return 1 if diff.differs else 0
    console = Console(highlight=False)
    for side, run in (("A", diff.a), ("B", diff.b)):
        line = Text.assemble((f"{side}  ", "bold"), (literal(run.file), "bold"), ("  flow ", "dim"),
                             literal(run.flow), "  ",
                             (literal(run.status), STATUS_STYLES.get(run.status, "")), "  ",
                             (format_duration(run.duration), "cyan"), ("  source ", "dim"),
                             literal(run.source))
        if run.truncated:
            line.append("  (trace cut short)", "yellow")
        console.print(line)
        skipped_note(f"{side} {run.file}", run.skipped)
    rows = diff.rows if opts.all else diff.changed()
    shown = rows if opts.limit <= 0 else rows[: opts.limit]
    if shown:
        cells = []
        for r in shown:
            status = Text(literal(r.status_a), STATUS_STYLES.get(r.status_a, ""))
            if r.status_b != r.status_a:
                status.append(" → ")
                status.append(literal(r.status_b), STATUS_STYLES.get(r.status_b, ""))
            cells.append((Text(literal(r.label)), Text(r.change, DIFF_STYLES.get(r.change, "")), status,
                          Text(f"{format_duration(r.duration_a)} → {format_duration(r.duration_b)}"),
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
