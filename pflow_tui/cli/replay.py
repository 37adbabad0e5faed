"""``pflow-tui replay TRACE.json|--last [--at PATH]``: open a saved run in the debugger (no
code from it runs)."""

from __future__ import annotations

from pathlib import Path

from ..engine.problems import FlowError
from ..engine.trace.reader import TraceIndex
from ..engine.trace.runs import newest_trace
from ..engine.trace.writer import TraceError
from .at import check_at, replay_graph
from .output import print_error, report_flow_error, run_app, skipped_note
from .parsing import Options


def command(opts: Options) -> int:
    folder = opts.dir or str(opts.settings.trace_dir)
    if opts.last == bool(opts.trace) or (opts.dir and not opts.last):
        print_error("give a trace file, or --last for the newest run (in .pflow-tui/traces/ or "
                    "--dir DIR): `pflow-tui replay TRACE.json` or `pflow-tui replay --last`")
        return 2
    trace = opts.trace
    if opts.last:
        trace = newest_trace(folder)
        if trace is None:
            print_error(f"no runs in {folder}/: run a flow first (`pflow-tui FLOW.json` or "
                        "`pflow-tui run FLOW.json`), or give --dir")
            return 2
    index = read_trace(trace, opts.at)
    if isinstance(index, int):
        return index
    from ..app.app import DebuggerApp  # (textual once the trace is read: a bad one is said at once)
    from ..app.messages import selection_at  # (textual too)

    app = DebuggerApp.replay(index, selection_at(opts.at) if opts.at else None)
    crashed = run_app(app)
    if crashed:
        return crashed
    skipped_note(str(trace), index.skipped)
    return 0


def read_trace(trace: str | Path, at: str | None) -> TraceIndex | int:
    """The trace, read and ``at`` checked against it; else the error said and exit code 2."""
    try:
        index = TraceIndex(trace)
        if at:
            check_at(at, replay_graph(index.header), index)
    except TraceError as exc:
        print_error(str(exc))
        return 2
    except FlowError as exc:
        return report_flow_error(exc)
    return index
