"""Run one flow in a child process and stream its events to the parent.

    python -m pflow_tui.engine.run.child   (the job arrives as one JSON line on stdin)

The app runs flows this way so that the run has a core (and a GIL) of its own: the
UI's work never slows the run down, and the run never makes the UI stutter. Events go
to stdout as JSON lines (flushed every few milliseconds); the trace file is written as
in any run. Lines on stdin after the job are commands, one per line:

- ``stop``: end the run (cancelled), paused or not;
- ``pause``, ``resume`` (or ``continue``), ``step``, ``step_node``: see
  :class:`pflow_tui.engine.run.gate.Gate`;
- ``break {json}``: add (or replace) a breakpoint given as its JSON
  (:func:`pflow_tui.engine.run.gate.breakpoint_from_json`), ``unbreak ID``: remove one,
  ``unbreak *``: remove all.

The job may carry ``paused: true`` (nothing starts before a ``step`` or ``resume``)
and ``breakpoints`` (a list of breakpoint JSON). A bad command is reported on stderr
and ignored. Pauses and resumes are ``pause`` / ``resume`` events on stdout.
"""

from __future__ import annotations

import contextlib
import os
import sys
import threading
from collections.abc import Iterable
from pathlib import Path
from typing import IO, Any

import orjson

from ..ir.load import build_flow
from ..trace.events import Event
from ..trace.writer import dumps, json_default
from .executor import run_flow
from .gate import Breakpoint, Gate, breakpoint_from_json
from .inputs import Inputs
from .interrupts import EXIT_CODE, Terminated, sigterm_interrupts

FLUSH_EVERY = 0.02  # seconds


class PipeSink:
    """Writes events as JSON lines to a binary stream, flushed by a background thread."""

    def __init__(self, stream: IO[bytes]) -> None:
        self.stream = stream
        self._dirty = False
        self._done = threading.Event()
        threading.Thread(target=self._flush_loop, name="event-pipe", daemon=True).start()

    def __call__(self, event: Event) -> None:
        try:
            line = orjson.dumps(event, default=json_default)
        except (orjson.JSONEncodeError, TypeError):
            line = dumps(event)
        self.stream.write(line + b"\n")
        self._dirty = True

    def _flush_loop(self) -> None:
        while not self._done.wait(FLUSH_EVERY):
            if self._dirty:
                self._dirty = False
                try:
                    self.stream.flush()
                except (OSError, ValueError):  # the parent went away
                    return

    def close(self) -> None:
        self._done.set()
        with contextlib.suppress(OSError, ValueError):
            self.stream.flush()


def program_job(source: str, *, shared: str | None, inputs: dict[str, Any], trace: Path,
                paused: bool = False, breakpoints: Iterable[Breakpoint | dict[str, Any]] = ()) -> bytes:
    """The job line for a Python program (``file.py:flow``; see
    :mod:`pflow_tui.engine.python.pyprogram`): ``inputs`` are the NAME=VALUE texts."""
    bps = [bp if isinstance(bp, dict) else bp.to_json() for bp in breakpoints]
    job: dict[str, Any] = {"python": source, "shared": shared, "inputs": inputs, "trace": str(trace),
                           "paused": paused, "breakpoints": bps}
    return orjson.dumps(job) + b"\n"


def job_message(ir: dict[str, Any], *, name: str, source: str, base_dir: Path,
                inputs: dict[str, Any], trace: Path, paused: bool = False,
                breakpoints: Iterable[Breakpoint | dict[str, Any]] = (),
                rerun_of: Path | None = None, rerun_upto: int | None = None) -> bytes:
    """The job line the parent sends (see :func:`main`). ``paused``: nothing starts before
    a ``step`` or ``resume`` command; ``breakpoints``: Breakpoint objects or their JSON."""
    job: dict[str, Any] = {"ir": ir, "name": name, "source": source, "base_dir": str(base_dir),
                           "inputs": inputs, "trace": str(trace)}
    from_env = sorted(getattr(inputs, "from_env", ()))
    if from_env:  # inputs read from the environment: secret (see redact.py) in the worker too
        job["from_env"] = from_env
    if paused:
        job["paused"] = True
    bps = [bp if isinstance(bp, dict) else bp.to_json() for bp in breakpoints]
    if bps:
        job["breakpoints"] = bps
    if rerun_of is not None:  # restore what ended ok in that trace; run the rest
        job["rerun_of"] = str(rerun_of)
        if rerun_upto is not None:  # only what the signature covers (a trace cut short)
            job["rerun_upto"] = rerun_upto
    return orjson.dumps(job) + b"\n"


def command(gate: Gate, stop: threading.Event, line: str) -> str | None:
    """Apply one command line; an error message when it is not understood."""
    word, _, arg = line.strip().partition(" ")
    arg = arg.strip()
    if word == "stop":
        stop.set()
        gate.close()
    elif word == "pause":
        gate.pause()
    elif word in ("resume", "continue"):
        gate.resume()
    elif word == "step":
        gate.step()
    elif word == "step_node":
        gate.step_node()
    elif word == "break":
        try:
            gate.add_breakpoint(breakpoint_from_json(arg))
        except ValueError as exc:
            return str(exc)
    elif word == "unbreak":
        if arg == "*":
            gate.clear_breakpoints()
        elif not gate.remove_breakpoint(arg):
            return f"unbreak: no breakpoint {arg!r}"
    elif word:
        return (f"unknown command {word!r}: expected stop, pause, resume, step, step_node, "
                "break {json} or unbreak ID")
    return None


def main() -> int:
    job = orjson.loads(sys.stdin.buffer.readline())
    stop = threading.Event()
    try:
        gate = Gate(paused=bool(job.get("paused")),
                    breakpoints=[breakpoint_from_json(b) for b in job.get("breakpoints") or ()])
    except ValueError as exc:
        print(f"pflow-tui worker: {exc}", file=sys.stderr)
        return 2

    def commands() -> None:
        for line in sys.stdin:
            problem = command(gate, stop, line)
            if problem:
                print(f"pflow-tui worker: {problem}", file=sys.stderr, flush=True)
        stop.set()  # the parent closed our stdin: it is gone, or wants us to stop

    threading.Thread(target=commands, name="commands", daemon=True).start()
    if "python" in job:
        return _run_program(job, stop, gate)
    spec = build_flow(job["ir"], source=job["source"], base_dir=Path(job["base_dir"]),
                      default_name=job["name"])
    cache = None
    if job.get("rerun_of"):
        from .cache import RunCache  # start-up time: only a re-run reads a recorded trace

        cache = RunCache.from_trace(job["rerun_of"], upto=job.get("rerun_upto"))
        cache.bind(spec)
    inputs = Inputs(job["inputs"])
    inputs.from_env = frozenset(job.get("from_env") or ())
    sink = PipeSink(sys.stdout.buffer)
    try:
        with sigterm_interrupts():  # the app got SIGTERM and passes it on: footer, then 143
            result = run_flow(spec, inputs, trace=job["trace"], sinks=[sink], stop=stop,
                              gate=gate, cache=cache)
    except KeyboardInterrupt as exc:
        return EXIT_CODE if isinstance(exc, Terminated) else 130
    finally:
        sink.close()
    return 0 if result.status == "ok" else 1


def _run_program(job: dict[str, Any], stop: threading.Event, gate: Gate) -> int:
    from ..problems import FlowError  # (start-up time: the worker of a flow needs neither)
    from ..python.pyprogram import load_program, run_program

    try:
        program = load_program(job["python"], shared=job.get("shared"), inputs=job.get("inputs"))
    except FlowError as exc:
        print(f"pflow-tui worker: {exc}", file=sys.stderr)
        return 2
    sink = PipeSink(sys.stdout.buffer)
    try:
        with sigterm_interrupts():
            result = run_program(program, trace=job["trace"], sinks=[sink], stop=stop, gate=gate)
    except KeyboardInterrupt as exc:
        return EXIT_CODE if isinstance(exc, Terminated) else 130
    finally:
        sink.close()
    if result.error and result.error.get("internal"):
        print(f"pflow-tui worker: {result.error.get('traceback') or result.error['message']}",
              file=sys.stderr)
    if result.status == "interrupted":  # a sync program's thread may still run: do not wait for it
        sys.stdout.flush()
        os._exit(130)
    return 0 if result.status == "ok" else 1


if __name__ == "__main__":
    raise SystemExit(main())
