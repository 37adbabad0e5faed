"""The re-run's cache: recorded outcomes that may stand in for running a step again.

The compiler asks a :class:`StepCache`, at the start of every node step and every batch
iteration, for the recorded outcome of that step (:meth:`StepCache.node`,
:meth:`StepCache.item`); when it gets one, it lands the step as recorded
(:mod:`.land`, ``cached=True``) instead of running it. :class:`RunCache` is the cache
read from the trace of an earlier run (see docs/rerun.md). A recorded outcome stands in
when:

- it was recorded ``ok`` at the same path (``node.end`` / ``item.end``);
- its definition did not change (when an edited flow is given), nor that of a node
  upstream of it (:func:`changed_nodes`);
- nothing upstream of it has run again in this re-run (a node that runs, and a batch
  with any iteration that runs, make every node reachable from it run too);
- its params, resolved now, equal the recorded ones (so changed inputs, or anything
  else that changes what a node is given, make it run), and an iteration's item is the
  recorded item.

A restored node or iteration emits its events as recorded, with ``"cached": true`` and
duration 0, writes the recorded outputs to the store and routes with the recorded
action. A restored ``workflow`` node does not enter its child flow. Everything else runs.
"""

from __future__ import annotations

import re
from collections import Counter, deque
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from itertools import islice
from pathlib import Path
from typing import Any, NamedTuple, Protocol

import orjson

from ..ir.spec import FlowSpec, NodeSpec, children_ir
from ..ir.templates import Scope
from ..trace import events as ev
from ..trace import large
from ..trace.events import Event
from ..trace.reader import TraceIndex, TraceStream
from ..trace.writer import Trace, TraceError, dumps, read_trace
from .params import Params, TemplateFailure

_CANON = orjson.OPT_SORT_KEYS | orjson.OPT_NON_STR_KEYS
ITERATION = re.compile(r"iteration_\d+")
BRANCH = re.compile(r"branch_\d+")
_BRANCH_TAIL = re.compile(r"(\.[^.]+\.branch_\d+)+$")  # "<fanout>.branch_<i>" frames
#: IR keys that do not change what a node computes (the rest, changed, invalidates every node)
_NOT_SETTINGS = frozenset(("nodes", "edges", "inputs", "outputs", "name", "description",
                           "ir_version", "max_visits"))
#: what from_trace leaves out (read later, per batch, as a re-run reaches it)
_NOT_RECORDED = ("item.", "attempt.")
_ITEM_KINDS = (ev.ITEM_START, ev.ITEM_END, ev.NODE_END)


# --- the protocol the compiler asks -----------------------------------------------------------

class Step(Protocol):
    """What a cache looks at of a compiled node (:class:`~.node.PflowNode`,
    :class:`~.batch.PflowBatchNode`)."""

    path: str
    spec: NodeSpec
    compiled: Params


class RecordedNode(NamedTuple):
    """A node step as recorded: what stands in for running it."""

    params: Any
    outputs: dict[str, Any]
    action: str


class RecordedItem(NamedTuple):
    """A batch iteration as recorded."""

    params: Any
    outputs: dict[str, Any]


class StepCache(Protocol):
    """Recorded outcomes that may stand in for running steps again (a re-run's)."""

    source: str  # the recorded run (``rerun_of`` in the new trace's header)

    def bind(self, spec: FlowSpec) -> None:
        """Prepare a run of ``spec``."""

    def observe(self, event: Event) -> None:
        """The run's events, before any other sink sees them."""

    def node(self, step: Step, frame_path: str, scope: Scope) -> RecordedNode | None:
        """The recorded outcome of a single node's step, or None: it runs."""

    def item(self, step: Step, index: int, item: Any, frame_path: str,
             scope: Scope) -> RecordedItem | None:
        """The recorded outcome of one batch iteration, or None: it runs."""


# --- the records ------------------------------------------------------------------------------

@dataclass(slots=True)
class NodeRecord:
    """A node step as recorded: its ``node.start`` and, when it ended ok, its ``node.end``."""

    type: str
    params: Any  # resolved params (a batch node's constant ones); None when never resolved
    batch: bool
    ok: bool = False
    outputs: dict[str, Any] | None = None
    action: str = "default"
    at: int = -1  # where in the trace its node.start ends (a batch's iterations follow)


@dataclass(slots=True)
class ItemRecord:
    """A batch iteration that ended ok."""

    item: Any
    params: Any  # the templated params, resolved for this item
    outputs: dict[str, Any]


class _RecordedItems:
    """The recorded iterations of one batch node, read forward from its ``node.start`` as
    a re-run asks for them, in index order (items start in index order, so the records
    come nearly in that order). Memory: the iterations started and not yet ended, and
    those ended ahead of the one asked for, in the recorded run: at most its
    ``batch_size`` (or ``max_concurrent``) when a slow item did not hold the rest back.
    """

    def __init__(self, events: Iterator[Event], path: str) -> None:
        self._events = events  # item.start / item.end of the batch's iterations, its node.end
        self._prefix = path + ".iteration_"
        self._path = path
        self._started: dict[str, tuple[Any, Any]] = {}
        self._ahead: dict[int, ItemRecord | None] = {}

    def __iter__(self) -> Iterator[tuple[int, ItemRecord | None]]:
        """(index, record or None when it did not end ok), in the order they ended."""
        for e in self._events:
            kind, path = e.get("kind"), e.get("path")
            if kind == ev.NODE_END and path == self._path:
                return
            if not isinstance(path, str) or not path.startswith(self._prefix):
                continue
            if kind == ev.ITEM_START:
                self._started[path] = (e.get("item"), e.get("params") or {})
            elif kind == ev.ITEM_END and isinstance(index := e.get("index"), int):
                started = self._started.pop(path, None)
                outputs = e.get("outputs")
                if e.get("status") == "ok" and started is not None and isinstance(outputs, dict):
                    yield index, ItemRecord(started[0], started[1], outputs)
                else:
                    yield index, None

    def get(self, index: int) -> ItemRecord | None:
        """The record of iteration ``index`` if it ended ok; those read past on the way are
        kept for the later asks."""
        ahead = self._ahead
        if index in ahead:
            return ahead.pop(index)
        for i, rec in self:
            if i == index:
                return rec
            if i > index:
                ahead[i] = rec
        return None


def _key(path: str) -> str:
    """A path without its flow name (the first segment), so a renamed flow still matches."""
    return path.partition(".")[2]


def _json(value: Any) -> Any:
    """``value`` as the trace holds it (tuples are lists, odd objects their repr ...)."""
    return orjson.loads(dumps(value))


def _same(value: Any, recorded: Any) -> bool:
    """Whether ``value`` is what the trace recorded (compared as JSON when not equal as is;
    a large value stored in a side file by its sha256, see large.py)."""
    return value == recorded or _json(value) == recorded or large.matches(value, recorded)


def _constant_part(params: Any, step: Step) -> Any:
    """A batch node's recorded constant params without its templated ones (older traces
    list a templated param's default there too)."""
    if not isinstance(params, dict):
        return params
    return {k: v for k, v in params.items() if k not in step.compiled.templates}


def _redacted(outputs: Any) -> bool:
    """Whether recorded outputs hold a redacted secret (see redact.py): not to be restored."""
    return outputs is not None and b"\xc2\xabredacted:" in dumps(outputs)


def _instance(frame_path: str) -> str:
    """The flow run a frame belongs to: a branch frame belongs to its parent's."""
    return _BRANCH_TAIL.sub("", frame_path)


# --- invalidation by an edited flow -----------------------------------------------------------

_BATCH_WHAT = ("items", "as")  # parallelism, retries, error handling: how items run, not what


def _definitions(ir: Mapping[str, Any], children: Mapping[str, Any]) -> dict[str, bytes]:
    """Each node's definition as canonical JSON: type, params, batch items, incoming edges,
    and a workflow node's child flow."""
    incoming: dict[str, list[str]] = {}
    for e in ir.get("edges") or ():
        if isinstance(e, dict):
            incoming.setdefault(str(e.get("to")), []).append(orjson.dumps(
                [e.get("from"), e.get("action", "default"), e.get("parallel_group") or ""],
                option=_CANON).decode())
    out: dict[str, bytes] = {}
    for n in ir.get("nodes") or ():
        if not isinstance(n, dict) or not isinstance(n.get("id"), str):
            continue
        batch = n.get("batch")
        if isinstance(batch, dict):
            batch = {"items": batch.get("items"), "as": batch.get("as", "item")}
        out[n["id"]] = orjson.dumps({
            "type": n.get("type"), "params": n.get("params") or {}, "batch": batch,
            "in": sorted(incoming.get(n["id"], ())), "child": children.get(n["id"])},
            option=_CANON)
    return out


def _settings(ir: Mapping[str, Any]) -> bytes:
    return orjson.dumps({k: v for k, v in ir.items() if k not in _NOT_SETTINGS}, option=_CANON)


def changed_nodes(old_ir: Mapping[str, Any], old_children: Mapping[str, Any],
                  spec: FlowSpec) -> set[str]:
    """The nodes of ``spec`` whose definition differs from the recorded IR (all of them
    when a flow-wide setting such as ``template_resolution_mode`` changed)."""
    if _settings(old_ir) != _settings(spec.ir):
        return set(spec.nodes)
    old = _definitions(old_ir, old_children)
    new = _definitions(spec.ir, children_ir(spec))
    return {nid for nid, d in new.items() if old.get(nid) != d}


def downstream(spec: FlowSpec, start: set[str] | frozenset[str]) -> set[str]:
    """``start`` and every node reachable from it along the edges (any action)."""
    succ = _successors(spec)
    seen = set(start)
    todo = deque(start)
    while todo:
        for nxt in succ.get(todo.popleft(), ()):
            if nxt not in seen:
                seen.add(nxt)
                todo.append(nxt)
    return seen


def _successors(spec: FlowSpec) -> dict[str, list[str]]:
    succ: dict[str, list[str]] = {}
    for e in spec.edges:
        succ.setdefault(e.src, []).append(e.dst)
    return succ


# --- the trace-backed cache --------------------------------------------------------------------------------

_STALE = object()  # recorded outputs that cannot be restored (RunCache._real)


class RunCache:
    """What a recorded run did well, and the bookkeeping of one re-run that uses it.

    ``nodes`` maps a node path without its flow name (``fan.branch_1.x``, ``review#2``,
    ``per_file.iteration_3.read``) to its :class:`NodeRecord`. A batch's iterations are
    not held: they are read from the trace as the re-run reaches them
    (:meth:`recorded_items`), so a re-run of a million-item batch holds a few records at
    a time. ``bind(spec)`` (done by ``execute``) compares the flow with the recorded one
    and resets the run state; after the run, ``summary()`` says what was restored and
    what ran.
    """

    def __init__(self, header: dict[str, Any], nodes: dict[str, NodeRecord],
                 trace: Trace | TraceIndex | TraceStream, source: str) -> None:
        self.header = header
        self.nodes = nodes
        self.trace = trace
        self.source = source  # the trace re-run (absolute path), for "rerun_of"
        self.root = str(header.get("flow_name") or "flow")  # the first segment of its paths
        flow = header.get("flow")
        self.flow_ir: dict[str, Any] = flow if isinstance(flow, dict) else {}
        children = header.get("children")
        self.children: dict[str, Any] = children if isinstance(children, dict) else {}
        inputs = header.get("inputs")
        self.inputs: dict[str, Any] = inputs if isinstance(inputs, dict) else {}
        self.spec: FlowSpec | None = None
        # large values in side files (large.py): restored from there, only when there are some
        self.large_from: Path | None = (Path(source) if source != "<trace>" and large.has_large(source)
                                         else None)
        self.changed: frozenset[str] = frozenset()
        self.invalid: frozenset[str] = frozenset()
        self._reach: dict[tuple[int, str], frozenset[str]] = {}
        self._reset()

    # --- building ---

    @classmethod
    def from_trace(cls, trace: str | Path | Trace | TraceIndex, *, upto: int | None = None) -> RunCache:
        """Read the ok results of a trace (a path, read as a stream; a parsed Trace; or a
        TraceIndex). ``upto``: read only the events in the first ``upto`` bytes of the file
        (the part its signature covers, in a trace cut short: see engine/trust.py)."""
        if isinstance(trace, (str, Path)):
            try:
                source: Trace | TraceIndex | TraceStream = TraceStream(trace, upto)
            except TraceError:  # re-formatted JSON, or not a trace: read_trace says which
                source = read_trace(trace)
        else:
            source = trace
        header = dict(source.header)
        if header.get("target"):
            raise TraceError(python_program(source.path, header))
        events = (enumerate(source.events, 1) if isinstance(source, Trace)
                  else source.scan(exclude=_NOT_RECORDED))
        nodes: dict[str, NodeRecord] = {}
        for after, e in events:
            kind = e.get("kind")
            path = e.get("path")
            if not isinstance(path, str):
                continue
            if kind == ev.NODE_START:
                nodes[_key(path)] = NodeRecord(str(e.get("type", "")), e.get("params"), "batch" in e,
                                               at=after)
            elif kind == ev.NODE_END and e.get("status") == "ok":
                rec = nodes.get(_key(path))
                outputs = e.get("outputs")
                if rec is not None and isinstance(outputs, dict):
                    rec.ok, rec.outputs = True, outputs
                    rec.action = str(e.get("action") or "default")
        where = source.path
        return cls(header, nodes, source, str(Path(where).resolve()) if where else "<trace>")

    @property
    def skipped(self) -> int:
        """Malformed events of the recorded trace met so far (skipped: see trace/check.py)."""
        return int(getattr(self.trace, "skipped", 0) or 0)

    def recorded_items(self, key: str) -> Iterator[tuple[int, ItemRecord | None]]:
        """(index, record; None when it did not end ok) of the recorded iterations of the
        batch node at ``key`` (its path without the flow name), in the order they ended."""
        return iter(self._recorded(key))

    def _recorded(self, key: str) -> _RecordedItems:
        rec = self.nodes.get(key)
        path = f"{self.root}.{key}"
        if rec is None or not rec.batch or rec.at < 0:
            return _RecordedItems(iter(()), path)
        trace = self.trace
        if isinstance(trace, Trace):
            events: Iterator[Event] = islice(trace.events, rec.at, None)
        else:
            events = (e for _, e in trace.scan(_ITEM_KINDS, start=rec.at, path=path, iterations=True))
        return _RecordedItems(events, path)

    def bind(self, spec: FlowSpec) -> None:
        """Prepare a run of ``spec``: invalidate what its edits changed, reset the counts."""
        if spec is not self.spec:
            self.spec = spec
            self.changed = frozenset(changed_nodes(self.flow_ir, self.children, spec))
            self.invalid = frozenset(downstream(spec, self.changed))
        self._reset()

    def _reset(self) -> None:
        self.dirty: set[tuple[str, str]] = set()  # (flow run, node id): runs again
        self.stale: set[str] = set()  # paths that run again: nothing under them is restored
        self._batch_ok: dict[str, bool] = {}
        self._items: dict[str, _RecordedItems] = {}  # batch path -> its recorded iterations
        self._batches: set[str] = set()
        self._hits: Counter[str] = Counter()
        self._missed: set[str] = set()
        self.counts = {"restored_nodes": 0, "ran_nodes": 0, "restored_items": 0, "ran_items": 0}
        self.restored: list[str] = []  # node paths, in the order they ended
        self.ran: list[str] = []

    def summary(self) -> dict[str, Any]:
        """What the re-run restored and ran (the counts, and node paths)."""
        return {"of": self.source, **self.counts, "restored": list(self.restored),
                "ran": list(self.ran), "changed": sorted(self.changed),
                "invalidated": sorted(self.invalid)}

    # --- asked by the compiler (the StepCache protocol) ---

    def _real(self, outputs: Any, path: str) -> Any:
        """Recorded outputs with their large values read back from the side files; ``_STALE``,
        and the step marked stale (it runs again), when a side file is gone or altered."""
        if self.large_from is None:
            return outputs
        try:
            return large.resolve(outputs, self.large_from)
        except large.LargeValueMissing:
            self.stale.add(path)
            return _STALE

    def node(self, step: Step, frame_path: str, scope: Scope) -> RecordedNode | None:
        """The recorded outcome of a single node's step, when it may stand in for running it
        (see the module's docstring); None when the step must run."""
        path = step.path
        rec = self.nodes.get(_key(path))
        if rec is None or not rec.ok:
            return None  # failed, cancelled or never ran: it runs (what it runs may restore)
        params = None
        if self._clean(step, frame_path, rec, batch=False):
            compiled = step.compiled
            try:
                params, _ = compiled.resolve(scope, None if compiled.strict else [])
            except TemplateFailure:
                params = None
        if params is None or not _same(params, rec.params) or _redacted(rec.outputs):
            self.stale.add(path)  # (a redacted output is not the real one: the node runs)
            return None
        outputs = self._real(rec.outputs or {}, path)
        if outputs is _STALE:
            return None
        return RecordedNode(rec.params, outputs, rec.action)

    def item(self, step: Step, index: int, item: Any, frame_path: str,
             scope: Scope) -> RecordedItem | None:
        """The recorded outcome of iteration ``index`` of a batch node (``scope``: the
        iteration's), when it may stand in for running it; None when it must run."""
        npath = step.path
        ok = self._batch_ok.get(npath)
        if ok is None:
            rec = self.nodes.get(_key(npath))
            ok = (rec is not None and self._clean(step, frame_path, rec, batch=True)
                  and _same(step.compiled.constant, _constant_part(rec.params, step)))
            self._batch_ok[npath] = ok
            if not ok:
                self.stale.add(npath)
        if not ok:
            return None
        recorded = self._items.get(npath)
        if recorded is None:
            recorded = self._items[npath] = self._recorded(_key(npath))
        irec = recorded.get(index)
        if irec is None:
            return None
        path = f"{npath}.iteration_{index}"
        compiled = step.compiled
        try:
            _, resolved = compiled.resolve(scope, None if compiled.strict else [])
        except TemplateFailure:
            resolved = None
        if (resolved is None or not _same(item, irec.item) or not _same(resolved, irec.params)
                or _redacted(irec.outputs)):
            self.stale.add(path)
            return None
        outputs = self._real(irec.outputs, path)
        if outputs is _STALE:
            return None
        return RecordedItem(irec.params, outputs)

    def _clean(self, node: Step, frame_path: str, rec: NodeRecord, *, batch: bool) -> bool:
        """Whether nothing forces this node to run: same type, not changed or downstream of
        a change, nothing upstream ran again, not inside something that runs again."""
        if rec.type != node.spec.type or rec.batch != batch:
            return False
        run = _instance(frame_path)
        nid = node.spec.id
        if (run, nid) in self.dirty:
            return False
        if nid in self.invalid and self.spec is not None and run == self.spec.name:
            return False
        return not self._under_stale(node.path)

    def _under_stale(self, path: str) -> bool:
        stale = self.stale
        if not stale:
            return False
        i = path.rfind(".")
        while i > 0:
            if path[:i] in stale:
                return True
            i = path.rfind(".", 0, i)
        return False

    # --- the event sink (first of the run's sinks) ---

    def observe(self, event: Event) -> None:
        """Count what was restored and what ran; a node that ran makes everything reachable
        from it run; a batch node whose every iteration was restored gets ``cached``."""
        kind = event["kind"]
        if kind == ev.ITEM_END:
            npath = event["path"].rpartition(".")[0]
            if event.get("cached"):
                self.counts["restored_items"] += 1
                self._hits[npath] += 1
            else:
                self.counts["ran_items"] += 1
                self._missed.add(npath)
        elif kind == ev.NODE_START:
            if "batch" in event:
                self._batches.add(event["path"])
        elif kind == ev.NODE_END:
            path = event["path"]
            self._items.pop(path, None)  # the batch ended: its recorded iterations are done
            if path in self._batches:
                total = (event.get("progress") or {}).get("total", 0)
                rec = self.nodes.get(_key(path))
                if (total and event.get("status") == "ok" and rec is not None and rec.ok
                        and self._batch_ok.get(path) and path not in self._missed
                        and self._hits[path] == total):
                    event["cached"] = True
            if event.get("cached"):
                self.counts["restored_nodes"] += 1
                self.restored.append(path)
            else:
                self.counts["ran_nodes"] += 1
                self.ran.append(path)
                self._ran(path)

    def _ran(self, path: str) -> None:
        found = self._locate(path)
        if found is None:
            return
        run, spec, nid = found
        key = (id(spec), nid)
        reach = self._reach.get(key)
        if reach is None:
            reach = self._reach[key] = frozenset(downstream(spec, set(_successors(spec).get(nid, ()))))
        self.dirty.update((run, n) for n in reach)

    def _locate(self, path: str) -> tuple[str, FlowSpec, str] | None:
        """(the flow run, its spec, the node id) of a node path, walking nested flows."""
        spec = self.spec
        if spec is None:
            return None
        segs = path.split(".")
        run_end = 1
        nested = False
        for k in range(1, len(segs) - 1):
            seg = segs[k].partition("#")[0]
            if ITERATION.fullmatch(seg):
                if nested:
                    run_end = k + 1
                continue
            nested = False
            if BRANCH.fullmatch(seg):
                continue
            node = spec.nodes.get(seg)
            if node is not None and node.type == "workflow" and seg in spec.children:
                spec = spec.children[seg]
                run_end, nested = k + 1, True
        return ".".join(segs[:run_end]), spec, segs[-1].partition("#")[0]


def recorded_base_dir(header: Mapping[str, Any]) -> Path:
    """Where the recorded run's relative paths pointed: its base_dir, else its file's folder."""
    base = header.get("base_dir")
    if isinstance(base, str) and Path(base).is_dir():
        return Path(base)
    source = header.get("source")
    if isinstance(source, str) and Path(source).is_file():
        return Path(source).resolve().parent
    return Path.cwd()


def python_program(path: Any, header: dict[str, Any]) -> str:
    """Why a trace of a Python program cannot be re-run or forked here."""
    target = str(header.get("target"))
    again = f"`pflow-tui {target}`" if ":" in target else "the program"  # else: pflow_tui.trace()
    return (f"{path or 'this trace'}: a run of the Python program {target}; re-running from "
            "failure and forking items need a pflow JSON flow (a Python program's nodes are its "
            f"own code, not data): run it again with {again}")
