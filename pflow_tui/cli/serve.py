"""``pflow-tui serve FLOW.json [NAME=VALUE]... | serve replay TRACE.json``: the debugger in web
browsers, through textual-serve (the ``web`` extra, imported only here).

textual-serve runs one command per browser tab: ``python -m pflow_tui ...`` with the flow (or
``replay TRACE``) and the debugger's options given to ``serve``, quoted for the shell. The flow
or trace is checked first, so a bad one is said before any server starts."""

from __future__ import annotations

import os
import shlex
import socket
import subprocess
import sys
from typing import Any

import click
from rich.text import Text

from ..engine.problems import FlowError
from ..text import literal
from .output import note, print_error, report_flow_error
from .parsing import SUBCOMMANDS, Options
from .run import SERVED, load

WEB_EXTRA = "pip install 'pflow-tui[web]'"
NO_EXTRA = (f"serve needs textual-serve, which is not installed: install pflow-tui's web extra: "
            f"{WEB_EXTRA}")
OWN = frozenset({"target", "host", "port", "public_url"})  # serve's own; the rest go to each tab
SHARED = frozenset({"verbose", "quiet", "version", "help"})  # every command's, not passed on
WILDCARD_HOSTS = ("0.0.0.0", "::", "")


def command(opts: Options) -> int:
    try:
        from .web_server import DebuggerServer  # (textual-serve and aiohttp: only for serve)
    except ImportError:
        print_error(NO_EXTRA)
        return 2
    ctx = click.get_current_context()
    args = session_args(opts, forwarded(ctx))
    if isinstance(args, int):
        return args
    title, argv = args
    url = opts.public_url or public_url(opts.host, opts.port)
    os.environ[SERVED] = "1"  # the tabs' debuggers inherit it: their stdin carries keys, not input
    server = DebuggerServer(shell_command([sys.executable, "-m", "pflow_tui", *argv]), host=opts.host,
                            port=opts.port, title=f"pflow-tui · {title}", public_url=url,
                            verbose=opts.verbosity > 0,
                            announce=lambda: announce(title, url, opts.host))
    try:
        server.serve()
    except OSError as exc:
        print_error(f"cannot listen on {opts.host}:{opts.port}: {exc.strerror or exc}; pick another "
                    "--port (or stop what listens there)")
        return 2
    return server.exit_code


def session_args(opts: Options, options: list[str]) -> tuple[str, list[str]] | int:
    """The flow's (or trace's) name and the arguments of each tab's ``pflow-tui``, once the flow
    or trace is checked; else the error said and exit code 2."""
    target = list(opts.target)
    if target[0] == "replay":
        return replay_args(opts, target[1:], options)
    flow = target[0]
    if flow in SUBCOMMANDS or flow.startswith("-"):  # a file named like a command, or like an option
        flow = os.path.join(".", flow)
    checked = Options(**{**vars(opts), "flow": flow, "inputs": tuple(target[1:])})
    try:
        spec, _inputs, _breaks = load(checked, debugger=True, stdin=False)
    except FlowError as exc:
        return report_flow_error(exc)
    return spec.name, [flow, *target[1:], *options]


def replay_args(opts: Options, rest: list[str], options: list[str]) -> tuple[str, list[str]] | int:
    """``serve replay TRACE.json``: the trace read and ``--at`` checked (a replay takes no
    other option of the debugger)."""
    from .replay import read_trace

    if len(rest) != 1:
        print_error("serve replay takes one trace file: `pflow-tui serve replay TRACE.json`")
        return 2
    others = [o for o in options if o.startswith("--") and o not in ("--at", "--debug")]
    if others:
        print_error(f"serve replay opens a saved run: {', '.join(others)} is for a live run "
                    "(`pflow-tui serve FLOW.json ...`); a replay takes --at")
        return 2
    index = read_trace(rest[0], opts.at)
    if isinstance(index, int):
        return index
    name = str(index.header.get("flow_name") or os.path.basename(rest[0]))
    return name, ["replay", rest[0], *options]


def forwarded(ctx: click.Context) -> list[str]:
    """The options given to ``serve`` that each tab's debugger takes, as its command line."""
    args: list[str] = []
    for param in ctx.command.params:
        if not isinstance(param, click.Option) or not param.expose_value:
            continue
        if param.name in OWN or param.name in SHARED or param.name is None:
            continue
        value: Any = ctx.params.get(param.name)
        name = max(param.opts, key=len)
        if param.is_flag:
            args += [name] if value else []
        elif param.multiple:
            for one in value or ():
                args += [name, str(one)]
        elif value is not None:
            args += [name, str(value)]
    return args


def shell_command(argv: list[str]) -> str:
    """``argv`` as one shell command line (textual-serve starts it through the shell; ``exec``:
    the shell becomes the debugger, which then gets the signals)."""
    return subprocess.list2cmdline(argv) if os.name == "nt" else "exec " + shlex.join(argv)


def public_url(host: str, port: int) -> str:
    """Where browsers find the server: ``http://HOST:PORT`` (an IPv6 address in brackets; for
    0.0.0.0, this machine's name)."""
    if host in WILDCARD_HOSTS:
        host = socket.gethostname()
    return f"http://[{host}]:{port}" if ":" in host else f"http://{host}:{port}"


def announce(title: str, url: str, host: str) -> None:
    """What is served and where: a note on stderr, the URL alone on stdout."""
    note(Text.assemble("serving the debugger on ", (literal(title), "bold"),
                       ": each browser tab runs it anew (traces in .pflow-tui/traces/); Ctrl-C "
                       "stops the server. Open:"))
    if host in WILDCARD_HOSTS:
        note(Text("listening on every address: anyone who reaches this port runs the flow; "
                  "--public-url URL if browsers know this machine by another name", "yellow"))
    sys.stdout.write(url + "\n")
    sys.stdout.flush()
