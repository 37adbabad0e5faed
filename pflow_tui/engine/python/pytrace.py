"""Trace any PocketFlow program, unchanged: ``with pflow_tui.trace("run.json"): flow.run(shared)``.

While a :class:`Tracer` is active, a handful of PocketFlow's own methods are wrapped at
class level (``_run``, ``_run_async``, ``_exec``, ``_orch``, ``_orch_async``,
``get_next_node``), and, the first time a node class runs, the ``exec`` /
``exec_async`` its instances use. Each wrapper calls the original and emits events
around it, so the program does exactly what it did: same calls in the same order, same
return values, the same exceptions (not wrapped), the same warnings, instances and
classes untouched (``isinstance`` and ``copy.copy`` see what they saw). Outside a
tracer's context the wrappers pass straight through, and the last tracer to end puts
the original methods back.

Every top-level ``run``/``run_async`` inside the block is one traced run with its own
trace file; events are the engine's (:mod:`pflow_tui.engine.events`):

- ``node.start``/``node.end`` per node visit (a nested Flow is a node whose nodes nest
  under its path, a BatchFlow's iterations under ``<path>.iteration_<i>``);
- ``item.start``/``item.end`` per item of a BatchNode, AsyncBatchNode and
  AsyncParallelBatchNode, and per iteration of a BatchFlow and its async kinds;
- ``attempt.start``/``attempt.end`` per call of ``exec`` when a node may retry;
- ``edge`` per transition, ``store.write`` per change of a top-level key of ``shared``,
  found by comparing the store's keys (as JSON) at node boundaries. Writes made by
  nodes running at the same time are credited to the first of them to finish.

The graph comes from the objects (:mod:`pflow_tui.engine.python.pygraph`); paths address
nodes as the panes expect (``map_reduce.summarize.iteration_3``).
"""

from __future__ import annotations

import contextvars
import functools
import inspect
import os
import sys
import threading
import traceback
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from time import perf_counter
from typing import Any

import orjson
from pocketflow import (
    AsyncBatchFlow,
    AsyncBatchNode,
    AsyncFlow,
    AsyncNode,
    AsyncParallelBatchFlow,
    AsyncParallelBatchNode,
    BaseNode,
    BatchFlow,
    BatchNode,
    Flow,
    Node,
)

from .. import events as ev
from ..events import Emitter, Sink, error_info
from ..labels import item_label
from ..paths import iteration_path
from ..redact import Redactor, environment_secrets
from ..trace import TraceWriter, default_trace_path, dumps
from .pygraph import PyGraph, describe, is_batch, is_parallel, qualname, snake

_TRACER: contextvars.ContextVar[Tracer | None] = contextvars.ContextVar("pflow_tui_tracer", default=None)
_RUN: contextvars.ContextVar[_Run | None] = contextvars.ContextVar("pflow_tui_run", default=None)
_SCOPE: contextvars.ContextVar[_Scope | None] = contextvars.ContextVar("pflow_tui_scope", default=None)
_UNIT: contextvars.ContextVar[_Unit | None] = contextvars.ContextVar("pflow_tui_unit", default=None)
_HERE = os.path.abspath(__file__)
_MISSING = object()


# --- what a run is made of -------------------------------------------------------------------------

class _Scope:
    """Where nodes run: a flow's body, a batch flow's iteration, or a node's own code."""

    __slots__ = ("graph", "path", "visits")

    def __init__(self, path: str, graph: PyGraph | None) -> None:
        self.path = path
        self.graph = graph
        self.visits: dict[str, int] = {}


class _Batch:
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


class _Unit:
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
        self.batch: _Batch | None = None
        self.attempts = 0
        self.failed_last: dict[str, str] | None = None  # the last attempt's error
        self.in_attempt = False
        self.result: Any = _MISSING
        retries = getattr(obj, "max_retries", 1)
        self.retries = retries if isinstance(retries, int) else 1


def _data(value: Any) -> Any:
    """``value`` as JSON data, copied now (the program may change it later)."""
    if value is None or type(value) in (str, int, float, bool):
        return value
    return orjson.loads(dumps(value))


def _key(key: Any) -> str:
    return key if isinstance(key, str) else str(key)


def _status(exc: BaseException) -> str:
    return "error" if isinstance(exc, Exception) else "cancelled"


def error_of(exc: BaseException) -> dict[str, str]:
    """An exception as event data, its traceback without the tracer's own frames."""
    info = error_info(exc, with_traceback=False)
    if exc.__traceback__ is not None:
        te = traceback.TracebackException.from_exception(exc)
        te.stack = traceback.StackSummary.from_list([f for f in te.stack if f.filename != _HERE])
        info["traceback"] = "".join(te.format())
    return info


class _Run:
    """One traced top-level run: its graph, its events, its trace file."""

    def __init__(self, tracer: Tracer, obj: BaseNode, shared: Any) -> None:
        name = tracer.name or snake(type(obj).__name__)
        source = tracer.source or qualname(obj)
        self.graph = describe(obj, name)
        self.flat = isinstance(obj, Flow) and not isinstance(obj, BatchFlow)
        self.shared = shared
        self.snapshot: dict[Any, bytes] = {}
        self.dirty = True  # whether the program may have changed the store since it was compared
        self.root = _Scope(name, self.graph)
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
            _in_loop(self.gate.attach, self.emit, name)

    # run boundaries
    def begin(self) -> None:
        self._tokens = (_RUN.set(self), _SCOPE.set(self.root), _UNIT.set(None))

    def end(self, result: Any = None, exc: BaseException | None = None) -> None:
        run_token, scope_token, unit_token = self._tokens
        _UNIT.reset(unit_token)
        _SCOPE.reset(scope_token)
        _RUN.reset(run_token)
        if self.ended:  # aborted meanwhile (see abort)
            return
        self.ended = True
        self.sync_store(self.root.path)
        duration = self.elapsed = self.emitter.now()
        fields: dict[str, Any] = {"status": "ok" if exc is None else _status(exc),
                                  "duration": duration, "outputs": {}}
        error = None
        if exc is None:
            fields["outputs"] = {"action": _data(result)} if result is not None else {}
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
    def node_start(self, obj: BaseNode) -> tuple[_Unit, _Scope]:
        scope = _SCOPE.get() or self.root
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
            fields["params"] = _data(obj.params)
        if is_batch(obj):
            fields["batch"] = {"count": None, "parallel": is_parallel(obj), "max_concurrent": None,
                               "error_handling": "fail_fast", "as": "item"}
        self.emit(ev.NODE_START, path, fields)
        child = graph.children.get(nid) if isinstance(obj, Flow) else None
        if isinstance(obj, Flow) and child is None:
            child = graph.children[nid] = PyGraph(nid)
        unit = _Unit(obj, path, nid, perf_counter(), child=child)
        return unit, _Scope(path, child)

    def node_end(self, unit: _Unit, result: Any = None, exc: BaseException | None = None) -> None:
        self.sync_store(unit.path)
        self.dirty = False
        duration = perf_counter() - unit.t0
        fields: dict[str, Any] = {"node": unit.nid, "status": "ok" if exc is None else _status(exc),
                                  "duration": duration, "attempts": max(unit.attempts, 1)}
        error = None
        if exc is None:
            fields["action"] = result if isinstance(result, str) and result else "default"
            outputs: dict[str, Any] = {}
            if unit.result is not _MISSING:
                outputs["exec"] = _data(unit.result)
            if result is not None and not isinstance(result, str):
                outputs["returned"] = _data(result)
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
    def item_start(self, unit: _Unit, index: int, item: Any, params: Any = _MISSING) -> _Unit:
        path = iteration_path(unit.path, index)
        data = _data(item)
        fields: dict[str, Any] = {"index": index, "label": item_label(data), "item": data}
        if params is not _MISSING:
            fields["params"] = _data(params)
        self.emit(ev.ITEM_START, path, fields)
        return _Unit(unit.obj, path, unit.nid, perf_counter(), index=index, child=unit.child)

    def item_end(self, item: _Unit, result: Any = None, exc: BaseException | None = None) -> None:
        duration = perf_counter() - item.t0
        fields: dict[str, Any] = {"index": item.index, "status": "ok" if exc is None else _status(exc),
                                  "duration": duration, "attempts": max(item.attempts, 1)}
        error = None
        if exc is None:
            fields["outputs"] = {"result": _data(result)}
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
        scope = _SCOPE.get()
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

def _in_loop(fn: Callable[..., Any], *args: Any) -> None:
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


# --- the wrappers ------------------------------------------------------------------------------------

class _Inside:
    """``with _Inside(unit, scope, end):`` runs the block as ``unit`` (and in ``scope``); an
    exception out of it ends the unit (``end(unit, exc=...)``) and goes on up unchanged."""

    __slots__ = ("end", "scope", "tokens", "unit")

    def __init__(self, unit: _Unit, scope: _Scope | None,
                 end: Callable[..., None]) -> None:
        self.unit, self.scope, self.end = unit, scope, end

    def __enter__(self) -> None:
        self.tokens = (_UNIT.set(self.unit), _SCOPE.set(self.scope) if self.scope is not None else None)

    def __exit__(self, kind: Any, exc: BaseException | None, tb: Any) -> None:
        unit_token, scope_token = self.tokens
        try:
            if exc is not None:
                self.end(self.unit, exc=exc)
        finally:
            if scope_token is not None:
                _SCOPE.reset(scope_token)
            _UNIT.reset(unit_token)


def _wrap_run(orig: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(orig)
    def _run(self: Any, shared: Any) -> Any:
        run = _RUN.get()
        if run is None:
            tracer = _TRACER.get()
            if tracer is None:
                return orig(self, shared)
            run = _Run(tracer, self, shared)
            run.begin()
            try:
                result = orig(self, shared) if run.flat else _run(self, shared)
            except BaseException as exc:
                run.end(exc=exc)
                raise
            run.end(result)
            return result
        unit = _UNIT.get()
        if unit is not None and unit.obj is self and unit.index is None:
            return orig(self, shared)  # a subclass's _run calling this one
        if run.gate is not None:
            run.gate.before_node_blocking(*_next_path(run, self))
        node, scope = run.node_start(self)
        with _Inside(node, scope, run.node_end):
            result = orig(self, shared)
        run.node_end(node, result)
        return result

    return _run


def _wrap_run_async(orig: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(orig)
    async def _run_async(self: Any, shared: Any) -> Any:
        run = _RUN.get()
        if run is None:
            tracer = _TRACER.get()
            if tracer is None:
                return await orig(self, shared)
            run = _Run(tracer, self, shared)
            run.begin()
            try:
                result = await (orig(self, shared) if run.flat else _run_async(self, shared))
            except BaseException as exc:
                run.end(exc=exc)
                raise
            run.end(result)
            return result
        unit = _UNIT.get()
        if unit is not None and unit.obj is self and unit.index is None:
            return await orig(self, shared)
        if run.gate is not None:
            await run.gate.before_node(*_next_path(run, self))
        node, scope = run.node_start(self)
        with _Inside(node, scope, run.node_end):
            result = await orig(self, shared)
        run.node_end(node, result)
        return result

    return _run_async


def _next_path(run: _Run, obj: Any) -> tuple[str, str]:
    """The path and id the node about to start will have (for the gate)."""
    scope = _SCOPE.get() or run.root
    nid = (scope.graph.id_of(obj) if scope.graph is not None else None) or snake(type(obj).__name__)
    visit = scope.visits.get(nid, 0) + 1
    return (f"{scope.path}.{nid}" if visit == 1 else f"{scope.path}.{nid}#{visit}"), nid


def _wrap_batch(orig: Callable[..., Any]) -> Callable[..., Any]:
    """BatchNode._exec and its async kinds: remember the items, so each knows its index."""
    if inspect.iscoroutinefunction(orig):
        @functools.wraps(orig)
        async def _exec_async(self: Any, items: Any) -> Any:
            unit = _UNIT.get()
            if unit is not None and unit.obj is self and unit.index is None and unit.batch is None:
                unit.batch = _Batch(items)
            return await orig(self, items)

        return _exec_async

    @functools.wraps(orig)
    def _exec(self: Any, items: Any) -> Any:
        unit = _UNIT.get()
        if unit is not None and unit.obj is self and unit.index is None and unit.batch is None:
            unit.batch = _Batch(items)
        return orig(self, items)

    return _exec


def _wrap_exec(orig: Callable[..., Any]) -> Callable[..., Any]:
    """Node._exec: one item of a batch node, or a node's own exec (its attempts)."""

    @functools.wraps(orig)
    def _exec(self: Any, prep_res: Any) -> Any:
        unit = _UNIT.get()
        if unit is None or unit.obj is not self:
            return orig(self, prep_res)
        run = _RUN.get()
        assert run is not None
        _trace_attempts(type(self), "exec")
        if unit.batch is None or unit.index is not None:
            result = orig(self, prep_res)
            unit.result = result
            return result
        index = unit.batch.index_of(prep_res)
        if run.gate is not None:
            run.gate.before_item_blocking(iteration_path(unit.path, index), unit.nid, index,
                       prep_res, None)
        item = run.item_start(unit, index, prep_res)
        with _Inside(item, None, run.item_end):
            result = orig(self, prep_res)
        run.item_end(item, result)
        return result

    return _exec


def _wrap_exec_async(orig: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(orig)
    async def _exec(self: Any, prep_res: Any) -> Any:
        unit = _UNIT.get()
        if unit is None or unit.obj is not self:
            return await orig(self, prep_res)
        run = _RUN.get()
        assert run is not None
        _trace_attempts(type(self), "exec_async")
        if unit.batch is None or unit.index is not None:
            result = await orig(self, prep_res)
            unit.result = result
            return result
        index = unit.batch.index_of(prep_res)
        if run.gate is not None:
            await run.gate.before_item(iteration_path(unit.path, index), unit.nid, index, prep_res, None)
        item = run.item_start(unit, index, prep_res)
        with _Inside(item, None, run.item_end):
            result = await orig(self, prep_res)
        run.item_end(item, result)
        return result

    return _exec


def _iteration(unit: _Unit, flow: Any, params: Any) -> tuple[Any, Any]:
    """A batch flow's iteration: its index (in call order), and its own params."""
    if unit.batch is None:
        unit.batch = _Batch(None)
    own = params
    if isinstance(params, dict) and isinstance(flow.params, dict):
        own = {k: v for k, v in params.items() if flow.params.get(k, _MISSING) is not v}
    return unit.batch.index_of(None), own


def _wrap_orch(orig: Callable[..., Any]) -> Callable[..., Any]:
    """Flow._orch: in a batch flow, one call is one iteration."""

    @functools.wraps(orig)
    def _orch(self: Any, shared: Any, params: Any = None) -> Any:
        unit = _UNIT.get()
        if unit is None or unit.obj is not self or unit.index is not None or not is_batch(self):
            return orig(self, shared, params)
        run = _RUN.get()
        assert run is not None
        index, own = _iteration(unit, self, params)
        if run.gate is not None:
            run.gate.before_item_blocking(iteration_path(unit.path, index), unit.nid, index, own,
                       params)
        item = run.item_start(unit, index, own, params)
        with _Inside(item, _Scope(item.path, unit.child), run.item_end):
            result = orig(self, shared, params)
        run.item_end(item, result)
        return result

    return _orch


def _wrap_orch_async(orig: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(orig)
    async def _orch_async(self: Any, shared: Any, params: Any = None) -> Any:
        unit = _UNIT.get()
        if unit is None or unit.obj is not self or unit.index is not None or not is_batch(self):
            return await orig(self, shared, params)
        run = _RUN.get()
        assert run is not None
        index, own = _iteration(unit, self, params)
        if run.gate is not None:
            await run.gate.before_item(iteration_path(unit.path, index), unit.nid, index, own, params)
        item = run.item_start(unit, index, own, params)
        with _Inside(item, _Scope(item.path, unit.child), run.item_end):
            result = await orig(self, shared, params)
        run.item_end(item, result)
        return result

    return _orch_async


def _wrap_next(orig: Callable[..., Any]) -> Callable[..., Any]:
    """Flow.get_next_node: the edge taken."""

    @functools.wraps(orig)
    def get_next_node(self: Any, curr: Any, action: Any) -> Any:
        nxt = orig(self, curr, action)
        run = _RUN.get()
        if run is not None and nxt is not None:
            run.edge(curr, nxt, action)
        return nxt

    return get_next_node


def _wrap_attempt(orig: Callable[..., Any]) -> Callable[..., Any]:
    """A node class's ``exec``: one attempt."""
    if inspect.iscoroutinefunction(orig):
        @functools.wraps(orig)
        async def exec_async(self: Any, prep_res: Any) -> Any:
            unit = _UNIT.get()
            if unit is None or unit.obj is not self or unit.in_attempt:
                return await orig(self, prep_res)
            started = _attempt_start(unit)
            try:
                result = await orig(self, prep_res)
            except BaseException as exc:
                _attempt_end(unit, started, exc)
                raise
            _attempt_end(unit, started)
            return result

        exec_async.__pflow_tui__ = True  # type: ignore[attr-defined]
        return exec_async

    @functools.wraps(orig)
    def exec_(self: Any, prep_res: Any) -> Any:
        unit = _UNIT.get()
        if unit is None or unit.obj is not self or unit.in_attempt:
            return orig(self, prep_res)
        started = _attempt_start(unit)
        try:
            result = orig(self, prep_res)
        except BaseException as exc:
            _attempt_end(unit, started, exc)
            raise
        _attempt_end(unit, started)
        return result

    exec_.__pflow_tui__ = True  # type: ignore[attr-defined]
    return exec_


def _attempt_start(unit: _Unit) -> float:
    unit.attempts += 1
    unit.in_attempt = True
    if unit.retries > 1:
        run = _RUN.get()
        if run is not None:
            run.emit(ev.ATTEMPT_START, unit.path, {"attempt": unit.attempts})
    return perf_counter()


def _attempt_end(unit: _Unit, started: float, exc: BaseException | None = None) -> None:
    unit.in_attempt = False
    unit.failed_last = error_of(exc) if exc is not None else None
    if unit.retries > 1:
        run = _RUN.get()
        if run is not None:
            fields: dict[str, Any] = {"attempt": unit.attempts,
                                      "status": "ok" if exc is None else _status(exc),
                                      "duration": perf_counter() - started}
            if exc is not None:
                fields["error"] = unit.failed_last
                fields["will_retry"] = unit.attempts < unit.retries
            run.emit(ev.ATTEMPT_END, unit.path, fields)


# --- installing the wrappers ---------------------------------------------------------------------

_WRAPS: list[tuple[type, str, Callable[[Callable[..., Any]], Callable[..., Any]]]] = [
    (BaseNode, "_run", _wrap_run), (Flow, "_run", _wrap_run), (BatchFlow, "_run", _wrap_run),
    (AsyncNode, "_run_async", _wrap_run_async), (AsyncFlow, "_run_async", _wrap_run_async),
    (AsyncBatchFlow, "_run_async", _wrap_run_async),
    (AsyncParallelBatchFlow, "_run_async", _wrap_run_async),
    (BaseNode, "_exec", _wrap_exec), (Node, "_exec", _wrap_exec), (AsyncNode, "_exec", _wrap_exec_async),
    (BatchNode, "_exec", _wrap_batch), (AsyncBatchNode, "_exec", _wrap_batch),
    (AsyncParallelBatchNode, "_exec", _wrap_batch),
    (Flow, "_orch", _wrap_orch), (AsyncFlow, "_orch_async", _wrap_orch_async),
    (Flow, "get_next_node", _wrap_next),
]
_lock = threading.RLock()
_active = 0
_saved: list[tuple[type, str, Any]] = []  # (class, name, original) of every wrapper in place
_attempts_done: set[tuple[type, str]] = set()


def _install() -> None:
    global _active
    with _lock:
        _active += 1
        if _active > 1:
            return
        for cls, name, wrap in _WRAPS:
            orig = cls.__dict__[name]
            _saved.append((cls, name, orig))
            setattr(cls, name, wrap(orig))


def _uninstall() -> None:
    global _active
    with _lock:
        _active -= 1
        if _active:
            return
        while _saved:
            cls, name, orig = _saved.pop()
            setattr(cls, name, orig)
        _attempts_done.clear()


def _trace_attempts(cls: type, name: str) -> None:
    """Wrap the ``exec`` (or ``exec_async``) that instances of ``cls`` use, once per class."""
    if (cls, name) in _attempts_done:
        return
    with _lock:
        if not _active or (cls, name) in _attempts_done:
            return
        _attempts_done.add((cls, name))
        owner = next((k for k in cls.__mro__ if name in k.__dict__), None)
        func = owner.__dict__[name] if owner is not None else None
        if inspect.isfunction(func) and not getattr(func, "__pflow_tui__", False):
            _saved.append((owner, name, func))
            setattr(owner, name, _wrap_attempt(func))


# --- the public API --------------------------------------------------------------------------------

class Tracer:
    """Traces every PocketFlow run started inside its ``with`` block.

    The first run's trace goes to ``path`` (default: ``.pflow-tui/traces/<name>-...json``);
    further runs in the same block go beside it as ``<stem>.2.json``, ``<stem>.3.json``...
    :attr:`paths` lists them. ``name``: the run's name (default: the flow's class name in
    snake case). ``sinks`` also receive every event; ``gate`` (the debugger's) may pause
    the run at node and item starts. ``source`` and ``inputs`` go into the trace header.
    ``replace``: a finished trace already at a path is written over (else
    :class:`~pflow_tui.engine.trace.TraceExists`); one a run is writing never is.
    """

    def __init__(self, path: str | Path | None = None, *, name: str | None = None,
                 sinks: Iterable[Sink] = (), gate: Any = None, source: str | None = None,
                 inputs: dict[str, Any] | None = None, replace: bool = True) -> None:
        self.path = Path(path) if path is not None else None
        self.replace = replace  # a finished trace at the path is written over (never a live one)
        self.name = name
        self.sinks: list[Sink] = list(sinks)
        self.gate = gate
        self.source = source
        self.inputs = inputs or {}
        self.paths: list[Path] = []
        self.runs: list[_Run] = []
        self._token: contextvars.Token[Tracer | None] | None = None

    def next_path(self, name: str) -> Path:
        if self.path is None:
            path = default_trace_path(name)
        elif not self.paths:
            path = self.path
        else:
            path = self.path.with_name(f"{self.path.stem}.{len(self.paths) + 1}{self.path.suffix}")
        self.paths.append(path)
        return path

    @property
    def duration(self) -> float:
        """Seconds the last run took (so far)."""
        if not self.runs:
            return 0.0
        run = self.runs[-1]
        return run.elapsed if run.ended else run.emitter.now()

    @property
    def events(self) -> int:
        """Events emitted by every run."""
        return sum(run.emitter.seq for run in self.runs)

    def interrupt(self, message: str) -> None:
        """Finish the traces of runs still going, as interrupted (Ctrl-C, a stop)."""
        for run in self.runs:
            run.abort({"type": "Interrupted", "message": message})

    def fail(self, exc: BaseException) -> bool:
        """Finish the traces of runs still going, as failed with ``exc`` (a pflow-tui bug);
        whether there was one (or no run at all)."""
        going = [run for run in self.runs if not run.ended]
        for run in going:
            run.abort({**error_of(exc), "internal": True}, "failed")
        return bool(going) or not self.runs

    def __enter__(self) -> Tracer:
        _install()
        self._token = _TRACER.set(self)
        return self

    def __exit__(self, *exc: object) -> None:
        if self._token is not None:
            _TRACER.reset(self._token)
            self._token = None
        _uninstall()


def trace(path: str | Path | None = None, *, name: str | None = None,
          sinks: Sequence[Sink] = ()) -> Tracer:
    """``with pflow_tui.trace("run.json"): flow.run(shared)`` (or ``await flow.run_async(shared)``):
    every PocketFlow run inside the block is traced, its trace written to ``path``."""
    return Tracer(path, name=name, sinks=sinks)


__all__ = ["Tracer", "error_of", "trace"]
