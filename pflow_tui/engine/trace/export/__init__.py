"""Exporting a saved run to other tools (see docs/export.md).

- ``perfetto``: Chrome Trace Event JSON, for the Perfetto UI and chrome://tracing
  (:mod:`.perfetto`);
- ``otlp``: OpenTelemetry spans as OTLP/JSON lines, for an OpenTelemetry collector's
  ``otlpjsonfile`` receiver or any OTLP/HTTP endpoint (:mod:`.otlp`), or sent straight to
  a collector (:func:`push_trace`, :mod:`.push`).

Both stream: the trace's event lines are read from the memory-mapped file a chunk at a
time and the output is written as spans end, so memory holds the spans still open, not
the events. Nothing in a trace is executed.
"""

from __future__ import annotations

import contextlib
import os
import sys
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

import orjson

from .... import __version__
from ...ir.load import paused_gc  # (an export, too, makes millions of acyclic objects)
from ..check import malformed_note
from ..diff import UNFINISHED
from ..events import Event
from ..private import open_private
from ..reader import TraceIndex
from ..writer import TraceError, read_trace
from .otlp import otlp_lines, otlp_spans, start_ns
from .perfetto import trace_events
from .push import PushError, push_otlp

#: Output formats and the suffix of their default file name.
FORMATS = {"perfetto": ".perfetto.json", "otlp": ".otlp.jsonl"}
_BATCH = 4096  # output events serialised per write


class ExportError(Exception):
    """The trace cannot be read or the output cannot be written (the message says why)."""


@dataclass
class Source:
    """A trace opened for export: its header, how it ended, and its events in order."""

    header: dict[str, Any]
    status: str
    truncated: bool
    events: Iterable[Event]
    name: str = "<trace>"
    skipped: Callable[[], int] = lambda: 0  #: malformed events left out so far (see check.py)


def open_trace(path: str | Path) -> Source:
    """A trace file, read lazily (a re-formatted trace is read whole); TraceError if it is none."""
    try:
        index = TraceIndex(path)
    except TraceError:
        trace = read_trace(path)  # not one event per line (e.g. `jq .`), or no trace: it says why
        return Source(trace.header, trace.status, trace.truncated, trace.events, str(path),
                      lambda: trace.skipped)
    return Source(index.header, index.status, index.truncated, index, str(path), lambda: index.skipped)


@dataclass
class Exported:
    """What an export wrote: where, in which format, and how many spans of each kind."""

    output: str
    format: str
    counts: dict[str, int] = field(default_factory=dict)
    skipped: int = 0  #: malformed events left out
    rejected: int = 0  #: spans a collector said it did not accept (a push only)
    messages: list[str] = field(default_factory=list)  #: what the collector said about them

    def summary(self) -> str:
        c = self.counts
        parts = [f"{n} {what}{'' if n == 1 else plural}" for n, what, plural in (
            (c.get("run", 0), "run", "s"), (c.get("node", 0), "node", "s"),
            (c.get("branch", 0), "branch", "es"), (c.get("item", 0), "iteration", "s"),
            (c.get("wait", 0), "wait", "s")) if n]
        text = ", ".join(parts) or "no spans"
        if c.get(UNFINISHED):
            text += f" ({c[UNFINISHED]} unfinished: the trace was cut short)"
        if self.skipped:
            text += f"; {malformed_note(self.skipped)}"
        if self.rejected:
            text += f"; the collector rejected {self.rejected} span{'' if self.rejected == 1 else 's'}"
            text += f" ({'; '.join(self.messages)})" if self.messages else ""
        return text


def write_perfetto(source: Source, out: IO[bytes]) -> dict[str, int]:
    """Write the run as one Chrome Trace Event JSON document; returns the span counts."""
    counts: dict[str, int] = {}
    out.write(b'{"traceEvents":[\n')
    batch: list[bytes] = []
    sep = b""
    for event in trace_events(source.header, source.events, counts):
        batch.append(orjson.dumps(event))
        if len(batch) >= _BATCH:
            out.write(sep + b",\n".join(batch))
            sep = b",\n"
            batch.clear()
    if batch:
        out.write(sep + b",\n".join(batch))
    h = source.header
    other = {"exporter": f"pflow-tui {__version__}", "flow": h.get("flow_name"), "source": h.get("source"),
             "created": h.get("created"), "trace": source.name, "status": source.status,
             "truncated": source.truncated, "spans": counts}
    out.write(b'\n],"displayTimeUnit":"ms","otherData":' + orjson.dumps(other) + b"}\n")
    return counts


def write_otlp(source: Source, out: IO[bytes]) -> dict[str, int]:
    """Write the run as OTLP/JSON lines (one trace); returns the span counts."""
    counts: dict[str, int] = {}
    for line in _otlp_lines(source, counts):
        out.write(line)
    return counts


def _otlp_lines(source: Source, counts: dict[str, int]) -> Iterator[bytes]:
    """The run's OTLP/JSON lines (the span counts go into ``counts`` as they are made)."""
    try:
        start_ns(source.header)
    except ValueError as exc:
        raise ExportError(f"{source.name}: {exc}; OTLP needs it for the spans' times") from None
    spans = otlp_spans(source.header, source.events, counts)
    return otlp_lines(source.header, spans, status=source.status, truncated=source.truncated)


_WRITERS = {"perfetto": write_perfetto, "otlp": write_otlp}



def default_output(trace: str | Path, fmt: str) -> Path:
    """``runs/demo.json`` -> ``runs/demo.perfetto.json`` (or ``.otlp.jsonl``): beside the trace."""
    p = Path(trace)
    return p.with_name((p.stem if p.suffix == ".json" else p.name) + FORMATS[fmt])


def export_file(trace: str | Path, fmt: str, output: str | Path | None = None) -> Exported:
    """Export ``trace`` in format ``fmt`` to ``output`` (``"-"``: standard output; None:
    :func:`default_output`). A file is written under a temporary name and renamed when
    complete, so a failed or interrupted export leaves nothing half-written."""
    if fmt not in _WRITERS:
        raise ExportError(f"unknown format {fmt!r}: use one of {', '.join(FORMATS)}")
    try:
        source = open_trace(trace)
    except TraceError as exc:
        raise ExportError(str(exc)) from None
    write = _WRITERS[fmt]
    if str(output) == "-":
        with paused_gc():
            counts = write(source, sys.stdout.buffer)
        sys.stdout.buffer.flush()
        return Exported("-", fmt, counts, source.skipped())
    out = Path(output) if output is not None else default_output(trace, fmt)
    with contextlib.suppress(OSError):
        if out.resolve() == Path(trace).resolve():
            raise ExportError(f"{out}: that is the trace itself; give another output with -o")
    tmp = out.with_name(f".{out.name}.{os.getpid()}.tmp")
    try:
        fd = open_private(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC)  # 0600, as the trace
        with open(fd, "wb", buffering=1 << 20) as f, paused_gc():
            counts = write(source, f)
        os.replace(tmp, out)
    except OSError as exc:
        raise ExportError(f"{out}: cannot write ({exc.strerror or exc})") from None
    finally:
        with contextlib.suppress(OSError):
            tmp.unlink()
    return Exported(str(out), fmt, counts, source.skipped())


def push_trace(trace: str | Path, endpoint: str, headers: dict[str, str] | None = None) -> Exported:
    """Send ``trace``'s spans to an OpenTelemetry collector (OTLP/HTTP, JSON): see
    :mod:`.push`. ``Exported.output`` is the URL posted to; what the collector rejected
    (``partialSuccess``) is in ``Exported.rejected``."""
    try:
        source = open_trace(trace)
    except TraceError as exc:
        raise ExportError(str(exc)) from None
    counts: dict[str, int] = {}
    try:
        with paused_gc():
            pushed = push_otlp(_otlp_lines(source, counts), endpoint, headers=headers)
    except PushError as exc:
        raise ExportError(str(exc)) from None
    return Exported(pushed.url, "otlp", counts, source.skipped(), pushed.rejected, pushed.messages)


__all__ = ["FORMATS", "ExportError", "Exported", "Source", "default_output", "export_file",
           "open_trace", "otlp_lines", "otlp_spans", "push_trace", "trace_events", "write_otlp",
           "write_perfetto"]
