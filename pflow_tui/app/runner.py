"""Where the app's events come from: a live run in a worker thread, or a fixed list.

Both are drained by the app's timer, so the panes see the same batches of events
either way. No Textual here.
"""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from ..engine.events import Event
from ..engine.executor import RunResult, run_flow
from ..engine.ir import FlowSpec


class EventFeed:
    """A fixed list of events (a finished run, a trace, a test), handed out in one batch."""

    live = False

    def __init__(self, events: Sequence[Event]) -> None:
        self._pending: list[Event] = list(events)
        self.result: RunResult | None = None
        self.trace_path: Path | None = None

    def drain(self) -> list[Event]:
        out, self._pending = self._pending, []
        return out

    @property
    def running(self) -> bool:
        return False

    def stop(self) -> None:
        """Nothing to stop."""

    def join(self, timeout: float | None = None) -> None:
        """Nothing to wait for."""


class LiveRun:
    """Runs a flow in a worker thread; events queue up until the app drains them.

    ``deque.append`` is the executor's sink: thread-safe and cheap, so the run is not
    slowed by the UI, and the UI takes events in batches, never one refresh per event.
    """

    live = True

    def __init__(self, spec: FlowSpec, inputs: dict[str, Any], trace_path: Path) -> None:
        self.spec = spec
        self.inputs = inputs
        self.trace_path = trace_path
        self._queue: deque[Event] = deque()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.result: RunResult | None = None
        self.crash: BaseException | None = None

    def start(self) -> LiveRun:
        self._thread = threading.Thread(target=self._run, name="pflow-run", daemon=True)
        self._thread.start()
        return self

    def _run(self) -> None:
        try:
            self.result = run_flow(self.spec, self.inputs, trace=self.trace_path,
                                   sinks=[self._queue.append], stop=self._stop)
        except BaseException as exc:
            self.crash = exc

    def drain(self) -> list[Event]:
        queue = self._queue
        return [queue.popleft() for _ in range(len(queue))]

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def stop(self) -> None:
        """Ask the run to stop: running items end as cancelled, the trace is finished."""
        self._stop.set()

    def join(self, timeout: float | None = None) -> None:
        if self._thread is not None:
            self._thread.join(timeout)
