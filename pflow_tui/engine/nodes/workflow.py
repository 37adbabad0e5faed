"""The ``workflow`` node type: a whole flow run as one node of its parent (pflow's params).

The child comes inline (``workflow_ir``) or from a file (``workflow_ref``, relative to
the parent's file). ``param_mapping`` gives the child's inputs (templates resolved in
the parent); ``output_mapping`` says which of the child's top-level keys (declared
outputs or node namespaces) become this node's outputs, under which names. Without it,
the child's declared outputs are the node's outputs.

The child is validated with its parent and runs inside the parent's run (its events
nest under this node's path), so this module only declares the type; the compiler
binds it to the compiled child (see ``pflow_tui.engine.run.nested``).
"""

from __future__ import annotations

from typing import Any

from .base import NodeFailure, NodeType, Param, RunContext

MAX_DEPTH = 10


def _unbound(params: dict[str, Any], ctx: RunContext) -> dict[str, Any]:
    raise NodeFailure("a workflow node runs inside a flow: compile the parent flow to run it")


WORKFLOW = NodeType(
    name="workflow",
    run=_unbound,
    params=(
        Param("workflow_ir", "dict", description="the child flow, inline"),
        Param("workflow_ref", "str", description="the child flow's file, relative to this one"),
        Param("param_mapping", "dict", description="child input -> value or template"),
        Param("output_mapping", "dict", description="child top-level key -> output name here"),
        Param("storage_mode", "str", default="mapped", description="mapped (default) or isolated",
              choices=("mapped", "isolated")),
        Param("max_depth", "int", default=MAX_DEPTH, description="how deep flows may nest"),
    ),
    description="Run another flow as one node (nested flow; can be batched: one run per item).",
)
