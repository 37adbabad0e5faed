"""pflow-tui: a terminal debugger for pflow workflows running on PocketFlow.

``pflow_tui.trace(path)`` traces every PocketFlow run inside a ``with`` block (see
:mod:`pflow_tui.engine.python.pytrace`); it is imported on first use, so ``import pflow_tui``
stays cheap for the command line.
"""

from __future__ import annotations

from typing import Any

__version__ = "0.1.0"
__all__ = ["__version__", "trace"]


def __getattr__(name: str) -> Any:
    if name == "trace":  # imported on first use: the CLI and the app never need the tracer
        from .engine.python.pytrace import trace

        return trace
    raise AttributeError(f"module 'pflow_tui' has no attribute {name!r}")
