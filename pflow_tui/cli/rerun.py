"""``pflow-tui rerun TRACE.json [--flow FLOW.json] [NAME=VALUE ...] [--trust] [--cluster ADDR]``:
re-run a saved run headless: what succeeded is restored from its trace, what failed or never
ran runs. A trace this user did not sign shows what it would run and asks first
(docs/security.md)."""

from __future__ import annotations

import shlex
import sys

from rich.text import Text

from ..engine.problems import FlowError
from ..engine.run.executor import run_flow
from ..engine.run.inputs import parse_assignments
from ..engine.trace import trust
from ..engine.trace.rerun import check_output, prepare_rerun
from ..engine.trace.writer import TraceError, default_trace_path
from ..text import literal
from ..text import plural as count
from .output import error_console, print_error, report_flow_error, skipped_note
from .parsing import Options
from .run import run_headless, show_what_ran, trace_taken


def consent(lines: list[str], command: str) -> bool:
    """Show what a trace this user did not sign would run; True once the user said yes on
    the terminal. Without a terminal: refused (the caller exits 2)."""
    console = error_console()
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


def command(opts: Options) -> int:
    verdict = trust.verify(opts.source)
    try:
        spec, inputs, cache = prepare_rerun(opts.source, flow=opts.flow, as_text=True,
                                            inputs=parse_assignments(opts.inputs),
                                            upto=verdict.upto if verdict.trusted else None)
        trace = opts.out or default_trace_path(spec.name)
        check_output(trace, cache)
    except TraceError as exc:
        print_error(str(exc))
        return 2
    except FlowError as exc:
        return report_flow_error(exc)
    if not verdict.trusted and not opts.trust:
        again = shlex.join(["pflow-tui", "rerun", opts.source, *(["--flow", opts.flow] if opts.flow
                                                                  else []),
                            *opts.inputs, *(["--trace", str(opts.out)] if opts.out else []),
                            *(["--cluster", opts.cluster] if opts.cluster else []), "--trust"])
        if not consent(trust.rerun_plan(spec, cache, verdict, opts.source), again):
            return 2
    elif verdict.trusted and not verdict.complete:
        error_console().print(Text(literal(f"{opts.source}: {verdict.describe()}"), "yellow"))
    if trace_taken(trace):
        return 2
    ended = run_headless(opts, trace, lambda sinks: run_flow(spec, inputs, trace=trace, sinks=sinks,
                                                              cache=cache))
    if isinstance(ended, int):
        return ended
    result, reporter = ended
    c = cache.counts
    line = Text.assemble(("re-run of ", "dim"), literal(cache.source), ": ",
                         (f"restored {count(c['restored_nodes'], 'node')}, "
                          f"{count(c['restored_items'], 'item')}", "blue"), "; ",
                         (f"ran {count(c['ran_nodes'], 'node')}, {count(c['ran_items'], 'item')}",
                          "bold"))
    if cache.changed:
        line.append(f"  (changed: {', '.join(sorted(cache.changed))})", "yellow")
    reporter.console.print(line)
    skipped_note(str(cache.source), cache.skipped)
    reporter.summary(result)
    show_what_ran(reporter, result)
    return 0 if result.status == "ok" else 1
