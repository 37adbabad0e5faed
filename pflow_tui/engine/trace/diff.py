"""Comparing two runs: align their traces by path and say what changed.

Paths are taken relative to the flow root (the first segment, the flow's name, is
dropped), so ``a.square.iteration_6`` and ``b.square.iteration_6`` are the same place in
two runs of a renamed flow. Every path that starts or ends in either trace is a row:
the run (path ``""``), node visits (``review#2``), batch iterations
(``square.iteration_6``), branches (``filter.branch_1``) and what nests under them
(``per_file.iteration_3.read``).

Each row gets one ``change``, the first that holds of: ``added`` (only in B),
``removed`` (only in A), ``status``, ``outputs``, ``restored`` (a re-run restored it from
the run it re-ran, in either trace: its events carry ``cached``, and its duration of 0 s
says nothing about speed), ``slower`` / ``faster`` (durations differ by a factor of at
least ``duration_ratio`` *and* by at least ``duration_floor`` seconds), else ``same``.
``restored`` and ``same`` are not differences. The durations of what holds restored work
(the run, a batch with restored items) are not compared either: its restored parts took 0 s.

It scales with the trace: event lines are read from the memory-mapped file, only the
leading fields of an end event are parsed, and outputs are kept as a hash of their JSON
text; the outputs of a path are parsed (in both traces) only when those hashes differ.
A 100,000-item batch diffs in a few seconds, with memory bounded by a small record per
path. Timings that nodes write into their outputs (``batch_metadata.timing`` of a batch,
``response_time`` of ``http``) are not compared as outputs; durations are compared on
their own. Nothing in a trace is executed.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson

from . import large
from .events import Event
from .reader import UNFINISHED, PathEnd, TraceIndex, ends_of_events
from .writer import Trace, TraceError, read_trace

#: The change kinds of a row, in the order they are checked (and counted).
CHANGES = ("added", "removed", "status", "outputs", "restored", "slower", "faster", "same")
#: The change kinds that are not differences.
UNCHANGED = ("restored", "same")
NOT_RUN = "not run"  # the status of a path a run never reached


_TIMING, _RESPONSE_TIME = b'"timing":', b'"response_time":'  # volatile: parse those outputs first
_MISSING: Any = object()


# --- the result ----------------------------------------------------------------------------------

@dataclass(slots=True)
class PathDiff:
    """One path in one or both runs, and how it changed from A to B."""

    path: str  #: relative to the flow root; ``""`` is the run itself
    kind: str  #: run, node, item or branch
    change: str = "same"  #: one of :data:`CHANGES`
    status_a: str = NOT_RUN  #: ok, error, cancelled, skipped, unfinished or "not run"
    status_b: str = NOT_RUN
    duration_a: float | None = None  #: seconds; None when not run or unfinished
    duration_b: float | None = None
    outputs_equal: bool | None = None  #: None when the path did not end in both runs
    outputs_key: str | None = None  #: the first top-level output key that differs
    error_a: str | None = None  #: the error message, when the path failed
    error_b: str | None = None
    event_a: int | None = None  #: 0-based index of the path's end event (else start) in A
    event_b: int | None = None
    cached_a: bool = False  #: a re-run restored it in A (from the run A re-ran)
    cached_b: bool = False
    partly_restored: bool = False  #: some of what it holds was restored (durations not compared)

    @property
    def label(self) -> str:
        """The path as shown: ``(run)`` for the run itself."""
        return self.path or "(run)"

    def path_in(self, flow_name: str) -> str:
        """The full path in a run of flow ``flow_name`` (as trace events spell it)."""
        return f"{flow_name}.{self.path}" if self.path else flow_name

    @property
    def ratio(self) -> float | None:
        """duration B / duration A (None when either is missing; inf when A took 0 s)."""
        a, b = self.duration_a, self.duration_b
        if a is None or b is None:
            return None
        if a <= 0:
            return float("inf") if b > 0 else 1.0
        return b / a

    def note(self) -> str:
        """One line saying what changed: an error, the differing output key, a ratio."""
        if self.change in ("status", "added", "removed"):
            if self.error_b:
                return _one_line(self.error_b)
            if self.error_a:
                return "was: " + _one_line(self.error_a)
            return ""
        if self.change == "restored":
            sides = [s for s, c in (("A", self.cached_a), ("B", self.cached_b)) if c]
            return f"restored in {' and '.join(sides)} from the run it re-ran"
        if self.change == "outputs":
            if self.outputs_key is not None:
                return _one_line(f"outputs differ: key {self.outputs_key}")
            return "outputs differ"
        if self.partly_restored and self.change == "same":
            return "partly restored: durations not compared"
        if self.change in ("slower", "faster"):
            r = self.ratio
            if r is None:
                return ""
            if self.change == "faster":
                r = 1 / r if r else float("inf")
            return f"{r:.1f}× {self.change}" if r != float("inf") else self.change
        return ""


@dataclass
class RunInfo:
    """One side of a diff: the trace and how its run went."""

    file: str  #: the trace file
    flow: str  #: the flow's name (header ``flow_name``)
    source: str  #: where the flow came from (header ``source``)
    status: str  #: ok, failed or interrupted (a trace cut short is interrupted)
    truncated: bool
    duration: float | None  #: the run's duration (None when it never ended)
    created: str | None = None
    events: int = 0
    index: TraceIndex | None = field(default=None, repr=False, compare=False)
    skipped: int = 0  #: malformed events left out (see check.py)


@dataclass
class TraceDiff:
    """Two runs aligned by path: one :class:`PathDiff` per path, and counts per change."""

    a: RunInfo
    b: RunInfo
    rows: list[PathDiff]  #: in the order paths first appear: A's order, then B's new ones
    counts: dict[str, int]  #: rows per change kind (every kind of :data:`CHANGES`)
    duration_ratio: float = 2.0
    duration_floor: float = 0.05
    _by_path: dict[str, PathDiff] | None = field(default=None, repr=False, compare=False)

    def changed(self) -> list[PathDiff]:
        """The rows that differ (change neither ``same`` nor ``restored``)."""
        return [r for r in self.rows if r.change not in UNCHANGED]

    @property
    def differs(self) -> bool:
        return self.counts["same"] + self.counts["restored"] != len(self.rows)

    def get(self, path: str) -> PathDiff | None:
        """The row of a relative path (``""`` for the run), or None."""
        if self._by_path is None:
            self._by_path = {r.path: r for r in self.rows}
        return self._by_path.get(path)


# --- diffing -------------------------------------------------------------------------------------

def diff_traces(a: str | Path | TraceIndex | Trace, b: str | Path | TraceIndex | Trace, *,
                duration_ratio: float = 2.0, duration_floor: float = 0.05) -> TraceDiff:
    """Align two traces by path and classify every path (see the module docs).

    ``a`` and ``b`` are trace files or opened traces (:class:`TraceIndex`, or a
    :class:`Trace` from ``read_trace``). A file that is not a trace raises
    :class:`~pflow_tui.engine.trace.writer.TraceError`.
    """
    src_a, src_b = _Source.open(a), _Source.open(b)
    recs_a, recs_b = src_a.scan(), src_b.scan()
    info_a, info_b = src_a.info(recs_a), src_b.info(recs_b)
    rows: list[PathDiff] = []
    counts = dict.fromkeys(CHANGES, 0)
    partial = _holding_restored(recs_a) | _holding_restored(recs_b)
    for path, ra in recs_a.items():
        row = _row(path, ra, recs_b.pop(path, None), src_a, src_b, duration_ratio, duration_floor,
                   path in partial)
        counts[row.change] += 1
        rows.append(row)
    for path, rb in recs_b.items():
        row = _row(path, None, rb, src_a, src_b, duration_ratio, duration_floor, path in partial)
        counts[row.change] += 1
        rows.append(row)
    return TraceDiff(info_a, info_b, rows, counts, duration_ratio, duration_floor)


# a path's record (reader.ends_by_path):
# [kind, status, duration, outputs hash or None, error, event, cached]
_Rec = PathEnd


def _holding_restored(recs: dict[str, _Rec]) -> set[str]:
    """The paths that hold a restored path (its ancestors, the run ``""`` included)."""
    out: set[str] = set()
    for path, rec in recs.items():
        if not rec[6]:
            continue
        while path:
            path = path.rpartition(".")[0]
            if path in out:
                break
            out.add(path)
    return out


def _row(path: str, ra: _Rec | None, rb: _Rec | None, src_a: _Source, src_b: _Source,
         ratio: float, floor: float, partial: bool = False) -> PathDiff:
    row = PathDiff(path, (ra or rb)[0])  # type: ignore[index]
    row.partly_restored = partial
    if ra is not None:
        _, row.status_a, row.duration_a, _, row.error_a, row.event_a, row.cached_a = ra
    if rb is not None:
        _, row.status_b, row.duration_b, _, row.error_b, row.event_b, row.cached_b = rb
    if ra is None:
        row.change = "added"
        return row
    if rb is None:
        row.change = "removed"
        return row
    if UNFINISHED not in (row.status_a, row.status_b):
        if ra[3] == rb[3]:  # the same JSON text (or both without outputs)
            row.outputs_equal = True
        elif ra[3] is None or rb[3] is None:
            row.outputs_equal = False
        else:
            out_a = src_a.outputs(ra[5])
            out_b = src_b.outputs(rb[5])
            row.outputs_equal = _canonical(out_a) == _canonical(out_b)
            if not row.outputs_equal:
                row.outputs_key = _first_key(out_a, out_b)
    if row.status_a != row.status_b:
        row.change = "status"
    elif row.outputs_equal is False:
        row.change = "outputs"
    elif row.cached_a or row.cached_b:
        row.change = "restored"
    elif not partial:
        da, db = row.duration_a, row.duration_b
        if da is not None and db is not None:
            lo, hi = min(da, db), max(da, db)
            if hi - lo >= floor and (lo <= 0 or hi / lo >= ratio):
                row.change = "slower" if db > da else "faster"
    return row


def _canonical(outputs: Any) -> bytes:
    """The outputs as sorted-key JSON, without the timings nodes write into them; a large
    value stored in a side file as its sha256 (large.py), wherever its file is."""
    outputs = large.by_hash(outputs)
    if isinstance(outputs, dict):
        meta = outputs.get("batch_metadata")
        if "response_time" in outputs or (isinstance(meta, dict) and "timing" in meta):
            outputs = {k: v for k, v in outputs.items() if k != "response_time"}
            if isinstance(meta, dict):
                outputs["batch_metadata"] = {k: v for k, v in meta.items() if k != "timing"}
    try:
        return orjson.dumps(outputs, option=orjson.OPT_SORT_KEYS)
    except (orjson.JSONEncodeError, TypeError):  # a key orjson cannot sort: keep the order
        return orjson.dumps(outputs, option=orjson.OPT_NON_STR_KEYS)


def _first_key(a: Any, b: Any) -> str | None:
    if not isinstance(a, dict) or not isinstance(b, dict):
        return None
    for key in (*a, *(k for k in b if k not in a)):
        va, vb = a.get(key, _MISSING), b.get(key, _MISSING)
        if va is _MISSING or vb is _MISSING or _canonical({key: va}) != _canonical({key: vb}):
            return str(key)
    return None


def _outputs_hash(outputs: Any) -> int:
    return hash(_canonical(outputs))


def _one_line(text: str, width: int = 120) -> str:
    line = text.strip().splitlines()[0] if text.strip() else ""
    return line if len(line) <= width else line[: width - 1] + "…"


class _Source:
    """A trace to scan: a memory-mapped :class:`TraceIndex`, or events in memory."""

    def __init__(self, index: TraceIndex | None, trace: Trace | None, file: str) -> None:
        self.index, self.trace, self.file = index, trace, file
        self.run_duration: float | None = None
        self.skipped = 0  # malformed event lines the scan met

    @classmethod
    def open(cls, what: str | Path | TraceIndex | Trace) -> _Source:
        if isinstance(what, TraceIndex):
            return cls(what, None, str(what.path))
        if isinstance(what, Trace):
            return cls(None, what, str(what.path or "<trace>"))
        try:
            return cls(TraceIndex(what), None, str(what))
        except TraceError:
            # not one event per line: a trace re-formatted by another tool is still read
            # (read_trace raises a TraceError naming the problem for what is no trace)
            return cls(None, read_trace(what), str(what))

    @property
    def header(self) -> dict[str, Any]:
        return self.index.header if self.index is not None else self.trace.header  # type: ignore[union-attr]

    def event(self, i: int) -> Event:
        if self.index is not None:
            return self.index.events(i, i + 1)[0]
        return self.trace.events[i]  # type: ignore[union-attr]

    def outputs(self, i: int) -> Any:
        event = self.event(i)
        return event.get("outputs") if isinstance(event, dict) else None

    def info(self, recs: dict[str, _Rec]) -> RunInfo:
        run = recs.get("")
        duration = run[2] if run is not None else None
        h = self.header
        if self.index is not None:
            status, truncated, count = self.index.status, self.index.truncated, len(self.index)
        else:
            t = self.trace
            status, truncated, count = t.status, t.truncated, len(t.events)  # type: ignore[union-attr]
        before = self.index.skipped if self.index is not None else self.trace.skipped  # type: ignore[union-attr]
        created = h.get("created")
        return RunInfo(self.file, str(h.get("flow_name", "")), str(h.get("source", "")), status,
                       truncated, duration, created if isinstance(created, str) else None, count,
                       self.index, before + self.skipped)

    # --- scanning --------------------------------------------------------------------------------

    def scan(self) -> dict[str, _Rec]:
        """One record per relative path, in the order the paths first appear."""
        if self.index is None:
            return ends_of_events(self.trace.events, _outputs_hash)  # type: ignore[union-attr]
        recs, self.skipped = self.index.ends_by_path(_text_hash, _outputs_hash)
        return recs


def _text_hash(text: bytes) -> int:
    """The digest of outputs as their JSON text: the text's own, unless it holds timings
    (then the canonical outputs', as :func:`_outputs_hash`)."""
    if _TIMING in text or _RESPONSE_TIME in text:
        try:
            return hash(_canonical(orjson.loads(text)))
        except orjson.JSONDecodeError:
            return hash(text)
    return hash(text)


# --- showing -------------------------------------------------------------------------------------
def summary_line(diff: TraceDiff) -> str:
    """``3 of 12 paths differ: 1 status, 1 outputs, 1 slower`` or ``no differences ...``,
    and how many paths a re-run restored."""
    total = len(diff.rows)
    restored = diff.counts["restored"]
    tail = f"; {restored} restored by a re-run" if restored else ""
    if not diff.differs:
        return (f"no differences: {total} path{'s' if total != 1 else ''}, same statuses and "
                f"outputs, durations within ×{diff.duration_ratio:g}{tail}")
    parts = [f"{diff.counts[c]} {c}" for c in CHANGES if c not in UNCHANGED and diff.counts[c]]
    changed = total - diff.counts["same"] - restored
    verb = "differs" if changed == 1 else "differ"
    return f"{changed} of {total} path{'s' if total != 1 else ''} {verb}: " + ", ".join(parts) + tail


__all__ = ["CHANGES", "NOT_RUN", "UNCHANGED", "UNFINISHED", "PathDiff", "RunInfo", "TraceDiff",
           "diff_traces", "summary_line"]
