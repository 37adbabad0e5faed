"""The list of saved runs: one record per trace in a folder, read from its ends only.

A trace's first line is its header (flow, when it started, where it came from) and its
last line is its footer (status, when it finished, and a ``summary``: duration, items,
failures; see docs/trace-format.md). :func:`read_run` reads those two lines and nothing
between them: the first block of the file, and the last block (seeking to the end), so
listing a folder of a thousand traces takes a fraction of a second whatever their size.

- A trace with no footer (the process was killed, or is still running) is
  ``interrupted`` (``running`` while the process that writes it is alive and the file was
  written to lately), with what its header says.
- A file that is not a trace (empty, damaged header, another tool's JSON, binary) is
  ``unreadable``, with the reason; reading never raises.
- A trace written before footers had a ``summary`` shows its duration from its
  ``run.end`` event (the line before the footer) and no counts.

:func:`prune_runs` keeps a folder to its newest N runs (the ``keep`` setting): it removes
the oldest traces, with the exports and the ``.results/`` folder beside each.

Nothing here imports textual or rich; nothing in a trace is executed.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import os
import re
import shutil
import stat
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import orjson

from ..run.spill import results_dir
from .reader import header_of
from .writer import DEFAULT_DIR, FORMAT, TraceError

HEAD_BLOCK = 16 << 10  # bytes read first from each end; more only when a line is longer
MAX_HEAD = 1 << 20  # a longer header line: its leading keys are read, not the whole line
MAX_FOOT = 1 << 20  # a longer footer line: its leading keys and its error only
RECENT = 300.0  # seconds: a trace without footer, written to this lately by a live pid, is running

UNREADABLE = "unreadable"
RUNNING = "running"
INTERRUPTED = "interrupted"

_FOOT = re.compile(rb'\],"status":"(\w+)","finished":"([^"\\]*)"(?:,"summary":(\{[^{}]*\}))?')
_LEAD = {key: re.compile(rb'"' + key.encode() + rb'":("(?:[^"\\]|\\.)*"|\d+)')
         for key in ("format", "version", "created", "flow_name", "source")}
_ERROR = b',"error":'


@dataclass(frozen=True, slots=True)
class RunRecord:
    """One saved run as the list shows it; counts are None when the trace does not say."""

    path: Path
    status: str  #: ok, failed, interrupted, running or unreadable
    flow: str | None = None  #: the flow's name (header ``flow_name``)
    started: str | None = None  #: header ``created`` (UTC, ISO 8601)
    finished: str | None = None  #: footer ``finished``
    duration: float | None = None  #: seconds
    items: int | None = None  #: batch items that ended (ran or restored)
    failed: int | None = None  #: failed items, and failed nodes without failed items
    cancelled: int | None = None
    restored: int | None = None  #: nodes and items a re-run restored
    source: str | None = None  #: the flow file (header ``source``), or a Python target
    rerun_of: str | None = None  #: the trace this run re-ran
    error: str | None = None  #: the footer's error message (first line), or why unreadable
    size: int = 0  #: bytes
    mtime: float = 0.0  #: when the file was last written (seconds since the epoch)

    @property
    def readable(self) -> bool:
        return self.status != UNREADABLE

    @property
    def when(self) -> float:
        """Seconds since the epoch the run started (else when the file was written): the sort key."""
        if self.started:
            with contextlib.suppress(ValueError):
                return dt.datetime.fromisoformat(self.started).timestamp()
        return self.mtime

    def to_json(self) -> dict[str, Any]:
        out = asdict(self)
        out["path"] = str(self.path)
        return out


def _trace_files(folder: str | Path) -> list[os.DirEntry[str]]:
    """The files in ``folder`` that may be traces (``*.json``, exports left out)."""
    try:
        entries = list(os.scandir(folder))
    except (FileNotFoundError, NotADirectoryError):
        return []
    return [e for e in entries if e.name.endswith(".json") and not e.name.endswith(".perfetto.json")
            and e.is_file()]


def list_runs(folder: str | Path = DEFAULT_DIR) -> list[RunRecord]:
    """Every trace in ``folder`` (``*.json``, exports left out), newest first, then the files
    that are not traces; [] when the folder does not exist."""
    records = [read_run(Path(e.path)) for e in _trace_files(folder)]
    records.sort(key=lambda r: (r.readable, r.when, r.path.name), reverse=True)
    return records


def prune_runs(folder: str | Path, keep: int) -> list[RunRecord]:
    """Remove the oldest runs of ``folder`` beyond the newest ``keep`` (0: none removed);
    the records of the traces removed, oldest first.

    Oldest means written last longest ago (the files' times: no trace is opened unless it is
    one to remove). A file that is not a trace is never removed and is not counted as a
    run; nor is a run still being written removed. With each trace go its exports
    (``.perfetto.json``, ``.otlp.jsonl``) and its ``.results/`` folder."""
    if keep <= 0:
        return []
    files = _trace_files(folder)
    excess = len(files) - keep
    if excess <= 0:
        return []
    files.sort(key=lambda e: (_mtime(e), e.name))
    removed: list[RunRecord] = []
    for entry in files:
        if len(removed) >= excess:
            break
        record = read_run(Path(entry.path))
        if not record.readable:
            excess -= 1  # not a run: neither removed nor counted
            continue
        if record.status == RUNNING:
            continue
        if _remove(record.path):
            removed.append(record)
    return removed


def _mtime(entry: os.DirEntry[str]) -> float:
    try:
        return entry.stat().st_mtime
    except OSError:
        return 0.0


def _remove(trace: Path) -> bool:
    """Remove a trace and what was made beside it; whether the trace is gone."""
    stem = trace.stem if trace.suffix == ".json" else trace.name
    for side in (trace.with_name(stem + ".perfetto.json"), trace.with_name(stem + ".otlp.jsonl")):
        with contextlib.suppress(OSError):
            side.unlink()
    shutil.rmtree(results_dir(trace), ignore_errors=True)
    try:
        trace.unlink()
    except FileNotFoundError:
        return False  # (another process pruned it first)
    except OSError:
        return False
    return True


def started_text(created: str | None) -> str:
    """A header's ``created`` (UTC) in local time, ``2026-12-05 18:25:24``; ``—`` when unknown."""
    if not created:
        return "—"
    try:
        return dt.datetime.fromisoformat(created).astimezone().strftime("%Y-%m-%d %H:%M:%S")
    except ValueError:
        return created[:19]


def newest_trace(folder: str | Path = DEFAULT_DIR) -> Path | None:
    """The trace of the run that started last (readable ones only), or None."""
    return next((r.path for r in list_runs(folder) if r.readable), None)


def read_run(path: str | Path) -> RunRecord:
    """The record of one trace, from its header line and its footer line. Never raises."""
    p = Path(path)
    try:
        if not stat.S_ISREG(os.stat(p).st_mode):  # a FIFO would block open(): never opened
            return RunRecord(p, UNREADABLE, error="not a regular file")
        with open(p, "rb") as f:
            st = os.fstat(f.fileno())
            size, mtime = st.st_size, st.st_mtime
            try:
                header, head_end = _read_header(f, p)
            except TraceError as exc:
                return RunRecord(p, UNREADABLE, error=str(exc).removeprefix(f"{p}: "), size=size,
                                 mtime=mtime)
            foot, before = _read_last_line(f, head_end, size)
    except OSError as exc:
        return RunRecord(p, UNREADABLE, error=f"cannot read ({exc.strerror})")
    common = {"flow": _str(header.get("flow_name")), "started": _str(header.get("created")),
              "source": _str(header.get("target") or header.get("source")),
              "rerun_of": _str(header.get("rerun_of")), "size": size, "mtime": mtime}
    m = _FOOT.match(foot) if foot.rstrip().endswith(b"}") else None
    if m is None:  # no footer: killed, or still running
        status = RUNNING if _alive(header.get("pid")) and time.time() - mtime < RECENT else INTERRUPTED
        return RunRecord(p, status, **common)
    status, finished, summary_raw = m.groups()
    summary: dict[str, Any] = {}
    if summary_raw:
        with contextlib.suppress(orjson.JSONDecodeError):
            summary = orjson.loads(summary_raw)
    duration = _num(summary.get("duration")) if summary else _run_end_duration(before)
    return RunRecord(p, status.decode(), finished=finished.decode(errors="replace"), duration=duration,
                     items=_int(summary.get("items")), failed=_int(summary.get("failed")),
                     cancelled=_int(summary.get("cancelled")), restored=_int(summary.get("restored")),
                     error=_error_of(foot), **common)


# --- reading the two ends ------------------------------------------------------------------------

def _read_header(f: Any, path: Path) -> tuple[dict[str, Any], int]:
    """(the header, where the events start); TraceError when the file is not a trace."""
    head = f.read(HEAD_BLOCK)
    nl = head.find(b"\n")
    while nl < 0 and len(head) < MAX_HEAD:
        more = f.read(len(head))
        if not more:
            break
        seen = len(head)
        head += more
        nl = head.find(b"\n", seen)
    if not head.strip():
        raise TraceError(f"{path}: the file is empty, not a pflow-tui trace")
    if nl >= 0:
        return header_of(head[: nl + 1], path), nl + 1
    if not head.startswith(b'{"format":"' + FORMAT.encode() + b'"'):
        what = "binary data" if b"\0" in head[:4096] else "no trace header line"
        raise TraceError(f"{path}: not a pflow-tui trace ({what})")
    if len(head) < MAX_HEAD:
        raise TraceError(f"{path}: the file ends inside the trace header")
    # a header line longer than MAX_HEAD (a flow with a huge literal): its leading keys
    header: dict[str, Any] = {}
    for key, rx in _LEAD.items():
        m = rx.search(head)
        if m is not None:
            with contextlib.suppress(orjson.JSONDecodeError):
                header[key] = orjson.loads(m.group(1))
    if not isinstance(header.get("version"), int) or header["version"] > 1:
        raise TraceError(f"{path}: trace version {header.get('version')!r} is not one this "
                         "pflow-tui reads (1); upgrade pflow-tui")
    return header, len(head)  # the events start further on: the footer is searched for after this


def _read_last_line(f: Any, start: int, size: int) -> tuple[bytes, bytes]:
    """(the file's last line, the line before it when it is in the blocks read): read
    backwards from the end, a block at a time, no further back than the last line goes."""
    if size <= start:
        return b"", b""
    pos = max(start, size - HEAD_BLOCK)
    f.seek(pos)
    block = f.read(size - pos)
    body = block.rstrip(b"\n")
    nl = body.rfind(b"\n")
    while nl < 0 and pos > start and len(block) < MAX_FOOT:
        step = min(len(block), pos - start)
        f.seek(pos - step)
        block = f.read(step) + block
        pos -= step
        body = block.rstrip(b"\n")
        nl = body.rfind(b"\n")
    if nl >= 0:
        before = body.rfind(b"\n", 0, nl)
        return body[nl + 1:], body[before + 1: nl]
    if pos <= start:
        return body, b""
    # a last line longer than MAX_FOOT: find where it starts; its lead and its end are enough
    while pos > start:
        step = min(1 << 20, pos - start)
        f.seek(pos - step)
        at = f.read(step).rfind(b"\n")
        pos -= step
        if at >= 0:
            pos += at + 1
            break
    f.seek(pos)
    return f.read(HEAD_BLOCK) + body[-HEAD_BLOCK:], b""


def _error_of(foot: bytes) -> str | None:
    """The first line of the footer's error message (``error`` is the footer's last key but
    the ``seal`` of a signed trace)."""
    at = foot.rfind(_ERROR)
    if at < 0:
        return None
    try:
        seal = foot.rfind(b',"seal":{"mac":', at)  # a signed trace's footer ends with its seal
        error = orjson.loads(foot[at + len(_ERROR): seal if seal >= 0 else foot.rstrip().rfind(b"}")])
    except orjson.JSONDecodeError:
        return None
    if not isinstance(error, dict):
        return None
    message = error.get("message")
    text = str(message if message is not None else error.get("type", "")).strip()
    return text.splitlines()[0][:300] if text else None


def _run_end_duration(before: bytes) -> float | None:
    """The duration on the ``run.end`` event line (the one before the footer), if it is one."""
    line = before.strip().rstrip(b",")
    if b'"kind":"run.end"' not in line[:120]:
        return None
    try:
        event = orjson.loads(line)
    except orjson.JSONDecodeError:
        return None
    return _num(event.get("duration")) if isinstance(event, dict) else None


def _alive(pid: Any) -> bool:
    if not isinstance(pid, int) or isinstance(pid, bool) or pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except (ProcessLookupError, OverflowError):  # (a pid from a crafted trace: 10^30)
        return False
    except (PermissionError, OSError):
        return True
    return True


def _str(value: Any) -> str | None:
    return value if isinstance(value, str) else None


def _num(value: Any) -> float | None:
    return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else None


def _int(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


__all__ = ["INTERRUPTED", "RUNNING", "UNREADABLE", "RunRecord", "list_runs", "newest_trace",
           "prune_runs", "read_run", "started_text"]
