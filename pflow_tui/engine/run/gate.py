"""Pause, step and breakpoints for a live run: the :class:`Gate` every node and item passes.

The compiled nodes ask the gate before they start: ``await gate.before_node(...)``
before a node's ``node.start`` event, ``await gate.before_item(...)`` before an item's
``item.start``; and they tell it when they end (``gate.after(...)``). Waiting happens in
the run's event loop; commands (:meth:`Gate.pause`, :meth:`Gate.resume`,
:meth:`Gate.step`, :meth:`Gate.step_node`, breakpoints) may come from any thread (the
app, the worker's stdin reader, a test).

A *unit* is a node start or an item start. The gate is:

- ``running``: units pass (unless a breakpoint hits: then it pauses);
- ``paused``: no unit passes; what is already running finishes;
- ``stepping``: paused, but a step is under way (a unit will be released, or the
  items of a node stepped over pass until that node ends).

``step()`` releases exactly one unit: the one that has waited longest, or the next one
to arrive. With several parallel items waiting, one is released per step.
``step_node()`` steps over a whole node: the waiting node (or the batch whose items
wait) runs to its end, items and nested flows included; the next node waits.

Breakpoints (JSON-serialisable, so they cross the worker's pipe):

- :class:`NodeBreak`: pause before that node starts (any visit, any nested flow);
- :class:`FailureBreak`: pause as soon as a node or an item fails;
- :class:`ItemBreak`: on the items of a batch node: by index, by a match on the item's
  value or resolved params (before the item starts), or when it ends: its error
  message matches a regex, it ran longer than ``slower_than`` seconds, or longer than
  the p95 of its finished siblings so far (the last :data:`P95_SIBLINGS` of them).

Each pause is reported as a ``pause`` event (``reason``, ``breakpoint``) at the path
where it happened, each resume as a ``resume`` event, through the callback the
executor gives :meth:`Gate.attach`. A step from a pause is a ``resume`` (reason ``step``,
at the unit or node it lets go), and once something waits again with no step under way,
a ``pause`` (reason ``step``) at what waits first: the events always say whether the run
is paused, and where. Pausing never fails the run, and stopping it (the
executor's ``stop``) cancels whatever waits here.
"""

from __future__ import annotations

import asyncio
import hashlib
import re
import threading
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass, fields
from functools import lru_cache
from typing import Any, ClassVar

import anyio
import orjson

from ..trace import events as ev
from .aggregates import nearest_rank

RUNNING = "running"
PAUSED = "paused"
STEPPING = "stepping"

#: reasons on ``pause`` / ``resume`` events
REASONS = ("start", "user", "step", "breakpoint", "failure")


# --- breakpoints -------------------------------------------------------------------------------

def _digest(data: dict[str, Any]) -> str:
    return hashlib.sha1(orjson.dumps(data, option=orjson.OPT_SORT_KEYS)).hexdigest()[:8]


class _Break:
    kind: ClassVar[str]
    id: str

    def to_json(self) -> dict[str, Any]:
        """The breakpoint as JSON data: ``{"kind": ..., "id": ..., <its fields>}``."""
        out: dict[str, Any] = {"kind": self.kind}
        for f in fields(self):  # type: ignore[arg-type]
            out[f.name] = getattr(self, f.name)
        return out


@dataclass(frozen=True)
class NodeBreak(_Break):
    """Pause before the node ``node_id`` starts (``node_id`` may also be a full path)."""

    node_id: str
    id: str = ""
    kind: ClassVar[str] = "node"

    def __post_init__(self) -> None:
        if not isinstance(self.node_id, str) or not self.node_id:
            raise ValueError("a node breakpoint needs a node id")
        if not self.id:
            object.__setattr__(self, "id", f"node:{self.node_id}")


@dataclass(frozen=True)
class FailureBreak(_Break):
    """Pause as soon as any node or item fails: nothing new starts after the failure."""

    id: str = "failure"
    kind: ClassVar[str] = "failure"


@dataclass(frozen=True)
class ItemBreak(_Break):
    """Pause on an item of the batch node ``node_id`` (None: of any batch node).

    ``index`` and ``match`` (a substring of, or a regex found in, the JSON of the item's
    value or of its resolved params) choose the items. Without an end condition the gate
    pauses *before* a chosen item starts. With one (``error``: a regex found in the
    message of a failed item; ``slower_than``: seconds; ``slower_than_p95``: longer than
    the p95 of the node's items finished so far (the last P95_SIBLINGS), once
    ``min_siblings`` have) it pauses
    when a chosen item *ends* that way: nothing new starts after it.
    """

    node_id: str | None = None
    index: int | None = None
    match: str | None = None
    error: str | None = None
    slower_than: float | None = None
    slower_than_p95: bool = False
    min_siblings: int = 5
    id: str = ""
    kind: ClassVar[str] = "item"

    def __post_init__(self) -> None:
        if self.index is not None and (not isinstance(self.index, int) or self.index < 0):
            raise ValueError(f"item breakpoint: index must be an integer >= 0, not {self.index!r}")
        if self.slower_than is not None and (not isinstance(self.slower_than, (int, float))
                                             or self.slower_than < 0):
            raise ValueError(f"item breakpoint: slower_than must be seconds >= 0, "
                             f"not {self.slower_than!r}")
        if not isinstance(self.min_siblings, int) or self.min_siblings < 1:
            raise ValueError("item breakpoint: min_siblings must be an integer >= 1")
        for name in ("match", "error"):
            value = getattr(self, name)
            if value is not None and not isinstance(value, str):
                raise ValueError(f"item breakpoint: {name} must be a string")
        if self.error is not None:
            try:
                re.compile(self.error)
            except re.error as exc:
                raise ValueError(f"item breakpoint: error is not a valid regex: {exc}") from None
        if not self.id:
            data = {f.name: getattr(self, f.name) for f in fields(self) if f.name != "id"}
            object.__setattr__(self, "id", f"item:{self.node_id or '*'}:{_digest(data)}")

    @property
    def at_end(self) -> bool:
        """Whether it is checked when an item ends (else: before an item starts)."""
        return self.error is not None or self.slower_than is not None or self.slower_than_p95

    def chooses(self, node_id: str, index: int | None) -> bool:
        return ((self.node_id is None or self.node_id == node_id)
                and (self.index is None or self.index == index))


Breakpoint = NodeBreak | FailureBreak | ItemBreak
_KINDS: dict[str, type[_Break]] = {"node": NodeBreak, "failure": FailureBreak, "item": ItemBreak}


def breakpoint_from_json(data: dict[str, Any] | str | bytes) -> Breakpoint:
    """A breakpoint from its JSON (a dict, or JSON text); raises ValueError when it is bad."""
    if isinstance(data, (str, bytes)):
        try:
            data = orjson.loads(data)
        except orjson.JSONDecodeError as exc:
            raise ValueError(f"breakpoint: not JSON: {exc}") from None
    if not isinstance(data, dict):
        raise ValueError("breakpoint: expected a JSON object")
    data = dict(data)
    kind = data.pop("kind", None)
    cls = _KINDS.get(kind) if isinstance(kind, str) else None
    if cls is None:
        raise ValueError(f"breakpoint: kind must be one of {sorted(_KINDS)}, not {kind!r}")
    known = {f.name for f in fields(cls)}  # type: ignore[arg-type]
    unknown = sorted(set(data) - known)
    if unknown:
        raise ValueError(f"{kind} breakpoint: unknown field(s) {unknown}; expected {sorted(known)}")
    try:
        return cls(**data)  # type: ignore[return-value]
    except TypeError as exc:
        raise ValueError(f"{kind} breakpoint: {exc}") from None


@lru_cache(maxsize=256)
def _regex(pattern: str) -> re.Pattern[str] | None:
    try:
        return re.compile(pattern)
    except re.error:
        return None


def _json_text(value: Any) -> str:
    if isinstance(value, str):
        return value
    try:
        return orjson.dumps(value, default=repr, option=orjson.OPT_NON_STR_KEYS).decode()
    except (TypeError, orjson.JSONEncodeError):
        return repr(value)


def _matches(pattern: str, item: Any, params: Any) -> bool:
    rx = _regex(pattern)
    for value in (item, params):
        text = _json_text(value)
        if pattern in text or (rx is not None and rx.search(text)):
            return True
    return False


P95_SIBLINGS = 10_000  #: the durations a slower-than-p95 breakpoint compares with (memory)


def _p95(values: Iterable[float]) -> float:
    return nearest_rank(sorted(values), 95)


def _parent(path: str) -> str:
    return path.rpartition(".")[0]


def _under(path: str, roots: Iterable[str]) -> bool:
    return any(path == r or path.startswith(r + ".") for r in roots)


# --- the gate ----------------------------------------------------------------------------------

class GateClosed(BaseException):
    """The run was stopped while a sync node waited at the gate (see :meth:`Gate.close`)."""


class _Waiter:
    __slots__ = ("event", "is_node", "path", "released")

    def __init__(self, path: str, is_node: bool) -> None:
        self.path = path
        self.is_node = is_node
        self.released = False
        self.event: anyio.Event | threading.Event | None = None  # threading: a blocked sync node


class Gate:
    """Where a run's nodes and items wait to start (see the module docstring).

    ``paused``: start paused (nothing starts until :meth:`step` or :meth:`resume`).
    One gate per run: give it to ``execute`` / ``run_flow`` (``gate=``); commands may be
    given before the run starts (they are reported when it does).
    """

    def __init__(self, *, paused: bool = False, breakpoints: Iterable[Breakpoint] = ()) -> None:
        self._lock = threading.Lock()
        self._paused = paused
        self._started_paused = paused
        self._reported_paused = paused  # the last pause/resume event said paused
        self._credits: list[bool] = []  # steps granted, oldest first: True for step_node
        self._free: set[str] = set()  # node paths stepped over: what is under them passes
        self._waiters: list[_Waiter] = []  # oldest first
        self._bps: dict[str, Breakpoint] = {}
        # snapshots of the breakpoints by use, replaced (never changed) when they change
        self._nodes: frozenset[str] = frozenset()
        self._before_items: tuple[ItemBreak, ...] = ()
        self._end_items: tuple[ItemBreak, ...] = ()
        self._failure: FailureBreak | None = None
        self._armed: dict[str, set[str]] = {}  # item path -> ids of end breakpoints it matched
        self._durations: dict[str, deque[float]] = {}  # batch path -> its items' last durations
        # the fast paths: whether a node / an item may pass without looking further
        self._pass_nodes = not paused
        self._pass_items = not paused
        self._watch_ends = False
        # the run's loop, once attached
        self._emit: Callable[..., Any] | None = None
        self._root = ""
        self._thread: int | None = None
        self._call_soon: Callable[[Callable[[], Any]], Any] | None = None
        self._pending: list[tuple[str, str, dict[str, Any]]] = []
        self._ended = False
        self._closed = False
        for bp in breakpoints:
            self.add_breakpoint(bp)
        with self._lock:
            self._refresh()

    # --- state ---------------------------------------------------------------------------------

    @property
    def mode(self) -> str:
        """``running``, ``paused`` or ``stepping``."""
        with self._lock:
            return self._mode()

    def _mode(self) -> str:
        if not self._paused:
            return RUNNING
        return STEPPING if self._credits or self._free else PAUSED

    def waiting(self) -> list[str]:
        """The paths of the nodes and items waiting to start, oldest first."""
        with self._lock:
            return [w.path for w in self._waiters]

    def breakpoints(self) -> list[Breakpoint]:
        with self._lock:
            return list(self._bps.values())

    # --- commands (any thread) -----------------------------------------------------------------

    def pause(self) -> None:
        """Nothing new starts; what is running finishes."""
        with self._lock:
            self._pause("user", None, self._root)
        self._notify(())

    def resume(self) -> None:
        """Continue: everything waiting starts, and what comes next passes (breakpoints apart)."""
        with self._lock:
            was = self._paused
            self._paused = False
            self._credits.clear()
            self._free.clear()
            released = self._release(lambda w: True)
            if was:
                self._queue(ev.RESUME, self._root, "user", None)
                self._reported_paused = False
            self._refresh()
        self._notify(released)

    continue_ = resume

    def step(self) -> None:
        """Release exactly one unit (a node start or an item start): the one that waited
        longest, or else the next to arrive. When running, this pauses after that unit."""
        self._grant(node=False)

    def step_node(self) -> None:
        """Step over a node: the waiting node (or the batch whose items wait) runs to its
        end, its items and nested flows included; the next node waits."""
        self._grant(node=True)

    def add_breakpoint(self, bp: Breakpoint) -> str:
        """Add (or replace, same id) a breakpoint; returns its id."""
        if not isinstance(bp, _Break):
            raise TypeError(f"not a breakpoint: {bp!r}")
        with self._lock:
            self._bps[bp.id] = bp
            self._refresh()
        return bp.id

    def remove_breakpoint(self, bp_id: str) -> bool:
        """Remove a breakpoint by id; whether there was one."""
        with self._lock:
            found = self._bps.pop(bp_id, None) is not None
            self._refresh()
        return found

    def clear_breakpoints(self) -> None:
        with self._lock:
            self._bps.clear()
            self._refresh()

    # --- the run's side (its event loop) -------------------------------------------------------

    def attach(self, emit: Callable[[str, str, dict[str, Any]], Any], root: str) -> None:
        """Called by the executor in the run's loop: events go to ``emit``; ``root`` is the
        run's path. A gate made ``paused`` reports it now (reason ``start``)."""
        try:
            call_soon = asyncio.get_running_loop().call_soon_threadsafe
        except RuntimeError:  # trio
            import trio  # type: ignore[import-not-found]  # (optional: only a run under trio has it)

            call_soon = trio.lowlevel.current_trio_token().run_sync_soon
        with self._lock:
            self._emit, self._root, self._ended = emit, root, False
            self._thread = threading.get_ident()
            self._call_soon = call_soon
            if self._started_paused and self._paused:
                self._pending.insert(0, (ev.PAUSE, root, {"reason": "start", "breakpoint": None}))
        self._flush()

    def close(self) -> None:
        """The run is being stopped: sync nodes blocked here raise :class:`GateClosed` (async
        ones are cancelled by the executor)."""
        with self._lock:
            self._closed = True
            blocked = [w for w in self._waiters if isinstance(w.event, threading.Event)]
        for w in blocked:
            assert isinstance(w.event, threading.Event)
            w.event.set()

    def detach(self) -> None:
        """The run ended: events are no longer reported."""
        with self._lock:
            self._emit = self._call_soon = self._thread = None
            self._pending.clear()
            self._ended = True

    async def before_node(self, path: str, node_id: str) -> None:
        """Wait until the node at ``path`` may start."""
        if self._pass_nodes:
            return
        w = self._node_waiter(path, node_id, blocking=False)
        if w is not None:
            await self._wait(w)

    def before_node_blocking(self, path: str, node_id: str) -> None:
        """:meth:`before_node` for sync code (a Python program's sync node): blocks its thread."""
        if not self._pass_nodes and (w := self._node_waiter(path, node_id, blocking=True)):
            self._wait_blocking(w)

    def _node_waiter(self, path: str, node_id: str, *, blocking: bool) -> _Waiter | None:
        with self._lock:
            if not self._paused or _under(path, self._free):  # running, or in a node stepped over
                bp = self._node_hit(node_id, path)
                if bp is None:
                    return None
                self._pause("breakpoint", bp, path)
            elif self._credits and not self._waiters:
                if self._credits.pop(0):
                    self._free.add(path)
                self._refresh()
                return None
            return self._wait_here(path, True, blocking)

    async def before_item(self, path: str, node_id: str, index: int, item: Any,
                          params: Any) -> None:
        """Wait until the item at ``path`` (``<node path>.iteration_<index>``) may start."""
        if self._pass_items:
            return
        w = self._item_waiter(path, node_id, index, item, params, blocking=False)
        if w is not None:
            await self._wait(w)

    def before_item_blocking(self, path: str, node_id: str, index: int, item: Any,
                             params: Any) -> None:
        """:meth:`before_item` for sync code: blocks its thread."""
        if not self._pass_items and (w := self._item_waiter(path, node_id, index, item, params,
                                                            blocking=True)):
            self._wait_blocking(w)

    def _item_waiter(self, path: str, node_id: str, index: int, item: Any, params: Any, *,
                     blocking: bool) -> _Waiter | None:
        before, ends = self._before_items, self._end_items
        hit: ItemBreak | None = None
        for bp in before:
            if bp.chooses(node_id, index) and (bp.match is None or _matches(bp.match, item, params)):
                hit = bp
                break
        armed = [bp.id for bp in ends if bp.match is not None and bp.chooses(node_id, index)
                 and _matches(bp.match, item, params)]
        with self._lock:
            if armed:
                self._armed[path] = set(armed)
            if not self._paused or _under(path, self._free):
                if hit is None:
                    return None
                self._pause("breakpoint", hit, path)
            elif self._credits and not self._waiters:
                if self._credits.pop(0):
                    self._free.add(_parent(path))
                self._refresh()
                return None
            return self._wait_here(path, False, blocking)

    def after(self, path: str, node_id: str, index: int | None, status: str, duration: float,
              error: Any = None) -> None:
        """A node (``index`` None) or an item ended; a breakpoint on it may pause the run."""
        if not self._watch_ends:
            return
        hit: Breakpoint | None = None
        reason = "breakpoint"
        with self._lock:
            if index is None:
                self._free.discard(path)
                self._settle()
            if status == "error" and self._failure is not None:
                hit, reason = self._failure, "failure"
            elif index is not None and self._end_items:
                hit = self._end_hit(path, node_id, index, status, duration, error)
            if index is not None:
                self._armed.pop(path, None)
            if hit is not None:
                self._pause(reason, hit, path)
            self._refresh()
        if hit is not None or self._pending:
            self._notify(())

    # --- internals (with the lock held unless said otherwise) ----------------------------------

    def _node_hit(self, node_id: str, path: str) -> NodeBreak | None:
        if node_id not in self._nodes and path not in self._nodes:
            return None
        return next((b for b in self._bps.values() if isinstance(b, NodeBreak)
                     and b.node_id in (node_id, path)), None)

    def _end_hit(self, path: str, node_id: str, index: int, status: str, duration: float,
                 error: Any) -> ItemBreak | None:
        batch = _parent(path)
        siblings = self._durations.get(batch)
        hit = None
        for bp in self._end_items:
            if not bp.chooses(node_id, index):
                continue
            if bp.match is not None and bp.id not in self._armed.get(path, ()):
                continue
            if bp.error is not None:
                message = error.get("message", "") if isinstance(error, dict) else str(error or "")
                rx = _regex(bp.error)
                if status != "error" or rx is None or not rx.search(message):
                    continue
            if bp.slower_than is not None and not duration > bp.slower_than:
                continue
            if bp.slower_than_p95 and (siblings is None or len(siblings) < bp.min_siblings
                                       or not duration > _p95(siblings)):
                continue
            hit = bp
            break
        if status in ("ok", "error") and any(
                bp.slower_than_p95 and (bp.node_id is None or bp.node_id == node_id)
                for bp in self._end_items):
            self._durations.setdefault(batch, deque(maxlen=P95_SIBLINGS)).append(duration)
        return hit

    def _pause(self, reason: str, bp: Breakpoint | None, path: str) -> None:
        self._paused = True
        self._credits.clear()
        self._free.clear()
        if not self._reported_paused:
            self._queue(ev.PAUSE, path or self._root, reason, bp)
            self._reported_paused = True
        self._refresh()

    def _grant(self, *, node: bool) -> None:
        with self._lock:
            if not self._paused:  # running: pause after this step (reported once it waits)
                self._paused = True
                self._credits.clear()
                self._free.clear()
            released: list[_Waiter] = []
            if not self._waiters:
                self._credits.append(node)
                where = self._root
            elif not node:
                where = self._waiters[0].path
                released = self._release(lambda w: w is self._waiters[0])
            else:
                first = self._waiters[0]
                where = first.path if first.is_node else _parent(first.path)
                self._free.add(where)
                released = self._release(lambda w: _under(w.path, self._free))
            if self._reported_paused:  # the run goes on for a step: say so, and where
                self._queue(ev.RESUME, where, "step", None)
                self._reported_paused = False
            self._settle()
            self._refresh()
        self._notify(released)

    def _release(self, which: Callable[[_Waiter], bool]) -> list[_Waiter]:
        chosen = [w for w in self._waiters if which(w)]
        for w in chosen:
            w.released = True
        self._waiters = [w for w in self._waiters if not w.released]
        return chosen

    def _wait_here(self, path: str, is_node: bool, blocking: bool = False) -> _Waiter:
        w = _Waiter(path, is_node)
        w.event = threading.Event() if blocking else anyio.Event()
        self._waiters.append(w)
        self._settle()
        return w

    def _settle(self) -> None:
        """A step is over once something waits again with no step under way: report the
        pause (reason ``step``) at what waits first, so the run says where it stands."""
        if self._paused and not self._reported_paused and self._waiters and not (
                self._credits or self._free):
            self._queue(ev.PAUSE, self._waiters[0].path, "step", None)
            self._reported_paused = True

    def _wait_blocking(self, w: _Waiter) -> None:
        """(Without the lock.) Block this thread until ``w`` is released."""
        if threading.get_ident() == self._thread:
            self._flush()  # the loop is about to block: report the pause now
        else:
            self._notify(())
        assert isinstance(w.event, threading.Event)
        while not w.released:
            if self._closed:
                raise GateClosed("the run was stopped while this node waited")
            w.event.wait(0.1)

    async def _wait(self, w: _Waiter) -> None:
        """(Without the lock.) Wait until ``w`` is released; forget it if cancelled."""
        self._flush()
        try:
            assert w.event is not None
            while not w.released:
                await w.event.wait()
        finally:
            if not w.released:
                with self._lock:
                    if w in self._waiters:
                        self._waiters.remove(w)

    def _refresh(self) -> None:
        bps = list(self._bps.values())
        self._nodes = frozenset(b.node_id for b in bps if isinstance(b, NodeBreak))
        self._before_items = tuple(b for b in bps if isinstance(b, ItemBreak) and not b.at_end)
        self._end_items = tuple(b for b in bps if isinstance(b, ItemBreak) and b.at_end)
        self._failure = next((b for b in bps if isinstance(b, FailureBreak)), None)
        running = not self._paused
        self._pass_nodes = running and not self._nodes
        self._pass_items = running and not self._before_items and not any(
            b.match is not None for b in self._end_items)
        self._watch_ends = bool(self._free or self._failure or self._end_items)

    def _queue(self, kind: str, path: str, reason: str, bp: Breakpoint | None) -> None:
        if self._ended:
            return
        self._pending.append((kind, path, {"reason": reason,
                                           "breakpoint": bp.to_json() if bp is not None else None}))

    def _notify(self, released: Iterable[_Waiter]) -> None:
        """(Without the lock.) Wake the released waiters and report the queued events, in
        the run's loop."""
        released = list(released)
        for w in [w for w in released if isinstance(w.event, threading.Event)]:
            w.event.set()  # a sync program's thread: woken from any thread
            released.remove(w)
        if threading.get_ident() == self._thread:
            self._flush()
            for w in released:
                assert w.event is not None
                w.event.set()
            return
        call_soon = self._call_soon
        if call_soon is None:
            return  # not attached: attach() reports what is queued
        try:
            call_soon(self._flush)
            for w in released:
                assert w.event is not None
                call_soon(w.event.set)
        except RuntimeError:  # the loop is closed: the run is over
            pass

    def _flush(self) -> None:
        """(In the run's loop, without the lock.) Report the queued events."""
        while True:
            with self._lock:
                emit, pending = self._emit, self._pending
                if emit is None or not pending:
                    return
                self._pending = []
            for kind, path, fields_ in pending:
                emit(kind, path or self._root, fields_)


__all__ = ["PAUSED", "RUNNING", "STEPPING", "Breakpoint", "FailureBreak", "Gate", "GateClosed", "ItemBreak",
           "NodeBreak", "breakpoint_from_json"]
