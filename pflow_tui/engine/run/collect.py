"""A batch node's output (pflow's ``results``, ``count``, ``errors`` ...), built as items end.

Nothing here grows with the number of items except ``results`` when it is a list: the
counts and the timing are running totals, and with ``batch_size`` the results go to a
JSON-lines file in index order (:mod:`pflow_tui.engine.run.spill`), at most ``batch_size`` of
them waiting for an earlier item to end, and ``errors`` keeps the first
:data:`MAX_ERRORS` (``error_count`` counts them all; every failed item's error is also in
its ``results`` entry and its ``item.end`` event).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import TYPE_CHECKING, Any

import anyio

from ..ir.items import ItemsError
from .spill import LazyList

if TYPE_CHECKING:
    from .land import ItemOutcome
    from .spill import ListWriter

MAX_ERRORS = 1000  #: errors listed in a spilled batch's output (error_count has them all)


class BatchOutput:
    """Outcomes in, pflow's batch output out (see the module docstring).

    ``writer``: spill the results (``batch_size`` is set); ``window``: with a writer, how
    many items may be running or waiting to be written at once (a semaphore that
    :meth:`add` releases as results are written; the caller acquires it before taking
    an item).
    """

    __slots__ = ("count", "ended", "errors", "errors_omitted", "failed", "max_ms", "min_ms",
                 "next", "ok", "pending", "results", "roots", "source_error",
                 "total_ms", "window", "writer")

    def __init__(self, count: int, writer: ListWriter | None = None,
                 window: int | None = None) -> None:
        self.count = count
        self.writer = writer
        self.results: list[Any] | None = None if writer is not None else [None] * count
        self.window = anyio.Semaphore(window) if writer is not None and window else None
        self.pending: dict[int, tuple[Any, dict[str, Any] | None]] = {}
        self.next = 0  # spilled: the index of the next entry to write
        self.ok = self.failed = self.ended = 0
        self.total_ms, self.min_ms, self.max_ms = 0.0, float("inf"), 0.0
        self.errors: list[dict[str, Any]] = []
        self.errors_omitted = 0
        self.roots: list[tuple[int, dict[str, Any]]] = []  # iterations that wrote __x__ keys
        self.source_error: str | None = None

    def numbered(self, items: Iterable[Any]) -> Iterator[tuple[int, Any]]:
        """``(index, item)`` of every item; a source that fails (:class:`ItemsError`) ends
        the iteration and leaves its message in ``source_error``."""
        if isinstance(items, (list, LazyList)):
            return enumerate(items)  # the common case: nothing can fail, the count is exact
        return self._read(items)

    def _read(self, items: Iterable[Any]) -> Iterator[tuple[int, Any]]:
        it = iter(items)
        i = 0
        while True:
            try:
                item = next(it)
            except StopIteration:
                if i != self.count:  # a file that changed since it was counted
                    self.count = i
                    if self.results is not None:
                        del self.results[i:]
                return
            except ItemsError as exc:
                self.source_error = str(exc)
                return
            yield i, item
            i += 1

    def add(self, index: int, item: Any, out: ItemOutcome) -> None:
        """An item ended (ok or error)."""
        ms = out.duration * 1000
        self.ended += 1
        self.total_ms += ms
        if ms < self.min_ms:
            self.min_ms = ms
        if ms > self.max_ms:
            self.max_ms = ms
        entry = out.result
        error = None
        if out.status == "ok":
            self.ok += 1
        else:
            self.failed += 1
            error = {"index": index, "item": item,
                     "error": out.error["message"] if out.error else "",
                     "exception": None if entry is not None else out.error}
        if entry is not None:
            for key in entry:
                if key[:2] == "__" and key[-2:] == "__" and len(key) > 4:
                    self.roots.append((index, entry))
                    break
        if self.writer is None:
            results = self.results
            if index >= len(results):  # type: ignore[arg-type]
                results.extend([None] * (index + 1 - len(results)))  # type: ignore[union-attr]
            results[index] = entry  # type: ignore[index]
            if error is not None:
                self.errors.append(error)
        elif index == self.next:
            self._write(entry, error)
            pending = self.pending
            while pending and self.next in pending:
                self._write(*pending.pop(self.next))
        else:
            self.pending[index] = (entry, error)

    def _write(self, entry: Any, error: dict[str, Any] | None) -> None:
        self.writer.append(entry)  # type: ignore[union-attr]
        self.next += 1
        if error is not None:
            if len(self.errors) < MAX_ERRORS:
                self.errors.append(error)
            else:
                self.errors_omitted += 1
        if self.window is not None:
            self.window.release()

    def finish(self) -> tuple[Any, list[tuple[int, dict[str, Any]]]]:
        """(the results: a list or a spilled list, the iterations that wrote root keys in
        index order). Results of items that never ended are None."""
        self.roots.sort(key=lambda r: r[0])
        if self.writer is None:
            self.errors.sort(key=lambda e: e["index"])
            return self.results, self.roots
        if self.pending:  # items after one that never ended (cancelled by fail_fast)
            self.window = None
            for i in range(self.next, max(self.pending) + 1):
                self._write(*self.pending.pop(i, (None, None)))
        return self.writer.close(self.count), self.roots

    def discard(self) -> None:
        """The node was cancelled: close the results file (it is not referenced)."""
        if self.writer is not None:
            self.writer.discard()


__all__ = ["MAX_ERRORS", "BatchOutput"]
