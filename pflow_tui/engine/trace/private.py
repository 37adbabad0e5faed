"""Private files and folders: what a run writes beside its trace (side files, spilled
results, keys) is readable by its owner only, whatever the umask."""

from __future__ import annotations

import contextlib
import os
from pathlib import Path


def private_dirs(folder: Path) -> None:
    """Create ``folder`` and its missing parents, each 0700 whatever the umask (folders that
    exist are left as they are)."""
    missing: list[Path] = []
    p = folder
    while not p.exists():
        missing.append(p)
        if p.parent == p:
            break
        p = p.parent
    for d in reversed(missing):
        try:
            d.mkdir(mode=0o700)
        except FileExistsError:
            continue  # made meanwhile by another run
        os.chmod(d, 0o700)


def open_private(path: str | Path, flags: int) -> int:
    """``os.open`` a file to write, 0600 whatever the umask (an fd)."""
    fd = os.open(path, flags, 0o600)
    with contextlib.suppress(AttributeError, OSError):  # Windows; a file system without modes
        os.fchmod(fd, 0o600)
    return fd
