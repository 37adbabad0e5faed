"""The header line: the run's status, elapsed time, failures, where it is paused, progress
and trace file, fitted to the width so that what matters most is never cut.

The parts have priorities: status, elapsed (run time: it stands still while paused),
failures and where the run is paused come first; the flow's name, the progress, the mode
and the trace path give way, the least important first (shortened with ``…``, then
dropped) when the line is too long (:func:`fit`).
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass

from rich.cells import cell_len
from rich.style import Style
from rich.text import Text
from textual import events
from textual.widgets import Static

from ...engine.paths import format_duration
from ...engine.run.labels import one_line
from ...text import literal, plural
from ..model import RunModel
from ..status import CANCELLED, ERROR, OK, RUNNING
from ..styles import SYMBOLS, status_style, theme_color

_RUN_CODES = {"pending": 0, "running": RUNNING, "ok": OK, "error": ERROR, "cancelled": CANCELLED}
_RUN_WORDS = {"pending": "starting", "running": "running", "ok": "finished ok", "error": "failed",
              "cancelled": "stopped"}
SEP = "  "

# priorities: lower is more important (0 is never dropped, only cut as a last resort)
STATUS, ELAPSED, FAILURES, PAUSED_AT, ITEMS, MODE, FLOW, CLUSTER, NODES, TOKENS, BRAND, TRACE = range(12)
CLUSTER_CELLS = 60  # a cluster's name (its scheduler's address) is cut beyond this


@dataclass
class Part:
    """One piece of the header: its text, how much it matters, and whether (and from
    which side) it may be shortened with ``…`` before it is dropped."""

    text: Text
    priority: int
    cut: str | None = None  # "end" (keep the start) or "start" (keep the end, e.g. a path)
    min_cells: int = 8


def _shorten(text: Text, cells: int, side: str) -> Text:
    """``text`` in ``cells`` cells, with ``…`` where it was cut."""
    if cells <= 1:
        return Text("…" if cells == 1 else "", end="")
    if side == "start":
        tail = text[len(text.plain) - (cells - 1):]
        while cell_len(tail.plain) > cells - 1:
            tail = tail[1:]
        return Text.assemble("…", tail, end="")
    head = text.copy()
    head.truncate(cells, overflow="ellipsis")
    return head


def fit(parts: Sequence[Part], width: int, sep: str = SEP) -> Text:
    """The parts in their order, joined by ``sep``, in at most ``width`` cells: while too
    long, the least important part is shortened (down to its ``min_cells``) or dropped.
    Only when the most important part alone does not fit is it cut at the end."""
    texts: list[Text | None] = [p.text for p in parts]
    widths = [cell_len(p.text.plain) for p in parts]
    sep_cells = cell_len(sep)

    def total() -> int:
        shown = [w for t, w in zip(texts, widths, strict=True) if t is not None]
        return sum(shown) + sep_cells * max(0, len(shown) - 1)

    order = sorted(range(len(parts)), key=lambda i: (-parts[i].priority, -i))
    for i in order:
        over = total() - width
        if over <= 0:
            break
        part = parts[i]
        if part.cut and widths[i] - over >= min(part.min_cells, widths[i]) and widths[i] > over:
            texts[i] = _shorten(part.text, widths[i] - over, part.cut)
            widths[i] = cell_len(texts[i].plain)  # type: ignore[union-attr]
        elif part.priority > 0:
            texts[i] = None
    line = Text(end="", no_wrap=True)
    first = True
    for text in texts:
        if text is None:
            continue
        if not first:
            line.append(sep)
        line.append_text(text)
        first = False
    if cell_len(line.plain) > width:
        line = line[:0] if width <= 0 else line
        line.truncate(max(0, width), overflow="ellipsis")
    return line


def rel_path(path: str) -> str:
    """An event path without the flow's name (the header shows it already)."""
    return path.partition(".")[2]


class RunHeader(Static):
    """One line on top: status, elapsed, failures, where it is paused, progress, trace."""

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

    def elapsed(self) -> float:
        """The run's time, not counting pauses (it stands still while paused); before a
        live run's first event, the time since it was asked for."""
        if self.live and not self.model.events:
            return time.monotonic() - self._wall_start
        return self.model.run_time()

    def failures(self) -> int:
        """Failed items, and failed nodes that have no items."""
        count = 0
        for state in self.model.latest.values():
            if state.items is not None:
                count += state.items.failed
            elif state.status == ERROR:
                count += 1
        return count

    def parts(self) -> list[Part]:
        """Everything the header would say, in display order, with priorities."""
        model = self.model
        app = self.app
        code = _RUN_CODES.get(model.status, ERROR)
        if model.paused is not None:
            status = Text("⏸ paused", style=Style(color=theme_color(app, "warning"), bold=True))
        elif model.stepping is not None and model.status == "running":
            status = Text(f"{SYMBOLS[RUNNING]} stepping", style=status_style(app, RUNNING, bold=True))
        else:
            status = Text(f"{SYMBOLS[code]} {_RUN_WORDS.get(model.status, model.status)}",
                          style=status_style(app, code, bold=True))
        parts = [Part(Text("pflow-tui", style="bold"), BRAND),
                 Part(Text(literal(model.graph.name), style="bold"), FLOW, cut="end", min_cells=6),
                 Part(status, STATUS),
                 Part(Text(format_duration(self.elapsed())), ELAPSED)]
        where = self._where()
        if where is not None:
            parts.append(Part(where, PAUSED_AT, cut="start", min_cells=12))
        nodes = list(model.latest.values())
        total = sum(n.items.count for n in nodes if n.items is not None)
        if total:
            finished = sum(n.items.done + n.items.failed for n in nodes if n.items is not None)
            parts.append(Part(Text(f"items {finished:,}/{total:,}", style="dim"), ITEMS))
        failed = self.failures()
        if failed:
            parts.append(Part(Text(f"✗{failed:,}", style=status_style(app, ERROR, bold=True)), FAILURES))
        done = sum(1 for n in nodes if n.status not in (0, RUNNING))
        parts.append(Part(Text(f"nodes {done}/{len(model.graph.nodes)}", style="dim"), NODES))
        usage = model.usage
        if usage and isinstance(usage.get("input_tokens"), int):
            tokens = usage["input_tokens"] + (usage.get("output_tokens") or 0)
            cost = usage.get("cost")
            text = f"{tokens:,} tok" + (f" ${cost:.4f}" if isinstance(cost, (int, float)) else "")
            parts.append(Part(Text(text, style="dim"), TOKENS))
        cluster = self.cluster()
        if cluster is not None:
            parts.append(Part(cluster, CLUSTER, cut="start", min_cells=14))  # keeps the count
        if self.mode != "live":
            parts.append(Part(Text(f"[{self.mode}]", style="dim"), MODE))
        if self.trace:
            parts.append(Part(Text(literal(self.trace), style="dim italic"), TRACE, cut="start",
                              min_cells=16))
        return parts

    def cluster(self) -> Text | None:
        """The cluster the run sends work to and the workers seen so far (``cluster
        tcp://10.0.0.5:8786 · 2 workers``), or None when no work went to one."""
        model = self.model
        if not model.cluster:
            return None
        name = one_line(model.cluster, CLUSTER_CELLS)  # (an address from the trace: shown literally)
        return Text.assemble((name, "bold"), f" · {plural(len(model.workers), 'worker')}", style="dim")

    def _where(self) -> Text | None:
        """Where the run is paused (and why), or what a step let go."""
        model = self.model
        pause = model.paused
        if pause is not None:
            path = rel_path(str(pause.get("path") or ""))
            reason = str(pause.get("reason") or "")
            if not path:
                return Text("at the start" if reason == "start" else f"({literal(reason)})"
                            if reason and reason != "user" else "", style="bold") or None
            text = Text.assemble("at ", (literal(path), "bold"))
            if reason in ("breakpoint", "failure"):
                text.append(f" ({reason})")
            return text
        step = model.stepping
        if step is not None and model.status == "running":
            path = rel_path(str(step.get("path") or ""))
            return Text(literal(path), style="bold") if path else None
        return None

    def refresh_status(self) -> None:
        width = self.size.width or max(20, self.app.size.width - 2)
        self.update(fit(self.parts(), width), layout=False)  # always one line: no re-layout

    def on_resize(self, _event: events.Resize) -> None:
        self.refresh_status()
