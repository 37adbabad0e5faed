"""The validated model of a flow: :class:`FlowSpec` and the specs it holds."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..problems import Problem, Rewrite
from .groups import Group

# --- the validated model ---------------------------------------------------------------------

@dataclass(frozen=True, slots=True)
class BatchSpec:
    """A node's ``batch`` config, with pflow's defaults applied."""

    items: Any
    alias: str = "item"
    error_handling: str = "fail_fast"
    parallel: bool = False
    max_concurrent: int = 10
    max_retries: int = 1  # total attempts per item
    retry_wait: float = 0.0
    batch_size: int | None = None  # items in memory at once; results spill to a file
    label: str | None = None  # a template for each item's label (pflow-tui's)


@dataclass(frozen=True, slots=True)
class NodeSpec:
    id: str
    type: str
    params: dict[str, Any]  # without rate_limit_key
    batch: BatchSpec | None = None
    purpose: str = ""
    executor: str | None = None  # "process" | "thread" | "cluster" | None: where its type says
    rate_limit_key: str | None = None


@dataclass(frozen=True, slots=True)
class EdgeSpec:
    src: str
    dst: str
    action: str = "default"
    group: str | None = None  # parallel_group


@dataclass(frozen=True, slots=True)
class InputSpec:
    name: str
    type: str | None = None
    required: bool = True
    default: Any = None
    has_default: bool = False
    description: str = ""
    stdin: bool = False
    secret: bool = False  # redacted wherever the run records it (see redact.py)


@dataclass(frozen=True, slots=True)
class OutputSpec:
    name: str
    source: str | None = None
    description: str = ""


@dataclass(frozen=True, repr=False)
class FlowSpec:
    """A validated flow, ready to compile."""

    name: str
    nodes: dict[str, NodeSpec]
    edges: list[EdgeSpec]
    start: str
    inputs: dict[str, InputSpec]
    outputs: dict[str, OutputSpec]
    ir: dict[str, Any]
    source: str = "<flow>"
    base_dir: Path = field(default_factory=Path.cwd)
    strict_templates: bool = True
    namespacing: bool = True
    max_visits: int = 100
    warnings: list[Problem] = field(default_factory=list)
    groups: list[Group] = field(default_factory=list)  # parallel groups (task parallelism)
    children: dict[str, FlowSpec] = field(default_factory=dict)  # workflow node id -> its flow
    rewrites: list[Rewrite] = field(default_factory=list)  # what normalisation changed (aliases...)
    rate_limits: dict[str, dict[str, int]] = field(default_factory=dict)  # key -> its limits

    def __repr__(self) -> str:  # short: asyncio and anyio repr the coroutines that carry it
        return f"<FlowSpec {self.name!r} from {self.source}: {len(self.nodes)} nodes>"

    def successors(self, node_id: str) -> list[EdgeSpec]:
        return [e for e in self.edges if e.src == node_id]




def children_ir(spec: FlowSpec) -> dict[str, Any]:
    """The nested flows' IR, by workflow node id, recursively (kept in trace headers)."""
    return {nid: {"flow": child.ir, "children": children_ir(child)}
            for nid, child in spec.children.items()}

