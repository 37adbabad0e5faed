"""A ``workflow`` node on a Dask cluster: each attempt runs its whole child flow on a worker.

The run sends :func:`nested_job`: the child flow (pickled once per node, cached on the
worker by its digest), the node's resolved params and the item's path. On the worker
(:func:`run_child`) the child runs as it would here, in an event loop of its own, with its
events stamped at the **same paths** as a local run (``flow.stage.iteration_3.read``). Its
nodes run on that worker: where they would take a worker process or the cluster, a thread
of the worker (it is that process already); the gate, a re-run's cache and the outer flow's
rate limits stay on the run's machine and do not reach inside.

**Events.** The worker collects the child's events and sends them every
:data:`FLUSH_EVERY` seconds (and at the end) through the scheduler's event stream, as
``("events", key, n, pickled (events, extras))``: chunk ``n`` of the task ``key``. The run
(:class:`Relay`) emits them in chunk order (a chunk that comes early waits for the ones
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

import asyncio
import contextlib
import hashlib
import pickle
import threading
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from ..trace import events as ev

if TYPE_CHECKING:
    from ..ir.spec import FlowSpec
    from .execution import Execution
    from .work import Call, Work

NESTED = "workflow"  # the first field of a nested job (a node job's is its type's name)
FLUSH_EVERY = 0.01  # seconds between the worker's chunks of events

# --- on this machine: the job, and the events coming back -----------------------------------


def nested_job(work: Work, call: Call) -> tuple[Any, ...]:
    """The plain-data job of one attempt of a ``workflow`` node on a worker."""
    from ..problems import FlowError
    from .nested import child_inputs, note_secrets

    child = work.flow.children[work.spec.id]
    blob = getattr(work, "_child_blob", None)
    if blob is None:
        data = pickle.dumps(child, pickle.HIGHEST_PROTOCOL)
        blob = work._child_blob = (hashlib.blake2b(data, digest_size=16).hexdigest(), data)  # type: ignore[attr-defined]
    with contextlib.suppress(FlowError):  # (else the worker says so, as the node's error)
        note_secrets(work.ex, child, child_inputs(child, call.params))  # before its events come
    visits = getattr(call, "visits", None) or {}
    return (NESTED, blob[0], blob[1], call.params, call.path, call.attempt, call.index,
            call.base_dir, dict(visits))


_ENDS = {ev.NODE_START: ev.NODE_END, ev.ITEM_START: ev.ITEM_END,
         ev.ATTEMPT_START: ev.ATTEMPT_END, ev.WAIT_START: ev.WAIT_END}
_STARTS = {end: start for start, end in _ENDS.items()}


class Relay:
    """The events of one call's child, from its worker into the run (see the module)."""

    __slots__ = ("call", "early", "ex", "key", "next", "open")

    def __init__(self, ex: Execution, call: Call) -> None:
        self.ex, self.call = ex, call
        self.key = ""
        self.next = 0
        self.early: dict[int, bytes] = {}
        #: the steps begun and not ended: (path, start kind) -> (its start's fields, when)
        self.open: dict[tuple[str, str], tuple[dict[str, Any], float]] = {}
        if getattr(call, "visits", None) is None:
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
        visits = self.call.visits  # type: ignore[attr-defined]
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


# --- on the worker ------------------------------------------------------------------------

_children: dict[str, FlowSpec] = {}  # digest -> the child flow (a worker runs many items of one)


class Outbox:
    """A task's events on the worker, sent to the run in numbered chunks."""

    __slots__ = ("events", "key", "n", "send", "topic")

    def __init__(self, send: Callable[[str, Any], None], topic: str, key: str) -> None:
        self.send, self.topic, self.key = send, topic, key
        self.events: list[dict[str, Any]] = []
        self.n = 0

    def __call__(self, event: dict[str, Any]) -> None:  # an Emitter's sink
        self.events.append(event)

    def flush(self, extras: dict[str, Any] | None = None) -> None:
        if not self.events and not extras:
            return
        events, self.events = self.events, []
        self.send(self.topic, ("events", self.key, self.n, _dumps(events, extras)))
        self.n += 1


def _dumps(events: list[dict[str, Any]], extras: dict[str, Any] | None) -> bytes:
    try:
        return pickle.dumps((events, extras), pickle.HIGHEST_PROTOCOL)
    except Exception:  # a value that does not pickle: as the trace would show it (JSON)
        import orjson

        from ..trace.writer import dumps

        return pickle.dumps(([orjson.loads(dumps(e)) for e in events], extras),
                            pickle.HIGHEST_PROTOCOL)


def run_child(send: Callable[[str, Any], None], topic: str, key: str,
              job: tuple[Any, ...]) -> tuple[Any, ...]:
    """One attempt of a ``workflow`` node on this worker: ``("ok", outputs)`` or ``("error",
    type name, message, traceback)``, as :func:`.pool_worker.run_job`; its events go out
    through ``send(topic, message)`` (the worker's ``log_event``) as they happen."""
    _, digest, blob, params, path, attempt, index, base_dir, visits = job
    outbox = Outbox(send, topic, key)
    tally: list[Any] = []
    try:
        answer = asyncio.run_coroutine_threadsafe(
            _child(digest, blob, params, path, attempt, index, base_dir, visits, outbox, tally),
            _loop()).result()
    except Exception as exc:  # (compiling the child failed: pflow-tui differs on this worker)
        answer = _error(exc)
    outbox.flush(tally[0] if tally else None)
    return answer


_lock = threading.Lock()
_serving: list[asyncio.AbstractEventLoop] = []


def _loop() -> asyncio.AbstractEventLoop:
    """This worker process's event loop for nested flows, in a thread of its own, started
    by the first one. Kept, with the threads it runs blocking nodes in, for the next tasks:
    a loop per task made its threads anew each time (~1 ms a task)."""
    with _lock:
        if not _serving:
            loop = asyncio.new_event_loop()
            ready = threading.Event()

            def serve() -> None:
                asyncio.set_event_loop(loop)
                loop.run_until_complete(_forever(ready))  # (anyio's root task: threads stay)

            threading.Thread(target=serve, name="pflow-tui-nested-flows", daemon=True).start()
            ready.wait()
            _serving.append(loop)
        return _serving[0]


async def _forever(ready: threading.Event) -> None:
    ready.set()
    await asyncio.Event().wait()


async def _child(digest: str, blob: bytes, params: dict[str, Any], path: str, attempt: int,
                 index: int | None, base_dir: str, visits: dict[tuple[str, str], int],
                 outbox: Outbox, tally: list[Any]) -> tuple[Any, ...]:
    import anyio

    from ..nodes.base import RunContext
    from ..registry import registry
    from ..trace.events import Emitter
    from .execution import Execution
    from .flow import compile_flow
    from .nested import workflow_type

    child = _children.get(digest)
    if child is None:
        if len(_children) > 32:
            _children.clear()
        child = _children[digest] = pickle.loads(blob)
    ex = Execution(child, Emitter([outbox]), {}, {})
    ex.on_worker = True
    ex.base_dir = base_dir
    ex.visits.update(visits)
    types = registry()
    node_type = workflow_type(child, compile_flow(child, ex, types), ex, types)
    ctx = RunContext(path, attempt, index, base_dir)
    try:
        async with anyio.create_task_group() as tg:
            async def flusher() -> None:
                while True:
                    await anyio.sleep(FLUSH_EVERY)
                    outbox.flush()

            tg.start_soon(flusher)
            try:
                out = await node_type.run(params, ctx)  # type: ignore[misc]
                answer: tuple[Any, ...] = ("ok", _plain(out))
                pickle.dumps(answer, pickle.HIGHEST_PROTOCOL)
            except Exception as exc:
                answer = _error(exc)
            tg.cancel_scope.cancel()
    finally:
        await ex.aclose()
        tally.append({"usage": (ex.usage.models, ex.usage.calls) if ex.usage.calls else None,
                      "template_errors": ex.shared.get("__template_errors__")})
    return answer


def _plain(out: dict[str, Any]) -> dict[str, Any]:
    """The child's outputs with its spilled lists (a batch with ``batch_size``, in a folder
    of this worker) read into plain lists: they go back to the run."""
    from .spill import LazyList

    return {k: (list(v) if isinstance(v, LazyList) else v) for k, v in out.items()}


def _error(exc: BaseException) -> tuple[str, str, str, str]:
    import traceback

    return ("error", type(exc).__name__, str(exc) or type(exc).__name__,
            "".join(traceback.format_exception(exc)))
