"""``pflow-tui validate FLOW.json [--explain]``: check a flow (or a Python program) and report
every problem; ``--explain`` prints the flow as it runs, aliases rewritten."""

from __future__ import annotations

import sys
from collections.abc import Sequence

import orjson
from rich.text import Text

from ..engine.ir.load import explain as explain_doc
from ..engine.ir.load import load_flow, read_doc
from ..engine.problems import FlowError, Rewrite
from ..engine.python.pyprogram import is_target, load_program
from ..text import literal, plural
from .output import error_console, note, print_error, print_warnings, report_flow_error, verbose
from .parsing import Options


def command(opts: Options) -> int:
    if is_target(opts.flow):
        if opts.explain:
            print_error("--explain prints a JSON flow as it runs (aliases rewritten); a Python "
                        "program has no IR to rewrite: leave --explain out")
            return 2
        try:
            program = load_program(opts.flow)
        except FlowError as exc:
            return report_flow_error(exc)
        note(Text.assemble(
            ("✓ ", "green"), literal(opts.flow),
            f": a PocketFlow program ({plural(len(program.node_ids), 'node')}, nested flows included)"))
        return 0
    try:
        if opts.explain:
            explain(opts.flow)
        spec = load_flow(opts.flow)
    except FlowError as exc:
        return report_flow_error(exc)
    print_warnings(spec.warnings)
    note(Text.assemble(("✓ ", "green"), literal(opts.flow), f": valid ({plural(len(spec.nodes), 'node')}, "
                       f"{plural(len(spec.edges), 'edge')})"))
    aliases = sum(r.alias for r in spec.rewrites)
    if opts.explain:
        return 0
    if verbose():
        list_rewrites(spec.rewrites)
    elif aliases:
        note(Text(f"  {aliases} alias{'es' if aliases != 1 else ''} rewritten into pflow-tui's "
                  "forms; `pflow-tui validate --explain FLOW.json` shows the result", "dim"))
    return 0


def explain(path: str) -> None:
    """Print the normalised flow (stdout, JSON) and what was rewritten (stderr); FlowError
    when the file cannot be read or is not JSON."""
    normalized = explain_doc(read_doc(path))
    sys.stdout.write(orjson.dumps(normalized.doc, option=orjson.OPT_INDENT_2).decode() + "\n")
    sys.stdout.flush()
    list_rewrites(normalized.rewrites)


def list_rewrites(rewrites: Sequence[Rewrite]) -> None:
    """What normalising a flow rewrote (aliases, pflow's shorthands and defaults), on stderr."""
    console = error_console()
    for alias, title in ((True, "aliases rewritten"), (False, "pflow's shorthands and defaults")):
        shown = [r for r in rewrites if r.alias == alias]
        if shown:
            console.print(Text(f"{title} ({len(shown)}):", "bold"))
            for r in shown:
                console.print(Text.assemble("  ", (literal(r.where), "cyan"), ": ", literal(r.note)))
    if not rewrites:
        console.print(Text("nothing rewritten: the file is already in pflow-tui's form", "dim"))
