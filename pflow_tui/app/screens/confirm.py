"""Ask once before a key changes a live run (stop, re-run, quit): y/enter yes, n/escape no;
and before running what a trace from someone else says (:class:`Consent`)."""

from __future__ import annotations

from typing import ClassVar

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Vertical, VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Label, Static

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


class Consent(ModalScreen[bool]):
    """Before running what a trace this user did not make says: the question, a scrollable
    body of what would run (shown literally), and an explicit answer: y yes, n/escape no
    (enter is no answer here: a yes must be typed)."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("y", "answer(True)", "Yes, run it"),
        Binding("n,escape", "answer(False)", "No"),
    ]
    DEFAULT_CSS = """
    Consent { align: center middle; background: $background 40%; }
    Consent > Vertical { width: 90%; max-width: 120; height: auto; max-height: 90%;
                         border: round $error; background: $surface; padding: 0 2; }
    Consent #question { text-style: bold; }
    Consent #body { height: auto; border: none; background: $surface; }
    Consent #keys { color: $foreground-darken-2; margin-top: 1; }
    """

    def __init__(self, question: str, body: list[str]) -> None:
        super().__init__()
        self.question = question
        self.body = body

    def compose(self) -> ComposeResult:
        with Vertical():
            yield Label(Text(literal(self.question)), id="question")
            with VerticalScroll(id="body"):
                yield Static(Text(literal("\n".join(self.body))), id="plan")
            yield Label(Text.assemble(("y", "bold"), " run it   ", ("n", "bold"), "/",
                                      ("escape", "bold"), " no   ", ("↑ ↓ pgup pgdn", "bold"),
                                      " scroll"), id="keys")

    def on_mount(self) -> None:
        self._fit()
        self.query_one("#body", VerticalScroll).focus()

    def on_resize(self) -> None:
        self._fit()

    def _fit(self) -> None:
        """The body takes what the question, the keys and the borders leave of the screen."""
        self.query_one("#body", VerticalScroll).styles.max_height = max(3, self.app.size.height - 7)

    @property
    def text(self) -> str:
        """What the body says (for tests)."""
        return "\n".join(self.body)

    def action_answer(self, yes: bool) -> None:
        self.dismiss(yes)
