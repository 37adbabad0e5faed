"""Run one flow in a child process and stream its events to the parent.

    python -m pflow_tui.engine.worker   (the job arrives as one JSON line on stdin)

The app runs flows this way so that the run has a core (and a GIL) of its own: the
UI's work never slows the run down, and the run never makes the UI stutter. Events go
to stdout as JSON lines (flushed every few milliseconds); the trace file is written as
in any run. Lines on stdin after the job are commands: ``stop``.
"""

from __future__ import annotations

import contextlib
import sys
import threading
from pathlib import Path
from typing import IO, Any

import orjson

from .events import Event
from .executor import run_flow
from .ir import build_flow
from .trace import dumps

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
            line = orjson.dumps(event, default=repr)
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


def job_message(ir: dict[str, Any], *, name: str, source: str, base_dir: Path,
                inputs: dict[str, Any], trace: Path) -> bytes:
    """The job line the parent sends (see :func:`main`)."""
    return orjson.dumps({"ir": ir, "name": name, "source": source, "base_dir": str(base_dir),
                         "inputs": inputs, "trace": str(trace)}) + b"\n"


def main() -> int:
    job = orjson.loads(sys.stdin.buffer.readline())
    spec = build_flow(job["ir"], source=job["source"], base_dir=Path(job["base_dir"]),
                      default_name=job["name"])
    stop = threading.Event()

    def commands() -> None:
        for line in sys.stdin:
            if line.strip() == "stop":
                stop.set()
        stop.set()  # the parent closed our stdin: it is gone, or wants us to stop

    threading.Thread(target=commands, name="commands", daemon=True).start()
    sink = PipeSink(sys.stdout.buffer)
    try:
        result = run_flow(spec, job["inputs"], trace=job["trace"], sinks=[sink], stop=stop)
    except KeyboardInterrupt:
        return 130
    finally:
        sink.close()
    return 0 if result.status == "ok" else 1


if __name__ == "__main__":
    raise SystemExit(main())
