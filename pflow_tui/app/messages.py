"""Messages the panes send to the app."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol, runtime_checkable

from textual.message import Message

from ..engine.paths import branch_index, iteration_index
from .graph import graph_key


@dataclass(frozen=True, slots=True)
class Selection:
    """What the user is looking at: a node (latest visit), or one of its iterations.

    ``path`` names one visit exactly, e.g. a node of a nested flow run for one item.
    """

    node_id: str | None = None
    index: int | None = None
    path: str | None = None


@runtime_checkable
class SelectionSource(Protocol):
    """A pane that asks for selections (:func:`request_selection`): until its message arrives,
    ``requested`` holds what it asked for (the screen's keys act on it)."""

    requested: Selection | None

    def post_message(self, message: Message) -> bool: ...


class SelectionRequested(Message):
    """A pane asks the app to select a node or an iteration; the app tells every pane."""

    def __init__(self, selection: Selection, pane: SelectionSource | None = None) -> None:
        super().__init__()
        self.selection = selection
        self.pane = pane


def request_selection(pane: SelectionSource, selection: Selection) -> None:
    """Ask the screen to select ``selection`` (a cursor moved, a row was chosen).

    The message reaches the screen only after the keys already queued behind the one that
    moved the cursor: typed fast, ``down`` then ``b`` would set the breakpoint on the node
    the cursor left. Until the message arrives, ``pane.requested`` holds the selection, and
    the screen's keys act on it (:meth:`RunScreen.settled`)."""
    pane.requested = selection
    pane.post_message(SelectionRequested(selection, pane))


def selection_at(address: str) -> Selection:
    """The selection an event path names: ``flow.square``, ``flow.square.iteration_6``,
    ``flow.review#2``, ``flow.fan.branch_1`` (the fan-out node) or a node of a nested flow."""
    head, _, last = address.rpartition(".")
    index = iteration_index(last) if "." in head else None
    if index is not None or ("." in head and branch_index(last) is not None):
        address = head
    key, node = graph_key(address)
    exact = bool(key) or "#" in address.rpartition(".")[2]
    return Selection(node, index, address if exact else None)
