"""A ``workflow`` node on a Dask cluster: each attempt runs its whole child flow on a worker.

The run sends :func:`nested_job`: the child flow (pickled once per node, cached on the
worker by its digest), the node's resolved params and the item's path. On the worker
(:func:`.cluster_child.run_child`) the child runs as it would here, in an event loop of its own, with its
events stamped at the **same paths** as a local run (``flow.stage.iteration_3.read``). Its
nodes run on that worker: where they would take a worker process or the cluster, a thread
of the worker (it is that process already); the gate, a re-run's cache and the outer flow's
rate limits stay on the run's machine and do not reach inside.

**Events.** The worker collects the child's events and sends them in chunks (within
:data:`.cluster_child.FLUSH_EVERY` seconds, and at the end) through the scheduler's event
stream, as ``("events", key, n, pickled (events, extras))``: chunk ``n`` of the task
``key``. The run (:class:`Relay`) emits them in chunk order (a chunk that comes early waits for the ones
before it) through its own emitter, so the trace, the debugger, the redaction and a
re-run see them as a local run's. ``extras`` (last chunk) carries the child's llm usage
and its unresolved-template notes, added to the run's.

**Lost attempts.** When the attempt does not end on its worker (the worker died, the item
was cancelled), the run ends the child's steps that had started and not ended, innermost
first: ``status: "cancelled"`` for a cancel (as locally), ``"error"`` with the attempt's
error (``WorkerLost``) otherwise. A retry runs the child again with the visits of the
attempts before it, so its steps get new paths (``read#2``), as a local retry's do: the
events of an attempt never mix with another's.
"""

from __future__ import annotations

import contextlib
import hashlib
import pickle
from typing import Any

from ..problems import FlowError
from ..trace import events as ev
from .inputs import child_inputs, note_secrets

# (the run's objects are duck-typed here: this module is imported by cluster.py, which the
# compiled nodes import; the worker's side, cluster_child.py, is named in the job instead)

NESTED = "workflow"  # the first field of a nested job (a node job's is its type's name)
CHILD = "pflow_tui.engine.run.cluster_child:run_child"  # what runs it on the worker, by name

# --- on this machine: the job, and the events coming back -----------------------------------


def nested_job(work: Any, call: Any) -> tuple[Any, ...]:
    """The plain-data job of one attempt of a ``workflow`` node (``work``, a
    :class:`.work.Work`; ``call``, its :class:`.work.Call`) on a worker."""
    child = work.flow.children[work.spec.id]
    blob = getattr(work, "_child_blob", None)
    if blob is None:
        data = pickle.dumps(child, pickle.HIGHEST_PROTOCOL)
        blob = work._child_blob = (hashlib.blake2b(data, digest_size=16).hexdigest(), data)
    with contextlib.suppress(FlowError):  # (else the worker says so, as the node's error)
        note_secrets(work.ex.redactor, child, child_inputs(child, call.params))  # before its events
    return (NESTED, CHILD, blob[0], blob[1], call.params, call.path, call.attempt, call.index,
            call.base_dir, dict(call.visits or {}))


_ENDS = {ev.NODE_START: ev.NODE_END, ev.ITEM_START: ev.ITEM_END,
         ev.ATTEMPT_START: ev.ATTEMPT_END, ev.WAIT_START: ev.WAIT_END}
_STARTS = {end: start for start, end in _ENDS.items()}


class Relay:
    """The events of one call's child, from its worker into the run (see the module)."""

    __slots__ = ("call", "early", "ex", "key", "next", "open")

    def __init__(self, ex: Any, call: Any) -> None:
        """``ex``: the run's :class:`.execution.Execution`; ``call``: the :class:`.work.Call`."""
        self.ex, self.call = ex, call
        self.key = ""
        self.next = 0
        self.early: dict[int, bytes] = {}
        #: the steps begun and not ended: (path, start kind) -> (its start's fields, when)
        self.open: dict[tuple[str, str], tuple[dict[str, Any], float]] = {}
        if call.visits is None:
            call.visits = {}

    def chunk(self, key: str, n: int, data: bytes) -> None:
        """Chunk ``n`` of the task ``key``: emitted when the chunks before it have been."""
        if key != self.key:  # (a task submitted again has chunks of its own)
            self.key, self.next, self.early = key, 0, {}
        if n != self.next:
            self.early[n] = data
            return
        self._apply(data)
        self.next += 1
        while self.next in self.early:
            self._apply(self.early.pop(self.next))
            self.next += 1

    def finish(self) -> None:
        """The attempt's answer is in: emit what is still waiting for a chunk that never came."""
        for n in sorted(self.early):
            self._apply(self.early.pop(n))

    def _apply(self, data: bytes) -> None:
        events, extras = pickle.loads(data)
        ex = self.ex
        emit, opened = ex.emit, self.open
        for e in events:
            kind = e.pop("kind")
            path = e.pop("path")
            e.pop("seq", None)
            e.pop("t", None)
            if kind in _ENDS:
                opened[(path, kind)] = (e, ex.now())
                if kind == ev.NODE_START:
                    self._visited(path, e.get("node"))
            elif kind in _STARTS:
                opened.pop((path, _STARTS[kind]), None)
            emit(kind, path, e)
        if extras:
            usage = extras.get("usage")
            if usage:
                ex.usage.merge(*usage)
            notes = extras.get("template_errors")
            if notes:
                ex.shared.setdefault("__template_errors__", []).extend(notes)

    def _visited(self, path: str, node: Any) -> None:
        """Count a visit of ``node`` in its frame, as the worker did (for a retry's paths)."""
        if not isinstance(node, str):
            return
        head, sep, visit = path.rpartition("#")
        if not (sep and visit.isdigit() and head.endswith("." + node)):
            head, visit = path, "1"
        key = (head[: -len(node) - 1], node)
        visits = self.call.visits
        visits[key] = max(visits.get(key, 0), int(visit))

    def close(self, status: str, error: dict[str, Any] | None = None) -> None:
        """End the child's steps that began and did not end (innermost first)."""
        ex = self.ex
        for (path, kind), (start, t0) in reversed(list(self.open.items())):
            fields: dict[str, Any]
            if kind == ev.NODE_START:
                fields = {"node": start.get("node")}
            elif kind == ev.ITEM_START:
                fields = {"index": start.get("index")}
            elif kind == ev.ATTEMPT_START:
                fields = {"attempt": start.get("attempt")}
            else:
                fields = {k: start[k] for k in ("on", "attempt") if k in start}
            fields["status"] = status
            fields["duration"] = ex.now() - t0
            if kind == ev.ITEM_START:
                fields["attempts"] = 1
            if error is not None and kind != ev.WAIT_START:  # (the fields an error's end has)
                if kind == ev.NODE_START:
                    fields["action"] = "error"
                if kind in (ev.NODE_START, ev.ITEM_START):
                    fields["outputs"] = {"error": error.get("message", "")}
                elif kind == ev.ATTEMPT_START:
                    fields["will_retry"] = False
                fields["error"] = error
            ex.emit(_ENDS[kind], path, fields)
        self.open.clear()
