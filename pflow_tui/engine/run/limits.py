"""Flow-wide limits on calls: how many at once, how many per second or per minute.

A :class:`Limit` is shared by every node, branch and iteration that uses its key, for the
whole run. It is checked before each attempt of a node or batch item (a retry is a call
too) and held until that attempt ends. Concurrency is an ``anyio.CapacityLimiter``; a rate
is a sliding window on the event loop's clock (``anyio.current_time``): a call takes a
token, the token comes back one window (1 s or 60 s) after it was taken, so no window of
that length ever holds more starts than the rate, while a burst up to the rate may start
at once. Waiters are served first come, first served.

The run's process pool uses the same machinery for its slots (see :mod:`.pool`).

Waiting is visible: :func:`hold` emits ``wait.start`` / ``wait.end`` at the node's or
item's path when, and only when, an attempt has to wait; one that finds room costs no event.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Any, Protocol

import anyio

from ..trace import events as ev

if TYPE_CHECKING:
    from ..nodes.base import RunContext


class Emits(Protocol):
    """Where waits are reported: a run's :class:`~.execution.Execution`."""

    def emit(self, kind: str, path: str, fields: dict[str, Any] | None = None) -> Any: ...

    def now(self) -> float: ...

RATE_LIMIT, PROCESSES = "rate_limit", "processes"  # what a wait is on (``on`` of wait events)


class Limit:
    """At most ``max_concurrent`` holders at once, and for each rate ``(n, seconds, label)``
    at most n starts in any window of that many seconds."""

    __slots__ = ("key", "lock", "on", "slots", "total", "windows")

    def __init__(self, key: str | None, *, max_concurrent: int | None = None,
                 rates: Iterable[tuple[int, float, str]] = (), on: str = RATE_LIMIT) -> None:
        self.key, self.on, self.total = key, on, max_concurrent
        self.slots = anyio.CapacityLimiter(max_concurrent) if max_concurrent else None
        self.windows: list[tuple[deque[float], float, str]] = [
            (deque(maxlen=n), seconds, label) for n, seconds, label in rates]
        self.lock = anyio.Lock() if self.windows else None  # one waiter watches the clock at a time

    @classmethod
    def from_spec(cls, key: str, spec: Mapping[str, int]) -> Limit:
        """A ``rate_limits`` entry: max_concurrent, per_second, per_minute."""
        rates = [(n, seconds, f"{name} {n}") for name, seconds in (("per_second", 1.0), ("per_minute", 60.0))
                 if (n := spec.get(name))]
        return cls(key, max_concurrent=spec.get("max_concurrent"), rates=rates)

    def _delay(self, now: float) -> tuple[float, str]:
        """How long until every window has a token, and the window that is full."""
        delay, full = 0.0, ""
        for starts, seconds, label in self.windows:
            if len(starts) == starts.maxlen and (d := starts[0] + seconds - now) > delay:
                delay, full = d, label
        return delay, full

    def _take(self, now: float) -> None:
        for starts, _, _ in self.windows:
            starts.append(now)

    def try_acquire(self, borrower: object) -> str | None:
        """Take a slot and a token now if both are free (None); else why not, e.g.
        ``"max_concurrent 5"``, and nothing is taken."""
        slots = self.slots
        if slots is not None:
            try:
                slots.acquire_on_behalf_of_nowait(borrower)
            except anyio.WouldBlock:
                if self.on == RATE_LIMIT:
                    return f"max_concurrent {self.total}"
                return f"{self.total} process{'es' if self.total != 1 else ''}"
        if self.windows:
            delay, full = self._delay(anyio.current_time())
            if delay > 0 or self.lock.locked():  # type: ignore[union-attr]  # others queue for tokens
                if slots is not None:
                    slots.release_on_behalf_of(borrower)
                return full or self.windows[0][2]
            self._take(anyio.current_time())
        return None

    async def acquire(self, borrower: object) -> None:
        """Wait for a slot, then for a token (in arrival order)."""
        if self.slots is not None:
            await self.slots.acquire_on_behalf_of(borrower)
        if not self.windows:
            return
        try:
            async with self.lock:  # type: ignore[union-attr]
                while True:
                    now = anyio.current_time()
                    delay, _ = self._delay(now)
                    if delay <= 0:
                        self._take(now)
                        return
                    await anyio.sleep(delay)
        except BaseException:
            if self.slots is not None:
                self.slots.release_on_behalf_of(borrower)
            raise

    def release(self, borrower: object) -> None:
        if self.slots is not None:
            self.slots.release_on_behalf_of(borrower)


async def hold(limits: Iterable[Limit], ex: Emits, path: str, call: RunContext) -> None:
    """Acquire every limit in order for ``call`` (one attempt). If any has to be waited for,
    one ``wait`` span covers the whole wait: ``wait.start`` names the first limit that was
    full, ``wait.end`` comes when every limit is held. On cancellation, what was taken is
    given back."""
    taken: list[Limit] = []
    fields: dict[str, Any] | None = None
    t0 = 0.0
    try:
        for limit in limits:
            if fields is None:
                reason = limit.try_acquire(call)
                if reason is None:
                    taken.append(limit)
                    continue
                fields = {"on": limit.on, "attempt": call.attempt}
                if limit.key is not None:
                    fields["key"] = limit.key
                t0 = ex.now()
                ex.emit(ev.WAIT_START, path, {**fields, "limit": reason})
            await limit.acquire(call)
            taken.append(limit)
    except BaseException:
        for limit in taken:
            limit.release(call)
        if fields is not None:
            ex.emit(ev.WAIT_END, path, {**fields, "status": "cancelled", "duration": ex.now() - t0})
        raise
    if fields is not None:
        ex.emit(ev.WAIT_END, path, {**fields, "status": "ok", "duration": ex.now() - t0})


def release(limits: Iterable[Limit], borrower: object) -> None:
    for limit in limits:
        limit.release(borrower)

