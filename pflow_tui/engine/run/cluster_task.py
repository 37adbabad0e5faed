"""What runs on a Dask worker for a ``"executor": "cluster"`` node (see :mod:`.cluster`).

:func:`run_on_worker` is the task the run submits: one attempt, the same plain-data job as
the process pool's (:func:`.pool_worker.run_job`). It tells the run, through the
scheduler's event stream (``Worker.log_event`` on the run's topic), when it starts and on
which worker, then what the attempt gave: ``("start", key, worker)`` and
``("done", key, worker, pickled answer)``. An answer too big for the event stream
(over :data:`SMALL` bytes pickled) is the task's result instead, fetched by the run;
``("big", key, worker)`` says so. The events of one task come in order, and before the
scheduler reports the task finished, so a finished task's answer is always there. A
``workflow`` node's job runs its whole child flow (:func:`.cluster_child.run_child`),
whose events go the same way in between, as ``("events", key, n, data)``.

``dask_setup`` makes the workers of the local cluster ignore Ctrl-C (the run decides when
they end, as for the process pool); it runs as a worker ``preload``.

Imports only the standard library at start (and ``distributed``, which the worker has).
"""

from __future__ import annotations

import pickle
import signal
from typing import Any

from .pool_worker import _function, run_job

SMALL = 32 * 1024  # answers up to this size (pickled) travel with the "done" event (the
# scheduler keeps the last 1,000 events of a topic until the client has gone)


def run_on_worker(topic: str, key: str, job: tuple[Any, ...]) -> bytes | None:
    """One attempt on this worker (see the module's docstring)."""
    from distributed import get_worker

    worker = get_worker()
    address = worker.address
    worker.log_event(topic, ("start", key, address))
    nested = job[0] == "workflow"  # a whole nested flow (cluster_child.run_child, by name)
    answer = _function(job[1])(worker.log_event, topic, key, job) if nested else run_job(job)
    try:
        data = pickle.dumps(answer, pickle.HIGHEST_PROTOCOL)
    except Exception as exc:  # an exception message or traceback that does not pickle
        data = pickle.dumps(("error", "TypeError", f"cannot send the outcome back: {exc}", ""))
    if len(data) <= SMALL:
        worker.log_event(topic, ("done", key, address, data))
        return None
    worker.log_event(topic, ("big", key, address))
    return data


def dask_setup(worker: Any) -> None:  # a Dask preload: the local cluster's workers
    signal.signal(signal.SIGINT, signal.SIG_IGN)
