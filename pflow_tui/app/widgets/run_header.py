"""The header line: the run's status, elapsed time, progress and trace file."""

from __future__ import annotations

import time

from rich.text import Text
from textual.widgets import Static

from ...text import literal
from ..model import CANCELLED, ERROR, OK, RUNNING, RunModel
from ..styles import SYMBOLS, format_duration, status_style

_RUN_CODES = {"pending": 0, "running": RUNNING, "ok": OK, "error": ERROR, "cancelled": CANCELLED}
_RUN_WORDS = {"pending": "starting", "running": "running", "ok": "finished ok", "error": "failed",
              "cancelled": "stopped"}


class RunHeader(Static):
    """One line on top: flow, status, elapsed, nodes and items done, and the trace path."""

    DEFAULT_CSS = """
    RunHeader { dock: top; height: 1; background: $panel; color: $foreground; padding: 0 1; }
    """

    def __init__(self, model: RunModel, *, live: bool, trace: str = "", id: str | None = None) -> None:
        super().__init__(id=id)
        self.model = model
        self.live = live
        self.trace = trace
        self.mode = "live" if live else "replay"
        self._wall_start = time.monotonic()
        self._wall_end: float | None = None

    def elapsed(self) -> float:
        """Wall-clock time while a live run goes on; the events' own time otherwise."""
        if self.live and self.model.status in ("pending", "running"):
            return time.monotonic() - self._wall_start
        return self.model.t

    def refresh_status(self) -> None:
        model = self.model
        code = _RUN_CODES.get(model.status, ERROR)
        line = Text.assemble(("pflow-tui ", "bold"), (literal(model.graph.name), "bold"), "  ",
                             (f"{SYMBOLS[code]} {_RUN_WORDS.get(model.status, model.status)}",
                              status_style(self.app, code, bold=True)),
                             f"  {format_duration(self.elapsed())}")
        nodes = list(model.latest.values())
        done = sum(1 for n in nodes if n.status not in (0, RUNNING))
        line.append(f"  nodes {done}/{len(model.graph.nodes)}", style="dim")
        total = sum(n.items.count for n in nodes if n.items is not None)
        if total:
            finished = sum(n.items.done + n.items.failed for n in nodes if n.items is not None)
            failed = sum(n.items.failed for n in nodes if n.items is not None)
            line.append(f"  items {finished:,}/{total:,}", style="dim")
            if failed:
                line.append(f" ✗{failed:,}", style=status_style(self.app, ERROR))
        if model.paused is not None:
            where = model.paused.get("path") or ""
            why = model.paused.get("reason") or "paused"
            line.append(f"  ⏸ {literal(str(why))}", style=status_style(self.app, RUNNING, bold=True))
            if where:
                line.append(f" at {literal(str(where))}", style="bold")
        if self.mode != "live":
            line.append(f"  [{self.mode}]", style="dim")
        if self.trace:
            line.append(f"  {literal(self.trace)}", style="dim italic")
        self.update(line, layout=False)  # always one line: no re-layout of the screen
