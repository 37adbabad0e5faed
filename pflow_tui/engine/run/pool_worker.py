"""A worker process of the process pool (see :mod:`pflow_tui.engine.run.pool`).

The pool starts it with ``python -c`` and a line that sets ``sys.path`` to the run's before
it imports this module and calls :func:`main` (so that the worker imports the same code as
the run, whatever directory it starts in). It reads jobs (see :func:`run_job`) from stdin
and answers each on stdout, both as an 8-byte big-endian length and a pickle. EOF on stdin
ends the worker.

The standard streams are moved out of the way first: the protocol keeps private copies of
fds 0 and 1, and fd 1 then goes to /dev/null, so nothing a node prints (or a program it
starts without capturing) can break the protocol. Ctrl-C is ignored: the run decides when
its workers end. This module imports only the standard library at start (a worker is
ready in a few tens of milliseconds); node types are imported when a job names them.
"""

from __future__ import annotations

import importlib
import os
import pickle
import signal
import sys
from collections.abc import Mapping
from typing import Any, BinaryIO  # (asyncio, traceback: imported when a job needs them)

_functions: dict[str, Any] = {}


def function_named(ref: str) -> Any:
    """A function by its ``"module:qualname"``."""
    fn = _functions.get(ref)
    if fn is None:
        module, _, qualname = ref.partition(":")
        fn = importlib.import_module(module)
        for part in qualname.split("."):
            fn = getattr(fn, part)
        _functions[ref] = fn
    return fn


def run_job(job: tuple[Any, ...]) -> tuple[Any, ...]:
    """One attempt: ``("ok", outputs)`` or ``("error", type name, message, traceback)``.

    ``job`` is ``(type name, "module:qualname" of its run function, params, path, attempt,
    index, base_dir, branches)``. Never raises for what the node does.
    """
    from ..nodes.base import RunContext  # start-up time: the worker loads it with its first job

    name, ref, params, path, attempt, index, base_dir, branches = job
    ctx = RunContext(path, attempt, index, base_dir)
    ctx.branches = branches
    try:
        out = function_named(ref)(params, ctx)
        if hasattr(out, "__await__"):  # an async node type: a loop of its own
            import asyncio  # start-up time: only async node types need it

            out = asyncio.run(_awaited(out))
        if not isinstance(out, Mapping):
            raise TypeError(f"node type '{name}' returned {type(out).__name__}, not a dict")
        out = dict(out)
        try:
            pickle.dumps(out, pickle.HIGHEST_PROTOCOL)
        except Exception as exc:
            raise TypeError(f"the outputs of node type '{name}' cannot be sent back from the "
                            f"worker process: {exc}") from None
    except Exception as exc:
        import traceback  # start-up time: only a failure needs it

        return ("error", type(exc).__name__, str(exc) or type(exc).__name__,
                "".join(traceback.format_exception(exc)))
    return ("ok", out)


async def _awaited(awaitable: Any) -> Any:
    return await awaitable


def _read(stream: BinaryIO, n: int) -> bytes | None:
    data = b""
    while len(data) < n:
        chunk = stream.read(n - len(data))
        if not chunk:
            return None
        data += chunk
    return data


def _message(stream: BinaryIO) -> Any:
    head = _read(stream, 8)
    if head is None:
        raise EOFError
    body = _read(stream, int.from_bytes(head, "big"))
    if body is None:
        raise EOFError
    return pickle.loads(body)


def die_with_parent(parent: int) -> None:
    """Linux: the kernel kills this worker (SIGKILL) when the run's process ends, even by
    ``kill -9`` (``PR_SET_PDEATHSIG``; the pool starts workers from the event loop's
    thread, which lives as long as the run). Exits at once if the run is already gone.
    Elsewhere: the run's watchdog kills the worker's process group (see process_groups.py)."""
    if not sys.platform.startswith("linux"):
        return
    try:
        import ctypes  # start-up time: Linux only

        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(1, signal.SIGKILL, 0, 0, 0)  # 1: PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        return
    if parent and os.getppid() != parent:  # it died before the call above
        os._exit(1)


def main(parent: int = 0) -> None:
    die_with_parent(parent)
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    inp = os.fdopen(os.dup(0), "rb")
    out = os.fdopen(os.dup(1), "wb")
    devnull = os.open(os.devnull, os.O_RDWR)
    os.dup2(devnull, 0)  # sys.stdin and sys.stdout now read and write /dev/null
    os.dup2(devnull, 1)
    try:
        while True:
            answer = run_job(_message(inp))
            try:
                data = pickle.dumps(answer, pickle.HIGHEST_PROTOCOL)
            except Exception as exc:  # an exception message or traceback that does not pickle
                data = pickle.dumps(("error", "TypeError", f"cannot send the outcome back: {exc}", ""))
            out.write(len(data).to_bytes(8, "big") + data)
            out.flush()
    except (EOFError, BrokenPipeError):
        return


if __name__ == "__main__":
    main()
