"""Where the app's events come from: a live run in a worker process, or a fixed list.

Both are drained by the app's timer, so the panes see the same batches of events
either way. No Textual here.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import threading
import time
from collections import deque
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import orjson

from ..engine.ir.spec import FlowSpec
from ..engine.python.pyprogram import Program
from ..engine.run.child import job_message, program_job
from ..engine.run.gate import Breakpoint
from ..engine.trace.events import Event
from ..engine.trace.reader import TraceIndex


class EventFeed:
    """A fixed list of events (a finished run, a trace, a test), handed out in one batch."""

    live = False

    def __init__(self, events: Sequence[Event]) -> None:
        self._pending: list[Event] = list(events)
        self.trace_path: Path | None = None

    def start(self) -> EventFeed:
        """Nothing to start: the events are all there."""
        return self

    def drain(self, limit: int | None = None) -> list[Event]:
        if limit is None or limit >= len(self._pending):
            out, self._pending = self._pending, []
        else:
            out, self._pending = self._pending[:limit], self._pending[limit:]
        return out

    def drain_pending(self) -> bool:
        """Whether events are still waiting to be drained."""
        return bool(self._pending)

    @property
    def running(self) -> bool:
        return False

    def stop(self) -> None:
        """Nothing to stop."""

    def join(self, timeout: float | None = None) -> None:
        """Nothing to wait for."""


class TraceFeed:
    """A saved trace, fed to the panes up to a cursor (a number of events); no code runs.

    Events are parsed as they are fed, a batch per tick, so even a trace of a million
    events opens at once and fills in; moving the cursor forward feeds more.
    """

    live = False

    def __init__(self, index: TraceIndex, upto: int | None = None, pos: int = 0) -> None:
        self.index = index
        self.trace_path: Path | None = index.path
        self.pos = pos  # events already in the model
        self.upto = len(index) if upto is None else max(0, min(upto, len(index)))

    def start(self) -> TraceFeed:
        """Nothing to start."""
        return self

    def drain(self, limit: int | None = None) -> list[Event]:
        n = self.upto - self.pos if limit is None else min(limit, self.upto - self.pos)
        if n <= 0:
            return []
        events = self.index.summaries(self.pos, self.pos + n)
        self.pos += n
        return events

    @property
    def loading(self) -> bool:
        """Events up to the cursor are still being fed."""
        return self.pos < self.upto

    def drain_pending(self) -> bool:
        """Whether events up to the cursor are still waiting to be drained."""
        return self.loading

    @property
    def running(self) -> bool:
        return False

    def stop(self) -> None:
        """Nothing to stop."""

    def join(self, timeout: float | None = None) -> None:
        """Nothing to wait for."""


class LiveRun:
    """Runs a flow in a worker process; its events queue up until the app drains them.

    The run gets a core (and a GIL) of its own, so the UI never slows it down. A reader
    thread parses the event lines into a deque; the app's timer takes them in batches,
    never one refresh per event.
    """

    live = True

    def __init__(self, spec: FlowSpec | Program, inputs: dict[str, Any], trace_path: Path, *,
                 paused: bool = False, breakpoints: Sequence[Breakpoint] = (),
                 rerun_of: Path | None = None, rerun_upto: int | None = None) -> None:
        self.spec = spec
        self.inputs = inputs
        self.trace_path = trace_path
        self.paused = paused
        self.breakpoints = list(breakpoints)
        self.rerun_of = rerun_of
        self.rerun_upto = rerun_upto
        self._chunks: deque[bytes] = deque()  # raw output, as read
        self._lines: deque[bytes] = deque()  # complete event lines, not parsed yet
        self._partial = b""
        self._proc: subprocess.Popen[bytes] | None = None
        self._reader: threading.Thread | None = None
        self.stderr = b""
        self.returncode: int | None = None
        self.wall: tuple[float, float] = (0.0, 0.0)  # perf_counter at the start and the end

    def start(self) -> LiveRun:
        if self._proc is not None:
            return self
        started = time.perf_counter()
        self._proc = subprocess.Popen(
            [sys.executable, "-m", "pflow_tui.engine.run.child"], stdin=subprocess.PIPE,
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, start_new_session=True)
        assert self._proc.stdin is not None
        spec = self.spec
        if isinstance(spec, Program):
            job = program_job(spec.source, shared=spec.shared_source, inputs=spec.texts,
                              trace=self.trace_path, paused=self.paused, breakpoints=self.breakpoints)
        else:
            job = job_message(spec.ir, name=spec.name, source=spec.source, base_dir=spec.base_dir,
                              inputs=self.inputs, trace=self.trace_path, paused=self.paused,
                              breakpoints=self.breakpoints, rerun_of=self.rerun_of,
                              rerun_upto=self.rerun_upto)
        self._proc.stdin.write(job)
        self._proc.stdin.flush()
        self._reader = threading.Thread(target=self._read, args=(started,), name="pflow-events",
                                        daemon=True)
        self._reader.start()
        return self

    def _read(self, started: float) -> None:
        """Move raw output into memory as fast as it comes (the GIL is free while reading),
        so the worker never waits on a full pipe; parsing happens in ``drain``."""
        proc = self._proc
        assert proc is not None and proc.stdout is not None and proc.stderr is not None
        fd = proc.stdout.fileno()
        append = self._chunks.append
        while chunk := os.read(fd, 1 << 20):
            append(chunk)
        self.stderr = proc.stderr.read()
        self.returncode = proc.wait()
        self.wall = (started, time.perf_counter())

    def drain(self, limit: int | None = None) -> list[Event]:
        """The events that arrived, oldest first (at most ``limit``; the rest wait)."""
        chunks = self._chunks
        if chunks:
            data = self._partial + b"".join([chunks.popleft() for _ in range(len(chunks))])
            *lines, self._partial = data.split(b"\n")
            self._lines.extend(lines)
        pending = self._lines
        n = len(pending) if limit is None else min(limit, len(pending))
        out = []
        for _ in range(n):
            try:
                out.append(orjson.loads(pending.popleft()))
            except orjson.JSONDecodeError:
                continue
        return out

    def drain_pending(self) -> bool:
        """Whether events that arrived are still waiting to be drained."""
        return bool(self._chunks or self._lines)

    @property
    def running(self) -> bool:
        return self._reader is not None and self._reader.is_alive()

    def stop(self) -> None:
        """Ask the run to stop: running items end as cancelled, the trace is finished."""
        self.command("stop")

    def terminate(self) -> None:
        """Pass SIGTERM on to the run: it ends as interrupted (error ``Terminated``), with
        its trace footer, as ``pflow-tui run`` does on SIGTERM."""
        proc = self._proc
        if proc is not None and proc.poll() is None:
            with contextlib.suppress(OSError):
                proc.send_signal(signal.SIGTERM)

    def command(self, line: str) -> None:
        """Send the worker a command: stop, pause, resume, step, step_node, break {json},
        unbreak {id}."""
        proc = self._proc
        if proc is not None and proc.poll() is None and proc.stdin is not None:
            try:
                proc.stdin.write(line.encode() + b"\n")
                proc.stdin.flush()
            except (BrokenPipeError, OSError):
                pass

    def join(self, timeout: float | None = None) -> None:
        if self._reader is not None:
            self._reader.join(timeout)
        if self._proc is not None and self._proc.poll() is None:
            self._proc.kill()
