"""The command line's shape, in Click: every command with its arguments and options, the
options they share, and the value types with their messages and completion.

Only this module (and Click) is imported to parse a command line; a command's module, and
with it the engine, is imported once that command runs (start-up time). Each command's
module has ``command(opts)``: ``opts`` holds its parameters by name (:data:`Options`),
plus ``verbosity`` (``-v``/``-q``).

To add an option to ``run`` and the debugger (``pflow-tui FLOW.json``) alike, add one line
to :data:`RUN_OPTIONS` (``serve`` takes it too and gives it to each browser tab's debugger);
to every command, to :data:`COMMON_OPTIONS`.
"""

from __future__ import annotations

import difflib
import os
from collections.abc import Callable, Sequence
from importlib import import_module
from types import ModuleType, SimpleNamespace
from typing import Any

import click

from .. import __version__

Options = SimpleNamespace  # what a command's ``command(opts)`` gets: its parameters by name
VERBOSITY = 0  # -v minus -q on this command line (set before the command runs; see output.quiet)
FLAGS: dict[str, Any] = {}  # the settings a flag gave on this command line (``--cluster``)
SETTINGS: Any = None  # this command's pflow_tui.settings.Settings (set before it runs)
RUNS = ("", "run", "rerun")  # the commands that write a run: the trace folder is pruned after them
Decorator = Callable[[Any], Any]

#: The exit codes, for the help (``pflow-tui --help``) and the docs.
EXIT_CODES = (
    (0, "ok: the run succeeded, the flow is valid, the file was written; diff: no differences"),
    (1, "the run failed; diff: the runs differ"),
    (2, "bad input: a file, its JSON, the flow, its inputs, an option or a command that does "
        "not exist; never a traceback"),
    (70, "internal error (a bug): a short message says which log file holds the details"),
    (130, "interrupted (Ctrl-C); the trace keeps everything that ran until then"),
    (141, "export -o -: the reader closed the pipe early"),
    (143, "terminated (SIGTERM); the trace keeps everything that ran until then"),
)

SHORT_USAGE = """\
pflow-tui FLOW.json [NAME=VALUE ...]    run a flow in the debugger
pflow-tui run FLOW.json [NAME=VALUE ...]
                                        run it headless (NAME=VALUE: its inputs)
pflow-tui replay TRACE.json             open a saved run
pflow-tui runs                          the saved runs (none yet)
pflow-tui --help                        every command and option
"""

COMPLETION = ('eval "$(_PFLOW_TUI_COMPLETE=bash_source pflow-tui)"  (zsh: zsh_source; fish: '
              "_PFLOW_TUI_COMPLETE=fish_source pflow-tui | source)")


# --- value types ------------------------------------------------------------------------------------


class OneOf(click.Choice):
    """A choice whose error names the choices and the closest one."""

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Any:
        if value in self.choices:
            return value
        close = difflib.get_close_matches(str(value), [str(c) for c in self.choices], 1)
        self.fail(f"invalid choice: {value!r} (choose from {', '.join(map(str, self.choices))})"
                  + (f"; did you mean {close[0]!r}?" if close else ""), param, ctx)


class TracePath(click.Path):
    """``--trace PATH``: a path, never empty (an empty one would silently mean the default)."""

    def __init__(self) -> None:
        super().__init__(dir_okay=False)

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Any:
        if isinstance(value, str) and not value.strip():
            self.fail("the trace path is empty: give a file (--trace run.json), or leave --trace "
                      "out for the default folder .pflow-tui/traces/", param, ctx)
        return super().convert(value, param, ctx)


FILE = click.Path()  # a file to read (completed as a path; checked by the command, which says why)


# --- the options the commands share -------------------------------------------------------------------

VERBOSE_HELP = ("more on stderr: the trace path as the run starts, each failed item as it ends, "
                "what validation rewrote")
QUIET_HELP = "less on stderr: no progress, no warnings, no success notes (errors stay)"

COMMON_OPTIONS: list[Decorator] = [
    click.option("-v", "--verbose", count=True, help=VERBOSE_HELP),
    click.option("-q", "--quiet", count=True, help=QUIET_HELP),
    click.option("--debug", is_flag=True, help="show Python tracebacks"),
    click.version_option(__version__, "--version", prog_name="pflow-tui",
                         message="%(prog)s %(version)s", help="print the version and exit"),
]

#: ``--cluster``: of ``run``, the debugger and ``rerun``.
CLUSTER_OPTION: Decorator = click.option(
    "--cluster", metavar="tcp://HOST:PORT|local", callback=lambda _c, _p, v: cluster_arg(v),
    help='where nodes with "executor": "cluster" run: a running Dask scheduler, or local (a '
         "cluster on this machine, started and stopped by the run); default $PFLOW_TUI_CLUSTER, "
         "else local")

#: The options of ``run`` and of the debugger (``pflow-tui FLOW.json``): one line each.
TRACE_OPTION = click.option("--trace", type=TracePath(), metavar="PATH",
                            help="where to write the trace (default .pflow-tui/traces/)")
RUN_OPTIONS: list[Decorator] = [
    TRACE_OPTION,
    click.option("--shared", metavar="FILE.py:NAME",
                 help="Python programs: the shared store to start with (a dict, or a function that "
                      "returns one); NAME=VALUE then sets its keys"),
    CLUSTER_OPTION,
]


def cluster_arg(value: str | None) -> str | None:
    """``--cluster``: ``local`` or a Dask scheduler's address, as a cluster spec; the run gets
    it as ``PFLOW_TUI_CLUSTER`` (the debugger's run process inherits it)."""
    if value is None:
        return None
    from ..engine.run.cluster import ENV, parse_cluster  # start-up time: only when given

    try:
        spec = parse_cluster(value)
    except ValueError as exc:
        raise click.BadParameter(str(exc)) from None
    os.environ[ENV] = spec
    FLAGS["cluster"] = spec
    return spec


def gate_options(shown: bool) -> list[Decorator]:
    """The stepping options. ``shown=False`` (``run``): parsed, so that ``run --paused`` says
    why it needs the debugger, but left out of the help."""
    return [
        click.option("--paused", is_flag=True, hidden=not shown,
                     help="start paused: nothing runs until you step or continue"),
        click.option("--break", "breaks", multiple=True, metavar="NODE", hidden=not shown,
                     help="pause before NODE starts; repeatable"),
        click.option("--break-on-failure", is_flag=True, hidden=not shown,
                     help="pause as soon as a node or an item fails"),
    ]


def no_trace(_ctx: click.Context, _param: click.Parameter, value: str | None) -> None:
    """``serve --trace``: refused, with the reason (each browser tab is a run of its own)."""
    if value is not None:
        raise click.BadParameter("each browser tab runs the flow anew, each run with a trace of its "
                                 "own in .pflow-tui/traces/ (the server prints each path as its tab "
                                 "closes); --trace names one file: leave it out")


#: ``serve``: the debugger's options (each browser tab gets them), but not ``--trace``; then its own
SERVE_OPTIONS: list[Decorator] = [
    *(o for o in RUN_OPTIONS if o is not TRACE_OPTION),
    click.option("--trace", hidden=True, expose_value=False, callback=no_trace),
    click.option("--host", default="127.0.0.1", metavar="HOST", show_default=True,
                 help="the address to listen on; 0.0.0.0 lets other machines in (and run the flow: "
                      "see docs/cli.md)"),
    click.option("--port", type=click.IntRange(1, 65535), default=8000, metavar="N",
                 show_default=True, help="the port to listen on"),
    click.option("--public-url", metavar="URL",
                 help="the address browsers use to reach the server, when it is not http://HOST:PORT "
                      "(behind a proxy, or with --host 0.0.0.0)"),
]

FLOW_ARGUMENT = click.argument("flow", metavar="FLOW.json|FILE.py:NAME", type=FILE)
INPUTS_ARGUMENT = click.argument("inputs", nargs=-1, metavar="[NAME=VALUE]...")
AT_OPTION = click.option("--at", metavar="PATH",
                         help="open focused on a node or iteration, e.g. flow.square.iteration_6")


# --- the commands ----------------------------------------------------------------------------------------

#: name -> (module, one-line summary, description). ``""``: the debugger, ``pflow-tui FLOW.json``.
COMMANDS: dict[str, tuple[str, str, str]] = {
    "": ("run", "open the debugger and run the flow live",
         "Open the debugger and run the flow live: FLOW.json (pflow IR), or a Python PocketFlow "
         "program, FILE.py:NAME or MODULE:NAME (NAME: a Flow, or a function that returns one). "
         "NAME=VALUE: the flow's inputs. Exit code 0: the run succeeded, 1: it failed, 2: bad "
         "input, 130: cancelled or interrupted, 143: terminated."),
    "run": ("run", "run a flow headless, with progress on stderr and its outputs on stdout",
            "Run a flow headless: progress on stderr, the flow's outputs on stdout (--output-format "
            "json: one JSON document). Stepping and breakpoints need the debugger "
            "(`pflow-tui FLOW.json`). Exit code 0: ok, 1: the run failed, 2: bad input, "
            "130: interrupted, 143: terminated."),
    "validate": ("validate", "check a flow and report every problem",
                 "Check a flow (or a Python program) and report every problem with its fix; "
                 "--explain prints the flow as it runs, aliases rewritten. Exit code 0: valid, 2: "
                 "not."),
    "graph": ("graph", "print the flow's graph as Mermaid or Graphviz DOT",
              "Print the flow's graph for docs and pull requests: Mermaid (the default) or Graphviz "
              "DOT. Nested flows are subgraphs, parallel groups clusters, batch nodes marked "
              "[batch]. Exit code 0: printed, 2: bad input."),
    "runs": ("runs", "the saved runs, newest first: open, re-run, diff",
             "The saved runs (traces), newest first: flow, started, status, duration, items, "
             "failures. In the app: enter opens a run, R re-runs it from its failures, space marks "
             "two runs and d diffs them, escape goes back to the list. `pflow-tui` alone opens "
             "them when there are any."),
    "replay": ("replay", "open a saved run (no code runs)",
               "Open a saved run in the debugger; no code from it runs (R re-runs it, asking first "
               "for a trace you did not sign). Exit code 0: closed, 2: not a trace."),
    "rerun": ("rerun", "re-run a saved run: restore what succeeded, run the rest",
              "Re-run a saved run headless: the recorded outputs of every node and batch iteration "
              "that succeeded are restored; what failed or never ran runs (with --flow, changed "
              "nodes and everything downstream of them run too). Exit code 0: ok, 1: the run "
              "failed, 2: bad input, 130: interrupted. See docs/rerun.md."),
    "diff": ("diff", "compare two runs path by path",
             "Compare two runs path by path (nodes, iterations, branches): status, outputs, "
             "duration. Exit code 0: no differences, 1: they differ, 2: a file is not a trace."),
    "export": ("export", "a saved run for Perfetto or OpenTelemetry",
               "Write a saved run for other tools: Chrome Trace Event JSON for ui.perfetto.dev and "
               "chrome://tracing (--format perfetto, the default), or OpenTelemetry spans as "
               "OTLP/JSON lines (--format otlp), or the spans sent to an OpenTelemetry collector "
               "(--otlp-endpoint URL, OTLP/HTTP). Exit code 0: written, 2: bad input or output (or "
               "the collector refused or could not be reached), 141: -o - closed early. See "
               "docs/export.md."),
    "serve": ("serve", "serve the debugger to a web browser (the web extra)",
              "Serve the debugger on a flow, or on a saved run (serve replay TRACE.json), to web "
              "browsers through textual-serve (pip install 'pflow-tui[web]'): open the printed URL; "
              "each browser tab runs the flow anew (a trace each, in .pflow-tui/traces/). Listens on "
              "127.0.0.1 unless --host says otherwise: whoever opens the page runs the flow. The "
              "flow or trace is checked before the server starts. Ctrl-C stops it. Exit code 2: bad "
              "input, the extra missing or the port taken; 130: stopped (Ctrl-C), 143: terminated."),
    "config": ("config", "the settings, and where each value came from",
               "Show every setting (trace folder, retention, theme, processes, cluster, prices) "
               "with its value and where it came from: a flag, an environment variable, a file "
               "(pflow-tui.toml or [tool.pflow-tui] in pyproject.toml, the nearest walking up; "
               "then config.toml in the user's config folder) and its line, or the default. "
               "Exit code 0: shown, 2: a setting is bad. See docs/configuration.md."),
    "schema": ("schema", "the JSON Schema of flow files, for editors",
               "Print the JSON Schema (draft-07) of pflow-tui's flow files on stdout: keys, node "
               "types and their params. Save it and name it in a flow (\"$schema\": "
               "\"flow.schema.json\") or in your editor's settings for completion and checks while "
               "typing; `pflow-tui validate` checks more (templates, edges, ids)."),
}

#: the arguments and options of each command, besides COMMON_OPTIONS
PARAMS: dict[str, list[Decorator]] = {
    "": [FLOW_ARGUMENT, INPUTS_ARGUMENT, *RUN_OPTIONS, AT_OPTION, *gate_options(shown=True)],
    "run": [FLOW_ARGUMENT, INPUTS_ARGUMENT, *RUN_OPTIONS,
            click.option("--output-format", type=OneOf(("text", "json")), default="text",
                         metavar="text|json",
                         help="text (default): the outputs on stdout, the rest on stderr; json: one "
                              "JSON document on stdout (success, status, outputs, error, duration_ms, "
                              "trace_path, usage)"),
            *gate_options(shown=False)],
    "validate": [FLOW_ARGUMENT,
                 click.option("--explain", is_flag=True,
                              help="print the flow as it runs (JSON on stdout: aliases such as "
                                   "batch_mode, execution_mode, batch_config and pflow's shorthands "
                                   "rewritten) and list what was rewritten (on stderr)")],
    "graph": [FLOW_ARGUMENT,
              click.option("--format", "format", type=OneOf(("mermaid", "dot")), default="mermaid",
                           metavar="mermaid|dot", help="mermaid (default) or dot (Graphviz)"),
              click.option("-o", "--output", metavar="FILE", type=FILE,
                           help="write it to FILE instead of stdout")],
    "runs": [click.option("--dir", metavar="DIR", type=click.Path(file_okay=False),
                          help="the folder of traces (default .pflow-tui/traces/)"),
             click.option("--json", is_flag=True, help="print the list as JSON lines, one run a line"),
             click.option("--plain", is_flag=True, help="print the list as text (no app)"),
             click.option("--prune", is_flag=True,
                          help="remove the oldest runs beyond the keep setting now (default 200; "
                               "see `pflow-tui config`) and list what was removed")],
    "config": [click.option("--format", "format", type=OneOf(("text", "json")), default="text",
                            metavar="text|json", help="text (default): a table; json: one JSON "
                                                      "document on stdout")],
    "replay": [click.argument("trace", metavar="[TRACE.json]", required=False, type=FILE),
               click.option("--last", is_flag=True,
                            help="open the newest run in .pflow-tui/traces/ (or --dir)"),
               click.option("--dir", metavar="DIR", type=click.Path(file_okay=False),
                            help="with --last: the folder of traces (default .pflow-tui/traces/)"),
               AT_OPTION],
    "rerun": [click.argument("source", metavar="TRACE.json", type=FILE),
              click.argument("inputs", nargs=-1, metavar="[NAME=VALUE]..."),
              click.option("--flow", metavar="FLOW.json", type=FILE,
                           help="run this (edited) flow file instead of the flow recorded in the trace"),
              click.option("--trace", "out", type=TracePath(), metavar="PATH",
                           help="where to write the new trace (default .pflow-tui/traces/)"),
              click.option("--trust", is_flag=True,
                           help="run a trace you did not make (not signed by your key) without "
                                "asking: its commands and code run, its recorded outputs are "
                                "restored. Without it such a re-run shows what would run and asks "
                                "(refused with exit code 2 when there is no terminal). See "
                                "docs/security.md"),
              CLUSTER_OPTION],
    "diff": [click.argument("a", metavar="A.json", type=FILE),
             click.argument("b", metavar="B.json", type=FILE),
             click.option("--all", "all", is_flag=True, help="list the unchanged paths too"),
             click.option("--limit", type=int, default=50, metavar="N",
                          help="show at most N rows (default 50; 0: no limit)"),
             click.option("--view", is_flag=True,
                          help="open the diff in the app: rows on the left, A and B side by side")],
    "export": [click.argument("trace", metavar="TRACE.json", type=FILE),
               click.option("--format", "format", type=OneOf(("perfetto", "otlp")), default="perfetto",
                            metavar="perfetto|otlp",
                            help="perfetto (default): Chrome Trace Event JSON; otlp: OpenTelemetry spans"),
               click.option("-o", "--output", metavar="OUT",
                            help="where to write; - for standard output (default: beside the trace, "
                                 "TRACE.perfetto.json or TRACE.otlp.jsonl)"),
               click.option("--otlp-endpoint", metavar="URL",
                            help="send the spans to an OpenTelemetry collector over OTLP/HTTP "
                                 "instead of writing a file (e.g. http://localhost:4318)")],
    "serve": [click.argument("target", nargs=-1, required=True, type=FILE,
                             metavar="FLOW.json [NAME=VALUE]...|replay TRACE.json"),
              *SERVE_OPTIONS, AT_OPTION, *gate_options(shown=True)],
    "schema": [click.option("-o", "--output", metavar="FILE", type=FILE,
                            help="write it to FILE instead of stdout")],
}

SUBCOMMANDS = tuple(name for name in COMMANDS if name)
FLOW_COMMANDS = ("", "run", "validate", "replay")  # the commands that open a flow or a trace


def command_module(command: str) -> ModuleType:
    """The module of a command (``""``: the debugger, in :mod:`.run`), imported now: each
    command loads only the engine parts it uses (start-up time)."""
    return import_module(f".{COMMANDS[command][0]}", __package__)


def verbosity(ctx: click.Context) -> int:
    """``-v`` minus ``-q``, given before the command or after it."""
    level = 0
    while ctx is not None:
        level += int(ctx.params.get("verbose") or 0) - int(ctx.params.get("quiet") or 0)
        ctx = ctx.parent  # type: ignore[assignment]
    return level


def run_command(command: str, params: dict[str, Any]) -> int:
    """Read the settings, import ``command``'s module and run it with ``params`` (the
    settings in the environment meanwhile); prune the trace folder after a run."""
    global VERBOSITY
    opts = Options(**params)
    opts.verbosity = VERBOSITY = verbosity(click.get_current_context())
    return configured(command, opts, lambda: _run(command, opts))


def _run(command: str, opts: Options) -> int:
    module = command_module(command)
    if command in ("", "run"):
        return int(module.command(opts, headless=command == "run"))
    return int(module.command(opts))


def configured(command: str, opts: Options, run: Callable[[], int]) -> int:
    """``run()`` with this command line's settings (``opts.settings``) read and in the
    environment (SettingsError when they are bad: :func:`pflow_tui.cli.main` says so, 2)."""
    global SETTINGS
    from ..settings import exported, load

    flags = dict(FLAGS)
    if command in ("runs", "replay") and getattr(opts, "dir", None):
        flags["trace_dir"] = opts.dir
    opts.settings = SETTINGS = settings = load(flags)
    with exported(settings):
        code = run()
        if command in RUNS and code in (0, 1, 130, 143):
            from .retention import prune_after_run

            prune_after_run(settings, verbose=VERBOSITY > 0)
    return code


class FlowCommand(click.Command):
    """A command whose usage line reads ``pflow-tui ...`` however it was reached (the
    debugger is reached without a command name)."""

    def format_usage(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        formatter.write_usage(usage_path(ctx), " ".join(self.collect_usage_pieces(ctx)))


def usage_path(ctx: click.Context) -> str:
    """``pflow-tui run``, or ``pflow-tui`` for the debugger."""
    return " ".join(ctx.command_path.split())


def make_command(name: str) -> click.Command:
    _module, summary, description = COMMANDS[name]

    def callback(**params: Any) -> int:
        return run_command(name, params)

    command: click.Command = FlowCommand(
        name or "pflow-tui", callback=callback, help=description, short_help=summary,
        epilog="`pflow-tui --help` lists every command, its options and the exit codes.",
        context_settings=CONTEXT_SETTINGS)
    for decorator in [*PARAMS[name], *COMMON_OPTIONS]:  # (on a Command: appended in this order)
        decorator(command)
    return command


CONTEXT_SETTINGS: dict[str, Any] = {"help_option_names": ["-h", "--help"], "max_content_width": 110}


def synopsis(command: click.Command, ctx: click.Context) -> str:
    """What a command takes, on one line: ``FLOW.json [NAME=VALUE]... [--trace PATH] ...``
    (the options every command shares left out)."""
    shared = {"verbose", "quiet", "debug", "version", "help"}
    pieces: list[str] = []
    for param in command.get_params(ctx):
        if param.name in shared or "--help" in param.opts or getattr(param, "hidden", False):
            continue
        if isinstance(param, click.Argument):
            pieces.append(param.metavar or (param.name or "").upper())
        elif isinstance(param, click.Option):
            name = max(param.opts, key=len)
            pieces.append(f"[{name}]" if param.is_flag or param.count else f"[{name} {param.metavar}]")
    return " ".join(pieces)


def option_names(params: Sequence[click.Parameter]) -> set[str]:
    names: set[str] = set()
    for p in params:
        if isinstance(p, click.Option):
            names.update(p.opts, p.secondary_opts)
    return names
