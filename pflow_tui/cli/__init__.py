"""Command line: ``pflow-tui FLOW.json``, ``run``, ``validate``, ``replay``, ``rerun``, ``diff``,
``export``, ``runs``, ``schema`` (and ``pflow-tui`` alone: the runs, when there are any).

Exit codes: 0 the flow succeeded (or is valid), 1 the flow failed, 2 bad input (file,
JSON, IR or inputs), 70 an internal error (a short message; the details go to a log file,
see :mod:`pflow_tui.crash`), 130 interrupted (``diff``: 0 no differences, 1 the runs differ, 2 not a
trace; ``export``: 0 written, 2 not a trace or cannot write, 141 ``-o -`` closed early).
Errors fit on one screen and show no Python traceback unless ``--debug`` is given.

One module per command (its ``parser()`` and ``command(opts)``): :mod:`.run` (``pflow-tui
FLOW.json`` and ``run``), :mod:`.validate`, :mod:`.replay`, :mod:`.diff`, :mod:`.rerun`,
:mod:`.export`, :mod:`.runs`, :mod:`.schema`; the options they share in :mod:`.parsing`, how
they print errors and warnings in :mod:`.output`. Only the command given is imported, and
Textual only when the app is opened.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from importlib import import_module
from types import ModuleType

from ..crash import EXIT_INTERNAL, report
from .parsing import flow_parser

SUBCOMMANDS = ("run", "validate", "replay", "diff", "rerun", "export", "runs", "schema")
FLOW_COMMANDS = ("", "run", "validate", "replay")  # parsed by parsing.flow_parser


def main(argv: Sequence[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    command = args[0] if args and args[0] in SUBCOMMANDS else ""
    if command:
        args = args[1:]
    opts = None
    try:
        if not args and not command:
            return command_module("runs").no_arguments()
        parser = flow_parser(command) if command in FLOW_COMMANDS else command_module(command).parser()
        opts = parser.parse_intermixed_args(args)  # NAME=VALUE may follow options
        return _command(command, opts)
    except KeyboardInterrupt:
        return 130
    except (Exception, RecursionError, MemoryError) as exc:  # a bug: no traceback unless --debug
        if getattr(opts, "debug", False):
            raise
        return _internal_error(exc)


def command_module(command: str) -> ModuleType:
    """The module of a command (``""``: the debugger, in :mod:`.run`), imported now: each
    command loads only the engine parts it uses (start-up time)."""
    return import_module(f".{command or 'run'}", __name__)


def _command(command: str, opts: argparse.Namespace) -> int:
    module = command_module(command)
    if module.__name__.endswith(".run"):
        return module.command(opts, headless=command == "run")
    return module.command(opts)


def _internal_error(exc: BaseException) -> int:
    """Log ``exc`` (see :mod:`pflow_tui.crash`), say so in one paragraph, exit 70."""
    text = report(exc)
    try:
        from .output import print_error  # (rich, only now: importing the CLI stays light)

        print_error(text)
    except Exception:  # not even rich works: plain text
        sys.stderr.write(f"error: {text}\n")
    return EXIT_INTERNAL
