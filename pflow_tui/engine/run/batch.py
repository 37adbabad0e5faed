"""An IR node with ``batch`` as a ``pocketflow.AsyncParallelBatchNode``: every item runs
the node's work in its own namespace."""

from __future__ import annotations

import contextlib
from collections.abc import Mapping
from time import perf_counter
from typing import Any

import anyio
import orjson
import pocketflow

from ..ir.items import ItemsError, LineSource
from ..ir.spec import FlowSpec, NodeSpec
from ..ir.templates import Ref, Scope, Template, Unresolved, compile_value, parse_text, to_text
from ..nodes.base import NodeType
from ..trace import events as ev
from .collect import BatchOutput
from .execution import Execution, Frame, store_reads, template_warnings
from .labels import LabelTemplate, item_label
from .land import (
    ItemOutcome,
    item_started,
    land_aborted,
    land_batch,
    land_failed,
    land_item,
    land_item_aborted,
)
from .limits import Limit
from .params import Params, TemplateFailure
from .spill import LazyList
from .work import Call, Failed, Work, attempts, place, retries


class PflowBatchNode(Work, pocketflow.AsyncParallelBatchNode):
    """One IR node with ``batch``: every item runs the node's work in its own namespace.

    Items come from a list, a spilled list or a :class:`~pflow_tui.engine.items.LineSource`
    and are taken one at a time. With ``batch_size`` the results spill to a file
    (:mod:`pflow_tui.engine.run.collect`) and a parallel batch never runs or holds more than
    ``batch_size`` items between the oldest one still running and the newest started.
    """

    def __init__(self, spec: NodeSpec, node_type: NodeType, ex: Execution, flow: FlowSpec,
                 limits: Mapping[str, Limit]) -> None:
        tries, wait = retries(node_type, spec)
        super().__init__(max_retries=tries, wait=wait)
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
        place(self, limits)

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
            return land_failed(ex, self.spec, self.path, frame, str(exc), kind, self._t0)
        except BaseException as exc:
            if self._out is not None:
                self._out.discard()
            land_aborted(ex, self.spec, self.path, exc, self._t0)
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

        def ended(i: int, item: Any, o: ItemOutcome) -> bool:
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

    def _restore(self, index: int, item: Any, path: str, frame: Frame) -> ItemOutcome | None:
        """A re-run: the iteration as recorded, when the cache has it (events say ``cached``)."""
        scope = ({self._alias: item, "__index__": index}, *frame.scope)
        hit = self.ex.cache.item(self, index, item, frame.path, scope)  # type: ignore[union-attr]
        if hit is None:
            return None
        ex = self.ex
        send = ex.emitter.send
        item_started(send, path, index, self.label_of(scope, item), item, hit.params, True)
        return land_item(send, path, index, item, hit.outputs, None, 0.0, 0, False, True)

    async def _run_item(self, index: int, item: Any, frame: Frame) -> ItemOutcome:
        """One iteration: resolve its params, run PocketFlow's retry loop, record it.

        This is the per-item hot path of every batch: keep it lean.
        """
        ex = self.ex
        if ex.stop is not None and ex.stop.is_set():
            await ex.stopping()
        path = f"{self.path}.iteration_{index}"
        if ex.cache is not None and (restored := self._restore(index, item, path, frame)):
            return restored  # a re-run: the recorded iteration stands in for this one
        t0 = perf_counter()
        scope = ({self._alias: item, "__index__": index}, *frame.scope)
        label = item_label(item) if self._label is None else self._label.render(scope, item)
        errors: list[str] | None = None if self.compiled.strict else []
        try:
            params, resolved = self.compiled.resolve(scope, errors)
        except TemplateFailure as exc:
            send = ex.emitter.send
            item_started(send, path, index, label, item, None)
            return land_item(send, path, index, item, {"error": str(exc)},
                             {"type": "TemplateError", "message": str(exc)}, 0.0, 0)
        if self.node_type.reads:
            params["__store__"] = store_reads(self.node_type.reads, scope)
        if ex.gate is not None:  # paused, stepping or a breakpoint: wait before item.start
            await ex.gate.before_item(path, self.spec.id, index, item, resolved)
            await ex.stopping()
            t0 = perf_counter()
        if errors:
            template_warnings(ex, path, errors)
        send = ex.emitter.send
        item_started(send, path, index, label, item, resolved)
        call = Call(path, params, index, ex.base_dir, ex.resources)
        try:
            result = await attempts(self, call)
        except BaseException as exc:
            land_item_aborted(ex, path, index, exc, perf_counter() - t0, call.attempt, call.worker)
            raise
        if self.counts_usage:
            ex.usage.add(result)
        if result.__class__ is dict and "error" not in result:  # the common case
            return land_item(send, path, index, item, result, None, perf_counter() - t0, call.attempt,
                             False, False, call.worker)
        outputs, error = self.outcome(result)
        return land_item(send, path, index, item, outputs, error, perf_counter() - t0, call.attempt,
                         result.__class__ is Failed, False, call.worker)

    async def post_async(self, frame: Frame, items: Any,  # type: ignore[override]
                         out: BatchOutput) -> str:
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
        failure: tuple[str, str, str] | None = None
        if out.source_error is not None:
            failure = (out.source_error, "ItemsError", self.path)
        elif b.error_handling == "fail_fast" and errors:
            first = errors[0]
            failure = (f"item {first['index']} failed: {first['error']}", "BatchItemError",
                       f"{self.path}.iteration_{first['index']}")
        return land_batch(self.ex, self.spec, self.path, frame, output, self._t0,
                          {"done": out.ok, "failed": out.failed, "total": out.count}, failure,
                          [(f"{self.path}.iteration_{i}", r) for i, r in roots], b.parallel)

    def _item_ended(self, index: int, out: ItemOutcome) -> None:
        """Tell the gate an item ended (a breakpoint on it may pause the run)."""
        self.ex.gate.after(f"{self.path}.iteration_{index}", self.spec.id,  # type: ignore[union-attr]
                           index, out.status, out.duration, out.error)
