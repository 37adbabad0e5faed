"""Command line (Click): ``pflow-tui FLOW.json``, ``run``, ``validate``, ``graph``, ``runs``,
``replay``, ``rerun``, ``diff``, ``export``, ``serve``, ``schema`` (and ``pflow-tui`` alone: the
runs, when there are any).

Exit codes: 0 the flow succeeded (or is valid), 1 the flow failed, 2 bad input (file, JSON,
IR, inputs, an option or a command that does not exist), 70 an internal error (a short
message; the details go to a log file, see :mod:`pflow_tui.crash`), 130 interrupted, 143
terminated (``diff``: 0 no differences, 1 the runs differ, 2 not a trace; ``export``: 0
written, 2 not a trace or cannot write, 141 ``-o -`` closed early). Errors fit on one screen
and show no Python traceback unless ``--debug`` is given.

The commands' shape (arguments, options, help) is in :mod:`.parsing`; each command runs in a
module of its own (``command(opts)``): :mod:`.run` (``pflow-tui FLOW.json`` and ``run``),
:mod:`.validate`, :mod:`.graph`, :mod:`.replay`, :mod:`.diff`, :mod:`.rerun`, :mod:`.export`,
:mod:`.runs`, :mod:`.serve` (its server in :mod:`.web_server`: the web extra), :mod:`.schema`;
how they print errors and warnings is in :mod:`.output`. Only the command given is imported,
and Textual only when the app is opened.

Shell completion: ``eval "$(_PFLOW_TUI_COMPLETE=bash_source pflow-tui)"`` (``zsh_source``,
``fish_source``).
"""

from __future__ import annotations

import difflib
import os
import sys
import textwrap
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import click

from ..crash import EXIT_INTERNAL, report

if TYPE_CHECKING:
    from click.shell_completion import CompletionItem
from . import parsing
from .parsing import (
    COMMANDS,
    COMMON_OPTIONS,
    COMPLETION,
    CONTEXT_SETTINGS,
    EXIT_CODES,
    FLOW_COMMANDS,
    SUBCOMMANDS,
    command_module,
    make_command,
    option_names,
    synopsis,
    usage_path,
)

__all__ = ["FLOW_COMMANDS", "SUBCOMMANDS", "cli", "command_module", "main"]


DEBUGGER = "\x00debugger"  # stands for the debugger when the command line starts with its options


class PflowTui(click.Group):
    """The commands, and the debugger when the first word is no command:
    ``pflow-tui FLOW.json [NAME=VALUE ...]``. A word that is no command, no file and looks
    like a mistyped command is said as such, with a did-you-mean."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.debugger = make_command("")

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        # `pflow-tui --trace t.json FLOW.json`: options that are not pflow-tui's own are the debugger's
        own = 0  # (pflow-tui's own options take no value)
        while own < len(args) and args[own] != "--" and self.own_option(ctx, args[own]):
            own += 1
        if own < len(args) and args[own].startswith("-") and args[own] != "--":
            args = [*args[:own], DEBUGGER, *args[own:]]
        return super().parse_args(ctx, args)

    def own_option(self, ctx: click.Context, arg: str) -> bool:
        """Whether ``arg`` is an option of ``pflow-tui`` itself (-v, -q, --debug, --help, --version)."""
        if not arg.startswith("-"):
            return False
        names = option_names(self.get_params(ctx))
        if arg.partition("=")[0] in names:
            return True
        shorts = {n[1] for n in names if len(n) == 2 and n[0] == "-" and n[1] != "-"}
        return not arg.startswith("--") and len(arg) > 1 and all(c in shorts for c in arg[1:])

    def resolve_command(self, ctx: click.Context,
                        args: list[str]) -> tuple[str | None, click.Command | None, list[str]]:
        name = args[0]
        if name == DEBUGGER:
            return "", self.debugger, args[1:]
        command = self.get_command(ctx, name)
        if command is not None:
            return name, command, args[1:]
        if not ctx.resilient_parsing and looks_like_a_command(name):
            raise click.UsageError(no_such_command(name), ctx)
        return "", self.debugger, args  # the debugger: `pflow-tui FLOW.json ...`

    def collect_usage_pieces(self, ctx: click.Context) -> list[str]:
        return ["[OPTIONS]", "FLOW.json [NAME=VALUE]... | COMMAND [ARGS]..."]

    def shell_complete(self, ctx: click.Context, incomplete: str) -> list[CompletionItem]:
        # the first word: a command, or a flow file (the debugger)
        from click.shell_completion import CompletionItem

        files = [] if incomplete.startswith("-") else [CompletionItem(incomplete, type="file")]
        return files + super().shell_complete(ctx, incomplete)

    def format_help(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        """Every command with what it takes, the options they share, the exit codes."""
        formatter.write_text("pflow-tui: a terminal debugger for pflow workflows (JSON IR on "
                             "PocketFlow), headless runs, saved runs, diffs and exports.")
        formatter.write_paragraph()
        with formatter.section("Usage"):
            for name in COMMANDS:
                command = self.debugger if not name else self.commands[name]
                with click.Context(command, info_name=name, parent=ctx) as sub:
                    line = " ".join(["pflow-tui", *([name] if name else []), synopsis(command, sub)])
                indent = " " * formatter.current_indent
                formatter.write(textwrap.fill(line, formatter.width, initial_indent=indent,
                                              subsequent_indent=indent + "      ",
                                              break_on_hyphens=False, break_long_words=False) + "\n")
                with formatter.indentation(), formatter.indentation():
                    formatter.write_text(COMMANDS[name][1])
        with formatter.section("Options of every command"):
            formatter.write_dl([(", ".join(p.opts), p.help or "") for p in self.get_params(ctx)
                                if isinstance(p, click.Option)])
        with formatter.section("Exit codes"):
            formatter.write_dl([(str(code), text) for code, text in EXIT_CODES])
        with formatter.section("More"):
            formatter.write_text("`pflow-tui COMMAND --help` explains a command's options; "
                                 "`pflow-tui FLOW.json --help` the debugger's.")
            formatter.write_text(f"Shell completion: {COMPLETION}")


def looks_like_a_command(word: str) -> bool:
    """A bare word that names no file (``rnu``): a mistyped command rather than a flow."""
    return not any(c in word for c in "./:\\") and not os.path.exists(word)


def no_such_command(word: str) -> str:
    close = difflib.get_close_matches(word, SUBCOMMANDS, 1)
    if close:
        return f"No such command {word!r}. Did you mean {close[0]!r}?"
    return (f"No such command {word!r}, and no flow file {word!r} to open. The commands: "
            f"{', '.join(SUBCOMMANDS)}; a flow: pflow-tui FLOW.json")


def _no_command(**_params: Any) -> int | None:
    ctx = click.get_current_context()
    if ctx.invoked_subcommand is not None:
        return None
    parsing.VERBOSITY = parsing.verbosity(ctx)
    opts = parsing.Options(verbosity=parsing.VERBOSITY)
    return parsing.configured("runs", opts, lambda: int(command_module("runs").no_arguments(opts)))


def build() -> PflowTui:
    group = PflowTui(name="pflow-tui", callback=_no_command, invoke_without_command=True,
                     context_settings=CONTEXT_SETTINGS)
    for decorator in COMMON_OPTIONS:
        decorator(group)
    for name in SUBCOMMANDS:
        group.add_command(make_command(name), name)
    return group


cli = build()


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; the exit code (the console script exits with it)."""
    args = list(sys.argv[1:] if argv is None else argv)
    debug = "--debug" in (args[: args.index("--")] if "--" in args else args)
    parsing.VERBOSITY = 0
    parsing.FLAGS.clear()
    try:
        code = cli.main(args, prog_name="pflow-tui", standalone_mode=False)
    except (KeyboardInterrupt, click.exceptions.Abort):
        return 130
    except click.ClickException as exc:
        return usage_error(exc)
    except (Exception, RecursionError, MemoryError) as exc:  # a bug: no traceback unless --debug
        if bad_settings(exc):
            from .output import report_flow_error

            return report_flow_error(exc)  # type: ignore[arg-type]
        if debug:
            raise
        return _internal_error(exc)
    return int(code or 0)


def bad_settings(exc: BaseException) -> bool:
    """Whether ``exc`` is a bad settings file or variable (said like a bad flow: the file,
    the key, the fix; exit code 2), not a bug."""
    settings = sys.modules.get("pflow_tui.settings")  # (not imported: no settings were read)
    return settings is not None and isinstance(exc, settings.SettingsError)


def usage_error(exc: click.ClickException) -> int:
    """A command line Click could not take: what is wrong, the usage, where the help is; 2."""
    from rich.text import Text

    from ..text import literal
    from .output import error_console

    console = error_console()
    message = exc.format_message()
    if isinstance(exc, click.NoSuchOption) and exc.possibilities:  # the closest one only
        best = difflib.get_close_matches(exc.option_name, exc.possibilities, 1, 0.0)[0]
        message = f"No such option {exc.option_name!r}. Did you mean {best!r}?"
    console.print(Text.assemble(("error: ", "bold red"), literal(message)))
    ctx = getattr(exc, "ctx", None)
    if ctx is not None:
        usage = " ".join(ctx.get_usage().split()).removeprefix("Usage: ")
        console.print(Text.assemble(("usage: ", "dim"), literal(usage)))
        console.print(Text(f"`{usage_path(ctx)} --help` explains every option", "dim"))
    return 2


def _internal_error(exc: BaseException) -> int:
    """Log ``exc`` (see :mod:`pflow_tui.crash`), say so in one paragraph, exit 70."""
    text = report(exc)
    try:
        from .output import print_error  # (rich, only now: importing the CLI stays light)

        print_error(text)
    except Exception:  # not even rich works: plain text
        sys.stderr.write(f"error: {text}\n")
    return EXIT_INTERNAL
