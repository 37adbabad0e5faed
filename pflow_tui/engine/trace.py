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

import datetime as dt
import os
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

import orjson

from .events import Event

FORMAT = "pflow-tui-trace"
VERSION = 1
EVENTS_OPEN = b',"events":[\n'
DEFAULT_DIR = Path(".pflow-tui") / "traces"
_OPTS = orjson.OPT_NON_STR_KEYS | orjson.OPT_SERIALIZE_NUMPY
FLUSH_EVERY = 0.2  # seconds between flushes to the OS while a run is going


def _fallback(value: Any) -> Any:
    return repr(value)


def dumps(value: Any) -> bytes:
    """orjson with a safety net: anything JSON cannot hold becomes its repr."""
    try:
        return orjson.dumps(value, default=_fallback, option=_OPTS)
    except (orjson.JSONEncodeError, TypeError):
        return orjson.dumps(json_safe(value), option=_OPTS)


def json_safe(value: Any, depth: int = 0) -> Any:
    """A copy of ``value`` that orjson can always serialise (slow path)."""
    if depth > 64:
        return repr(value)
    if value is None or isinstance(value, (bool, str, float)):
        return value
    if isinstance(value, int):
        return value if -(2**63) <= value < 2**64 else repr(value)
    if isinstance(value, dict):
        return {str(k): json_safe(v, depth + 1) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [json_safe(v, depth + 1) for v in value]
    try:
        orjson.dumps(value, option=_OPTS)
        return value
    except (orjson.JSONEncodeError, TypeError):
        return repr(value)


def default_trace_path(flow_name: str, root: Path | None = None) -> Path:
    """Where a run's trace goes unless ``--trace`` says otherwise."""
    stamp = dt.datetime.now().strftime("%Y%m%d-%H%M%S")
    base = (root or Path.cwd()) / DEFAULT_DIR
    return base / f"{flow_name}-{stamp}-{os.getpid()}.json"


class TraceWriter:
    """Appends events to a trace file as they happen; ``finish`` writes the footer.

    Use it as an event sink: ``emitter.sinks.append(writer.write)``.
    """

    def __init__(self, path: str | Path, header: dict[str, Any]) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._file: IO[bytes] | None = open(self.path, "wb", buffering=1 << 20)  # noqa: SIM115
        head = {"format": FORMAT, "version": VERSION,
                "created": dt.datetime.now(dt.timezone.utc).isoformat(), **header}
        self._file.write(dumps(head)[:-1] + EVENTS_OPEN)
        self._last_flush = time.monotonic()
        self.count = 0
        self.flush()

    def write(self, event: Event) -> None:
        f = self._file
        if f is None:
            return
        try:
            line = orjson.dumps(event, default=_fallback, option=_OPTS)
        except (orjson.JSONEncodeError, TypeError):
            line = dumps(event)
        if self.count:
            f.write(b",\n")
        f.write(line)
        self.count += 1
        now = time.monotonic()
        if now - self._last_flush > FLUSH_EVERY:
            f.flush()
            self._last_flush = now

    def flush(self) -> None:
        if self._file is not None:
            self._file.flush()

    def finish(self, status: str, **footer: Any) -> None:
        """Write the footer (status, outputs, store, error ...) and close the file."""
        f = self._file
        if f is None:
            return
        self._file = None
        tail = dumps({"status": status, "finished": dt.datetime.now(dt.timezone.utc).isoformat(),
                      **footer})
        f.write(b"\n]," + tail[1:] + b"\n")
        f.close()

    @property
    def closed(self) -> bool:
        return self._file is None


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
    """Open a trace, complete or cut short. Nothing in it is executed."""
    p = Path(path)
    try:
        data = p.read_bytes()
    except OSError as exc:
        raise TraceError(f"{path}: cannot read ({exc.strerror})") from None
    return parse_trace(data, p)


def parse_trace(data: bytes, path: Path | None = None) -> Trace:
    """Parse the bytes of a trace file (see :func:`read_trace`)."""
    name = str(path or "<trace>")
    newline = data.find(b"\n")
    head_line = data[: newline + 1 if newline >= 0 else len(data)]
    if not head_line.endswith(EVENTS_OPEN):
        raise TraceError(f"{name}: not a pflow-tui trace (no header line)")
    try:
        header = orjson.loads(head_line[: -len(EVENTS_OPEN)] + b"}")
    except orjson.JSONDecodeError:
        raise TraceError(f"{name}: the header is damaged") from None
    if header.get("format") != FORMAT:
        raise TraceError(f"{name}: format is {header.get('format')!r}, expected {FORMAT!r}")
    if header.get("version", 0) > VERSION:
        raise TraceError(f"{name}: trace version {header['version']} is newer than this "
                         f"pflow-tui reads ({VERSION}); upgrade pflow-tui")
    events: list[Event] = []
    footer: dict[str, Any] = {}
    truncated = True
    for line in _lines(data, newline + 1):
        if line.startswith(b"],"):
            try:
                footer = orjson.loads(b"{" + line[2:])
                truncated = False
            except orjson.JSONDecodeError:
                pass
            break
        if line.endswith(b","):
            line = line[:-1]
        try:
            events.append(orjson.loads(line))
        except orjson.JSONDecodeError:
            break  # the last line of a file cut short
    status = footer.get("status", "interrupted")
    return Trace(header, events, status, footer, truncated, path)


def _lines(data: bytes, start: int) -> Iterator[bytes]:
    end = len(data)
    while start < end:
        nl = data.find(b"\n", start)
        if nl < 0:
            yield data[start:]
            return
        yield data[start:nl]
        start = nl + 1
