"""The run's view state, built from events alone (no Textual here).

``RunModel.apply(events)`` is the reducer every pane reads from. It is fed by a live
run or by a trace, so the panes cannot tell the two apart. Per-iteration state lives
in flat arrays (:class:`~.item_table.ItemTable`), so a 100,000-item batch costs a few bytes
per item; full event dicts are fetched by ``seq`` only for what is on screen.
``RunModel.rewind(k)`` takes the model back to the state after event ``k`` (a replay's
cursor), equal to applying ``events[:k]``.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from ..engine.paths import ITERATION, iteration_index
from ..engine.run.aggregates import nearest_rank
from ..engine.run.labels import item_label, one_line
from ..engine.trace import events as ev
from ..engine.trace.events import Event
from ..engine.trace.replay import LazyEvents
from .graph import Graph, graph_key
from .item_table import ItemTable
from .status import ERROR, OK, PENDING, RUNNING, STATUS_CODES, STATUS_NAMES

NAN = math.nan
LABEL_CACHE = 100_000  # item labels kept (a few MB); more are read again from their events
ITEM_FLOOR = 1 << 16  # items a replay's tables may hold beyond its number of events (see RunModel)


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
    workers: list[tuple[int, int]] = field(default_factory=list)  # on a cluster: (wait.end seq,
    # worker id) of each attempt (a batch's items keep theirs in ``items``)
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
        self.usage: dict[str, Any] | None = None  # llm tokens and cost, from run.end
        self.warnings = 0
        self.paused: Event | None = None  # the pause event, while the run is paused
        self.stepping: Event | None = None  # the ``resume`` of a step, until the run pauses again
        self.inputs: dict[str, Any] = {}  # the run's inputs (``run.start``)
        self.end_seq = 0  # the ``run.end`` event (read in full only when the run itself is shown)
        self.marks: list[Event] = []  # run-level events (start, end, pause, resume, warning)
        self.ended: list[NodeState] = []  # visits in the order they ended
        self.tables: list[NodeState] = []  # visits with items or branches
        self.waited: list[NodeState] = []  # visits that waited (rate limit, process) to start
        self.cluster = ""  # the cluster the run sends work to (``local cluster``, ``cluster tcp://…``)
        self._cluster_seq = 0  # the wait.start that named it
        self.workers: list[str] = []  # cluster workers' addresses, in the order they were first seen
        self._worker_ids: dict[str, int] = {}  # address -> id (its place in ``workers``, from 1)
        self._worker_seqs: list[int] = []  # the event that first named each worker
        self.worker_nodes: list[NodeState] = []  # visits whose own attempts ran on a worker
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

    def worker_name(self, worker: int) -> str:
        """The address of worker id ``worker`` (``""`` for 0, no worker)."""
        return self.workers[worker - 1] if 0 < worker <= len(self.workers) else ""

    def _worker_id(self, address: str, seq: int) -> int:
        """The id of the worker at ``address`` (from 1), named now if it is new."""
        worker = self._worker_ids.get(address)
        if worker is None:
            self.workers.append(address)
            self._worker_seqs.append(seq)
            worker = self._worker_ids[address] = len(self.workers)
        return worker

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
            usage = e.get("usage")
            self.usage = usage if isinstance(usage, dict) else None
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
        self._rewind_workers(k, changes)
        if self.marks and self.marks[-1]["seq"] > k:
            while self.marks and self.marks[-1]["seq"] > k:
                self.marks.pop()
            self.status, self.error, self.outputs, self.warnings, self.paused = "pending", None, {}, 0, None
            self.usage = None
            self.stepping, self.inputs, self.end_seq = None, {}, 0
            for e in self.marks:
                self._mark(e)
        del self.events[k:]
        self.t = self.events[k - 1]["t"] if k else 0.0
        return changes

    def _rewind_workers(self, k: int, changes: Changes) -> None:
        """The cluster and the workers named after event ``k`` forgotten (the items' own
        workers are rewound with their tables)."""
        if self._cluster_seq > k:
            self.cluster, self._cluster_seq = "", 0
        while self._worker_seqs and self._worker_seqs[-1] > k:
            self._worker_seqs.pop()
            del self._worker_ids[self.workers.pop()]
        for state in self.worker_nodes:
            if state.workers[-1][0] > k:
                state.workers = [w for w in state.workers if w[0] <= k]
                self._changed(state, changes)
        self.worker_nodes = [state for state in self.worker_nodes if state.workers]

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
        until it ends. Waits before retries are part of the retry (see the timeline). A wait
        on a cluster names the cluster (its start) and the worker of each attempt (its end)."""
        if e.get("on") == "cluster":
            self._on_cluster(e, kind, changes)
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

    def _on_cluster(self, e: Event, kind: str, changes: Changes) -> None:
        """The cluster (the first ``wait.start`` on one), and the worker that started an
        attempt (its ``wait.end``; item and attempt events repeat it, but a replay reads only
        their leading fields)."""
        if kind == ev.WAIT_START:
            if not self.cluster and e.get("limit").__class__ is str:
                self.cluster, self._cluster_seq = e["limit"], e["seq"]
                changes.run = True
            return
        address = e.get("worker")
        if address.__class__ is not str or not address or e.get("status") != "ok":
            return
        seq = e["seq"]
        fresh = len(self.workers)
        worker = self._worker_id(address, seq)
        changes.run = changes.run or len(self.workers) != fresh
        path = e["path"]
        state = self.visits.get(path)
        if state is not None:  # a node's own attempt
            if not state.workers:
                self.worker_nodes.append(state)
            state.workers.append((seq, worker))
            self._changed(state, changes)
            return
        node_path, _, leaf = path.rpartition(".")
        state = self.visits.get(node_path)
        i = iteration_index(leaf)
        if state is not None and state.items is not None and i is not None and 0 <= i < state.items.count:
            state.items.on_worker(i, worker, seq)
            self._changed(state, changes)

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
