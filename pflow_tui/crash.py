"""Internal errors: a short message for the user, the details in a log file, exit code 70.

No Python traceback reaches the user from any command or from the app: an exception that
nothing else handled is a bug in pflow-tui (or a plugin), and the user can do nothing
with its traceback but send it on. :func:`report` writes the traceback (with the command
line and versions) to a log file and returns the one-paragraph message to show, which
says where the file is. ``--debug`` shows the traceback instead (the command line).

Logs go to ``$XDG_STATE_HOME/pflow-tui/logs/`` (default ``~/.local/state/pflow-tui/logs/``;
the system's temporary folder when that cannot be written), one file per crash, created
0600 in a 0700 folder: a traceback can hold values of the run.
"""

from __future__ import annotations

import datetime as dt
import os
import platform
import sys
import traceback
from pathlib import Path

from . import __version__

EXIT_INTERNAL = 70  # EX_SOFTWARE (sysexits.h): an internal software error


def log_dir() -> Path:
    """Where crash logs go (not created here)."""
    state = os.environ.get("XDG_STATE_HOME", "").strip()
    base = Path(state) if state and Path(state).is_absolute() else Path.home() / ".local" / "state"
    return base / "pflow-tui" / "logs"


def _open_log() -> tuple[Path, int]:
    stamp = dt.datetime.now().strftime("%Y%m%d-%H%M%S")
    stem = f"crash-{stamp}-{os.getpid()}"
    user = os.getuid() if hasattr(os, "getuid") else "logs"
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_CLOEXEC", 0)
    import tempfile  # (only on a crash: start-up time)

    for folder in (log_dir(), Path(tempfile.gettempdir()) / f"pflow-tui-{user}"):
        try:
            folder.mkdir(parents=True, exist_ok=True, mode=0o700)
        except OSError:
            continue
        for n in range(1, 100):  # (two crashes in one second: -2, -3 ...)
            path = folder / (f"{stem}.log" if n == 1 else f"{stem}-{n}.log")
            try:
                return path, os.open(path, flags, 0o600)
            except FileExistsError:
                continue
            except OSError:
                break
    raise OSError("no folder to write the crash log to")


def write_log(error: BaseException) -> Path | None:
    """Write ``error``'s traceback, the command line and versions to a new log file; its
    path, or None when no file could be written."""
    lines = [f"pflow-tui {__version__} internal error, {dt.datetime.now().isoformat()}",
             f"command: {sys.argv!r}", f"python: {sys.version.split()[0]} on {platform.platform()}",
             f"cwd: {os.getcwd() if os.path.exists('.') else '?'}", ""]
    try:
        lines.append("".join(traceback.format_exception(error)))
    except Exception:  # a broken exception: its repr at least
        lines.append(repr(error))
    try:
        path, fd = _open_log()
        with os.fdopen(fd, "w", encoding="utf-8", errors="backslashreplace") as f:
            f.write("\n".join(lines))
    except OSError:
        return None
    return path


def message(error: BaseException, path: Path | None, *, debug_hint: bool = True) -> str:
    """What the user sees: what happened (one line, cut), and where the details are."""
    try:
        what = " ".join(str(error).split())
    except Exception:  # a broken __str__
        what = ""
    if len(what) > 200:
        what = what[:199] + "…"
    kind = type(error).__name__
    head = f"internal error ({kind}{': ' + what if what else ''})"
    if isinstance(error, MemoryError):
        head = "out of memory (MemoryError)"
    where = f"the details are in {path}" if path is not None else "no log file could be written"
    text = f"{head}: this is a bug in pflow-tui, not in your flow or trace; {where}."
    if path is not None:
        text += " Please report it with that file"
        text += " (--debug shows the traceback here)." if debug_hint else "."
    return text


def report(error: BaseException, *, debug_hint: bool = True) -> str:
    """Log ``error`` and return the message to show (see :func:`message`)."""
    return message(error, write_log(error), debug_hint=debug_hint)
