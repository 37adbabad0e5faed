"""The spans of a run, walked from its events in one pass: what every export is made of.

A span is the run, a node (visit), a batch iteration, a branch of a parallel group, one
attempt of a node or item that may retry, or a wait before an attempt (for a rate limit, a
process slot): what a ``*.start`` event and the ``*.end`` event
at the same path delimit. :func:`walk` yields each span when it begins and when it ends,
and the point events (warnings, races, pauses) with the span they happened in, in the
order of the events. It holds only the spans still open (plus one small integer per path
seen), so a million-event trace streams through in bounded memory.

On a Dask cluster (``"executor": "cluster"``), an attempt that a worker started is a span
with :attr:`Span.worker`: from its ``attempt.start`` to its ``attempt.end`` when the node
may retry, else (no attempt events) from the ``wait.end`` that names the worker to the end
of its item or node. The wait before it stays with its item: it was spent queued on the
scheduler, not on the worker.

A trace cut short (``kill -9``) leaves spans open: they end at the time of the last event,
with status :data:`UNFINISHED`. An end without its start (a damaged trace) becomes a span
that started ``duration`` seconds before it ended.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

import orjson

from ..diff import UNFINISHED
from ..events import Event

#: Point events: shown where they happened, not spans of their own.
MARK_KINDS = ("warning", "race", "pause", "resume")

_BEGIN_FIELDS = {  # the fields of a start event kept on its span
    "run": ("flow", "source", "inputs", "rerun_of"),
    "node": ("node", "type", "batch", "cached"),
    "item": ("index", "item", "cached"),
    "branch": ("group", "index", "start"),
    "attempt": ("attempt", "worker"),
    "wait": ("on", "key", "limit", "attempt"),
}
_SPAN_EVENTS = {f"{kind}.{phase}": (kind, phase == "start")
                for kind in _BEGIN_FIELDS for phase in ("start", "end")}
_END_FIELDS = ("status", "attempts", "action", "progress", "last", "cached", "will_retry", "worker")
CLUSTER = "cluster"  # ``on`` of a wait for a cluster worker
_RENAME = {"start": "start_node", "last": "last_node"}  # branch fields, named for what they are


@dataclass(slots=True, eq=False)
class Span:
    """A run, node, iteration, branch or attempt, as its events delimit it."""

    kind: str  #: run, node, item, branch, attempt or wait (the first part of its events' kind)
    path: str  #: the events' path (an attempt or a wait has its node's or item's path)
    name: str  #: ``flow``, ``square``, ``review#2``, ``square[6]``, ``branch_1 (visualize)``, ``attempt 2``
    parent: str | None  #: the path of the span it belongs to, from the path; None for the run
    up: Span | None  #: the innermost span still open when it began that contains it (by path)
    start: float  #: seconds since the run started
    attrs: dict[str, Any]  #: what its start event says: node, type, index, item, batch, group ...
    end: float = 0.0
    status: str = UNFINISHED  #: ok, error, cancelled, skipped, or unfinished (never ended)
    result: dict[str, Any] = field(default_factory=dict)  #: what its end event says: attempts, action ...
    error: dict[str, Any] | None = None  #: {type, message, traceback?} when it failed
    order: int = 0  #: 1, 2, ... in the order spans began
    track: int = -1  #: for an exporter: where it placed the span
    worker: str | None = None  #: an attempt a cluster worker ran: the worker's address
    implied: bool = False  #: such an attempt without attempt events (begun by its wait's end)
    notes: list[Any] | None = None  #: for an exporter: what happened in it


@dataclass(slots=True)
class Mark:
    """A point event (warning, race, pause, resume), at its time."""

    t: float
    kind: str
    event: Event


Step = tuple[str, "Span | None", "Mark | None"]  # ("begin" | "end" | "mark", span, mark)


def walk(events: Iterable[Event], counts: dict[str, int] | None = None) -> Iterator[Step]:
    """``("begin", span, None)``, ``("end", span, None)`` and ``("mark", span or None, mark)``
    for the events in order; then ``("end", span, None)`` for every span still open, the
    innermost first, at the last event's time with status :data:`UNFINISHED`.

    ``counts`` (optional) gets the number of spans ended per kind, and under ``unfinished``
    how many of them (attempts aside) never ended.
    """
    opened: dict[str, Span] = {}  # run, node, item and branch spans by path
    attempts: dict[str, Span] = {}  # the attempt under way, by its node's or item's path
    waits: dict[str, Span] = {}  # the wait under way, by its node's or item's path
    seen: set[int] = set()  # hash(path) of every span begun: parents are looked up here
    order = 0
    last = 0.0
    tally = counts if counts is not None else {}
    span_event, mark_kinds = _SPAN_EVENTS.get, frozenset(MARK_KINDS)
    for e in events:
        if e.__class__ is not dict:
            continue
        kind, path, t = e.get("kind"), e.get("path"), e.get("t")
        if path.__class__ is not str or kind.__class__ is not str or not path:
            continue
        if (t.__class__ is float or t.__class__ is int) and t >= last:
            last = t
        else:  # missing, not a number, or earlier than the event before: keep the order
            t = last
        found = span_event(kind)  # type: ignore[arg-type]
        if found is not None:
            group, starts = found
            table = attempts if group == "attempt" else waits if group == "wait" else opened
            if starts:
                old = table.pop(path, None)
                if old is not None and old.implied and group == "attempt":
                    old.implied = False  # the attempt its wait's end began: the same span
                    old.attrs.update((k, e[k]) for k in _BEGIN_FIELDS["attempt"] if k in e)
                    table[path] = old
                    continue
                if old is not None:  # started again without ending: the first never ended
                    yield "end", _close(old, t, None, tally), None
                if group != "attempt" and path in attempts and attempts[path].implied:
                    yield "end", _close(attempts.pop(path), t, None, tally), None  # (damaged)
                order += 1
                span = table[path] = _begin(group, path, t, e, opened, seen, order)
                yield "begin", span, None
                continue
            if group != "attempt" and path in attempts and attempts[path].implied:
                # the work on a worker of a node or item that records no attempts ends with it
                yield "end", _close(attempts.pop(path), t, e, tally, whole=False), None
            span = table.pop(path, None)
            if span is None:  # an end without its start: it began `duration` before
                duration = e.get("duration")
                start = t - duration if isinstance(duration, (int, float)) and duration >= 0 else t
                order += 1
                span = _begin(group, path, start, e, opened, seen, order)
                yield "begin", span, None
            yield "end", _close(span, t, e, tally), None
            if group == "wait" and path not in attempts and _started_on_worker(span):
                order += 1  # a worker started the attempt: its work begins (see the module docs)
                work = attempts[path] = _begin("attempt", path, t, e, opened, seen, order)
                work.implied = True
                yield "begin", work, None
        elif kind in mark_kinds:
            yield "mark", _innermost(path, opened), Mark(t, kind, e)  # type: ignore[arg-type]
    rest = sorted((*opened.values(), *attempts.values(), *waits.values()), key=lambda s: s.order,
                  reverse=True)
    opened.clear()
    attempts.clear()
    waits.clear()
    for span in rest:
        yield "end", _close(span, max(last, span.start), None, tally), None


def _begin(kind: str, path: str, t: float, e: Event, opened: dict[str, Span], seen: set[int],
           order: int) -> Span:
    attrs = {_RENAME.get(k, k): e[k] for k in _BEGIN_FIELDS[kind] if k in e}
    cut = path.rfind(".")
    leaf = path[cut + 1:]
    if kind == "attempt":
        worker = attrs.get("worker")
        return Span(kind, path, f"attempt {attrs.get('attempt', '?')}", path,
                    _innermost(path, opened), t, attrs, order=order,
                    worker=worker if isinstance(worker, str) and worker else None)
    if kind == "wait":
        return Span(kind, path, wait_name(attrs), path, _innermost(path, opened), t, attrs,
                    order=order)
    seen.add(hash(path))
    parent: str | None = None  # the nearest enclosing path that is a span
    up: Span | None = None  # the nearest enclosing span still open
    p = path
    while (dot := p.rfind(".")) > 0:
        p = p[:dot]
        up = opened.get(p)
        if up is not None:
            parent = parent or p
            break
        if parent is None and hash(p) in seen:
            parent = p
    if kind == "node":
        node_id, _, visit = leaf.partition("#")
        attrs.setdefault("node", node_id)
        if visit.isdigit():
            attrs["visit"] = int(visit)
        name = leaf
    elif kind == "item":
        owner = path[:cut].rpartition(".")[2] if cut > 0 else ""
        attrs["node"] = owner.partition("#")[0]
        index = attrs.get("index", leaf.rpartition("_")[2])
        name = f"{owner}[{index}]"
    elif kind == "branch":
        index = attrs.get("index", leaf.rpartition("_")[2])
        start = attrs.get("start_node")
        name = f"branch_{index} ({start})" if isinstance(start, str) else f"branch_{index}"
    else:
        name = path
    return Span(kind, path, name, parent, up, t, attrs, order=order)


def _close(span: Span, t: float, e: Event | None, tally: dict[str, int], *, whole: bool = True) -> Span:
    """End ``span`` at ``t`` with what its end event ``e`` says (``whole=False``: only its
    status and error, an implied attempt ended by its item's or node's end)."""
    span.end = max(t, span.start)
    if e is not None:
        status = e.get("status")
        span.status = status if isinstance(status, str) else "ok"
        if whole:
            span.result = {_RENAME.get(k, k): e[k] for k in _END_FIELDS if k in e and k != "status"}
        error = e.get("error")
        if error is not None:
            span.error = error if isinstance(error, dict) else {"type": "Error", "message": str(error)}
    tally[span.kind] = tally.get(span.kind, 0) + 1
    if span.status == UNFINISHED and span.kind not in ("attempt", "wait"):
        tally[UNFINISHED] = tally.get(UNFINISHED, 0) + 1
    return span


def _started_on_worker(wait: Span) -> bool:
    """The wait ended because a cluster worker started the attempt (its ``wait.end`` names it)."""
    worker = wait.result.get("worker")
    return (wait.attrs.get("on") == CLUSTER and wait.status == "ok" and isinstance(worker, str)
            and bool(worker))


def wait_name(attrs: dict[str, Any]) -> str:
    """``wait: rate limit 'llm'``, ``wait: a process``, ``wait: a cluster worker``: what a wait
    waits for."""
    on, key = attrs.get("on"), attrs.get("key")
    if on == "processes":
        return "wait: a process"
    if on == CLUSTER:
        return "wait: a cluster worker"
    if isinstance(key, str):
        return f"wait: rate limit {key!r}"
    return f"wait: {on}" if isinstance(on, str) else "wait"


def _innermost(path: str, opened: dict[str, Span]) -> Span | None:
    """The open span at ``path`` or at the nearest enclosing path, if any."""
    p = path
    while p:
        found = opened.get(p)
        if found is not None:
            return found
        p = p[: max(p.rfind("."), 0)]
    return None


def json_text(value: Any, limit: int) -> str:
    """``value`` as compact JSON text, cut at ``limit`` characters (saying how long it was)."""
    try:
        text = orjson.dumps(value).decode()
    except (TypeError, orjson.JSONEncodeError):
        text = repr(value)
    return cut(text, limit)


def cut(text: str, limit: int) -> str:
    """``text``, or its first ``limit`` characters and how long it was."""
    return text if len(text) <= limit else f"{text[:limit]}… ({len(text)} characters)"
