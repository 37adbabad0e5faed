"""Running nested flows: binds a ``workflow`` node to its compiled child flow.

The child is compiled once; PocketFlow copies its nodes per step, so the same compiled
child serves every run of the node, including concurrent batch items (pipeline
parallelism: item 2's first stage runs while item 1's second stage does). Each run
gets a store of its own, and its events nest under the node's (or the item's) path:
``flow.per_file.iteration_3.read``.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any, Protocol

from ..ir.spec import FlowSpec, NodeSpec
from ..ir.templates import Unresolved, compile_value, to_text
from ..nodes.base import NodeType, RunContext
from ..problems import FlowError
from .execution import Execution, Frame
from .inputs import child_inputs, note_secrets


def child_node_spec(node: NodeSpec) -> NodeSpec:
    """The parent's view of a workflow node: the inline child is not a template to resolve."""
    return dataclasses.replace(node, params={k: v for k, v in node.params.items()
                                             if k != "workflow_ir"})


class Runnable(Protocol):
    """A compiled flow (:class:`~.flow.PflowFlow`)."""

    async def run_async(self, shared: Any) -> Any: ...


def workflow_type(child: FlowSpec, flow: Runnable, ex: Execution,
                  registry: Mapping[str, NodeType]) -> NodeType:
    """The ``workflow`` node type bound to ``child``, compiled as ``flow`` (by
    :func:`~.flow.compile_flow`, with the rate limits in force around the node)."""

    async def run(params: dict[str, Any], ctx: RunContext) -> dict[str, Any]:
        try:
            inputs = child_inputs(child, params)
            note_secrets(ex.redactor, child, inputs)
        except FlowError as exc:
            reasons = "; ".join(f"{p.where}: {p.what}" for p in exc.problems)
            return {"error": f"param_mapping does not fit the child flow {child.source}: {reasons}"}
        store: dict[str, Any] = dict(inputs)
        before = ex.last_error
        action = await flow.run_async(Frame(store, (inputs, store), ctx.path))
        if isinstance(action, str) and action.startswith("error"):
            err = ex.last_error if ex.last_error is not before else None
            where = f" at {err['path']}" if err and err.get("path") else ""
            message = err.get("message", "") if err else f"ended with action {action!r}"
            return {"error": f"child flow {child.name} failed{where}: {to_text(message)}"}
        return _outputs(child, inputs, store, params.get("output_mapping"))

    return dataclasses.replace(registry["workflow"], run=run)


def _outputs(child: FlowSpec, inputs: dict[str, Any], store: dict[str, Any],
             output_mapping: Any) -> dict[str, Any]:
    declared: dict[str, Any] = {}
    for name, out in child.outputs.items():
        if not out.source:
            continue
        text = out.source if "${" in out.source else "${" + out.source.lstrip("$") + "}"
        try:
            value = compile_value(text).resolve((inputs, store))
        except Unresolved:
            continue
        if value is not None:
            declared[name] = store[name] = value
    if not isinstance(output_mapping, dict) or not output_mapping:
        return declared
    return {str(parent_key): store[child_key] for child_key, parent_key in output_mapping.items()
            if child_key in store}
