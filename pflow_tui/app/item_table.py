"""Per-iteration state of a batch node in flat arrays: a few bytes per item, undone in place
by :meth:`ItemTable.rewind` (no Textual here)."""

from __future__ import annotations

import math
from array import array
from bisect import bisect_left, bisect_right
from collections.abc import Callable, Iterable
from itertools import chain

from .status import ERROR, OK, PENDING, RUNNING

NAN = math.nan


class ItemTable:
    """Per-iteration state of one batch node (or of a fan-out's branches), in flat arrays
    indexed by item index.

    ``started`` and ``ended`` list the items in the order they started and ended, and the
    ``retry_*`` arrays log the attempts after the first: with them, :meth:`rewind` puts the
    table back as it was after an earlier event by undoing only what happened since.

    An item that waits for a rate limit or a process before its first attempt is queued
    (PENDING, no ``t_start``) until the wait ends: ``t_start`` is when it began to run.
    ``waits`` (allocated at the first such wait) holds the seqs of that wait's start and end.

    On a cluster, ``worker`` (allocated at the first worker seen) holds the id of the worker
    of each item's latest attempt (0: none; ids are the run model's: its ``workers``, from 1),
    and the ``worker_*`` arrays log each attempt's worker (its ``wait.end`` seq) so that
    :meth:`rewind` can put the ids back.
    """

    __slots__ = ("attempts", "count", "declared", "done", "end_seq", "ended", "failed", "failures",
                 "in_order", "last_seq", "retry_at", "retry_item", "retry_number", "retry_seq",
                 "retry_t", "running", "start_seq", "started", "status", "t_end", "t_start", "waits",
                 "worker", "worker_id", "worker_item", "worker_seq")

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
        self.worker: array | None = None  # per item: the worker id of its latest attempt
        self.worker_seq, self.worker_item, self.worker_id = array("q"), array("I"), array("I")

    def on_worker(self, i: int, worker: int, seq: int) -> None:
        """An attempt of item ``i`` started on worker ``worker`` (a run model's id, from 1)."""
        if self.worker is None:
            self.worker = array("I", [0]) * self.count  # (a trace may name any number of workers)
        self.worker[i] = worker
        self.worker_seq.append(seq)
        self.worker_item.append(i)
        self.worker_id.append(worker)
        self.last_seq = seq

    def attempt_workers(self, i: int, since: int = 0) -> list[tuple[int, int]]:
        """Item ``i``'s attempts on workers, in order: (the ``wait.end`` seq, the worker id),
        looking only at the log from event ``since`` on (the item's start)."""
        seqs = self.worker_seq
        items, ids = self.worker_item, self.worker_id
        return [(seqs[j], ids[j]) for j in range(bisect_left(seqs, since), len(seqs)) if items[j] == i]

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
        if self.worker is not None:
            self.worker.extend(array("I", [0]) * more)
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
        if len(self.worker_seq) and self.worker_seq[-1] > k:
            self._rewind_workers(k)
        if self.count > max(self.declared, top):  # it grew later (a batch of unknown size)
            self._shrink(max(self.declared, top))
        if self.waits is not None:
            self._rewind_waits(k, time_of)
        self.done, self.failed, self.running = status.count(OK), status.count(ERROR), status.count(RUNNING)
        self.last_seq = max(ss[started[-1]] if started else 0, es[ended[-1]] if ended else 0,
                            self.retry_seq[-1] if self.retry_seq else 0,
                            self.worker_seq[-1] if self.worker_seq else 0,
                            *(max(seqs, default=0) for seqs in self.waits or ()))

    def _rewind_workers(self, k: int) -> None:
        """The workers of the attempts after event ``k`` forgotten: each item whose worker
        changed since is back on the worker of its last attempt by then (or none)."""
        n = bisect_right(self.worker_seq, k)
        changed = set(self.worker_item[n:])
        del self.worker_seq[n:], self.worker_item[n:], self.worker_id[n:]
        if not n:
            self.worker = None
            return
        worker, items, ids = self.worker, self.worker_item, self.worker_id
        assert worker is not None
        for i in changed:
            worker[i] = 0
        for j in range(n - 1, -1, -1):
            if not changed:
                break
            i = items[j]
            if i in changed:
                worker[i] = ids[j]
                changed.discard(i)

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
        if self.worker is not None:
            del self.worker[count:]
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
