"""The run's view state, built from events alone (no Textual here).

``RunModel.apply(events)`` is the reducer every pane reads from. It is fed by a live
run or by a trace, so the panes cannot tell the two apart. Per-iteration state lives
in flat arrays, so a 100,000-item batch costs a few bytes per item; full event dicts
are fetched by ``seq`` only for what is on screen. ``RunModel.rewind(k)`` takes the model
back to the state after event ``k`` (a replay's cursor), equal to applying ``events[:k]``.
"""

from __future__ import annotations

import math
import re
from array import array
from bisect import bisect_left, bisect_right
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from itertools import chain
from typing import Any

from ..engine import events as ev
from ..engine.aggregates import nearest_rank
from ..engine.events import Event
from ..engine.ir.load import normalize
from ..engine.labels import item_label, one_line
from ..engine.paths import BRANCH, ITERATION, iteration_index
from ..engine.replay import LazyEvents

# Item/node status codes (bytes in ItemTable.status)
PENDING, RUNNING, OK, ERROR, CANCELLED, SKIPPED = range(6)
STATUS_NAMES = ("pending", "running", "ok", "error", "cancelled", "skipped")
STATUS_CODES = {name: code for code, name in enumerate(STATUS_NAMES)}
NAN = math.nan


@dataclass(frozen=True, slots=True)
class GraphEdge:
    src: str
    dst: str
    action: str = "default"


@dataclass
class Graph:
    """The flow's shape, read from its IR (a trace header holds the same IR).

    ``children`` are the graphs of its nested flows (workflow nodes), ``fanouts`` the
    branch start nodes of each fan-out node, in edge order, ``groups`` the name of each
    fan-out node's parallel group.
    """

    name: str
    nodes: dict[str, dict[str, Any]]  # id -> the IR node
    edges: list[GraphEdge]
    start: str
    children: dict[str, Graph] = field(default_factory=dict)
    fanouts: dict[str, list[str]] = field(default_factory=dict)
    inputs: dict[str, Any] = field(default_factory=dict)  # the declared inputs (IR)
    outputs: dict[str, Any] = field(default_factory=dict)  # the declared outputs (IR)
    groups: dict[str, str] = field(default_factory=dict)

    @classmethod
    def from_ir(cls, ir: dict[str, Any], name: str,
                children: dict[str, Any] | None = None) -> Graph:
        """``children``: {workflow node id: {"flow": child IR, "children": {...}}} (as in a
        trace header); inline child flows are read from the node's ``workflow_ir``."""
        ir = normalize(ir) if isinstance(ir, dict) else {}
        nodes = {n["id"]: n for n in ir.get("nodes", []) if isinstance(n, dict) and "id" in n}
        edges = [GraphEdge(e.get("from", e.get("source")), e.get("to", e.get("target")),
                           e.get("action", "default"))
                 for e in ir.get("edges", []) if isinstance(e, dict)]
        start = ir.get("start_node") or next(iter(nodes), "")
        fanouts: dict[str, list[str]] = {}
        groups: dict[str, str] = {}
        for e in ir.get("edges", []):
            if isinstance(e, dict) and isinstance(e.get("parallel_group"), str):
                fanouts.setdefault(e.get("from", ""), []).append(e.get("to", ""))
                groups.setdefault(e.get("from", ""), e["parallel_group"])
        declared = {key: value if isinstance(value := ir.get(key), dict) else {}
                    for key in ("inputs", "outputs")}
        graph = cls(name, nodes, edges, start, fanouts=fanouts, groups=groups, **declared)
        children = children or {}
        for nid, node in nodes.items():
            if node.get("type") != "workflow" and nid not in children:
                continue
            known = children.get(nid) or {}
            child_ir = known.get("flow") or (node.get("params") or {}).get("workflow_ir")
            if isinstance(child_ir, dict):
                graph.children[nid] = cls.from_ir(child_ir, nid, known.get("children"))
        return graph

    def node_type(self, node_id: str) -> str:
        return str(self.nodes.get(node_id, {}).get("type", "?"))

    def is_batch(self, node_id: str) -> bool:
        return isinstance(self.nodes.get(node_id, {}).get("batch"), dict)

    def at(self, key: tuple[str, ...]) -> Graph | None:
        """The graph of the nested flow at ``key`` (workflow node ids from the top)."""
        graph: Graph | None = self
        for nid in key:
            graph = graph.children.get(nid) if graph is not None else None
        return graph


_INDEXED = re.compile(r"(branch|iteration)_\d+")
LABEL_CACHE = 100_000  # item labels kept (a few MB); more are read again from their events


def graph_key(path: str) -> tuple[tuple[str, ...], str]:
    """Which graph a node visit belongs to, and which node it is.

    ``flow.square`` and ``flow.fan.branch_1.analyze`` are nodes of the top graph (key
    ``()``); ``flow.per_file.iteration_3.read`` and ``flow.per_file.read`` are node
    ``read`` of the flow nested in ``per_file`` (key ``("per_file",)``).
    """
    segs = path.split(".")[1:]
    key: list[str] = []
    i = 0
    while i < len(segs) - 1:
        nxt = segs[i + 1]
        if nxt.startswith(BRANCH) and _INDEXED.fullmatch(nxt):
            i += 2
        elif nxt.startswith(ITERATION) and _INDEXED.fullmatch(nxt):
            key.append(segs[i].partition("#")[0])
            i += 2
        else:
            key.append(segs[i].partition("#")[0])
            i += 1
    return tuple(key), (segs[-1].partition("#")[0] if segs else "")


ITEM_FLOOR = 1 << 16  # items a replay's tables may hold beyond its number of events (see RunModel)


class ItemTable:
    """Per-iteration state of one batch node (or of a fan-out's branches), in flat arrays
    indexed by item index.

    ``started`` and ``ended`` list the items in the order they started and ended, and the
    ``retry_*`` arrays log the attempts after the first: with them, :meth:`rewind` puts the
    table back as it was after an earlier event by undoing only what happened since.

    An item that waits for a rate limit or a process before its first attempt is queued
    (PENDING, no ``t_start``) until the wait ends: ``t_start`` is when it began to run.
    ``waits`` (allocated at the first such wait) holds the seqs of that wait's start and end.
    """

    __slots__ = ("attempts", "count", "declared", "done", "end_seq", "ended", "failed", "failures",
                 "in_order", "last_seq", "retry_at", "retry_item", "retry_number", "retry_seq",
                 "retry_t", "running", "start_seq", "started", "status", "t_end", "t_start", "waits")

    def __init__(self, count: int) -> None:
        self.count = self.declared = count  # declared: the size the node said it has (0: unknown)
        self.status = bytearray(count)
        self.t_start = array("d", [NAN]) * count
        self.t_end = array("d", [NAN]) * count
        self.retry_t = array("d", [NAN]) * count  # start of the last attempt, if it retried
        self.attempts = array("H", [0]) * count  # ended: how many; running: the retry's number, or 0
        self.start_seq = array("q", [0]) * count
        self.end_seq = array("q", [0]) * count
        self.done = self.failed = self.running = 0
        self.failures: list[int] = []  # indexes of failed items, in index order
        self.started = array("I")  # item indexes in the order they started
        self.ended = array("I")  # ... and in the order they ended
        self.in_order = 0  # started[:in_order] is range(in_order): items start in index order
        self.retry_seq, self.retry_item = array("q"), array("I")  # attempts after the first
        self.retry_number, self.retry_at = array("H"), array("d")
        self.last_seq = 0  # the last event that changed the table
        self.waits: tuple[array, array] | None = None  # (wait.start seqs, wait.end seqs)

    def wait(self, i: int, seq: int) -> None:
        """Item ``i`` waits before its first attempt: queued again."""
        if self.status[i] != RUNNING:
            return
        if self.waits is None:
            self.waits = (array("q", [0]) * self.count, array("q", [0]) * self.count)
        self.waits[0][i] = seq
        self.status[i] = PENDING
        self.running -= 1
        self.t_start[i] = NAN
        self.last_seq = seq

    def ready(self, i: int, t: float, seq: int) -> None:
        """Item ``i``'s wait ended: it runs from ``t``."""
        if self.waits is None or not self.waits[0][i] or self.status[i] != PENDING:
            return
        self.waits[1][i] = seq
        self.status[i] = RUNNING
        self.running += 1
        self.t_start[i] = t
        self.last_seq = seq

    def grow(self, count: int) -> None:
        """Make room for ``count`` items (a batch whose size was not known when it started)."""
        more = count - self.count
        if more <= 0:
            return
        self.status.extend(bytes(more))
        for name in ("t_start", "t_end", "retry_t"):
            getattr(self, name).extend(array("d", [NAN]) * more)
        self.attempts.extend(array("H", [0]) * more)
        self.start_seq.extend(array("q", [0]) * more)
        self.end_seq.extend(array("q", [0]) * more)
        if self.waits is not None:
            for seqs in self.waits:
                seqs.extend(array("q", [0]) * more)
        self.count = count

    def start(self, i: int, t: float, seq: int) -> None:
        """Item ``i`` started."""
        self.status[i] = RUNNING
        self.t_start[i] = t
        self.start_seq[i] = seq
        self.running += 1
        if i == self.in_order == len(self.started):
            self.in_order += 1
        self.started.append(i)
        self.last_seq = seq

    def end(self, i: int, code: int, t: float, seq: int, attempts: int) -> None:
        """Item ``i`` ended with status ``code``."""
        if self.status[i] == RUNNING:
            self.running -= 1
        self.status[i] = code
        self.t_end[i] = t
        self.end_seq[i] = seq
        self.attempts[i] = attempts
        if code == OK:
            self.done += 1
        elif code == ERROR:
            self.failed += 1
            self.failures.append(i)
            if len(self.failures) > 1 and self.failures[-2] > i:
                self.failures.sort()
        self.ended.append(i)
        self.last_seq = seq

    def retry(self, i: int, attempt: int, t: float, seq: int) -> None:
        """Attempt number ``attempt`` (2 or more) of item ``i`` started."""
        self.attempts[i] = attempt
        self.retry_t[i] = t
        self.retry_seq.append(seq)
        self.retry_item.append(i)
        self.retry_number.append(attempt)
        self.retry_at.append(t)
        self.last_seq = seq

    def rewind(self, k: int, time_of: Callable[[int], float] | None = None) -> None:
        """Undo what happened after event ``k``: the table as it was right after it.

        Only the items whose state changed since are looked at one by one, or, when they
        are many, the index range where the batch's progress front was (items start in
        about index order): below it nothing changed, above it nothing had started, and
        those parts are restored by slice assignments.
        """
        if self.last_seq <= k:
            return
        status, ss, es = self.status, self.start_seq, self.end_seq
        started, ended = self.started, self.ended
        ns = bisect_right(started, k, key=ss.__getitem__)
        ne = bisect_right(ended, k, key=es.__getitem__)
        nr = bisect_right(self.retry_seq, k)
        unended = ended[ne:]
        changed = len(started) - ns + len(unended)
        # the items from ``top`` on had not started by event k; from ``top_now`` on, nor since
        top = ns if ns <= self.in_order else max(started[:ns]) + 1
        top_now = len(started) if len(started) == self.in_order else max(started) + 1
        first_unstarted = ns if ns < self.in_order else min(started[ns:], default=top)
        low = min(first_unstarted, min(unended, default=top), top)  # the first item that changed
        lo = bisect_left(self.failures, low)
        if lo < len(self.failures):
            self.failures[lo:] = [i for i in self.failures[lo:] if 0 < es[i] <= k]
        if changed <= top - low:
            redo: Iterable[int] = chain(unended, started[ns:])
        else:
            redo = range(low, top)
            self._unstart(top, top_now)
        t_start, t_end, retry_t, attempts = self.t_start, self.t_end, self.retry_t, self.attempts
        running: set[int] = set()  # items running after event k whose attempts are to be redone
        for i in redo:
            if 0 < es[i] <= k:
                continue
            if 0 < ss[i] <= k:
                status[i] = RUNNING
                t_end[i] = NAN
                es[i] = 0
                running.add(i)
            else:
                status[i] = PENDING
                t_start[i] = t_end[i] = NAN
                ss[i] = es[i] = 0
            attempts[i] = 0
            retry_t[i] = NAN
        if len(self.retry_seq):
            self._redo_retries(k, nr, running)
        del started[ns:], ended[ne:]
        self.in_order = min(self.in_order, ns)
        if self.count > max(self.declared, top):  # it grew later (a batch of unknown size)
            self._shrink(max(self.declared, top))
        if self.waits is not None:
            self._rewind_waits(k, time_of)
        self.done, self.failed, self.running = status.count(OK), status.count(ERROR), status.count(RUNNING)
        self.last_seq = max(ss[started[-1]] if started else 0, es[ended[-1]] if ended else 0,
                            self.retry_seq[-1] if self.retry_seq else 0,
                            *(max(seqs, default=0) for seqs in self.waits or ()))

    def _rewind_waits(self, k: int, time_of: Callable[[int], float] | None) -> None:
        """Waits after event ``k`` undone (the rest of the table is rewound already): an item
        waiting at ``k`` is queued again; one whose wait began later runs since its start.
        ``time_of(seq)``: an event's time. Only tables that waited (rate limits, processes)."""
        assert self.waits is not None
        began, ended_at = self.waits
        ss, es = self.start_seq, self.end_seq
        for i in range(self.count):
            w = began[i]
            if not w:
                continue
            if not ss[i] or w > k:  # not started by k, or its wait began later
                began[i] = ended_at[i] = 0
                if ss[i] and not es[i]:  # running at k, since its start
                    self.status[i] = RUNNING
                    self.t_start[i] = time_of(ss[i]) if time_of is not None else NAN
            elif ended_at[i] > k:  # waiting at k
                ended_at[i] = 0
                if not es[i]:
                    self.status[i] = PENDING
                    self.t_start[i] = NAN

    def _shrink(self, count: int) -> None:
        """Back to ``count`` items (those after it have not started)."""
        for name in ("status", "t_start", "t_end", "retry_t", "attempts", "start_seq", "end_seq"):
            del getattr(self, name)[count:]
        for seqs in self.waits or ():
            del seqs[count:]
        self.count = count

    def _unstart(self, a: int, b: int) -> None:
        """Items ``a`` to ``b - 1`` back to pending (not started), at C speed."""
        n = b - a
        if n <= 0:
            return
        nan = array("d", [NAN]) * n
        zeros = array("q", [0]) * n
        self.status[a:b] = bytes(n)  # PENDING is 0
        self.t_start[a:b] = self.t_end[a:b] = self.retry_t[a:b] = nan
        self.attempts[a:b] = array("H", [0]) * n
        self.start_seq[a:b] = self.end_seq[a:b] = zeros

    def _redo_retries(self, k: int, nr: int, running: set[int]) -> None:
        """Attempts and retry times after event ``k`` of the items then running: ``running``
        (reset already) and the items whose retries after ``k`` are undone."""
        status, attempts, retry_t, items = self.status, self.attempts, self.retry_t, self.retry_item
        for j in range(nr, len(self.retry_seq)):
            i = items[j]
            if status[i] == RUNNING and i not in running:
                attempts[i] = 0
                retry_t[i] = NAN
                running.add(i)
        if running:
            since = min(self.start_seq[i] for i in running)
            for j in range(bisect_left(self.retry_seq, since), nr):
                i = items[j]
                if i in running:
                    attempts[i] = self.retry_number[j]
                    retry_t[i] = self.retry_at[j]
        del self.retry_seq[nr:], self.retry_item[nr:], self.retry_number[nr:], self.retry_at[nr:]

    def durations(self) -> list[float]:
        """Durations of finished items."""
        return [e - s for s, e in zip(self.t_start, self.t_end, strict=True) if e == e and s == s]


@dataclass
class NodeState:
    """One visit of a node."""

    id: str
    path: str
    type: str
    status: int = PENDING
    t_start: float = NAN
    t_end: float = NAN
    start_seq: int = 0
    end_seq: int = 0
    batch: dict[str, Any] | None = None
    items: ItemTable | None = None
    branches: ItemTable | None = None  # a fan-out node's parallel branches, in edge order
    branch_starts: list[str] = field(default_factory=list)
    wait_seq: int = 0  # a wait before its first attempt (rate limit, process): its start,
    ready_seq: int = 0  # its end,
    t_ready: float = NAN  # and when it began to run
    # the node's visit that was the latest before this one (top graph; undone by rewind)
    previous: NodeState | None = field(default=None, repr=False, compare=False)

    @property
    def status_name(self) -> str:
        return STATUS_NAMES[self.status]

    def duration(self, now: float) -> float | None:
        if self.t_start != self.t_start:
            return None
        end = self.t_end if self.t_end == self.t_end else now
        return end - self.t_start


@dataclass
class Changes:
    """What one ``apply`` (or ``rewind``) changed, so panes repaint only that."""

    nodes: set[str] = field(default_factory=set)  # node ids whose state changed
    items: set[str] = field(default_factory=set)  # node ids whose items changed
    new_nodes: list[str] = field(default_factory=list)  # paths of visits that started
    nested: set[tuple[str, ...]] = field(default_factory=set)  # nested graphs that changed
    gone: list[str] = field(default_factory=list)  # paths of visits undone (rewind), latest first
    events: int = 0
    run: bool = False
    clock: bool = False  # only time went on (running things grow)
    rewound: bool = False  # the model went back to an earlier event

    def __bool__(self) -> bool:
        return bool(self.nodes or self.items or self.events or self.run or self.nested
                    or self.clock or self.gone or self.rewound)

    def merge(self, other: Changes) -> None:
        """Add what ``other`` (a later apply) changed."""
        self.nodes |= other.nodes
        self.items |= other.items
        self.new_nodes += other.new_nodes
        self.nested |= other.nested
        self.gone += other.gone
        self.events = other.events or self.events
        self.run = self.run or other.run
        self.rewound = self.rewound or other.rewound


class RunModel:
    """Everything the panes show, kept up to date by :meth:`apply`."""

    def __init__(self, graph: Graph, events: Any = None) -> None:
        self.graph = graph
        self.events: Any = [] if events is None else events  # a list, or replay's LazyEvents
        self.visits: dict[str, NodeState] = {}  # path -> visit, in start order
        self.latest: dict[str, NodeState] = {}  # top-graph node id -> its latest visit
        self.last_started: NodeState | None = None  # the top-graph visit that started last
        self.nested: dict[tuple[tuple[str, ...], str], list[NodeState]] = {}  # runs in nested flows
        self.children: dict[str, list[str]] = {}  # parent path -> visit paths right under it
        self.status = "pending"  # pending | running | ok | error | cancelled
        self.t = 0.0
        self.error: dict[str, Any] | None = None
        self.outputs: dict[str, Any] = {}
        self.warnings = 0
        self.paused: Event | None = None  # the pause event, while the run is paused
        self.stepping: Event | None = None  # the ``resume`` of a step, until the run pauses again
        self.inputs: dict[str, Any] = {}  # the run's inputs (``run.start``)
        self.end_seq = 0  # the ``run.end`` event (read in full only when the run itself is shown)
        self.marks: list[Event] = []  # run-level events (start, end, pause, resume, warning)
        self.ended: list[NodeState] = []  # visits in the order they ended
        self.tables: list[NodeState] = []  # visits with items or branches
        self.waited: list[NodeState] = []  # visits that waited (rate limit, process) to start
        self._labels: dict[int, str] = {}  # item.start seq -> the item's label (as shown)
        # A replay's tables hold at most ITEM_FLOOR more items in all than its trace holds
        # events: a number in the file (a batch's count, an item's index) never sizes one
        # beyond that (a batch that failed fast still shows its items that never ran).
        # None: events made here (a live run), sizes as they say.
        self.item_cap: int | None = (len(self.events.index) + ITEM_FLOOR
                                     if isinstance(self.events, LazyEvents) else None)
        self.slots = 0  # items and branches in all tables

    # --- reading ---------------------------------------------------------------------------

    def event(self, seq: int) -> Event | None:
        """The event with this ``seq`` (1-based), if it has arrived."""
        return self.events[seq - 1] if 0 < seq <= len(self.events) else None

    def node(self, node_id: str) -> NodeState | None:
        return self.latest.get(node_id)

    def node_status(self, node_id: str) -> str:
        state = self.latest.get(node_id)
        return state.status_name if state else "pending"

    def item_event(self, node_id: str, index: int, end: bool = True) -> Event | None:
        """The end (or start) event of iteration ``index`` of a top-graph node."""
        return self.iteration_event(self.latest.get(node_id), index, end)

    def iteration_event(self, state: NodeState | None, index: int, end: bool = True) -> Event | None:
        """The end (or start) event of iteration ``index`` of a node visit."""
        if state is None or state.items is None or not 0 <= index < state.items.count:
            return None
        seq = (state.items.end_seq if end else state.items.start_seq)[index]
        return self.event(seq) if seq else None

    def item_label(self, state: NodeState | None, index: int) -> str:
        """The label of iteration ``index`` of a visit (``delta bad``), from its ``item.start``
        event: the label the engine wrote, else one derived from the item (a trace written
        before labels); ``""`` while the item has not started or when the event has neither."""
        items = state.items if state is not None else None
        if items is None or not 0 <= index < items.count:
            return ""
        seq = items.start_seq[index]
        if not seq:
            return ""
        label = self._labels.get(seq)
        if label is None:
            events = self.events
            ready = getattr(events, "ready", None)
            whole = ready is None or ready(seq - 1)
            event = (self.event(seq) if whole else events.head(seq - 1)) or {}
            raw = event.get("label")
            if raw.__class__ is str:
                label = one_line(raw)  # (a trace is untrusted: shown as one safe line)
            elif "item" in event:
                label = item_label(event["item"])
            else:
                return ""  # a big line not parsed yet, or no item at all
            if len(self._labels) > LABEL_CACHE:
                self._labels.clear()
            self._labels[seq] = label
        return label

    def item_name(self, state: NodeState | None, index: int) -> str:
        """The label to show beside ``#index``: ``""`` when it would only repeat the index
        (items ``0, 1, 2 ...``, objects whose ``id`` is their index)."""
        label = self.item_label(state, index)
        return "" if label == str(index) else label

    def has_names(self, state: NodeState | None, sample: int = 16) -> bool:
        """Whether the first items that started show a label (a batch of ``range(n)`` has none)."""
        items = state.items if state is not None else None
        if items is None:
            return False
        seen = 0
        for index in range(items.count):
            if items.start_seq[index]:
                if self.item_name(state, index):
                    return True
                seen += 1
                if seen >= sample:
                    break
        return False

    def labels_at(self, path: str) -> list[str]:
        """The labels of the iterations a path is in: ``f.square.iteration_3`` and
        ``f.per_file.iteration_3.read`` are in item 3 of their batch node's visit."""
        out: list[str] = []
        if f".{ITERATION}" not in path:
            return out
        steps = path.split(".")
        for i in range(1, len(steps)):
            index = iteration_index(steps[i])
            if index is not None:
                label = self.item_label(self.visits.get(".".join(steps[:i])), index)
                if label:
                    out.append(label)
        return out

    def failures(self) -> list[tuple[str, int | None]]:
        """Every failure in run order: (node id, item index or None for the node itself)."""
        out: list[tuple[str, int | None]] = []
        for state in self.visits.values():
            if state.items is not None and state.items.failures:
                out.extend((state.id, i) for i in sorted(state.items.failures))
            elif state.status == ERROR:
                out.append((state.id, None))
        return out

    # --- the reducer -----------------------------------------------------------------------

    def apply(self, batch: Iterable[Event]) -> Changes:
        changes = Changes()
        events = self.events
        e: Event | None = None
        for e in batch:
            events.append(e)
            kind = e["kind"]
            if kind == ev.ITEM_END or kind == ev.ITEM_START or kind == ev.ATTEMPT_START:
                self._item(e, kind, changes)
            elif kind == ev.NODE_START:
                self._node_start(e, changes)
            elif kind == ev.NODE_END:
                self._node_end(e, changes)
            elif kind == ev.BRANCH_START or kind == ev.BRANCH_END:
                self._branch(e, kind, changes)
            elif kind == ev.WAIT_START or kind == ev.WAIT_END:
                self._wait(e, kind, changes)
            elif kind == ev.RUN_END or kind == ev.RUN_START or kind == ev.WARNING or kind == ev.PAUSE \
                    or kind == ev.RESUME:
                self._mark(e)
                self.marks.append(e)
                changes.run = True
        if e is not None:
            self.t = max(self.t, e["t"])
        changes.events = len(events)
        return changes

    def _room(self, n: int) -> int:
        """How many of ``n`` more items the tables may take (see ``item_cap``)."""
        return n if self.item_cap is None else max(0, min(n, self.item_cap - self.slots))

    def _mark(self, e: Event) -> None:
        """A run-level event: how the run ended, a warning, a pause."""
        kind = e["kind"]
        if kind == ev.RUN_START:
            self.status = "running"
            inputs = e.get("inputs")
            self.inputs = inputs if isinstance(inputs, dict) else {}
        elif kind == ev.RUN_END:
            self.status = e.get("status", "ok")
            self.error = e.get("error")
            self.outputs = e.get("outputs") or {}
            self.end_seq = e["seq"]
            self.paused = None  # a run stopped while paused: the pause ends with it
        elif kind == ev.WARNING:
            self.warnings += 1
        elif kind == ev.PAUSE:
            if self.paused is None:
                self.paused = e
            self.stepping = None
        elif kind == ev.RESUME:
            self.paused = None
            self.stepping = e if e.get("reason") == "step" else None

    def run_time(self, now: float | None = None) -> float:
        """Seconds since the run started at ``now`` (default: the model's time), standing
        still while paused. Pauses are not subtracted: running items go on during a pause
        (only nothing new starts), and the clock agrees with the events' and timeline's times."""
        t = self.t if now is None else now
        return max(0.0, t if self.paused is None else min(t, self.paused["t"]))

    def rewind(self, k: int) -> Changes:
        """Go back to the state after the first ``k`` events (the replay cursor going back)
        by undoing the later ones, not by applying the first ``k`` again: the result is
        the same as applying ``events[:k]`` to a new model."""
        changes = Changes(rewound=True, run=True, events=min(k, len(self.events)))
        if k >= len(self.events):
            return changes
        visits = self.visits
        while visits:  # visits are kept in start order: the later ones are gone
            state = visits[next(reversed(visits))]
            if state.start_seq <= k:
                break
            del visits[state.path]
            self._drop(state, changes)
        if changes.gone:
            self.last_started = max(self.latest.values(), default=None, key=lambda st: st.start_seq)
        while self.ended and self.ended[-1].end_seq > k:
            state = self.ended.pop()
            if state.start_seq <= k:  # it ended later: running again
                state.status, state.t_end, state.end_seq = RUNNING, NAN, 0
                self._changed(state, changes)
        tables = []
        for state in self.tables:
            if state.start_seq > k:
                continue  # gone
            if state.items is not None and state.items.last_seq > k:
                state.items.rewind(k, self._time_of)
                self._changed(state, changes)
            if state.branches is not None and state.branches.last_seq > k:
                self._rewind_branches(state, k)
                self._changed(state, changes)
            if state.items is not None or state.branches is not None:
                tables.append(state)
        self.tables = tables
        self.slots = sum(t.count for st in tables for t in (st.items, st.branches) if t is not None)
        for state in self.waited:  # a node's own wait before its first attempt
            if state.ready_seq > k:
                state.ready_seq, state.t_ready = 0, NAN
                self._changed(state, changes)
            if state.wait_seq > k:
                state.wait_seq = 0
        self.waited = [state for state in self.waited if state.wait_seq]
        if self.marks and self.marks[-1]["seq"] > k:
            while self.marks and self.marks[-1]["seq"] > k:
                self.marks.pop()
            self.status, self.error, self.outputs, self.warnings, self.paused = "pending", None, {}, 0, None
            self.stepping, self.inputs, self.end_seq = None, {}, 0
            for e in self.marks:
                self._mark(e)
        del self.events[k:]
        self.t = self.events[k - 1]["t"] if k else 0.0
        return changes

    def _drop(self, state: NodeState, changes: Changes) -> None:
        """A visit that started after the cursor: out of every index (it is the latest)."""
        parent = state.path.rpartition(".")[0]
        siblings = self.children.get(parent)
        if siblings and siblings[-1] == state.path:
            siblings.pop()
            if not siblings:
                del self.children[parent]
        key, _ = graph_key(state.path)
        if key:
            runs = self.nested.get((key, state.id))
            if runs and runs[-1] is state:
                runs.pop()
                if not runs:
                    del self.nested[(key, state.id)]
            changes.nested.add(key)
        else:
            if self.latest.get(state.id) is state:
                if state.previous is None:
                    del self.latest[state.id]
                else:
                    self.latest[state.id] = state.previous
            changes.nodes.add(state.id)
            changes.items.add(state.id)
        changes.gone.append(state.path)

    def _changed(self, state: NodeState, changes: Changes) -> None:
        key, _ = graph_key(state.path)
        if key:
            changes.nested.add(key)
        else:
            changes.nodes.add(state.id)
            changes.items.add(state.id)

    def _rewind_branches(self, state: NodeState, k: int) -> None:
        """A fan-out's branches after event ``k``; none if its first branch event was later."""
        table = state.branches
        assert table is not None
        table.rewind(k)
        if not table.started and not table.ended:
            state.branches, state.branch_starts = None, []
            return
        first = self._fanout_starts(state)
        started = set(table.started)
        first += [""] * (max(started, default=-1) + 1 - len(first))
        state.branch_starts = [state.branch_starts[i] if i in started else name
                               for i, name in enumerate(first)]

    def _fanout_starts(self, state: NodeState) -> list[str]:
        """The first node of each branch of a fan-out node, as its graph says."""
        graph = self.graph.at(graph_key(state.path)[0])
        return list((graph.fanouts.get(state.id) if graph else None) or [])

    def _time_of(self, seq: int) -> float:
        event = self.event(seq)
        return event["t"] if event is not None else NAN

    def _wait(self, e: Event, kind: str, changes: Changes) -> None:
        """A wait (rate limit, process) before a node's or an item's first attempt: queued
        until it ends. Waits before retries are part of the retry (see the timeline)."""
        if e.get("attempt", 1) != 1:
            return
        path = e["path"]
        state = self.visits.get(path)
        if state is not None:  # a node's own wait
            if kind == ev.WAIT_START and not state.wait_seq:
                state.wait_seq = e["seq"]
                self.waited.append(state)
            elif kind == ev.WAIT_END and state.wait_seq and not state.ready_seq \
                    and e.get("status") == "ok":
                state.ready_seq, state.t_ready = e["seq"], e["t"]
            else:
                return
            if self.latest.get(state.id) is state:
                changes.nodes.add(state.id)
            else:
                changes.nested.add(graph_key(path)[0])
            return
        node_path, _, leaf = path.rpartition(".")
        state = self.visits.get(node_path)
        i = iteration_index(leaf)
        if state is None or state.items is None or i is None:
            return
        if not 0 <= i < state.items.count:
            return
        if kind == ev.WAIT_START:
            state.items.wait(i, e["seq"])
        elif e.get("status") == "ok":
            state.items.ready(i, e["t"], e["seq"])
        changes.items.add(state.id)

    def _node_start(self, e: Event, changes: Changes) -> None:
        key, node_id = graph_key(e["path"])
        node_id = e.get("node") or node_id
        graph = self.graph.at(key)
        state = NodeState(node_id, e["path"], e.get("type") or (graph.node_type(node_id) if graph else "?"),
                          RUNNING, e["t"], start_seq=e["seq"], batch=e.get("batch"))
        if state.batch:
            count = state.batch.get("count")  # None: not known yet
            count = self._room(count if count.__class__ is int and count > 0 else 0)
            state.items = ItemTable(count)
            self.slots += count
            self.tables.append(state)
        self.visits[e["path"]] = state
        self.children.setdefault(e["path"].rpartition(".")[0], []).append(e["path"])
        if key:
            self.nested.setdefault((key, node_id), []).append(state)
            changes.nested.add(key)
        else:
            state.previous = self.latest.get(node_id)
            self.latest[node_id] = state
            self.last_started = state
            changes.nodes.add(node_id)
        changes.new_nodes.append(e["path"])

    def _node_end(self, e: Event, changes: Changes) -> None:
        state = self.visits.get(e["path"])
        if state is None:
            return
        state.status = STATUS_CODES.get(e.get("status", "ok"), ERROR)
        state.t_end = e["t"]
        state.end_seq = e["seq"]
        self.ended.append(state)
        if self.latest.get(state.id) is not state:
            changes.nested.add(graph_key(state.path)[0])
            return
        changes.nodes.add(state.id)
        if state.items is not None:  # items never started (fail_fast) stay pending/skipped
            changes.items.add(state.id)

    def _branch(self, e: Event, kind: str, changes: Changes) -> None:
        fan_path = e["path"].rpartition(".")[0]
        state = self.visits.get(fan_path)
        if state is None:
            return
        i = e.get("index", 0)
        if state.branches is None:
            starts = self._fanout_starts(state)
            need = max(len(starts), i + 1)
            if self._room(need) < need:
                return
            state.branch_starts = starts
            state.branches = ItemTable(need)
            self.slots += need
            if state.items is None:
                self.tables.append(state)
        table = state.branches
        if i >= table.count:
            return
        if kind == ev.BRANCH_START:
            table.start(i, e["t"], e["seq"])
            if i >= len(state.branch_starts):
                state.branch_starts += [""] * (i + 1 - len(state.branch_starts))
            state.branch_starts[i] = e.get("start", state.branch_starts[i])
        else:
            table.end(i, STATUS_CODES.get(e.get("status", "ok"), ERROR), e["t"], e["seq"], 1)
        if self.latest.get(state.id) is state:
            changes.items.add(state.id)

    def summary(self, key: tuple[str, ...], node_id: str) -> NodeState | None:
        """A node of a nested flow: its one run, or all its runs (one per batch item) at once,
        as a state whose ``items`` counts them."""
        if not key:
            return self.latest.get(node_id)
        runs = self.nested.get((key, node_id))
        if not runs:
            return None
        if len(runs) == 1:
            return runs[0]
        table = ItemTable(0)
        table.count = len(runs)
        codes = [r.status for r in runs]
        table.done, table.failed, table.running = codes.count(OK), codes.count(ERROR), codes.count(RUNNING)
        status = RUNNING if table.running else ERROR if table.failed else OK
        ends = [r.t_end for r in runs if r.t_end == r.t_end]
        return NodeState(node_id, runs[-1].path, runs[-1].type, status,
                         min(r.t_start for r in runs), max(ends) if ends and not table.running else NAN,
                         items=table)

    def _item(self, e: Event, kind: str, changes: Changes) -> None:
        path = e["path"]
        node_path, _, leaf = path.rpartition(".")
        state = self.visits.get(node_path)
        if state is None or state.items is None or not leaf.startswith(ITERATION):
            return
        items = state.items
        i = e.get("index")
        if i is None:
            i = iteration_index(leaf)
            if i is None:
                return
        more = i + 1 - items.count
        if more > 0 and kind == ev.ITEM_START and self._room(more) == more:
            self.slots += more
            items.grow(i + 1)  # a batch whose size was not known
        if not 0 <= i < items.count:
            return
        if kind == ev.ITEM_START:
            items.start(i, e["t"], e["seq"])
        elif kind == ev.ITEM_END:
            items.end(i, STATUS_CODES.get(e.get("status", "ok"), ERROR), e["t"], e["seq"],
                      e.get("attempts", 1))
        else:  # attempt.start: only a retry shows (the first attempt is the item's start)
            attempt = e.get("attempt", 1)
            if attempt > 1:
                items.retry(i, attempt, e["t"], e["seq"])
        changes.items.add(state.id)


def percentile(sorted_values: Sequence[float], q: float) -> float:
    """The q-th percentile (0..100) of already sorted values (nearest rank, as the
    templates' ``aggregate.p95``); NaN when there are none."""
    return nearest_rank(sorted_values, q) if sorted_values else NAN
