"""What a run of a compiled flow shares: the :class:`Execution` (run-wide state) and the
:class:`Frame` each node runs on, with the run-time errors of the flow itself.

A :class:`Frame` is what PocketFlow passes as its ``shared`` argument: the store the
node writes into, the scope templates read from, and the event path prefix.
"""

from __future__ import annotations

import threading
from collections import Counter
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import anyio

from ..nodes.base import RunResources
from ..trace import events as ev
from ..trace.events import Emitter
from ..trace.redact import Redactor
from ..trace.usage import UsageTally
from .limits import PROCESSES, Limit
from .pool import ProcessPool, pool_size
from .spill import Spill

if TYPE_CHECKING:
    from ..ir.spec import FlowSpec
    from ..ir.templates import Scope
    from .cache import StepCache
    from .cluster import DaskPool
    from .gate import Gate


class FlowRuntimeError(Exception):
    """A run-time failure of the flow itself (not of one node), e.g. a loop limit."""

    def __init__(self, message: str, path: str = "", node: str | None = None) -> None:
        super().__init__(message)
        self.path = path
        self.node = node


class NodeAborted(FlowRuntimeError):
    """A node whose last attempt raised :class:`~..nodes.base.NodeAbort`: the node has ended
    (its ``node.end`` is emitted) and the run fails without taking an ``error`` edge."""


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
        self.cache: StepCache | None = None  # a re-run: recorded results that may be restored
        self.spill = Spill()  # where batches with batch_size write their results
        self.usage = UsageTally()  # the llm calls' tokens (trace/usage.py), for run.end
        self._pool: tuple[Limit, ProcessPool] | None = None
        #: the Dask cluster of "executor": "cluster" nodes (cluster.py): ``local`` or a
        #: scheduler's address; None: PFLOW_TUI_CLUSTER, else local
        self.cluster_spec: str | None = None
        self._cluster: DaskPool | None = None
        #: what the run's nodes share, closed at its end (the http node's client)
        self.resources = RunResources()
        #: a nested flow running whole on a Dask worker (cluster_nested.py): its nodes run
        #: on that worker, in threads where they would take a worker process or the cluster
        self.on_worker = False

    async def stopping(self) -> None:
        """Called where a node, an item or an attempt would start: once the run is stopping
        (stopped, or its trace cannot be written), wait here for the cancellation that
        follows (executor.until_stopped), so that nothing new starts meanwhile."""
        if self.stop is not None and self.stop.is_set():
            await anyio.sleep_forever()

    def process_pool(self) -> tuple[Limit, ProcessPool]:
        """The run's process slots (waited on visibly) and its worker processes."""
        if self._pool is None:
            self._pool = (Limit(None, max_concurrent=pool_size(), on=PROCESSES), ProcessPool())
        return self._pool

    def cluster(self) -> DaskPool:
        """The run's connection to its Dask cluster (connected on first use)."""
        if self._cluster is None:
            from .cluster import DaskPool, cluster_spec  # start-up time: cluster flows only

            self._cluster = DaskPool(self.cluster_spec or cluster_spec())
        return self._cluster

    async def aclose(self) -> None:
        """End what the run started that outlives its nodes (the nodes' shared resources, the
        worker processes, the client of the cluster and the local cluster)."""
        try:
            await self.resources.aclose()
        finally:
            if self._pool is not None:
                await self._pool[1].aclose()
            if self._cluster is not None:
                await self._cluster.aclose()

    def write(self, store: dict[str, Any], key: str, value: Any, path: str) -> None:
        """Write ``key`` into a store, as a ``store.write`` event."""
        store[key] = value
        self.emit(ev.STORE_WRITE, path, {"key": key, "value": value})

    def write_root(self, key: str, value: Any, path: str) -> None:
        self.write(self.shared, key, value, path)


def visit_path(ex: Execution, prefix: str, node_id: str, max_visits: int) -> str:
    """The path of this visit of ``node_id`` in the frame at ``prefix`` (``#<visit>`` from
    the second on); FlowRuntimeError past ``max_visits``."""
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


def template_warnings(ex: Execution, path: str, errors: list[str]) -> None:
    """Templates left as text in permissive mode: noted in the store and as warnings."""
    ex.shared.setdefault("__template_errors__", []).extend(f"{path}: {e}" for e in errors)
    for e in errors:
        ex.emit(ev.WARNING, path, {"message": f"unresolved template left as text: {e}"})


def store_reads(keys: tuple[str, ...], scope: Scope) -> dict[str, Any]:
    """The store keys a node type reads (``NodeType.reads``), where present in its scope."""
    found: dict[str, Any] = {}
    for key in keys:
        for layer in scope:
            if key in layer:
                found[key] = layer[key]
                break
    return found


def is_root_key(key: str) -> bool:
    """A root-level ``__x__`` key (written to the store's root, not a node's namespace)."""
    return len(key) > 4 and key.startswith("__") and key.endswith("__")
