"""Compile a validated flow onto PocketFlow objects, instrumented.

Each IR node becomes a :class:`PflowNode` (a ``pocketflow.AsyncNode``) or, with a
``batch`` config, a :class:`PflowBatchNode` (a ``pocketflow.AsyncParallelBatchNode``);
the flow becomes a :class:`PflowFlow` (a ``pocketflow.AsyncFlow``). PocketFlow keeps
doing what it does: prep/exec/post, the retry loop (``max_retries``, ``wait``),
action routing and a copy of the node per step.

The "parameter passing" problem: ``Flow._orch`` calls ``node.set_params(flow_params)``
on every step, replacing whatever the node had. Our nodes keep their configuration in
``self.spec`` and their compiled templates, never in ``self.params``, so the flow may
set ``params`` freely (as BatchFlow does for its iterations) and nothing is lost. No
patch to pocketflow is needed.

What a node is running on is a :class:`Frame`, passed through PocketFlow as its
``shared`` argument: the store the node writes into, the scope templates read from,
and the event path prefix.
"""

from __future__ import annotations

import contextlib
import threading
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass
from time import perf_counter
from typing import TYPE_CHECKING, Any

import anyio
import anyio.to_thread
import orjson
import pocketflow

from . import events as ev
from .collect import BatchOutput
from .events import Emitter, error_info
from .gate import Gate
from .ir.groups import Group
from .ir.items import ItemsError, LineSource
from .ir.spec import FlowSpec, NodeSpec
from .ir.templates import Ref, Scope, Template, Unresolved, compile_value, parse_text, to_json_text, to_text
from .labels import LabelTemplate, item_label
from .limits import PROCESSES, Limit, hold, release
from .nodes.base import INLINE, LOOP, PROCESS, THREAD, NodeAbort, NodeType, RunContext, run_ref
from .procs import ProcessPool, job, pool_size
from .redact import Redactor
from .spill import LazyList, Spill

if TYPE_CHECKING:
    from .rerun import RunCache


class FlowRuntimeError(Exception):
    """A run-time failure of the flow itself (not of one node), e.g. a loop limit."""

    def __init__(self, message: str, path: str = "", node: str | None = None) -> None:
        super().__init__(message)
        self.path = path
        self.node = node


class NodeAborted(FlowRuntimeError):
    """A node whose last attempt raised :class:`~.nodes.base.NodeAbort`: the node has ended
    (its ``node.end`` is emitted) and the run fails without taking an ``error`` edge."""


class TemplateFailure(Exception):
    """Params that cannot be resolved in strict mode; the node fails without retrying."""


@dataclass(slots=True)
class Frame:
    """What PocketFlow passes as ``shared``: where a node reads, writes and is addressed."""

    store: dict[str, Any]
    scope: Scope
    path: str
    last: tuple[str, dict[str, Any]] | None = None  # the node that finished last, its outputs


class Execution:
    """Run-wide state shared by every compiled node of one run."""

    def __init__(self, spec: FlowSpec, emitter: Emitter, inputs: dict[str, Any],
                 shared: dict[str, Any]) -> None:
        self.spec = spec
        self.emitter = emitter
        #: the run's secrets (see redact.py): what the events must not show
        self.redactor: Redactor | None = getattr(emitter.redact, "__self__", None)
        self.emit = emitter.emit
        self.now = emitter.now
        self.inputs = inputs
        self.shared = shared
        self.visits: Counter[tuple[str, str]] = Counter()  # (frame path, node id) -> visits
        self.paths: dict[tuple[str, str], str] = {}  # (frame path, node id) -> its latest path
        self.joins: dict[tuple[str, str], list[dict[str, Any]]] = {}  # join -> its branches
        self.base_dir = str(spec.base_dir)
        self.last_node: str | None = None
        self.last_error: dict[str, Any] | None = None
        self.gate: Gate | None = None  # pause/step/breakpoints; None: nothing ever waits
        self.stop: threading.Event | None = None  # set: the run is ending, nothing new starts
        self.cache: RunCache | None = None  # a re-run: recorded results that may be restored
        self.spill = Spill()  # where batches with batch_size write their results
        self._pool: tuple[Limit, ProcessPool] | None = None

    async def stopping(self) -> None:
        """Called where a node, an item or an attempt would start: once the run is stopping
        (stopped, or its trace cannot be written), wait here for the cancellation that
        follows (executor._until_stopped), so that nothing new starts meanwhile."""
        if self.stop is not None and self.stop.is_set():
            await anyio.sleep_forever()

    def process_pool(self) -> tuple[Limit, ProcessPool]:
        """The run's process slots (waited on visibly) and its worker processes."""
        if self._pool is None:
            self._pool = (Limit(None, max_concurrent=pool_size(), on=PROCESSES), ProcessPool())
        return self._pool

    async def aclose(self) -> None:
        """End what the run started that outlives its nodes (the worker processes)."""
        if self._pool is not None:
            await self._pool[1].aclose()

    def write(self, store: dict[str, Any], key: str, value: Any, path: str) -> None:
        """Write ``key`` into a store, as a ``store.write`` event."""
        store[key] = value
        self.emit(ev.STORE_WRITE, path, {"key": key, "value": value})

    def write_root(self, key: str, value: Any, path: str) -> None:
        self.write(self.shared, key, value, path)


class Params:
    """A node's params, compiled once: constants, defaults and templates to resolve."""

    __slots__ = ("constant", "dynamic", "strict", "templates")

    def __init__(self, raw: Mapping[str, Any], node_type: NodeType, strict: bool) -> None:
        self.strict = strict
        self.templates: dict[str, Template] = {}
        self.constant: dict[str, Any] = {
            p.name: p.default for p in node_type.params if not p.required and p.default is not None
        }
        self.dynamic: list[tuple[str, Any, str | None]] = []
        compiled = {key: compile_value(value) for key, value in raw.items()}
        # pflow coerces params only in its template wrapper, which a node has when one of
        # its params holds a template: without one, a dict stays a dict (write-file then
        # writes it indented)
        wrapped = any(not tpl.is_constant for tpl in compiled.values())
        for key, tpl in compiled.items():
            ptype = p.type if (p := node_type.param(key)) else "any"
            if tpl.is_constant:
                value = tpl.resolve(())
                self.constant[key] = _coerce(value, ptype) if wrapped or ptype not in _TEXT else value
            else:
                self.templates[key] = tpl
                self.dynamic.append((key, tpl.resolve, ptype if ptype in _COERCED else None))

    def resolve(self, scope: Scope, errors: list[str] | None = None
                ) -> tuple[dict[str, Any], dict[str, Any]]:
        """(all params, the templated ones as resolved); strict mode raises TemplateFailure.

        In permissive mode the unresolved ones keep their ``${...}`` text and are listed
        in ``errors``.
        """
        resolved: dict[str, Any] = {}
        try:
            for key, resolve, ptype in self.dynamic:
                value = resolve(scope)
                resolved[key] = value if ptype is None else _coerce(value, ptype)
        except Unresolved:
            if self.strict:
                self._failed(scope)
            for key, resolve, ptype in self.dynamic:
                try:
                    value = resolve(scope)
                    resolved[key] = value if ptype is None else _coerce(value, ptype)
                except Unresolved as exc:
                    resolved[key] = _lenient(self.templates[key].source, scope)
                    if errors is not None:
                        errors.append(f"{key}: {exc}")
        return {**self.constant, **resolved}, resolved

    def _failed(self, scope: Scope) -> None:
        for key, resolve, _ in self.dynamic:
            try:
                resolve(scope)
            except Unresolved as exc:
                raise TemplateFailure(f"Unresolved variables in parameter '{key}': {exc}") from None
        raise AssertionError("unreachable")


_TEXT = ("str", "text")  # text params: a dict or list given whole becomes JSON text
_COERCED = (*_TEXT, "dict", "list")


def _coerce(value: Any, ptype: str) -> Any:
    """pflow's param coercion: dict/list into a str param -> JSON; JSON text into dict/list."""
    if ptype in _TEXT and isinstance(value, (dict, list)):
        return to_json_text(value)
    if ptype in ("dict", "list") and isinstance(value, str) and value[:1] in ("{", "["):
        try:
            return orjson.loads(value)
        except orjson.JSONDecodeError:
            return value
    return value


def _lenient(value: Any, scope: Scope) -> Any:
    """Permissive mode: resolve what resolves, keep the literal ``${...}`` of the rest."""
    if isinstance(value, str):
        if "${" not in value:
            return value
        try:
            return compile_value(value).resolve(scope)
        except Unresolved:
            from .ir.templates import Ref, parse_text

            out = []
            for part in parse_text(value):
                if isinstance(part, Ref):
                    try:
                        out.append(to_text(part.resolve(scope)))
                    except Unresolved:
                        out.append("${" + part.text + "}")
                else:
                    out.append(part)
            return "".join(out)
    if isinstance(value, dict):
        return {k: _lenient(v, scope) for k, v in value.items()}
    if isinstance(value, list):
        return [_lenient(v, scope) for v in value]
    return value


class Call(RunContext):
    """One execution of a node's work (a node step, or one batch item).

    It is also the :class:`RunContext` the node type sees, so an attempt allocates nothing.
    """

    __slots__ = ("params",)

    def __init__(self, path: str, params: dict[str, Any], index: int | None, base_dir: str) -> None:
        self.path = path
        self.params = params
        self.index = index
        self.attempt = 0
        self.base_dir = base_dir
        self.cancel = None
        self.branches = None


class _Failed:
    """exec's result when every attempt raised (PocketFlow's exec_fallback)."""

    __slots__ = ("exc",)

    def __init__(self, exc: BaseException) -> None:
        self.exc = exc


def _split(outputs: Mapping[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """Namespaced outputs vs. root-level ``__x__`` keys."""
    ns: dict[str, Any] = {}
    root: dict[str, Any] = {}
    for k, v in outputs.items():
        (root if k.startswith("__") and k.endswith("__") and len(k) > 4 else ns)[k] = v
    return ns, root


class _Work:
    """The part common to single and batch nodes: one attempt of the node type's work."""

    spec: NodeSpec
    node_type: NodeType
    ex: Execution
    flow: FlowSpec
    path: str
    max_retries: int
    limiter: anyio.CapacityLimiter | None
    limits: tuple[Limit, ...]  # waited on before each attempt: process slots, a rate limit
    where: str  # INLINE, LOOP, THREAD or PROCESS (nodes.base)
    ref: str | None  # the node type's run function by name, for a worker process

    async def _enter(self, frame: Frame) -> None:
        """This visit's path; with a gate, wait there until the node may start."""
        ex = self.ex
        self.path = _visit_path(ex, frame.path, self.spec.id, self.flow.max_visits)
        if ex.gate is not None:  # paused, stepping or a breakpoint: wait before node.start
            await ex.gate.before_node(self.path, self.spec.id)
        await ex.stopping()
        ex.last_node = self.spec.id

    async def exec_async(self, call: Call) -> Mapping[str, Any]:  # PocketFlow hook
        await self.ex.stopping()  # a retry is new work too
        call.attempt += 1
        limits = self.limits
        if limits:  # rate limits, process slots: wait (a visible wait span) before the attempt
            await hold(limits, self.ex, call.path, call)
        traced = self.max_retries > 1
        if traced:
            t0 = self.ex.now()
            self.ex.emit(ev.ATTEMPT_START, call.path, {"attempt": call.attempt})
        nt = self.node_type
        where = self.where
        try:
            if where == INLINE:
                out = nt.run(call.params, call)
            elif where == LOOP:
                out = await nt.run(call.params, call)  # type: ignore[misc]
            elif where == THREAD:
                call.cancel = threading.Event()
                out = await anyio.to_thread.run_sync(nt.run, call.params, call, limiter=self.limiter,
                                                     abandon_on_cancel=True)
            else:  # PROCESS
                out = await self.ex.process_pool()[1].run(job(nt, self.ref, call, call.params))
            if out.__class__ is not dict and not isinstance(out, Mapping):
                raise TypeError(f"node type '{nt.name}' returned {type(out).__name__}, not a dict")
        except Exception as exc:
            if traced:
                self.ex.emit(ev.ATTEMPT_END, call.path, {
                    "attempt": call.attempt, "status": "error", "duration": self.ex.now() - t0,
                    "error": error_info(exc), "will_retry": call.attempt < self.max_retries})
            raise
        except BaseException:  # cancelled (fail_fast sibling, stop, Ctrl-C)
            if call.cancel is not None:
                call.cancel.set()  # the worker thread stops too (abandoned, not waited for)
            if traced:
                self.ex.emit(ev.ATTEMPT_END, call.path, {
                    "attempt": call.attempt, "status": "cancelled", "duration": self.ex.now() - t0})
            raise
        finally:
            if limits:
                release(limits, call)
        if traced:
            fields = {"attempt": call.attempt, "status": "ok", "duration": self.ex.now() - t0}
            if "error" in out:
                fields["status"] = "error"
                fields["error"] = {"type": "NodeError", "message": to_text(out["error"])}
            self.ex.emit(ev.ATTEMPT_END, call.path, fields)
        return out

    async def exec_fallback_async(self, call: Call, exc: Exception) -> _Failed:  # PocketFlow hook
        return _Failed(exc)

    def outcome(self, result: Mapping[str, Any] | _Failed) -> tuple[dict[str, Any], dict | None]:
        """(outputs, error info) of a finished call."""
        if result.__class__ is _Failed:
            info = error_info(result.exc)  # type: ignore[union-attr]
            return {"error": info["message"]}, info
        if "error" in result:
            return dict(result), {"type": "NodeError", "message": to_text(result["error"])}
        return (result if result.__class__ is dict else dict(result)), None  # type: ignore[return-value]


_attempts = pocketflow.AsyncNode._exec  # PocketFlow's retry loop, run per item


def _retries(node_type: NodeType, spec: NodeSpec) -> tuple[int, float]:
    """Attempts and wait: a batch's own config for its items, else the node type's defaults."""
    if spec.batch is not None:
        return spec.batch.max_retries, spec.batch.retry_wait
    return node_type.max_retries, node_type.wait


def _place(work: _Work, limits: Mapping[str, Limit]) -> None:
    """Where ``work``'s attempts run (process, thread, event loop) and what they wait on."""
    spec, node_type = work.spec, work.node_type
    where = spec.executor or node_type.executor
    if where == THREAD and node_type.is_async:
        where = LOOP  # (validation rejects it; a coroutine runs on the loop in any case)
    work.where = where
    work.ref = run_ref(node_type.run) if where == PROCESS else None
    held: list[Limit] = [work.ex.process_pool()[0]] if where == PROCESS else []
    key = spec.rate_limit_key or spec.type
    if key in limits and spec.type != "workflow":
        held.append(limits[key])
    work.limits = tuple(held)


class PflowNode(_Work, pocketflow.AsyncNode):
    """One IR node without ``batch``."""

    def __init__(self, spec: NodeSpec, node_type: NodeType, ex: Execution, flow: FlowSpec,
                 limits: Mapping[str, Limit]) -> None:
        retries, wait = _retries(node_type, spec)
        super().__init__(max_retries=retries, wait=wait)
        self.spec, self.node_type, self.ex, self.flow = spec, node_type, ex, flow
        self.limiter = None
        self.compiled = Params(spec.params, node_type, flow.strict_templates)
        self.path = ""
        _place(self, limits)

    async def _run_async(self, frame: Frame) -> str:  # type: ignore[override]
        ex = self.ex
        await self._enter(frame)
        if ex.cache is not None and (action := ex.cache.restore_node(self, frame)) is not None:
            return action  # a re-run: the recorded result stands in for this step
        t0 = ex.now()
        try:
            return await super()._run_async(frame)
        except TemplateFailure as exc:
            ex.emit(ev.NODE_START, self.path, {"node": self.spec.id, "type": self.spec.type})
            return self._finish(frame, {"error": str(exc)},
                                {"type": "TemplateError", "message": str(exc)}, t0, 0)
        except NodeAborted:
            raise
        except BaseException as exc:
            ex.emit(ev.NODE_END, self.path, {"node": self.spec.id, "status": _abort_status(exc),
                                             "duration": ex.now() - t0})
            raise

    async def prep_async(self, frame: Frame) -> Call:  # PocketFlow hook
        errors: list[str] = []
        params, _ = self.compiled.resolve(frame.scope, errors)
        if self.node_type.reads:
            params["__store__"] = _store_reads(self.node_type.reads, frame.scope)
        if errors:
            _template_warnings(self.ex, self.path, errors)
        self.ex.emit(ev.NODE_START, self.path, {"node": self.spec.id, "type": self.spec.type,
                                                "params": params})
        self._t0 = self.ex.now()
        call = Call(self.path, params, None, self.ex.base_dir)
        call.branches = self.ex.joins.pop((frame.path, self.spec.id), None)
        return call

    async def post_async(self, frame: Frame, call: Call, result: Any) -> str:  # PocketFlow hook
        if result.__class__ is _Failed and isinstance(result.exc, NodeAbort):
            # pflow raises this out of the node: no error edge, the run fails
            self._finish(frame, {}, error_info(result.exc), self._t0, call.attempt)
            raise NodeAborted(str(result.exc), self.path, self.spec.id) from result.exc
        outputs, error = self.outcome(result)
        return self._finish(frame, outputs, error, self._t0, call.attempt)

    def _finish(self, frame: Frame, outputs: dict[str, Any], error: dict | None, t0: float,
                attempts: int) -> str:
        ex = self.ex
        ns, root = _split(outputs)
        if self.flow.namespacing:
            _write_node(ex, frame, self.spec.id, ns, self.path)
        else:
            root = {**ns, **root}
        for k, v in root.items():
            ex.write(frame.store, k, v, self.path)
        frame.last = (self.spec.id, outputs)
        for warning in outputs.get("warnings") or () if isinstance(outputs.get("warnings"), list) else ():
            ex.emit(ev.WARNING, self.path, {"message": to_text(warning)})
        action = "error" if error else "default"
        key = self.node_type.action_key
        if key and not error and outputs.get(key):
            action = to_text(outputs[key])
        fields = {"node": self.spec.id, "status": "error" if error else "ok",
                  "duration": ex.now() - t0, "action": action, "attempts": attempts,
                  "outputs": outputs}
        if error:
            fields["error"] = error
            ex.last_error = {"node": self.spec.id, "path": self.path, **error}
        ex.emit(ev.NODE_END, self.path, fields)
        if ex.gate is not None:
            ex.gate.after(self.path, self.spec.id, None, fields["status"], fields["duration"], error)
        return action


class _ItemOutcome:
    __slots__ = ("duration", "error", "result", "status")

    def __init__(self, status: str, result: dict[str, Any] | None, error: dict | None,
                 duration: float) -> None:
        self.status, self.result, self.error, self.duration = status, result, error, duration


class PflowBatchNode(_Work, pocketflow.AsyncParallelBatchNode):
    """One IR node with ``batch``: every item runs the node's work in its own namespace.

    Items come from a list, a spilled list or a :class:`~pflow_tui.engine.ir.items.LineSource`
    and are taken one at a time. With ``batch_size`` the results spill to a file
    (:mod:`pflow_tui.engine.collect`) and a parallel batch never runs or holds more than
    ``batch_size`` items between the oldest one still running and the newest started.
    """

    def __init__(self, spec: NodeSpec, node_type: NodeType, ex: Execution, flow: FlowSpec,
                 limits: Mapping[str, Limit]) -> None:
        retries, wait = _retries(node_type, spec)
        super().__init__(max_retries=retries, wait=wait)
        assert spec.batch is not None
        self.spec, self.node_type, self.ex, self.batch = spec, node_type, ex, spec.batch
        self.flow = flow
        self.compiled = Params(spec.params, node_type, flow.strict_templates)
        items = spec.batch.items
        self._source: tuple[str, Template] | None = None
        self._items_ref: Ref | None = None
        if isinstance(items, dict):  # {"jsonl_file": ...}: validated to hold one source key
            key, value = next(iter(items.items()))
            self._source = (key, compile_value(value))
        elif isinstance(items, str) and len(parts := parse_text(items.strip())) == 1 \
                and isinstance(parts[0], Ref):
            self._items_ref = parts[0]
        self.items_template = compile_value(items)
        self._alias = spec.batch.alias
        self._label = LabelTemplate(spec.batch.label) if spec.batch.label is not None else None
        self.limiter = anyio.CapacityLimiter(spec.batch.max_concurrent) if spec.batch.parallel else None
        self.path = ""
        _place(self, limits)

    async def _run_async(self, frame: Frame) -> str:  # type: ignore[override]
        ex = self.ex
        await self._enter(frame)
        self._t0 = ex.now()
        self._frame = frame
        self._out: BatchOutput | None = None
        try:
            return await super()._run_async(frame)
        except (TemplateFailure, ItemsError) as exc:
            ex.emit(ev.NODE_START, self.path, {"node": self.spec.id, "type": self.spec.type})
            kind = "TemplateError" if isinstance(exc, TemplateFailure) else "ItemsError"
            return self._fail(frame, str(exc), kind)
        except BaseException as exc:
            if self._out is not None:
                self._out.discard()
            ex.emit(ev.NODE_END, self.path, {"node": self.spec.id, "status": _abort_status(exc),
                                             "duration": ex.now() - self._t0})
            raise

    def _items(self, scope: Scope) -> Any:
        """The items: a list, a lazy list, or a LineSource (counted, not read)."""
        if self._source is not None:
            key, tpl = self._source
            try:
                value = tpl.resolve(scope)
            except Unresolved as exc:
                raise TemplateFailure(f"batch.items.{key}: {exc}") from None
            return LineSource(key, value, self.flow.base_dir)
        try:
            items = (self._items_ref.resolve(scope, True) if self._items_ref is not None
                     else self.items_template.resolve(scope))
        except Unresolved as exc:
            raise TemplateFailure(f"batch.items: {exc}") from None
        if isinstance(items, str) and items[:1] == "[":
            with contextlib.suppress(orjson.JSONDecodeError):
                items = orjson.loads(items)
        if not isinstance(items, (list, LazyList)):
            raise TemplateFailure(
                f"batch.items must resolve to a list, got {type(items).__name__}"
                + (f": {to_text(items)[:80]!r}" if items is not None else " (None)"))
        return items

    async def prep_async(self, frame: Frame) -> Any:  # PocketFlow hook
        items = self._items(frame.scope)
        b = self.batch
        count = len(items)
        info: dict[str, Any] = {"count": count, "parallel": b.parallel,
                                "max_concurrent": b.max_concurrent if b.parallel else 1,
                                "error_handling": b.error_handling, "as": b.alias}
        writer = None
        if b.batch_size is not None:
            info["batch_size"] = b.batch_size
            writer = self.ex.spill.writer(self.path)
        self._out = BatchOutput(count, writer,
                                b.batch_size if b.parallel and b.batch_size is not None else None)
        self.ex.emit(ev.NODE_START, self.path, {
            "node": self.spec.id, "type": self.spec.type, "params": self.compiled.constant,
            "batch": info})
        return items

    async def _exec(self, items: Any) -> BatchOutput:  # type: ignore[override]
        out = self._out
        assert out is not None
        fail_fast = self.batch.error_handling == "fail_fast"
        frame = self._frame
        run_item = self._run_item
        numbered = out.numbered(items)

        def ended(i: int, item: Any, o: _ItemOutcome) -> bool:
            """Record an item's outcome; whether the batch stops taking items."""
            out.add(i, item, o)
            if self.ex.gate is not None:  # before this worker takes the next item
                self._item_ended(i, o)
            return fail_fast and o.status == "error"

        if not self.batch.parallel:
            for i, item in numbered:
                if ended(i, item, await run_item(i, item, frame)):
                    break
            return out

        window = out.window
        async with anyio.create_task_group() as tg:
            async def worker() -> None:
                for i, item in numbered:
                    if ended(i, item, await run_item(i, item, frame)):
                        tg.cancel_scope.cancel()
                        return

            async def windowed() -> None:  # batch_size: a slot in the window before an item
                assert window is not None
                while True:
                    try:
                        window.acquire_nowait()
                    except anyio.WouldBlock:
                        await window.acquire()
                    taken = next(numbered, None)
                    if taken is None:
                        window.release()
                        return
                    if ended(*taken, await run_item(*taken, frame)):
                        tg.cancel_scope.cancel()
                        return

            workers = min(self.batch.max_concurrent, len(items), self.batch.batch_size or len(items))
            for _ in range(workers):
                tg.start_soon(worker if window is None else windowed)
        return out

    def label_of(self, scope: Scope, item: Any) -> str:
        """The item's label: its ``batch.label`` rendered in its scope, or derived from it."""
        return item_label(item) if self._label is None else self._label.render(scope, item)

    async def _run_item(self, index: int, item: Any, frame: Frame) -> _ItemOutcome:
        """One iteration: resolve its params, run PocketFlow's retry loop, record it.

        This is the per-item hot path of every batch: keep it lean.
        """
        ex = self.ex
        if ex.stop is not None and ex.stop.is_set():
            await ex.stopping()
        if ex.cache is not None and (restored := ex.cache.restore_item(self, index, item, frame)):
            return restored  # a re-run: the recorded iteration stands in for this one
        emit = ex.emit
        path = f"{self.path}.iteration_{index}"
        t0 = perf_counter()
        scope = ({self._alias: item, "__index__": index}, *frame.scope)
        label = item_label(item) if self._label is None else self._label.render(scope, item)
        errors: list[str] | None = None if self.compiled.strict else []
        try:
            params, resolved = self.compiled.resolve(scope, errors)
        except TemplateFailure as exc:
            emit(ev.ITEM_START, path, {"index": index, "label": label, "item": item})
            error = {"type": "TemplateError", "message": str(exc)}
            emit(ev.ITEM_END, path, {"index": index, "status": "error", "duration": 0.0,
                                     "attempts": 0, "outputs": {"error": str(exc)}, "error": error})
            return _ItemOutcome("error", {"error": str(exc), "item": item}, error, 0.0)
        if self.node_type.reads:
            params["__store__"] = _store_reads(self.node_type.reads, scope)
        if ex.gate is not None:  # paused, stepping or a breakpoint: wait before item.start
            await ex.gate.before_item(path, self.spec.id, index, item, resolved)
            await ex.stopping()
            t0 = perf_counter()
        if errors:
            _template_warnings(ex, path, errors)
        send = ex.emitter.send
        send({"seq": 0, "t": 0.0, "kind": ev.ITEM_START, "path": path, "index": index, "label": label,
              "item": item, "params": resolved})
        call = Call(path, params, index, ex.base_dir)
        try:
            result = await _attempts(self, call)
        except BaseException as exc:
            emit(ev.ITEM_END, path, {"index": index, "status": _abort_status(exc),
                                     "duration": perf_counter() - t0, "attempts": call.attempt})
            raise
        if result.__class__ is dict and "error" not in result:  # the common case
            duration = perf_counter() - t0
            send({"seq": 0, "t": 0.0, "kind": ev.ITEM_END, "path": path, "index": index,
                  "status": "ok", "duration": duration, "attempts": call.attempt, "outputs": result})
            return _ItemOutcome("ok", {**result, "item": item}, None, duration)
        outputs, error = self.outcome(result)
        duration = perf_counter() - t0
        fields = {"index": index, "status": "error" if error else "ok", "duration": duration,
                  "attempts": call.attempt, "outputs": outputs}
        if error:
            fields["error"] = error
        emit(ev.ITEM_END, path, fields)
        if isinstance(result, _Failed):
            return _ItemOutcome("error", None, error, duration)
        return _ItemOutcome("error" if error else "ok", {**outputs, "item": item}, error, duration)

    async def post_async(self, frame: Frame, items: Any,  # type: ignore[override]
                         out: BatchOutput) -> str:
        ex = self.ex
        b = self.batch
        results, roots = out.finish()
        errors = out.errors
        output: dict[str, Any] = {
            "results": results,
            "count": out.count,
            "success_count": out.ok,
            "error_count": out.failed,
            "errors": errors or None,
            "batch_metadata": {
                "parallel": b.parallel,
                "max_concurrent": b.max_concurrent if b.parallel else None,
                "max_retries": self.max_retries,
                "retry_wait": self.wait or None,
                "execution_mode": "parallel" if b.parallel else "sequential",
                "timing": {
                    "total_items_ms": round(out.total_ms, 3),
                    "avg_item_ms": round(out.total_ms / out.ended, 3),
                    "min_item_ms": round(out.min_ms, 3),
                    "max_item_ms": round(out.max_ms, 3),
                } if out.ended else None,
            },
        }
        if b.batch_size is not None:
            output["batch_metadata"]["batch_size"] = b.batch_size
            if out.errors_omitted:
                output["errors_omitted"] = out.errors_omitted
        message = kind = where = None
        if out.source_error is not None:
            message, kind, where = out.source_error, "ItemsError", self.path
        elif b.error_handling == "fail_fast" and errors:
            first = errors[0]
            message = f"item {first['index']} failed: {first['error']}"
            kind, where = "BatchItemError", f"{self.path}.iteration_{first['index']}"
        summary = {k: v for k, v in output.items() if k != "results"}
        frame.store[self.spec.id] = output
        ex.emit(ev.STORE_WRITE, self.path, {"key": self.spec.id, "value": summary,
                                            "omitted": ["results"]})
        _merge_roots(ex, frame, [(f"{self.path}.iteration_{i}", r) for i, r in roots], self.path,
                     concurrent=b.parallel)
        frame.last = (self.spec.id, output)
        fields: dict[str, Any] = {
            "node": self.spec.id, "status": "error" if message else "ok",
            "duration": ex.now() - self._t0, "action": "error" if message else "default",
            "outputs": summary,
            "progress": {"done": out.ok, "failed": out.failed, "total": out.count}}
        if message:
            fields["error"] = {"type": kind, "message": message}
            ex.last_error = {"node": self.spec.id, "path": where, "type": kind, "message": message}
            output["error"] = message
        ex.emit(ev.NODE_END, self.path, fields)
        if ex.gate is not None:
            ex.gate.after(self.path, self.spec.id, None, fields["status"], fields["duration"],
                          fields.get("error"))
        return fields["action"]

    def _fail(self, frame: Frame, message: str, kind: str) -> str:
        ex = self.ex
        frame.store[self.spec.id] = {"error": message}
        ex.emit(ev.STORE_WRITE, self.path, {"key": self.spec.id, "value": {"error": message}})
        error = {"type": kind, "message": message}
        ex.last_error = {"node": self.spec.id, "path": self.path, **error}
        ex.emit(ev.NODE_END, self.path, {"node": self.spec.id, "status": "error",
                                         "duration": ex.now() - self._t0, "action": "error",
                                         "outputs": {"error": message}, "error": error})
        if ex.gate is not None:
            ex.gate.after(self.path, self.spec.id, None, "error", ex.now() - self._t0, error)
        return "error"

    def _item_ended(self, index: int, out: _ItemOutcome) -> None:
        """Tell the gate an item ended (a breakpoint on it may pause the run)."""
        self.ex.gate.after(f"{self.path}.iteration_{index}", self.spec.id,  # type: ignore[union-attr]
                           index, out.status, out.duration, out.error)


class PflowGroup(pocketflow.AsyncNode):
    """A parallel group: runs its branches concurrently, each in its own store.

    It stands in the PocketFlow graph between the fan-out node and the join. Each branch
    is a :class:`PflowFlow` of its own; its writes go to its own store, which siblings
    never see. When every branch has ended (or, with ``fail_fast``, when one failed and
    the others were cancelled) the branch stores are merged into the parent's, each
    branch is kept under ``<fanout>.branch_<i>``, root keys written by more than one
    branch are reported as races, and the join gets the branches' results.
    """

    def __init__(self, group: Group, flows: list[PflowFlow], ex: Execution) -> None:
        super().__init__()
        self.group, self.flows, self.ex = group, flows, ex
        self.path = ""

    async def _run_async(self, frame: Frame) -> str:  # type: ignore[override]
        ex, g = self.ex, self.group
        fan_path = ex.paths.get((frame.path, g.fanout), f"{frame.path}.{g.fanout}")
        self.path = fan_path
        n = len(self.flows)
        stores: list[dict[str, Any]] = [{} for _ in range(n)]
        results: list[dict[str, Any] | None] = [None] * n
        crashed: list[BaseException] = []
        limited = g.max_concurrent is not None and g.max_concurrent < n
        limiter = anyio.CapacityLimiter(g.max_concurrent) if limited else contextlib.nullcontext()

        async with anyio.create_task_group() as tg:

            async def run_branch(i: int) -> None:
                branch = g.branches[i]
                path = f"{fan_path}.branch_{i}"
                async with limiter:
                    bframe = Frame(stores[i], (stores[i], *frame.scope), path)
                    t0 = ex.now()
                    ex.emit(ev.BRANCH_START, path, {"group": g.name, "index": i, "start": branch.start})
                    ex.emit(ev.EDGE, fan_path, {"from": g.fanout, "to": branch.start,
                                                "action": g.action, "group": g.name})
                    try:
                        action = await self.flows[i].run_async(bframe)
                    except FlowRuntimeError as exc:
                        crashed.append(exc)
                        action = "error"
                    except BaseException:
                        ex.emit(ev.BRANCH_END, path, {"group": g.name, "index": i,
                                                      "status": "cancelled", "duration": ex.now() - t0})
                        raise
                    failed = isinstance(action, str) and action.startswith("error")
                    last_id, last_out = bframe.last or (branch.start, {})
                    result = {"index": i, "start": branch.start, "last": last_id,
                              "status": "error" if failed else "ok", "output": last_out}
                    if failed:
                        result["error"] = last_out.get("error") if isinstance(last_out, dict) else None
                    results[i] = result
                    ex.emit(ev.BRANCH_END, path, {"group": g.name, "index": i,
                                                  "status": result["status"],
                                                  "duration": ex.now() - t0, "last": last_id})
                    if failed and (g.error_handling == "fail_fast" or crashed):
                        tg.cancel_scope.cancel()

            for i in range(n):
                tg.start_soon(run_branch, i)
        if crashed:  # a sibling may have started since: the run's error names this node
            ex.last_node = getattr(crashed[0], "node", None) or ex.last_node
            raise crashed[0]
        return self._join(frame, fan_path, stores, results)

    def _join(self, frame: Frame, fan_path: str, stores: list[dict[str, Any]],
              results: list[dict[str, Any] | None]) -> str:
        ex, g = self.ex, self.group
        for store in stores:  # node namespaces: ids are unique, so nothing collides
            visits = store.get("__visits__")
            for key, value in store.items():
                if not _is_root_key(key):
                    _merge_namespace(frame.store, key, value,
                                     visits.get(key) if isinstance(visits, dict) else None)
        _merge_roots(ex, frame, [(f"{fan_path}.branch_{i}", s) for i, s in enumerate(stores)],
                     fan_path, concurrent=True)
        fan_ns = frame.store.get(g.fanout)
        if isinstance(fan_ns, dict):  # ${fanout.branch_1.node.key} addresses a branch's store
            kept = {**fan_ns, **{f"branch_{i}": st for i, st in enumerate(stores)},
                    # what the join receives, for ${fanout.aggregate.STAT.key}
                    "branch_results": [r["output"] if r is not None and r["status"] == "ok" else None
                                       for r in results]}
            frame.store[g.fanout] = kept
            history = frame.store.get("__visits__", {}).get(g.fanout)
            if history and history[-1] is fan_ns:  # ${fanout#2.branch_0...} too
                history[-1] = kept
        done = [r for r in results if r is not None]
        failed = [r for r in done if r["status"] == "error"]
        if failed and g.error_handling == "fail_fast":
            first = failed[0]
            message = f"branch {first['index']} ('{first['start']}') failed at '{first['last']}'"
            if first.get("error"):
                message += f": {to_text(first['error'])}"
            ex.last_error = {"node": first["last"], "path": f"{fan_path}.branch_{first['index']}",
                             "type": "BranchError", "message": message}
            return "error"
        for r in done:
            ex.emit(ev.EDGE, f"{fan_path}.branch_{r['index']}",
                    {"from": r["last"], "to": g.join, "action": "default", "group": g.name})
        ex.joins[(frame.path, g.join)] = [r if r is not None else
                                          {"index": i, "start": g.branches[i].start,
                                           "status": "cancelled", "output": None}
                                          for i, r in enumerate(results)]
        return "default"


class PflowFlow(pocketflow.AsyncFlow):
    """A flow (or a branch of one): PocketFlow's orchestration, with edges reported as events."""

    def __init__(self, start: pocketflow.BaseNode, ex: Execution) -> None:
        super().__init__(start)
        self.ex = ex

    def get_next_node(self, curr: pocketflow.BaseNode, action: str | None) -> Any:
        nxt = curr.successors.get(action or "default")
        src = getattr(curr, "path", "")
        if isinstance(curr, PflowGroup) or isinstance(nxt, PflowGroup):
            return nxt  # the group reports its own edges
        if nxt is not None:
            self.ex.emit(ev.EDGE, src, {"from": curr.spec.id, "to": nxt.spec.id,
                                        "action": action or "default"})
        elif curr.successors and not (action or "").startswith("error"):
            self.ex.emit(ev.WARNING, src, {
                "message": f"Flow ends: '{action}' not found in {list(curr.successors)}"})
        return nxt


def _store_reads(keys: tuple[str, ...], scope: Scope) -> dict[str, Any]:
    """The store keys a node type reads (``NodeType.reads``), where present in its scope."""
    found: dict[str, Any] = {}
    for key in keys:
        for layer in scope:
            if key in layer:
                found[key] = layer[key]
                break
    return found


def _is_root_key(key: str) -> bool:
    return len(key) > 4 and key.startswith("__") and key.endswith("__")


def _write_node(ex: Execution, frame: Frame, node_id: str, ns: dict[str, Any], path: str) -> None:
    """A node's outputs into its namespace; a node run again keeps every visit in
    ``__visits__[node_id]`` (``${node#2.key}`` and ``${node[*].key}`` read them)."""
    store = frame.store
    visit = ex.visits[(frame.path, node_id)]
    if visit > 1:
        history = store.setdefault("__visits__", {})
        if node_id not in history:
            history[node_id] = [store.get(node_id)] if visit == 2 else []
        history[node_id].append(ns)
    ex.write(store, node_id, ns, path)


def _merge_namespace(store: dict[str, Any], key: str, value: Any, runs: list[Any] | None) -> None:
    """A branch node's namespace into the parent store. Its earlier visits are kept in
    ``__visits__``: those in the branch (``runs``, a loop inside it) and those of earlier
    runs of the whole group (a loop around it)."""
    if runs is not None or key in store:
        visits = store.setdefault("__visits__", {})
        before = visits.get(key) or ([store[key]] if key in store else [])
        visits[key] = [*before, *(runs if runs is not None else [value])]
    store[key] = value


def _merge_roots(ex: Execution, frame: Frame, written: list[tuple[str, Any]], path: str, *,
                 concurrent: bool) -> None:
    """Root-level keys written by branches or iterations go to the parent, in order; when
    concurrent siblings wrote the same key, that is a race: a ``race`` event names them."""
    writers: dict[str, list[str]] = {}
    for where, store in written:
        if not isinstance(store, dict):
            continue
        for key, value in store.items():
            if _is_root_key(key) and key != "__visits__":
                writers.setdefault(key, []).append(where)
                ex.write(frame.store, key, value, where)
    if concurrent:
        for key, paths in writers.items():
            if len(paths) > 1:
                ex.emit(ev.RACE, path, {"key": key, "paths": paths,
                                        "message": f"{len(paths)} concurrent writers of '{key}': "
                                                   f"{paths[0]} and {paths[1]}"
                                                   + (f" (+{len(paths) - 2})" if len(paths) > 2 else "")
                                                   + "; the last one in order wins"})


def _visit_path(ex: Execution, prefix: str, node_id: str, max_visits: int) -> str:
    key = (prefix, node_id)
    ex.visits[key] += 1
    visit = ex.visits[key]
    if visit > max_visits:
        ex.last_node = node_id
        raise FlowRuntimeError(
            f"node '{node_id}' was reached {visit} times, more than max_visits "
            f"({max_visits}): the loop does not end; give it a way out (e.g. a route case "
            f"that leaves it), or raise \"max_visits\" in the flow",
            f"{prefix}.{node_id}#{visit}", node_id)
    path = f"{prefix}.{node_id}" if visit == 1 else f"{prefix}.{node_id}#{visit}"
    ex.paths[key] = path
    return path


def _abort_status(exc: BaseException) -> str:
    return "error" if isinstance(exc, FlowRuntimeError) else "cancelled"


def _template_warnings(ex: Execution, path: str, errors: list[str]) -> None:
    ex.shared.setdefault("__template_errors__", []).extend(f"{path}: {e}" for e in errors)
    for e in errors:
        ex.emit(ev.WARNING, path, {"message": f"unresolved template left as text: {e}"})


def compile_flow(spec: FlowSpec, ex: Execution, registry: Mapping[str, NodeType], *,
                 start: str | None = None, only: frozenset[str] | None = None,
                 limits: Mapping[str, Limit] | None = None,
                 _out: dict[str, list[Any]] | None = None) -> PflowFlow:
    """Build the PocketFlow object graph for ``spec`` (or for one branch of it: the nodes in
    ``only``, starting at ``start``).

    ``limits``: the rate limits of the flows around this one (a nested flow's); the flow's
    own ``rate_limits`` add the keys they do not have (the outer flow's limit wins).
    """
    if _out is None:  # edges by source node, so each branch looks only at its own
        _out = {}
        for e in spec.edges:
            _out.setdefault(e.src, []).append(e)
        own = {k: Limit.from_spec(k, v) for k, v in spec.rate_limits.items() if k not in (limits or {})}
        limits = {**own, **(limits or {})}
    assert limits is not None
    members = set(spec.nodes) if only is None else set(only)
    candidates = [g for g in spec.groups if g.fanout in members and g.join in members]
    # the outermost groups here; a group inside a branch is compiled with that branch
    groups = [g for g in candidates if not any(g.fanout in o.members for o in candidates)]
    inner = set().union(*(g.members for g in groups))
    nodes: dict[str, pocketflow.BaseNode] = {}
    for nid in members - inner:
        node = spec.nodes[nid]
        node_type = registry[node.type]
        if node.type == "workflow":
            node_type = workflow_type(spec, node, ex, registry, limits)
            node = child_node_spec(node)
        cls = PflowBatchNode if node.batch else PflowNode
        nodes[nid] = cls(node, node_type, ex, spec, limits)
    group_edges = set()
    for g in groups:
        flows = [compile_flow(spec, ex, registry, start=b.start, only=frozenset(b.nodes),
                              limits=limits, _out=_out)
                 for b in g.branches]
        group_node = PflowGroup(g, flows, ex)
        nodes[g.fanout].next(group_node, g.action)
        if g.join in nodes:
            group_node.next(nodes[g.join], "default")
        group_edges.update((g.fanout, b.start) for b in g.branches)
    for src in nodes:
        for e in _out.get(src, ()):
            if e.dst in nodes and (e.src, e.dst) not in group_edges:
                nodes[e.src].next(nodes[e.dst], e.action)
    return PflowFlow(nodes[start or spec.start], ex)


from .workflow import child_node_spec, workflow_type  # noqa: E402  (it compiles flows too)
