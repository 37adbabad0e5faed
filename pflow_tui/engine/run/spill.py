"""Lists too long for memory: written to a JSON-lines file, read back lazily.

With ``batch.batch_size`` a batch node's ``results`` (one entry per item) do not stay in
memory: each result is written to a JSON-lines file as soon as it and every result before
it are known, and the node's namespace holds a :class:`SpilledList` over that file. It is
a read-only sequence (``len``, indexing, negative indexes, slices, iteration, ``==``)
that templates and Python callers use like a list. Reading it back costs a seek and a
parse per entry; memory stays bounded (a byte offset for every :data:`STRIDE`-th line).

Values JSON cannot hold are written as the trace writes them (see
:func:`pflow_tui.engine.trace.writer.dumps`): what is read back is what the trace would show.

In the trace footer (and in any event that carries one) a spilled list is the reference
``{"jsonl_file": PATH, "count": N}`` (:meth:`LazyList.__trace_json__`); PATH is relative
to the trace's folder. :func:`open_ref` turns it back into a :class:`SpilledList`.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import shutil
import tempfile
import weakref
from abc import ABC, abstractmethod
from array import array
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import IO, Any

import orjson

from ..trace.private import open_private, private_dirs
from ..trace.writer import dumps, json_default

STRIDE = 256  #: a byte offset is kept for every STRIDE-th line (8 bytes per 256 entries)
REF_KEY = "jsonl_file"  #: the key of a spilled list's reference in a trace


class LazyList(ABC):
    """A read-only list whose entries are produced on demand (see the module docstring).

    Templates keep a lazy list lazy only where it is walked into (``${n.results[3]}``,
    ``${n.iteration_3}``) or iterated by a batch (``"items": "${n.results}"``); a template
    whose value is the whole list gives a plain ``list`` (:meth:`tolist`).
    """

    __slots__ = ()

    @abstractmethod
    def __len__(self) -> int: ...

    @abstractmethod
    def _get(self, index: int) -> Any: ...

    @abstractmethod
    def __iter__(self) -> Iterator[Any]: ...

    def __getitem__(self, key: int | slice) -> Any:
        if isinstance(key, slice):
            return [self._get(i) for i in range(*key.indices(len(self)))]
        n = len(self)
        if key < 0:
            key += n
        if not 0 <= key < n:
            raise IndexError(f"index {key} out of range for a list of {n} entries")
        return self._get(key)

    def __bool__(self) -> bool:
        return len(self) > 0

    def __contains__(self, value: object) -> bool:
        return any(v == value for v in self)

    def __reversed__(self) -> Iterator[Any]:
        for i in range(len(self) - 1, -1, -1):
            yield self._get(i)

    def __eq__(self, other: object) -> bool:
        if isinstance(other, (LazyList, list, tuple)):
            return len(self) == len(other) and all(a == b for a, b in zip(self, other, strict=True))
        return NotImplemented

    __hash__ = None  # type: ignore[assignment]

    def __copy__(self) -> LazyList:
        return self  # read-only: a copy would be the same list

    def __deepcopy__(self, memo: dict[int, Any]) -> LazyList:
        return self

    def tolist(self) -> list[Any]:
        """Every entry, as a plain list (in memory)."""
        return list(self)

    def __trace_json__(self) -> Any:
        """What a trace (or an event) holds in place of this list."""
        return self.tolist()


Sequence.register(LazyList)


class SpilledList(LazyList):
    """``count`` entries, the first ``lines`` of which are the lines of a JSON-lines file;
    the entries after the last line are ``None`` (items that never ran).

    ``lines`` and ``offsets`` are known when the list was just written; for a file
    opened from a trace they are found on the first indexed read (one pass over the file).
    """

    __slots__ = ("__weakref__", "_at", "_file", "_lines", "_offsets", "_owner", "count", "path", "ref")

    def __init__(self, path: str | Path, count: int, *, lines: int | None = None,
                 offsets: array | None = None, ref: str | None = None, owner: Any = None) -> None:
        self.path = Path(path)
        self.count = count
        self.ref = ref if ref is not None else str(self.path)
        self._lines = lines
        self._offsets = offsets
        self._owner = owner  # keeps a temporary folder alive while the list is
        self._file: IO[bytes] | None = None
        self._at = -1  # the index of the line the random-access file is positioned at

    def __len__(self) -> int:
        return self.count

    def __repr__(self) -> str:
        return f"SpilledList({str(self.path)!r}, {self.count} entries)"

    def __trace_json__(self) -> Any:
        return {REF_KEY: self.ref, "count": self.count}

    def __iter__(self) -> Iterator[Any]:
        loads = orjson.loads
        n = 0
        with open(self.path, "rb") as f:
            for line in f:
                if n == self.count:
                    return
                yield loads(line)
                n += 1
        yield from (None for _ in range(self.count - n))

    def _index(self) -> None:
        """Byte offsets of every STRIDE-th line, and the number of lines (one pass)."""
        offsets = array("q")
        pos = n = 0
        with open(self.path, "rb") as f:
            for line in f:
                if n % STRIDE == 0:
                    offsets.append(pos)
                pos += len(line)
                n += 1
        self._offsets, self._lines = offsets, n

    def _get(self, index: int) -> Any:
        if self._offsets is None or self._lines is None:
            self._index()
        if index >= self._lines:  # type: ignore[operator]
            return None
        f = self._file
        if f is None:
            f = self._file = open(self.path, "rb")  # noqa: SIM115 (kept open; closed by close())
            weakref.finalize(self, f.close)
            self._at = -1
        at = self._at
        if not (0 <= at <= index < at + STRIDE):  # else: read on from where the last read ended
            block = index // STRIDE
            f.seek(self._offsets[block])  # type: ignore[index]
            at = block * STRIDE
        while at < index:
            f.readline()
            at += 1
        line = f.readline()
        self._at = index + 1
        return orjson.loads(line)

    def close(self) -> None:
        """Close the file kept open for indexed reads (reading again reopens it)."""
        if self._file is not None:
            self._file.close()
            self._file = None


class MappedList(LazyList):
    """``fn`` applied to each entry of a lazy list, on demand (``${batch[*].key}``)."""

    __slots__ = ("base", "fn")

    def __init__(self, base: LazyList, fn: Callable[[Any], Any]) -> None:
        self.base, self.fn = base, fn

    def __len__(self) -> int:
        return len(self.base)

    def __repr__(self) -> str:
        return f"MappedList({self.base!r})"

    def _get(self, index: int) -> Any:
        return self.fn(self.base._get(index))

    def __iter__(self) -> Iterator[Any]:
        return map(self.fn, self.base)


def jsonable(value: Any) -> Any:
    """``default=`` for JSON encoders: a lazy list as its trace form; else TypeError."""
    to_json = getattr(type(value), "__trace_json__", None)
    if to_json is None:
        raise TypeError(f"{type(value).__name__} is not JSON serialisable")
    return to_json(value)


# --- writing -----------------------------------------------------------------------------------

class ListWriter:
    """Appends entries to a JSON-lines file; :meth:`close` returns the :class:`SpilledList`."""

    def __init__(self, path: Path, ref: str, owner: Any = None,
                 on_failure: Callable[[OSError], None] | None = None) -> None:
        self.path, self.ref, self._owner = path, ref, owner
        self.on_failure = on_failure
        self.error: OSError | None = None  # a write failed (a full disk): nothing after it
        self._offsets = array("q")
        self._pos = 0
        self.lines = 0
        self._file: IO[bytes] | None = None
        try:
            fd = open_private(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | getattr(os, "O_CLOEXEC", 0))
            self._file = open(fd, "wb", buffering=1 << 16)  # noqa: SIM115 (a full disk shows early)
        except OSError as exc:
            self._failed(exc)

    def append(self, value: Any) -> None:
        f = self._file
        if f is None:  # failed: the run is stopping (see _failed)
            return
        try:
            line = orjson.dumps(value, default=json_default) + b"\n"
        except (orjson.JSONEncodeError, TypeError):
            line = dumps(value) + b"\n"  # the slow path that always works
        try:
            f.write(line)
        except OSError as exc:
            self._failed(exc)
            return
        if self.lines % STRIDE == 0:
            self._offsets.append(self._pos)
        self._pos += len(line)
        self.lines += 1

    def _failed(self, exc: OSError) -> None:
        """A write failed (no space left, quota, I/O error): write nothing more, and tell
        ``on_failure`` (the run stops there, as when its trace cannot be written)."""
        if self.error is not None:
            return
        self.error = exc
        f, self._file = self._file, None
        if f is not None:
            raw = getattr(f, "raw", None)
            with contextlib.suppress(OSError, ValueError):
                (raw if raw is not None else f).close()  # not f.close(): no second try
        if self.on_failure is None:
            raise exc
        self.on_failure(exc)

    def close(self, count: int) -> SpilledList:
        """Finish the file; the list has ``count`` entries (None after the last line)."""
        if self._file is not None:
            try:
                self._file.close()
            except OSError as exc:  # the last bytes did not fit
                self._file = None
                self.error = None
                self._failed(exc)
            self._file = None
        return SpilledList(self.path, max(count, self.lines), lines=self.lines,
                           offsets=self._offsets, ref=self.ref, owner=self._owner)

    def discard(self) -> None:
        if self._file is not None:
            with contextlib.suppress(OSError):
                self._file.close()
            self._file = None




class Spill:
    """Where one run writes its spilled lists.

    ``folder``: ``<trace>.results/`` beside the trace (:func:`results_dir`); references
    are then relative to ``base`` (the trace's folder), so the trace and its folder can be
    moved together. Without a folder, a temporary one is made on first use and removed
    when the last list in it is gone.
    """

    def __init__(self, folder: Path | None = None, base: Path | None = None,
                 on_failure: Callable[[OSError], None] | None = None) -> None:
        self.folder, self.base = folder, base
        self.on_failure = on_failure  # a write failed (a full disk): the run stops
        self._made = False

    def writer(self, name: str) -> ListWriter:
        """A writer for the list named ``name`` (an event path: unique within a run)."""
        if self.folder is None:
            self.folder = Path(tempfile.mkdtemp(prefix="pflow-tui-results-"))
            weakref.finalize(self, shutil.rmtree, self.folder, True)
            self.base = None
        if not self._made:
            try:
                private_dirs(self.folder)  # 0700, as the trace's folder
            except OSError:
                if self.on_failure is None:
                    raise  # else the writer's open below fails too, and says so
            self._made = True
        safe = "".join(c if c.isalnum() or c in "._-#" else "_" for c in name)
        if len(safe) > 180:  # file names have a limit; long nested paths get a digest
            safe = safe[:120] + "-" + hashlib.sha1(name.encode()).hexdigest()[:16]
        path = self.folder / f"{safe}.jsonl"
        ref = str(path)
        if self.base is not None:
            with contextlib.suppress(ValueError):
                ref = path.relative_to(self.base).as_posix()
        return ListWriter(path, ref, owner=self, on_failure=self.on_failure)


def results_dir(trace: Path) -> Path:
    """The folder beside a trace where its spilled lists go: ``run.json`` -> ``run.results``."""
    return trace.with_suffix(".results") if trace.suffix == ".json" else trace.with_name(
        trace.name + ".results")


def is_ref(value: Any) -> bool:
    """Whether ``value`` is a spilled list's reference as a trace holds it."""
    return (isinstance(value, dict) and len(value) == 2 and isinstance(value.get(REF_KEY), str)
            and isinstance(value.get("count"), int))


def open_ref(ref: dict[str, Any], trace: str | Path) -> SpilledList:
    """The :class:`SpilledList` a trace's reference names (``trace``: the trace file).

    Raises FileNotFoundError when the file is gone (e.g. the trace was copied alone).
    """
    path = Path(trace).parent / ref[REF_KEY]
    if not path.is_file():
        raise FileNotFoundError(f"{path}: the results file of this trace is missing "
                                "(copy the trace's .results folder with it)")
    return SpilledList(path, int(ref["count"]), ref=ref[REF_KEY])


__all__ = ["REF_KEY", "STRIDE", "LazyList", "ListWriter", "MappedList", "Spill", "SpilledList",
           "is_ref", "jsonable", "open_ref", "results_dir"]
