"""The timeline's geometry, computed without Textual: which lines the pane shows, how times
map to columns (the axis, its zoom and pan, its ticks), each row's bars in eighths of a cell
and the cells they fill, and the aggregates of big batches (counts, percentiles, slowest
items, concurrency). The widget (:mod:`.widgets.timeline`) turns these into styled strips.

Colours are named by role, not by theme variable: :data:`QUEUED`, :data:`RETRY`,
``status:<code>`` (:func:`status_role`) and :data:`EMPTY` (the background), mapped to
the theme by the widget.
"""

from __future__ import annotations

import heapq
import math
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from itertools import accumulate, compress
from operator import eq, sub
from typing import Any

from ..text import literal
from .item_table import ItemTable
from .model import NodeState, percentile
from .status import CANCELLED, ERROR, OK, PENDING, RUNNING

SLOWEST = 10  # the slowest items a summary lists
SAMPLE = 20_000  # above this many items, durations are read from an even sample
MAX_ZOOM = 12  # the axis zooms in up to 2**MAX_ZOOM times
NODE_ROW = -1  # the row of a node without items
EIGHTHS = " ▏▎▍▌▋▊▉█"  # EIGHTHS[k]: the left k/8 of a cell
LEVELS = " ▁▂▃▄▅▆▇█"  # a concurrency lane's heights
QUEUED_LINE = "─"  # the thin line of a queued span
NODE_LABEL = 16  # max cells of a node id in the label column
ITEM_LABEL = 18  # max cells of an item's label (``#3 delta bad``) in the label column

# colour roles (the widget maps them to theme colours)
QUEUED = "queued"
RETRY = "retry"
EMPTY = "empty"  # the row's background: a block drawn in it over a bar's colour

Look = tuple[str | None, str | None]  # (foreground role, background role); None: the row's own


def status_role(code: int) -> str:
    """The colour role of a status code."""
    return f"status:{code}"


@dataclass(frozen=True, slots=True)
class Axis:
    """How times map to the bar columns."""

    t0: float  # the node's start: tick labels count from it
    v0: float  # time at the left edge of the bars
    dt: float  # seconds per cell
    label_w: int  # cells before the bars
    bar_w: int  # cells of bars

    def eighth(self, t: float) -> int:
        """``t`` in eighths of a cell from the left edge of the bars."""
        return round((t - self.v0) / self.dt * 8)


@dataclass(frozen=True, slots=True)
class Line:
    """One body line of the aggregate view (or a message)."""

    kind: str  # "row" | "lane" | "counts" | "durations" | "heading" | "text"
    row: int = NODE_ROW  # item index for rows
    text: str = ""


@dataclass(slots=True)
class Stats:
    """The aggregate of a batch's items: one O(items) pass, cached per update."""

    counts: list[int]  # per status code
    finished: int
    p50: float
    p95: float
    longest: float
    slowest: list[int]  # item indexes, slowest first


class BranchLanes:
    """A fan-out node as the timeline sees it: one row per parallel branch (its ``items``)."""

    def __init__(self, state: NodeState) -> None:
        self.state = state

    @property
    def items(self) -> ItemTable | None:
        return self.state.branches

    @property
    def t_start(self) -> float:
        """The axis starts when the first branch did (the fan-out node ended before)."""
        table = self.state.branches
        started = [t for t in table.t_start if t == t] if table is not None else []
        return min(started) if started else self.state.t_start

    @property
    def t_end(self) -> float:
        table = self.state.branches
        if table is None:
            return math.nan
        ends = [t for t in table.t_end if t == t]
        return max(ends) if ends and len(ends) == table.count else math.nan

    @property
    def status(self) -> int:
        table = self.state.branches
        assert table is not None
        return RUNNING if table.running else ERROR if table.failed else self.state.status

    def __getattr__(self, name: str) -> Any:
        return getattr(self.state, name)


# --- the lines shown -------------------------------------------------------------------------


def body_lines(node_id: str | None, state: NodeState | BranchLanes | None, *, aggregate: bool,
               stats: Callable[[], Stats | None], index: int | None, page: int) -> list[Line] | None:
    """The body of the pane for the selected node: a message, its own row, or the summary
    of its batch (``aggregate``); None when every item has its row. ``stats()`` computes the
    batch's aggregate (only when the summary needs it); ``index`` is the selected item;
    ``page`` how many failed items the summary lists."""
    if node_id is None:
        return [Line("text", text="Select a node to see its timeline.")]
    if state is None:
        return [Line("text", text=f"{literal(node_id)} has not started.")]
    items = state.items
    if items is None:
        return [Line("row", NODE_ROW)]
    if items.count == 0:
        return [Line("text", text="Empty batch: no items.")]
    if not aggregate:
        return None
    summary = stats()
    assert summary is not None
    lines = [Line("lane"), Line("counts"), Line("durations")]
    shown: set[int] = set()
    if index is not None and index not in summary.slowest and index not in items.failures[:page]:
        lines += [Line("heading", text="selected"), Line("row", index)]
        shown.add(index)
    if summary.slowest:
        lines.append(Line("heading", text=f"{len(summary.slowest)} slowest"))
        lines += [Line("row", i) for i in summary.slowest if i not in shown]
        shown.update(summary.slowest)
    if items.failures:
        failed = items.failures[:page]
        more = len(items.failures) - len(failed)
        lines.append(Line("heading", text=f"{len(items.failures)} failed"
                                          + (f" (first {len(failed)}; z shows all rows)" if more else "")))
        lines += [Line("row", i) for i in failed]
    return lines


# --- the axis ----------------------------------------------------------------------------------


def label_width(state: NodeState | BranchLanes, width: int, has_names: Callable[[], bool]) -> int:
    """Cells of the label column at ``width``: a node's id, a branch's start node, or an
    item's index, status and retries (``#12 ✗ ↻10``), plus its label (``has_names()``:
    whether the batch's items have labels worth showing) when there is room."""
    cap = width // 3
    if isinstance(state, BranchLanes):
        label_w = min(max(map(len, state.branch_starts), default=1), NODE_LABEL) + 5
    elif state.items is not None:
        label_w = len(f"#{max(state.items.count - 1, 0)}") + 7  # "#12 ✗ ↻10 "
        fit = width * 2 // 5  # "#12 delta bad ✗ ↻10 ": labels get what is left of 2/5
        if label_w < fit and has_names():
            label_w += min(ITEM_LABEL + 1, fit - label_w)
            cap = max(cap, label_w)
    else:
        label_w = min(len(literal(state.id)), NODE_LABEL) + 3
    return min(label_w, max(cap, 1))


def make_axis(t0: float, t1: float, label_w: int, width: int, zoom: int, pan: float) -> Axis:
    """The axis of a node that ran from ``t0`` to ``t1`` (or until now), ``2**zoom`` times
    magnified, its left edge ``pan`` (a fraction of the node's span) from its start."""
    bar_w = max(width - label_w, 1)
    span = max(t1 - t0, 1e-3)
    visible = span / 2 ** zoom
    return Axis(t0, t0 + pan * span, visible / bar_w, label_w, bar_w)


def clamp_pan(pan: float, zoom: int) -> float:
    """``pan`` kept where the view stays inside the node's span."""
    return min(max(pan, 0.0), 1.0 - 1.0 / 2 ** zoom)


def zoomed(zoom: int, pan: float, direction: int) -> tuple[int, float]:
    """Zoom in (1) or out (-1) around the middle of the view: the new (zoom, pan)."""
    new = min(max(zoom + direction, 0), MAX_ZOOM)
    if new == zoom:
        return zoom, pan
    middle = pan + 0.5 / 2 ** zoom
    return new, clamp_pan(middle - 0.5 / 2 ** new, new)


def panned(zoom: int, pan: float, direction: int) -> float:
    """Scroll the zoomed view by a quarter of its width: the new pan."""
    return clamp_pan(pan + direction * 0.25 / 2 ** zoom, zoom)


def nice_step(span: float, cells: int, min_gap: int = 10) -> float:
    """A round tick interval (1, 2 or 5 times a power of ten) at least ``min_gap`` cells apart."""
    raw = span * min_gap / max(cells, 1)
    if raw <= 0 or raw != raw:
        return 1.0
    power = 10.0 ** math.floor(math.log10(raw))
    for m in (1, 2, 5, 10):
        if m * power >= raw * 0.999:
            return m * power
    return 10 * power


def tick_label(t: float, step: float) -> str:
    """``t`` seconds, with as many decimals as the tick step needs (``0s``, ``0.5s``, ``2m``;
    ``4ms``, ``200µs``, ``1.5ms`` where the steps are under 10 ms)."""
    if abs(t) < step / 2:
        return "0s"
    if step >= 60:
        m, s = divmod(round(t), 60)
        return f"{m}m{s:02d}s" if s else f"{m}m"
    unit, scale = ("s", 1.0) if step >= 1e-2 else ("µs", 1e6) if abs(t) < 1e-3 else ("ms", 1e3)
    decimals = max(0, -math.floor(math.log10(step * scale) + 1e-9))
    return f"{t * scale:.{decimals}f}{unit}"


def ticks(axis: Axis) -> str:
    """The axis line over the bars (``axis.bar_w`` cells): a label every round step (see
    :func:`nice_step`), left out where it would touch the one before or not fit."""
    cells = [" "] * axis.bar_w
    step = nice_step(axis.dt * axis.bar_w, axis.bar_w)
    rel0 = axis.v0 - axis.t0
    k = math.ceil(rel0 / step - 1e-9)
    free = 0  # first cell a label may use
    while True:
        t = k * step
        x = round((t - rel0) / axis.dt)
        if x >= axis.bar_w:
            break
        text = tick_label(t, step)
        if x >= free and x + len(text) <= axis.bar_w:
            cells[x:x + len(text)] = list(text)
            free = x + len(text) + 2
        k += 1
    return "".join(cells)


# --- one row's bars --------------------------------------------------------------------------


def row_spans(state: NodeState | BranchLanes, row: int, axis: Axis, now: float
              ) -> tuple[tuple[int, int] | None, list[tuple[int, int, str]]]:
    """A row's queued span and its solid spans (eighths, colour role) at time ``now``:
    the node itself (:data:`NODE_ROW`) or item (branch) ``row``."""
    if row == NODE_ROW:
        if state.t_start != state.t_start:
            return None, []
        end = state.t_end if state.t_end == state.t_end else now
        if state.wait_seq:  # it waited for a rate limit or a process before it ran
            ready = state.t_ready
            if ready != ready:  # still waiting, or ended while it waited
                return (axis.eighth(state.t_start), axis.eighth(end)), []
            return ((axis.eighth(state.t_start), axis.eighth(ready)),
                    [(axis.eighth(ready), axis.eighth(end), status_role(state.status))])
        return None, [(axis.eighth(state.t_start), axis.eighth(end), status_role(state.status))]
    items = state.items
    assert items is not None
    start, end, retry = items.t_start[row], items.t_end[row], items.retry_t[row]
    status = items.status[row]
    node_start = state.t_start
    if start != start:  # not started: queued while the node runs
        if state.status == RUNNING:
            return (axis.eighth(node_start), axis.eighth(now)), []
        return None, []
    queued = (axis.eighth(node_start), axis.eighth(start))
    if end != end:
        end = now
    last = status if status != PENDING else RUNNING
    solid: list[tuple[int, int, str]] = []
    if retry == retry:
        solid.append((axis.eighth(start), axis.eighth(retry), RETRY))
        start = retry
    solid.append((axis.eighth(start), axis.eighth(end), status_role(last)))
    return queued, solid


def bar_cells(queued: tuple[int, int] | None, spans: list[tuple[int, int, str]],
              cells: int) -> list[tuple[str, Look]]:
    """One row's bars in ``cells`` cells, as runs of characters that look the same.

    ``queued`` is a thin line; ``spans`` are adjacent solid bars in order, as (start, end,
    colour role) in eighths of a cell. A cell holds at most two colours: where a bar starts
    inside a cell the block is drawn in the background colour over the bar's colour.
    """
    chars = [" "] * cells
    looks: list[Look] = [(None, None)] * cells
    n8 = 8 * cells
    if queued is not None:
        a, b = max(queued[0], 0), min(queued[1], n8)
        for c in range(a // 8, min((b + 7) // 8, cells)):
            if min(b, 8 * c + 8) - max(a, 8 * c) >= 4:
                chars[c] = QUEUED_LINE
                looks[c] = (QUEUED, None)
    if spans and spans[-1][1] <= spans[0][0]:  # shorter than an eighth: keep a sliver visible
        spans = [*spans[:-1], (spans[-1][0], spans[0][0] + 1, spans[-1][2])]
    solid = [(max(a, 0), min(b, n8), color) for a, b, color in spans if min(b, n8) > max(a, 0)]
    if solid:
        for c in range(solid[0][0] // 8, min((solid[-1][1] + 7) // 8, cells)):
            e0 = 8 * c
            pieces = [(max(a, e0) - e0, min(b, e0 + 8) - e0, color)
                      for a, b, color in solid if a < e0 + 8 and b > e0]
            if not pieces:
                continue
            lo, hi = pieces[0][0], pieces[-1][1]
            main = max(pieces, key=lambda p: p[1] - p[0])[2]
            if lo == 0 and hi == 8:
                if len(pieces) == 1:
                    chars[c], looks[c] = EIGHTHS[8], (main, None)
                else:  # two colours meet inside the cell
                    chars[c], looks[c] = EIGHTHS[pieces[0][1]], (pieces[0][2], pieces[-1][2])
            elif lo == 0:  # the bar ends inside the cell
                chars[c], looks[c] = EIGHTHS[hi], (main, None)
            elif hi == 8:  # the bar starts inside the cell: background-coloured block over it
                chars[c], looks[c] = EIGHTHS[lo], (EMPTY, main)
            elif lo <= 8 - hi:  # a bar shorter than a cell: the nearer edge wins
                chars[c], looks[c] = EIGHTHS[max(hi, 1)], (main, None)
            else:
                chars[c], looks[c] = EIGHTHS[min(lo, 7)], (EMPTY, main)
    runs: list[tuple[str, Look]] = []
    start = 0
    for c in range(1, cells + 1):
        if c == cells or looks[c] != looks[start]:
            runs.append(("".join(chars[start:c]), looks[start]))
            start = c
    return runs


# --- aggregates of big batches ---------------------------------------------------------------


def item_stats(items: ItemTable) -> Stats:
    """Counts (exact), duration percentiles and the slowest finished items (C-level loops
    only). Past :data:`SAMPLE` items the durations come from every k-th item, so that one
    summary never stalls the screen; the counts stay exact."""
    status = items.status
    counts = [status.count(code) for code in range(6)]
    step = max(1, math.ceil(items.count / SAMPLE))
    durations = list(map(sub, items.t_end[::step], items.t_start[::step]))  # NaN: not finished
    done = sorted(compress(durations, map(eq, durations, durations)))  # NaN != NaN
    slowest: list[int] = []
    if done:
        threshold = done[-min(SLOWEST, len(done))]
        candidates = list(compress(range(len(durations)), map(threshold.__le__, durations)))
        slowest = [i * step for i in heapq.nlargest(SLOWEST, candidates, key=durations.__getitem__)]
    finished = counts[OK] + counts[ERROR] + counts[CANCELLED]
    return Stats(counts, finished, percentile(done, 50), percentile(done, 95),
                 done[-1] if done else math.nan, slowest)


def concurrency(items: ItemTable, now: float, axis: Axis) -> list[int]:
    """For each bar column, the most items running at once inside it (sampled per 1/8 cell).

    Item i runs in sub-bin j when t_start <= the bin's midpoint < t_end, that is for
    j in [ceil(x(t_start) - 1/2), ceil(x(t_end) - 1/2)), with x in sub-bins; the bins are
    clamped to the view, so int(x + 1/2) (floor + 1) does as well as the ceiling.
    """
    bins = 8 * axis.bar_w
    k = 8 / axis.dt
    offset = 0.5 - axis.v0 * k
    step = max(1, math.ceil(items.count / SAMPLE))  # past SAMPLE items: every k-th, scaled up
    ts, te = items.t_start[::step], items.t_end[::step]
    ran = list(map(eq, ts, ts))  # NaN != NaN: never ran (not started, or ended while queued)
    started = list(compress(ts, ran))
    ran_until = list(compress(te, ran))
    ended = list(compress(ran_until, map(eq, ran_until, ran_until)))
    try:
        starts = Counter(map(int, map(offset.__add__, map(k.__mul__, started))))
        ends = Counter(map(int, map(offset.__add__, map(k.__mul__, ended))))
    except (OverflowError, ValueError):  # a time too far out of the view to matter
        return [0] * axis.bar_w
    ends[int(now * k + offset)] += len(started) - len(ended)  # still running
    diff = [0] * (bins + 1)
    for j, n in starts.items():
        diff[min(max(j, 0), bins)] += n
    for j, n in ends.items():
        diff[min(max(j, 0), bins)] -= n
    running = list(accumulate(diff))
    return [max(0, *running[c:c + 8]) * step for c in range(0, bins, 8)]


def lane(levels: list[int]) -> tuple[int, str]:
    """The concurrency lane: its peak, and one block per column, as high as the column's
    share of the peak (a blank where nothing ran)."""
    peak = max(levels, default=0)
    return peak, "".join(LEVELS[0] if n <= 0 else LEVELS[max(1, math.ceil(n / peak * 8))] for n in levels)
