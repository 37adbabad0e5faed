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
from typing import Any

import anyio
import anyio.to_thread
import orjson
import pocketflow

from . import events as ev
from .events import Emitter, error_info
from .ir import FlowSpec, NodeSpec
from .nodes.base import NodeType, RunContext
from .templates import Scope, Template, Unresolved, compile_value, to_text


class FlowRuntimeError(Exception):
    """A run-time failure of the flow itself (not of one node), e.g. a loop limit."""

    def __init__(self, message: str, path: str = "") -> None:
        super().__init__(message)
        self.path = path


class TemplateFailure(Exception):
    """Params that cannot be resolved in strict mode; the node fails without retrying."""


@dataclass(slots=True)
class Frame:
    """What PocketFlow passes as ``shared``: where a node reads, writes and is addressed."""

    store: dict[str, Any]
    scope: Scope
    path: str


class Execution:
    """Run-wide state shared by every compiled node of one run."""

    def __init__(self, spec: FlowSpec, emitter: Emitter, inputs: dict[str, Any],
                 shared: dict[str, Any]) -> None:
        self.spec = spec
        self.emitter = emitter
        self.emit = emitter.emit
        self.now = emitter.now
        self.inputs = inputs
        self.shared = shared
        self.visits: Counter[str] = Counter()
        self.base_dir = str(spec.base_dir)
        self.last_node: str | None = None
        self.last_error: dict[str, Any] | None = None

    def write_root(self, key: str, value: Any, path: str) -> None:
        self.shared[key] = value
        self.emit(ev.STORE_WRITE, path, {"key": key, "value": value})


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
        for key, value in raw.items():
            tpl = compile_value(value)
            ptype = p.type if (p := node_type.param(key)) else "any"
            if tpl.is_constant:
                self.constant[key] = _coerce(tpl.resolve(()), ptype)
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


_COERCED = ("str", "dict", "list")


def _coerce(value: Any, ptype: str) -> Any:
    """pflow's param coercion: dict/list into a str param -> JSON; JSON text into dict/list."""
    if ptype == "str" and isinstance(value, (dict, list)):
        return to_text(value)
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
            from .templates import Ref, parse_text

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
    max_retries: int
    limiter: anyio.CapacityLimiter | None

    async def exec_async(self, call: Call) -> Mapping[str, Any]:  # PocketFlow hook
        call.attempt += 1
        traced = self.max_retries > 1
        if traced:
            t0 = self.ex.now()
            self.ex.emit(ev.ATTEMPT_START, call.path, {"attempt": call.attempt})
        nt = self.node_type
        try:
            if nt.is_async:
                out = await nt.run(call.params, call)  # type: ignore[misc]
            elif nt.blocking:
                call.cancel = threading.Event()
                out = await anyio.to_thread.run_sync(nt.run, call.params, call, limiter=self.limiter,
                                                     abandon_on_cancel=True)
            else:
                out = nt.run(call.params, call)
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


class PflowNode(_Work, pocketflow.AsyncNode):
    """One IR node without ``batch``."""

    def __init__(self, spec: NodeSpec, node_type: NodeType, ex: Execution) -> None:
        retries, wait = _retries(node_type, spec)
        super().__init__(max_retries=retries, wait=wait)
        self.spec, self.node_type, self.ex = spec, node_type, ex
        self.limiter = None
        self.compiled = Params(spec.params, node_type, ex.spec.strict_templates)
        self.path = ""

    async def _run_async(self, frame: Frame) -> str:  # type: ignore[override]
        ex = self.ex
        self.path = _visit_path(ex, frame.path, self.spec.id)
        t0 = ex.now()
        ex.last_node = self.spec.id
        try:
            return await super()._run_async(frame)
        except TemplateFailure as exc:
            ex.emit(ev.NODE_START, self.path, {"node": self.spec.id, "type": self.spec.type})
            return self._finish(frame, {"error": str(exc)},
                                {"type": "TemplateError", "message": str(exc)}, t0, 0)
        except BaseException as exc:
            ex.emit(ev.NODE_END, self.path, {"node": self.spec.id, "status": _abort_status(exc),
                                             "duration": ex.now() - t0})
            raise

    async def prep_async(self, frame: Frame) -> Call:  # PocketFlow hook
        errors: list[str] = []
        params, _ = self.compiled.resolve(frame.scope, errors)
        if errors:
            _template_warnings(self.ex, self.path, errors)
        self.ex.emit(ev.NODE_START, self.path, {"node": self.spec.id, "type": self.spec.type,
                                                "params": params})
        self._t0 = self.ex.now()
        return Call(self.path, params, None, self.ex.base_dir)

    async def post_async(self, frame: Frame, call: Call, result: Any) -> str:  # PocketFlow hook
        outputs, error = self.outcome(result)
        return self._finish(frame, outputs, error, self._t0, call.attempt)

    def _finish(self, frame: Frame, outputs: dict[str, Any], error: dict | None, t0: float,
                attempts: int) -> str:
        ex = self.ex
        ns, root = _split(outputs)
        if ex.spec.namespacing:
            frame.store[self.spec.id] = ns
            ex.emit(ev.STORE_WRITE, self.path, {"key": self.spec.id, "value": ns})
        else:
            root = {**ns, **root}
        for k, v in root.items():
            ex.write_root(k, v, self.path)
        action = "error" if error else "default"
        fields = {"node": self.spec.id, "status": "error" if error else "ok",
                  "duration": ex.now() - t0, "action": action, "attempts": attempts,
                  "outputs": outputs}
        if error:
            fields["error"] = error
            ex.last_error = {"node": self.spec.id, "path": self.path, **error}
        ex.emit(ev.NODE_END, self.path, fields)
        return action


class _ItemOutcome:
    __slots__ = ("duration", "error", "result", "status")

    def __init__(self, status: str, result: dict[str, Any] | None, error: dict | None,
                 duration: float) -> None:
        self.status, self.result, self.error, self.duration = status, result, error, duration


class PflowBatchNode(_Work, pocketflow.AsyncParallelBatchNode):
    """One IR node with ``batch``: every item runs the node's work in its own namespace."""

    def __init__(self, spec: NodeSpec, node_type: NodeType, ex: Execution) -> None:
        retries, wait = _retries(node_type, spec)
        super().__init__(max_retries=retries, wait=wait)
        assert spec.batch is not None
        self.spec, self.node_type, self.ex, self.batch = spec, node_type, ex, spec.batch
        self.compiled = Params(spec.params, node_type, ex.spec.strict_templates)
        self.items_template = compile_value(spec.batch.items)
        self._alias = spec.batch.alias
        self.limiter = anyio.CapacityLimiter(spec.batch.max_concurrent) if spec.batch.parallel else None
        self.path = ""

    async def _run_async(self, frame: Frame) -> str:  # type: ignore[override]
        ex = self.ex
        self.path = _visit_path(ex, frame.path, self.spec.id)
        self._t0 = ex.now()
        self._frame = frame
        ex.last_node = self.spec.id
        try:
            return await super()._run_async(frame)
        except TemplateFailure as exc:
            ex.emit(ev.NODE_START, self.path, {"node": self.spec.id, "type": self.spec.type})
            return self._fail(frame, str(exc), "TemplateError")
        except BaseException as exc:
            ex.emit(ev.NODE_END, self.path, {"node": self.spec.id, "status": _abort_status(exc),
                                             "duration": ex.now() - self._t0})
            raise

    async def prep_async(self, frame: Frame) -> list[Any]:  # PocketFlow hook
        try:
            items = self.items_template.resolve(frame.scope)
        except Unresolved as exc:
            raise TemplateFailure(f"batch.items: {exc}") from None
        if isinstance(items, str) and items[:1] == "[":
            with contextlib.suppress(orjson.JSONDecodeError):
                items = orjson.loads(items)
        if not isinstance(items, list):
            raise TemplateFailure(
                f"batch.items must resolve to a list, got {type(items).__name__}"
                + (f": {to_text(items)[:80]!r}" if items is not None else " (None)"))
        b = self.batch
        self.ex.emit(ev.NODE_START, self.path, {
            "node": self.spec.id, "type": self.spec.type, "params": self.compiled.constant,
            "batch": {"count": len(items), "parallel": b.parallel,
                      "max_concurrent": b.max_concurrent if b.parallel else 1,
                      "error_handling": b.error_handling, "as": b.alias}})
        return items

    async def _exec(self, items: list[Any]) -> list[_ItemOutcome | None]:  # type: ignore[override]
        outcomes: list[_ItemOutcome | None] = [None] * len(items)
        fail_fast = self.batch.error_handling == "fail_fast"
        frame = self._frame
        if not self.batch.parallel:
            for i, item in enumerate(items):
                out = outcomes[i] = await self._run_item(i, item, frame)
                if fail_fast and out.status == "error":
                    break
            return outcomes

        pending = iter(enumerate(items))
        async with anyio.create_task_group() as tg:
            async def worker() -> None:
                for i, item in pending:
                    out = outcomes[i] = await self._run_item(i, item, frame)
                    if fail_fast and out.status == "error":
                        tg.cancel_scope.cancel()
                        return

            for _ in range(min(self.batch.max_concurrent, len(items))):
                tg.start_soon(worker)
        return outcomes

    async def _run_item(self, index: int, item: Any, frame: Frame) -> _ItemOutcome:
        """One iteration: resolve its params, run PocketFlow's retry loop, record it.

        This is the per-item hot path of every batch: keep it lean.
        """
        ex = self.ex
        emit = ex.emit
        path = f"{self.path}.iteration_{index}"
        t0 = perf_counter()
        scope = ({self._alias: item, "__index__": index}, *frame.scope)
        errors: list[str] | None = None if self.compiled.strict else []
        try:
            params, resolved = self.compiled.resolve(scope, errors)
        except TemplateFailure as exc:
            emit(ev.ITEM_START, path, {"index": index, "item": item})
            error = {"type": "TemplateError", "message": str(exc)}
            emit(ev.ITEM_END, path, {"index": index, "status": "error", "duration": 0.0,
                                     "attempts": 0, "outputs": {"error": str(exc)}, "error": error})
            return _ItemOutcome("error", {"error": str(exc), "item": item}, error, 0.0)
        if errors:
            _template_warnings(ex, path, errors)
        send = ex.emitter.send
        send({"seq": 0, "t": 0.0, "kind": ev.ITEM_START, "path": path, "index": index, "item": item,
              "params": resolved})
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

    async def post_async(self, frame: Frame, items: list[Any],  # type: ignore[override]
                         outcomes: list[_ItemOutcome | None]) -> str:
        ex = self.ex
        b = self.batch
        errors = [
            {"index": i, "item": items[i], "error": o.error["message"] if o.error else "",
             "exception": None if o.result is not None else o.error}
            for i, o in enumerate(outcomes) if o is not None and o.status == "error"
        ]
        done = [o.duration * 1000 for o in outcomes if o is not None]
        output = {
            "results": [o.result if o is not None else None for o in outcomes],
            "count": len(items),
            "success_count": sum(1 for o in outcomes if o is not None and o.status == "ok"),
            "error_count": len(errors),
            "errors": errors or None,
            "batch_metadata": {
                "parallel": b.parallel,
                "max_concurrent": b.max_concurrent if b.parallel else None,
                "max_retries": self.max_retries,
                "retry_wait": self.wait or None,
                "execution_mode": "parallel" if b.parallel else "sequential",
                "timing": {
                    "total_items_ms": round(sum(done), 3),
                    "avg_item_ms": round(sum(done) / len(done), 3),
                    "min_item_ms": round(min(done), 3),
                    "max_item_ms": round(max(done), 3),
                } if done else None,
            },
        }
        failed_fast = b.error_handling == "fail_fast" and bool(errors)
        summary = {k: v for k, v in output.items() if k != "results"}
        frame.store[self.spec.id] = output
        ex.emit(ev.STORE_WRITE, self.path, {"key": self.spec.id, "value": summary,
                                            "omitted": ["results"]})
        fields: dict[str, Any] = {
            "node": self.spec.id, "status": "error" if failed_fast else "ok",
            "duration": ex.now() - self._t0, "action": "error" if failed_fast else "default",
            "outputs": summary,
            "progress": {"done": output["success_count"], "failed": len(errors),
                         "total": len(items)}}
        if failed_fast:
            first = errors[0]
            msg = f"item {first['index']} failed: {first['error']}"
            fields["error"] = {"type": "BatchItemError", "message": msg}
            ex.last_error = {"node": self.spec.id, "path": f"{self.path}.iteration_{first['index']}",
                             "type": "BatchItemError", "message": msg}
            output["error"] = msg
        ex.emit(ev.NODE_END, self.path, fields)
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
        return "error"


class PflowFlow(pocketflow.AsyncFlow):
    """The flow: PocketFlow's orchestration, with edges reported as events."""

    def __init__(self, start: pocketflow.BaseNode, ex: Execution) -> None:
        super().__init__(start)
        self.ex = ex

    def get_next_node(self, curr: pocketflow.BaseNode, action: str | None) -> Any:
        nxt = curr.successors.get(action or "default")
        src = getattr(curr, "path", "")
        if nxt is not None:
            self.ex.emit(ev.EDGE, src, {"from": curr.spec.id, "to": nxt.spec.id,
                                        "action": action or "default"})
        elif curr.successors and not (action or "").startswith("error"):
            self.ex.emit(ev.WARNING, src, {
                "message": f"Flow ends: '{action}' not found in {list(curr.successors)}"})
        return nxt


def _visit_path(ex: Execution, prefix: str, node_id: str) -> str:
    ex.visits[node_id] += 1
    visit = ex.visits[node_id]
    if visit > ex.spec.max_visits:
        ex.last_node = node_id
        raise FlowRuntimeError(
            f"node '{node_id}' was reached {visit} times, more than max_visits "
            f"({ex.spec.max_visits}); the loop does not end, or raise \"max_visits\" in the flow",
            f"{prefix}.{node_id}#{visit}")
    return f"{prefix}.{node_id}" if visit == 1 else f"{prefix}.{node_id}#{visit}"


def _abort_status(exc: BaseException) -> str:
    return "error" if isinstance(exc, FlowRuntimeError) else "cancelled"


def _template_warnings(ex: Execution, path: str, errors: list[str]) -> None:
    ex.shared.setdefault("__template_errors__", []).extend(f"{path}: {e}" for e in errors)
    for e in errors:
        ex.emit(ev.WARNING, path, {"message": f"unresolved template left as text: {e}"})


def compile_flow(spec: FlowSpec, ex: Execution, registry: Mapping[str, NodeType]) -> PflowFlow:
    """Build the PocketFlow object graph for ``spec``."""
    nodes: dict[str, pocketflow.AsyncNode] = {}
    for nid, node in spec.nodes.items():
        cls = PflowBatchNode if node.batch else PflowNode
        nodes[nid] = cls(node, registry[node.type], ex)
    for e in spec.edges:
        nodes[e.src].next(nodes[e.dst], e.action)
    return PflowFlow(nodes[spec.start], ex)


