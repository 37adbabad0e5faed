"""Reading traces: the one module that knows their byte layout.

Big traces are read lazily: an index of event lines over a memory-mapped file.

Replay never needs all events as Python objects at once: the view model keeps what it
needs per node and per item, and a pane that shows an event fetches it by ``seq``.
:class:`TraceIndex` maps the file, finds where each event line starts (in C-speed
passes), and parses ranges of events on demand, many per ``orjson.loads`` call.
Nothing in a trace is ever executed.
"""

from __future__ import annotations

import contextlib
import functools
import mmap
import re
from array import array
from bisect import bisect_left, bisect_right
from collections import OrderedDict
from collections.abc import Callable, Iterable, Iterator
from itertools import accumulate
from pathlib import Path
from typing import Any

import orjson

from .check import IGNORED_KINDS, KNOWN_KINDS, MAX_ATTEMPTS, MAX_INDEX, MAX_SEQ, check_event
from .events import Event
from .filecheck import FileRefused, check_file, read_limited
from .writer import EVENTS_OPEN, TraceError, check_header, dumps, parse_trace, sound_footer

CHUNK = 1 << 22  # bytes scanned per pass when indexing lines
BIG_LINE = 1 << 16  # bytes: longer event lines are summarised without parsing their payload
BIG_CACHE = 1 << 24  # bytes of big event lines kept parsed once a pane has shown them
_HEAD = re.compile(rb'\{"seq":(\d+),"t":([-+.\deE]+),"kind":"([\w.]+)","path":"([^"\\]*)"'
                   rb'(?:,"node":"([^"\\]*)")?(?:,"type":"([^"\\]*)")?(?:,"status":"(\w+)")?')
_LABEL = re.compile(rb',"index":(\d+),"label":("(?:[^"\\]|\\.){0,400}")')
_FIND = {"node": b'"kind":"node.', "item": b'"kind":"item.', "failure": b'"status":"error"'}
_STATUS = re.compile(rb'"status":"(\w+)"')
_END_STATUS = frozenset({b"ok", b"error", b"skipped", b"cancelled"})
_LEAD = re.compile(rb'\{"seq":\d+,"t":')  # how every event line the engine writes starts
# the leading fields of item and attempt events, as the engine writes them (fixed order)
_ITEM = re.compile(rb'\{"seq":(\d+),"t":([-+.\deE]+),"kind":"((?:item|attempt)\.(?:start|end))",'
                   rb'"path":"([^"\\]*)"(?:,"index":(\d+))?(?:,"status":"(\w+)")?'
                   rb'(?:,"duration":[-+.\deE]+)?(?:,"attempts?":(\d+))?')


@functools.lru_cache(maxsize=64)
def _scan_pattern(kinds: tuple[str, ...] | None, exclude: tuple[str, ...], path: str | None,
                  iterations: bool) -> re.Pattern[bytes]:
    kind = rb"[^\"]*" if kinds is None else b"(?:" + b"|".join(re.escape(k.encode()) for k in kinds) + b")"
    if exclude:
        kind = b"(?!" + b"|".join(re.escape(k.encode()) for k in exclude) + b")" + kind
    pattern = rb'\{"seq":\d+,"t":[^,]*,"kind":"' + kind + b'"'
    if path is not None:
        pattern += rb',"path":"' + re.escape(orjson.dumps(path)[1:-1])
        pattern += (rb'(?:\.iteration_\d+)?"' if iterations else b'"')
    return re.compile(pattern)


def scan_pattern(kinds: Iterable[str] | None = None, exclude: Iterable[str] = (),
                 path: str | None = None, iterations: bool = False) -> re.Pattern[bytes]:
    """The start of the event lines :meth:`TraceIndex.scan` and :meth:`TraceStream.scan`
    parse (the engine writes ``seq``, ``t``, ``kind``, ``path`` first, in that order)."""
    return _scan_pattern(None if kinds is None else tuple(kinds), tuple(exclude), path, iterations)


class NoHeaderLine(TraceError):
    """The first line is no trace header line: a re-formatted trace (``jq .``, CRLF line
    ends), or no trace at all (:func:`~.trace.parse_trace` tells which)."""


def header_of(head: bytes, path: str | Path) -> dict[str, Any]:
    """The header of a trace from its first line (TraceError when it is not one)."""
    if not head.endswith(EVENTS_OPEN):
        raise NoHeaderLine(f"{path}: not a pflow-tui trace (no header line)")
    try:
        header = orjson.loads(head[: -len(EVENTS_OPEN)] + b"}")
    except orjson.JSONDecodeError:
        raise TraceError(f"{path}: the header is damaged") from None
    check_header(header, str(path))
    return header


def _checked_trace_file(path: str | Path) -> None:
    """TraceError unless ``path`` is a regular file within the trace size limit."""
    try:
        check_file(path, "trace")
    except FileRefused as exc:
        raise TraceError(str(exc)) from None


def canonical_bytes(path: str | Path) -> tuple[bytes, int]:
    """A re-formatted trace (pretty-printed, CRLF) laid out as pflow-tui writes traces, one
    event a line, and how many malformed events were left out (TraceError: no trace)."""
    trace = parse_trace(_read(path), Path(path))
    parts = [dumps(trace.header)[:-1] + EVENTS_OPEN]
    parts.append(b",\n".join(dumps(e) for e in trace.events))
    if not trace.truncated:
        parts.append(b"\n]," + dumps(trace.footer)[1:] + b"\n")
    return b"".join(parts), trace.skipped


def _read(path: str | Path) -> bytes:
    return read_limited(path, "trace", TraceError)


def hole(i: int, why: str = "malformed") -> Event:
    """What stands for event ``i`` when its line is malformed: positions stay those of the
    file (an event's ``seq`` is its position + 1), the app's model ignores the kind."""
    return {"seq": i + 1, "t": 0.0, "kind": "malformed", "path": "", "why": why}


def _head_ok(e: Event) -> bool:
    """Whether the leading fields read from a line's start (without parsing it all) are
    sound: what the app uses from a summary (the whole line is checked when it is parsed)."""
    seq, t, index, attempts = e["seq"], e["t"], e.get("index", 0), e.get("attempts", e.get("attempt", 1))
    return 1 <= seq <= MAX_SEQ and 0.0 <= t < float("inf") and e["kind"] in KNOWN_KINDS \
        and index <= MAX_INDEX and attempts <= MAX_ATTEMPTS \
        and e.get("status", "ok") in ("ok", "error", "skipped", "cancelled") and bool(e["path"])


class TraceIndex:
    """A trace file, indexed by event; ``index.events(a, b)`` parses events ``a..b-1``."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        _checked_trace_file(path)  # a regular file, within the limit: never a FIFO, /dev/zero
        try:
            with open(self.path, "rb") as f:
                self._map: Any = mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ) if f.seek(0, 2) else b""
        except OSError as exc:
            raise TraceError(f"{path}: cannot read ({exc.strerror})") from None
        self._bad: set[int] = set()  # events found malformed when decoded (holes: see hole())
        self._skipped_before = 0  # malformed events a re-formatted trace lost when laid out again
        self.reformatted = False  # pretty-printed or CRLF: read whole and laid out again in memory
        data = self._map
        newline = data.find(b"\n")
        try:
            self.header: dict[str, Any] = header_of(data[: newline + 1] if newline >= 0 else data[:], path)
        except NoHeaderLine:
            self._map, self._skipped_before = canonical_bytes(path)  # (TraceError: no trace)
            self.reformatted = True
            data = self._map
            newline = data.find(b"\n")
            self.header = header_of(data[: newline + 1], path)
        self.starts, self.ends = array("q"), array("q")  # event i: data[starts[i]:ends[i]]
        self._footer_at = -1  # where the footer object starts; -1: the run never wrote it
        self._footer: dict[str, Any] | None = None
        self._status = "interrupted"
        self._index(newline + 1)
        self._cache: OrderedDict[int, Event] = OrderedDict()
        self._big: OrderedDict[int, Event] = OrderedDict()
        self._big_size = 0  # bytes of the lines of the events in _big
        self._seen = 0  # events 0.._seen-1 went through summaries(): the ones :meth:`find` seeks are noted
        self._noted: dict[str, array] = {"node": array("q"), "failure": array("q")}
        self._drop_ignored()

    @property
    def skipped(self) -> int:
        """Malformed events found so far (events are checked as they are decoded: the
        count grows as a replay reads on; :meth:`check_all` finds them all)."""
        return len(self._bad) + self._skipped_before

    def check_all(self) -> int:
        """Decode and check every event (diff, export and rerun read them all anyway);
        returns :attr:`skipped`."""
        for a in range(0, len(self), 20_000):
            self.events(a, a + 20_000)
        return self.skipped

    def _drop_ignored(self) -> None:
        """Take the lines of ignored kinds (a ``seal``) out of the index: they are no
        event, and events keep their positions (seq - 1). Found with a search of the
        mapped bytes, then checked by parsing each line found (they are few)."""
        data, starts, ends = self._map, self.starts, self.ends
        if not starts:
            return
        drop: list[int] = []
        for kind in IGNORED_KINDS:
            needle = b'"kind":' + orjson.dumps(kind)
            at = data.find(needle, starts[0], ends[-1])
            while at >= 0:
                i = bisect_right(starts, at) - 1
                if i >= 0 and at < ends[i]:
                    try:
                        e = orjson.loads(data[starts[i]: ends[i]])
                    except orjson.JSONDecodeError:
                        e = None
                    if isinstance(e, dict) and e.get("kind") == kind:
                        drop.append(i)
                    at = data.find(needle, max(ends[i], at + 1), ends[-1])
                else:
                    at = data.find(needle, at + 1, ends[-1])
        if drop:
            gone = set(drop)
            keep = [i for i in range(len(starts)) if i not in gone]
            self.starts = array("q", (starts[i] for i in keep))
            self.ends = array("q", (ends[i] for i in keep))

    def _check(self, i: int, e: Any) -> Event:
        """Event ``i`` as decoded, if sound; else its hole (counted)."""
        why = check_event(e)
        if why is None:
            return e
        self._bad.add(i)
        return hole(i, why)

    def _index(self, pos: int) -> None:
        """Find every event line. Event lines end with ``,`` except the last one, which the
        footer line (``],{...}``) follows; a file cut short may end in a partial line."""
        data, starts, ends = self._map, self.starts, self.ends
        size = len(data)
        foot = data.rfind(b"\n],")
        stop = foot + 1 if foot >= pos - 1 else size
        if foot >= pos - 1 and (data[max(foot, size - 2):] == b"}\n" or self._parses(foot + 3)):
            self._footer_at = foot + 3  # the footer is one line: cut short, it is no footer
            m = _STATUS.match(data, foot + 3)
            self._status = m.group(1).decode() if m else "interrupted"
        while pos < stop:
            end = min(stop, pos + CHUNK)
            if end < stop:
                nl = data.rfind(b"\n", pos, end)
                end = nl + 1 if nl >= pos else data.find(b"\n", end) + 1 or stop
            lengths = [len(line) + 1 for line in data[pos:end].split(b"\n")]
            if data[end - 1: end] == b"\n":
                lengths.pop()  # split() gives an empty last piece after a final newline
            offsets = list(accumulate(lengths, initial=pos))
            starts.extend(offsets[:-1])
            ends.extend(o - 2 for o in offsets[1:])  # drop ",\n"
            pos = end
        limit = stop
        while starts:  # the last event line has no comma; in a file cut short it may be half one
            last = len(starts) - 1
            line = data[starts[last]: limit].rstrip(b"\n")
            if not line.strip():  # no event at all: "[\n\n]," (a run that wrote none)
                limit = starts.pop()
                ends.pop()
                continue
            ends[last] = starts[last] + len(line) - (1 if line.endswith(b",") else 0)
            if self._footer_at >= 0:
                return
            try:
                orjson.loads(data[starts[last]: ends[last]])
                return
            except orjson.JSONDecodeError:
                limit = starts.pop()
                ends.pop()

    def _parses(self, at: int) -> bool:
        """Whether the footer from ``at`` is whole (only asked when its newline is missing)."""
        try:
            self._footer = orjson.loads(b"{" + self._map[at:].rstrip())
        except orjson.JSONDecodeError:
            return False
        return True

    # --- reading ---------------------------------------------------------------------------

    def __len__(self) -> int:
        return len(self.starts)

    @property
    def truncated(self) -> bool:
        """The run did not finish writing its trace (crash, kill -9)."""
        return self._footer_at < 0

    @property
    def status(self) -> str:
        """ok, failed or interrupted (a trace cut short is interrupted)."""
        return self._status

    @property
    def footer(self) -> dict[str, Any]:
        """Status, outputs, final store and error (parsed when first asked: it can be big)."""
        if self._footer is None:
            self._footer = {}
            if self._footer_at >= 0:
                with contextlib.suppress(orjson.JSONDecodeError):
                    self._footer = orjson.loads(b"{" + self._map[self._footer_at:].rstrip())
            self._footer = sound_footer(self._footer)
        return self._footer

    def events(self, a: int, b: int) -> list[Event]:
        """Events ``a`` to ``b - 1`` (0-based), parsed in one call."""
        a, b = max(0, a), min(b, len(self.starts))
        if a >= b:
            return []
        data = self._map[self.starts[a]: self.ends[b - 1]]
        try:
            found = orjson.loads(b"[" + data + b"]")
        except orjson.JSONDecodeError:  # a damaged line inside: one by one
            found = None
        if found is not None and len(found) > b - a:  # seal lines lie between (not indexed)
            found = [e for e in found if not (isinstance(e, dict) and e.get("kind") in IGNORED_KINDS)]
        if found is None or len(found) != b - a:  # (a line holding two values: one by one too)
            found = []
            for i in range(a, b):
                try:
                    found.append(orjson.loads(self._map[self.starts[i]: self.ends[i]]))
                except orjson.JSONDecodeError:
                    found.append(None)
        check = check_event
        for j, e in enumerate(found):
            if check(e) is not None:
                found[j] = self._check(a + j, e)
        return found

    def summaries(self, a: int, b: int) -> list[Event]:
        """Events ``a`` to ``b - 1`` for building a view model: item and attempt events come
        as their leading fields only (a fraction of the parsing); the rest in full. Node
        events and failures read for the first time are noted for :meth:`find`."""
        data, starts, ends = self._map, self.starts, self.ends
        match = _ITEM.match
        out: list[Event] = []
        append = out.append
        seen, nodes, failures = self._seen, self._noted["node"], self._noted["failure"]
        a, b = max(0, a), min(b, len(starts))
        end_status, inf = _END_STATUS, float("inf")
        for i in range(a, b):
            m = match(data, starts[i], ends[i])
            if m is not None and data[ends[i] - 1] == 125:  # the leading fields of an item or
                seq, t, kind, path, index, status, attempts = m.groups()  # attempt event, if sound
                try:
                    e = {"seq": int(seq), "t": float(t), "kind": kind.decode(), "path": path.decode()}
                except (ValueError, UnicodeDecodeError):
                    e = None
                if e is not None and e["seq"] <= MAX_SEQ and 0.0 <= e["t"] < inf and path \
                        and (status is None or status in end_status):
                    if index is not None:
                        e["index"] = int(index)
                    if status is not None:
                        e["status"] = status.decode()
                    if attempts is not None:
                        e["attempts" if kind == b"item.end" else "attempt"] = int(attempts)
                    if e.get("index", 0) <= MAX_INDEX and (attempts is None or int(attempts) <= MAX_ATTEMPTS):
                        append(e)
                        if status == b"error" and i >= seen and kind.startswith(b"item."):
                            failures.append(i)
                        continue
            if ends[i] - starts[i] > BIG_LINE:
                e = self._light(starts[i], ends[i])
                if e.get("kind") == "malformed":
                    self._bad.add(i)
                    e = hole(i, e["why"])
            else:
                try:
                    e = orjson.loads(data[starts[i]: ends[i]])
                except orjson.JSONDecodeError:
                    e = None
                e = self._check(i, e)
            append(e)
            if i >= seen:
                kind = e["kind"]
                if kind.startswith("node."):
                    nodes.append(i)
                if e.get("status") == "error" and not kind.startswith("attempt."):
                    failures.append(i)
        if a <= seen < b:
            self._seen = b
        return out

    def _light(self, start: int, end: int) -> Event:
        """A big event (a node whose params or outputs hold megabytes) without its payload:
        the leading fields, and a node.start's ``batch`` (written last). A line whose
        leading fields are not sound: a hole (see :func:`hole`, whose ``why`` says why)."""
        data = self._map
        m = _HEAD.match(data, start, end)
        if m is None:
            try:
                e = orjson.loads(data[start:end])
            except orjson.JSONDecodeError:
                e = None
            why = check_event(e)
            return e if why is None else hole(bisect_right(self.starts, start) - 1, why)
        seq, t, kind, path, node, type_, status = m.groups()
        try:
            e: Event = {"seq": int(seq), "t": float(t), "kind": kind.decode(), "path": path.decode()}
        except (ValueError, UnicodeDecodeError):
            return hole(bisect_right(self.starts, start) - 1, "leading fields")
        if not _head_ok(e):
            return hole(bisect_right(self.starts, start) - 1, "leading fields")
        if node is not None:
            e["node"] = node.decode(errors="replace")
        if type_ is not None:
            e["type"] = type_.decode(errors="replace")
        if status is not None:
            e["status"] = status.decode()
        if kind == b"node.start":
            at = data.rfind(b',"batch":{', start, end)
            if at >= 0:
                with contextlib.suppress(orjson.JSONDecodeError):
                    batch = orjson.loads(data[at + 9: end - 1])
                    if check_event({**e, "node": "n", "type": "t", "batch": batch,
                                    "path": "f.n"}) is None:
                        e["batch"] = batch
        elif kind == b"item.start" and (lm := _LABEL.match(data, m.end(), end)) is not None:
            index = int(lm.group(1))  # (the engine writes the label before the big item)
            if index <= MAX_INDEX:
                e["index"] = index
            with contextlib.suppress(orjson.JSONDecodeError):
                label = orjson.loads(lm.group(2))
                if isinstance(label, str):
                    e["label"] = label
        return e

    def find(self, start: int, step: int, kind: str) -> int | None:
        """The index of the next (step 1) or previous (step -1) event of ``kind`` (node,
        item or failure) from event ``start``: among the node events and failures noted
        as :meth:`summaries` read them, else from the raw lines."""
        noted = self._noted.get(kind)
        if noted is not None:
            if step > 0:
                j = bisect_right(noted, start)
                if j < len(noted):
                    return noted[j]
                start = max(start, self._seen - 1)  # none among the events read: look further
            elif start <= self._seen:
                j = bisect_left(noted, start)
                return noted[j - 1] if j else None
        return self._scan(start, step, kind)

    def _scan(self, start: int, step: int, kind: str) -> int | None:
        """:meth:`find` on the raw lines: a search of the mapped bytes, then a look at the
        leading fields of the line each hit is in."""
        needle = _FIND[kind]
        data, starts, ends = self._map, self.starts, self.ends
        i = start + (1 if step > 0 else -1)
        while 0 <= i < len(starts):
            if step > 0:
                at = data.find(needle, starts[i], ends[-1])
            else:
                at = data.rfind(needle, starts[0], ends[i])
            if at < 0:
                return None
            i = bisect_right(starts, at) - 1
            head = data[starts[i]: min(ends[i], starts[i] + 240)]
            if needle in head and (kind != "failure" or b'"kind":"attempt.' not in head):
                return i
            i += 1 if step > 0 else -1
        return None

    def mentions(self, path: str) -> bool:
        """Whether any event is at ``path`` (one search of the raw bytes)."""
        return self._map.find(b'"path":' + orjson.dumps(path)) >= 0

    def first_at(self, kind: str, path: str) -> Event | None:
        """The first event of ``kind`` (e.g. ``node.start``) at ``path``, or None; one scan
        of the raw bytes (the engine writes ``seq``, ``t``, ``kind``, ``path`` first)."""
        needle = b'"kind":' + orjson.dumps(kind) + b',"path":' + orjson.dumps(path) + b","
        data = self._map
        at = data.find(needle)
        if at < 0 or (self._footer_at >= 0 and at >= self._footer_at):
            return None
        start = data.rfind(b"\n", 0, at) + 1
        end = data.find(b"\n", at)
        line = data[start: end if end >= 0 else len(data)].rstrip(b",")
        try:
            found = orjson.loads(line)
        except orjson.JSONDecodeError:
            return None
        return found if check_event(found) is None else None

    def scan(self, kinds: Iterable[str] | None = None, *, start: int = 0, exclude: Iterable[str] = (),
             path: str | None = None, iterations: bool = False) -> Iterator[tuple[int, Event]]:
        """(the index after it, event) of the events from index ``start`` on, of ``kinds``
        (None: any) but none of ``exclude`` (kinds, or prefixes such as ``"item."``), at
        ``path`` (with ``iterations``: at its ``.iteration_<i>`` too) when given. Only the
        lines whose leading fields match are parsed."""
        return self._matching(start, scan_pattern(kinds, exclude, path, iterations))

    def _matching(self, start: int, pattern: re.Pattern[bytes]) -> Iterator[tuple[int, Event]]:
        """(the index after it, event) of the events from index ``start`` on whose line
        ``pattern`` matches at its start; only those are parsed."""
        data, starts, ends = self._map, self.starts, self.ends
        match, loads = pattern.match, orjson.loads
        for i in range(max(0, start), len(starts)):
            if match(data, starts[i], ends[i]) is not None:
                try:
                    e = loads(data[starts[i]: ends[i]])
                except orjson.JSONDecodeError:
                    e = None
                if check_event(e) is None:
                    yield i + 1, e
                else:
                    self._bad.add(i)

    def ends_by_path(self, digest_text: Callable[[bytes], Any], digest: Callable[[Any], Any]
                     ) -> tuple[dict[str, PathEnd], int]:
        """Where each run, node, item and branch path ended: one :data:`PathEnd` per path
        without its first segment (the flow's name), in the order the paths first appear;
        and how many malformed events the scan met. Outputs are digested from their JSON
        text as written (``digest_text``) without parsing them, or from their value
        (``digest``) when a line had to be parsed; a failure's line is parsed whole."""
        recs: dict[str, PathEnd] = {}
        skipped = 0
        data = self._map
        starts, ends = self.starts, self.ends
        head, other, kinds = _SPAN.match, _OTHER.match, _RAW_SPANS
        loads, decode_error = orjson.loads, orjson.JSONDecodeError
        for i in range(len(starts)):
            s, e = starts[i], ends[i]
            m = head(data, s, e)
            if m is None:
                if other(data, s, e) is not None:
                    continue  # an event of another kind
                try:  # not laid out as the engine writes it: parse the whole event
                    event = loads(data[s:e])
                except decode_error:
                    event = None
                if check_event(event) is None:
                    _take(recs, event, i, digest)
                elif check_event(event) != "ignored":
                    skipped += 1
                continue
            group, phase, raw_path = m.groups()
            try:
                path = raw_path.decode()
            except UnicodeDecodeError:  # not UTF-8: no event (JSON text is UTF-8)
                skipped += 1
                continue
            if phase == b"start":
                if path not in recs:
                    recs[path] = [kinds[group], UNFINISHED, None, None, None, i, False]
                continue
            line = data[s:e]
            cached = line.endswith(_CACHED)
            if cached:
                line = line[: -len(_CACHED)] + b"}"
            cut = line.find(_OUT_KEY, m.end() - s)
            try:
                lead_fields = loads(line[:cut] + b"}") if cut >= 0 else loads(line)
            except decode_error:
                lead_fields = None
            if lead_fields is None or check_event(lead_fields) is not None or (
                    cut >= 0 and (lead_fields.get("status") == "error" or "error" in lead_fields)):
                try:  # a failure: parse it all, for the error (and an odd line: to be sure)
                    event = loads(data[s:e])
                except decode_error:
                    event = None
                if check_event(event) is None:
                    _take(recs, event, i, digest)
                else:
                    skipped += 1
                continue
            status = lead_fields.get("status")
            if cut < 0:
                outputs, error = None, error_message(lead_fields)
            else:
                outputs, error = digest_text(line[cut + len(_OUT_KEY): -1]), None
            rec = recs.get(path)
            if rec is None:
                recs[path] = rec = [kinds[group], None, None, None, None, i, False]
            rec[1] = status if isinstance(status, str) else "?"
            duration = lead_fields.get("duration")
            rec[2] = float(duration) if isinstance(duration, (int, float)) else None
            rec[3], rec[4], rec[5], rec[6] = outputs, error, i, cached
        return recs, skipped

    def ready(self, i: int) -> bool:
        """Whether event ``i`` comes at once (not a big line still to parse)."""
        return self.ends[i] - self.starts[i] <= BIG_LINE or i in self._big

    def head(self, i: int) -> Event:
        """Event ``i``'s leading fields (a big line's payload is not parsed)."""
        return self._light(self.starts[i], self.ends[i])

    def event(self, i: int) -> Event:
        """Event ``i`` (0-based), with small caches for what panes show: the last 4,096
        events read, and the big ones (slow to parse) read last, up to BIG_CACHE bytes."""
        size = self.ends[i] - self.starts[i]
        cache = self._big if size > BIG_LINE else self._cache
        found = cache.get(i)
        if found is not None:
            if size > BIG_LINE:
                cache.move_to_end(i)
            return found
        try:
            found = orjson.loads(self._map[self.starts[i]: self.ends[i]])
        except orjson.JSONDecodeError:
            found = None
        found = cache[i] = self._check(i, found)
        if size <= BIG_LINE:
            if len(cache) > 4096:
                cache.popitem(last=False)
            return found
        self._big_size += size
        while self._big_size > BIG_CACHE and len(cache) > 1:
            j, _ = cache.popitem(last=False)
            self._big_size -= self.ends[j] - self.starts[j]
        return found

    def __iter__(self) -> Iterator[Event]:
        """Every sound event, in order (malformed ones are left out and counted)."""
        step = 20_000
        for a in range(0, len(self), step):
            for e in self.events(a, a + step):
                if e["kind"] != "malformed":  # (no sound event has this kind)
                    yield e


class TraceStream:
    """A trace file read forward from any point, line by line: nothing is indexed or kept,
    so memory does not grow with the trace (a re-run reads its recorded run this way).

    Positions are byte offsets; :meth:`matching` yields the position after each event.
    """

    def __init__(self, path: str | Path, end: int | None = None) -> None:
        self.path = Path(path)
        self.end = end  # read no event line that ends after this byte (the signed part)
        _checked_trace_file(path)  # a regular file, within the limit: never a FIFO, /dev/zero
        try:
            with open(self.path, "rb") as f:
                head = f.readline(1 << 26)
        except OSError as exc:
            raise TraceError(f"{path}: cannot read ({exc.strerror})") from None
        self.header = header_of(head, path)
        self._start = len(head)
        self.skipped = 0  # malformed event lines met by matching()

    def scan(self, kinds: Iterable[str] | None = None, *, start: int = 0, exclude: Iterable[str] = (),
             path: str | None = None, iterations: bool = False) -> Iterator[tuple[int, Event]]:
        """(the position after it, event) of the events from byte ``start`` on (0: the
        first); the filters are :meth:`TraceIndex.scan`'s."""
        return self._matching(start, scan_pattern(kinds, exclude, path, iterations))

    def _matching(self, start: int, pattern: re.Pattern[bytes]) -> Iterator[tuple[int, Event]]:
        """(the position after it, event) of the event lines from byte ``start`` on (0: the
        first) whose line ``pattern`` matches at its start; only those are parsed. A line cut
        short (a run that was killed) ends them."""
        pos = max(start, self._start)
        match, loads, end = pattern.match, orjson.loads, self.end
        with open(self.path, "rb") as f:
            f.seek(pos)
            for line in f:
                if end is not None and pos + len(line.rstrip(b",\n")) > end:
                    return
                pos += len(line)
                if match(line) is None:
                    if _LEAD.match(line) is None and line.strip(b",\r\n") \
                            and not line.startswith(b"],"):  # not an event's start, nor the footer
                        self._count_odd(line)
                    continue
                try:
                    event = loads(line.rstrip(b",\n"))
                except orjson.JSONDecodeError:
                    if not line.endswith(b"\n"):
                        return  # the last line of a run that was killed: cut short
                    event = None
                why = check_event(event)
                if why is None:
                    yield pos, event
                elif why != "ignored":
                    self.skipped += 1


    def _count_odd(self, line: bytes) -> None:
        """A line not laid out as the engine writes events: counted when it is malformed
        (a ``seal`` is not; nor the last line of a file cut short)."""
        if not line.endswith(b"\n"):
            return
        try:
            event = orjson.loads(line.rstrip(b",\r\n"))
        except orjson.JSONDecodeError:
            event = None
        why = check_event(event)
        if why is not None and why != "ignored":
            self.skipped += 1


# --- where each path ended (what diff compares) ------------------------------------------------

#: what :meth:`TraceIndex.ends_by_path` keeps of a path:
#: [kind (run, node, item, branch), status (``unfinished``: started, never ended), duration,
#: outputs digest or None, error message, index of its end event (else start), cached]
PathEnd = list
UNFINISHED = "unfinished"
_SPANS = {"run": "run", "node": "node", "item": "item", "branch": "branch"}
_RAW_SPANS = {k.encode(): v for k, v in _SPANS.items()}
_OUT_KEY = b',"outputs":'
_CACHED = b',"cached":true}'  # the last field of a restored node's or item's end event
# the leading fields of every event as the engine writes them (seq, t, kind, path); the
# path is captured without its first segment (the flow's name)
_OTHER = re.compile(rb'\{"seq":\d+,"t":[^,]*,"kind":"(?!(?:run|node|item|branch)\.(?:start|end)")')
_SPAN = re.compile(rb'\{"seq":\d+,"t":[^,]*,"kind":"(run|node|item|branch)\.(start|end)",'
                   rb'"path":"[^".\\]*\.?([^"\\]*)"')


def error_message(event: Event) -> str | None:
    """The message of an event's ``error`` (None without one)."""
    error = event.get("error")
    if isinstance(error, dict):
        message = error.get("message")
        return message if isinstance(message, str) else (None if message is None else str(message))
    return None if error is None else str(error)


def ends_of_events(events: Iterable[Any], digest: Callable[[Any], Any]) -> dict[str, PathEnd]:
    """:meth:`TraceIndex.ends_by_path` of events in memory (``digest``: of outputs)."""
    recs: dict[str, PathEnd] = {}
    for i, event in enumerate(events):
        if isinstance(event, dict):
            _take(recs, event, i, digest)
    return recs


def _take(recs: dict[str, PathEnd], event: Event, i: int, digest: Callable[[Any], Any]) -> None:
    """Record one parsed event (the slow path: events in memory, or odd lines)."""
    group, _, phase = str(event.get("kind", "")).partition(".")
    path = event.get("path")
    if group not in _SPANS or phase not in ("start", "end") or not isinstance(path, str):
        return
    rel = path.partition(".")[2]
    rec = recs.get(rel)
    if phase == "start":
        if rec is None:
            recs[rel] = [_SPANS[group], UNFINISHED, None, None, None, i, False]
        return
    if rec is None:
        recs[rel] = rec = [_SPANS[group], None, None, None, None, i, False]
    status = event.get("status")
    duration = event.get("duration")
    rec[1] = status if isinstance(status, str) else "?"
    rec[2] = float(duration) if isinstance(duration, (int, float)) else None
    rec[3] = digest(event["outputs"]) if "outputs" in event else None
    rec[4] = error_message(event)
    rec[5] = i
    rec[6] = event.get("cached") is True
