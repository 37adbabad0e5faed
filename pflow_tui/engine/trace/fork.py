"""Forking one item: run one node (or one batch iteration) of a recorded run again, alone,
with some of its params changed: no flow, no events, no trace (see docs/rerun.md).

:func:`fork_item_async` goes through named steps: open the source (:func:`_open`), find
the node (:func:`_target`), gather its recorded params (:func:`_recorded`), apply the
override (:func:`_override`), give back the store keys it reads and the secrets the trace
left out (:func:`_store_reads`, :func:`_secrets`), then run it (:func:`_run_alone`).
"""

from __future__ import annotations

import threading
from collections.abc import Mapping
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from time import perf_counter
from typing import Any

import anyio
import anyio.to_thread

from ..ir.load import build_flow
from ..ir.spec import FlowSpec, children_ir
from ..ir.templates import to_text
from ..nodes.base import NodeType
from ..problems import clip, did_you_mean
from ..run.cache import BRANCH, ITERATION, python_program, recorded_base_dir
from ..run.execution import Execution
from ..run.flow import compile_flow
from ..run.nested import workflow_type
from ..run.params import Params, coerce
from ..run.work import Call
from . import events as ev
from .events import Emitter, Event, error_info
from .reader import TraceIndex
from .redact import Redactor, find_secrets, marks_in, unredact
from .writer import Trace, TraceError, read_trace


class ForkError(ValueError):
    """A fork that cannot run: unknown node or item, bad params."""


@dataclass(slots=True)
class _Target:
    """The node a fork runs: where it is, what it is."""

    path: str  # the node's path
    target: str  # the path forked: the node's, or its iteration's
    node_ir: dict[str, Any]
    chain: list[str]  # the workflow nodes leading to it
    node_type: NodeType
    batch: dict[str, Any] | None


def _find_node(root_ir: Mapping[str, Any], root_children: Mapping[str, Any], path: str
               ) -> tuple[dict[str, Any], list[str]]:
    """The IR of the node at ``path`` and the workflow nodes leading to it (walking nested
    flows through the recorded children IR)."""
    ir, children = root_ir, root_children
    segs = path.split(".")[1:]
    chain: list[str] = []
    if not segs:
        raise ForkError(f"'{path}' is the flow itself, not a node: give a node path")

    def node_of(seg: str) -> dict[str, Any] | None:
        return next((n for n in ir.get("nodes") or () if isinstance(n, dict) and n.get("id") == seg),
                    None)

    for k, raw in enumerate(segs):
        seg = raw.partition("#")[0]
        if ITERATION.fullmatch(seg) or BRANCH.fullmatch(seg):
            continue
        node = node_of(seg)
        if node is None:
            ids = [n.get("id") for n in ir.get("nodes") or () if isinstance(n, dict)]
            raise ForkError(f"no node '{seg}' in the flow at '{path}' "
                            f"({did_you_mean(seg, [i for i in ids if isinstance(i, str)], 'its nodes')})")
        if k == len(segs) - 1:
            return node, chain
        if node.get("type") == "workflow":
            child = children.get(seg)
            if not isinstance(child, dict):
                raise ForkError(f"the child flow of '{seg}' is not recorded")
            ir, children = child.get("flow") or {}, child.get("children") or {}
            chain.append(seg)
    raise ForkError(f"'{path}' does not name a node")  # pragma: no cover (the loop returns)


def _first(source: Trace | TraceIndex, kind: str, path: str) -> Event | None:
    if isinstance(source, TraceIndex):
        return source.first_at(kind, path)
    return next((e for e in source.events if e.get("kind") == kind and e.get("path") == path), None)


def _open(source: str | Path | Trace | TraceIndex | FlowSpec
          ) -> tuple[FlowSpec | None, Trace | TraceIndex | None, dict[str, Any], Path]:
    """(the flow, or None; the recorded run, or None; its header; its base_dir)."""
    if isinstance(source, FlowSpec):
        header: dict[str, Any] = {"flow_name": source.name, "flow": source.ir,
                                  "children": children_ir(source)}
        return source, None, header, source.base_dir
    if isinstance(source, (str, Path)):
        try:
            recorded: Trace | TraceIndex = TraceIndex(source)
        except TraceError:
            recorded = read_trace(source)
    else:
        recorded = source
    header = recorded.header
    if header.get("target"):
        raise ForkError(python_program(getattr(recorded, "path", None), header))
    return None, recorded, header, recorded_base_dir(header)


def _target(header: Mapping[str, Any], node_id: str, index: int | None,
            registry: Mapping[str, NodeType]) -> _Target:
    """The node at ``node_id`` (an id of the top flow or a path), checked against ``index``."""
    root = str(header.get("flow_name") or "flow")
    path = node_id if "." in node_id else f"{root}.{node_id}"
    node_ir, chain = _find_node(header.get("flow") or {}, header.get("children") or {}, path)
    nid, type_name = str(node_ir["id"]), str(node_ir.get("type"))
    node_type = registry.get(type_name)
    if node_type is None:
        raise ForkError(f"node '{nid}' has type '{type_name}', which is not installed")
    batch = node_ir.get("batch") if isinstance(node_ir.get("batch"), dict) else None
    if batch is not None and index is None:
        raise ForkError(f"node '{nid}' is a batch node: give the index of the iteration to fork")
    if batch is None and index is not None:
        raise ForkError(f"node '{nid}' is not a batch node: fork it without an index")
    target = path if index is None else f"{path}.iteration_{index}"
    return _Target(path, target, node_ir, chain, node_type, batch)


def _recorded(recorded: Trace | TraceIndex, t: _Target, index: int | None,
              params: dict[str, Any]) -> dict[str, Any]:
    """Add the params the run resolved to ``params``; returns what the run recorded of the
    step (status, outputs, error, duration, params)."""
    start = _first(recorded, ev.NODE_START, t.path)
    if start is None:
        raise ForkError(f"'{t.path}' did not run in this trace: nothing recorded to fork")
    params.update(start.get("params") or {})
    end_kind = ev.NODE_END
    if index is not None:
        item_start = _first(recorded, ev.ITEM_START, t.target)
        if item_start is None:
            count = (start.get("batch") or {}).get("count")
            raise ForkError(f"iteration {index} of '{t.path}' did not run in this trace"
                            + (f" (it has {count} items)" if count is not None else ""))
        params.update(item_start.get("params") or {})
        end_kind = ev.ITEM_END
    end = _first(recorded, end_kind, t.target)
    return {"status": end.get("status") if end else "never ended",
            "outputs": end.get("outputs") if end else None,
            "error": end.get("error") if end else None,
            "duration": end.get("duration") if end else None,
            "params": dict(params)}


def _override(t: _Target, params_override: Mapping[str, Any] | None
              ) -> tuple[dict[str, Any], dict[str, Any]]:
    """(the params override, coerced and checked; the store keys overridden)."""
    node_type, type_name = t.node_type, str(t.node_ir.get("type"))
    override = dict(params_override or {})
    # store keys the node type reads (delete-file's confirm_delete) may be overridden too
    store_override = {k: override.pop(k) for k in list(override) if k in node_type.reads}
    problems = []
    for key, value in override.items():
        p = node_type.param(key)
        if p is None:
            problems.append(f"'{key}' is not a param of {type_name} nodes ("
                            + (did_you_mean(key, [q.name for q in node_type.params], "its params")
                               or "it declares no params") + ")")
            continue
        value = override[key] = coerce(value, p.type)
        if p.choices and isinstance(value, str) and value not in p.choices:
            problems.append(f"'{key}' must be one of {', '.join(p.choices)}, not {value!r}")
    if problems:
        raise ForkError(f"cannot fork '{t.target}': " + "; ".join(problems))
    return override, store_override


def _store_reads(t: _Target, params: dict[str, Any], store_override: dict[str, Any],
                 header: Mapping[str, Any], recorded: Trace | TraceIndex | None,
                 spec: FlowSpec | None) -> None:
    """What the run gave the node in ``params["__store__"]`` (an item's is not recorded)."""
    if t.node_type.reads:
        reads = params.get("__store__")
        if not isinstance(reads, dict):
            reads = _recorded_reads(t.node_type.reads, header, recorded, spec)
        params["__store__"] = {**reads, **store_override}


def _secrets(target: str, params: dict[str, Any]) -> tuple[dict[str, Any], Redactor]:
    """Secrets the trace did not write down: read again from the environment, never used as
    «redacted:…»; the redactor that hides them in what the fork shows."""
    redactor = Redactor()
    names = marks_in(params)
    if names:
        found, absent = find_secrets(names, {})
        if absent:
            raise ForkError(f"cannot fork '{target}': the trace holds no value for "
                            f"{', '.join(clip(n) for n in absent)} (redacted): set the environment "
                            "variable of that name, or give the param in params_override")
        params = unredact(params, found)
        for name, value in found.items():
            redactor.add(value, name)
    return params, redactor


async def fork_item_async(source: str | Path | Trace | TraceIndex | FlowSpec, node_id: str,
                          index: int | None, params_override: Mapping[str, Any] | None = None, *,
                          registry: Mapping[str, NodeType] | None = None) -> dict[str, Any]:
    """:func:`fork_item`, in the caller's event loop (the app's)."""
    if registry is None:
        from ..registry import registry as default_registry  # start-up time: it loads every node type

        registry = default_registry()
    spec, recorded, header, base_dir = _open(source)
    t = _target(header, node_id, index, registry)
    type_name = str(t.node_ir.get("type"))
    raw = {k: v for k, v in (t.node_ir.get("params") or {}).items()
           if not (type_name == "workflow" and k == "workflow_ir")}
    compiled = Params(raw, t.node_type, True)
    params: dict[str, Any] = dict(compiled.constant)
    original = _recorded(recorded, t, index, params) if recorded is not None else None
    override, store_override = _override(t, params_override)
    params.update(override)
    _store_reads(t, params, store_override, header, recorded, spec)
    missing = [k for k in compiled.templates if k not in params]
    if missing:
        raise ForkError(f"cannot fork '{t.target}': the templated param(s) {', '.join(missing)} "
                        "have no recorded value; give them in params_override")
    params, redactor = _secrets(t.target, params)
    node_type = t.node_type
    if type_name == "workflow":
        node_type = _bound_workflow(spec, header, t.chain, str(t.node_ir["id"]), t.node_ir, base_dir,
                                    registry)
    if t.batch is not None:
        retries, wait = int(t.batch.get("max_retries", 1)), float(t.batch.get("retry_wait", 0.0))
    else:
        retries, wait = node_type.max_retries, node_type.wait
    result = await _run_alone(node_type, t.target, params, index, str(base_dir), max(1, retries),
                              wait, original)
    return redactor.scrub(result)


def _recorded_reads(keys: tuple[str, ...], header: Mapping[str, Any],
                    recorded: Trace | TraceIndex | None, spec: FlowSpec | None) -> dict[str, Any]:
    """The store keys a node type reads (``NodeType.reads``), as its scope had them: the run's
    inputs, then the root of its final store; for a flow not run, the inputs' defaults."""
    layers: list[Mapping[str, Any]] = []
    if recorded is not None:
        layers.append(header.get("inputs") or {})
        footer = recorded.footer if isinstance(recorded.footer, Mapping) else {}
        layers.append(footer.get("store") or {})
    if spec is not None:
        layers.append({name: i.default for name, i in spec.inputs.items() if i.has_default})
    found: dict[str, Any] = {}
    for key in keys:
        for layer in layers:
            if isinstance(layer, Mapping) and key in layer:
                found[key] = layer[key]
                break
    return found


def _bound_workflow(spec: FlowSpec | None, header: Mapping[str, Any], chain: list[str], nid: str,
                    node_ir: dict[str, Any], base_dir: Path,
                    registry: Mapping[str, NodeType]) -> NodeType:
    """The workflow node type bound to its child flow, compiled for a run of its own."""
    if spec is not None:
        for seg in chain:
            spec = spec.children[seg]
        child = spec.children[nid]
    else:
        children = header.get("children") or {}
        for seg in chain:
            children = (children.get(seg) or {}).get("children") or {}
        recorded = children.get(nid) or {}
        child = build_flow(recorded.get("flow") or {}, source=f"<fork> > {nid}", base_dir=base_dir,
                           default_name=nid, registry=registry)
    ex = Execution(child, Emitter([]), {}, {})  # the child's events go nowhere
    return workflow_type(child, compile_flow(child, ex, registry), ex, registry)


async def _run_alone(node_type: NodeType, path: str, params: dict[str, Any], index: int | None,
                     base_dir: str, retries: int, wait: float,
                     original: dict[str, Any] | None) -> dict[str, Any]:
    call = Call(path, dict(params), index, base_dir)
    t0 = perf_counter()
    out: Any = None
    failure: BaseException | None = None
    for attempt in range(1, retries + 1):
        call.attempt = attempt
        call.params = dict(params)  # a node type may change what it is given
        failure = None
        try:
            if node_type.is_async:
                out = await node_type.run(call.params, call)  # type: ignore[misc]
            elif node_type.blocking:
                call.cancel = threading.Event()
                out = await anyio.to_thread.run_sync(node_type.run, call.params, call,
                                                     abandon_on_cancel=True)
            else:
                out = node_type.run(call.params, call)
            if not isinstance(out, Mapping):
                raise TypeError(f"node type '{node_type.name}' returned {type(out).__name__}, "
                                "not a dict")
            break
        except Exception as exc:
            failure = exc
            if attempt < retries and wait > 0:
                await anyio.sleep(wait)
    if failure is not None:
        error: dict[str, Any] | None = error_info(failure)
        outputs: dict[str, Any] = {"error": error["message"]}  # type: ignore[index]
    else:
        outputs = dict(out)
        error = ({"type": "NodeError", "message": to_text(outputs["error"])}
                 if "error" in outputs else None)
    return {"path": path, "status": "error" if error else "ok", "outputs": outputs, "error": error,
            "duration": perf_counter() - t0, "attempts": call.attempt, "params": params,
            "original": original}


def fork_item(source: str | Path | Trace | TraceIndex | FlowSpec, node_id: str, index: int | None,
              params_override: Mapping[str, Any] | None = None, *,
              registry: Mapping[str, NodeType] | None = None) -> dict[str, Any]:
    """Run one iteration (``index``) of a batch node, or one single node (``index`` None),
    of a recorded run again, alone, with ``params_override`` over its recorded params.

    ``source``: a trace (path, Trace or TraceIndex), or a FlowSpec (then only the node's
    constant params are known: templated ones must be overridden). ``node_id``: a node id
    of the top flow, or a node path (``flow.per_file.iteration_3.read``, ``flow.review#2``).
    The node type runs directly, with its retries; no flow runs, no event is emitted, no
    trace is written. A node type that reads store keys (``NodeType.reads``, delete-file's
    ``confirm_delete``) gets them as the run had them (its inputs, then its final store; a
    FlowSpec's input defaults); ``params_override`` may set them too. Returns
    ``{"path", "status", "outputs", "error", "duration",
    "attempts", "params" (the params used), "original"}`` (``original``: the recorded
    status, outputs, error, duration and params; None for a FlowSpec). Raises ForkError.
    """
    return anyio.run(partial(fork_item_async, source, node_id, index, params_override,
                             registry=registry))


__all__ = ["ForkError", "fork_item", "fork_item_async"]
