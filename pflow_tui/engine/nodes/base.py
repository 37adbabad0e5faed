"""The contract every node type fulfils, built-in or from a plugin.

A node type is plain data plus one function: its parameters are resolved by the
engine, handed to ``run`` as a dict, and the dict ``run`` returns is written into
the node's namespace. Keeping the unit of work as (type name, resolved params,
item) makes it shippable to another process or machine later.
"""

from __future__ import annotations

import inspect
import threading
from collections.abc import Awaitable, Callable, Collection, Mapping
from dataclasses import dataclass, field
from typing import Any

#: JSON-ish type names used in parameter specs (as pflow's "Interface:" blocks).
ParamType = str  # "str" | "int" | "float" | "bool" | "dict" | "list" | "any"


@dataclass(frozen=True, slots=True)
class Param:
    """One parameter a node type accepts."""

    name: str
    type: ParamType = "any"
    required: bool = False
    default: Any = None
    description: str = ""
    #: the values it may take (checked when it is not a template); a lazy collection such as
    #: ``registry.PluginNames`` when plugins may add values
    choices: Collection[str] = ()


class RunContext:
    """What a running node may know about its situation (never the store).

    ``path`` is its event path, ``attempt`` counts from 1, ``index`` is the batch index
    (None outside a batch), ``base_dir`` the directory of the flow file.
    """

    __slots__ = ("attempt", "base_dir", "branches", "cancel", "index", "path")

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


RunFn = Callable[[dict[str, Any], RunContext], "Mapping[str, Any] | Awaitable[Mapping[str, Any]]"]


@dataclass(frozen=True)
class NodeType:
    """A registered node type.

    ``run(params, ctx)`` returns the outputs to write into the node's namespace.
    Raising an exception is a failed attempt (retried up to ``max_retries`` total
    attempts, ``wait`` seconds apart); returning outputs with an ``error`` key is a
    handled failure: no retry, the outputs are kept and the node takes the
    ``error`` action.

    ``blocking`` types run in a worker thread; the others (coroutines, or cheap
    pure functions) run on the event loop. A type with ``action_key`` chooses the next
    edge: the value of that output is its action (otherwise ``default``, or ``error``).
    """

    name: str
    run: RunFn
    params: tuple[Param, ...] = ()
    outputs: tuple[str, ...] = ()
    description: str = ""
    blocking: bool = False
    max_retries: int = 1
    wait: float = 0.0
    action_key: str | None = None  # an output whose value is the action to take (route)
    is_async: bool = field(init=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "is_async", inspect.iscoroutinefunction(self.run))

    def param(self, name: str) -> Param | None:
        """The spec of parameter ``name``, if declared."""
        for p in self.params:
            if p.name == name:
                return p
        return None


class NodeCancelled(Exception):
    """Raised by a blocking node type that stopped because ``ctx.cancel`` was set."""


class NodeFailure(Exception):
    """A node-level failure whose message is meant for the user as is."""
