"""The per-item timeline: one Gantt row per batch iteration, on one time axis.

Rows are drawn on demand (Line API), so a 100,000-item batch scrolls as fast as a
12-item one. Bars have 1/8-cell resolution: left eighth blocks for bars that end inside
a cell, and the same blocks with foreground and background swapped for bars that start
inside one. A row shows queueing (a thin line from the node's start, and while an item or a
node waits for a rate limit or a process), failed attempts and what came between them
(warning colour) and the last attempt (status colour). Batches of more than
:data:`AGGREGATE_OVER` items open on a summary (concurrency lane, counts, percentiles,
slowest and failed items); ``z`` toggles it. ``w`` groups the rows by the cluster worker
that ran them, under a heading per worker (:mod:`..worker_groups`); in the summary, a
heading per worker with its counts.
"""

from __future__ import annotations

from collections.abc import Callable
from time import perf_counter
from typing import ClassVar

from rich.cells import cell_len, set_cell_size
from rich.color import Color
from rich.segment import Segment
from rich.style import Style
from textual import events
from textual.binding import Binding, BindingType
from textual.cache import LRUCache
from textual.geometry import Size
from textual.scroll_view import ScrollView
from textual.strip import Strip

from ...engine.paths import format_duration
from ...text import literal
from ..item_table import ItemTable
from ..messages import Selection, request_selection
from ..model import Changes, NodeState, RunModel
from ..status import CANCELLED, ERROR, OK, PENDING, RUNNING, SKIPPED
from ..styles import LABEL_VAR, QUEUED_VAR, RETRY_VAR, SYMBOLS, status_style, theme_color
from ..timeline_geometry import (
    EMPTY,
    NODE_LABEL,
    NODE_ROW,
    QUEUED,
    RETRY,
    Axis,
    BranchLanes,
    Line,
    Stats,
    bar_cells,
    body_lines,
    concurrency,
    item_stats,
    label_width,
    lane,
    make_axis,
    panned,
    row_spans,
    status_role,
    ticks,
    zoomed,
)
from ..worker_groups import by_worker, group_lines

AGGREGATE_OVER = 200  # batches with more items open on the aggregate view
HEADER = 1  # pinned lines above the rows (the axis)
STRIPS = 256  # rendered lines kept (more would only add to the garbage collector's work)
ROLE_VARS = {QUEUED: QUEUED_VAR, RETRY: RETRY_VAR}  # colour roles (timeline_geometry) -> theme

StyleFor = Callable[[str | None, str | None], Style]  # (fg, bg) colour names -> style


class TimelineView(ScrollView, can_focus=True):
    """Gantt rows of the selected node's iterations (or of the node itself) over time."""

    requested: Selection | None = None  # asked for, on its way to the screen (request_selection)
    DEFAULT_CSS = """
    TimelineView {
        background: $surface;
        overflow-x: hidden;
    }
    """

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("up", "cursor(-1)", "Up", show=False),
        Binding("down", "cursor(1)", "Down", show=False),
        Binding("pageup", "page(-1)", "Page up", show=False),
        Binding("pagedown", "page(1)", "Page down", show=False),
        Binding("home", "cursor_to(0)", "First", show=False),
        Binding("end", "cursor_to(-1)", "Last", show=False),
        Binding("enter", "choose", "Select item"),
        Binding("z", "toggle_aggregate", "Summary/all rows"),
        Binding("w", "toggle_workers", "By worker"),
        Binding("plus,equals_sign", "zoom(1)", "Zoom in"),
        Binding("minus", "zoom(-1)", "Zoom out"),
        Binding("0", "zoom_reset", "Reset zoom", show=False),
        Binding("left", "pan(-1)", "Earlier", show=False),
        Binding("right", "pan(1)", "Later", show=False),
    ]

    def __init__(self, model: RunModel, *, id: str | None = None) -> None:
        super().__init__(id=id)
        self.model = model
        self.node_id: str | None = None
        self.index: int | None = None  # the selected item
        self._state: NodeState | BranchLanes | None = None
        self._branch_view: BranchLanes | None = None
        self._aggregate: bool | None = None  # None: decided by the batch size
        self.by_worker = False  # rows grouped by cluster worker (``w``), for every node
        self._groups: tuple[int, bool, list[Line]] | None = None  # (version, rows, lines)
        self._zoom = 0
        self._pan = 0.0  # left edge of the view, as a fraction of the node's span
        self._cursor: int | None = None  # body line under the cursor
        self._version = 0  # bumped whenever the selected node's state changed
        self._seen_t = -1.0
        self._lines: list[Line] | None = None  # body of the aggregate view / messages; None: all rows
        self._row_lines: dict[int, int] = {}  # row -> its line in _lines
        self._stats: tuple[int, Stats] | None = None  # (version, stats)
        self._lane: tuple[int, tuple, list[int]] | None = None  # (version, view, levels)
        self._not_before: dict[str, float] = {}  # pacing of the aggregates of running nodes
        self._axis: tuple[tuple, Axis] | None = None
        self._strips: LRUCache[tuple, Strip] = LRUCache(STRIPS)
        self._styles: dict[tuple, Style] = {}
        self._colors: dict[str, Color] = {}

    # --- the pane contract (contracts.Pane) --------------------------------------------------

    def select(self, selection: Selection) -> None:
        """Show ``selection.node_id``, with the cursor on item ``selection.index``."""
        if selection.node_id != self.node_id:
            self.node_id = selection.node_id
            self._aggregate = None
            self._zoom, self._pan = 0, 0.0
            self._cursor = None
            if self.is_mounted:
                self.scroll_to(y=0, animate=False)
        self.index = selection.index
        self._rebuild()
        row = NODE_ROW if self._state is not None and self._state.items is None else selection.index
        line = self._line_of(row)
        if line is not None:
            self._cursor = line
            self._scroll_to_cursor(center=True)
            if self.is_mounted:  # before the first layout (--at) the scroll is clamped to 0: again
                self.call_after_refresh(self._scroll_to_cursor, True)
        self.refresh()

    def update_from(self, changes: Changes) -> None:
        """Repaint when the selected node or its items changed, or its running bars grew."""
        node_id = self.node_id
        if node_id is None:
            return
        if changes.rewound:  # the replay cursor went back: the summaries are redone now
            self._not_before.clear()
        state = self._lookup()
        touched = node_id in changes.nodes or node_id in changes.items or state is not self._state
        growing = state is not None and state.status == RUNNING and self.model.t != self._seen_t
        if not (touched or growing):
            return
        self._version += 1
        self._rebuild()
        self.refresh()

    # --- state ------------------------------------------------------------------------------

    @property
    def cursor(self) -> int | None:
        """The row under the cursor: an item index, :data:`NODE_ROW`, or None."""
        return self._row_at(self._cursor) if self._cursor is not None else None

    @property
    def aggregate(self) -> bool:
        """Whether the summary is shown instead of every row."""
        items = self._state.items if self._state is not None else None
        if items is None:
            return False
        return self._aggregate if self._aggregate is not None else items.count > AGGREGATE_OVER

    def _lookup(self) -> NodeState | BranchLanes | None:
        """The selected node's latest visit; a fan-out node's branches are its rows."""
        state = self.model.latest.get(self.node_id) if self.node_id is not None else None
        if state is not None and state.items is None and state.branches is not None:
            if self._branch_view is None or self._branch_view.state is not state:
                self._branch_view = BranchLanes(state)
            return self._branch_view
        return state

    def _rebuild(self) -> None:
        """Re-read the node's state; rebuild the aggregate lines; resize the scroll area."""
        state = self._lookup()
        row = self.cursor
        if state is not self._state:
            self._strips.clear()
            self._state = state
            self._stats = self._lane = self._groups = None
            self._version += 1
        self._seen_t = self.model.t
        self._lines = self._build_lines(state)
        self._row_lines = {}
        for y, ln in enumerate(self._lines or ()):
            if ln.kind == "row":
                self._row_lines.setdefault(ln.row, y)
        if self._cursor is not None and self._row_at(self._cursor) != row:
            self._cursor = self._line_of(row)  # the cursor stays on its row if still shown
        count = len(self._lines) if self._lines is not None else state.items.count  # type: ignore[union-attr]
        self.virtual_size = Size(0, HEADER + count)

    def _build_lines(self, state: NodeState | BranchLanes | None) -> list[Line] | None:
        lines = body_lines(self.node_id, state, aggregate=self.aggregate, stats=self.stats,
                           index=self.index, page=self._page())
        if not self.by_worker or state is None or isinstance(state, BranchLanes) \
                or state.items is None or not state.items.count:
            return lines
        return by_worker(lines, self._group_lines(state.items, rows=lines is None))

    def _group_lines(self, items: ItemTable, rows: bool) -> list[Line]:
        """The headings (and rows) of the workers' groups, redone at most once per update
        (and paced as the summary is while the node runs)."""
        cached = self._groups
        if cached is None or cached[1] != rows or self._due(cached[0], "groups"):
            t = perf_counter()
            cached = self._groups = (self._version, rows, group_lines(items, self.model.workers, rows=rows))
            self._pace("groups", t)
        return cached[2]

    def _page(self) -> int:
        return max(10, self.scrollable_content_region.height - HEADER)

    def stats(self) -> Stats | None:
        """The aggregate of the selected batch, computed at most once per update."""
        state = self._state
        if state is None or state.items is None:
            return None
        if self._stats is None or self._due(self._stats[0], "stats"):
            t = perf_counter()
            self._stats = (self._version, item_stats(state.items))
            self._pace("stats", t)
        return self._stats[1]

    def _due(self, version: int, kind: str) -> bool:
        """Whether an O(items) aggregate computed at ``version`` is to be redone now.

        While a node runs, the work is paced to about a tenth of the CPU (a 100,000-item
        batch refreshes its summary a few times a second rather than on every tick);
        this changes only how often live numbers refresh, never what a finished node shows.
        """
        if version == self._version:
            return False
        state = self._state
        return state is None or state.status != RUNNING or perf_counter() >= self._not_before.get(kind, 0.0)

    def _pace(self, kind: str, started: float) -> None:
        now = perf_counter()
        self._not_before[kind] = now + 9 * (now - started)

    def axis(self, width: int | None = None) -> Axis | None:
        """The time axis for the current width, zoom and pan."""
        state = self._state
        if width is None:
            width = self.scrollable_content_region.width
        if state is None or width <= 0:
            return None
        t0 = state.t_start
        t1 = state.t_end if state.t_end == state.t_end else self.model.t
        key = (id(state), t0, t1, width, self._zoom, self._pan)
        if self._axis is not None and self._axis[0] == key:
            return self._axis[1]
        label_w = label_width(state, width,
                              lambda: not isinstance(state, BranchLanes) and self.model.has_names(state))
        axis = make_axis(t0, t1, label_w, width, self._zoom, self._pan)
        self._axis = (key, axis)
        return axis

    # --- drawing ----------------------------------------------------------------------------

    def notify_style_update(self) -> None:
        super().notify_style_update()
        self._strips.clear()
        self._styles.clear()
        self._colors.clear()

    def on_mount(self) -> None:
        self._rebuild()
        self.watch(self.app, "theme", lambda _: self.notify_style_update(), init=False)

    def on_resize(self) -> None:
        if self._lines is not None and self.aggregate:
            self._rebuild()
        self.refresh()

    def _color(self, name: str) -> Color:
        color = self._colors.get(name)
        if color is None:
            if name.startswith("status:"):
                status = status_style(self.app, int(name[7:])).color
                color = status if status is not None else Color.parse("default")
            else:
                color = Color.parse(theme_color(self.app, ROLE_VARS.get(name, name)))
            self._colors[name] = color
        return color

    def _style(self, fg: str | None, bg: str | None, highlight: bool, bold: bool = False) -> Style:
        """The row's base style with a theme colour as foreground and/or background."""
        key = (fg, bg, highlight, bold)
        style = self._styles.get(key)
        if style is None:
            style = self.rich_style
            if highlight:
                style += Style(bgcolor=self._color(self._cursor_var()))
            if fg is not None:
                style += Style(color=style.bgcolor if fg == EMPTY else self._color(fg))
            if bg is not None:
                style += Style(bgcolor=self._color(bg))
            if bold:
                style += Style(bold=True)
            self._styles[key] = style
        return style

    def _base(self) -> Style:
        return self._style(None, None, False)

    def _cursor_var(self) -> str:
        return "block-cursor-blurred-background" if self.has_focus else "block-hover-background"

    def render_line(self, y: int) -> Strip:
        width = self.scrollable_content_region.width
        axis = self.axis(width)
        base = self._base()
        if y < HEADER:
            return self._axis_strip(axis, width) if axis is not None else Strip.blank(width, base)
        line = self.scroll_offset.y + y - HEADER
        lines = self._lines
        if lines is None:
            state = self._state
            if state is None or state.items is None or not 0 <= line < state.items.count:
                return Strip.blank(width, base)
            return self._row_strip(line, axis, width, line == self._cursor)
        if not 0 <= line < len(lines):
            return Strip.blank(width, base)
        entry = lines[line]
        if entry.kind == "row":
            return self._row_strip(entry.row, axis, width, line == self._cursor)
        if entry.kind == "lane" and axis is not None:
            return self._lane_strip(axis, width)
        if entry.kind == "counts":
            return self._counts_strip(width)
        if entry.kind == "durations":
            return self._durations_strip(width)
        if entry.kind == "heading":
            return self._text_strip([(f"─ {entry.text} ", self._style(QUEUED_VAR, None, False, bold=True))],
                                    width)
        return self._text_strip([(entry.text, self._style(QUEUED_VAR, None, False))], width)

    def _text_strip(self, parts: list[tuple[str, Style]], width: int) -> Strip:
        return Strip([Segment(text, style) for text, style in parts]).adjust_cell_length(
            width, self._base())

    def _axis_strip(self, axis: Axis, width: int) -> Strip:
        key = ("axis", width, axis)
        strip = self._strips.get(key)
        if strip is not None:
            return strip
        muted = self._style(QUEUED_VAR, None, False)
        label = f"×{2 ** self._zoom}" if self._zoom else ""
        strip = Strip([Segment(label.ljust(axis.label_w)[:axis.label_w], muted),
                       Segment(ticks(axis), muted)]).adjust_cell_length(width, self._base())
        self._strips[key] = strip
        return strip

    def _label(self, row: int, axis: Axis, highlight: bool) -> list[Segment]:
        state = self._state
        assert state is not None
        room = 0
        if row == NODE_ROW:
            status, attempts = state.status, 0
            name = literal(state.id)
            if len(name) > NODE_LABEL:
                name = name[:NODE_LABEL - 1] + "…"
            head = name + " "
        else:
            items = state.items
            assert items is not None
            status, attempts = items.status[row], items.attempts[row]
            if isinstance(state, BranchLanes):
                head = literal(state.branch_starts[row] if row < len(state.branch_starts) else "")
                head = (head if len(head) <= NODE_LABEL else head[:NODE_LABEL - 1] + "…") + " "
            else:
                index_w = len(f"#{max(items.count - 1, 0)}")
                head = f"#{row}".ljust(index_w) + " "
                room = axis.label_w - index_w - 8  # the label's cells, and a space after it
        parts = [Segment(head, self._style(None, None, highlight, bold=highlight))]
        if room > 2:
            name = self.model.item_name(state, row)  # type: ignore[arg-type]
            if cell_len(name) > room:  # a label cut at its start (a path) keeps its end
                name = ("…" + set_cell_size(name[::-1], room - 1)[::-1] if name[:1] == "…"
                        else set_cell_size(name, room - 1) + "…")
            parts.append(Segment(set_cell_size(name, room) + " ", self._style(LABEL_VAR, None, highlight)))
        parts.append(Segment(SYMBOLS.get(status, "?"), self._style(status_role(status), None, highlight)))
        if attempts > 1:
            parts.append(Segment(f" ↻{attempts}", self._style(RETRY_VAR, None, highlight)))
        pad = self._style(None, None, highlight)
        return [*Strip(parts).adjust_cell_length(axis.label_w - 1, pad), Segment(" ", pad)]

    def _row_strip(self, row: int, axis: Axis | None, width: int, highlight: bool) -> Strip:
        state = self._state
        if state is None or axis is None:
            return Strip.blank(width, self._base())
        now = self.model.t
        if row == NODE_ROW:
            item_key: tuple = (state.status, state.start_seq, state.end_seq, state.wait_seq,
                               state.ready_seq)
            unfinished = state.t_end != state.t_end
        else:
            items = state.items
            assert items is not None
            status = items.status[row]
            item_key = (status, items.start_seq[row], items.end_seq[row], items.attempts[row])
            unfinished = status in (RUNNING, PENDING)
        key = (row, width, axis, item_key, highlight, now if unfinished else None)
        strip = self._strips.get(key)
        if strip is None:
            bars = self._bars(row, axis, highlight)
            strip = Strip(self._label(row, axis, highlight) + bars).adjust_cell_length(
                width, self._style(None, None, highlight))
            self._strips[key] = strip
        return strip

    def _bars(self, row: int, axis: Axis, highlight: bool) -> list[Segment]:
        state = self._state
        assert state is not None
        queued, spans = row_spans(state, row, axis, self.model.t)
        return bar_segments(queued, spans, axis.bar_w, lambda fg, bg: self._style(fg, bg, highlight))

    def _lane_strip(self, axis: Axis, width: int) -> Strip:
        state = self._state
        assert state is not None and state.items is not None
        view = (axis.bar_w, self._zoom, self._pan, id(state))
        cached = self._lane
        if cached is None or cached[1] != view or self._due(cached[0], "lane"):
            t = perf_counter()
            cached = self._lane = (self._version, view, concurrency(state.items, self.model.t, axis))
            self._pace("lane", t)
        levels = cached[2]
        peak, chars = lane(levels)
        label = f"peak {peak}".ljust(axis.label_w)[:axis.label_w]
        return Strip([Segment(label, self._style(QUEUED_VAR, None, False)),
                      Segment(chars, self._style(status_role(RUNNING), None, False))]).adjust_cell_length(
            width, self._base())

    def _counts_strip(self, width: int) -> Strip:
        stats = self.stats()
        state = self._state
        if stats is None or state is None:
            return Strip.blank(width, self._base())
        c = stats.counts
        muted = self._style(QUEUED_VAR, None, False)
        parts: list[tuple[str, Style]] = []
        for code, name, n in ((OK, "ok", c[OK]), (ERROR, "failed", c[ERROR]),
                              (RUNNING, "running", c[RUNNING]), (PENDING, "pending", c[PENDING]),
                              (CANCELLED, "cancelled", c[CANCELLED]), (SKIPPED, "skipped", c[SKIPPED])):
            if n or code in (OK, ERROR, RUNNING, PENDING):
                parts += [(f"{SYMBOLS[code]} {n} ", self._style(status_role(code), None, False, bold=True)),
                          (f"{name}   ", muted)]
        batch = state.batch or {}
        if batch.get("parallel"):
            limit = batch.get("max_concurrent")
            parts.append((f"max_concurrent {limit}" if limit else "parallel, no limit", muted))
        else:
            parts.append(("sequential", muted))
        return self._text_strip(parts, width)

    def _durations_strip(self, width: int) -> Strip:
        stats = self.stats()
        if stats is None:
            return Strip.blank(width, self._base())
        muted = self._style(QUEUED_VAR, None, False)
        plain = self._style(None, None, False, bold=True)
        parts: list[tuple[str, Style]] = []
        for name, value in (("p50", stats.p50), ("p95", stats.p95), ("max", stats.longest)):
            parts += [(f"{name} ", muted), (f"{format_duration(value, '–')}   ", plain)]
        parts.append((f"of {stats.finished} finished", muted))
        return self._text_strip(parts, width)

    # --- keys and mouse ---------------------------------------------------------------------

    def _rows_in_view(self) -> int:
        return max(1, self.scrollable_content_region.height - HEADER)

    def _line_of(self, row: int | None) -> int | None:
        """The first body line showing ``row``, if any."""
        if row is None:
            return None
        if self._lines is None:
            return row if self._row_at(row) is not None else None
        return self._row_lines.get(row)

    def _row_at(self, line: int) -> int | None:
        """The row shown on body ``line``, if it is a row."""
        if self._lines is None:
            state = self._state
            ok = state is not None and state.items is not None and 0 <= line < state.items.count
            return line if ok else None
        if 0 <= line < len(self._lines) and self._lines[line].kind == "row":
            return self._lines[line].row
        return None

    def _move_to_line(self, line: int) -> None:
        if self._row_at(line) is None:
            return
        old, self._cursor = self._cursor, line
        if old is not None:
            self.refresh_lines(old + HEADER)
        self.refresh_lines(line + HEADER)
        self._scroll_to_cursor()

    def _scroll_to_cursor(self, center: bool = False) -> None:
        line = self._cursor
        if line is None:
            return
        top, rows = round(self.scroll_offset.y), self._rows_in_view()
        if center and not top <= line < top + rows:
            self.scroll_to(y=max(0, line - rows // 2), animate=False)
        elif line < top:
            self.scroll_to(y=line, animate=False)
        elif line >= top + rows:
            self.scroll_to(y=line - rows + 1, animate=False)

    def _body_rows(self) -> list[int] | range:
        """The body lines that hold rows, in order."""
        if self._lines is None:
            state = self._state
            return range(state.items.count if state is not None and state.items is not None else 0)
        return [y for y, ln in enumerate(self._lines) if ln.kind == "row"]

    def action_cursor(self, delta: int) -> None:
        """Move the row cursor by ``delta`` rows."""
        lines = self._body_rows()
        if not lines:
            return
        if self._cursor is None or self._cursor not in lines:  # start from the top of the view
            top = round(self.scroll_offset.y)
            self._move_to_line(next((y for y in lines if y >= top), lines[-1]) if delta > 0 else lines[-1])
            return
        i = self._cursor if self._lines is None else lines.index(self._cursor)
        self._move_to_line(lines[min(max(i + delta, 0), len(lines) - 1)])

    def action_page(self, direction: int) -> None:
        """Move the row cursor by a page."""
        self.action_cursor(direction * self._rows_in_view())

    def action_cursor_to(self, where: int) -> None:
        """Move the row cursor to the first (0) or last (-1) row."""
        lines = self._body_rows()
        if lines:
            self._move_to_line(lines[where])

    def action_choose(self) -> None:
        """Ask the app to select the row under the cursor."""
        self._request(self.cursor)

    def _request(self, row: int | None) -> None:
        if row is None or self.node_id is None:
            return
        state = self._state
        if isinstance(state, BranchLanes) and row != NODE_ROW:  # a branch: select its first node
            if row < len(state.branch_starts) and state.branch_starts[row]:
                request_selection(self, Selection(state.branch_starts[row]))
            return
        request_selection(self, Selection(self.node_id, None if row == NODE_ROW else row))

    def on_click(self, event: events.Click) -> None:
        offset = event.get_content_offset(self)
        if offset is None or offset.y < HEADER:
            return
        line = self.scroll_offset.y + offset.y - HEADER
        row = self._row_at(line)
        if row is None:
            return
        self._move_to_line(line)
        self._request(row)

    def action_toggle_aggregate(self) -> None:
        """Switch between the summary and every row."""
        state = self._state
        if state is None or state.items is None:
            return
        self._aggregate = not self.aggregate
        self._rebuild()
        self.scroll_to(y=0, animate=False)
        self._scroll_to_cursor(center=True)
        self.refresh()

    def action_toggle_workers(self) -> None:
        """Group the rows by the cluster worker that ran them, or not; the cursor stays on
        its row. Only this pane is redrawn (no layout)."""
        self.by_worker = not self.by_worker
        self._groups = None
        self._rebuild()
        self.scroll_to(y=0, animate=False)
        self._scroll_to_cursor(center=True)
        self.refresh()

    def action_zoom(self, direction: int) -> None:
        """Zoom the time axis in (1) or out (-1) around the middle of the view."""
        zoom, pan = zoomed(self._zoom, self._pan, direction)
        if zoom == self._zoom:
            return
        self._zoom, self._pan = zoom, pan
        self.refresh()

    def action_zoom_reset(self) -> None:
        """Show the node's whole run again."""
        self._zoom, self._pan = 0, 0.0
        self.refresh()

    def action_pan(self, direction: int) -> None:
        """Scroll the zoomed axis by a quarter of the view."""
        self._pan = panned(self._zoom, self._pan, direction)
        self.refresh()

    def on_focus(self) -> None:
        self._styles.clear()
        self._strips.clear()
        self.refresh()

    def on_blur(self) -> None:
        self.on_focus()


def bar_segments(queued: tuple[int, int] | None, spans: list[tuple[int, int, str]], cells: int,
                 style: StyleFor) -> list[Segment]:
    """One row's bars in ``cells`` cells (see :func:`~..timeline_geometry.bar_cells`), each run
    of cells in ``style(fg, bg)`` of its colour roles."""
    return [Segment(text, style(*look)) for text, look in bar_cells(queued, spans, cells)]
