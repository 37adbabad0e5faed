"""The contract every node type fulfils, built-in or from a plugin.

A node type is plain data plus one function: its parameters are resolved by the
engine, handed to ``run`` as a dict, and the dict ``run`` returns is written into
the node's namespace. Keeping the unit of work as (type name, resolved params,
item) makes it shippable to another process or machine later.
"""

from __future__ import annotations

import importlib
import inspect
import threading
from collections.abc import Awaitable, Callable, Collection, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol, TypeVar

#: JSON-ish type names used in parameter specs (as pflow's "Interface:" blocks).
ParamType = str  # "str" | "text" | "int" | "float" | "bool" | "dict" | "list" | "any"
#: "text": a str that may also be given a dict or list literally (write-file content: JSON)


@dataclass(frozen=True, slots=True)
class Param:
    """One parameter a node type accepts."""

    name: str
    type: ParamType = "any"
    required: bool = False
    default: Any = None
    description: str = ""
    #: the values it may take (checked when it is not a template); a lazy collection such as
    #: ``plugins.PluginNames`` when plugins may add values
    choices: Collection[str] = ()


class AsyncCloseable(Protocol):
    async def aclose(self) -> None: ...


C = TypeVar("C", bound=AsyncCloseable)


class RunResources:
    """What the nodes of one run share and the run closes when it ends, e.g. the http node's
    client (its pooled connections). Used from the run's event loop only."""

    __slots__ = ("_held",)

    def __init__(self) -> None:
        self._held: dict[str, AsyncCloseable] = {}

    def get(self, key: str, make: Callable[[], C]) -> C:
        """The run's ``key``, made by ``make()`` on first use."""
        held = self._held.get(key)
        if held is None:
            held = self._held[key] = make()
        return held  # type: ignore[return-value]

    async def aclose(self) -> None:
        """Close everything made, even when the run is being cancelled (each one, whatever
        another one raised)."""
        import anyio  # (not at the top: a worker process imports this module without it)

        held, self._held = list(self._held.values()), {}
        failed: Exception | None = None
        with anyio.CancelScope(shield=True):
            for resource in held:
                try:
                    await resource.aclose()
                except Exception as exc:
                    failed = failed or exc
        if failed is not None:
            raise failed


class RunContext:
    """What a running node may know about its situation (never the store).

    ``path`` is its event path, ``attempt`` counts from 1, ``index`` is the batch index
    (None outside a batch), ``base_dir`` the directory of the flow file. ``resources``:
    the run's :class:`RunResources`; None where a node runs outside a run's event loop (a
    worker process, a Dask worker, a forked node run alone): a node then makes its own.
    """

    __slots__ = ("attempt", "base_dir", "branches", "cancel", "index", "path", "resources")

    def __init__(self, path: str, attempt: int = 1, index: int | None = None,
                 base_dir: str = ".") -> None:
        self.path = path
        self.attempt = attempt
        self.index = index
        self.base_dir = base_dir
        #: set when the run no longer wants this result; blocking node types look at it
        #: to stop early (e.g. the shell node kills its process)
        self.cancel: threading.Event | None = None
        #: for the join of a parallel group: each branch's index, start node, last node,
        #: status, error and output (in edge order); None elsewhere
        self.branches: list[dict[str, Any]] | None = None
        self.resources: RunResources | None = None


RunFn = Callable[[dict[str, Any], RunContext], "Mapping[str, Any] | Awaitable[Mapping[str, Any]]"]
#: A static check of a node's params as written in the flow (templates not resolved):
#: yields (param name, what is wrong, how to fix it); ``pflow-tui validate`` reports them.
CheckFn = Callable[[Mapping[str, Any]], Iterable[tuple[str, str, str]]]

#: Where a node's work runs (the IR's node-level ``executor`` key names process, thread and
#: cluster: a Dask cluster, see pflow_tui.engine.run.cluster).
PROCESS, THREAD, LOOP, INLINE, CLUSTER = "process", "thread", "loop", "inline", "cluster"


@dataclass(frozen=True)
class NodeType:
    """A registered node type.

    ``run(params, ctx)`` returns the outputs to write into the node's namespace.
    Raising an exception is a failed attempt (retried up to ``max_retries`` total
    attempts, ``wait`` seconds apart); returning outputs with an ``error`` key is a
    handled failure: no retry, the outputs are kept and the node takes the
    ``error`` action.

    ``blocking`` types run in a worker thread; the others (coroutines, or cheap
    pure functions) run on the event loop. ``cpu_bound`` types run in the run's process
    pool (see :mod:`pflow_tui.engine.run.pool`): their ``run`` must be a module-level
    function, and their params and outputs plain data. A node in a flow may ask for
    either with ``"executor": "process"`` or ``"thread"``. A type with ``action_key``
    chooses the next edge: the value of that output is its action (otherwise
    ``default``, or ``error``). ``check`` finds mistakes in the params as written, before
    anything runs.
    """

    name: str
    run: RunFn
    params: tuple[Param, ...] = ()
    outputs: tuple[str, ...] = ()
    description: str = ""
    blocking: bool = False
    cpu_bound: bool = False
    max_retries: int = 1
    wait: float = 0.0
    action_key: str | None = None  # an output whose value is the action to take (route)
    check: CheckFn | None = None
    #: store keys the node reads besides its params, as pflow's node reads ``shared[key]``
    #: (delete-file's ``confirm_delete``): looked up in the node's template scope (inputs,
    #: then the store) and given to ``run`` in ``params["__store__"]`` (present keys only)
    reads: tuple[str, ...] = ()
    #: the declared types of outputs, as pflow's node interfaces write them (``"dict"``,
    #: ``"list[dict]"``, ``"dict|str"``, ``"str"``): (key, type) pairs, a nested field as a dotted
    #: path (``"git_status.modified"``). Validation uses them: a dict or list template unquoted
    #: in a shell command is refused, as in pflow. An ``error`` entry says the type declares
    #: its ``error`` output (pflow's validator refuses ``${node.error}`` otherwise).
    output_types: tuple[tuple[str, str], ...] = ()
    is_async: bool = field(init=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "is_async", inspect.iscoroutinefunction(self.run))

    @property
    def executor(self) -> str:
        """Where this type's work runs unless a node says otherwise: process, thread,
        loop (coroutines) or inline (cheap functions, on the event loop)."""
        if self.cpu_bound:
            return PROCESS
        if self.is_async:
            return LOOP
        return THREAD if self.blocking else INLINE

    def param(self, name: str) -> Param | None:
        """The spec of parameter ``name``, if declared."""
        for p in self.params:
            if p.name == name:
                return p
        return None


def run_ref(fn: Callable[..., Any]) -> str | None:
    """``"module:qualname"`` of a module-level function (how a worker process finds it by
    name), or None for a lambda, a closure or anything else it could not import."""
    module, qualname = getattr(fn, "__module__", None), getattr(fn, "__qualname__", None)
    if not module or not qualname or "<" in qualname:
        return None
    try:
        found: Any = importlib.import_module(module)
        for part in qualname.split("."):
            found = getattr(found, part)
    except (ImportError, AttributeError):
        return None
    return f"{module}:{qualname}" if found is fn else None


def can_run_in_process(node_type: NodeType) -> str | None:
    """Why ``node_type`` cannot run in a worker process, or None when it can."""
    if node_type.name == "workflow":
        return "a workflow node runs its nested flow inside this run"
    if run_ref(node_type.run) is None:
        return (f"its run function ({getattr(node_type.run, '__qualname__', node_type.run)!r}) is not a "
                "module-level function a worker process could import")
    return None


class NodeCancelled(Exception):
    """Raised by a blocking node type that stopped because ``ctx.cancel`` was set."""


class NodeFailure(Exception):
    """A node-level failure whose message is meant for the user as is."""


class NodeAbort(Exception):
    """A failure that pflow raises out of the node (from its ``prep``, or a node without a
    fallback): retried like any exception, but after the last attempt the node fails
    without taking an ``error`` edge and the run fails, as in pflow. The node's namespace
    is left empty. In a batch it is an item's exception (result None, ``errors[i].exception``).

    Raise it through :func:`abort` so that the recorded exception type is pflow's
    (``ValueError``, ``TypeError``).
    """


_ABORTS: dict[type[Exception], type[NodeAbort]] = {}


def abort(kind: type[Exception], message: str) -> NodeAbort:
    """A :class:`NodeAbort` that is also a ``kind`` and is named like it."""
    cls = _ABORTS.get(kind)
    if cls is None:
        # named and placed like ``kind`` so that a traceback reads "TypeError: ..." as in pflow
        cls = _ABORTS[kind] = type(kind.__name__, (NodeAbort, kind),
                                   {"__module__": kind.__module__, "__qualname__": kind.__qualname__})
    return cls(message)
