"""How the commands talk to the user on stderr: errors (one screen, no traceback), the
problems of a flow, warnings, and the exit code of an app that ended badly. Every text from
a file, a flow or a trace is shown literally."""

from __future__ import annotations

import sys
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.text import Text

from ..crash import EXIT_INTERNAL
from ..engine.problems import FlowError, Problem
from ..engine.trace.check import MALFORMED_NOTE, malformed_note
from ..text import literal
from . import parsing

MAX_PROBLEMS_SHOWN = 15

# how each run status looks in the tables of `diff` and `runs`
STATUS_STYLES = {"ok": "green", "error": "red", "failed": "red", "cancelled": "magenta",
                 "interrupted": "magenta", "unfinished": "yellow", "not run": "dim",
                 "running": "yellow", "unreadable": "dim"}


def quiet() -> bool:
    """``-q``: errors only on stderr."""
    return parsing.VERBOSITY < 0


def verbose() -> bool:
    """``-v``: more on stderr."""
    return parsing.VERBOSITY > 0


def error_console() -> Console:
    return Console(stderr=True, highlight=False)


def note(text: Text | str) -> None:
    """A success note or a hint on stderr (``-q`` leaves it out)."""
    if not quiet():
        error_console().print(text if isinstance(text, Text) else Text(literal(text)), highlight=False)


def print_error(message: str) -> None:
    """One line on stderr: ``error: <message>``, shown literally."""
    error_console().print(Text.assemble(("error: ", "bold red"), literal(message)))


def write_output(text: str, output: str | None) -> int:
    """``text`` to stdout (no ``output``) or to the file ``output``; the exit code (2: the
    file cannot be written, said on stderr)."""
    if not output:
        sys.stdout.write(text)
        return 0
    try:
        Path(output).write_text(text, encoding="utf-8")
    except OSError as exc:
        print_error(f"cannot write {output}: {exc.strerror or exc}")
        return 2
    return 0


def report_flow_error(exc: FlowError) -> int:
    """Every problem of a flow (the first :data:`MAX_PROBLEMS_SHOWN`) with its fix; exit code 2."""
    console = error_console()
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


def print_warnings(warnings: Iterable[Problem]) -> None:
    """The validator's warnings (what runs here but not on pflow, likely typos), on stderr
    (``-q`` leaves them out)."""
    if quiet():
        return
    console = error_console()
    for w in warnings:
        console.print(Text.assemble(("warning: ", "yellow"), (literal(w.where), "bold"), ": ",
                                    literal(w.what), f"  ({literal(w.fix)})" if w.fix else ""))


def skipped_note(what: str, n: int) -> None:
    """``warning: TRACE: N malformed events skipped`` on stderr (nothing when n is 0, or -q)."""
    if not n or quiet():
        return
    error_console().print(Text.assemble(("warning: ", "yellow"), literal(f"{what}: {malformed_note(n)}"),
                                        (f" ({MALFORMED_NOTE})", "dim")))


def themed(app: Any) -> int | None:
    """Give ``app`` the configured theme (the ``theme`` setting); 2, said on stderr, when
    Textual has no theme of that name, else None."""
    settings = parsing.SETTINGS
    if settings is None or not settings.values["theme"].given:
        return None
    from ..settings import theme_problem

    problem = theme_problem(settings)
    if problem is not None:
        return report_flow_error(problem)
    app.theme = settings["theme"]
    return None


def run_app(app: Any) -> int | None:
    """Run a Textual app in the configured theme; 70 when it ended on an internal error (the
    app has shown the message and logged the details: see DebuggerApp._handle_exception),
    143 when it ended on SIGTERM (the terminal restored, as on q), 2 for a theme Textual
    does not have, else None."""
    bad = themed(app)
    if bad is not None:
        return bad
    status = app.run()
    if getattr(app, "return_code", None) == EXIT_INTERNAL:
        return EXIT_INTERNAL
    return 143 if status == "terminated" else None
