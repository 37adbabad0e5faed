"""The run's view state, built from events alone (no Textual here).

``RunModel.apply(events)`` is the reducer every pane reads from. It is fed by a live
run or by a trace, so the panes cannot tell the two apart. Per-iteration state lives
in flat arrays, so a 100,000-item batch costs a few bytes per item; full event dicts
are fetched by ``seq`` only for what is on screen.
"""

from __future__ import annotations

import math
import re
from array import array
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from ..engine import events as ev
from ..engine.aggregates import nearest_rank
from ..engine.events import Event
from ..engine.ir import normalize

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
    branch start nodes of each fan-out node, in edge order.
    """

    name: str
    nodes: dict[str, dict[str, Any]]  # id -> the IR node
    edges: list[GraphEdge]
    start: str
    children: dict[str, Graph] = field(default_factory=dict)
    fanouts: dict[str, list[str]] = field(default_factory=dict)

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
        for e in ir.get("edges", []):
            if isinstance(e, dict) and isinstance(e.get("parallel_group"), str):
                fanouts.setdefault(e.get("from", ""), []).append(e.get("to", ""))
        graph = cls(name, nodes, edges, start, fanouts=fanouts)
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
        if nxt.startswith("branch_") and _INDEXED.fullmatch(nxt):
            i += 2
        elif nxt.startswith("iteration_") and _INDEXED.fullmatch(nxt):
            key.append(segs[i].partition("#")[0])
            i += 2
        else:
            key.append(segs[i].partition("#")[0])
            i += 1
    return tuple(key), (segs[-1].partition("#")[0] if segs else "")


class ItemTable:
    """Per-iteration state of one batch node, in flat arrays indexed by item index.

    An item that waits for a rate limit or a process before its first attempt is queued
    (PENDING, no ``t_start``) until the wait ends: ``t_start`` is when it began to run.
    ``waits`` (allocated at the first such wait) holds the seqs of that wait's start and end.
    """

    __slots__ = ("attempts", "count", "done", "end_seq", "failed", "failures", "retry_t",
                 "running", "start_seq", "status", "t_end", "t_start", "waits")

    def __init__(self, count: int) -> None:
        self.count = count
        self.status = bytearray(count)
        self.t_start = array("d", [NAN]) * count
        self.t_end = array("d", [NAN]) * count
        self.retry_t = array("d", [NAN]) * count  # start of the last attempt, if it retried
        self.attempts = array("H", [0]) * count
        self.start_seq = array("q", [0]) * count
        self.end_seq = array("q", [0]) * count
        self.done = self.failed = self.running = 0
        self.failures: list[int] = []  # indexes of failed items, in index order
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

    def ready(self, i: int, t: float, seq: int) -> None:
        """Item ``i``'s wait ended: it runs from ``t``."""
        if self.waits is None or not self.waits[0][i] or self.status[i] != PENDING:
            return
        self.waits[1][i] = seq
        self.status[i] = RUNNING
        self.running += 1
        self.t_start[i] = t

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
        self.count = count

    def start(self, i: int, t: float, seq: int) -> None:
        """Item ``i`` started."""
        self.status[i] = RUNNING
        self.t_start[i] = t
        self.start_seq[i] = seq
        self.running += 1

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

    def as_of(self, k: int, time_of: Callable[[int], float] | None = None) -> ItemTable:
        """This table as it was after event ``k`` (items that start or end later are not).

        ``time_of(seq)``: the time of an event, for an item caught between its start and
        the start of its wait (its ``t_start`` then is the item's start)."""
        out = ItemTable(0)
        out.count = self.count
        ss, es = self.start_seq, self.end_seq
        if self.waits is not None:
            out.waits = (array("q", [w if 0 < w <= k else 0 for w in self.waits[0]]),
                         array("q", [r if 0 < r <= k else 0 for r in self.waits[1]]))
        if self.count and max(es) <= k and min(es) > 0:  # every item had ended by then
            for name in ("status", "t_start", "t_end", "retry_t", "attempts", "start_seq", "end_seq"):
                setattr(out, name, getattr(self, name)[:])
        else:
            started = [0 < s <= k for s in ss]
            ended = [0 < e <= k for e in es]
            out.status = bytearray(st if e else (RUNNING if s else PENDING)
                                   for st, s, e in zip(self.status, started, ended, strict=True))
            out.t_start = array("d", [t if s else NAN for t, s in zip(self.t_start, started, strict=True)])
            out.t_end = array("d", [t if e else NAN for t, e in zip(self.t_end, ended, strict=True)])
            out.retry_t = array("d", [t if e else NAN for t, e in zip(self.retry_t, ended, strict=True)])
            out.attempts = array("H", [a if s else 0 for a, s in zip(self.attempts, started, strict=True)])
            out.start_seq = array("q", [q if s else 0 for q, s in zip(ss, started, strict=True)])
            out.end_seq = array("q", [q if e else 0 for q, e in zip(es, ended, strict=True)])
            if out.waits is not None:
                out._waits_as_of(self, k, time_of)
        out.done, out.failed = out.status.count(OK), out.status.count(ERROR)
        out.running = out.status.count(RUNNING)
        out.failures = [i for i in self.failures if 0 < es[i] <= k]
        return out

    def _waits_as_of(self, full: ItemTable, k: int, time_of: Callable[[int], float] | None) -> None:
        """Items waiting at ``k`` are queued; those whose wait begins after ``k`` run since
        their start."""
        assert self.waits is not None and full.waits is not None
        for i, w in enumerate(full.waits[0]):
            if not w or self.end_seq[i] or not self.start_seq[i]:
                continue  # no wait, ended by k, or not started by k: as set already
            if w > k:  # started, not waiting yet
                self.t_start[i] = time_of(full.start_seq[i]) if time_of is not None else NAN
            elif not self.waits[1][i]:  # waiting at k
                self.status[i] = PENDING
                self.t_start[i] = NAN

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
    """What one ``apply`` changed, so panes repaint only that."""

    nodes: set[str] = field(default_factory=set)  # node ids whose state changed
    items: set[str] = field(default_factory=set)  # node ids whose items changed
    new_nodes: list[str] = field(default_factory=list)  # paths of visits that started
    nested: set[tuple[str, ...]] = field(default_factory=set)  # nested graphs that changed
    events: int = 0
    run: bool = False
    clock: bool = False  # only time went on (running things grow)

    def __bool__(self) -> bool:
        return bool(self.nodes or self.items or self.events or self.run or self.nested
                    or self.clock)

    @classmethod
    def everything(cls, model: RunModel) -> Changes:
        """As if every event of ``model`` had just arrived (panes shown a model built elsewhere)."""
        return cls(nodes=set(model.latest), items=set(model.latest), new_nodes=list(model.visits),
                   nested={key for key, _ in model.nested}, events=len(model.events), run=True)

    def merge(self, other: Changes) -> None:
        """Add what ``other`` (a later apply) changed."""
        self.nodes |= other.nodes
        self.items |= other.items
        self.new_nodes += other.new_nodes
        self.nested |= other.nested
        self.events = other.events or self.events
        self.run = self.run or other.run


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
        self.marks: list[Event] = []  # run-level events (start, end, pause, resume, warning)

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
            elif kind == ev.RUN_START:
                self.status = "running"
                self.marks.append(e)
                changes.run = True
            elif kind == ev.RUN_END or kind == ev.WARNING or kind == ev.PAUSE or kind == ev.RESUME:
                self._mark(e)
                self.marks.append(e)
                changes.run = True
        if e is not None:
            self.t = max(self.t, e["t"])
        changes.events = len(events)
        return changes

    def _mark(self, e: Event) -> None:
        """A run-level event: how the run ended, a warning, a pause."""
        kind = e["kind"]
        if kind == ev.RUN_START:
            self.status = "running"
        elif kind == ev.RUN_END:
            self.status = e.get("status", "ok")
            self.error = e.get("error")
            self.outputs = e.get("outputs") or {}
        elif kind == ev.WARNING:
            self.warnings += 1
        elif kind == ev.PAUSE:
            self.paused = e
        elif kind == ev.RESUME:
            self.paused = None

    def as_of(self, k: int) -> RunModel:
        """The state after the first ``k`` events, derived from this one without applying
        them again (the replay cursor going back). Equal to applying ``events[:k]``."""
        upto = getattr(self.events, "upto", None)  # replay's lazy list; else a plain list
        events = upto(k) if upto is not None else self.events[:k]
        out = RunModel(self.graph, events)
        for path, st in self.visits.items():
            if st.start_seq > k:
                break  # visits are kept in start order
            ended = 0 < st.end_seq <= k
            branched = st.branches is not None and any(0 < q <= k for q in st.branches.start_seq)
            ready = 0 < st.ready_seq <= k
            new = replace(st, status=st.status if ended else RUNNING,
                          t_end=st.t_end if ended else NAN, end_seq=st.end_seq if ended else 0,
                          wait_seq=st.wait_seq if 0 < st.wait_seq <= k else 0,
                          ready_seq=st.ready_seq if ready else 0, t_ready=st.t_ready if ready else NAN,
                          items=st.items.as_of(k, self._time_of) if st.items is not None else None,
                          branches=st.branches.as_of(k) if branched else None,  # type: ignore[union-attr]
                          branch_starts=list(st.branch_starts) if branched else [])
            out.visits[path] = new
            out.children.setdefault(path.rpartition(".")[0], []).append(path)
            if graph_key(path)[0]:
                out.nested.setdefault((graph_key(path)[0], new.id), []).append(new)
            else:
                out.latest[new.id] = new
                out.last_started = new
        for e in self.marks:
            if e["seq"] > k:
                break
            out._mark(e)
            out.marks.append(e)
        out.t = out.events[k - 1]["t"] if k else 0.0
        return out

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
        if state is None or state.items is None or not leaf.startswith("iteration_"):
            return
        i = int(leaf[10:])
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
            state.items = ItemTable(int(state.batch.get("count") or 0))  # None: not known yet
        self.visits[e["path"]] = state
        self.children.setdefault(e["path"].rpartition(".")[0], []).append(e["path"])
        if key:
            self.nested.setdefault((key, node_id), []).append(state)
            changes.nested.add(key)
        else:
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
            key, _ = graph_key(fan_path)
            graph = self.graph.at(key)
            starts = (graph.fanouts.get(state.id) if graph else None) or []
            state.branch_starts = list(starts)
            state.branches = ItemTable(max(len(starts), i + 1))
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
        if state is None or state.items is None or not leaf.startswith("iteration_"):
            return
        items = state.items
        i = e.get("index")
        if i is None:
            i = int(leaf[10:])
        if i >= items.count and kind == ev.ITEM_START:  # a batch whose size was not known
            items.grow(i + 1)
        if not 0 <= i < items.count:
            return
        if kind == ev.ITEM_START:
            items.start(i, e["t"], e["seq"])
        elif kind == ev.ITEM_END:
            items.end(i, STATUS_CODES.get(e.get("status", "ok"), ERROR), e["t"], e["seq"],
                      e.get("attempts", 1))
        else:  # attempt.start
            if e.get("attempt", 1) > 1:
                items.retry_t[i] = e["t"]
            items.attempts[i] = e.get("attempt", 1)
        changes.items.add(state.id)


def percentile(sorted_values: Sequence[float], q: float) -> float:
    """The q-th percentile (0..100) of already sorted values (nearest rank, as the
    templates' ``aggregate.p95``); NaN when there are none."""
    return nearest_rank(sorted_values, q) if sorted_values else NAN
