"""The run browser: the saved runs of a folder, newest first, one keystroke from a replay,
a re-run from failure, or a diff of two of them."""

from __future__ import annotations

from pathlib import Path
from typing import ClassVar

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.screen import Screen
from textual.widgets import DataTable, Static

from ...engine.paths import format_duration
from ...engine.trace.runs import RunRecord, list_runs, started_text
from ...text import literal, plural
from ..widgets.key_bar import KeyBar

STATUS = {"ok": ("✓", "success"), "failed": ("✗", "error"), "interrupted": ("⊘", "warning"),
          "running": ("◐", "warning"), "unreadable": ("?", "foreground-muted")}
COLUMNS = (("", 1), ("flow", None), ("started", 19), ("status", 13), ("duration", 8), ("items", 6),
           ("failures", 8))
RIGHT = ("duration", "items", "failures")
COMPACT = 100  # narrower screens show when a run started without the year and the seconds


def _fixed(compact: bool) -> int:
    """What the columns but the flow take with their padding, and the scrollbar."""
    return sum(w + 2 for _, w in COLUMNS if w) + 2 + 1 - (8 if compact else 0)


class RunTable(DataTable):
    """The table of runs: its enter (select the row) opens the run, and says so in the footer."""

    BINDINGS: ClassVar[list[BindingType]] = [Binding("enter", "select_cursor", "Open")]


class RunsScreen(Screen[None]):
    """A table of the runs in ``folder``; enter opens one, R re-runs it from its failures,
    space marks and d diffs two, escape comes back here from a run."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("R", "rerun_failed", "Re-run from failure"),
        Binding("space", "mark", "Mark"),
        Binding("d", "diff", "Diff marked"),
        Binding("r", "reload", "Reload"),
        Binding("q", "quit_browser", "Quit"),
    ]
    DEFAULT_CSS = """
    RunsScreen #runs-title { height: 1; padding: 0 1; background: $panel; }
    RunsScreen #runs { height: 1fr; }
    RunsScreen #run-detail { height: auto; max-height: 5; padding: 0 1; background: $panel; }
    """

    def __init__(self, folder: Path) -> None:
        super().__init__()
        self.folder = folder
        self.records: list[RunRecord] = []
        self.marked: list[Path] = []  # in the order they were marked
        self._layout: tuple[bool, int] | None = None  # (compact, flow column width) of the columns

    def compose(self) -> ComposeResult:
        yield Static(id="runs-title")
        yield RunTable(id="runs", cursor_type="row", zebra_stripes=True)
        yield Static(id="run-detail")
        yield KeyBar()

    def on_mount(self) -> None:
        self.reload()
        self.query_one(DataTable).focus()

    def on_screen_resume(self) -> None:
        self.reload()  # back from a run: a re-run may have added one

    def on_resize(self) -> None:
        self.reload()  # the flow column takes what the others leave

    # --- the list ---------------------------------------------------------------------------

    def reload(self) -> None:
        """Read the folder again (headers and footers only), keeping the cursor on its run."""
        table = self.query_one(DataTable)
        current = self.current
        self.records = list_runs(self.folder)
        known = {r.path for r in self.records}
        self.marked = [p for p in self.marked if p in known]
        compact = self.size.width < COMPACT
        cells = [self._cells(r, compact) for r in self.records]
        flow_width = max([4, *(c[1].cell_len for c in cells)])  # type: ignore[union-attr]
        if (compact, flow_width) != self._layout:
            self._layout = (compact, flow_width)
            table.clear(columns=True)
            for name, width in COLUMNS:
                if name == "flow":
                    width = flow_width
                elif name == "started" and compact:
                    width -= 8
                label = Text(name, justify="right" if name in RIGHT else "left")
                table.add_column(label, width=width, key=name or "mark")
        else:
            table.clear()
        for r, row in zip(self.records, cells, strict=True):
            table.add_row(*row, key=str(r.path))
        if current is not None and current.path in known:
            table.move_cursor(row=table.get_row_index(str(current.path)), animate=False)
        self._title()
        self._detail()

    def _cells(self, r: RunRecord, compact: bool) -> list[Text | str]:
        theme = self.app.theme_variables
        symbol, var = STATUS.get(r.status, ("?", "foreground"))
        style = theme.get(var, "")
        mark = Text("●", style=theme.get("accent", "")) if r.path in self.marked else Text(" ")
        flow = Text(literal(r.flow or r.path.name))
        if r.rerun_of:  # a re-run: marked first, so that a short column keeps it
            flow = Text.assemble(("↺ ", theme.get("primary", "")), flow)
        flow.truncate(max(8, self.size.width - _fixed(compact)), overflow="ellipsis")
        failures = Text("—" if r.failed is None else f"{r.failed:,}",
                        style=style if r.failed else "", justify="right")
        if r.cancelled:
            failures = Text.assemble(failures, (f" ⊘{r.cancelled}", theme.get("warning", "")),
                                     justify="right")
        started = started_text(r.started)
        if compact and started != "—":
            started = started[5:16]  # 12-05 18:31
        return [mark, flow, Text(literal(started)), Text(f"{symbol} {r.status}", style=style),
                Text(format_duration(r.duration, "—"), justify="right"),
                Text("—" if r.items is None else f"{r.items:,}", justify="right"), failures]

    def _title(self) -> None:
        text = Text.assemble(("Runs ", "bold"), (literal(str(self.folder)), "dim"),
                             f"  {plural(len(self.records), 'run')}")
        if self.marked:
            text.append(f"  · {len(self.marked)} marked", style="bold")
        if not self.records:
            text.append("  · none yet: run a flow (pflow-tui FLOW.json) and come back", style="dim")
        self.query_one("#runs-title", Static).update(text)

    @property
    def current(self) -> RunRecord | None:
        """The run under the cursor."""
        table = self.query_one(DataTable)
        if not self.records or table.cursor_row >= len(self.records):
            return None
        return self.records[table.cursor_row]

    def _detail(self) -> None:
        r = self.current
        detail = self.query_one("#run-detail", Static)
        if r is None:
            detail.update(Text("enter: open · R: re-run from failure · space: mark · d: diff two "
                               "marked runs · escape: back here from a run", style="dim"))
            return
        text = Text.assemble(("trace ", "dim"), literal(str(r.path)))
        if r.source:
            text.append("\n")
            text.append_text(Text.assemble(("flow  ", "dim"), literal(r.source)))
        if r.rerun_of:
            text.append("\n")
            text.append_text(Text.assemble(("re-run of ", "dim"), literal(r.rerun_of),
                                           (f"  ({r.restored:,} restored)" if r.restored else "", "dim")))
        if r.error:
            text.append("\n")
            style = "" if r.readable else "dim"
            text.append_text(Text.assemble(("error ", "dim") if r.readable else ("unreadable: ", "dim"),
                                           (literal(r.error), self.app.theme_variables.get("error", "")
                                            if r.readable else style)))
        detail.update(text)

    def on_data_table_row_highlighted(self, _: DataTable.RowHighlighted) -> None:
        self._detail()

    def on_data_table_row_selected(self, _: DataTable.RowSelected) -> None:
        self.action_open()  # enter (the table's own key) or a click on the row under the cursor

    # --- keys -------------------------------------------------------------------------------

    def _readable(self) -> RunRecord | None:
        r = self.current
        if r is None:
            self.notify("No runs here yet.", timeout=3)
            return None
        if not r.readable:
            self.notify(literal(r.error or "not a trace"), title="Cannot open this file",
                        severity="warning", timeout=5)
            return None
        return r

    def action_open(self) -> None:
        r = self._readable()
        if r is not None:
            self.app.open_trace(r.path)  # type: ignore[attr-defined]

    def action_rerun_failed(self) -> None:
        r = self._readable()
        if r is None:
            return
        if r.status == "ok" and not r.failed:
            self.notify("Nothing failed in this run: there is nothing to re-run from.", timeout=4)
            return
        if r.status == "running":
            self.notify("This run is still going.", timeout=3)
            return
        self.app.rerun_trace(r.path)  # type: ignore[attr-defined]

    def action_mark(self) -> None:
        r = self.current
        if r is None or not r.readable:
            return
        if r.path in self.marked:
            self.marked.remove(r.path)
        else:
            self.marked.append(r.path)
            if len(self.marked) > 2:
                self.marked.pop(0)  # the two last marked
        table = self.query_one(DataTable)
        for rec in self.records:
            mark = Text("●", style=self.app.theme_variables.get("accent", "")) \
                if rec.path in self.marked else Text(" ")
            table.update_cell(str(rec.path), "mark", mark)
        table.move_cursor(row=min(table.cursor_row + 1, table.row_count - 1), animate=False)
        self._title()

    def action_diff(self) -> None:
        """Diff the two marked runs (one marked: it and the run under the cursor), older first."""
        pair = list(self.marked)
        r = self.current
        if len(pair) == 1 and r is not None and r.readable and r.path not in pair:
            pair.append(r.path)
        if len(pair) != 2:
            self.notify("Mark two runs with space, then d.", timeout=3)
            return
        when = {rec.path: rec.when for rec in self.records}
        a, b = sorted(pair, key=lambda p: when.get(p, 0.0))
        self.app.diff_traces(a, b)  # type: ignore[attr-defined]

    def action_reload(self) -> None:
        self.reload()

    def action_quit_browser(self) -> None:
        self.app.exit()
