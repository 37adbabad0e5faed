"""Run a compiled flow under anyio, emitting events, and record it as a trace.

``run_flow`` is the entry point for everything that runs flows (CLI, app, tests):
it prepares the inputs, writes the trace as the run goes, and always finishes the
trace, whatever happens (node failure, engine bug, Ctrl-C).
"""

from __future__ import annotations

import os
import shutil
import sys
import threading
from collections.abc import Awaitable, Mapping, Sequence
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any

import anyio

from ..ir.spec import FlowSpec, children_ir
from ..ir.templates import Unresolved, compile_value
from ..nodes.base import NodeType
from ..problems import FlowError
from ..trace import events as ev
from ..trace.events import Emitter, Sink, error_info
from ..trace.large import LargeValues
from ..trace.redact import Redactor, run_redactor
from ..trace.usage import UsageTally
from ..trace.writer import TraceWriter, default_trace_path
from . import process_groups
from .execution import Execution, FlowRuntimeError, Frame
from .flow import compile_flow
from .gate import Gate
from .interrupts import Terminated
from .spill import Spill, results_dir

if TYPE_CHECKING:
    from .cache import StepCache


@dataclass
class RunResult:
    """How a run ended."""

    status: str  # "ok" | "failed" | "interrupted"
    outputs: dict[str, Any] = field(default_factory=dict)
    store: dict[str, Any] = field(default_factory=dict)
    error: dict[str, Any] | None = None
    duration: float = 0.0
    trace_path: Path | None = None
    events: int = 0
    rerun: dict[str, Any] | None = None  # a re-run: what was restored and what ran
    usage: dict[str, Any] | None = None  # llm tokens (and cost) of the run (trace/usage.py)

    def __repr__(self) -> str:
        # Short: asyncio formats the repr of the run's task, result included, when it looks
        # at its SIGINT handler at the end of anyio.run; a repr of every output and the
        # whole store took seconds and gigabytes with a 200 MB value (issue 14).
        return (f"RunResult(status={self.status!r}, outputs={len(self.outputs)} keys, "
                f"store={len(self.store)} keys, error={'yes' if self.error else 'no'}, "
                f"trace_path={str(self.trace_path) if self.trace_path else None!r})")


# --- running -----------------------------------------------------------------------------------

def _resolve_outputs(spec: FlowSpec, ex: Execution, path: str) -> dict[str, Any]:
    outputs: dict[str, Any] = {}
    scope = (ex.inputs, ex.shared)
    for name, out in spec.outputs.items():
        if not out.source:
            continue
        text = out.source if "${" in out.source else "${" + out.source.lstrip("$") + "}"
        try:
            value = compile_value(text).resolve(scope)
        except Unresolved as exc:
            ex.emit(ev.WARNING, path, {"message": f"output '{name}' not resolved: {exc}"})
            continue
        if value is None:  # as pflow: an output that resolves to nothing is not written
            continue
        outputs[name] = value
        ex.write_root(name, value, path)
    return outputs


async def execute(spec: FlowSpec, inputs: dict[str, Any], sinks: Sequence[Sink] = (), *,
                  shared: dict[str, Any] | None = None,
                  registry: Mapping[str, NodeType] | None = None,
                  stop: threading.Event | None = None,
                  gate: Gate | None = None,
                  cache: StepCache | None = None,
                  spill: Spill | None = None,
                  redactor: Redactor | None = None,
                  cluster: str | None = None) -> RunResult:
    """Run ``spec`` in the current event loop; every event goes to ``sinks``.

    ``shared`` (the store) may be passed in so that the caller keeps it even if the run
    is interrupted. Setting ``stop`` (from any thread) cancels the run: running nodes
    and items end as ``cancelled`` and the result's status is ``interrupted``; a paused
    run too. ``gate``: pause, step and breakpoints (see :mod:`pflow_tui.engine.run.gate`);
    without one nothing ever waits. ``cache``: a re-run (see :mod:`pflow_tui.engine.trace.rerun`):
    recorded results stand in for the nodes and items they may replace. ``spill``: where
    batches with ``batch_size`` write their results (default: a temporary folder).
    ``redactor``: the run's secrets, taken out of every event the sinks get (default: the
    flow's secret inputs and those filled from the environment; see redact.py).
    ``cluster``: where ``"executor": "cluster"`` nodes run (``local`` or a scheduler's
    address; default: ``PFLOW_TUI_CLUSTER``, else ``local``; see cluster.py).
    """
    if registry is None:
        from ..registry import registry as default_registry  # start-up time: it loads every node type

        registry = default_registry()
    shared = {} if shared is None else shared
    if redactor is None:
        redactor = run_redactor(spec, inputs)
    emitter = Emitter(list(sinks), redact=redactor.event)
    ex = Execution(spec, emitter, inputs, shared)
    ex.stop = stop
    ex.cluster_spec = cluster
    if spill is not None:
        ex.spill = spill
    start: dict[str, Any] = {"flow": spec.name, "inputs": inputs, "source": spec.source}
    if cache is not None:  # a re-run (see cache.py): restores what the recorded run did well
        ex.cache = cache
        cache.bind(spec)
        emitter.sinks.insert(0, cache.observe)
        start["rerun_of"] = cache.source
    root = spec.name
    emitter.emit(ev.RUN_START, root, start)
    if gate is not None:
        ex.gate = gate
        gate.attach(emitter.emit, root)
    for key, value in inputs.items():
        ex.write_root(key, value, root)
    flow = compile_flow(spec, ex, registry)
    frame = Frame(shared, (inputs, shared), root)
    status, error, outputs = "ok", None, {}
    try:
        if stop is None:
            action = await flow.run_async(frame)
        else:
            action = await until_stopped(flow.run_async(frame), stop)
        if action is STOPPED:
            status, error = "interrupted", {"type": "Stopped", "message": "stopped by the user"}
        elif isinstance(action, str) and action.startswith("error"):
            status = "failed"
            error = ex.last_error or {"type": "FlowError", "message": f"ended with action {action!r}"}
        else:
            outputs = _resolve_outputs(spec, ex, root)
    except FlowRuntimeError as exc:
        status, error = "failed", {**error_info(exc, with_traceback=False), "node": ex.last_node,
                                   "path": exc.path}
    except Exception as exc:  # a bug in pflow-tui or a plugin: keep the trace, show the traceback
        status, error = "failed", {**error_info(exc), "internal": True}
    except BaseException:
        if gate is not None:
            gate.detach()
        emitter.emit(ev.RUN_END, root, {"status": "cancelled", "duration": emitter.now(),
                                        **_usage_field(ex.usage)})
        raise
    finally:
        await ex.aclose()  # the worker processes, if any: whatever happened
    if gate is not None:
        gate.detach()
    fields: dict[str, Any] = {"status": _END_STATUS[status], "duration": emitter.now(),
                              "outputs": outputs}
    if error:
        fields["error"] = error
    fields.update(_usage_field(ex.usage))
    emitter.emit(ev.RUN_END, root, fields)
    return RunResult(status, outputs, shared, error, emitter.now(), None, emitter.seq,
                     usage=fields.get("usage"))


def _usage_field(tally: UsageTally) -> dict[str, Any]:
    usage = tally.to_json()
    return {} if usage is None else {"usage": usage}


_END_STATUS = {"ok": "ok", "failed": "error", "interrupted": "cancelled"}
STOPPED = object()


async def until_stopped(main: Awaitable[Any], stop: threading.Event) -> Any:
    """Await ``main`` unless ``stop`` is set first (then cancel it and return STOPPED)."""
    outcome: list[Any] = []
    async with anyio.create_task_group() as tg:

        async def run_main() -> None:
            try:
                outcome.append(await main)
            except Exception as exc:  # re-raised below, outside the task group
                outcome.append(exc)
            tg.cancel_scope.cancel()

        async def watch() -> None:
            while not stop.is_set():
                await anyio.sleep(0.05)
            tg.cancel_scope.cancel()

        tg.start_soon(run_main)
        tg.start_soon(watch)
    if not outcome:
        return STOPPED
    if isinstance(outcome[0], Exception):
        raise outcome[0]
    return outcome[0]


def run_flow(spec: FlowSpec, inputs: dict[str, Any], *, trace: str | Path | None = None,
             sinks: Sequence[Sink] = (),
             registry: Mapping[str, NodeType] | None = None,
             stop: threading.Event | None = None,
             gate: Gate | None = None,
             cache: StepCache | None = None,
             cluster: str | None = None) -> RunResult:
    """Run a flow to the end (blocking), writing its trace; see :func:`execute`.

    Ctrl-C finishes the trace as ``interrupted`` and re-raises KeyboardInterrupt.
    """
    path = Path(trace) if trace else default_trace_path(spec.name)
    stop = threading.Event() if stop is None else stop
    redactor = run_redactor(spec, inputs)
    writer = TraceWriter(path, {"flow_name": spec.name, "source": spec.source,
                                "flow": redactor.scrub(spec.ir, templates=True),
                                "children": redactor.scrub(children_ir(spec), templates=True),
                                "inputs": redactor.inputs(inputs), "pid": os.getpid(),
                                "python": sys.version.split()[0], "base_dir": str(spec.base_dir),
                                **({"rerun_of": cache.source} if cache is not None else {})},
                         on_failure=lambda _: stop.set())  # a full disk: the run stops there
    folder = results_dir(path)
    writer.large = LargeValues(folder, path.parent, on_failure=writer.fail)
    if folder.is_dir():  # left by a run whose trace was removed: this run's results go there
        shutil.rmtree(folder, ignore_errors=True)
    shared: dict[str, Any] = {}
    try:
        with process_groups.run_scope():  # the node processes end with the run, whatever happens
            result = anyio.run(partial(execute, spec, inputs, [writer.write, *sinks], shared=shared,
                                       registry=registry, stop=stop, gate=gate, cache=cache,
                                       spill=Spill(folder, path.parent, on_failure=writer.fail),
                                       redactor=redactor, cluster=cluster))
    except BaseException as exc:
        interrupted = isinstance(exc, KeyboardInterrupt)
        writer.finish("interrupted" if interrupted else "failed", outputs={},
                      store=redactor.store(shared),
                      error=redactor.scrub(_interrupt_error(exc) if interrupted else error_info(exc)))
        raise
    # what leaves the process (the footer, the console, the app) is redacted: the result too
    result.outputs = redactor.scrub(result.outputs)
    result.store = redactor.store(result.store)
    result.error = redactor.scrub(result.error)
    writer.finish(result.status, outputs=result.outputs, store=result.store, error=result.error)
    result.trace_path = path
    if writer.error is not None:
        result.status, result.error = "failed", trace_write_error(writer.error, path)
    return result


def _interrupt_error(exc: BaseException) -> dict[str, Any]:
    if isinstance(exc, Terminated):
        return {"type": "Terminated", "message": "terminated (SIGTERM)"}
    return {"type": "KeyboardInterrupt", "message": "interrupted (Ctrl-C)"}


def trace_write_error(exc: OSError, path: Path) -> dict[str, Any]:
    """The error of a run stopped because its trace could not be written (a full disk)."""
    why = exc.strerror or str(exc)
    return {"type": "TraceWriteError", "errno": exc.errno,
            "message": f"cannot write the trace ({why}): the run stopped at the first event it "
                       f"could not save, and {path} holds the run up to there. Free some space, "
                       f"then resume it: pflow-tui rerun {path}"}


__all__ = ["FlowError", "RunResult", "execute", "run_flow"]
