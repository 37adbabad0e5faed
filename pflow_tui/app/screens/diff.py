"""The diff view: two runs aligned by path, what changed, and the two sides of a row."""

from __future__ import annotations

from typing import Any, ClassVar

import orjson
from rich.console import Group
from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, VerticalScroll
from textual.screen import Screen
from textual.widgets import DataTable, Static

from ...engine.paths import format_duration
from ...engine.trace.diff import TraceDiff, summary_line
from ...text import literal
from ..widgets.key_bar import KeyBar

CHANGE_VARS = {"added": "success", "removed": "warning", "status": "error", "outputs": "accent",
               "slower": "warning", "faster": "success", "restored": "primary",
               "same": "foreground-muted"}


def _side(diff: TraceDiff, side: str, i: int | None) -> dict[str, Any]:
    run = diff.a if side == "a" else diff.b
    if i is None or run.index is None:
        return {}
    return run.index.event(i)


def _event_view(title: str, event: dict[str, Any]) -> Group:
    if not event:
        return Group(Text(title, style="bold"), Text("(not in this run)", style="dim"))
    parts: list[Any] = [Text(title, style="bold"),
                        Text(literal(f"{event.get('path', '')}  {event.get('status', '')}  "
                                     f"{format_duration(event.get('duration'), '—')}"))]
    if event.get("error"):
        parts.append(Text(literal(str(event["error"].get("message", ""))), style="red"))
    if "outputs" in event:
        text = orjson.dumps(event["outputs"], option=orjson.OPT_INDENT_2, default=repr).decode()
        parts.append(Text(literal(text[:20_000])))
    return Group(*parts)


class DiffScreen(Screen[None]):
    """Changed paths on the left, the selected path's A and B side by side on the right."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("a", "toggle_all", "All / changed"),
        Binding("escape,q", "close", "Close"),
    ]
    DEFAULT_CSS = """
    DiffScreen #summary { height: 3; padding: 0 1; background: $panel; }
    DiffScreen #rows { width: 55%; }
    DiffScreen #sides { width: 1fr; }
    DiffScreen #sides > VerticalScroll { width: 1fr; border: round $panel-lighten-2; padding: 0 1; }
    """

    def __init__(self, diff: TraceDiff) -> None:
        super().__init__()
        self.diff = diff
        self.show_all = False

    def compose(self) -> ComposeResult:
        yield Static(self._summary(), id="summary")
        with Horizontal():
            yield DataTable(id="rows", cursor_type="row", zebra_stripes=True)
            with Horizontal(id="sides"):
                with VerticalScroll(id="side-a"):
                    yield Static(id="a")
                with VerticalScroll(id="side-b"):
                    yield Static(id="b")
        yield KeyBar()

    def _summary(self) -> Text:
        d = self.diff
        lines = Text()
        for side, run in (("A", d.a), ("B", d.b)):
            lines.append(f"{side} ", style="bold")
            lines.append(literal(f"{run.file}  {run.flow}  {run.status}  "
                                 f"{format_duration(run.duration, '—')}"))
            if run.truncated:
                lines.append("  (trace cut short)", style="yellow")
            lines.append("\n")
        lines.append(literal(summary_line(d)), style="dim")
        return lines

    def on_mount(self) -> None:
        table = self.query_one(DataTable)
        table.add_columns("path", "change", "status A → B", "duration A → B", "note")
        self._fill()
        table.focus()

    def _fill(self) -> None:
        table = self.query_one(DataTable)
        table.clear()
        rows = self.diff.rows if self.show_all else self.diff.changed()
        theme = self.app.theme_variables
        for r in rows[:5000]:
            status = r.status_a if r.status_a == r.status_b else f"{r.status_a} → {r.status_b}"
            duration = f"{format_duration(r.duration_a, '—')} → {format_duration(r.duration_b, '—')}"
            change = Text(r.change, style=theme.get(CHANGE_VARS.get(r.change, "foreground"), ""))
            table.add_row(Text(literal(r.label)), change, Text(literal(status)), duration,
                          Text(literal(r.note())), key=r.path)
        if rows:
            self._show(rows[0].path)
        else:
            self.query_one("#a", Static).update(Text("The runs do not differ.", style="dim"))

    def on_data_table_row_highlighted(self, event: DataTable.RowHighlighted) -> None:
        if event.row_key is not None and event.row_key.value is not None:
            self._show(event.row_key.value)

    def _show(self, path: str) -> None:
        row = self.diff.get(path)
        if row is None:
            return
        self.query_one("#a", Static).update(_event_view("A", _side(self.diff, "a", row.event_a)))
        self.query_one("#b", Static).update(_event_view("B", _side(self.diff, "b", row.event_b)))

    def action_toggle_all(self) -> None:
        self.show_all = not self.show_all
        self._fill()

    def action_close(self) -> None:
        if len(self.app.screen_stack) > 2:
            self.app.pop_screen()
        else:
            self.app.exit()

