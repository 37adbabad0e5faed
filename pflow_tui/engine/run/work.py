"""What single and batch nodes share: one attempt of the node type's work, and where it runs.

PocketFlow keeps doing what it does: prep/exec/post and the retry loop (``max_retries``,
``wait``). :class:`Work` supplies ``exec_async`` (one attempt: inline, on the event loop, in
a thread, in a worker process or on a Dask cluster, after the limits it waits on) and
``exec_fallback_async``.
"""

from __future__ import annotations

import threading
from collections.abc import Mapping
from typing import Any

import anyio
import anyio.to_thread
import pocketflow

from ..ir.spec import FlowSpec, NodeSpec
from ..ir.templates import to_text
from ..nodes.base import CLUSTER, INLINE, LOOP, PROCESS, THREAD, NodeType, RunContext, RunResources, run_ref
from ..trace import events as ev
from ..trace.events import error_info
from .cluster import cluster_attempt
from .execution import Execution, Frame, visit_path
from .limits import Limit, hold, release
from .pool import job


class Call(RunContext):
    """One execution of a node's work (a node step, or one batch item).

    It is also the :class:`RunContext` the node type sees, so an attempt allocates nothing.
    """

    __slots__ = ("params", "visits", "worker")

    def __init__(self, path: str, params: dict[str, Any], index: int | None, base_dir: str,
                 resources: RunResources | None = None) -> None:
        self.path = path
        self.params = params
        self.index = index
        self.attempt = 0
        self.base_dir = base_dir
        self.cancel = None
        self.branches = None
        self.resources = resources
        self.worker: str | None = None  # on a cluster: the worker that ran the last attempt
        #: a nested flow on a cluster: its nodes' visits in the attempts so far (cluster_nested)
        self.visits: dict[tuple[str, str], int] | None = None


class Failed:
    """exec's result when every attempt raised (PocketFlow's exec_fallback)."""

    __slots__ = ("exc",)

    def __init__(self, exc: BaseException) -> None:
        self.exc = exc


class Work:
    """The part common to single and batch nodes: one attempt of the node type's work."""

    spec: NodeSpec
    node_type: NodeType
    ex: Execution
    flow: FlowSpec
    path: str
    max_retries: int
    limiter: anyio.CapacityLimiter | None
    limits: tuple[Limit, ...]  # waited on before each attempt: process slots, a rate limit
    where: str  # INLINE, LOOP, THREAD, PROCESS or CLUSTER (nodes.base)
    counts_usage: bool  # its calls' outputs go to the run's UsageTally (llm_usage declared)
    ref: str | None  # the node type's run function by name, for a worker process

    async def _enter(self, frame: Frame) -> None:
        """This visit's path; with a gate, wait there until the node may start."""
        ex = self.ex
        self.path = visit_path(ex, frame.path, self.spec.id, self.flow.max_visits)
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
        if self.where == CLUSTER:  # its own events: the wait on the cluster, the worker
            try:
                return await cluster_attempt(self, call, traced)
            finally:
                if limits:
                    release(limits, call)
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

    async def exec_fallback_async(self, call: Call, exc: Exception) -> Failed:  # PocketFlow hook
        return Failed(exc)

    def outcome(self, result: Mapping[str, Any] | Failed) -> tuple[dict[str, Any], dict | None]:
        """(outputs, error info) of a finished call."""
        if result.__class__ is Failed:
            info = error_info(result.exc)  # type: ignore[union-attr]
            return {"error": info["message"]}, info
        if "error" in result:
            return dict(result), {"type": "NodeError", "message": to_text(result["error"])}
        return (result if result.__class__ is dict else dict(result)), None  # type: ignore[return-value]


#: PocketFlow's retry loop, run per item
attempts = pocketflow.AsyncNode._exec


def retries(node_type: NodeType, spec: NodeSpec) -> tuple[int, float]:
    """Attempts and wait: a batch's own config for its items, else the node type's defaults."""
    if spec.batch is not None:
        return spec.batch.max_retries, spec.batch.retry_wait
    return node_type.max_retries, node_type.wait


def place(work: Work, limits: Mapping[str, Limit]) -> None:
    """Where ``work``'s attempts run (process, thread, event loop) and what they wait on."""
    spec, node_type = work.spec, work.node_type
    where = spec.executor or node_type.executor
    if where in (PROCESS, CLUSTER) and work.ex.on_worker:
        where = THREAD  # a nested flow on a Dask worker: the worker is that process already
    if where == THREAD and node_type.is_async:
        where = LOOP  # (validation rejects it; a coroutine runs on the loop in any case)
    work.where = where
    work.counts_usage = "llm_usage" in node_type.outputs
    work.ref = run_ref(node_type.run) if where in (PROCESS, CLUSTER) else None
    held: list[Limit] = [work.ex.process_pool()[0]] if where == PROCESS else []
    key = spec.rate_limit_key or spec.type
    if key in limits and spec.type != "workflow":
        held.append(limits[key])
    work.limits = tuple(held)
