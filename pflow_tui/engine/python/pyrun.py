"""One traced run of a PocketFlow program: its scopes, units (node visits and items), store
snapshots and events (:class:`Run`). The wrappers of :mod:`.pytrace` find the current run,
scope and unit in the context variables :data:`RUN`, :data:`SCOPE` and :data:`UNIT`.
"""

from __future__ import annotations

import contextvars
import os
import sys
import threading
import traceback
from collections.abc import Callable
from pathlib import Path
from time import perf_counter
from typing import Any, Protocol

import orjson
from pocketflow import BaseNode, BatchFlow, Flow

from ..paths import iteration_path
from ..run.labels import item_label
from ..trace import events as ev
from ..trace.events import Emitter, Sink, error_info
from ..trace.redact import Redactor, environment_secrets
from ..trace.writer import TraceWriter, dumps
from .pygraph import PyGraph, describe, is_batch, is_parallel, qualname, snake

RUN: contextvars.ContextVar[Run | None] = contextvars.ContextVar("pflow_tui_run", default=None)
SCOPE: contextvars.ContextVar[Scope | None] = contextvars.ContextVar("pflow_tui_scope", default=None)
UNIT: contextvars.ContextVar[Unit | None] = contextvars.ContextVar("pflow_tui_unit", default=None)
#: "no value given" (None is a value)
MISSING: Any = object()
#: the tracer's own files: their frames are left out of the tracebacks it records
_OWN = frozenset(os.path.join(os.path.dirname(os.path.abspath(__file__)), name)
                 for name in ("pytrace.py", "pyrun.py"))


class TracerSettings(Protocol):
    """What a run takes from its :class:`~.pytrace.Tracer`."""

    name: str | None
    source: str | None
    inputs: dict[str, Any]
    replace: bool
    sinks: list[Sink]
    gate: Any
    runs: list[Run]

    def next_path(self, name: str) -> Path: ...


# --- what a run is made of -------------------------------------------------------------------------

class Scope:
    """Where nodes run: a flow's body, a batch flow's iteration, or a node's own code."""

    __slots__ = ("graph", "path", "visits")

    def __init__(self, path: str, graph: PyGraph | None) -> None:
        self.path = path
        self.graph = graph
        self.visits: dict[str, int] = {}


class Batch:
    """The items of a running batch node: which index an item has (by identity)."""

    __slots__ = ("next", "positions")

    def __init__(self, items: Any) -> None:
        self.next = 0
        self.positions: dict[int, list[int]] | None = None
        if isinstance(items, (list, tuple)):
            self.positions = {}
            for i in range(len(items) - 1, -1, -1):
                self.positions.setdefault(id(items[i]), []).append(i)
            self.next = len(items)

    def index_of(self, item: Any) -> int:
        if self.positions is not None:
            left = self.positions.get(id(item))
            if left:
                return left.pop()
        self.next += 1
        return self.next - 1


class Unit:
    """One node visit, or one item of a batch node or batch flow."""

    __slots__ = ("attempts", "batch", "child", "failed_last", "in_attempt", "index", "nid",
                 "obj", "path", "result", "retries", "t0")

    def __init__(self, obj: Any, path: str, nid: str, t0: float, index: int | None = None,
                 child: PyGraph | None = None) -> None:
        self.obj = obj
        self.path = path
        self.nid = nid
        self.t0 = t0
        self.index = index  # None: a node visit; else the item's index
        self.child = child  # a flow's graph (its nodes nest under this unit)
        self.batch: Batch | None = None
        self.attempts = 0
        self.failed_last: dict[str, str] | None = None  # the last attempt's error
        self.in_attempt = False
        self.result: Any = MISSING
        retries = getattr(obj, "max_retries", 1)
        self.retries = retries if isinstance(retries, int) else 1


def as_data(value: Any) -> Any:
    """``value`` as JSON data, copied now (the program may change it later)."""
    if value is None or type(value) in (str, int, float, bool):
        return value
    return orjson.loads(dumps(value))


def _key(key: Any) -> str:
    return key if isinstance(key, str) else str(key)


def status_of(exc: BaseException) -> str:
    return "error" if isinstance(exc, Exception) else "cancelled"


def error_of(exc: BaseException) -> dict[str, str]:
    """An exception as event data, its traceback without the tracer's own frames."""
    info = error_info(exc, with_traceback=False)
    if exc.__traceback__ is not None:
        te = traceback.TracebackException.from_exception(exc)
        te.stack = traceback.StackSummary.from_list([f for f in te.stack if f.filename not in _OWN])
        info["traceback"] = "".join(te.format())
    return info


class Run:
    """One traced top-level run: its graph, its events, its trace file."""

    def __init__(self, tracer: TracerSettings, obj: BaseNode, shared: Any) -> None:
        name = tracer.name or snake(type(obj).__name__)
        source = tracer.source or qualname(obj)
        self.graph = describe(obj, name)
        self.flat = isinstance(obj, Flow) and not isinstance(obj, BatchFlow)
        self.shared = shared
        self.snapshot: dict[Any, bytes] = {}
        self.dirty = True  # whether the program may have changed the store since it was compared
        self.root = Scope(name, self.graph)
        self.path = tracer.next_path(name)
        # secret-named keys (api_key, token ...) and the values found under them are redacted
        # as in a flow's run (see redact.py)
        self.redactor = Redactor()
        environment_secrets(self.redactor)
        self.writer = TraceWriter(self.path, {
            "flow_name": name, "source": source, "flow": self.graph.ir(),
            "children": self.graph.children_ir(), "inputs": self.redactor.scrub(tracer.inputs),
            "pid": os.getpid(), "python": sys.version.split()[0], "base_dir": str(Path.cwd()),
            "target": source}, replace=tracer.replace)
        self.emitter = Emitter([self.writer.write, *tracer.sinks], redact=self.redactor.event)
        self.emit = self.emitter.emit
        self.gate = tracer.gate
        if self.gate is not None:  # the gate reports pauses from the event loop's thread
            lock = threading.Lock()
            emit = self.emitter.emit

            def locked(kind: str, path: str, fields: dict[str, Any] | None = None) -> Any:
                with lock:
                    return emit(kind, path, fields)

            self.emit = locked
        self.error_path: str | None = None
        self.ended = False
        self.elapsed = 0.0
        tracer.runs.append(self)
        self._tokens: tuple[contextvars.Token[Any], ...] = ()
        self.emit(ev.RUN_START, name, {"flow": name, "inputs": tracer.inputs, "source": source})
        if self.gate is not None:
            in_loop(self.gate.attach, self.emit, name)

    # run boundaries
    def begin(self) -> None:
        self._tokens = (RUN.set(self), SCOPE.set(self.root), UNIT.set(None))

    def end(self, result: Any = None, exc: BaseException | None = None) -> None:
        run_token, scope_token, unit_token = self._tokens
        UNIT.reset(unit_token)
        SCOPE.reset(scope_token)
        RUN.reset(run_token)
        if self.ended:  # aborted meanwhile (see abort)
            return
        self.ended = True
        self.sync_store(self.root.path)
        duration = self.elapsed = self.emitter.now()
        fields: dict[str, Any] = {"status": "ok" if exc is None else status_of(exc),
                                  "duration": duration, "outputs": {}}
        error = None
        if exc is None:
            fields["outputs"] = {"action": as_data(result)} if result is not None else {}
        else:
            error = {**error_of(exc), **({"path": self.error_path} if self.error_path else {})}
            fields["error"] = error
        if self.gate is not None:
            self.gate.detach()
        self.emit(ev.RUN_END, self.root.path, fields)
        status = "ok" if exc is None else "failed" if isinstance(exc, Exception) else "interrupted"
        store = self.shared if isinstance(self.shared, dict) else {}
        self.writer.finish(status, outputs=self.redactor.scrub(fields["outputs"]),
                           store=self.redactor.scrub(store), error=self.redactor.scrub(error))

    def abort(self, error: dict[str, Any], status: str = "interrupted") -> None:
        """End the trace now (``interrupted`` or ``failed``), though the program may still run."""
        if self.ended:
            return
        self.ended = True
        self.elapsed = self.emitter.now()
        if self.gate is not None:
            self.gate.detach()
        self.emit(ev.RUN_END, self.root.path, {
            "status": "cancelled" if status == "interrupted" else "error", "duration": self.elapsed,
            "outputs": {}, "error": error})
        store = self.shared if isinstance(self.shared, dict) else {}
        self.writer.finish(status, outputs={}, store=self.redactor.scrub(store),
                           error=self.redactor.scrub(error))

    # the store
    def sync_store(self, path: str) -> None:
        """Emit a ``store.write`` for each top-level key of ``shared`` that changed."""
        shared = self.shared
        if not isinstance(shared, dict):
            return
        snap = self.snapshot
        try:
            items = list(shared.items())
        except RuntimeError:  # another thread is changing it: next boundary
            return
        for key, value in items:
            raw = dumps(value)
            if snap.get(key) != raw:
                snap[key] = raw
                self.emit(ev.STORE_WRITE, path, {"key": _key(key), "value": orjson.loads(raw)})
        if len(snap) != len(items):
            for key in [k for k in snap if k not in shared]:
                del snap[key]
                self.emit(ev.STORE_WRITE, path, {"key": _key(key), "value": None, "deleted": True})

    # nodes
    def node_start(self, obj: BaseNode) -> tuple[Unit, Scope]:
        scope = SCOPE.get() or self.root
        graph = scope.graph
        if graph is None:  # nodes of a flow met only at run time
            graph = scope.graph = PyGraph(scope.path.rpartition(".")[2])
        nid = graph.id_of(obj) or graph.add(obj)
        visit = scope.visits[nid] = scope.visits.get(nid, 0) + 1
        path = f"{scope.path}.{nid}" if visit == 1 else f"{scope.path}.{nid}#{visit}"
        if self.dirty:  # code ran since the store was last compared (a flow's prep, a sibling)
            self.sync_store(scope.path)
        self.dirty = True
        fields: dict[str, Any] = {"node": nid, "type": type(obj).__name__}
        if obj.params:
            fields["params"] = as_data(obj.params)
        if is_batch(obj):
            fields["batch"] = {"count": None, "parallel": is_parallel(obj), "max_concurrent": None,
                               "error_handling": "fail_fast", "as": "item"}
        self.emit(ev.NODE_START, path, fields)
        child = graph.children.get(nid) if isinstance(obj, Flow) else None
        if isinstance(obj, Flow) and child is None:
            child = graph.children[nid] = PyGraph(nid)
        unit = Unit(obj, path, nid, perf_counter(), child=child)
        return unit, Scope(path, child)

    def node_end(self, unit: Unit, result: Any = None, exc: BaseException | None = None) -> None:
        self.sync_store(unit.path)
        self.dirty = False
        duration = perf_counter() - unit.t0
        fields: dict[str, Any] = {"node": unit.nid, "status": "ok" if exc is None else status_of(exc),
                                  "duration": duration, "attempts": max(unit.attempts, 1)}
        error = None
        if exc is None:
            fields["action"] = result if isinstance(result, str) and result else "default"
            outputs: dict[str, Any] = {}
            if unit.result is not MISSING:
                outputs["exec"] = as_data(unit.result)
            if result is not None and not isinstance(result, str):
                outputs["returned"] = as_data(result)
            fields["outputs"] = outputs
            if unit.failed_last:  # exec_fallback gave the result
                fields["fallback"] = unit.failed_last
        else:
            error = fields["error"] = error_of(exc)
            if isinstance(exc, Exception):  # the schema's shape of a failed node: it raised
                fields["action"], fields["outputs"] = "error", {}
            if self.error_path is None:
                self.error_path = unit.path
        self.emit(ev.NODE_END, unit.path, fields)
        if self.gate is not None:
            self.gate.after(unit.path, unit.nid, None, fields["status"], duration, error)

    # items
    def item_start(self, unit: Unit, index: int, item: Any, params: Any = MISSING) -> Unit:
        path = iteration_path(unit.path, index)
        data = as_data(item)
        fields: dict[str, Any] = {"index": index, "label": item_label(data), "item": data}
        if params is not MISSING:
            fields["params"] = as_data(params)
        self.emit(ev.ITEM_START, path, fields)
        return Unit(unit.obj, path, unit.nid, perf_counter(), index=index, child=unit.child)

    def item_end(self, item: Unit, result: Any = None, exc: BaseException | None = None) -> None:
        duration = perf_counter() - item.t0
        fields: dict[str, Any] = {"index": item.index, "status": "ok" if exc is None else status_of(exc),
                                  "duration": duration, "attempts": max(item.attempts, 1)}
        error = None
        if exc is None:
            fields["outputs"] = {"result": as_data(result)}
            if item.failed_last:
                fields["fallback"] = item.failed_last
        else:
            error = fields["error"] = error_of(exc)
            if isinstance(exc, Exception):
                fields["outputs"] = {}
            if self.error_path is None:
                self.error_path = item.path
        self.emit(ev.ITEM_END, item.path, fields)
        if self.gate is not None:
            self.gate.after(item.path, item.nid, item.index, fields["status"], duration, error)

    def edge(self, curr: Any, nxt: Any, action: Any) -> None:
        scope = SCOPE.get()
        graph = scope.graph if scope is not None else None
        if graph is None:
            return
        src, dst = graph.id_of(curr), graph.id_of(nxt)
        if src is None or dst is None:
            return
        visit = scope.visits.get(src, 1)
        path = f"{scope.path}.{src}" if visit <= 1 else f"{scope.path}.{src}#{visit}"
        self.emit(ev.EDGE, path, {"from": src, "to": dst,
                                  "action": action if isinstance(action, str) and action else "default"})


# --- gate calls from sync code -----------------------------------------------------------------------

def in_loop(fn: Callable[..., Any], *args: Any) -> None:
    """Call ``fn`` in the event loop's thread: here, or from the anyio worker thread a sync
    program runs in."""
    # imported here for start-up time: only gate calls from sync code need the loop machinery
    import asyncio

    import anyio.from_thread

    try:
        asyncio.get_running_loop()
    except RuntimeError:
        anyio.from_thread.run_sync(fn, *args)
    else:
        fn(*args)


__all__ = ["MISSING", "RUN", "SCOPE", "UNIT", "Batch", "Run", "Scope", "TracerSettings", "Unit", "as_data",
           "error_of", "in_loop", "status_of"]
