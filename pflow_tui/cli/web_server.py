"""textual-serve's server for ``pflow-tui serve``: our start-up line instead of its banner, its
log only with ``-v``, and the exit code of what stopped it (130 Ctrl-C, 143 SIGTERM). Imported
only by ``serve``: it needs the ``web`` extra."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
from collections.abc import Callable
from typing import Any

from textual_serve.server import Server


class DebuggerServer(Server):
    """A textual-serve server that runs ``command`` for each browser tab."""

    def __init__(self, command: str, *, verbose: bool, announce: Callable[[], None], **kwargs: Any) -> None:
        super().__init__(command, **kwargs)
        self.verbose = verbose
        self.announce = announce
        self.exit_code = 130  # what stopped it: set by the signal handlers

    def initialize_logging(self) -> None:
        if self.verbose:  # (else Python's default: warnings and errors on stderr)
            super().initialize_logging()
        # a tab's debugger told to quit by Ctrl-C may end after the loop closed: it is reaped,
        # but asyncio says so
        logging.getLogger("asyncio").addFilter(lambda record: "that handles pid" not in record.getMessage())

    async def on_startup(self, app: Any) -> None:
        loop = asyncio.get_running_loop()
        for signum, code in ((signal.SIGINT, 130), (signal.SIGTERM, 143)):
            with contextlib.suppress(NotImplementedError, RuntimeError):  # (Windows: KeyboardInterrupt)
                loop.add_signal_handler(signum, self.stop, code)
        self.announce()

    def stop(self, code: int) -> None:
        """Stop serving (the open tabs' debuggers are told to quit); exit with ``code``."""
        self.exit_code = code
        self.request_exit()
