"""The event stream: one schema for every consumer (trace, console, UI).

An event is a plain dict (cheap to build, serialised by orjson as is) with:

- ``seq``: int, increasing from 1;
- ``t``: float seconds since the run started (monotonic clock);
- ``kind``: one of :data:`KINDS`;
- ``path``: dot-separated address, e.g. ``myflow.square.iteration_6``; a node visited
  again by a loop gets ``#<visit>`` (``myflow.review#2``);

plus fields that depend on the kind (see docs/trace-format.md): ``status`` and
``duration`` on every ``*.end``; ``index``, ``item`` and ``params`` on ``item.start``;
``outputs`` on ``node.end`` and ``item.end``; ``error`` ({type, message, traceback})
on failures.
"""

from __future__ import annotations

import time
import traceback
from collections.abc import Callable
from time import perf_counter
from typing import Any, TypedDict

Event = dict[str, Any]
Sink = Callable[[Event], None]

RUN_START = "run.start"
RUN_END = "run.end"
NODE_START = "node.start"
NODE_END = "node.end"
ITEM_START = "item.start"
ITEM_END = "item.end"
ATTEMPT_START = "attempt.start"
ATTEMPT_END = "attempt.end"
BRANCH_START = "branch.start"
BRANCH_END = "branch.end"
EDGE = "edge"
RACE = "race"
STORE_WRITE = "store.write"
WARNING = "warning"
PAUSE = "pause"
RESUME = "resume"
WAIT_START = "wait.start"
WAIT_END = "wait.end"
SEAL = "seal"

#: Every event kind, with what it means.
KINDS: dict[str, str] = {
    RUN_START: "the run begins (flow name, inputs)",
    RUN_END: "the run ends (status, duration, outputs, error)",
    NODE_START: "a node starts (id, type, resolved params; batch size for batches)",
    NODE_END: "a node ends (status, duration, action, outputs, error)",
    ITEM_START: "a batch iteration starts (index, item, resolved params)",
    ITEM_END: "a batch iteration ends (status, duration, attempts, outputs, error)",
    ATTEMPT_START: "one attempt of a node or item that may retry (attempt number)",
    ATTEMPT_END: "that attempt ends (status, duration, error)",
    BRANCH_START: "a branch of a parallel group starts (group, index, start node)",
    BRANCH_END: "that branch ends (status, duration, last node)",
    EDGE: "the flow follows an edge (from, to, action; group for parallel branches)",
    RACE: "concurrent branches or iterations wrote the same root-level key (key, paths)",
    STORE_WRITE: "a value is written to the shared store (key, value)",
    WARNING: "something worth knowing that does not fail the run (message)",
    PAUSE: "the run pauses: nothing new starts (reason, breakpoint; path: where it paused)",
    RESUME: "the run continues after a pause (reason)",
    WAIT_START: "a node or item waits for a rate limit, a process or a cluster worker before an attempt "
                "(on, key, limit)",
    WAIT_END: "that wait ends: the attempt starts, or it was cancelled (on, key, status, duration, worker)",
    SEAL: "the trace's signature so far, written by the trace writer at every flush (upto, mac): "
          "no reader shows it (see engine/trust.py)",
}

#: Values of ``status`` on end events.
STATUSES = ("ok", "error", "skipped", "cancelled")


# --- the fields of each kind (docs/trace-format.md) ---------------------------------------------
# Events stay plain dicts: these TypedDicts only say, for a reader and a type checker, which
# fields each kind has. ``Required`` fields are those of the ``_...Fields`` bases; the rest
# are optional (``total=False``).

class ErrorInfo(TypedDict, total=False):
    """``error`` of a failure: what :func:`error_info` builds."""

    type: str
    message: str
    traceback: str


class _Fields(TypedDict):
    seq: int
    t: float
    kind: str
    path: str


class RunStart(_Fields, total=False):
    flow: str
    inputs: dict[str, Any]
    source: str
    rerun_of: str


class _RunEndFields(_Fields):
    status: str
    duration: float


class RunEnd(_RunEndFields, total=False):
    outputs: dict[str, Any]
    error: ErrorInfo
    usage: dict[str, Any]  # llm calls' tokens, per model, and the cost when priced (usage.py)


class _NodeStartFields(_Fields):
    node: str
    type: str


class NodeStart(_NodeStartFields, total=False):
    params: dict[str, Any]
    batch: dict[str, Any]  # count, parallel, max_concurrent, error_handling, as; batch_size
    cached: bool


class _NodeEndFields(_Fields):
    node: str
    status: str
    duration: float


class NodeEnd(_NodeEndFields, total=False):
    action: str
    outputs: dict[str, Any]
    attempts: int
    progress: dict[str, int]  # done, failed, total (batch nodes)
    error: ErrorInfo
    cached: bool


class _ItemStartFields(_Fields):
    index: int
    item: Any


class ItemStart(_ItemStartFields, total=False):
    label: str
    params: dict[str, Any]
    cached: bool


class _ItemEndFields(_Fields):
    index: int
    status: str
    duration: float
    attempts: int


class ItemEnd(_ItemEndFields, total=False):
    outputs: dict[str, Any]
    error: ErrorInfo
    cached: bool
    worker: str  # on a cluster: the worker's address (of the last attempt)


class _AttemptStartFields(_Fields):
    attempt: int


class AttemptStart(_AttemptStartFields, total=False):
    worker: str  # on a cluster


class _AttemptEndFields(_Fields):
    attempt: int
    status: str
    duration: float


class AttemptEnd(_AttemptEndFields, total=False):
    error: ErrorInfo
    will_retry: bool
    worker: str  # on a cluster


class BranchStart(_Fields):
    group: str
    index: int
    start: str


class _BranchEndFields(_Fields):
    group: str
    index: int
    status: str
    duration: float


class BranchEnd(_BranchEndFields, total=False):
    last: str


# ``from`` is a keyword: the edge's fields are declared the functional way
_EdgeFields = TypedDict("_EdgeFields", {"seq": int, "t": float, "kind": str, "path": str,
                                        "from": str, "to": str, "action": str})


class Edge(_EdgeFields, total=False):
    group: str


class Race(_Fields):
    key: str
    paths: list[str]
    message: str


class _StoreWriteFields(_Fields):
    key: str
    value: Any


class StoreWrite(_StoreWriteFields, total=False):
    omitted: list[str]


class Warning_(_Fields):
    message: str


class Pause(_Fields):
    reason: str
    breakpoint: Any


class Resume(_Fields):
    reason: str


class _WaitStartFields(_Fields):
    on: str
    attempt: int
    limit: str


class WaitStart(_WaitStartFields, total=False):
    key: str


class _WaitEndFields(_Fields):
    on: str
    attempt: int
    status: str
    duration: float


class WaitEnd(_WaitEndFields, total=False):
    key: str
    worker: str  # on: "cluster", status ok: the worker that started the attempt


class Seal(_Fields):
    upto: int
    mac: str


#: The TypedDict of each kind.
FIELDS: dict[str, type] = {
    RUN_START: RunStart, RUN_END: RunEnd, NODE_START: NodeStart, NODE_END: NodeEnd,
    ITEM_START: ItemStart, ITEM_END: ItemEnd, ATTEMPT_START: AttemptStart, ATTEMPT_END: AttemptEnd,
    BRANCH_START: BranchStart, BRANCH_END: BranchEnd, EDGE: Edge, RACE: Race,
    STORE_WRITE: StoreWrite, WARNING: Warning_, PAUSE: Pause, RESUME: Resume,
    WAIT_START: WaitStart, WAIT_END: WaitEnd, SEAL: Seal,
}


class Emitter:
    """Stamps events with ``seq`` and ``t`` and hands them to every sink, in order."""

    __slots__ = ("redact", "seq", "sinks", "t0")

    def __init__(self, sinks: list[Sink] | None = None,
                 redact: Callable[[Event], Event] | None = None) -> None:
        self.sinks: list[Sink] = list(sinks or [])
        self.seq = 0
        self.t0 = time.perf_counter()
        #: the one place secrets leave the events (see :mod:`.redact`): the sinks get the
        #: redacted copy, the engine keeps the event it built
        self.redact = redact

    def now(self) -> float:
        return time.perf_counter() - self.t0

    def emit(self, kind: str, path: str, fields: dict[str, Any] | None = None) -> Event:
        self.seq += 1
        if fields:
            event: Event = {"seq": self.seq, "t": perf_counter() - self.t0, "kind": kind,
                            "path": path, **fields}
        else:
            event = {"seq": self.seq, "t": perf_counter() - self.t0, "kind": kind, "path": path}
        shown = event if self.redact is None else self.redact(event)
        for sink in self.sinks:
            sink(shown)
        return event

    def send(self, event: Event) -> None:
        """Stamp and dispatch an event built by the caller as ``{"seq": 0, "t": 0.0, "kind":
        ..., "path": ..., ...}`` (the hot paths: one dict instead of two)."""
        self.seq += 1
        event["seq"] = self.seq
        event["t"] = perf_counter() - self.t0
        shown = event if self.redact is None else self.redact(event)
        for sink in self.sinks:
            sink(shown)


def error_info(exc: BaseException, *, with_traceback: bool = True) -> dict[str, str]:
    """An exception as event data: type, message and (optionally) the formatted traceback.

    An exception raised in a worker process (``run.pool.RemoteError``) keeps the type name
    and the traceback it had there.
    """
    info = {"type": getattr(exc, "remote_type", None) or type(exc).__name__,
            "message": str(exc) or type(exc).__name__}
    if with_traceback:
        remote = getattr(exc, "remote_traceback", None)
        if remote:
            info["traceback"] = remote
        elif exc.__traceback__ is not None:
            info["traceback"] = "".join(traceback.format_exception(exc))
    return info
