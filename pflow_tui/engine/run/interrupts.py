"""SIGTERM ends a run as Ctrl-C does: running work is cancelled, the trace gets its footer.

``kill PID`` (SIGTERM, what service managers and CI runners send first) used to end the
process at once, leaving the trace without a footer and the node processes running. Inside
:func:`sigterm_interrupts`, SIGTERM raises :class:`Terminated` (a ``KeyboardInterrupt``)
in the main thread instead, so it takes the path Ctrl-C takes; the command line exits
with 143 (128 + SIGTERM), as a process killed by SIGTERM does.
"""

from __future__ import annotations

import contextlib
import signal
import threading
from collections.abc import Iterator
from types import FrameType

EXIT_CODE = 128 + signal.SIGTERM  # 143


class Terminated(KeyboardInterrupt):
    """The process got SIGTERM."""


def _raise(signum: int, frame: FrameType | None) -> None:
    raise Terminated()


@contextlib.contextmanager
def sigterm_interrupts() -> Iterator[None]:
    """SIGTERM raises :class:`Terminated` while inside (main thread only; elsewhere a no-op)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.signal(signal.SIGTERM, _raise)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


__all__ = ["EXIT_CODE", "Terminated", "sigterm_interrupts"]
