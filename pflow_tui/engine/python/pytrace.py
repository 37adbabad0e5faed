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
nodes as the panes expect (``map_reduce.summarize.iteration_3``). What one run records,
and how, is :mod:`pflow_tui.engine.python.pyrun`; this module holds the wrappers and the
:class:`Tracer` that installs them.
"""

from __future__ import annotations

import contextvars
import functools
import inspect
import threading
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from time import perf_counter
from typing import Any

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

from ..paths import iteration_path
from ..trace import events as ev
from ..trace.events import Sink
from ..trace.writer import default_trace_path
from .pygraph import is_batch, snake
from .pyrun import MISSING, RUN, SCOPE, UNIT, Batch, Run, Scope, Unit, error_of, status_of

_TRACER: contextvars.ContextVar[Tracer | None] = contextvars.ContextVar("pflow_tui_tracer", default=None)


# --- the wrappers ------------------------------------------------------------------------------------

class _Inside:
    """``with _Inside(unit, scope, end):`` runs the block as ``unit`` (and in ``scope``); an
    exception out of it ends the unit (``end(unit, exc=...)``) and goes on up unchanged."""

    __slots__ = ("end", "scope", "tokens", "unit")

    def __init__(self, unit: Unit, scope: Scope | None,
                 end: Callable[..., None]) -> None:
        self.unit, self.scope, self.end = unit, scope, end

    def __enter__(self) -> None:
        self.tokens = (UNIT.set(self.unit), SCOPE.set(self.scope) if self.scope is not None else None)

    def __exit__(self, kind: Any, exc: BaseException | None, tb: Any) -> None:
        unit_token, scope_token = self.tokens
        try:
            if exc is not None:
                self.end(self.unit, exc=exc)
        finally:
            if scope_token is not None:
                SCOPE.reset(scope_token)
            UNIT.reset(unit_token)


def _wrap_run(orig: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(orig)
    def _run(self: Any, shared: Any) -> Any:
        run = RUN.get()
        if run is None:
            tracer = _TRACER.get()
            if tracer is None:
                return orig(self, shared)
            run = Run(tracer, self, shared)
            run.begin()
            try:
                result = orig(self, shared) if run.flat else _run(self, shared)
            except BaseException as exc:
                run.end(exc=exc)
                raise
            run.end(result)
            return result
        unit = UNIT.get()
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
        run = RUN.get()
        if run is None:
            tracer = _TRACER.get()
            if tracer is None:
                return await orig(self, shared)
            run = Run(tracer, self, shared)
            run.begin()
            try:
                result = await (orig(self, shared) if run.flat else _run_async(self, shared))
            except BaseException as exc:
                run.end(exc=exc)
                raise
            run.end(result)
            return result
        unit = UNIT.get()
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


def _next_path(run: Run, obj: Any) -> tuple[str, str]:
    """The path and id the node about to start will have (for the gate)."""
    scope = SCOPE.get() or run.root
    nid = (scope.graph.id_of(obj) if scope.graph is not None else None) or snake(type(obj).__name__)
    visit = scope.visits.get(nid, 0) + 1
    return (f"{scope.path}.{nid}" if visit == 1 else f"{scope.path}.{nid}#{visit}"), nid


def _wrap_batch(orig: Callable[..., Any]) -> Callable[..., Any]:
    """BatchNode._exec and its async kinds: remember the items, so each knows its index."""
    if inspect.iscoroutinefunction(orig):
        @functools.wraps(orig)
        async def _exec_async(self: Any, items: Any) -> Any:
            unit = UNIT.get()
            if unit is not None and unit.obj is self and unit.index is None and unit.batch is None:
                unit.batch = Batch(items)
            return await orig(self, items)

        return _exec_async

    @functools.wraps(orig)
    def _exec(self: Any, items: Any) -> Any:
        unit = UNIT.get()
        if unit is not None and unit.obj is self and unit.index is None and unit.batch is None:
            unit.batch = Batch(items)
        return orig(self, items)

    return _exec


def _wrap_exec(orig: Callable[..., Any]) -> Callable[..., Any]:
    """Node._exec: one item of a batch node, or a node's own exec (its attempts)."""

    @functools.wraps(orig)
    def _exec(self: Any, prep_res: Any) -> Any:
        unit = UNIT.get()
        if unit is None or unit.obj is not self:
            return orig(self, prep_res)
        run = RUN.get()
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
        unit = UNIT.get()
        if unit is None or unit.obj is not self:
            return await orig(self, prep_res)
        run = RUN.get()
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


def _iteration(unit: Unit, flow: Any, params: Any) -> tuple[Any, Any]:
    """A batch flow's iteration: its index (in call order), and its own params."""
    if unit.batch is None:
        unit.batch = Batch(None)
    own = params
    if isinstance(params, dict) and isinstance(flow.params, dict):
        own = {k: v for k, v in params.items() if flow.params.get(k, MISSING) is not v}
    return unit.batch.index_of(None), own


def _wrap_orch(orig: Callable[..., Any]) -> Callable[..., Any]:
    """Flow._orch: in a batch flow, one call is one iteration."""

    @functools.wraps(orig)
    def _orch(self: Any, shared: Any, params: Any = None) -> Any:
        unit = UNIT.get()
        if unit is None or unit.obj is not self or unit.index is not None or not is_batch(self):
            return orig(self, shared, params)
        run = RUN.get()
        assert run is not None
        index, own = _iteration(unit, self, params)
        if run.gate is not None:
            run.gate.before_item_blocking(iteration_path(unit.path, index), unit.nid, index, own,
                       params)
        item = run.item_start(unit, index, own, params)
        with _Inside(item, Scope(item.path, unit.child), run.item_end):
            result = orig(self, shared, params)
        run.item_end(item, result)
        return result

    return _orch


def _wrap_orch_async(orig: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(orig)
    async def _orch_async(self: Any, shared: Any, params: Any = None) -> Any:
        unit = UNIT.get()
        if unit is None or unit.obj is not self or unit.index is not None or not is_batch(self):
            return await orig(self, shared, params)
        run = RUN.get()
        assert run is not None
        index, own = _iteration(unit, self, params)
        if run.gate is not None:
            await run.gate.before_item(iteration_path(unit.path, index), unit.nid, index, own, params)
        item = run.item_start(unit, index, own, params)
        with _Inside(item, Scope(item.path, unit.child), run.item_end):
            result = await orig(self, shared, params)
        run.item_end(item, result)
        return result

    return _orch_async


def _wrap_next(orig: Callable[..., Any]) -> Callable[..., Any]:
    """Flow.get_next_node: the edge taken."""

    @functools.wraps(orig)
    def get_next_node(self: Any, curr: Any, action: Any) -> Any:
        nxt = orig(self, curr, action)
        run = RUN.get()
        if run is not None and nxt is not None:
            run.edge(curr, nxt, action)
        return nxt

    return get_next_node


def _wrap_attempt(orig: Callable[..., Any]) -> Callable[..., Any]:
    """A node class's ``exec``: one attempt."""
    if inspect.iscoroutinefunction(orig):
        @functools.wraps(orig)
        async def exec_async(self: Any, prep_res: Any) -> Any:
            unit = UNIT.get()
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
        unit = UNIT.get()
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


def _attempt_start(unit: Unit) -> float:
    unit.attempts += 1
    unit.in_attempt = True
    if unit.retries > 1:
        run = RUN.get()
        if run is not None:
            run.emit(ev.ATTEMPT_START, unit.path, {"attempt": unit.attempts})
    return perf_counter()


def _attempt_end(unit: Unit, started: float, exc: BaseException | None = None) -> None:
    unit.in_attempt = False
    unit.failed_last = error_of(exc) if exc is not None else None
    if unit.retries > 1:
        run = RUN.get()
        if run is not None:
            fields: dict[str, Any] = {"attempt": unit.attempts,
                                      "status": "ok" if exc is None else status_of(exc),
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
        self.runs: list[Run] = []
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


__all__ = ["Tracer", "trace"]
