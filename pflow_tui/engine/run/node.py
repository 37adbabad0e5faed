"""A single IR node (no ``batch``) as a ``pocketflow.AsyncNode``."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import pocketflow

from ..ir.spec import FlowSpec, NodeSpec
from ..nodes.base import NodeAbort, NodeType
from ..trace import events as ev
from ..trace.events import error_info
from .execution import Execution, Frame, NodeAborted, store_reads, template_warnings
from .land import land_aborted, land_node
from .limits import Limit
from .params import Params, TemplateFailure
from .work import Call, Failed, Work, place, retries


class PflowNode(Work, pocketflow.AsyncNode):
    """One IR node without ``batch``."""

    def __init__(self, spec: NodeSpec, node_type: NodeType, ex: Execution, flow: FlowSpec,
                 limits: Mapping[str, Limit]) -> None:
        tries, wait = retries(node_type, spec)
        super().__init__(max_retries=tries, wait=wait)
        self.spec, self.node_type, self.ex, self.flow = spec, node_type, ex, flow
        self.limiter = None
        self.compiled = Params(spec.params, node_type, flow.strict_templates)
        self.path = ""
        place(self, limits)

    async def _run_async(self, frame: Frame) -> str:  # type: ignore[override]
        ex = self.ex
        await self._enter(frame)
        if ex.cache is not None and (action := self._restore(frame)) is not None:
            return action  # a re-run: the recorded result stands in for this step
        t0 = ex.now()
        try:
            return await super()._run_async(frame)
        except TemplateFailure as exc:
            ex.emit(ev.NODE_START, self.path, {"node": self.spec.id, "type": self.spec.type})
            return self._land(frame, {"error": str(exc)},
                              {"type": "TemplateError", "message": str(exc)}, t0, 0)
        except NodeAborted:
            raise
        except BaseException as exc:
            land_aborted(ex, self.spec, self.path, exc, t0)
            raise

    def _restore(self, frame: Frame) -> str | None:
        """A re-run: the step as recorded, when the cache has it (its events say ``cached``)."""
        ex = self.ex
        hit = ex.cache.node(self, frame.path, frame.scope)  # type: ignore[union-attr]
        if hit is None:
            return None
        nid = self.spec.id
        ex.joins.pop((frame.path, nid), None)
        ex.emit(ev.NODE_START, self.path, {"node": nid, "type": self.spec.type, "params": hit.params,
                                           "cached": True})
        return land_node(ex, self.flow, self.spec, self.node_type, self.path, frame, hit.outputs,
                         None, 0.0, 0, action=hit.action, cached=True)

    async def prep_async(self, frame: Frame) -> Call:  # PocketFlow hook
        errors: list[str] = []
        params, _ = self.compiled.resolve(frame.scope, errors)
        if self.node_type.reads:
            params["__store__"] = store_reads(self.node_type.reads, frame.scope)
        if errors:
            template_warnings(self.ex, self.path, errors)
        self.ex.emit(ev.NODE_START, self.path, {"node": self.spec.id, "type": self.spec.type,
                                                "params": params})
        self._t0 = self.ex.now()
        call = Call(self.path, params, None, self.ex.base_dir, self.ex.resources)
        call.branches = self.ex.joins.pop((frame.path, self.spec.id), None)
        return call

    async def post_async(self, frame: Frame, call: Call, result: Any) -> str:  # PocketFlow hook
        if result.__class__ is Failed and isinstance(result.exc, NodeAbort):
            # pflow raises this out of the node: no error edge, the run fails
            self._land(frame, {}, error_info(result.exc), self._t0, call.attempt)
            raise NodeAborted(str(result.exc), self.path, self.spec.id) from result.exc
        outputs, error = self.outcome(result)
        if self.counts_usage:
            self.ex.usage.add(outputs)
        return self._land(frame, outputs, error, self._t0, call.attempt)

    def _land(self, frame: Frame, outputs: dict[str, Any], error: dict | None, t0: float,
              attempts: int) -> str:
        return land_node(self.ex, self.flow, self.spec, self.node_type, self.path, frame, outputs,
                         error, t0, attempts)
