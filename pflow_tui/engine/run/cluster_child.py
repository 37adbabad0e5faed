"""The worker's side of a ``workflow`` node on a Dask cluster (see :mod:`.cluster_nested`).

:func:`run_child` runs one attempt's whole child flow on this worker, as it would run in the
run (compiled by :func:`.flow.compile_flow`, bound by :func:`.nested.workflow_type`), with
its events collected by an :class:`Outbox` and sent to the run in numbered chunks (within
:data:`FLUSH_EVERY` seconds of the first event of a chunk, and at the end). The child flows
of a worker process share one event loop, in a thread of its own. The job names this
function (``cluster_nested.CHILD``): the run's modules never import this one.
"""

from __future__ import annotations

import asyncio
import pickle
import threading
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ..ir.spec import FlowSpec

FLUSH_EVERY = 0.01  # seconds from the first event of a chunk to its sending

_children: dict[str, FlowSpec] = {}  # digest -> the child flow (a worker runs many items of one)


class Outbox:
    """A task's events on the worker, sent to the run in numbered chunks: the first event
    after a send arms a timer, and everything emitted until it fires goes as one chunk (no
    wake-ups while nothing happens). Used on the loop's thread only."""

    __slots__ = ("events", "key", "loop", "n", "send", "timer", "topic")

    def __init__(self, send: Callable[[str, Any], None], topic: str, key: str,
                 loop: asyncio.AbstractEventLoop) -> None:
        self.send, self.topic, self.key, self.loop = send, topic, key, loop
        self.events: list[dict[str, Any]] = []
        self.n = 0
        self.timer: asyncio.TimerHandle | None = None

    def __call__(self, event: dict[str, Any]) -> None:  # an Emitter's sink
        self.events.append(event)
        if self.timer is None:
            self.timer = self.loop.call_later(FLUSH_EVERY, self.flush)

    def flush(self, extras: dict[str, Any] | None = None) -> None:
        if self.timer is not None:
            self.timer.cancel()
            self.timer = None
        if not self.events and not extras:
            return
        events, self.events = self.events, []
        self.send(self.topic, ("events", self.key, self.n, _dumps(events, extras)))
        self.n += 1


def _dumps(events: list[dict[str, Any]], extras: dict[str, Any] | None) -> bytes:
    try:
        return pickle.dumps((events, extras), pickle.HIGHEST_PROTOCOL)
    except Exception:  # a value that does not pickle: as the trace would show it (JSON)
        import orjson

        from ..trace.writer import dumps

        return pickle.dumps(([orjson.loads(dumps(e)) for e in events], extras),
                            pickle.HIGHEST_PROTOCOL)


def run_child(send: Callable[[str, Any], None], topic: str, key: str,
              job: tuple[Any, ...]) -> tuple[Any, ...]:
    """One attempt of a ``workflow`` node on this worker: ``("ok", outputs)`` or ``("error",
    type name, message, traceback)``, as :func:`.pool_worker.run_job`; its events go out
    through ``send(topic, message)`` (the worker's ``log_event``) as they happen."""
    _, _, digest, blob, params, path, attempt, index, base_dir, visits = job
    loop = _loop()
    return asyncio.run_coroutine_threadsafe(
        _child(digest, blob, params, path, attempt, index, base_dir, visits,
               Outbox(send, topic, key, loop)), loop).result()


_lock = threading.Lock()
_serving: list[asyncio.AbstractEventLoop] = []


def _loop() -> asyncio.AbstractEventLoop:
    """This worker process's event loop for nested flows, in a thread of its own, started
    by the first one. Kept, with the threads it runs blocking nodes in, for the next tasks:
    a loop per task made its threads anew each time (~1 ms a task)."""
    with _lock:
        if not _serving:
            loop = asyncio.new_event_loop()
            ready = threading.Event()

            def serve() -> None:
                asyncio.set_event_loop(loop)
                loop.run_until_complete(_forever(ready))  # (anyio's root task: threads stay)

            threading.Thread(target=serve, name="pflow-tui-nested-flows", daemon=True).start()
            ready.wait()
            _serving.append(loop)
        return _serving[0]


async def _forever(ready: threading.Event) -> None:
    ready.set()
    await asyncio.Event().wait()


async def _child(digest: str, blob: bytes, params: dict[str, Any], path: str, attempt: int,
                 index: int | None, base_dir: str, visits: dict[tuple[str, str], int],
                 outbox: Outbox) -> tuple[Any, ...]:
    from ..nodes.base import RunContext
    from ..registry import registry
    from ..trace.events import Emitter
    from .execution import Execution
    from .flow import compile_flow
    from .nested import workflow_type

    ex = None
    try:
        child = _children.get(digest)
        if child is None:
            if len(_children) > 32:
                _children.clear()
            child = _children[digest] = pickle.loads(blob)
        ex = Execution(child, Emitter([outbox]), {}, {})
        ex.on_worker = True
        ex.base_dir = base_dir
        ex.visits.update(visits)
        types = registry()
        node_type = workflow_type(child, compile_flow(child, ex, types), ex, types)
        out = await node_type.run(params, RunContext(path, attempt, index, base_dir))  # type: ignore[misc]
        answer: tuple[Any, ...] = ("ok", _plain(out))
        pickle.dumps(answer, pickle.HIGHEST_PROTOCOL)
    except Exception as exc:  # (as run_job: never raises for what the child does)
        answer = _error(exc)
    finally:
        extras = None
        if ex is not None:
            await ex.aclose()
            extras = {"usage": (ex.usage.models, ex.usage.calls) if ex.usage.calls else None,
                      "template_errors": ex.shared.get("__template_errors__")}
        outbox.flush(extras)  # the last chunk, before the task's answer
    return answer


def _plain(out: dict[str, Any]) -> dict[str, Any]:
    """The child's outputs with its spilled lists (a batch with ``batch_size``, in a folder
    of this worker) read into plain lists: they go back to the run."""
    from .spill import LazyList

    return {k: (list(v) if isinstance(v, LazyList) else v) for k, v in out.items()}


def _error(exc: BaseException) -> tuple[str, str, str, str]:
    import traceback

    return ("error", type(exc).__name__, str(exc) or type(exc).__name__,
            "".join(traceback.format_exception(exc)))
