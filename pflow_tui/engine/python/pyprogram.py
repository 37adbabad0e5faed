"""Python PocketFlow programs as debugger targets: ``module:attr`` and ``path/to/file.py:attr``.

``attr`` (dotted names allowed) is a pocketflow Flow or AsyncFlow (any node works: a
node alone is a one-node flow), or a function without arguments that returns one; the
function is called for each run, so every run starts from fresh objects. An optional
shared-store factory, given the same way, makes the ``shared`` dict each run starts
with; ``NAME=VALUE`` arguments then set top-level keys of it (values parsed as JSON
when they are JSON, else kept as text).

Loading imports the program, which runs its module-level code, as ``python file.py``
would: only point pflow-tui at programs you would run.
"""

from __future__ import annotations

import importlib
import importlib.util
import sys
import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import anyio
import orjson
from pocketflow import AsyncNode, BaseNode

from ..problems import FlowError, Problem, did_you_mean
from ..run.executor import STOPPED, RunResult, until_stopped
from ..run.gate import GateClosed
from ..run.interrupts import Terminated
from ..trace.events import Sink
from .pygraph import PyGraph, describe, snake
from .pyrun import error_of
from .pytrace import Tracer
from .target import is_target


@dataclass
class Program:
    """A loaded Python target: how to make its flow and its store, and the flow's graph."""

    source: str  # as given: "file.py:flow" or "package.module:flow"
    name: str
    base_dir: Path
    make: Any  # the flow object, or the function that returns one
    shared_source: str | None = None
    make_shared: Any = None
    inputs: dict[str, Any] = field(default_factory=dict)
    texts: dict[str, str] = field(default_factory=dict)  # the inputs as given (NAME=VALUE)
    graph: PyGraph = field(default_factory=lambda: PyGraph("flow"))

    @property
    def ir(self) -> dict[str, Any]:
        return self.graph.ir()

    @property
    def children_ir(self) -> dict[str, Any]:
        return self.graph.children_ir()

    @property
    def node_ids(self) -> set[str]:
        """Every node id, nested flows' too (for ``--break``)."""
        ids: set[str] = set()
        graphs = [self.graph]
        while graphs:
            g = graphs.pop()
            ids.update(n["id"] for n in g.nodes)
            graphs.extend(g.children.values())
        return ids

    def flow(self) -> BaseNode:
        """The flow to run (a fresh one when the target is a function)."""
        return _flow_of(self.make, self.source)

    def shared(self) -> dict[str, Any]:
        """The store a run starts with: the factory's, then the NAME=VALUE inputs."""
        store: Any = {}
        if self.make_shared is not None:
            store = self.make_shared() if callable(self.make_shared) else self.make_shared
            if not isinstance(store, dict):
                raise FlowError(self.shared_source or "--shared", [Problem(
                    "--shared", f"the store factory returned {type(store).__name__}, not a dict",
                    "return a dict from it (the flow's shared store)")])
        store.update(self.inputs)
        return store


def load_program(source: str, *, shared: str | None = None,
                 inputs: Mapping[str, str] | None = None) -> Program:
    """Import a target and read its flow's graph (raises FlowError: a clear, fixable problem)."""
    make = _import(source)
    flow = _flow_of(make, source)
    where = source.rpartition(":")[0]
    name = snake(Path(where).stem if where.endswith(".py") else where.rpartition(".")[2])
    program = Program(source, name, Path.cwd(), make, graph=describe(flow, name))
    if shared:
        program.shared_source = shared
        program.make_shared = _import(shared)
    program.texts = dict(inputs or {})
    program.inputs = {k: _value(v) for k, v in program.texts.items()}
    program.shared()  # a factory that fails or returns no dict is a problem now, not mid-run
    return program


def _value(text: str) -> Any:
    try:
        return orjson.loads(text)
    except orjson.JSONDecodeError:
        return text


def _import(source: str) -> Any:
    """The object ``source`` names (``file.py:attr`` or ``module:attr``)."""
    where, sep, attr = source.rpartition(":")
    if not sep or not where or not attr:
        raise FlowError(source, [Problem(source, "no attribute named: expected FILE.py:NAME or MODULE:NAME",
                                         f"name the flow, e.g. {source.rstrip(':')}:flow")])
    if where.endswith(".py") or "/" in where or "\\" in where:
        module = _import_file(Path(where), source)
    else:
        module = _import_module(where, source)
    obj: Any = module
    for part in attr.split("."):
        if not hasattr(obj, part):
            names = [n for n in dir(obj) if not n.startswith("_")]
            flows = [n for n in names if isinstance(getattr(obj, n, None), BaseNode)]
            raise FlowError(source, [Problem(
                f"{where}:{attr}", f"{type(obj).__name__} {getattr(obj, '__name__', '')!s} has no "
                f"attribute {part!r}".replace("  ", " "),
                (did_you_mean(part, names, "its names") if names else "check the name")
                + (f"; flows defined there: {', '.join(flows)}" if flows else ""))])
        obj = getattr(obj, part)
    return obj


def _import_file(path: Path, source: str) -> Any:
    if not path.is_file():
        raise FlowError(source, [Problem(str(path), "no such file",
                                         "check the path (relative to the current directory)")])
    name = f"pflow_tui_program_{snake(path.stem)}"
    spec = importlib.util.spec_from_file_location(name, path)
    if spec is None or spec.loader is None:
        raise FlowError(source, [Problem(str(path), "cannot be imported as Python", "give a .py file")])
    module = importlib.util.module_from_spec(spec)
    folder = str(path.resolve().parent)
    if folder not in sys.path:  # as `python file.py`: its own folder is importable
        sys.path.insert(0, folder)
    sys.modules[name] = module
    try:
        spec.loader.exec_module(module)
    except BaseException as exc:
        sys.modules.pop(name, None)
        raise _import_problem(source, str(path), exc) from None
    return module


def _import_module(name: str, source: str) -> Any:
    if "" not in sys.path and str(Path.cwd()) not in sys.path:
        sys.path.insert(0, str(Path.cwd()))
    try:
        return importlib.import_module(name)
    except ModuleNotFoundError as exc:
        if exc.name and name.startswith(exc.name):
            raise FlowError(source, [Problem(name, f"no module named {exc.name!r}",
                                             "run from the folder that holds it, or install it; "
                                             "a file can be given as path/to/file.py:NAME")]) from None
        raise _import_problem(source, name, exc) from None
    except BaseException as exc:
        raise _import_problem(source, name, exc) from None


def _import_problem(source: str, where: str, exc: BaseException) -> FlowError:
    if isinstance(exc, KeyboardInterrupt):
        raise exc
    info = error_of(exc)
    last = [line for line in info.get("traceback", "").splitlines() if line.startswith("  File ")]
    at = f" ({last[-1].strip()})" if last else ""
    return FlowError(source, [Problem(where, f"importing it raised {info['type']}: {info['message']}{at}",
                                      "fix the program so that `python -c 'import ...'` works")])


def _flow_of(make: Any, source: str) -> BaseNode:
    if isinstance(make, BaseNode):
        return make
    if isinstance(make, type) and issubclass(make, BaseNode):
        raise FlowError(source, [Problem(source, f"{make.__name__} is a class, not a flow",
                                         "name an instance, or a function that builds and returns the flow")])
    if callable(make):
        try:
            flow = make()
        except TypeError as exc:
            raise FlowError(source, [Problem(source, f"calling it failed: {exc}",
                                             "give a function that takes no arguments")]) from None
        except Exception as exc:
            info = error_of(exc)
            raise FlowError(source, [Problem(source, f"calling it raised {info['type']}: {info['message']}",
                                             "fix the function that builds the flow")]) from None
        if isinstance(flow, BaseNode):
            return flow
        raise FlowError(source, [Problem(source, f"it returned {type(flow).__name__}, not a pocketflow Flow",
                                         "return the Flow (or AsyncFlow) from it")])
    raise FlowError(source, [Problem(source, f"it is {type(make).__name__}, not a pocketflow Flow",
                                     "name a Flow or AsyncFlow object, or a function that returns one")])


def run_program(program: Program, *, trace: str | Path | None = None, sinks: Sequence[Sink] = (),
                stop: threading.Event | None = None, gate: Any = None) -> RunResult:
    """Run the program once, traced (blocking). A sync flow runs in a worker thread, an
    async one in the event loop; ``stop`` (set from any thread) ends the run as
    ``interrupted``. The program's own exception ends it as ``failed`` (the trace has it).
    """
    flow = program.flow()
    shared = program.shared()
    tracer = Tracer(trace, name=program.name, sinks=sinks, gate=gate, source=program.source,
                    inputs=program.inputs, replace=False)

    async def main() -> Any:
        with tracer:
            if isinstance(flow, AsyncNode):
                work = flow.run_async(shared)
            else:
                work = anyio.to_thread.run_sync(flow.run, shared, abandon_on_cancel=True)
            return await (work if stop is None else until_stopped(work, stop))

    status, error = "ok", None
    try:
        action = anyio.run(main)
    except KeyboardInterrupt as exc:
        tracer.interrupt("terminated (SIGTERM)" if isinstance(exc, Terminated) else "interrupted (Ctrl-C)")
        raise
    except GateClosed:  # stopped while a sync node waited at the gate (its run ended cancelled)
        action = STOPPED
    except Exception as exc:
        status, error, action = "failed", error_of(exc), None
        if tracer.fail(exc):  # not the program's exception (that one ended its run): a bug of ours
            error["internal"] = True
    if action is STOPPED:
        tracer.interrupt("stopped by the user")
        status, error = "interrupted", {"type": "Stopped", "message": "stopped by the user"}
    duration = tracer.duration
    outputs = {"action": action} if isinstance(action, str) else {}
    return RunResult(status, outputs, shared, error, duration,
                     tracer.paths[0] if tracer.paths else None, tracer.events)


__all__ = ["Program", "is_target", "load_program", "run_program"]
