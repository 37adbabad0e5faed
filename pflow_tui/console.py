"""The headless reporter of ``pflow-tui run``: live progress per node and batch, then a summary.

It is an event sink like any other. Per-event work is a few counter updates; Rich
redraws from those counters on its own refresh timer, so a 10,000-item batch does not
cost 10,000 redraws. Untrusted text always goes through :func:`pflow_tui.text.literal`
into ``Text`` objects, never into markup.
"""

from __future__ import annotations

import sys
import time
from typing import Any, TextIO

from rich.console import Console, Group, RenderableType
from rich.live import Live
from rich.table import Table
from rich.text import Text

from .engine.paths import format_duration
from .engine.run.executor import RunResult
from .engine.trace import events as ev
from .engine.trace.events import Event
from .engine.trace.usage import usage_text
from .engine.trace.writer import dumps
from .text import literal

SYMBOLS = {"running": ("◐", "yellow"), "ok": ("✓", "green"), "error": ("✗", "red"),
           "cancelled": ("⊘", "magenta"), "skipped": ("–", "dim"),
           "restored": ("↺", "blue")}  # a re-run restored it from the trace it re-ran


class _NodeRow:
    __slots__ = ("cancelled", "done", "duration", "failed", "message", "path", "status", "t0", "total",
                 "type")

    def __init__(self, path: str, node_type: str, t0: float, total: int | None) -> None:
        self.path, self.type, self.t0, self.total = path, node_type, t0, total
        self.status = "running"
        self.duration: float | None = None
        self.done = self.failed = self.cancelled = 0
        self.message = ""


class ConsoleReporter:
    """Shows a run's progress on a terminal; use ``with reporter:`` around the run."""

    def __init__(self, console: Console | None = None, verbosity: int = 0) -> None:
        """``verbosity`` 1 (``-v``): each failed item as it ends too; -1 (``-q``): no progress,
        and of the summary only a failure."""
        self.console = console or Console(stderr=True)
        self.rows: dict[str, _NodeRow] = {}
        self.start = time.perf_counter()
        self.verbosity = verbosity
        self.live = self.console.is_terminal and verbosity >= 0
        self._live: Live | None = None

    def __enter__(self) -> ConsoleReporter:
        if self.live:
            self._live = Live(self, console=self.console, refresh_per_second=8, transient=False)
            self._live.__enter__()
        return self

    def __exit__(self, *exc: object) -> None:
        if self._live is not None:
            self._live.__exit__(None, None, None)
            self._live = None

    def __call__(self, event: Event) -> None:
        kind = event["kind"]
        if kind == ev.ITEM_END:
            row = self.rows.get(event["path"].rpartition(".")[0])
            if row is not None:
                status = event["status"]
                if status == "ok":
                    row.done += 1
                elif status == "cancelled":
                    row.cancelled += 1
                else:
                    row.failed += 1
                    if self.verbosity > 0:
                        message = str((event.get("error") or {}).get("message", status))
                        self.console.print(Text.assemble(("  ✗ ", "red"), literal(event["path"]), ": ",
                                                         (literal(message), "red")))
        elif kind == ev.NODE_START:
            batch = event.get("batch")
            self.rows[event["path"]] = _NodeRow(event["path"], event.get("type", ""), event["t"],
                                                batch["count"] if batch else None)
        elif kind == ev.NODE_END:
            row = self.rows.get(event["path"])
            if row is None:
                return
            row.status = "restored" if event.get("cached") else event["status"]
            row.duration = event.get("duration")
            if "error" in event:
                row.message = event["error"].get("message", "")
            if not self.live and self.verbosity >= 0:
                self.console.print(self._line(row))

    def _line(self, row: _NodeRow) -> Text:
        symbol, style = SYMBOLS.get(row.status, ("?", ""))
        line = Text.assemble((f"{symbol} ", style), (literal(row.path.partition(".")[2] or row.path), "bold"),
                             (f"  {row.type}", "dim"))
        ended = row.done + row.failed + row.cancelled
        if row.total is not None or ended:
            line.append(f"  {ended}/{row.total if row.total is not None else '?'}")
            if row.failed:
                line.append(f"  {row.failed} failed", "red")
            if row.cancelled:
                line.append(f"  {row.cancelled} cancelled", "magenta")
            elapsed = (row.duration if row.duration is not None
                       else time.perf_counter() - self.start - row.t0)
            if elapsed > 0 and ended:
                line.append(f"  {ended / elapsed:,.0f} items/s", "dim")
        if row.duration is not None:
            line.append(f"  {format_duration(row.duration)}", "cyan")
        if row.message:
            line.append("  " + literal(row.message.splitlines()[0][:120]), "red")
        return line

    def __rich__(self) -> RenderableType:
        return Group(*(self._line(r) for r in self.rows.values()))

    def summary(self, result: RunResult, outputs: bool = True) -> None:
        """Print how the run ended: its outputs on standard output (``outputs=False``: not at
        all; a table of the store on the console when the flow declares none), the error,
        the trace path. ``-q``: only a failure."""
        out = self.console
        if result.status == "ok":
            if self.verbosity >= 0:
                out.print(Text.assemble(("✓ ", "green"), ("run ok", "bold green"),
                                        f" in {format_duration(result.duration)}"))
            if result.outputs:
                if outputs:
                    write_outputs(result.outputs, sys.stdout)
            elif self.verbosity >= 0:
                out.print(values_table("store", {k: v for k, v in result.store.items()
                                                 if not k.startswith("__")}))
        else:
            err = result.error or {}
            out.print(Text.assemble(("✗ ", "red"), (f"run {result.status}", "bold red"),
                                    f" after {format_duration(result.duration)}"))
            where = err.get("path") or err.get("node") or ""
            if where:
                out.print(Text.assemble(("  at ", "dim"), literal(str(where))))
            if err.get("message"):
                out.print(Text.assemble(("  error: ", "dim"), (literal(str(err["message"])), "red")))
            if err.get("internal") and err.get("traceback"):
                out.print(Text("  this is a bug in pflow-tui or a node plugin:", "yellow"))
                out.print(Text(literal(err["traceback"]), "dim"))
        if result.usage and self.verbosity >= 0:
            out.print(Text.assemble(("llm: ", "dim"), usage_text(result.usage),
                                    (f" in {result.usage['calls']} calls", "dim")))
        if result.trace_path is not None and (self.verbosity >= 0 or result.status != "ok"):
            out.print(Text.assemble(("trace: ", "dim"), literal(str(result.trace_path))))


def write_outputs(outputs: dict[str, Any], stream: TextIO) -> None:
    """A flow's outputs for scripts: one output as its value (a string as it is, anything else
    as JSON), several as one JSON object."""
    value: Any = next(iter(outputs.values())) if len(outputs) == 1 else outputs
    text = value if isinstance(value, str) else dumps(value).decode()
    stream.write(text if text.endswith("\n") else text + "\n")
    stream.flush()


def values_table(title: str, values: dict[str, Any]) -> Table:
    table = Table(title=title, show_header=False, box=None, pad_edge=False, title_justify="left")
    table.add_column(style="bold")
    table.add_column(overflow="fold")
    for key, value in values.items():
        text = value if isinstance(value, str) else dumps(_cut(value)).decode()
        if len(text) > 400:
            text = text[:400] + f"… ({len(text)} chars)"
        table.add_row(Text(literal(str(key))), Text(literal(text)))
    return table


def _cut(value: Any, depth: int = 0) -> Any:
    """``value`` with its huge strings cut (only 400 characters are shown): a 200 MB
    stdout in the store is not copied twice to show its start."""
    if isinstance(value, str):
        return value if len(value) <= 10_000 else value[:10_000] + "…"
    if depth < 32 and isinstance(value, dict):
        return {k: _cut(v, depth + 1) for k, v in value.items()}
    if depth < 32 and isinstance(value, (list, tuple)) and len(value) <= 10_000:
        return [_cut(v, depth + 1) for v in value]
    return value


