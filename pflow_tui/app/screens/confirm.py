"""Ask once before a key changes a live run (stop, re-run, quit): y/enter yes, n/escape no."""

from __future__ import annotations

from typing import ClassVar

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Vertical
from textual.screen import ModalScreen
from textual.widgets import Label

from ...text import literal


class Confirm(ModalScreen[bool]):
    """A small yes/no question; dismissed with True (y, enter) or False (n, escape)."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("y,enter", "answer(True)", "Yes"),
        Binding("n,escape", "answer(False)", "No"),
    ]
    DEFAULT_CSS = """
    Confirm { align: center middle; background: $background 40%; }
    Confirm > Vertical { width: auto; min-width: 40; max-width: 90%; height: auto;
                         border: round $warning; background: $surface; padding: 0 2; }
    Confirm #question { text-style: bold; }
    Confirm #detail { color: $foreground-darken-1; }
    Confirm #keys { color: $foreground-darken-2; margin-top: 1; }
    """

    def __init__(self, question: str, detail: str = "") -> None:
        super().__init__()
        self.question = question
        self.detail = detail

    def compose(self) -> ComposeResult:
        with Vertical():
            yield Label(Text(literal(self.question)), id="question")
            if self.detail:
                yield Label(Text(literal(self.detail)), id="detail")
            yield Label(Text.assemble(("y", "bold"), "/", ("enter", "bold"), " yes   ",
                                      ("n", "bold"), "/", ("escape", "bold"), " no"), id="keys")

    def action_answer(self, yes: bool) -> None:
        self.dismiss(yes)
