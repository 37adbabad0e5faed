"""Node commands' process groups: none outlives its run, even when pflow-tui is killed.

Every command a node starts (the ``shell`` node) runs in a process group (a session) of
its own, so the whole group can be killed: the command and whatever it started, e.g. a
child it put in the background (``sleep 88 &``).

- **Timeout, cancel, failure**: the node kills its group at once (``shell``).
- **A command that leaves children behind** returns when the command itself ends; the
  children keep running, in its group, until the run ends (a server started by one node
  can serve the next). When the run ends, however it ends (ok, failed, stopped, Ctrl-C,
  SIGTERM), :func:`run_scope` kills every group the run started that still has a process.
- **pflow-tui killed** (``kill -9``, out of memory): a small watchdog process, started with
  the first command, holds the list of live groups. It notices that pflow-tui is gone
  (end of file on the pipe from it, or its parent changed) and kills them all.

Why a watchdog and not ``PR_SET_PDEATHSIG``: the death signal is set in the child between
fork and exec (``preexec_fn``, unsafe with threads, and the node runs in a thread); it
fires when the *thread* that started the child exits, which a thread pool does when idle;
and it reaches only the direct child, not what the command started (``(sleep 88 &)``).
The watchdog needs none of that and covers the whole group. What it cannot cover: a
command killed in the microseconds between its start and its registration, and a process
that leaves its group on purpose (``setsid``).
"""

from __future__ import annotations

import contextlib
import contextvars
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterable, Iterator

#: The watchdog: reads "+PGID" / "-PGID" lines; kills every group still listed when the
#: pipe from pflow-tui ends or pflow-tui is no longer its parent.
WATCHDOG = r"""
import os, select, signal, sys
parent = int(sys.argv[1])
signal.signal(signal.SIGINT, signal.SIG_IGN)
signal.signal(signal.SIGHUP, signal.SIG_IGN)
groups, buf = set(), b""

def take(data):
    global buf
    *lines, buf = (buf + data).split(b"\n")
    for line in lines:
        (groups.add if line[:1] == b"+" else groups.discard)(int(line[1:]))

while os.getppid() == parent:
    if not select.select([0], [], [], 0.5)[0]:
        continue
    data = os.read(0, 65536)
    if not data:
        break
    take(data)
os.set_blocking(0, False)  # the parent may have died before its last lines were read
try:
    while data := os.read(0, 65536):
        take(data)
except OSError:
    pass
for g in groups:
    try:
        os.killpg(g, signal.SIGKILL)
    except OSError:
        pass
"""

_RUN: contextvars.ContextVar[set[int] | None] = contextvars.ContextVar("pflow_tui_groups", default=None)


class _Watchdog:
    """The process's watchdog, started on first use (again after a fork)."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.proc: subprocess.Popen[bytes] | None = None
        self.owner = 0  # the pid that started it

    def ready(self) -> subprocess.Popen[bytes] | None:
        """The watchdog, started if need be (call with the lock held)."""
        proc = self.proc
        if proc is None or self.owner != os.getpid() or proc.poll() is not None:
            proc = self.proc = self._start()
        return proc

    def tell(self, line: bytes) -> None:
        with self.lock:
            proc = self.ready()
            if proc is None or proc.stdin is None:
                return
            try:
                proc.stdin.write(line)
                proc.stdin.flush()
            except (OSError, ValueError):  # it died: the next line starts another
                self.proc = None

    def _start(self) -> subprocess.Popen[bytes] | None:
        self.owner = os.getpid()
        try:
            return subprocess.Popen([sys.executable, "-I", "-S", "-c", WATCHDOG, str(os.getpid())],
                                    stdin=subprocess.PIPE, stdout=subprocess.DEVNULL,
                                    stderr=subprocess.DEVNULL, start_new_session=True)
        except OSError:  # no watchdog: groups still end with the run, not with a kill -9
            return None


_watchdog = _Watchdog()


def prepare() -> None:
    """Start the watchdog before the first command starts (so that it can be told at once)."""
    with _watchdog.lock:
        _watchdog.ready()


def started(pgid: int) -> None:
    """A node started a process group: it ends with the run (and with pflow-tui)."""
    groups = _RUN.get()
    if groups is not None:
        groups.add(pgid)
    _watchdog.tell(b"+%d\n" % pgid)


def alive(pgid: int) -> bool:
    """Whether any process of the group is left."""
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # a member changed its user: it is there
        return True
    return True


def kill(pgid: int, *, wait: float = 0.0) -> None:
    """Kill every process of the group (SIGKILL); ``wait``: up to that many seconds for
    them to be gone (the signal is not instant)."""
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, signal.SIGKILL)
    _wait_gone([pgid], wait)


def _wait_gone(groups: Iterable[int], seconds: float) -> None:
    deadline = time.monotonic() + seconds
    while any(alive(g) for g in groups) and time.monotonic() < deadline:
        time.sleep(0.005)


def forget(pgid: int) -> None:
    """The group is gone: nothing to kill later."""
    groups = _RUN.get()
    if groups is not None:
        groups.discard(pgid)
    _watchdog.tell(b"-%d\n" % pgid)


def settled(pgid: int) -> None:
    """The command of the group has ended: forget the group unless it left processes."""
    if not alive(pgid):
        forget(pgid)


@contextlib.contextmanager
def run_scope() -> Iterator[set[int]]:
    """A run: the process groups started inside (in any task or thread that inherits the
    context) are killed when it ends."""
    groups: set[int] = set()
    token = _RUN.set(groups)
    try:
        yield groups
    finally:
        _RUN.reset(token)
        left = list(groups)  # (one copy: threads of the run's last nodes may still forget theirs)
        for pgid in left:
            kill(pgid)
        _wait_gone(left, 1.0)
        for pgid in left:
            _watchdog.tell(b"-%d\n" % pgid)


__all__ = ["alive", "forget", "kill", "prepare", "run_scope", "settled", "started"]
