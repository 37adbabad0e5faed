"""Re-run from failure (see docs/rerun.md).

A re-run executes a flow again with a :class:`~pflow_tui.engine.run.cache.RunCache` built
from the trace of an earlier run: what ended ok there, and may stand in, is restored
(landed as recorded, with ``"cached": true``); everything else runs. Which steps may be
restored is the cache's to say (see :mod:`pflow_tui.engine.run.cache`); forking one item
is :mod:`.fork`.
"""

from __future__ import annotations

import threading
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from ..ir.load import build_flow, load_flow
from ..ir.spec import FlowSpec
from ..nodes.base import NodeType
from ..problems import FlowError, Problem, clip
from ..run.cache import RunCache, recorded_base_dir
from ..run.executor import RunResult, run_flow
from ..run.inputs import from_text, prepare_inputs
from .events import Sink
from .reader import TraceIndex
from .redact import find_secrets, marks_in, unredact
from .writer import Trace, TraceError, default_trace_path


def prepare_rerun(trace: str | Path | Trace | TraceIndex, *, flow: str | Path | None = None,
                  inputs: Mapping[str, Any] | None = None, as_text: bool = False,
                  registry: Mapping[str, NodeType] | None = None, upto: int | None = None
                  ) -> tuple[FlowSpec, dict[str, Any], RunCache]:
    """The flow, inputs and cache of a re-run of ``trace`` (for callers that run it
    themselves: ``execute(spec, inputs, sinks, cache=cache)``).

    The flow is ``flow`` (a file), else the IR recorded in the trace. The inputs are the
    recorded ones overlaid with ``inputs`` (command-line text when ``as_text``). Raises
    TraceError (not a trace, no flow in it) or FlowError (flow or inputs invalid).
    ``upto``: use only the first ``upto`` bytes' events (see :meth:`RunCache.from_trace`).

    Nothing checks here who made the trace: callers that run it ask first
    (:func:`pflow_tui.engine.trace.trust.verify`, :func:`~pflow_tui.engine.trace.trust.rerun_plan`).
    """
    cache = RunCache.from_trace(trace, upto=upto)
    header = cache.header
    given = dict(inputs or {})
    ir = header.get("flow")
    # the secrets the recorded run did not write down: read again, never used as «redacted:…»
    # (nested flows from files are read from their files; inline ones are in ``ir``)
    names = marks_in(cache.inputs) | (marks_in(ir) if flow is None else set())
    secrets: dict[str, str] = {}
    if names:
        secrets, missing = find_secrets(names, given)
        if missing:
            raise FlowError("command line", [Problem(
                f"secret {clip(name)}", f"the trace holds no value for {clip(name)} (it was "
                f"redacted as «redacted:{clip(name)}»)",
                f"set the environment variable {clip(name)}, or pass {clip(name)}=VALUE")
                for name in missing])
    if flow is not None:
        spec = load_flow(flow, registry)
    else:
        if not isinstance(ir, dict) or not isinstance(ir.get("nodes"), list):
            raise TraceError(f"{cache.source}: the trace holds no flow; give the flow file with --flow")
        if secrets:
            ir = unredact(ir, secrets)
        source = header.get("source")
        spec = build_flow(ir, source=source if isinstance(source, str) else "<flow>",
                          base_dir=recorded_base_dir(header),
                          default_name=str(header.get("flow_name") or "flow"), registry=registry)
    given = {k: v for k, v in given.items() if k in spec.inputs or k not in secrets}
    if as_text:
        given = {k: from_text(v, spec.inputs[k].type) if k in spec.inputs and isinstance(v, str)
                 else v for k, v in given.items()}
    recorded = {k: v for k, v in cache.inputs.items() if k in spec.inputs}
    again: set[str] = set()  # inputs recorded redacted: secret in this run too
    for k, v in recorded.items():
        if isinstance(v, str) and "«redacted:" in v:
            again.add(k)
            value = unredact(v, secrets)
            recorded[k] = from_text(value, spec.inputs[k].type) if value != v else value
    values = prepare_inputs(spec, {**recorded, **given})
    values.from_env = values.from_env | {k for k in again if k not in given}
    cache.bind(spec)
    return spec, values, cache


def rerun_flow(trace_path: str | Path, *, flow: str | Path | None = None,
               inputs: Mapping[str, Any] | None = None, trace: str | Path | None = None,
               sinks: Sequence[Sink] = (), registry: Mapping[str, NodeType] | None = None,
               stop: threading.Event | None = None, as_text: bool = False,
               upto: int | None = None) -> RunResult:
    """Re-run the run recorded in ``trace_path``: restore what ended ok, run the rest.

    ``flow``: an edited flow file to run instead of the recorded IR; ``inputs`` overlay the
    recorded inputs; ``trace``: where the new trace goes (its header has ``rerun_of``).
    The result's ``rerun`` holds :meth:`RunCache.summary`.
    """
    spec, values, cache = prepare_rerun(trace_path, flow=flow, inputs=inputs, as_text=as_text,
                                        registry=registry, upto=upto)
    out = Path(trace) if trace else default_trace_path(spec.name)
    check_output(out, cache)
    result = run_flow(spec, values, trace=out, sinks=sinks, registry=registry, stop=stop, cache=cache)
    result.rerun = cache.summary()
    return result


def check_output(out: str | Path, cache: RunCache) -> None:
    """Refuse to write the new trace over the one being re-run (FlowError)."""
    if Path(out).resolve() == Path(cache.source).resolve():
        raise FlowError("command line", [Problem(
            "--trace", f"{out} is the trace being re-run", "write the new trace to another path")])


__all__ = ["check_output", "prepare_rerun", "rerun_flow"]
