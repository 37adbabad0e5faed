"""On a Dask worker: each attempt in a child process, so that a cancelled one can be killed.

Dask cannot stop a task that is running (a thread of the worker). So the task
(:func:`.cluster_task.run_on_worker`) hands the attempt to a child process of the worker, a
pflow-tui pool worker (:mod:`.pool_worker`, the same protocol as the run's own process
pool: an 8-byte length and a pickle each way), and waits for its answer while it watches
the task's state on the worker. When the run releases the task (stop, Ctrl-C, a
``fail_fast`` sibling), the worker marks it cancelled: the child and whatever it started
(its process group) are killed within :data:`POLL` seconds, and the worker's thread is free
for the next task.

Each thread of the worker has its own child, started with its first attempt and reused;
a killed or dead child is replaced by the next attempt. The child dies with the worker
(Linux: ``PR_SET_PDEATHSIG``; elsewhere it sees the end of its input when idle).
"""

from __future__ import annotations

import os
import pickle
import select
import signal
import subprocess
import threading
from collections.abc import Callable
from typing import Any

POLL = 0.1  # seconds between looks at the task's state while the child runs it
_local = threading.local()  # .child: this thread's child process


def _start() -> subprocess.Popen[bytes]:
    from .pool import worker_command  # (the worker's sys.path, this pflow_tui first)

    return subprocess.Popen(worker_command(), stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                            start_new_session=True)  # a process group: killed whole


def _kill(child: subprocess.Popen[bytes]) -> None:
    try:
        os.killpg(child.pid, signal.SIGKILL)  # the child and what it started
    except OSError:
        child.kill()
    child.wait()
    for stream in (child.stdin, child.stdout):
        if stream is not None:
            stream.close()


def _read(child: subprocess.Popen[bytes], n: int) -> bytes:
    assert child.stdout is not None
    data = child.stdout.read(n)
    if len(data) < n:
        raise EOFError
    return data


def run_in_child(job: tuple[Any, ...], cancelled: Callable[[], bool]) -> bytes:
    """``job`` run by this thread's child: its answer, pickled (``("ok", outputs)`` or
    ``("error", type, message, traceback)``). ``cancelled()`` is asked every :data:`POLL`
    seconds; when it says so, the child is killed and a ``Cancelled`` error is the answer."""
    data = pickle.dumps(job, pickle.HIGHEST_PROTOCOL)
    child: subprocess.Popen[bytes] | None = getattr(_local, "child", None)
    if child is None or child.poll() is not None:
        child = _local.child = _start()
    assert child.stdin is not None and child.stdout is not None
    try:
        child.stdin.write(len(data).to_bytes(8, "big") + data)
        child.stdin.flush()
        fd = child.stdout.fileno()
        while not select.select([fd], [], [], POLL)[0]:  # (the answer comes whole: a blocking read)
            if cancelled():
                _local.child = None
                _kill(child)
                return pickle.dumps(("error", "Cancelled", "cancelled: the run released this task "
                                     "while it ran; its process was killed", ""))
        body = _read(child, int.from_bytes(_read(child, 8), "big"))
    except (EOFError, OSError):  # (BrokenPipeError too) it died
        _local.child = None
        try:
            code: int | None = child.wait(timeout=2)
        except subprocess.TimeoutExpired:
            code = None
        _kill(child)
        return pickle.dumps(("error", "WorkerDied", f"the worker process died while running this (exit "
                             f"code {code}: it crashed, called exit, or was killed)", ""))
    return body
