"""Fork one item: run one iteration (or one node) again, alone, with edited params.

The recorded params open in an editor; ``ctrl+r`` runs the node with them (no flow runs,
nothing is written to the trace) and shows the result beside the recorded one.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, ClassVar

import orjson
from rich.console import Group, RenderableType
from rich.text import Text
from textual import work
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Label, Static, TextArea

from ...engine.paths import format_duration
from ...engine.trace.fork import ForkError, fork_item_async
from ...text import literal
from ..widgets.key_bar import KeyBar


def _result_view(title: str, result: dict[str, Any] | None) -> RenderableType:
    if not result:
        return Text(f"{title}\n(not run yet: ctrl+r)", style="dim")
    status = result.get("status", "?")
    head = Text.assemble((title, "bold"), f"  {status}  {format_duration(result.get('duration'))}")
    parts: list[RenderableType] = [head]
    error = result.get("error")
    if error:
        message = error.get("message") if isinstance(error, dict) else error
        parts.append(Text(literal(str(message)), style="red"))
    if result.get("outputs") is not None:
        text = orjson.dumps(result["outputs"], option=orjson.OPT_INDENT_2, default=repr).decode()
        parts.append(Text(literal(text[:20_000])))
    return Group(*parts)


class ForkScreen(ModalScreen[None]):
    """Edit the params of one recorded iteration, run it alone, compare."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("ctrl+r", "run_fork", "Run with these params", priority=True),
        # the editor's own ctrl+a goes to the line start; here it selects all, as elsewhere
        Binding("ctrl+a", "select_all", "Select all", priority=True),
        Binding("escape", "dismiss", "Close"),
    ]
    DEFAULT_CSS = """
    ForkScreen { align: center middle; }
    ForkScreen > Vertical { width: 95%; height: 90%; border: round $primary; background: $surface; }
    ForkScreen #title { padding: 0 1; text-style: bold; }
    ForkScreen #editor { width: 1fr; }
    ForkScreen VerticalScroll { width: 1fr; border: round $panel-lighten-2; padding: 0 1; }
    """

    def __init__(self, trace: Path, node: str, index: int | None, params: dict[str, Any],
                 original: dict[str, Any] | None) -> None:
        super().__init__()
        self.trace, self.node, self.index = trace, node, index
        self.params = params
        self.original = original
        self.result: dict[str, Any] | None = None

    def compose(self) -> ComposeResult:
        where = self.node if self.index is None else f"{self.node}.iteration_{self.index}"
        with Vertical():
            yield Label(Text.assemble("fork ", (literal(where), "bold"),
                                      "  edit the params, ctrl+r runs them (nothing else runs)"),
                        id="title")
            with Horizontal():
                yield TextArea(orjson.dumps(self.params, option=orjson.OPT_INDENT_2,
                                            default=repr).decode(),
                               language="json", id="editor", show_line_numbers=True)
                with VerticalScroll():
                    yield Static(_result_view("recorded", self.original), id="original")
                with VerticalScroll():
                    yield Static(_result_view("fork", None), id="fork")
            yield KeyBar()

    def action_select_all(self) -> None:
        self.query_one(TextArea).select_all()

    def action_run_fork(self) -> None:
        text = self.query_one(TextArea).text
        try:
            params = orjson.loads(text)
        except orjson.JSONDecodeError as exc:
            self.notify(f"the params are not valid JSON: {exc}", severity="error")
            return
        if not isinstance(params, dict):
            self.notify("the params must be a JSON object", severity="error")
            return
        self.query_one("#fork", Static).update(Text("fork\nrunning…", style="dim"))
        self._run(params)

    @work(exclusive=True, exit_on_error=False, group="fork")
    async def _run(self, params: dict[str, Any]) -> None:
        try:
            self.result = await fork_item_async(self.trace, self.node, self.index, params)
        except ForkError as exc:
            self.query_one("#fork", Static).update(Text(literal(str(exc)), style="red"))
            return
        self.query_one("#fork", Static).update(_result_view("fork", self.result))
