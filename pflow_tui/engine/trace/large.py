"""Large values: stored once, in a side file beside the trace, referenced from the events.

A value in an event (a node's outputs, a ``store.write``, params, an item) or in the
footer (the outputs, the final store) whose JSON is bigger than :data:`LIMIT` bytes (1 MB;
``PFLOW_TUI_LARGE_VALUE`` in bytes, or ``LargeValues(limit=...)``) is not written
inline. It goes to a file in the trace's ``.results/`` folder (where ``batch_size``
results go, see :mod:`pflow_tui.engine.run.spill`) and the event holds a marker::

    {"large_value": "run.results/value-<sha256>.txt", "size": 200000000,
     "sha256": "<hex>", "type": "str", "preview": "<the first 300 characters>"}

``large_value`` is the file, relative to the trace's folder; ``size`` the length of the
value (characters of a string; bytes of the JSON text of anything else); ``type`` ``str``
(the file holds the text, UTF-8) or ``json`` (the file holds the JSON text). The file is
named after its content, so a value that appears again (in ``node.end``, ``store.write``
and the footer's store) is stored once; a value seen a moment ago is recognised by
identity without hashing it again. Side files are created ``0600``.

Only the parts that are large are moved out: an event's small fields stay inline, and a
dict holding one large string keeps its other keys. Readers get markers back
(:func:`is_marker`) and load a value only when asked (:func:`load`, :func:`resolve`).
"""

from __future__ import annotations

import contextlib
import hashlib
import os
from collections import OrderedDict
from collections.abc import Callable
from pathlib import Path
from typing import Any

import orjson

from ..run.spill import results_dir
from .private import open_private, private_dirs
from .writer import dumps

ENV = "PFLOW_TUI_LARGE_VALUE"
LIMIT = 1 << 20  #: bytes of JSON above which a value goes to a side file
KEY = "large_value"  #: the key of a marker
PREVIEW = 300  #: characters of a large value kept in its marker
_RECENT = 16  #: values remembered by identity (no hashing when they come again)


def limit_from_env(default: int = LIMIT) -> int:
    """The limit ``PFLOW_TUI_LARGE_VALUE`` sets (bytes; 0 or less: never), else ``default``."""
    raw = os.environ.get(ENV, "").strip()
    if not raw:
        return default
    try:
        value = int(raw)
    except ValueError:
        return default
    return value if value > 0 else 1 << 62


def is_marker(value: Any) -> bool:
    """Whether ``value`` is a large value's marker as a trace holds it."""
    return (isinstance(value, dict) and isinstance(value.get(KEY), str)
            and isinstance(value.get("sha256"), str) and isinstance(value.get("size"), int))


class LargeValues:
    """Moves the large parts of events to side files (see the module docstring).

    ``folder``: where the files go; ``base``: the folder references are relative to (the
    trace's). ``on_failure``: a side file could not be written (a full disk).
    """

    def __init__(self, folder: Path, base: Path, limit: int | None = None,
                 on_failure: Callable[[OSError], None] | None = None) -> None:
        self.folder, self.base = folder, base
        self.limit = limit_from_env() if limit is None else limit
        self.on_failure = on_failure
        self.failed = False
        self.stored = 0  # side files written (a value stored again is not counted)
        self._recent: OrderedDict[int, tuple[Any, dict[str, Any]]] = OrderedDict()
        self._written: set[str] = set()

    def has_large(self, event: dict[str, Any], depth: int = 3) -> bool:
        """Whether ``event`` holds a string over the limit in a field, or in dicts down to
        ``depth`` levels: a cheap look before the event is serialised (deeper ones, and
        containers of many small parts, are found after, by the size of the line)."""
        limit = self.limit
        for v in event.values():
            if v.__class__ is str:
                if len(v) > limit:
                    return True
            elif v.__class__ is dict and depth > 1 and v and self.has_large(v, depth - 1):
                return True
        return False

    def shrink_event(self, event: dict[str, Any]) -> dict[str, Any]:
        """A copy of ``event`` whose large values are markers (``event`` is not changed)."""
        return {k: (v if k in ("seq", "t", "kind", "path") else self._shrink(v, 0)[0])
                for k, v in event.items()}

    def _shrink(self, value: Any, depth: int) -> tuple[Any, int]:
        """(value with its large parts as markers, about how many bytes of JSON it takes)."""
        if isinstance(value, str):
            n = len(value)
            if n > self.limit or (n * 4 > self.limit and len(value.encode("utf-8", "replace")) > self.limit):
                return self._store(value), 200
            return value, n + 2
        if isinstance(value, (dict, list, tuple)) and depth < 64 and not is_marker(value):
            if isinstance(value, dict):
                size = 2
                out: Any = {}
                for k, v in value.items():
                    out[k], n = self._shrink(v, depth + 1)
                    size += n + len(str(k)) + 4
            else:
                size = 2
                out = []
                for v in value:
                    v2, n = self._shrink(v, depth + 1)
                    out.append(v2)
                    size += n + 1
            if size > self.limit:  # many small parts: the whole container goes out
                return self._store(out), 200
            return out, size
        to_json = getattr(type(value), "__trace_json__", None)
        if to_json is not None:
            return self._shrink(to_json(value), depth)
        return value, 24

    def _store(self, value: Any) -> Any:
        """The marker of ``value``, its side file written unless it is there already."""
        key = id(value)
        hit = self._recent.get(key)
        if hit is not None and hit[0] is value:
            self._recent.move_to_end(key)
            return hit[1]
        if isinstance(value, str):
            kind, size, preview, ext = "str", len(value), value[:PREVIEW], "txt"
            step = 1 << 22  # encoded a slice at a time: no second copy of a huge string
            parts: Any = (value[i:i + step].encode("utf-8", "backslashreplace")
                          for i in range(0, len(value), step))
        else:
            data = dumps(value)
            kind, size, ext = "json", len(data), "json"
            preview = data[: PREVIEW * 4].decode("utf-8", "replace")[:PREVIEW]
            parts = (data,)
        digest = self._write(parts, ext)
        parts = data = None
        path = self.folder / f"value-{digest}.{ext}"
        ref = str(path)
        with contextlib.suppress(ValueError):
            ref = path.relative_to(self.base).as_posix()
        marker = {KEY: ref, "size": size, "sha256": digest, "type": kind, "preview": preview}
        self._recent[key] = (value, marker)
        if len(self._recent) > _RECENT:
            self._recent.popitem(last=False)
        return marker

    def _write(self, parts: Any, ext: str) -> str:
        """Write the bytes ``parts`` to the side file named after their sha256 (unless it
        is there already); returns the sha256."""
        sha = hashlib.sha256()
        fd = -1
        tmp = self.folder / f"value-{os.getpid()}-{id(self)}.part"
        try:
            if not self.failed:
                private_dirs(self.folder)  # 0700, as the trace's folder
                with contextlib.suppress(FileNotFoundError):
                    tmp.unlink()
                fd = open_private(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_CLOEXEC", 0))
            for part in parts:
                sha.update(part)
                view = memoryview(part)
                while fd >= 0 and view:
                    view = view[os.write(fd, view):]
            digest = sha.hexdigest()
            if fd >= 0:
                os.close(fd)
                fd = -1
                name = f"value-{digest}.{ext}"
                if name in self._written:
                    tmp.unlink()
                else:
                    os.replace(tmp, self.folder / name)  # whole or not at all (kill -9)
                    self._written.add(name)
                    self.stored += 1
            return digest
        except OSError as exc:
            if fd >= 0:
                os.close(fd)
            with contextlib.suppress(OSError):
                tmp.unlink()
            self.failed = True
            if self.on_failure is None:
                raise
            self.on_failure(exc)
            for part in parts:  # the marker still names the value
                sha.update(part)
            return sha.hexdigest()


# --- reading -----------------------------------------------------------------------------------

class LargeValueMissing(FileNotFoundError):
    """The side file of a large value is not there (the trace was copied without it)."""


def side_file(marker: dict[str, Any], trace: str | Path) -> Path:
    """Where the side file of ``marker`` is, for the trace file ``trace``; only names inside
    the trace's folder are followed (a crafted ``../`` path is refused)."""
    base = Path(os.path.abspath(trace)).parent
    path = Path(os.path.normpath(base / marker[KEY]))  # (a results folder may be a symlink)
    if base not in path.parents or not path.name.startswith("value-"):
        raise LargeValueMissing(f"{marker[KEY]}: not a side file of this trace")
    return path


def load(marker: dict[str, Any], trace: str | Path) -> Any:
    """The value a marker stands for, read from its side file (checked against its sha256).

    Raises :class:`LargeValueMissing` when the file is gone, or holds something else.
    """
    path = side_file(marker, trace)
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise LargeValueMissing(f"{path}: the side file of a large value is missing "
                                f"({exc.strerror}); copy the trace's .results folder with it") from None
    if hashlib.sha256(data).hexdigest() != marker.get("sha256"):
        raise LargeValueMissing(f"{path}: the side file does not hold the value the trace "
                                "recorded (its sha256 differs)")
    if marker.get("type") == "json":
        return orjson.loads(data)
    return data.decode("utf-8", "replace")


def has_large(trace: str | Path) -> bool:
    """Whether the trace ``trace`` may hold markers (its results folder has side files)."""
    folder = results_dir(Path(trace))
    try:
        return any(p.name.startswith("value-") for p in folder.iterdir())
    except OSError:
        return False


def resolve(value: Any, trace: str | Path) -> Any:
    """``value`` with every marker in it replaced by the value it stands for (a copy where
    something was replaced; ``value`` itself when nothing was)."""
    if isinstance(value, dict):
        if is_marker(value):
            return load(value, trace)
        out = {k: resolve(v, trace) for k, v in value.items()}
        return value if all(out[k] is value[k] for k in value) else out
    if isinstance(value, list):
        items = [resolve(v, trace) for v in value]
        return value if all(a is b for a, b in zip(items, value, strict=True)) else items
    return value


def by_hash(value: Any) -> Any:
    """``value`` with each marker reduced to what identifies its value (type and sha256),
    for comparing runs: two traces that stored the same value compare equal."""
    if isinstance(value, dict):
        if is_marker(value):
            return {KEY: value.get("type"), "sha256": value["sha256"]}
        return {k: by_hash(v) for k, v in value.items()}
    if isinstance(value, list):
        return [by_hash(v) for v in value]
    return value


def digest_of(value: Any) -> tuple[str, str]:
    """(type, sha256) a value would have as a large value."""
    if isinstance(value, str):
        return "str", hashlib.sha256(value.encode("utf-8", "backslashreplace")).hexdigest()
    return "json", hashlib.sha256(dumps(value)).hexdigest()


def matches(value: Any, recorded: Any) -> bool:
    """Whether ``value`` is what ``recorded`` (which may hold markers) recorded."""
    if is_marker(recorded):
        return digest_of(value) == (recorded.get("type"), recorded["sha256"])
    if isinstance(recorded, dict):
        return (isinstance(value, dict) and value.keys() == recorded.keys()
                and all(matches(value[k], recorded[k]) for k in recorded))
    if isinstance(recorded, list):
        return (isinstance(value, (list, tuple)) and len(value) == len(recorded)
                and all(matches(a, b) for a, b in zip(value, recorded, strict=True)))
    return value == recorded or orjson.loads(dumps(value)) == recorded


__all__ = ["ENV", "KEY", "LIMIT", "LargeValueMissing", "LargeValues", "by_hash", "digest_of",
           "has_large", "is_marker", "limit_from_env", "load", "matches", "resolve", "side_file"]
