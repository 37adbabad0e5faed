"""How a step lands: the one place that ends a node step or a batch iteration.

A step that ran and a step a re-run restores from its trace (``cached``) land the same
way: the outputs are split into the node's namespace and root-level ``__x__`` keys,
written to the store (as ``store.write`` events), ``frame.last`` is set, the end event
is emitted and the gate is told (a breakpoint on the step may pause the run). Item
events are built here too, for both.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from ..ir.templates import to_text
from ..trace import events as ev
from ..trace.events import Sink
from .execution import Execution, FlowRuntimeError, Frame, is_root_key

if TYPE_CHECKING:
    from ..ir.spec import FlowSpec, NodeSpec
    from ..nodes.base import NodeType


class ItemOutcome:
    """How one batch iteration ended: what the batch collects (see collect.py)."""

    __slots__ = ("duration", "error", "result", "status")

    def __init__(self, status: str, result: dict[str, Any] | None, error: dict | None,
                 duration: float) -> None:
        self.status, self.result, self.error, self.duration = status, result, error, duration


def split_outputs(outputs: Mapping[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """Namespaced outputs vs. root-level ``__x__`` keys."""
    ns: dict[str, Any] = {}
    root: dict[str, Any] = {}
    for k, v in outputs.items():
        (root if k.startswith("__") and k.endswith("__") and len(k) > 4 else ns)[k] = v
    return ns, root


def write_node(ex: Execution, frame: Frame, node_id: str, ns: dict[str, Any], path: str) -> None:
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


def land_node(ex: Execution, flow: FlowSpec, spec: NodeSpec, node_type: NodeType, path: str,
              frame: Frame, outputs: dict[str, Any], error: dict | None, t0: float, attempts: int,
              *, action: str | None = None, cached: bool = False) -> str:
    """End a single node's step: its outputs into the store, ``node.end``, the gate; returns
    the action it routes with. ``cached``: restored by a re-run (duration 0, the recorded
    ``action``, no warnings emitted again)."""
    node_id = spec.id
    ns, root = split_outputs(outputs)
    if flow.namespacing:
        write_node(ex, frame, node_id, ns, path)
    else:
        root = {**ns, **root}
    for k, v in root.items():
        ex.write(frame.store, k, v, path)
    frame.last = (node_id, outputs)
    if cached:
        duration = 0.0
    else:
        warnings = outputs.get("warnings")
        for warning in warnings if isinstance(warnings, list) else ():
            ex.emit(ev.WARNING, path, {"message": to_text(warning)})
        action = "error" if error else "default"
        key = node_type.action_key
        if key and not error and outputs.get(key):
            action = to_text(outputs[key])
        duration = ex.now() - t0
    fields = {"node": node_id, "status": "error" if error else "ok", "duration": duration,
              "action": action, "attempts": attempts, "outputs": outputs}
    if error:
        fields["error"] = error
        ex.last_error = {"node": node_id, "path": path, **error}
    if cached:
        fields["cached"] = True
    ex.emit(ev.NODE_END, path, fields)
    if ex.gate is not None:  # (a node stepped over ends here too)
        ex.gate.after(path, node_id, None, fields["status"], duration, error)
    return action  # type: ignore[return-value]


def land_batch(ex: Execution, spec: NodeSpec, path: str, frame: Frame, output: dict[str, Any],
               t0: float, progress: dict[str, int], failure: tuple[str, str, str] | None,
               roots: list[tuple[str, Any]], concurrent: bool) -> str:
    """End a batch node: its output (results, counts, metadata) into the store (the
    ``store.write`` event leaves the results out), then the root-level keys its iterations
    wrote (``roots``), ``node.end``, the gate. ``failure``: (message, error type, path where
    it happened) when the batch failed."""
    summary = {k: v for k, v in output.items() if k != "results"}
    frame.store[spec.id] = output
    ex.emit(ev.STORE_WRITE, path, {"key": spec.id, "value": summary, "omitted": ["results"]})
    merge_roots(ex, frame, roots, path, concurrent=concurrent)
    frame.last = (spec.id, output)
    fields: dict[str, Any] = {
        "node": spec.id, "status": "error" if failure else "ok",
        "duration": ex.now() - t0, "action": "error" if failure else "default",
        "outputs": summary, "progress": progress}
    if failure:
        message, kind, where = failure
        fields["error"] = {"type": kind, "message": message}
        ex.last_error = {"node": spec.id, "path": where, "type": kind, "message": message}
        output["error"] = message
    ex.emit(ev.NODE_END, path, fields)
    if ex.gate is not None:
        ex.gate.after(path, spec.id, None, fields["status"], fields["duration"], fields.get("error"))
    return fields["action"]


def land_failed(ex: Execution, spec: NodeSpec, path: str, frame: Frame, message: str, kind: str,
                t0: float) -> str:
    """End a node that failed before its work began (its items or params did not resolve):
    ``{"error": message}`` in its namespace, ``node.end`` with the error, the gate."""
    frame.store[spec.id] = {"error": message}
    ex.emit(ev.STORE_WRITE, path, {"key": spec.id, "value": {"error": message}})
    error = {"type": kind, "message": message}
    ex.last_error = {"node": spec.id, "path": path, **error}
    ex.emit(ev.NODE_END, path, {"node": spec.id, "status": "error", "duration": ex.now() - t0,
                                "action": "error", "outputs": {"error": message}, "error": error})
    if ex.gate is not None:
        ex.gate.after(path, spec.id, None, "error", ex.now() - t0, error)
    return "error"


def land_aborted(ex: Execution, spec: NodeSpec, path: str, exc: BaseException, t0: float) -> None:
    """End a node step that did not finish (cancelled, or the flow failed under it)."""
    ex.emit(ev.NODE_END, path, {"node": spec.id, "status": abort_status(exc),
                                "duration": ex.now() - t0})


def abort_status(exc: BaseException) -> str:
    """The status of a step that ``exc`` ended before it finished."""
    return "error" if isinstance(exc, FlowRuntimeError) else "cancelled"


# --- batch iterations: the per-item hot path (one dict per event, built in place and
# stamped by the emitter's ``send``) ---

def item_started(send: Sink, path: str, index: int, label: str, item: Any, params: Any,
                 cached: bool = False) -> None:
    """``item.start`` of iteration ``index`` (``params`` None: they did not resolve)."""
    event = {"seq": 0, "t": 0.0, "kind": ev.ITEM_START, "path": path, "index": index,
             "label": label, "item": item, "params": params}
    if params is None:  # (rare: they did not resolve)
        del event["params"]
    elif cached:
        event["cached"] = True
    send(event)


def land_item(send: Sink, path: str, index: int, item: Any, outputs: dict[str, Any],
              error: dict | None, duration: float, attempts: int, failed: bool = False,
              cached: bool = False, worker: str | None = None) -> ItemOutcome:
    """End iteration ``index``: its ``item.end``, and the outcome the batch collects.
    ``failed``: every attempt raised (the batch keeps no result for it); ``cached``:
    restored by a re-run; ``worker``: the cluster worker that ran its last attempt."""
    if error is None:  # the common case first
        event = {"seq": 0, "t": 0.0, "kind": ev.ITEM_END, "path": path, "index": index,
                 "status": "ok", "duration": duration, "attempts": attempts, "outputs": outputs}
        if cached:
            event["cached"] = True
        if worker is not None:
            event["worker"] = worker
        send(event)
        return ItemOutcome("ok", {**outputs, "item": item}, None, duration)
    event = {"seq": 0, "t": 0.0, "kind": ev.ITEM_END, "path": path, "index": index,
             "status": "error", "duration": duration, "attempts": attempts, "outputs": outputs,
             "error": error}
    if worker is not None:
        event["worker"] = worker
    send(event)
    return ItemOutcome("error", None if failed else {**outputs, "item": item}, error, duration)


def land_item_aborted(ex: Execution, path: str, index: int, exc: BaseException, duration: float,
                      attempts: int, worker: str | None = None) -> None:
    """End an iteration that did not finish (cancelled, or the flow failed under it)."""
    fields = {"index": index, "status": abort_status(exc), "duration": duration, "attempts": attempts}
    if worker is not None:
        fields["worker"] = worker
    ex.emit(ev.ITEM_END, path, fields)


def merge_roots(ex: Execution, frame: Frame, written: list[tuple[str, Any]], path: str, *,
                concurrent: bool) -> None:
    """Root-level keys written by branches or iterations go to the parent, in order; when
    concurrent siblings wrote the same key, that is a race: a ``race`` event names them."""
    writers: dict[str, list[str]] = {}
    for where, store in written:
        if not isinstance(store, dict):
            continue
        for key, value in store.items():
            if is_root_key(key) and key != "__visits__":
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
