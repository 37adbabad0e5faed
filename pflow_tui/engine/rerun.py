"""Re-run from failure, and forking one item (see docs/rerun.md).

A re-run executes a flow again with a :class:`RunCache` built from the trace of an
earlier run. The compiler asks the cache, at the start of every node step and every
batch iteration, whether the recorded result can stand in for running it again:

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

:func:`fork_item` runs one node (or one batch iteration) of a recorded run again, alone,
with some of its params changed: no flow, no events, no trace.
"""

from __future__ import annotations

import re
import threading
from collections import Counter, deque
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from functools import partial
from itertools import islice
from pathlib import Path
from time import perf_counter
from types import SimpleNamespace
from typing import TYPE_CHECKING, Any

import anyio
import anyio.to_thread
import orjson

from . import events as ev
from . import large
from .compiler import (
    Call,
    Execution,
    Frame,
    Params,
    TemplateFailure,
    _coerce,
    _ItemOutcome,
    _split,
    _write_node,
)
from .events import Emitter, Event, Sink, error_info
from .ir.load import build_flow, load_flow
from .ir.spec import FlowSpec, NodeSpec, children_ir
from .ir.templates import to_text
from .nodes.base import NodeType
from .problems import FlowError, Problem, clip, did_you_mean
from .redact import Redactor, find_secrets, marks_in, unredact
from .replay import TraceIndex, TraceStream
from .trace import Trace, TraceError, dumps, read_trace

if TYPE_CHECKING:
    from .compiler import PflowBatchNode, PflowNode
    from .executor import RunResult

_CANON = orjson.OPT_SORT_KEYS | orjson.OPT_NON_STR_KEYS
_ITERATION = re.compile(r"iteration_\d+")
_BRANCH = re.compile(r"branch_\d+")
_BRANCH_TAIL = re.compile(r"(\.[^.]+\.branch_\d+)+$")  # "<fanout>.branch_<i>" frames
#: IR keys that do not change what a node computes (the rest, changed, invalidates every node)
_NOT_SETTINGS = frozenset(("nodes", "edges", "inputs", "outputs", "name", "description",
                           "ir_version", "max_visits"))


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


#: the events from_trace reads: every kind but item.* and attempt.* (matched on the raw line)
_NOT_ITEM = re.compile(rb'\{"seq":\d+,"t":[^,]*,"kind":"(?!item\.|attempt\.)')


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


# --- the cache --------------------------------------------------------------------------------

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
                  else source.matching(0, _NOT_ITEM))
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
        """Malformed events of the recorded trace met so far (skipped: see eventcheck)."""
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
            quoted = re.escape(orjson.dumps(path)[1:-1])
            pattern = re.compile(rb'\{"seq":\d+,"t":[^,]*,"kind":"(?:item\.start|item\.end|node\.end)",'
                                 rb'"path":"' + quoted + rb'(?:\.iteration_\d+)?"')
            events = (e for _, e in trace.matching(rec.at, pattern))
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

    # --- asked by the compiler ---

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

    def restore_node(self, node: PflowNode, frame: Frame) -> str | None:
        """Restore a single node's step (its events, store writes) and return the recorded
        action; None when it must run."""
        path = node.path
        rec = self.nodes.get(_key(path))
        if rec is None or not rec.ok:
            return None  # failed, cancelled or never ran: it runs (what it runs may restore)
        params = None
        if self._clean(node, frame, rec, batch=False):
            try:
                params, _ = node.compiled.resolve(frame.scope, None if node.compiled.strict else [])
            except TemplateFailure:
                params = None
        if params is None or not _same(params, rec.params) or _redacted(rec.outputs):
            self.stale.add(path)  # (a redacted output is not the real one: the node runs)
            return None
        ex, nid = node.ex, node.spec.id
        ex.joins.pop((frame.path, nid), None)
        outputs = self._real(rec.outputs or {}, path)
        if outputs is _STALE:
            return None
        ex.emit(ev.NODE_START, path, {"node": nid, "type": node.spec.type, "params": rec.params,
                                      "cached": True})
        ns, root = _split(outputs)
        if node.flow.namespacing:
            _write_node(ex, frame, nid, ns, path)
        else:
            root = {**ns, **root}
        for k, v in root.items():
            ex.write(frame.store, k, v, path)
        frame.last = (nid, outputs)
        ex.emit(ev.NODE_END, path, {"node": nid, "status": "ok", "duration": 0.0,
                                    "action": rec.action, "attempts": 0, "outputs": outputs,
                                    "cached": True})
        gate = getattr(ex, "gate", None)
        if gate is not None:  # a node stepped over ends here too
            gate.after(path, nid, None, "ok", 0.0)
        return rec.action

    def restore_item(self, node: PflowBatchNode, index: int, item: Any,
                     frame: Frame) -> _ItemOutcome | None:
        """Restore one batch iteration (its events) and return its outcome; None when it
        must run."""
        npath = node.path
        ok = self._batch_ok.get(npath)
        if ok is None:
            rec = self.nodes.get(_key(npath))
            ok = (rec is not None and self._clean(node, frame, rec, batch=True)
                  and _same(node.compiled.constant, rec.params))
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
        alias = node.spec.batch.alias if node.spec.batch else "item"
        scope = ({alias: item, "__index__": index}, *frame.scope)
        try:
            _, resolved = node.compiled.resolve(scope, None if node.compiled.strict else [])
        except TemplateFailure:
            resolved = None
        if (resolved is None or not _same(item, irec.item) or not _same(resolved, irec.params)
                or _redacted(irec.outputs)):
            self.stale.add(path)
            return None
        outputs = self._real(irec.outputs, path)
        if outputs is _STALE:
            return None
        send = node.ex.emitter.send  # the per-item path: one dict per event
        send({"seq": 0, "t": 0.0, "kind": ev.ITEM_START, "path": path, "index": index,
              "label": node.label_of(scope, item), "item": item, "params": irec.params, "cached": True})
        send({"seq": 0, "t": 0.0, "kind": ev.ITEM_END, "path": path, "index": index, "status": "ok",
              "duration": 0.0, "attempts": 0, "outputs": outputs, "cached": True})
        return _ItemOutcome("ok", {**outputs, "item": item}, None, 0.0)

    def _clean(self, node: PflowNode | PflowBatchNode, frame: Frame, rec: NodeRecord, *,
               batch: bool) -> bool:
        """Whether nothing forces this node to run: same type, not changed or downstream of
        a change, nothing upstream ran again, not inside something that runs again."""
        if rec.type != node.spec.type or rec.batch != batch:
            return False
        run = _instance(frame.path)
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
            if _ITERATION.fullmatch(seg):
                if nested:
                    run_end = k + 1
                continue
            nested = False
            if _BRANCH.fullmatch(seg):
                continue
            node = spec.nodes.get(seg)
            if node is not None and node.type == "workflow" and seg in spec.children:
                spec = spec.children[seg]
                run_end, nested = k + 1, True
        return ".".join(segs[:run_end]), spec, segs[-1].partition("#")[0]


# --- re-running -------------------------------------------------------------------------------

def _base_dir(header: Mapping[str, Any]) -> Path:
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


def prepare_rerun(trace: str | Path | Trace | TraceIndex, *, flow: str | Path | None = None,
                  inputs: Mapping[str, Any] | None = None, as_text: bool = False,
                  registry: Mapping[str, NodeType] | None = None, upto: int | None = None
                  ) -> tuple[FlowSpec, dict[str, Any], RunCache]:
    """The flow, inputs and cache of a re-run of ``trace`` (for callers that run it
    themselves: ``execute(spec, inputs, sinks, cache=cache)``).

    The flow is ``flow`` (a file), else the IR recorded in the trace. The inputs are the
    recorded ones overlaid with ``inputs`` (command-line text when ``as_text``). Raises
    TraceError (not a trace, no flow in it) or FlowError (flow or inputs invalid).
    ``upto``: use only the first ``upto`` bytes' events (see :meth:`RunCache.from_trace`).

    Nothing checks here who made the trace: callers that run it ask first
    (:func:`pflow_tui.engine.trust.verify`, :func:`~pflow_tui.engine.trust.rerun_plan`).
    """
    from .executor import _from_text, prepare_inputs

    cache = RunCache.from_trace(trace, upto=upto)
    header = cache.header
    given = dict(inputs or {})
    ir = header.get("flow")
    # the secrets the recorded run did not write down: read again, never used as «redacted:…»
    # (nested flows from files are read from their files; inline ones are in ``ir``)
    names = marks_in(cache.inputs) | (marks_in(ir) if flow is None else set())
    secrets: dict[str, str] = {}
    if names:
        secrets, missing = find_secrets(names, given)
        if missing:
            raise FlowError("command line", [Problem(
                f"secret {clip(name)}", f"the trace holds no value for {clip(name)} (it was "
                f"redacted as «redacted:{clip(name)}»)",
                f"set the environment variable {clip(name)}, or pass {clip(name)}=VALUE")
                for name in missing])
    if flow is not None:
        spec = load_flow(flow, registry)
    else:
        if not isinstance(ir, dict) or not isinstance(ir.get("nodes"), list):
            raise TraceError(f"{cache.source}: the trace holds no flow; give the flow file with --flow")
        if secrets:
            ir = unredact(ir, secrets)
        source = header.get("source")
        spec = build_flow(ir, source=source if isinstance(source, str) else "<flow>",
                          base_dir=_base_dir(header),
                          default_name=str(header.get("flow_name") or "flow"), registry=registry)
    given = {k: v for k, v in given.items() if k in spec.inputs or k not in secrets}
    if as_text:
        given = {k: _from_text(v, spec.inputs[k].type) if k in spec.inputs and isinstance(v, str)
                 else v for k, v in given.items()}
    recorded = {k: v for k, v in cache.inputs.items() if k in spec.inputs}
    again: set[str] = set()  # inputs recorded redacted: secret in this run too
    for k, v in recorded.items():
        if isinstance(v, str) and "«redacted:" in v:
            again.add(k)
            value = unredact(v, secrets)
            recorded[k] = _from_text(value, spec.inputs[k].type) if value != v else value
    values = prepare_inputs(spec, {**recorded, **given})
    values.from_env = values.from_env | {k for k in again if k not in given}
    cache.bind(spec)
    return spec, values, cache


def rerun_flow(trace_path: str | Path, *, flow: str | Path | None = None,
               inputs: Mapping[str, Any] | None = None, trace: str | Path | None = None,
               sinks: Sequence[Sink] = (), registry: Mapping[str, NodeType] | None = None,
               stop: threading.Event | None = None, as_text: bool = False,
               upto: int | None = None) -> RunResult:
    """Re-run the run recorded in ``trace_path``: restore what ended ok, run the rest.

    ``flow``: an edited flow file to run instead of the recorded IR; ``inputs`` overlay the
    recorded inputs; ``trace``: where the new trace goes (its header has ``rerun_of``).
    The result's ``rerun`` holds :meth:`RunCache.summary`.
    """
    from .executor import run_flow
    from .trace import default_trace_path

    spec, values, cache = prepare_rerun(trace_path, flow=flow, inputs=inputs, as_text=as_text,
                                        registry=registry, upto=upto)
    out = Path(trace) if trace else default_trace_path(spec.name)
    check_output(out, cache)
    result = run_flow(spec, values, trace=out, sinks=sinks, registry=registry, stop=stop, cache=cache)
    result.rerun = cache.summary()
    return result


def check_output(out: str | Path, cache: RunCache) -> None:
    """Refuse to write the new trace over the one being re-run (FlowError)."""
    if Path(out).resolve() == Path(cache.source).resolve():
        raise FlowError("command line", [Problem(
            "--trace", f"{out} is the trace being re-run", "write the new trace to another path")])


# --- forking one item -------------------------------------------------------------------------

class ForkError(ValueError):
    """A fork that cannot run: unknown node or item, bad params."""


def _find_node(root_ir: Mapping[str, Any], root_children: Mapping[str, Any], path: str
               ) -> tuple[dict[str, Any], list[str]]:
    """The IR of the node at ``path`` and the workflow nodes leading to it (walking nested
    flows through the recorded children IR)."""
    ir, children = root_ir, root_children
    segs = path.split(".")[1:]
    chain: list[str] = []
    if not segs:
        raise ForkError(f"'{path}' is the flow itself, not a node: give a node path")

    def node_of(seg: str) -> dict[str, Any] | None:
        return next((n for n in ir.get("nodes") or () if isinstance(n, dict) and n.get("id") == seg),
                    None)

    for k, raw in enumerate(segs):
        seg = raw.partition("#")[0]
        if _ITERATION.fullmatch(seg) or _BRANCH.fullmatch(seg):
            continue
        node = node_of(seg)
        if node is None:
            ids = [n.get("id") for n in ir.get("nodes") or () if isinstance(n, dict)]
            raise ForkError(f"no node '{seg}' in the flow at '{path}' "
                            f"({did_you_mean(seg, [i for i in ids if isinstance(i, str)], 'its nodes')})")
        if k == len(segs) - 1:
            return node, chain
        if node.get("type") == "workflow":
            child = children.get(seg)
            if not isinstance(child, dict):
                raise ForkError(f"the child flow of '{seg}' is not recorded")
            ir, children = child.get("flow") or {}, child.get("children") or {}
            chain.append(seg)
    raise ForkError(f"'{path}' does not name a node")  # pragma: no cover (the loop returns)


def _first(source: Trace | TraceIndex, kind: str, path: str) -> Event | None:
    if isinstance(source, TraceIndex):
        return source.first_at(kind, path)
    return next((e for e in source.events if e.get("kind") == kind and e.get("path") == path), None)


async def fork_item_async(source: str | Path | Trace | TraceIndex | FlowSpec, node_id: str,
                          index: int | None, params_override: Mapping[str, Any] | None = None, *,
                          registry: Mapping[str, NodeType] | None = None) -> dict[str, Any]:
    """:func:`fork_item`, in the caller's event loop (the app's)."""
    if registry is None:
        from .registry import registry as default_registry

        registry = default_registry()
    recorded: Trace | TraceIndex | None = None
    if isinstance(source, FlowSpec):
        spec: FlowSpec | None = source
        header: dict[str, Any] = {"flow_name": source.name, "flow": source.ir,
                                  "children": children_ir(source)}
        base_dir = source.base_dir
    else:
        spec = None
        if isinstance(source, (str, Path)):
            try:
                recorded = TraceIndex(source)
            except TraceError:
                recorded = read_trace(source)
        else:
            recorded = source
        header = recorded.header
        base_dir = _base_dir(header)
    if header.get("target"):
        raise ForkError(python_program(getattr(recorded, "path", None), header))
    root = str(header.get("flow_name") or "flow")
    path = node_id if "." in node_id else f"{root}.{node_id}"
    node_ir, chain = _find_node(header.get("flow") or {}, header.get("children") or {}, path)
    nid, type_name = str(node_ir["id"]), str(node_ir.get("type"))
    node_type = registry.get(type_name)
    if node_type is None:
        raise ForkError(f"node '{nid}' has type '{type_name}', which is not installed")
    batch = node_ir.get("batch") if isinstance(node_ir.get("batch"), dict) else None
    if batch is not None and index is None:
        raise ForkError(f"node '{nid}' is a batch node: give the index of the iteration to fork")
    if batch is None and index is not None:
        raise ForkError(f"node '{nid}' is not a batch node: fork it without an index")
    target = path if index is None else f"{path}.iteration_{index}"

    raw = {k: v for k, v in (node_ir.get("params") or {}).items()
           if not (type_name == "workflow" and k == "workflow_ir")}
    compiled = Params(raw, node_type, True)
    params: dict[str, Any] = dict(compiled.constant)
    original: dict[str, Any] | None = None
    if recorded is not None:
        start = _first(recorded, ev.NODE_START, path)
        if start is None:
            raise ForkError(f"'{path}' did not run in this trace: nothing recorded to fork")
        params.update(start.get("params") or {})
        end_kind = ev.NODE_END
        if index is not None:
            item_start = _first(recorded, ev.ITEM_START, target)
            if item_start is None:
                count = (start.get("batch") or {}).get("count")
                raise ForkError(f"iteration {index} of '{path}' did not run in this trace"
                                + (f" (it has {count} items)" if count is not None else ""))
            params.update(item_start.get("params") or {})
            end_kind = ev.ITEM_END
        end = _first(recorded, end_kind, target)
        original = {"status": end.get("status") if end else "never ended",
                    "outputs": end.get("outputs") if end else None,
                    "error": end.get("error") if end else None,
                    "duration": end.get("duration") if end else None,
                    "params": dict(params)}

    override = dict(params_override or {})
    # store keys the node type reads (delete-file's confirm_delete) may be overridden too
    store_override = {k: override.pop(k) for k in list(override) if k in node_type.reads}
    problems = []
    for key, value in override.items():
        p = node_type.param(key)
        if p is None:
            problems.append(f"'{key}' is not a param of {type_name} nodes ("
                            + (did_you_mean(key, [q.name for q in node_type.params], "its params")
                               or "it declares no params") + ")")
            continue
        value = override[key] = _coerce(value, p.type)
        if p.choices and isinstance(value, str) and value not in p.choices:
            problems.append(f"'{key}' must be one of {', '.join(p.choices)}, not {value!r}")
    if problems:
        raise ForkError(f"cannot fork '{target}': " + "; ".join(problems))
    params.update(override)
    if node_type.reads:  # what the run gave it in params["__store__"] (an item's is not recorded)
        reads = params.get("__store__")
        if not isinstance(reads, dict):
            reads = _recorded_reads(node_type.reads, header, recorded, spec)
        params["__store__"] = {**reads, **store_override}
    missing = [k for k in compiled.templates if k not in params]
    if missing:
        raise ForkError(f"cannot fork '{target}': the templated param(s) {', '.join(missing)} "
                        "have no recorded value; give them in params_override")

    # secrets the trace did not write down: read again from the environment, never used as
    # «redacted:…»; what the fork shows is redacted as a run's events are
    redactor = Redactor()
    names = marks_in(params)
    if names:
        found, absent = find_secrets(names, {})
        if absent:
            raise ForkError(f"cannot fork '{target}': the trace holds no value for "
                            f"{', '.join(clip(n) for n in absent)} (redacted): set the environment "
                            "variable of that name, or give the param in params_override")
        params = unredact(params, found)
        for name, value in found.items():
            redactor.add(value, name)
    if type_name == "workflow":
        node_type = _bound_workflow(spec, header, chain, nid, node_ir, base_dir, registry)
    if batch is not None:
        retries, wait = int(batch.get("max_retries", 1)), float(batch.get("retry_wait", 0.0))
    else:
        retries, wait = node_type.max_retries, node_type.wait
    result = await _run_alone(node_type, target, params, index, str(base_dir), max(1, retries),
                              wait, original)
    return redactor.scrub(result)


def _recorded_reads(keys: tuple[str, ...], header: Mapping[str, Any],
                    recorded: Trace | TraceIndex | None, spec: FlowSpec | None) -> dict[str, Any]:
    """The store keys a node type reads (``NodeType.reads``), as its scope had them: the run's
    inputs, then the root of its final store; for a flow not run, the inputs' defaults."""
    layers: list[Mapping[str, Any]] = []
    if recorded is not None:
        layers.append(header.get("inputs") or {})
        footer = recorded.footer if isinstance(recorded.footer, Mapping) else {}
        layers.append(footer.get("store") or {})
    if spec is not None:
        layers.append({name: i.default for name, i in spec.inputs.items() if i.has_default})
    found: dict[str, Any] = {}
    for key in keys:
        for layer in layers:
            if isinstance(layer, Mapping) and key in layer:
                found[key] = layer[key]
                break
    return found


def _bound_workflow(spec: FlowSpec | None, header: Mapping[str, Any], chain: list[str], nid: str,
                    node_ir: dict[str, Any], base_dir: Path,
                    registry: Mapping[str, NodeType]) -> NodeType:
    """The workflow node type bound to its child flow, compiled for a run of its own."""
    from .workflow import workflow_type

    if spec is not None:
        for seg in chain:
            spec = spec.children[seg]
        child = spec.children[nid]
    else:
        children = header.get("children") or {}
        for seg in chain:
            children = (children.get(seg) or {}).get("children") or {}
        recorded = children.get(nid) or {}
        child = build_flow(recorded.get("flow") or {}, source=f"<fork> > {nid}", base_dir=base_dir,
                           default_name=nid, registry=registry)
    ex = Execution(child, Emitter([]), {}, {})  # the child's events go nowhere
    node = NodeSpec(nid, "workflow", dict(node_ir.get("params") or {}))
    return workflow_type(SimpleNamespace(children={nid: child}), node, ex,  # type: ignore[arg-type]
                         registry)


async def _run_alone(node_type: NodeType, path: str, params: dict[str, Any], index: int | None,
                     base_dir: str, retries: int, wait: float,
                     original: dict[str, Any] | None) -> dict[str, Any]:
    call = Call(path, dict(params), index, base_dir)
    t0 = perf_counter()
    out: Any = None
    failure: BaseException | None = None
    for attempt in range(1, retries + 1):
        call.attempt = attempt
        call.params = dict(params)  # a node type may change what it is given
        failure = None
        try:
            if node_type.is_async:
                out = await node_type.run(call.params, call)  # type: ignore[misc]
            elif node_type.blocking:
                call.cancel = threading.Event()
                out = await anyio.to_thread.run_sync(node_type.run, call.params, call,
                                                     abandon_on_cancel=True)
            else:
                out = node_type.run(call.params, call)
            if not isinstance(out, Mapping):
                raise TypeError(f"node type '{node_type.name}' returned {type(out).__name__}, "
                                "not a dict")
            break
        except Exception as exc:
            failure = exc
            if attempt < retries and wait > 0:
                await anyio.sleep(wait)
    if failure is not None:
        error: dict[str, Any] | None = error_info(failure)
        outputs: dict[str, Any] = {"error": error["message"]}  # type: ignore[index]
    else:
        outputs = dict(out)
        error = ({"type": "NodeError", "message": to_text(outputs["error"])}
                 if "error" in outputs else None)
    return {"path": path, "status": "error" if error else "ok", "outputs": outputs, "error": error,
            "duration": perf_counter() - t0, "attempts": call.attempt, "params": params,
            "original": original}


def fork_item(source: str | Path | Trace | TraceIndex | FlowSpec, node_id: str, index: int | None,
              params_override: Mapping[str, Any] | None = None, *,
              registry: Mapping[str, NodeType] | None = None) -> dict[str, Any]:
    """Run one iteration (``index``) of a batch node, or one single node (``index`` None),
    of a recorded run again, alone, with ``params_override`` over its recorded params.

    ``source``: a trace (path, Trace or TraceIndex), or a FlowSpec (then only the node's
    constant params are known: templated ones must be overridden). ``node_id``: a node id
    of the top flow, or a node path (``flow.per_file.iteration_3.read``, ``flow.review#2``).
    The node type runs directly, with its retries; no flow runs, no event is emitted, no
    trace is written. A node type that reads store keys (``NodeType.reads``, delete-file's
    ``confirm_delete``) gets them as the run had them (its inputs, then its final store; a
    FlowSpec's input defaults); ``params_override`` may set them too. Returns
    ``{"path", "status", "outputs", "error", "duration",
    "attempts", "params" (the params used), "original"}`` (``original``: the recorded
    status, outputs, error, duration and params; None for a FlowSpec). Raises ForkError.
    """
    return anyio.run(partial(fork_item_async, source, node_id, index, params_override,
                             registry=registry))


__all__ = ["ForkError", "ItemRecord", "NodeRecord", "RunCache", "changed_nodes", "check_output",
           "downstream", "fork_item", "fork_item_async", "prepare_rerun", "rerun_flow"]
