"""A replay's event list: the view model's events backed by a :class:`~.reader.TraceIndex`."""

from __future__ import annotations

from typing import Any

from .events import Event
from .reader import TraceIndex


class LazyEvents:
    """The view model's event list for a replay: a sequence backed by a :class:`TraceIndex`.

    ``append`` only counts (the model already has what it needs from the event), so
    memory stays bounded however long the trace.
    """

    def __init__(self, index: TraceIndex) -> None:
        self.index = index
        self.count = 0

    def append(self, event: Event) -> None:
        self.count += 1

    def __len__(self) -> int:
        return self.count

    def __getitem__(self, key: int | slice) -> Any:
        if isinstance(key, slice):
            start, stop, step = key.indices(self.count)
            events = self.index.events(start, stop)
            return events if step == 1 else events[::step]
        if key < 0:
            key += self.count
        if not 0 <= key < self.count:
            raise IndexError(key)
        return self.index.event(key)

    def ready(self, key: int) -> bool:
        """Whether event ``key`` comes at once (a big one not read yet takes a while)."""
        return self.index.ready(key)

    def head(self, key: int) -> Event:
        """Event ``key``'s leading fields, at once."""
        return self.index.head(key)

    def __delitem__(self, key: slice) -> None:
        """``del events[k:]``: keep the first ``k`` (the replay cursor went back)."""
        if not isinstance(key, slice) or key.stop is not None or key.step is not None:
            raise TypeError("only the tail of a replay's events can be dropped: del events[k:]")
        self.count = min(self.count, key.indices(self.count)[0])

    def __bool__(self) -> bool:
        return self.count > 0
