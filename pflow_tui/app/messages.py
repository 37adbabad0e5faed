"""Messages the panes send to the app."""

from __future__ import annotations

from dataclasses import dataclass

from textual.message import Message
from textual.widget import Widget

from ..engine.paths import branch_index, iteration_index


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

    def __init__(self, selection: Selection, pane: Widget | None = None) -> None:
        super().__init__()
        self.selection = selection
        self.pane = pane


def request_selection(pane: Widget, selection: Selection) -> None:
    """Ask the screen to select ``selection`` (a cursor moved, a row was chosen).

    The message reaches the screen only after the keys already queued behind the one that
    moved the cursor: typed fast, ``down`` then ``b`` would set the breakpoint on the node
    the cursor left. Until the message arrives, ``pane.requested`` holds the selection, and
    the screen's keys act on it (:meth:`RunScreen.settled`)."""
    pane.requested = selection  # type: ignore[attr-defined]
    pane.post_message(SelectionRequested(selection, pane))


def selection_at(address: str) -> Selection:
    """The selection an event path names: ``flow.square``, ``flow.square.iteration_6``,
    ``flow.review#2``, ``flow.fan.branch_1`` (the fan-out node) or a node of a nested flow."""
    from .model import graph_key

    head, _, last = address.rpartition(".")
    index = iteration_index(last) if "." in head else None
    if index is not None or ("." in head and branch_index(last) is not None):
        address = head
    key, node = graph_key(address)
    exact = bool(key) or "#" in address.rpartition(".")[2]
    return Selection(node, index, address if exact else None)
