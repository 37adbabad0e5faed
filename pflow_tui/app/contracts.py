"""The app's contracts, as typing protocols (no Textual here):

- :class:`Pane`: what the run screen asks of each of its five panes (besides being widgets);
- :class:`EventSource`: where a run screen's events come from: a live run, a saved trace fed
  up to a cursor, or a fixed list (:mod:`.runner`); the panes cannot tell them apart;
- :class:`Debugger`: what the command palette asks of the app (so :mod:`.commands` needs no
  import of :mod:`.app`, which imports it).

Each is satisfied by shape, not by inheritance; ``tests/app/test_contracts.py`` checks that
every pane, source and the app do.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Protocol, runtime_checkable

from ..engine.trace.events import Event
from .model import Changes, RunModel

if TYPE_CHECKING:  # (messages imports textual: named for type checkers only, so this module
    from .messages import Selection  # loads without it, as the view model does)


@runtime_checkable
class Pane(Protocol):
    """One of the run screen's panes (DAG, namespaces, timeline, inspector, events).

    The screen's timer applies the events that arrived to the view model, then hands every
    pane what changed; a selection (a key, a click, the command palette) goes to every pane
    too, the one that asked for it included."""

    def update_from(self, changes: Changes) -> None:
        """Repaint what ``changes`` says changed: events applied, the replay cursor gone back
        (``changes.rewound``), time gone on in a live run (``changes.clock``)."""
        ...

    def select(self, selection: Selection) -> None:
        """Show ``selection``: a node (its latest visit), one of its iterations, or one visit."""
        ...


@runtime_checkable
class EventSource(Protocol):
    """What feeds a run screen its events, drained by the screen's timer in batches."""

    @property
    def live(self) -> bool:
        """Whether a run is going on here (its clock moves between events, it can be paused)."""
        ...

    @property
    def trace_path(self) -> Path | None:
        """The trace file the events are (being) written to, if any."""
        ...

    @property
    def running(self) -> bool:
        """Whether more events may still arrive without being asked for (a live run's process)."""
        ...

    def start(self) -> EventSource:
        """Begin (a live run starts its process); returns itself."""
        ...

    def drain(self, limit: int | None = None) -> list[Event]:
        """The events that arrived, oldest first; at most ``limit``, the rest wait."""
        ...

    def drain_pending(self) -> bool:
        """Whether events are waiting to be drained."""
        ...

    def stop(self) -> None:
        """Ask a live run to stop (running items end as cancelled); nothing for the others."""
        ...

    def join(self, timeout: float | None = None) -> None:
        """Wait for a live run's process to end; nothing for the others."""
        ...


class Debugger(Protocol):
    """What the command palette asks of the app: the run shown, and selecting in it."""

    @property
    def model(self) -> RunModel:
        """The view model of the run shown."""
        ...

    def select(self, selection: Selection) -> None:
        """Select a node or an iteration in every pane, as if the user had."""
        ...
