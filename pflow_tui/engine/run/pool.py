"""CPU-bound node work in worker processes: the run's process pool.

Python threads share one GIL, so a batch of CPU-bound items in threads runs one item at a
time. A node whose type is CPU-bound (``NodeType.cpu_bound``, e.g. ``code``), or that says
``"executor": "process"``, runs each attempt in a worker process instead.

- **The unit of work is plain data**: :func:`job` is a tuple of the node type's name, its
  ``run`` function as ``"module:qualname"``, the resolved params and the run context
  (path, attempt, index, base_dir, branches). The worker imports the function by name;
  nothing else crosses over. What comes back is data too: the outputs, or an error's type,
  message and formatted traceback (:class:`RemoteError` carries them into the trace).
- **Pool**: :class:`ProcessPool`, one per run: fresh interpreters running
  :mod:`pflow_tui.engine.run.pool_worker` (see there for the protocol), started when a job
  needs one, reused for the rest of the run, ended with it. At most :func:`pool_size` run
  at once (the engine's process slots): the number of cores, or ``PFLOW_TUI_PROCESSES``.
- **Cancellation**: a job cancelled while it runs (stop, Ctrl-C, a ``fail_fast`` sibling
  failing) has its worker killed at once; the next job gets a new one. Workers ignore
  Ctrl-C: the run ends them.
"""

from __future__ import annotations

import os
import pickle
import subprocess
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import anyio
from anyio.abc import Process
from anyio.streams.buffered import BufferedByteReceiveStream

from ..nodes.base import NodeType, RunContext
from ..problems import Problem
from . import process_groups

ENV = "PFLOW_TUI_PROCESSES"


def worker_command() -> list[str]:
    """How a worker starts: with the run's ``sys.path``, the folder this pflow_tui comes from
    first (not the current directory's, as ``python -m`` would: another copy of pflow_tui
    there must not be the one a worker imports)."""
    home = str(Path(__file__).resolve().parents[2])
    boot = (f"import sys; sys.path[:] = {[home, *sys.path]!r}; "
            f"from pflow_tui.engine.run.pool_worker import main; main({os.getpid()})")
    return [sys.executable, "-c", boot]

Job = tuple[str, str, dict[str, Any], str, int, "int | None", str, "list[dict[str, Any]] | None"]


def pool_size(environ: Mapping[str, str] = os.environ) -> int:
    """How many worker processes may run at once (raises ValueError on a bad setting)."""
    raw = environ.get(ENV, "").strip()
    if not raw:
        return os.cpu_count() or 1
    try:
        n = int(raw)
    except ValueError:
        n = 0
    if n < 1:
        raise ValueError(raw)
    return n


def pool_problem(environ: Mapping[str, str] = os.environ) -> Problem | None:
    """A bad ``PFLOW_TUI_PROCESSES`` as a problem to report, or None."""
    try:
        pool_size(environ)
    except ValueError as exc:
        return Problem(f"environment variable {ENV}", f"{str(exc)!r} is not a number of processes",
                       f"unset it (one process per core: {os.cpu_count() or 1}) or set a whole "
                       f"number from 1, e.g. {ENV}=4")
    return None


class RemoteError(Exception):
    """An exception raised by node code in a worker process, as data: its type name,
    message and the traceback formatted there (see ``events.error_info``)."""

    def __init__(self, remote_type: str, message: str, remote_traceback: str) -> None:
        super().__init__(message)
        self.remote_type = remote_type
        self.remote_traceback = remote_traceback


class WorkerDied(Exception):
    """The worker process died while it ran the attempt (crashed, exited or was killed)."""


def job(node_type: NodeType, ref: str, call: RunContext, params: dict[str, Any]) -> Job:
    """One attempt as plain data."""
    return (node_type.name, ref, params, call.path, call.attempt, call.index, call.base_dir,
            call.branches)


def _frame(obj: Any) -> bytes:
    data = pickle.dumps(obj, pickle.HIGHEST_PROTOCOL)
    return len(data).to_bytes(8, "big") + data


class _Worker:
    """One worker process and its pipes."""

    def __init__(self, process: Process) -> None:
        self.process = process
        assert process.stdin is not None and process.stdout is not None
        self.send = process.stdin.send
        self.received = BufferedByteReceiveStream(process.stdout)

    @classmethod
    async def start(cls) -> _Worker:
        process_groups.prepare()
        # a process group of its own, killed whole (with what a code node started) when the
        # worker is killed, when the run ends, and by the watchdog after a kill -9 of the run
        process = await anyio.open_process(worker_command(), stdin=subprocess.PIPE,
                                           stdout=subprocess.PIPE, stderr=None,
                                           start_new_session=True)
        process_groups.started(process.pid)
        return cls(process)

    async def call(self, framed: bytes) -> tuple[Any, ...]:
        await self.send(framed)
        head = await self.received.receive_exactly(8)
        return pickle.loads(await self.received.receive_exactly(int.from_bytes(head, "big")))

    async def kill(self) -> None:
        with anyio.CancelScope(shield=True):
            process_groups.kill(self.process.pid)  # the worker and whatever it started
            if self.process.returncode is None:
                self.process.kill()
            await self.process.aclose()
            process_groups.forget(self.process.pid)


class ProcessPool:
    """The worker processes of one run. Callers hold one of the run's process slots while
    they call :meth:`run`, so at most that many workers exist at once."""

    def __init__(self) -> None:
        self.idle: list[_Worker] = []
        self.busy: set[_Worker] = set()
        self.closed = False

    async def run(self, job: Job) -> dict[str, Any]:
        """Run ``job`` in a worker process; its outputs, or raise what it raised (RemoteError)."""
        try:
            framed = _frame(job)
        except Exception as exc:
            raise TypeError(f"cannot send the params of {job[3]} to a worker process: {exc}") from exc
        worker = None
        while self.idle and worker is None:
            worker = self.idle.pop()
            if worker.process.returncode is not None:  # died while idle (killed from outside)
                await worker.kill()
                worker = None
        if worker is None:
            worker = await _Worker.start()
        self.busy.add(worker)
        try:
            answer = await worker.call(framed)
        except BaseException as exc:  # cancelled, or the worker is gone: it does not come back
            self.busy.discard(worker)
            await worker.kill()
            if isinstance(exc, (anyio.EndOfStream, anyio.IncompleteRead, anyio.BrokenResourceError,
                                anyio.ClosedResourceError, OSError)):
                raise WorkerDied(f"the worker process died while running this (exit code "
                                 f"{worker.process.returncode}: it crashed, called exit, or was "
                                 "killed)") from None
            raise
        self.busy.discard(worker)
        if self.closed:
            await worker.kill()
        else:
            self.idle.append(worker)
        if answer[0] == "ok":
            return answer[1]
        raise RemoteError(*answer[1:])

    async def aclose(self) -> None:
        """End every worker (idle ones see EOF and exit; busy ones are killed)."""
        self.closed = True
        with anyio.CancelScope(shield=True):
            idle, self.idle = self.idle, []
            for worker in idle:
                await worker.process.stdin.aclose()  # type: ignore[union-attr]  # EOF: it exits
            for worker in idle:
                with anyio.move_on_after(2):
                    await worker.process.wait()
                await worker.kill()
            for worker in list(self.busy):
                await worker.kill()
