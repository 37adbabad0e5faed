"""Messages the panes send to the app."""

from __future__ import annotations

from dataclasses import dataclass

from textual.message import Message


@dataclass(frozen=True, slots=True)
class Selection:
    """What the user is looking at: a node (latest visit), or one of its iterations.

    ``path`` names one visit exactly, e.g. a node of a nested flow run for one item.
    """

    node_id: str | None = None
    index: int | None = None
    path: str | None = None


class SelectionRequested(Message):
    """A pane asks the app to select a node or an iteration; the app tells every pane."""

    def __init__(self, selection: Selection) -> None:
        super().__init__()
        self.selection = selection
