"""Trace files: one JSON document per run, written as the run goes.

Layout (documented in docs/trace-format.md)::

    {"format":"pflow-tui-trace","version":1,...header...,"events":[
    {event 1},
    {event 2},
    ...
    ],"status":"ok","outputs":{...},"store":{...},...}

The header is one line, each event is one line, and the footer is one line written
with a single ``write``. A finished file is plain JSON. A file cut short (``kill -9``,
power loss) still opens: the reader keeps every complete event line and reports the
run as interrupted. Values JSON cannot hold are written as their ``repr``.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import errno
import functools
import gc
import os
import shlex
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import IO, Any, Protocol

import orjson

from .check import check_event
from .events import Event
from .filecheck import read_limited
from .private import open_private, private_dirs
from .trust import Sealer, key_id, load_key

try:
    import fcntl
except ImportError:  # Windows: creating the file exclusively is the only guard
    fcntl = None  # type: ignore[assignment]

FORMAT = "pflow-tui-trace"
VERSION = 1
EVENTS_OPEN = b',"events":[\n'
DEFAULT_DIR = Path(".pflow-tui") / "traces"
TRACE_DIR_ENV = "PFLOW_TUI_TRACE_DIR"  # the trace folder setting (docs/configuration.md)
_OPTS = orjson.OPT_NON_STR_KEYS | orjson.OPT_SERIALIZE_NUMPY
FLUSH_EVERY = 0.2  # seconds between flushes to the OS while a run is going
_PER_ITEM = frozenset(("item.start", "item.end"))  # the hot path: no look for large values first


def _text(value: str) -> str:
    """``value`` as a str that UTF-8 can encode (lone surrogates become ``\\udxxx`` escapes)."""
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return value.encode("utf-8", "backslashreplace").decode("utf-8")
    return value


def safe_repr(value: Any) -> str:
    """``repr(value)``, even when that ``__repr__`` raises or returns odd text."""
    try:
        text = repr(value)
    except Exception:  # a broken __repr__ must not break the trace
        text = object.__repr__(value)
    return _text(text) if isinstance(text, str) else object.__repr__(value)


def json_default(value: Any) -> Any:
    """``default=`` of the encoders: a value's own trace form (a spilled list's reference,
    see :mod:`pflow_tui.engine.run.spill`), else its repr."""
    to_json = getattr(type(value), "__trace_json__", None)
    if to_json is not None:
        return to_json(value)
    return safe_repr(value)


def dumps(value: Any) -> bytes:
    """orjson with a safety net: anything JSON cannot hold becomes its repr. Never raises."""
    try:
        return orjson.dumps(value, default=json_default, option=_OPTS)
    except (orjson.JSONEncodeError, TypeError):
        return orjson.dumps(json_safe(value), option=_OPTS)


class _Cycle(Exception):
    """A container met again inside itself (see :func:`json_safe`)."""

    def __init__(self, ident: int) -> None:
        self.ident = ident


def _key(key: Any) -> str:
    if isinstance(key, str):
        return _text(key)
    if key is None:
        return "null"
    if isinstance(key, bool):
        return "true" if key else "false"
    if isinstance(key, (int, float)):
        return str(key)
    try:
        return _text(str(key))
    except Exception:
        return safe_repr(key)


def json_safe(value: Any, depth: int = 0) -> Any:
    """A copy of ``value`` that orjson can always serialise (the slow path of :func:`dumps`).

    What JSON cannot hold becomes its repr: unknown objects, sets, integers out of the
    64-bit range, a container that contains itself (the whole container), nesting deeper
    than 64 levels. Keys become strings; strings with lone surrogates are escaped.
    """
    return _safe(value, depth, set())


def _safe(value: Any, depth: int, active: set[int]) -> Any:
    if value is None or isinstance(value, (bool, float)):
        return value
    if isinstance(value, str):
        return _text(value)
    if isinstance(value, int):
        return value if -(2**63) <= value < 2**64 else repr(int(value))
    if isinstance(value, (dict, list, tuple)):
        ident = id(value)
        if ident in active:
            raise _Cycle(ident)
        if depth >= 64:
            return safe_repr(value)
        active.add(ident)
        try:
            if isinstance(value, dict):
                return {_key(k): _safe(v, depth + 1, active) for k, v in value.items()}
            return [_safe(v, depth + 1, active) for v in value]
        except _Cycle as cycle:
            if cycle.ident != ident:
                raise
            return safe_repr(value)
        finally:
            active.discard(ident)
    if getattr(type(value), "__trace_json__", None) is not None:
        return _safe(value.__trace_json__(), depth, active)
    try:
        orjson.dumps(value, option=_OPTS)
        return value
    except (orjson.JSONEncodeError, TypeError):
        return safe_repr(value)


_issued: set[Path] = set()  # the default paths this process gave out
_issued_lock = threading.Lock()


def trace_dir(root: Path | None = None) -> Path:
    """The folder of traces: ``$PFLOW_TUI_TRACE_DIR`` (the CLI puts the configured one
    there), else ``.pflow-tui/traces``; relative ones in ``root`` (the working directory)."""
    given = os.environ.get(TRACE_DIR_ENV, "").strip()
    return (root or Path.cwd()) / (Path(given).expanduser() if given else DEFAULT_DIR)


def default_trace_path(flow_name: str, root: Path | None = None) -> Path:
    """Where a run's trace goes unless ``--trace`` says otherwise: a path no other run has.

    ``<flow>-<YYYYmmdd-HHMMSS>-<pid>.json``; the process id keeps other processes out, and
    a second path of the same flow in the same second (a re-run in the app) gets ``-2``,
    ``-3`` ... after the pid. A path is never given out twice, nor one whose file exists.
    """
    stamp = dt.datetime.now().strftime("%Y%m%d-%H%M%S")
    base = trace_dir(root)
    stem = f"{flow_name}-{stamp}-{os.getpid()}"
    with _issued_lock:
        n = 1
        while True:
            path = base / (f"{stem}.json" if n == 1 else f"{stem}-{n}.json")
            if path not in _issued and not path.exists():
                _issued.add(path)
                return path
            n += 1


class TraceExists(FileExistsError):
    """A run was asked to write its trace where a trace already is: one run per trace file."""

    def __init__(self, path: Path, *, busy: bool = False) -> None:
        self.path = path
        why = "another run is writing it now" if busy else "it holds another run"
        super().__init__(errno.EEXIST, f"{path} already exists and {why}: a trace file holds "
                         "one run. Pick another path (--trace NEW.json), or remove the file "
                         f"to write it again (rm {shlex.quote(str(path))})", str(path))

    def __str__(self) -> str:
        return str(self.strerror)


def check_trace_path(path: str | Path) -> None:
    """Raise :class:`TraceExists` when a run may not write its trace to ``path``."""
    if Path(path).exists():
        raise TraceExists(Path(path))


def _open_trace(path: Path, *, replace: bool) -> IO[bytes]:
    """Open ``path`` to write a trace, locked for this run (see :class:`TraceWriter`)."""
    flags = os.O_WRONLY | os.O_CREAT | (0 if replace else os.O_EXCL) | getattr(os, "O_CLOEXEC", 0)
    try:
        fd = open_private(path, flags)  # 0600 whatever the umask (docs/security.md)
    except FileExistsError:
        raise TraceExists(path) from None
    try:
        if fcntl is not None:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        raise TraceExists(path, busy=True) from None
    if replace:
        os.ftruncate(fd, 0)
    return open(fd, "wb", buffering=1 << 20)


class RunSummary:
    """What a run's list of runs shows, counted from its end events as they are written:
    the footer's ``summary`` (``pflow-tui runs`` reads it without reading the events)."""

    __slots__ = ("_failed_in", "cancelled", "duration", "failed", "items", "nodes", "restored", "usage")

    def __init__(self) -> None:
        self.duration: float | None = None
        self.nodes = self.items = self.failed = self.cancelled = self.restored = 0
        self.usage: dict[str, Any] | None = None  # the run's llm tokens and cost (run.end)
        self._failed_in: set[str] = set()  # batch nodes with failed items (not counted again)

    def add(self, event: Event) -> None:
        """Count one end event (``item.end``, ``node.end`` or ``run.end``)."""
        kind, status = event["kind"], event.get("status")
        if kind == "run.end":
            duration = event.get("duration")
            self.duration = duration if isinstance(duration, (int, float)) else None
            usage = event.get("usage")
            if isinstance(usage, dict):  # flat: runs.py reads the summary without nesting
                self.usage = {("llm_" + k if k == "calls" else k): usage[k] for k in (
                    "calls", "input_tokens", "output_tokens", "cost") if k in usage}
            return
        if kind == "item.end":
            self.items += 1
            if status == "error":
                self.failed += 1
                self._failed_in.add(event["path"].rpartition(".")[0])
        else:
            self.nodes += 1
            if status == "error" and event["path"] not in self._failed_in:
                self.failed += 1
            self._failed_in.discard(event["path"])
        if status == "cancelled":
            self.cancelled += 1
        if event.get("cached"):
            self.restored += 1

    def to_json(self) -> dict[str, Any]:
        out = {"duration": self.duration, "nodes": self.nodes, "items": self.items,
               "failed": self.failed, "cancelled": self.cancelled, "restored": self.restored}
        if self.usage is not None:
            out.update(self.usage)
        return out


class ValueStore(Protocol):
    """Where values too large for an event line go (:class:`~.large.LargeValues`)."""

    limit: int

    def has_large(self, value: Any) -> bool: ...

    def shrink_event(self, event: Event) -> Event: ...


class TraceWriter:
    """Appends events to a trace file as they happen; ``finish`` writes the footer.

    Use it as an event sink: ``emitter.sinks.append(writer.write)``. One run per file: the
    file is created exclusively (:class:`TraceExists` when it is there already) and locked
    (``flock``) while the run writes it. ``replace=True`` (``pflow_tui.trace()`` in a
    program) writes over a finished trace instead, never over one a run is writing.

    The trace is signed with this user's key (:mod:`pflow_tui.engine.trace.trust`): a ``seal``
    line at every flush and a ``seal`` key ending the footer. ``key``: the key to sign
    with (default: this user's, made on first use; ``False``: unsigned).
    """

    def __init__(self, path: str | Path, header: dict[str, Any], *, replace: bool = False,
                 on_failure: Callable[[OSError], None] | None = None,
                 key: bytes | bool | None = None,
                 large: ValueStore | None = None) -> None:
        self.path = Path(path)
        self.large = large  # values over its limit go to side files (see large.py)
        private_dirs(self.path.parent)  # the folders it makes: 0700
        if key is None or key is True:
            key = load_key()
        self._sealer = Sealer(key) if isinstance(key, bytes) else None
        self._file: IO[bytes] | None = _open_trace(self.path, replace=replace)
        head = {"format": FORMAT, "version": VERSION,
                "created": dt.datetime.now(dt.timezone.utc).isoformat(), **header}
        if isinstance(key, bytes):
            head["signer"] = key_id(key)
        self._root = str(header.get("flow_name") or "flow")  # the path of the seal events
        self.count = 0
        self.summary = RunSummary()
        self.error: OSError | None = None  # the write that failed (a full disk): nothing after it
        self.on_failure = on_failure
        head_line = dumps(head)[:-1] + EVENTS_OPEN
        # every byte written goes through the running MAC (a C method: cheap per event)
        self._mac = self._sealer.update if self._sealer is not None else None
        self._upto = len(head_line)  # bytes written (and hashed) so far
        if self._sealer is not None:
            self._sealer.update(head_line)
        self._last: Event | None = None  # the last event written (a seal's seq and t are its)
        self._sealed = 0  # events written when the last seal was
        try:
            self._file.write(head_line)
            self._file.flush()
        except OSError:  # not even the header fits: leave no empty file to block the path
            self._abandon()
            with contextlib.suppress(OSError):
                self.path.unlink()
            raise
        self._dirty = False
        self._lock = threading.Lock()  # one failure, reported once
        self._wlock = threading.Lock()  # an event's bytes, and the list of bytes to seal, agree
        self._done = threading.Event()
        threading.Thread(target=self._flush_loop, name="trace-flush", daemon=True).start()

    def write(self, event: Event) -> None:
        f = self._file
        if f is None:
            return
        large = self.large
        if large is not None and event.get("kind") not in _PER_ITEM and large.has_large(event):
            line = b""  # not serialised whole first (items: found by the line's size, below)
        else:
            try:
                line = orjson.dumps(event, default=json_default)  # fast path: str keys (2x faster)
            except (orjson.JSONEncodeError, TypeError):
                line = dumps(event)
        if large is not None and (not line or len(line) > large.limit):
            del line  # stored once, in a side file
            line = dumps(large.shrink_event(event))
            if self._file is None:  # the side file could not be written: the run stops
                return
        chunk = b",\n" + line if self.count else line
        with self._wlock:
            try:
                f.write(chunk)  # one write: an event is never split
            except OSError as exc:  # the buffer was full and could not be handed to the OS
                self._failed(exc)
                return
            except ValueError:  # closed meanwhile by a failure in the flush thread
                return
            mac = self._mac
            if mac is not None:
                mac(chunk)
                self._upto += len(chunk)
                self._last = event
            self.count += 1
        self._dirty = True
        kind = event.get("kind")
        if kind == "item.end" or kind == "node.end" or kind == "run.end":
            self.summary.add(event)

    def _flush_loop(self) -> None:
        """Hand buffered events to the OS every FLUSH_EVERY seconds, even in a quiet spell."""
        while not self._done.wait(FLUSH_EVERY):
            f = self._file
            if f is not None and self._dirty:
                self._dirty = False
                try:
                    self._seal(f)
                    f.flush()
                except ValueError:  # closed meanwhile by finish()
                    return
                except OSError as exc:
                    self._failed(exc)
                    return

    def _seal(self, f: IO[bytes]) -> None:
        """Write a seal line covering every byte before it (when events came since the last)."""
        sealer = self._sealer
        if sealer is None:
            return
        with self._wlock:
            if self._mac is None or self.count == self._sealed or self._file is not f:
                return
            chunk = b",\n" + orjson.dumps(sealer.seal_event(self._last, self._root, self.count,
                                                            self._upto))
            f.write(chunk)
            sealer.update(chunk)
            self._upto += len(chunk)
            self._sealed = self.count

    def _failed(self, exc: OSError) -> None:
        """A write failed (no space left, quota, I/O error): write nothing more, say so once.

        What reached the file stays: a prefix of the run, its last line maybe cut, which
        the reader drops. ``on_failure`` is told (the run stops: see executor.run_flow).
        """
        with self._lock:
            if self.error is not None or self._file is None:
                return
            self.error = exc
            self._done.set()
            self._abandon()
        if self.on_failure is not None:
            self.on_failure(exc)

    def fail(self, exc: OSError) -> None:
        """A file that belongs to the trace could not be written (a batch's results file,
        a large value's side file): the run stops as if the trace itself had failed."""
        self._failed(exc)

    def _abandon(self) -> None:
        """Close the file without writing anything more to it (the buffer is dropped)."""
        f, self._file = self._file, None
        if f is None:
            return
        raw = getattr(f, "raw", None)
        with contextlib.suppress(OSError, ValueError):
            if raw is not None:
                raw.close()  # not f.close(): that would try the buffered bytes again
            else:
                f.close()

    def flush(self) -> None:
        f = self._file
        if f is not None:
            try:
                self._seal(f)
                f.flush()
            except OSError as exc:
                self._failed(exc)

    def finish(self, status: str, **footer: Any) -> None:
        """Write the footer (status, outputs, store, error ...) and close the file.

        Never raises: a footer that cannot be written leaves the trace as cut short.
        """
        f = self._file
        if f is None:
            return
        self._done.set()
        fields = {"status": status, "finished": dt.datetime.now(dt.timezone.utc).isoformat(),
                  "summary": self.summary.to_json(), **footer}
        large = self.large
        tail = b"" if large is not None and large.has_large(fields) else dumps(fields)
        if large is not None and (not tail or len(tail) > large.limit):
            del tail
            tail = dumps(large.shrink_event(fields))
            if self._file is None:
                return
        try:
            with self._wlock:
                foot = b"\n]," + tail[1:-1]
                if self._sealer is not None and self._mac is not None:
                    self._sealer.update(foot)
                    self._mac = None
                    foot += self._sealer.footer_seal(self._upto + len(foot))
                else:
                    foot += b"}"
                f.write(foot + b"\n")
            f.flush()
        except OSError as exc:
            self._failed(exc)
            return
        except ValueError:  # a write failed in the flush thread meanwhile: the file is closed
            return
        self._file = None
        f.close()

    @property
    def closed(self) -> bool:
        return self._file is None


def trace_schema() -> dict[str, Any]:
    """The JSON Schema (draft 2020-12) of a finished trace file, parsed (a fresh copy)."""
    return orjson.loads(_schema_bytes())


@functools.cache
def _schema_bytes() -> bytes:
    return resources.files(__package__).joinpath("trace.schema.json").read_bytes()


class TraceError(Exception):
    """A file that is not a pflow-tui trace (or is damaged beyond its header)."""


@dataclass
class Trace:
    """A trace as read back: header fields, events and footer."""

    header: dict[str, Any]
    events: list[Event]
    status: str
    footer: dict[str, Any] = field(default_factory=dict)
    truncated: bool = False
    path: Path | None = None
    skipped: int = 0  #: malformed events left out (see check.check_event)

    @property
    def flow(self) -> dict[str, Any]:
        return self.header.get("flow", {})

    @property
    def outputs(self) -> dict[str, Any]:
        return self.footer.get("outputs") or {}

    @property
    def store(self) -> dict[str, Any]:
        return self.footer.get("store") or {}


def read_trace(path: str | Path) -> Trace:
    """Open a trace, complete or cut short. Nothing in it is executed.

    The file must be a regular file below the trace size limit (see :mod:`.filecheck`).
    """
    p = Path(path)
    data = read_limited(p, "trace", TraceError)
    return parse_trace(data, p)


def _checked(events: list[Any], skipped: int = 0) -> tuple[list[Event], int]:
    """The events that pass :func:`check_event`, and how many did not (with ``skipped``).
    Ignored kinds (``seal``) are dropped and not counted."""
    out: list[Event] = []
    append = out.append
    for e in events:
        why = check_event(e)
        if why is None:
            append(e)
        elif why != "ignored":
            skipped += 1
    return out, skipped


def parse_trace(data: bytes, path: Path | None = None) -> Trace:
    """Parse the bytes of a trace file (see :func:`read_trace`).

    A finished file is parsed in two bulk calls (events, footer). A file cut short keeps
    every complete event line, in order, and is reported as ``interrupted`` with
    ``truncated=True``. Anything that is not a trace raises :class:`TraceError`.
    """
    name = str(path or "<trace>")
    newline = data.find(b"\n")
    head_line = data[: newline + 1 if newline >= 0 else len(data)]
    if not head_line.endswith(EVENTS_OPEN):
        return _parse_other(data, name, path)
    try:
        header = orjson.loads(head_line[: -len(EVENTS_OPEN)] + b"}")
    except orjson.JSONDecodeError:
        raise TraceError(f"{name}: the header is damaged") from None
    _check_header(header, name)
    enabled = gc.isenabled()
    gc.disable()  # a million small dicts: the cyclic GC would rescan them again and again
    try:
        events, footer, bad = _parse_body(data, newline + 1)
        events, skipped = _checked(events, bad)
    finally:
        if enabled:
            gc.enable()
    truncated = footer is None
    footer = sound_footer(footer)
    status = footer.get("status", "interrupted") if not truncated else "interrupted"
    return Trace(header, events, status, footer, truncated, path, skipped)


def read_footer(path: str | Path, chunk: int = 1 << 16) -> dict[str, Any] | None:
    """A finished trace's footer (status, outputs, final store, error), read from the end of
    the file without reading its events; None while the run has not finished writing it (or
    the file is cut short, or not a trace)."""
    try:
        with open(path, "rb") as f:
            f.seek(0, os.SEEK_END)
            size = pos = f.tell()
            tail = b""
            while pos > 0:  # back to the start of the last line
                step = min(chunk, pos)
                pos -= step
                f.seek(pos)
                tail = f.read(step) + tail
                at = tail.rfind(b"\n", 0, max(0, len(tail) - 1))
                if at >= 0:  # the last line: the footer, or an event (no footer yet)
                    line = tail[at + 1:]
                    break
            else:
                return None
    except OSError:
        return None
    if size < 3 or not line.startswith(b"],") or not line.rstrip().endswith(b"}"):
        return None
    line = line[2:]
    try:
        footer = orjson.loads(b"{" + line.rstrip())
    except orjson.JSONDecodeError:
        return None
    return footer if isinstance(footer, dict) else None


_HEADER_TYPES: dict[str, tuple[type, ...]] = {
    "created": (str,), "flow_name": (str,), "source": (str,), "flow": (dict,), "children": (dict,),
    "inputs": (dict,), "base_dir": (str,), "rerun_of": (str,)}  # (pid, python: only shown)
_FOOTER_TYPES: dict[str, tuple[type, ...]] = {
    "status": (str,), "finished": (str,), "summary": (dict,), "outputs": (dict,), "store": (dict,),
    "error": (dict, type(None))}


def check_header(header: Any, name: str) -> None:
    """TraceError unless ``header`` is a trace header this version reads: the format, a
    version it knows, and the fields readers use of the types the schema says."""
    if not isinstance(header, dict) or header.get("format") != FORMAT:
        got = header.get("format") if isinstance(header, dict) else None
        raise TraceError(f"{name}: not a pflow-tui trace (format is {got!r}, expected {FORMAT!r})")
    version = header.get("version")
    if not isinstance(version, int) or isinstance(version, bool) or version < 1:
        raise TraceError(f"{name}: the trace version is {version!r}, expected a positive integer")
    if version > VERSION:
        raise TraceError(f"{name}: trace version {version} is newer than this "
                         f"pflow-tui reads ({VERSION}); upgrade pflow-tui")
    for key, types in _HEADER_TYPES.items():
        if key in header and (not isinstance(header[key], types) or isinstance(header[key], bool)):
            want = " or ".join({dict: "an object", str: "a string"}.get(t, t.__name__) for t in types)
            raise TraceError(f"{name}: the header is damaged (\"{key}\" is not {want})")
    flow = header.get("flow")
    if flow is not None and not isinstance(flow.get("nodes", []), list):
        raise TraceError(f"{name}: the header is damaged (\"flow\" has no list of nodes)")


_check_header = check_header


def sound_footer(footer: Any) -> dict[str, Any]:
    """A footer with the fields readers use of the right types (the others dropped)."""
    if not isinstance(footer, dict):
        return {}
    return {k: v for k, v in footer.items()
            if k not in _FOOTER_TYPES or isinstance(v, _FOOTER_TYPES[k])}


def _parse_body(data: bytes, start: int) -> tuple[list[Any], dict[str, Any] | None, int]:
    """(events, footer or None when the file was cut short, lines that did not parse) of
    the bytes after the header."""
    foot = data.rfind(b"\n],", start - 1)
    if foot >= 0:
        # The footer is written after every event: the lines before it are complete.
        footer = None
        with contextlib.suppress(orjson.JSONDecodeError):
            footer = orjson.loads(b"{" + data[foot + 3:])
        events, bad = _parse_events(data, start, foot)
        return events, footer if isinstance(footer, dict) else None, bad
    # Cut short: the lines before the last newline are complete events; the text after
    # it is the last event if it is complete, else a fragment (not counted as malformed).
    last_nl = data.rfind(b"\n", start)
    end = max(last_nl, start)
    events, bad = _parse_events(data, start, end)
    tail = data[end + 1 if last_nl >= start else start:].rstrip(b",")
    if tail.endswith(b"}"):
        with contextlib.suppress(orjson.JSONDecodeError):
            events.append(orjson.loads(tail))
    return events, None, bad


CHUNK = 4 << 20  # bytes of event lines parsed per orjson call: fast, with bounded extra memory


def _parse_events(data: bytes, start: int, end: int) -> tuple[list[Any], int]:
    """The event lines in ``data[start:end]`` ("{e1},\\n{e2},\\n...{ek}", "," at the end or not).

    Lines are parsed in chunks of about :data:`CHUNK` bytes, one orjson call each; a chunk
    that does not parse (a damaged line) is read line by line, skipping the lines that do
    not parse. Returns the values (not checked yet) and how many lines did not parse.
    """
    events: list[Any] = []
    bad = 0
    pos = start
    while pos < end:
        stop = data.find(b"\n", pos + CHUNK, end) if pos + CHUNK < end else -1
        stop = end if stop < 0 else stop
        chunk = data[pos:stop]
        if chunk.endswith(b","):
            chunk = chunk[:-1]
        try:
            events.extend(orjson.loads(b"[" + chunk + b"]"))
        except orjson.JSONDecodeError:
            bad += _parse_lines(data, pos, stop, events)
        pos = stop + 1
    return events, bad


def _parse_lines(data: bytes, start: int, end: int, events: list[Any]) -> int:
    """Append the event lines of ``data[start:end]`` that parse; returns how many did not."""
    bad = 0
    for line in _lines(data, start, end):
        line = line.rstrip(b"\r")
        if line.endswith(b","):
            line = line[:-1]
        if not line.strip():
            continue
        try:
            events.append(orjson.loads(line))
        except orjson.JSONDecodeError:
            bad += 1
    return bad


def _parse_other(data: bytes, name: str, path: Path | None) -> Trace:
    """A file whose first line is not a trace header: re-formatted JSON, or not a trace."""
    if not data.strip():
        raise TraceError(f"{name}: the file is empty, not a pflow-tui trace")
    start = b'{"format":"pflow-tui-trace"'
    if b"\n" not in data and (data.startswith(start) or (len(data) > 9 and start.startswith(data))):
        raise TraceError(f"{name}: the file ends inside the trace header "
                         "(the run was cut short before its first event was saved)")
    try:
        doc = orjson.loads(data)
    except orjson.JSONDecodeError:
        what = "binary data" if b"\0" in data[:4096] else "no trace header line"
        raise TraceError(f"{name}: not a pflow-tui trace ({what})") from None
    if not isinstance(doc, dict) or doc.get("format") != FORMAT:
        raise TraceError(f"{name}: not a pflow-tui trace (JSON without \"format\": \"{FORMAT}\")")
    _check_header(doc, name)
    events = doc.get("events")
    if not isinstance(events, list):
        raise TraceError(f"{name}: the trace has no \"events\" list")
    keys = list(doc)
    at = keys.index("events")
    header = {k: doc[k] for k in keys[:at]}
    footer = sound_footer({k: doc[k] for k in keys[at + 1:]})
    truncated = "status" not in footer
    status = footer.get("status", "interrupted") if not truncated else "interrupted"
    events, skipped = _checked(events)
    return Trace(header, events, status, footer, truncated, path, skipped)


def _lines(data: bytes, start: int, end: int | None = None) -> Iterator[bytes]:
    end = len(data) if end is None else end
    while start < end:
        nl = data.find(b"\n", start, end)
        if nl < 0:
            yield data[start:end]
            return
        yield data[start:nl]
        start = nl + 1
