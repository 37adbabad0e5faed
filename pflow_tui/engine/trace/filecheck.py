"""What files pflow-tui reads: regular files below a size limit, checked before opening.

A flow or a trace named on the command line (or opened in the app) may be anything a
path can name: ``/dev/zero`` (endless), a FIFO (``open`` blocks until a writer comes), a
directory, a socket, a file of many gigabytes. Each is refused at once, with a message
that says what the path is and what to do, by :func:`check_file`, which looks with
``os.stat`` and never opens the path; the readers then read at most the limit.

Limits (bytes; a number, or with a K, M or G suffix: ``512M``):

- ``PFLOW_TUI_MAX_FLOW_BYTES``: flows (JSON IR files), default 256 MB;
- ``PFLOW_TUI_MAX_TRACE_BYTES``: traces (replay, diff, export, rerun), default 4 GB.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

FLOW_ENV = "PFLOW_TUI_MAX_FLOW_BYTES"
TRACE_ENV = "PFLOW_TUI_MAX_TRACE_BYTES"
DEFAULTS = {"flow": 256 << 20, "trace": 4 << 30}
_ENV = {"flow": FLOW_ENV, "trace": TRACE_ENV}
_SUFFIX = {"": 1, "K": 1 << 10, "M": 1 << 20, "G": 1 << 30, "T": 1 << 40}


class FileRefused(OSError):
    """A path that is no regular file, or a file over the size limit (``str`` says which)."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message

    def __str__(self) -> str:
        return self.message


def limit(what: str) -> int:
    """The size limit for a ``flow`` or a ``trace``, in bytes (its environment variable, else
    the default; a value that is no size is ignored)."""
    raw = os.environ.get(_ENV[what], "").strip().upper().removesuffix("B").removesuffix("I")
    if raw:
        unit = raw[-1] if raw[-1] in _SUFFIX else ""
        digits = raw[: len(raw) - len(unit)].strip()
        if digits.isdigit() and int(digits) > 0:
            return int(digits) * _SUFFIX[unit]
    return DEFAULTS[what]


def _size(n: int) -> str:
    for unit, scale in (("GB", 1 << 30), ("MB", 1 << 20), ("KB", 1 << 10)):
        if n >= scale:
            return f"{n / scale:.1f}".removesuffix(".0") + f" {unit}"
    return f"{n} bytes"


def _kind(mode: int) -> str:
    if stat.S_ISDIR(mode):
        return "a directory"
    if stat.S_ISFIFO(mode):
        return "a FIFO (named pipe)"
    if stat.S_ISCHR(mode):
        return "a character device"
    if stat.S_ISBLK(mode):
        return "a block device"
    if stat.S_ISSOCK(mode):
        return "a socket"
    return "not a regular file"


def check_file(path: str | Path, what: str) -> int:
    """The size of ``path`` when it is a regular file within the ``what`` (flow or trace)
    limit, else :class:`FileRefused`. Looks with ``os.stat`` (following links); never opens."""
    name = str(path)
    try:
        st = os.stat(path)
    except FileNotFoundError:
        raise FileRefused(f"{name}: cannot read (no such file)") from None
    except NotADirectoryError:
        raise FileRefused(f"{name}: cannot read (no such file: a part of the path is not a folder)") from None
    except OSError as exc:
        raise FileRefused(f"{name}: cannot read ({exc.strerror or exc})") from None
    except ValueError:  # a NUL byte in the path
        raise FileRefused(f"{name!r}: not a valid path") from None
    if not stat.S_ISREG(st.st_mode):
        raise FileRefused(f"{name}: cannot read ({_kind(st.st_mode)}, not a {what} file); give "
                          f"the path of a {what} file")
    cap = limit(what)
    if st.st_size > cap:
        raise FileRefused(f"{name}: cannot read ({_size(st.st_size)}, over the {_size(cap)} limit "
                          f"for {what} files); set {_ENV[what]} (e.g. {_ENV[what]}=8G) to read bigger ones")
    return st.st_size


def read_limited(path: str | Path, what: str, error: type[Exception] = FileRefused) -> bytes:
    """The bytes of a regular file within the limit (:func:`check_file`); ``error(message)``
    otherwise, or when it cannot be read. Reads at most the limit, even if the file grows."""
    try:
        check_file(path, what)
        with open(path, "rb") as f:
            st = os.fstat(f.fileno())
            if not stat.S_ISREG(st.st_mode):  # swapped since the check
                raise FileRefused(f"{path}: not a regular file")
            cap = limit(what)
            data = f.read(min(cap, st.st_size) + 1)  # (read(n) allocates n bytes up front)
    except FileRefused as exc:
        raise error(str(exc)) from None
    except OSError as exc:
        raise error(f"{path}: cannot read ({exc.strerror or exc})") from None
    if len(data) > cap:
        raise error(f"{path}: over the {_size(cap)} limit for {what} files (it grew while read); "
                    f"set {_ENV[what]} to read bigger ones")
    return data
