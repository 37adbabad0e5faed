"""Batch items (or a node's single call) on a Dask cluster: ``"executor": "cluster"``.

The seam is the process pool's (:mod:`.pool`): an attempt is a plain-data :func:`.pool.job`,
run on a worker by :func:`.pool_worker.run_job` (wrapped by :mod:`.cluster_task`), and
comes back as outputs or an error's type, message and traceback (:class:`.pool.RemoteError`).

- **Which cluster** is the run's, never the flow's: ``PFLOW_TUI_CLUSTER`` (``pflow-tui run
  --cluster`` sets it) is ``tcp://HOST:PORT`` (a running scheduler) or ``local`` (the
  default: a ``LocalCluster`` with one single-threaded worker process per core, started when
  the first cluster attempt needs it and closed with the run).
- :class:`DaskPool` is the run's client (asynchronous, on the run's event loop). Each
  attempt is one task (``client.submit(run_on_worker, ...)``, a fresh key per attempt). The
  task tells the run when it starts, on which worker, and its answer through the
  scheduler's event stream (the client's topic), so that waiting for an answer costs no
  round trip to fetch it.
- **Events** (:func:`cluster_attempt`): ``wait.start`` (``on: "cluster"``) when submitted,
  ``wait.end`` with the ``worker`` when a worker starts it, then the attempt's events with
  ``worker`` as a local attempt has them.
- **A ``workflow`` node** runs each attempt's whole child flow on a worker, its events
  streamed back at the local paths (:mod:`.cluster_nested`: the job, the worker's side, the
  :class:`~.cluster_nested.Relay` that emits them here).
- **Failures**: a worker that dies while it runs a task: the attempt fails with
  :class:`WorkerLost` (``worker lost: ...``) and is retried per ``max_retries`` (the local
  cluster's scheduler is told not to retry it itself: ``allowed-failures`` 0). A task that
  was only queued on that worker (not started) is submitted again, not counted as an attempt. A task
  cancelled (stop, Ctrl-C, a ``fail_fast`` sibling) is released: a queued task never starts;
  a running one is killed on its worker (the attempt runs in a child process of the worker,
  :mod:`.cluster_process`: Dask itself cannot stop a running task), its answer dropped.
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib.util
import itertools
import logging
import os
import pickle
import re
import uuid
from collections.abc import Callable, Mapping
from typing import Any

import anyio

from ..problems import Problem
from ..trace import events as ev
from ..trace.events import error_info
from .cluster_nested import NESTED, Relay, nested_job
from .pool import RemoteError, job

ENV = "PFLOW_TUI_CLUSTER"
LOCAL = "local"
EXTRA = "pip install 'pflow-tui[dask]'"
CLUSTER = "cluster"  # ``on`` of its wait events
CONNECT_TIMEOUT = 10  # seconds to reach a scheduler

_ADDRESS = re.compile(r"(tcp|tls|ws|wss)://[^\s/]+:\d+")
_HOST_PORT = re.compile(r"[\w.\-\[\]:]*[\w\]]:\d+")


def parse_cluster(value: str) -> str:
    """``--cluster`` / ``PFLOW_TUI_CLUSTER`` as a cluster spec: ``local`` or a scheduler's
    address (``HOST:PORT`` gets ``tcp://``); ValueError for anything else."""
    text = value.strip()
    if not text or text == LOCAL:
        return LOCAL
    if _ADDRESS.fullmatch(text):
        return text
    if "://" not in text and _HOST_PORT.fullmatch(text):
        return f"tcp://{text}"
    raise ValueError(f"{value!r} is not a cluster: give the address of a running Dask scheduler "
                     "(tcp://HOST:PORT, e.g. tcp://10.0.0.5:8786) or local (a cluster on this "
                     "machine, started and stopped by the run)")


def cluster_spec(environ: Mapping[str, str] = os.environ) -> str:
    """The run's cluster: ``PFLOW_TUI_CLUSTER``, else ``local`` (ValueError: a bad value)."""
    return parse_cluster(environ.get(ENV, ""))


def dask_installed() -> bool:
    return importlib.util.find_spec("distributed") is not None


def cluster_problem(where: str, environ: Mapping[str, str] = os.environ) -> Problem | None:
    """Why a flow with cluster nodes cannot run here (Dask missing, a bad
    ``PFLOW_TUI_CLUSTER``), as a problem to report at ``where``, or None."""
    if not dask_installed():
        return Problem(where, "this node runs on a Dask cluster, but Dask is not installed",
                       f"install pflow-tui's dask extra: {EXTRA} (or leave \"executor\" out to "
                       "run the node on this machine)")
    try:
        cluster_spec(environ)
    except ValueError as exc:
        return Problem(f"environment variable {ENV}", str(exc),
                       f"unset it (a local cluster) or set e.g. {ENV}=tcp://HOST:8786")
    return None


class WorkerLost(Exception):
    """The Dask worker running the attempt died (crashed, killed, lost its machine)."""


class ClusterError(Exception):
    """The cluster could not run the attempt: no scheduler there, a task that failed
    outside the node's code (e.g. pflow-tui missing on the workers), a lost connection."""


class _NotStarted(Exception):
    """The worker a task was assigned to died before it started the task."""


#: a task whose worker died before it started it is submitted again, up to this many times,
#: without counting as an attempt (the scheduler had queued it on that worker)
UNSTARTED_RESUBMITS = 3


class DaskPool:
    """One run's connection to its Dask cluster (see the module's docstring)."""

    def __init__(self, spec: str) -> None:
        self.spec = spec
        self.label = "local cluster" if spec == LOCAL else f"cluster {spec}"  # ``limit`` of waits
        self.client: Any = None
        self.cluster: Any = None
        self._lock = anyio.Lock()
        self._failed: str | None = None
        run = uuid.uuid4().hex[:12]
        self.topic = f"pflow-tui-{run}"  # (the client's id once connected)
        self._keys = (f"pflow-tui-{run}-{n}" for n in itertools.count())
        self._started: dict[str, Callable[[str], None]] = {}
        self._answers: dict[str, tuple[str, bytes | None]] = {}
        self._pending: list[tuple[str, tuple[Any, ...], asyncio.Future[Any]]] = []
        self._began: set[str] = set()  # tasks a worker has started
        #: a nested flow's tasks: where their chunks of events go (cluster_nested.Relay.chunk)
        self._relays: dict[str, Callable[[str, int, bytes], None]] = {}

    # --- the client ---------------------------------------------------------------------

    async def connect(self) -> Any:
        """The client, connected (the local cluster started) on first use."""
        if self.client is not None:
            return self.client
        async with self._lock:
            if self.client is None:
                if self._failed is not None:
                    raise ClusterError(self._failed)
                try:
                    await self._start()
                except Exception as exc:
                    where = ("cannot start a local Dask cluster" if self.spec == LOCAL
                             else f"cannot reach the Dask scheduler at {self.spec}")
                    self._failed = f"{where}: {type(exc).__name__}: {exc}"
                    await self.aclose()
                    raise ClusterError(self._failed) from None
        return self.client

    async def _start(self) -> None:
        import dask
        import distributed

        address: Any = self.spec
        if self.spec == LOCAL:
            # the run retries an attempt whose worker died (max_retries), not the scheduler
            with dask.config.set({"distributed.scheduler.allowed-failures": 0}):
                self.cluster = distributed.LocalCluster(
                    n_workers=os.cpu_count() or 1, threads_per_worker=1, processes=True,
                    asynchronous=True, dashboard_address=":0", silence_logs=logging.CRITICAL,
                    preload=["pflow_tui.engine.run.cluster_task"])
                await self.cluster
            address = self.cluster
        client = distributed.Client(address, asynchronous=True, timeout=CONNECT_TIMEOUT,
                                    set_as_default=False)
        self.client = client
        await client
        # the client's own topic: the scheduler empties it when the client has gone (its
        # events-cleanup-delay), so a long-lived scheduler keeps no answers of past runs
        self.topic = client.id
        client.subscribe_topic(self.topic, self._event)

    def _event(self, event: tuple[float, tuple[Any, ...]]) -> None:
        """A message of a task (see cluster_task): it started, or its answer."""
        msg = event[1]
        if not isinstance(msg, (list, tuple)):  # the scheduler's own (add-client, cancel, ...)
            return
        kind, key = msg[0], msg[1]
        started = self._started.get(key)
        if started is None:  # an attempt no longer awaited (cancelled while it ran)
            return
        if kind == "start":
            self._began.add(key)
            started(msg[2])
        elif kind == "events":  # a nested flow's events (cluster_nested)
            relay = self._relays.get(key)
            if relay is not None:
                relay(key, msg[2], msg[3])
        elif kind == "done":
            self._answers[key] = (msg[2], msg[3])
        else:  # "big": the answer is the task's result
            self._answers[key] = (msg[2], None)

    async def aclose(self) -> None:
        """Close the client and the local cluster (shielded: the run is ending)."""
        with anyio.CancelScope(shield=True):
            client, self.client = self.client, None
            cluster, self.cluster = self.cluster, None
            if client is not None:
                with contextlib.suppress(Exception):  # (already disconnected)
                    client.unsubscribe_topic(self.topic)
                with anyio.move_on_after(10):
                    await client.close()
            if cluster is not None:
                with anyio.move_on_after(20):
                    await cluster.close()

    # --- one attempt ------------------------------------------------------------------------

    async def run(self, job: tuple[Any, ...], started: Callable[[str], None],
                  relay: Callable[[str, int, bytes], None] | None = None
                  ) -> tuple[dict[str, Any], str]:
        """Run ``job`` on a worker: (its outputs, the worker's address), or raise what it
        raised (RemoteError, with ``worker``), WorkerLost or ClusterError. ``started(worker)``
        is called when a worker starts it; ``relay(key, n, data)`` with each chunk of
        events a nested flow's task sends."""
        client = await self.connect()
        for _ in range(UNSTARTED_RESUBMITS + 1):
            try:
                return await self._run_once(client, job, started, relay)
            except _NotStarted:  # its worker died before it started it: not an attempt yet
                continue
        raise WorkerLost(f"worker lost: the Dask workers this was queued on died before they started "
                         f"it, {UNSTARTED_RESUBMITS + 1} times")

    async def _run_once(self, client: Any, job: tuple[Any, ...], started: Callable[[str], None],
                        relay: Callable[[str, int, bytes], None] | None) -> tuple[dict[str, Any], str]:
        key = next(self._keys)
        self._started[key] = started
        if relay is not None:
            self._relays[key] = relay
        submitted = asyncio.get_running_loop().create_future()
        if not self._pending:  # the attempts submitted in this turn of the loop go as one graph
            asyncio.get_running_loop().call_soon(self._submit, client)
        self._pending.append((key, job, submitted))
        future = None
        try:
            future = await submitted
            await future._state.wait()  # (as distributed's own wait(): no result fetched)
            status = future.status
            if status == "finished":
                worker, data = self._answers.pop(key, ("", None))
                if data is None:  # a big answer: the task's result
                    data = await future.result()
                if data is None:
                    raise ClusterError("the answer of the task was lost on the way back")
                answer = pickle.loads(data)
            elif status == "error":
                failure = self._failure(await future.exception())
                if isinstance(failure, WorkerLost) and key not in self._began:
                    raise _NotStarted from None
                raise failure
            else:
                raise ClusterError(f"the cluster dropped the task ({status}): the connection to "
                                   "the scheduler was lost, or another client cancelled it")
        finally:
            self._started.pop(key, None)
            self._relays.pop(key, None)
            self._answers.pop(key, None)
            self._began.discard(key)
            if future is None and submitted.done() and not submitted.cancelled() \
                    and submitted.exception() is None:
                future = submitted.result()  # (cancelled as it was handed over)
            if future is not None:
                future.release()  # a task still queued never starts; a running one is let go
            else:
                self._pending = [p for p in self._pending if p[0] != key]
        if answer[0] == "ok":
            return answer[1], worker
        exc = RemoteError(*answer[1:])
        exc.worker = worker  # type: ignore[attr-defined]
        raise exc

    def _submit(self, client: Any) -> None:
        """Submit the pending attempts: one ``client.map``, one graph for the scheduler (a
        submit per attempt costs the scheduler an update each; see bench/bench_cluster.py)."""
        from .cluster_task import run_on_worker

        batch, self._pending = self._pending, []
        if not batch:
            return
        keys = [key for key, _, _ in batch]
        try:
            futures = client.map(run_on_worker, [self.topic] * len(batch), keys,
                                 [job for _, job, _ in batch], key=keys, pure=False)
        except Exception as exc:  # (a job that does not serialize, a closed client)
            for _, _, submitted in batch:
                if not submitted.done():
                    submitted.set_exception(ClusterError(f"cannot submit to the cluster: {exc}"))
            return
        for (_, _, submitted), future in zip(batch, futures, strict=True):
            if submitted.done():  # cancelled before it was handed over
                future.release()
            else:
                submitted.set_result(future)

    @staticmethod
    def _failure(exc: BaseException | None) -> Exception:
        from distributed.scheduler import KilledWorker

        if isinstance(exc, KilledWorker):
            worker = getattr(getattr(exc, "last_worker", None), "address", "") or ""
            where = f"the Dask worker {worker}" if worker else "its Dask worker"
            lost = WorkerLost(f"worker lost: {where} died while it ran this (crashed, ran out of "
                              "memory, or was killed)")
            lost.worker = worker  # type: ignore[attr-defined]
            return lost
        return ClusterError(f"the task failed on the cluster outside the node's code: "
                            f"{type(exc).__name__}: {exc} (is the same pflow-tui installed on the "
                            "workers?)")


async def cluster_attempt(work: Any, call: Any, traced: bool) -> Mapping[str, Any]:
    """One attempt of ``work`` (a :class:`.work.Work`, for ``call``, a :class:`.work.Call`;
    not imported: work.py imports this module) on the run's cluster, with its events: ``wait.start``
    (``on: "cluster"``) now, ``wait.end`` and ``attempt.start`` (with ``worker``) when a worker
    starts it, ``attempt.end`` (``traced``: more than one attempt allowed, as for local work)."""
    ex = work.ex
    pool = ex.cluster()
    path = call.path
    fields = {"on": CLUSTER, "attempt": call.attempt}
    t_wait = ex.now()
    ex.emit(ev.WAIT_START, path, {**fields, "limit": pool.label})
    t0: list[float] = []

    def started(worker: str | None) -> None:
        if t0:  # started again (the scheduler re-ran it elsewhere): the first start counts
            return
        now = ex.now()
        t0.append(now)
        call.worker = worker
        done = {**fields, "status": "ok", "duration": now - t_wait}
        if worker:
            done["worker"] = worker
        ex.emit(ev.WAIT_END, path, done)
        if traced:
            begun = {"attempt": call.attempt, "worker": worker} if worker else {"attempt": call.attempt}
            ex.emit(ev.ATTEMPT_START, path, begun)

    nt = work.node_type
    relay = None
    if nt.name == NESTED:  # the whole child flow on the worker, its events streamed back
        relay = Relay(ex, call)
        task = nested_job(work, call)
    else:
        task = job(nt, work.ref, call, call.params)
    try:
        out, worker = await pool.run(task, started, None if relay is None else relay.chunk)
        if not t0:
            started(worker)
        if relay is not None:
            relay.finish()
            relay.close("error", {"type": "ClusterError",
                                  "message": "its end did not come back from the worker"})
    except Exception as exc:
        if relay is not None:
            relay.finish()
            relay.close("error", error_info(exc, with_traceback=False))
        started(getattr(exc, "worker", None) or call.worker)  # (failed before a worker said so)
        call.worker = getattr(exc, "worker", None) or call.worker
        if traced:
            end = {"attempt": call.attempt, "status": "error", "duration": ex.now() - t0[0],
                   "error": error_info(exc), "will_retry": call.attempt < work.max_retries}
            if call.worker:
                end["worker"] = call.worker
            ex.emit(ev.ATTEMPT_END, path, end)
        raise
    except BaseException:  # cancelled (fail_fast sibling, stop, Ctrl-C)
        if relay is not None:
            relay.close("cancelled")
        if not t0:
            ex.emit(ev.WAIT_END, path, {**fields, "status": "cancelled", "duration": ex.now() - t_wait})
        elif traced:
            end = {"attempt": call.attempt, "status": "cancelled", "duration": ex.now() - t0[0]}
            if call.worker:
                end["worker"] = call.worker
            ex.emit(ev.ATTEMPT_END, path, end)
        raise
    call.worker = worker
    if traced:
        end = {"attempt": call.attempt, "status": "ok", "duration": ex.now() - t0[0], "worker": worker}
        if "error" in out:
            from ..ir.templates import to_text

            end["status"] = "error"
            end["error"] = {"type": "NodeError", "message": to_text(out["error"])}
        ex.emit(ev.ATTEMPT_END, path, end)
    return out

