"""Chrome Trace Event JSON: what the Perfetto UI (ui.perfetto.dev) and chrome://tracing open.

Every span is an async slice: a ``b`` event when it begins, an ``e`` event when it ends,
paired by ``cat`` (always ``pflow``) and a process-local ``id2``, which names a *track*.
On a track, slices nest like a stack, so the export places them:

- the run on track 0, and every node nested in what contains it (its flow, its branch,
  its iteration) while that is the innermost slice on its track;
- the iterations of a parallel batch and the branches of a parallel group on tracks of
  their own, so that items running side by side need not nest. A track goes back to its
  pool when its slices have ended, and the next item takes the lowest free one: a batch
  with ``max_concurrent`` 8 uses 8 tracks however many items it has. Tracks are pooled
  per batch node (per parallel group), across the visits and the iterations that contain it;
- the iterations of a sequential batch nested in their node; attempts of a node or item
  that may retry, and its waits before an attempt (``wait: rate limit 'llm'``,
  ``wait: a process``, ``wait: a cluster worker``), nested in it.

On a Dask cluster, each worker is a process of its own, named ``worker tcp://HOST:PORT``
(sorted after the run, in the order the workers first appear), and an attempt a worker ran
goes on a track of that process (a pool of tracks per worker: a worker with several
threads runs attempts side by side), named ``square[6]`` (``square[6] attempt 2`` for a
retry). Its item stays on the run's process with the wait before the attempt (``wait:
cluster``: queued on the scheduler), so an item retried on another worker has each attempt
on its own worker's process. Items and nodes that ran on this machine are where they
always are.

Perfetto names a track after its first slice (``square[0]`` for the lanes of ``square``).
``args`` carry the path, the kind, the iteration index and item, the status, attempts and
error. Warnings, races and pauses are instant events (``n``) on the track of the slice they
happened in. ``ts`` is in microseconds since the run started.
"""

from __future__ import annotations

import heapq
import re
from collections.abc import Iterable, Iterator
from typing import Any

from ..events import Event
from .spans import Mark, Span, json_text, walk

CATEGORY = "pflow"
_VISIT = re.compile(r"#\d+")
_ITERATION = re.compile(r"(?<=\.iteration_)\d+")


def trace_events(header: dict[str, Any], events: Iterable[Event],
                 counts: dict[str, int] | None = None, *, text_limit: int = 1000) -> Iterator[dict[str, Any]]:
    """The Trace Event dicts of a run: metadata first, then ``b``/``e``/``n`` in time order.

    ``header`` is the trace's header (flow name, pid), ``events`` its events in order;
    ``counts`` gets the spans per kind (see :func:`~.spans.walk`). Item values and inputs
    go in ``args`` as JSON text cut at ``text_limit`` characters.
    """
    pid = header.get("pid")
    pid = pid if isinstance(pid, int) and not isinstance(pid, bool) and pid >= 0 else 1
    flow = str(header.get("flow_name") or "flow")
    yield {"ph": "M", "name": "process_name", "pid": pid, "tid": pid, "ts": 0,
           "args": {"name": f"pflow-tui: {flow}"}}
    yield {"ph": "M", "name": "thread_name", "pid": pid, "tid": pid, "ts": 0, "args": {"name": flow}}
    tracks = _Tracks(pid)
    for phase, span, mark in walk(events, counts):
        if phase == "begin":
            assert span is not None
            if span.worker is not None and span.worker not in tracks.worker_pids:
                yield from tracks.add_worker(span.worker)
            span.track = tracks.place(span)
            yield _event("b", span, span.start, tracks.pids[span.track], tracks.ids[span.track],
                         _begin_args(span, text_limit))
        elif phase == "end":
            assert span is not None
            if span.track < 0:
                continue  # cut short when the slice it was nested in ended (see _Tracks.end)
            track_id, track_pid = tracks.ids[span.track], tracks.pids[span.track]
            for cut in tracks.end(span):
                yield _event("e", cut, span.end, track_pid, track_id, {"status": "unfinished", "note":
                             "still running when the slice it is nested in ended"})
            yield _event("e", span, span.end, track_pid, track_id, _end_args(span))
        else:
            assert mark is not None
            track = span.track if span is not None and span.track >= 0 else 0
            yield {"ph": "n", "cat": CATEGORY, "id2": tracks.ids[track], "name": mark.kind,
                   "ts": _us(mark.t), "pid": tracks.pids[track], "tid": tracks.pids[track],
                   "args": _mark_args(mark, text_limit)}


NESTED = frozenset(("node", "attempt", "wait"))  # slices that nest in their container's track


class _Tracks:
    """Which track each slice goes on: nested in its container when that is on top of its
    track, else on a free track of its pool (see the module docs)."""

    def __init__(self, pid: int) -> None:
        self.pid = pid  # the run's process
        self.stacks: list[list[Span]] = [[]]  # the open slices of each track, outermost first
        self.pool_of: list[tuple[str, str] | None] = [None]  # track 0 is the run's
        self.free: dict[tuple[str, str], list[int]] = {}  # pool -> free tracks (a heap)
        self.ids = [{"local": "0x0"}]  # each track's id2 (local to its process)
        self.pids = [pid]  # each track's process: the run's, or a worker's
        self.worker_pids: dict[str, int] = {}  # a cluster worker's address -> its process

    def add_worker(self, worker: str) -> Iterator[dict[str, Any]]:
        """Give ``worker`` a process of its own (the run's pid + 1, + 2, ...); its metadata."""
        if not self.worker_pids:  # the run first, the workers after it
            yield {"ph": "M", "name": "process_sort_index", "pid": self.pid, "tid": self.pid, "ts": 0,
                   "args": {"sort_index": 0}}
        n = len(self.worker_pids) + 1
        pid = self.worker_pids[worker] = self.pid + n
        for name, args in (("process_name", {"name": f"worker {worker}"}), ("thread_name", {"name": worker}),
                           ("process_sort_index", {"sort_index": n})):
            yield {"ph": "M", "name": name, "pid": pid, "tid": pid, "ts": 0, "args": args}

    def place(self, span: Span) -> int:
        up = span.up
        on_top = up is not None and up.track >= 0 and self.stacks[up.track][-1:] == [up]
        if span.worker is not None:  # an attempt a cluster worker ran: on that worker's process
            track = self._take(("worker", span.worker), self.worker_pids[span.worker])
            span.name = _on_worker_name(span)
        elif span.kind == "run" and not self.stacks[0]:
            track = 0
        elif on_top and (span.kind in NESTED or (span.kind == "item" and _sequential(up))):
            track = up.track  # type: ignore[union-attr]
        else:
            track = self._take((span.kind, _shape(span.parent or span.path)), self.pid)
        self.stacks[track].append(span)
        return track

    def _take(self, pool: tuple[str, str], pid: int) -> int:
        free = self.free.setdefault(pool, [])
        if free:
            return heapq.heappop(free)
        self.stacks.append([])
        self.pool_of.append(pool)
        self.ids.append({"local": hex(len(self.ids))})
        self.pids.append(pid)
        return len(self.stacks) - 1

    def end(self, span: Span) -> list[Span]:
        """Take ``span`` off its track; returns the slices above it, which it cuts short
        (a nested slice must end first: the events never do otherwise, a damaged trace may)."""
        stack = self.stacks[span.track]
        cut: list[Span] = []
        while stack and stack[-1] is not span:
            above = stack.pop()
            above.track = -1
            cut.append(above)
        if stack:
            stack.pop()
        pool = self.pool_of[span.track]
        if not stack and pool is not None:
            heapq.heappush(self.free[pool], span.track)
        return cut


def _on_worker_name(span: Span) -> str:
    """``square[6]``, ``square[6] attempt 2``: an attempt on a worker's track, named for its
    item or node (the track has no container to say whose it is)."""
    owner = span.up.name if span.up is not None and span.up.path == span.path else span.path
    attempt = span.attrs.get("attempt")
    return owner if attempt in (1, None) else f"{owner} attempt {attempt}"


def _sequential(node: Span | None) -> bool:
    batch = node.attrs.get("batch") if node is not None else None
    return isinstance(batch, dict) and batch.get("parallel") is False


def _shape(path: str) -> str:
    """A path without visit numbers and iteration indices: the same batch node or group
    in every visit and iteration around it (one pool of tracks)."""
    return _ITERATION.sub("*", _VISIT.sub("", path))


def _us(t: float) -> float:
    return round(t * 1e6, 3)


def _event(ph: str, span: Span, t: float, pid: int, id2: dict[str, str],
           args: dict[str, Any]) -> dict[str, Any]:
    return {"ph": ph, "cat": CATEGORY, "id2": id2, "name": span.name,
            "ts": _us(t), "pid": pid, "tid": pid, "args": args}


def _begin_args(span: Span, limit: int) -> dict[str, Any]:
    args: dict[str, Any] = {"path": span.path, "kind": span.kind}
    for key, value in span.attrs.items():
        args[key] = json_text(value, limit) if key in ("item", "inputs") else value
    return args


def _end_args(span: Span) -> dict[str, Any]:
    args: dict[str, Any] = {"status": span.status, **span.result}
    if span.error is not None:
        args["error"] = {k: span.error[k] for k in ("type", "message") if k in span.error}
    return args


def _mark_args(mark: Mark, limit: int) -> dict[str, Any]:
    e = mark.event
    args: dict[str, Any] = {"path": e.get("path")}
    for key in ("message", "key", "reason"):
        if key in e:
            args[key] = e[key] if isinstance(e[key], str) else json_text(e[key], limit)
    if isinstance(e.get("paths"), list):
        paths = e["paths"]
        args["paths"] = paths[:100] + ([f"... and {len(paths) - 100} more"] if len(paths) > 100 else [])
    if e.get("breakpoint") is not None:
        args["breakpoint"] = json_text(e["breakpoint"], limit)
    return args
