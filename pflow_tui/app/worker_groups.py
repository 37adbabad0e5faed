"""A batch's items grouped by the cluster worker that ran them, computed without Textual:
the groups, their legend, and the timeline's lines with rows grouped (``w`` in the timeline).

An item belongs to the worker of its latest attempt (an item retried elsewhere after its
worker died is in the group of the worker that ran it last). Items that ran on no worker
(on this machine, or not started yet) have a group of their own, last.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass

from ..engine.run.labels import one_line
from ..text import plural
from .item_table import ItemTable
from .status import CANCELLED, ERROR, OK, PENDING, RUNNING, SKIPPED
from .timeline_geometry import Line

NO_WORKER = 0  # the group of the items that ran on no worker
ADDRESS = 60  # cells of a worker's address in its legend at most
# the statuses a legend counts, in its order, with their words
COUNTED = ((OK, "ok"), (ERROR, "failed"), (RUNNING, "running"), (PENDING, "pending"),
           (CANCELLED, "cancelled"), (SKIPPED, "skipped"))
SUMMARY = ("lane", "counts", "durations")  # the aggregate view's lines above the groups
_ROWS: list[Line] = []  # Line("row", i) for every i so far, shared (a Line is immutable): a
# toggle of a 100,000-item batch makes no new lines for its rows


@dataclass(frozen=True, slots=True)
class WorkerGroup:
    """The items of one worker (``worker``: its id in the run model, :data:`NO_WORKER`: none)."""

    worker: int
    rows: list[int]  # item indexes, in index order
    counts: dict[int, int]  # status code -> items


def worker_groups(items: ItemTable, rows: bool = True) -> list[WorkerGroup]:
    """The batch's items by worker: the workers in the order the run first saw them, then
    the items without one; an empty batch has no group. Without ``rows``, each group's
    ``rows`` is empty (only its counts are wanted: the summary's headings)."""
    n = items.count
    if not n:
        return []
    ids = items.worker
    if ids is None:
        return [WorkerGroup(NO_WORKER, list(range(n)) if rows else [], dict(Counter(items.status)))]
    sizes = Counter(ids)
    counts: dict[int, dict[int, int]] = {}
    for (worker, code), k in Counter(zip(ids, items.status, strict=True)).items():
        counts.setdefault(worker, {})[code] = k
    order = sorted(sizes)  # ids in the order the workers were first seen; NO_WORKER (0) first
    by_worker = sorted(range(n), key=ids.__getitem__) if rows else []  # (stable: index order kept)
    groups: list[WorkerGroup] = []
    at = 0
    for worker in order:
        size = sizes[worker]
        groups.append(WorkerGroup(worker, by_worker[at:at + size], counts[worker]))
        at += size
    if groups[0].worker == NO_WORKER:  # the items on no worker last
        groups.append(groups.pop(0))
    return groups


def legend(group: WorkerGroup, workers: Sequence[str]) -> str:
    """What a group's heading says: the worker's address (shown literally, on one line) or
    that these items ran on no worker, how many items, and their statuses."""
    if group.worker == NO_WORKER or not 0 < group.worker <= len(workers):
        name = "no worker (this machine, or not started)"
    else:
        name = one_line(workers[group.worker - 1], ADDRESS)
    counts = ", ".join(f"{group.counts[code]:,} {word}" for code, word in COUNTED if group.counts.get(code))
    return f"{name} · {plural(len(group.rows), 'item')}" + (f": {counts}" if counts else "")


def group_lines(items: ItemTable, workers: Sequence[str], *, rows: bool) -> list[Line]:
    """A heading per worker (its :func:`legend`), each followed by its rows with ``rows``."""
    out: list[Line] = []
    for group in worker_groups(items, rows):
        out.append(Line("heading", text=legend(group, workers)))
        if rows:
            out.extend(row_lines(group.rows))
    return out


def row_lines(rows: list[int]) -> list[Line]:
    """The lines of item rows ``rows``."""
    if rows:
        top = max(rows) + 1
        if len(_ROWS) < top:
            _ROWS.extend([Line("row", i) for i in range(len(_ROWS), top)])
    return list(map(_ROWS.__getitem__, rows))


def by_worker(lines: list[Line] | None, groups: list[Line]) -> list[Line]:
    """The timeline's body (:func:`~.timeline_geometry.body_lines`) grouped by worker:
    ``lines`` None (every row) is replaced by ``groups`` (:func:`group_lines` with rows);
    the summary of a big batch gets its headings (without rows) after its concurrency lane,
    counts and durations, before its own sections (selected, slowest, failed)."""
    if lines is None:
        return groups
    head = [ln for ln in lines if ln.kind in SUMMARY]
    return head + groups + [ln for ln in lines if ln.kind not in SUMMARY]
