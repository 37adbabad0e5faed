"""OpenTelemetry spans in OTLP/JSON: what the collector's ``otlpjsonfile`` receiver reads.

One run is one trace: a span for the run, every node (visit), branch and iteration, each
the child of the span its path is in (``flow.fanout.branch_1.summarize`` is a child of
``flow.fanout.branch_1``, a child of ``flow.fanout``). Ids are derived from the trace's
header and the path (BLAKE2b), so exporting the same trace again gives the same ids.
Times are Unix nanoseconds: the header's ``created`` plus the events' ``t``.

Statuses: ``ok`` is OK; ``error`` is ERROR with the error's message, an ``error.type``
attribute and an ``exception`` event (type, message, stack trace); ``cancelled``,
``skipped`` and ``unfinished`` (never ended: the trace was cut short; the span ends at
the last event) leave the status unset and say so in ``pflow.status``. A wait before an
attempt (for a rate limit, a process slot) is a child span of its node or item, named
``wait: rate limit 'llm'``. Attempts of a node or item that may retry, warnings, races and
pauses are span events. Attributes are named
``pflow.*`` (path, kind, status, node, type, index, item, attempts, cached, batch.*,
progress.*, worker, ...).

On a Dask cluster, an attempt a worker ran is a span of its own (``square attempt``, a
child of its item or node, the same trace) under a resource for that worker
(``service.name`` ``pflow-tui worker``, ``service.instance.id`` its address, ``host.name``
the address's host); the item, node and the wait before the attempt (queued on the
scheduler) stay under the run's resource. A retry on another worker is under that worker's.

The output follows the OTLP file exporter's format: JSON Lines, each line a complete
``TracesData`` (the same JSON as an ``ExportTraceServiceRequest``), in protobuf's JSON
mapping with OTLP's exceptions (hex ids, enums as integers, 64-bit integers as strings).
A line holds spans up to about 512 KiB (the receiver reads lines of at most 1 MiB by
default), so a small run is one line: one JSON document.
"""

from __future__ import annotations

import datetime as dt
import functools
import hashlib
from collections.abc import Iterable, Iterator
from typing import Any

import orjson

from .... import __version__
from ..events import Event
from .spans import Span, cut, json_text, walk

SPAN_KIND_INTERNAL = 1
STATUS_OK, STATUS_ERROR = 1, 2
LINE_BYTES = 512 * 1024  # spans per line up to this size (plus one span)
MESSAGE_LIMIT = 8_000  # characters of an error message or warning kept
STACK_LIMIT = 32_000  # characters of a traceback kept
_EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.timezone.utc)


def trace_id(header: dict[str, Any]) -> str:
    """The run's trace id (32 hex digits), from what identifies the run in its header."""
    key = orjson.dumps([header.get(k) for k in ("created", "pid", "flow_name", "source", "rerun_of")],
                       default=str)
    return _nonzero(hashlib.blake2b(key, digest_size=16, person=b"pflow-tui trace").hexdigest())


@functools.lru_cache(maxsize=4096)  # a batch node's id is every iteration's parent id
def span_id(trace: str, path: str) -> str:
    """The id (16 hex digits) of the span at ``path`` in trace ``trace``."""
    digest = hashlib.blake2b(path.encode("utf-8", "surrogatepass"), digest_size=8,
                             key=bytes.fromhex(trace)).hexdigest()
    return _nonzero(digest)


def _nonzero(digest: str) -> str:
    return digest if digest.strip("0") else digest[:-1] + "1"  # all zeros is an invalid id


def start_ns(header: dict[str, Any]) -> int:
    """When the run started, in Unix nanoseconds (the header's ``created``); ValueError
    when the header has no valid time."""
    created = header.get("created")
    if not isinstance(created, str):
        raise ValueError("the header has no \"created\" time")
    try:
        when = dt.datetime.fromisoformat(created.replace("Z", "+00:00"))
    except ValueError:
        raise ValueError(f"the header's \"created\" is not an ISO 8601 time: {created!r}") from None
    if when.tzinfo is None:
        when = when.replace(tzinfo=dt.timezone.utc)
    return (when - _EPOCH) // dt.timedelta(microseconds=1) * 1000


#: what :func:`otlp_spans` yields: (the cluster worker it ran on, or None: the run's; a span)
Placed = tuple[str | None, dict[str, Any]]
WORKER_SERVICE = "pflow-tui worker"  # service.name of a cluster worker's resource


def otlp_spans(header: dict[str, Any], events: Iterable[Event], counts: dict[str, int] | None = None,
               *, text_limit: int = 1000) -> Iterator[Placed]:
    """The OTLP/JSON span dicts of a run, each when it ends (unfinished ones last), with
    the worker whose resource it goes under (None: the run's).

    ``counts`` gets the spans per kind (see :func:`~.spans.walk`). Item values and inputs
    go in attributes as JSON text cut at ``text_limit`` characters.
    """
    tid = trace_id(header)
    base = start_ns(header)
    for phase, span, mark in walk(events, counts):
        if phase == "begin":
            continue
        if phase == "mark":
            assert mark is not None
            if span is not None:
                e = mark.event
                attrs = {"pflow.path": e.get("path")}
                for key in ("message", "key", "reason"):
                    if key in e:
                        attrs[f"pflow.{key}"] = e[key]
                if isinstance(e.get("paths"), list):
                    attrs["pflow.paths"] = e["paths"][:100]
                    attrs["pflow.paths_count"] = len(e["paths"])
                if e.get("breakpoint") is not None:
                    attrs["pflow.breakpoint"] = json_text(e["breakpoint"], text_limit)
                _note(span, _event(base, mark.t, mark.kind, attrs, text_limit))
            continue
        assert span is not None
        if span.kind == "attempt":
            owner = span.up
            if span.worker is not None:  # ran on a cluster worker: a span under its resource
                yield span.worker, _span(span, tid, base, text_limit)
            if owner is not None and owner.path == span.path and not span.implied:
                attrs = {"pflow.attempt": span.attrs.get("attempt"), "pflow.status": span.status,
                         "pflow.will_retry": span.result.get("will_retry")}
                if span.error:
                    attrs["error.type"] = span.error.get("type")
                    attrs["pflow.error.message"] = span.error.get("message")
                _note(owner, _event(base, span.end, "attempt", attrs, text_limit))
            continue
        yield None, _span(span, tid, base, text_limit)


def otlp_lines(header: dict[str, Any], spans: Iterable[Placed], *, status: str,
               truncated: bool, line_bytes: int = LINE_BYTES) -> Iterator[bytes]:
    """The file's lines: ``TracesData`` objects of up to about ``line_bytes`` of spans each,
    with the scope and the run's resource, and a resource per cluster worker for the spans
    that ran there (at least one line, even without spans)."""
    run_resource = {"attributes": _attributes({
        "service.name": str(header.get("flow_name") or "flow"),
        "pflow.flow": header.get("flow_name"),
        "pflow.source": header.get("source"),
        "pflow.trace.created": header.get("created"),
        "pflow.trace.status": status,
        "pflow.trace.truncated": truncated,
        "pflow.rerun_of": header.get("rerun_of"),
        "process.pid": header.get("pid"),
        "process.runtime.version": header.get("python"),
    }, 1000)}
    scope = orjson.dumps({"name": "pflow-tui", "version": __version__})
    heads: dict[str | None, bytes] = {}  # a resource's opening, up to its spans

    def head(worker: str | None) -> bytes:
        found = heads.get(worker)
        if found is None:
            resource = run_resource if worker is None else _worker_resource(header, worker)
            found = heads[worker] = (b'{"resource":' + orjson.dumps(resource) + b',"scopeSpans":[{"scope":'
                                     + scope + b',"spans":[')
        return found

    def line(batches: dict[str | None, list[bytes]]) -> bytes:
        groups = [head(worker) + b",".join(batch) + b"]}]}" for worker, batch in batches.items()]
        return b'{"resourceSpans":[' + b",".join(groups) + b"]}\n"

    batches: dict[str | None, list[bytes]] = {}
    size = 0
    written = False
    for worker, span in spans:
        data = orjson.dumps(span)
        if batches and size + len(data) > line_bytes:
            yield line(batches)
            written = True
            batches, size = {}, 0
        batch = batches.get(worker)
        if batch is None:
            batch = batches[worker] = []
            size += len(head(worker))
        batch.append(data)
        size += len(data) + 1
    if batches or not written:
        yield line(batches or {None: []})


def _worker_resource(header: dict[str, Any], worker: str) -> dict[str, Any]:
    """The resource of a cluster worker's spans: the worker's address and host, the run's flow."""
    host = worker.partition("://")[2].rpartition(":")[0].strip("[]") or worker
    return {"attributes": _attributes({
        "service.name": WORKER_SERVICE,
        "service.instance.id": worker,
        "host.name": host,
        "pflow.worker": worker,
        "pflow.flow": header.get("flow_name"),
        "pflow.trace.created": header.get("created"),
    }, 1000)}


def _span(span: Span, tid: str, base: int, limit: int) -> dict[str, Any]:
    # a wait or an attempt shares its node's or item's path: its id is its own, its parent that span
    own = f"{span.path}/{span.kind}#{span.order}" if span.kind in ("wait", "attempt") else span.path
    out: dict[str, Any] = {"traceId": tid, "spanId": span_id(tid, own)}
    if span.parent is not None:
        out["parentSpanId"] = span_id(tid, span.parent)
    a = span.attrs
    owner = span.up.attrs.get("node") if span.up is not None and span.up.path == span.path else None
    if span.kind == "node":
        name = str(a.get("node", span.name))
    elif span.kind == "item":
        name = f"{a.get('node', '')} iteration"
    elif span.kind == "attempt":  # one on a cluster worker
        name = f"{owner} attempt" if isinstance(owner, str) else "attempt"
    else:
        name = span.name
    end = _ns(base, span.end)
    out.update(name=name, kind=SPAN_KIND_INTERNAL, startTimeUnixNano=str(_ns(base, span.start)),
               endTimeUnixNano=str(end))
    attrs: dict[str, Any] = {"pflow.kind": span.kind, "pflow.path": span.path, "pflow.status": span.status}
    if span.kind == "attempt" and isinstance(owner, str):
        attrs["pflow.node"] = owner
    _flatten(attrs, "pflow", {**a, **span.result}, limit)
    error = span.error
    if error is not None:
        attrs["error.type"] = str(error.get("type") or "Error")
    out["attributes"] = _attributes(attrs, limit)
    notes = span.notes or []
    if error is not None:
        exc = {"exception.type": str(error.get("type") or "Error"),
               "exception.message": cut(str(error.get("message", "")), MESSAGE_LIMIT)}
        if isinstance(error.get("traceback"), str):
            exc["exception.stacktrace"] = cut(error["traceback"], STACK_LIMIT)
        notes.append({"timeUnixNano": str(end), "name": "exception", "attributes": _attributes(exc, limit)})
    if notes:
        out["events"] = notes
    if span.status == "ok":
        out["status"] = {"code": STATUS_OK}
    elif span.status == "error":
        message = error.get("message") if error is not None else None
        out["status"] = {"code": STATUS_ERROR, "message": cut(str(message or "failed"), MESSAGE_LIMIT)}
    return out


def _ns(base: int, t: float) -> int:
    return base + round(t * 1e9)


def _note(span: Span, event: dict[str, Any]) -> None:
    if span.notes is None:
        span.notes = []
    span.notes.append(event)


def _event(base: int, t: float, name: str, attrs: dict[str, Any], limit: int) -> dict[str, Any]:
    return {"timeUnixNano": str(_ns(base, t)), "name": name, "attributes": _attributes(attrs, limit)}


def _flatten(out: dict[str, Any], prefix: str, values: dict[str, Any], limit: int) -> None:
    for key, value in values.items():
        name = f"{prefix}.{key}"
        if key in ("item", "inputs"):
            out[name] = json_text(value, limit)
        elif isinstance(value, dict):
            _flatten(out, name, value, limit)
        else:
            out[name] = value


def _attributes(values: dict[str, Any], limit: int) -> list[dict[str, Any]]:
    """OTLP ``KeyValue`` list; None values are left out."""
    out = []
    for key, value in values.items():
        encode = _ENCODE.get(value.__class__)
        if encode is not None:
            out.append({"key": key, "value": encode(value)})
        elif value is not None:
            out.append({"key": key, "value": _any(value, limit)})
    return out


def _int(value: int) -> dict[str, Any]:
    return {"intValue": str(value)} if -(2**63) <= value < 2**63 else {"stringValue": str(value)}


_ENCODE = {
    str: lambda v: {"stringValue": v if len(v) <= MESSAGE_LIMIT else cut(v, MESSAGE_LIMIT)},
    bool: lambda v: {"boolValue": v},
    int: _int,
    float: lambda v: {"doubleValue": v},
}


def _any(value: Any, limit: int) -> dict[str, Any]:
    """An attribute value that is not a plain string, number or bool."""
    if isinstance(value, list) and all(isinstance(v, str) for v in value):
        return {"arrayValue": {"values": [{"stringValue": cut(v, MESSAGE_LIMIT)} for v in value]}}
    for kind, encode in _ENCODE.items():  # subclasses (an IntEnum, say)
        if isinstance(value, kind):
            return encode(value)
    return {"stringValue": json_text(value, limit)}
