"""The event log pane: every event of the run, filtered, on the Line API.

The filter keeps an ``array('I')`` of matching event indexes into ``model.events``. New
events are filtered incrementally (only those after the last one seen); a new filter
rescans in time-boxed slices, so even millions of events never freeze the UI.

The filter and its grammar: :mod:`pflow_tui.app.event_filter`.
"""

from __future__ import annotations

import re
from array import array
from bisect import bisect_left
from collections.abc import Callable
from functools import partial
from time import perf_counter
from typing import Any, ClassVar

from rich.style import Style
from rich.text import Text
from textual import events, on
from textual.actions import SkipAction
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.cache import LRUCache
from textual.containers import Vertical
from textual.content import Content
from textual.geometry import Size
from textual.scroll_view import ScrollView
from textual.strip import Strip
from textual.timer import Timer
from textual.widgets import Input, Static

from ...engine.paths import format_duration
from ...engine.trace import events as ev
from ...engine.trace.events import Event
from ...engine.trace.writer import dumps
from ...text import literal
from ..event_filter import EventFilter, unknown_kinds
from ..messages import Selection, request_selection
from ..model import Changes, RunModel
from ..status import STATUS_CODES
from ..styles import SYMBOLS, status_style, theme_color

SCAN_CHUNK = 4096  # events filtered per step
SCAN_BUDGET = 0.04  # seconds of filtering per slice before the UI gets a turn
KIND_WIDTH = 13  # len("attempt.start")
STATUS_WIDTH = 11  # len("⊘ cancelled")
# the theme variable (and boldness) that colours each kind's category
CATEGORY_VARS = {"run": ("text-primary", True), "node": ("text-secondary", True),
                 "item": ("foreground-darken-1", False), "attempt": ("foreground-darken-2", False),
                 "wait": ("foreground-darken-2", False),
                 "edge": ("secondary-lighten-2", False), "store": ("text-accent", False),
                 "warning": ("text-warning", True)}

_ITERATION = re.compile(r"\.iteration_(\d+)(?=\.|$)")
# line breaks and direction overrides that would disturb a one-line row
_UNSAFE = re.compile(r"[\n\t\u2028\u2029\u200e\u200f\u202a-\u202e\u2066-\u2069]")


# --- what an event is about ---------------------------------------------------------------


def _node_segment(path: Any) -> str | None:
    """The node id in a path: its second segment, without ``#visit``."""
    if path.__class__ is not str:
        return None
    parts = path.split(".", 2)
    return parts[1].partition("#")[0] if len(parts) > 1 else None


def event_selection(event: Event) -> Selection | None:
    """The node (and iteration) an event is about, or None for run-level events."""
    path = event.get("path")
    node_id = _node_segment(path)
    if not node_id:
        return None
    m = _ITERATION.search(path)
    return Selection(node_id, int(m.group(1)) if m else None)


# --- rendering one event -------------------------------------------------------------------


def _flat(value: Any, limit: int, as_json: bool = False) -> str:
    """``value`` as one literal line of at most about ``limit`` characters (strings as is,
    unless ``as_json``; anything else as JSON)."""
    if isinstance(value, str) and not as_json:
        text = value
    else:
        if isinstance(value, str) and len(value) > limit:
            value = value[:limit]
        text = dumps(value).decode("utf-8", "replace")
    if len(text) > limit:
        text = text[:limit]
    return _UNSAFE.sub(lambda m: repr(m.group())[1:-1], literal(text))


def _brief(value: Any, limit: int) -> str:
    """A dict as ``key=value`` pairs with long nested containers shortened, as one literal line."""
    if not isinstance(value, dict):
        return _flat(value, limit)
    parts: list[str] = []
    size = 0
    for key, v in value.items():
        if isinstance(v, str) and len(v) > limit:
            v = v[:limit]
        container = isinstance(v, (dict, list, tuple))
        # more than 16 entries is over 32 characters as JSON: no need to write it out
        text = "" if container and len(v) > 16 else dumps(v).decode("utf-8", "replace")
        if container and (not text or len(text) > 32):
            text = f"{{…{len(v)}}}" if isinstance(v, dict) else f"[…{len(v)}]"
        parts.append(f"{key}={text}")
        size += len(parts[-1]) + 1
        if size > limit:
            break
    return _flat(" ".join(parts), limit)


def _duration(value: Any) -> str:
    return format_duration(value) if isinstance(value, (int, float)) else ""


def _waited_on(event: Event, limit: int) -> str:
    """What a wait event waits for: ``rate limit 'llm'``, ``a process`` or ``a cluster worker``."""
    if event.get("on") == "processes":
        return "a process"
    if event.get("on") == "cluster":
        return "a cluster worker"
    return f"rate limit {_flat(event.get('key', ''), limit)!r}"


def _error_line(error: dict[str, Any], limit: int) -> str:
    """An error as one line: the first line of its message, after its type unless that is
    the generic ``NodeError`` (a node's error output: the message says it all)."""
    message = str(error.get("message", "")).strip().partition("\n")[0]
    kind = str(error.get("type", "Error"))
    return _flat(message if kind == "NodeError" and message else f"{kind}: {message}", limit)


def summary(event: Event, limit: int = 400) -> str:
    """A short literal description of an event (what follows its status)."""
    kind = event.get("kind")
    get = event.get
    parts: list[str] = []
    if kind is not None and str(kind).endswith(".end"):
        error = get("error")
        if isinstance(error, dict):  # the error first: its whole first line
            parts.append(_error_line(error, limit))
        elif error:
            parts.append(_flat(str(error).strip().partition("\n")[0], limit))
        parts.append(_duration(get("duration")))
        if (attempts := get("attempts")) and isinstance(attempts, int) and attempts > 1:
            parts.append(f"{attempts} attempts")
        if kind == ev.ATTEMPT_END:
            parts.append(f"attempt {get('attempt')}" + (", will retry" if get("will_retry") else ""))
        elif kind == ev.WAIT_END:
            parts.append(f"waited for {_waited_on(event, limit)}")
        if isinstance(worker := get("worker"), str) and worker:
            parts.append(f"on {_flat(worker, limit)}")
        if (action := get("action")) not in (None, "default"):
            parts.append(f"-> {_flat(action, limit)}")
        if (progress := get("progress")) and isinstance(progress, dict):
            parts.append(f"{progress.get('done')}/{progress.get('total')} ok, "
                         f"{progress.get('failed')} failed")
        if not error and not progress and (outputs := get("outputs")) not in (None, {}):
            parts.append(_brief(outputs, limit))
    elif kind == ev.ITEM_START:
        parts.append("item=" + _flat(get("item"), limit, as_json=True))
    elif kind == ev.NODE_START:
        parts.append(_flat(get("type", ""), limit))
        if isinstance(batch := get("batch"), dict):
            limit_ = batch.get("max_concurrent")
            mode = ("sequential" if not batch.get("parallel") else
                    f"parallel x{limit_}" if limit_ else "parallel")
            count = batch.get("count")
            parts.append(f"batch of {count} ({mode})" if count is not None else f"batch ({mode})")
    elif kind == ev.ATTEMPT_START:
        parts.append(f"attempt {get('attempt')}")
        if isinstance(worker := get("worker"), str) and worker:
            parts.append(f"on {_flat(worker, limit)}")
    elif kind == ev.WAIT_START:
        parts.append(f"waits for {_waited_on(event, limit)} ({_flat(get('limit', ''), limit)})")
    elif kind == ev.EDGE:
        parts.append(f"{_flat(get('from'), limit)} -> {_flat(get('to'), limit)} "
                     f"[{_flat(get('action', 'default'), limit)}]")
    elif kind == ev.STORE_WRITE:
        parts.append(f"key={_flat(get('key'), limit)}  " + _brief(get("value"), limit))
    elif kind == ev.WARNING:
        parts.append(_flat(get("message", ""), limit))
    elif kind == ev.RUN_START:
        if get("inputs"):
            parts.append("inputs: " + _brief(get("inputs"), limit))
    else:
        rest = {k: v for k, v in event.items() if k not in ("seq", "t", "kind", "path")}
        if rest:
            parts.append(_flat(rest, limit))
    return "  ".join(p for p in parts if p)


# --- the list ------------------------------------------------------------------------------


class EventList(ScrollView, can_focus=True):
    """The filtered events, one per line, with a cursor and a follow mode."""

    requested: Selection | None = None  # asked for, on its way to the screen (request_selection)
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("up", "cursor_up", "Up", show=False),
        Binding("down", "cursor_down", "Down", show=False),
        Binding("pageup", "page_up", "Page up", show=False),
        Binding("pagedown", "page_down", "Page down", show=False),
        Binding("home", "first", "First", show=False),
        Binding("end", "last", "Last (follow)", show=False),
        Binding("enter", "choose", "Select", show=False),
    ]
    COMPONENT_CLASSES: ClassVar[set[str]] = {"event-list--cursor"}
    DEFAULT_CSS = """
    EventList {
        height: 1fr;
        overflow-x: hidden;
        background: $surface;
        & > .event-list--cursor {
            background: $block-cursor-blurred-background;
            color: $block-cursor-blurred-foreground;
        }
        &:focus > .event-list--cursor {
            background: $block-cursor-background;
            color: $block-cursor-foreground;
            text-style: $block-cursor-text-style;
        }
    }
    """

    def __init__(self, model: RunModel, *, id: str | None = None) -> None:
        super().__init__(id=id)
        self.model = model
        self.filter = EventFilter()
        self._matcher: Callable[[Event], bool] | None = None
        self.matches = array("I")  # indexes into model.events, ascending
        self.seen = 0  # events before this index have been filtered
        self.cursor = 0  # row in matches
        self.following = True
        self.selection = Selection()
        self._anchor: int | None = None  # event to put the cursor on once a rescan ends
        self._scan_timer: Timer | None = None
        self._cache: LRUCache[int, Strip] = LRUCache(256)  # rendered rows (a few screens' worth)
        self._later: set[int] = set()  # big events shown by their leading fields, then parsed
        self._styles: dict[Any, Style] | None = None
        self._path_width = self._graph_path_width()
        self.on_counts: Callable[[], None] | None = None  # the pane's status row

    # --- filtering ---------------------------------------------------------------------

    @property
    def scanning(self) -> bool:
        return self.seen < len(self.model.events)

    def set_filter(self, text: str) -> None:
        """Filter by ``text`` (see the module doc): one rescan, in slices if it is long."""
        flt = EventFilter.parse(text)
        if flt == self.filter:
            return
        if self.matches and not self.following and self.cursor < len(self.matches):
            self._anchor = self.matches[self.cursor]
        self.filter = flt
        self._matcher = flt.matcher(self.model.labels_at)
        self.matches = array("I")
        self.seen = 0
        self.cursor = 0
        self._cache.clear()
        self._stop_timer()
        self._advance(refiltered=True)

    def update_from(self, changes: Changes) -> None:
        """Filter the events that arrived since the last call; repaint only if needed."""
        total = len(self.model.events)
        if total < self.seen:  # the replay cursor went back: the later events are gone
            old_rows = len(self.matches)
            del self.matches[bisect_left(self.matches, total):]
            self.seen = total
            self.cursor = min(self.cursor, max(0, len(self.matches) - 1))
            self._rows_changed(old_rows, refiltered=False)
            self.refresh()
        if self.scanning and self._scan_timer is None:
            self._advance()

    def _advance(self, refiltered: bool = False) -> None:
        """Filter the next slice of unseen events, then show what changed."""
        self._scan_timer = None
        events = self.model.events
        total = len(events)
        old_rows = len(self.matches)
        deadline = perf_counter() + SCAN_BUDGET
        while self.seen < total:
            stop = min(total, self.seen + SCAN_CHUNK)
            self.filter.scan(events, self.seen, stop, self.matches, self._matcher)
            self.seen = stop
            if perf_counter() > deadline:
                break
        if self.scanning:
            self._scan_timer = self.set_timer(0.01, self._advance)
        elif refiltered or self._anchor is not None:  # the rescan is done: back to the anchor
            row = bisect_left(self.matches, self._anchor) if self._anchor is not None else 0
            self._anchor = None
            self.cursor = min(row, max(0, len(self.matches) - 1))
            if not self.following:
                self._scroll_to_cursor(center=True)
        self._rows_changed(old_rows, refiltered)

    def _rows_changed(self, old_rows: int, refiltered: bool) -> None:
        rows = len(self.matches)
        if rows != old_rows or refiltered:
            # a longer list needs new scrollbars, not a new layout of the whole screen
            size = Size(0, rows)
            self.set_reactive(ScrollView.virtual_size, size)
            self._scroll_update(size)
            if self.following and rows:
                self.cursor = rows - 1
                self.scroll_end(animate=False, immediate=True, x_axis=False, force=True)
                self.refresh()
            elif refiltered or old_rows < self.scroll_offset.y + self.size.height:
                self.refresh()  # new rows are in view
        if self.on_counts is not None:
            self.on_counts()

    def _stop_timer(self) -> None:
        if self._scan_timer is not None:
            self._scan_timer.stop()
            self._scan_timer = None

    # --- selection and cursor ----------------------------------------------------------

    @property
    def cursor_event(self) -> Event | None:
        if 0 <= self.cursor < len(self.matches):
            return self.model.events[self.matches[self.cursor]]
        return None

    def select(self, selection: Selection) -> None:
        """Mark the selected node's events; move to its first one unless already on it."""
        if selection == self.selection:
            return
        self.selection = selection
        self._cache.clear()
        self.refresh()
        if selection.node_id is None:
            return
        current = self.cursor_event
        if current is not None and self._is_selected(current):
            return
        state = self.model.latest.get(selection.node_id)
        if state is None:
            return
        seq = state.start_seq
        items = state.items
        if selection.index is not None and items is not None and 0 <= selection.index < items.count:
            seq = items.start_seq[selection.index] or seq
        row = bisect_left(self.matches, seq - 1) if seq else len(self.matches)
        if row < len(self.matches):
            self.following = False
            self._move(row, center=True)

    def _is_selected(self, event: Event) -> bool:
        sel = self.selection
        if sel.node_id is None:
            return False
        mine = event_selection(event)
        return mine is not None and mine.node_id == sel.node_id and (
            sel.index is None or mine.index == sel.index)

    def _move(self, row: int, center: bool = False) -> None:
        rows = len(self.matches)
        row = max(0, min(row, rows - 1))
        if row != self.cursor:
            old = self.cursor
            self.cursor = row
            self.refresh_line(old)
            self.refresh_line(row)
        self._scroll_to_cursor(center)
        if self.on_counts is not None:
            self.on_counts()

    def _scroll_to_cursor(self, center: bool = False) -> None:
        height = self.scrollable_content_region.height or self.size.height
        top = self.scroll_offset.y
        if center and not top <= self.cursor < top + height:
            self.scroll_to(y=max(0, self.cursor - height // 2), animate=False, immediate=True, force=True)
        elif self.cursor < top:
            self.scroll_to(y=self.cursor, animate=False, immediate=True, force=True)
        elif self.cursor >= top + height:
            self.scroll_to(y=self.cursor - height + 1, animate=False, immediate=True, force=True)

    def action_cursor_up(self) -> None:
        self.following = False
        self._move(self.cursor - 1)

    def action_cursor_down(self) -> None:
        self._move(self.cursor + 1)
        self.following = self.cursor >= len(self.matches) - 1
        if self.on_counts is not None:
            self.on_counts()

    def action_page_up(self) -> None:
        self.following = False
        self._move(self.cursor - max(1, self.size.height - 1))

    def action_page_down(self) -> None:
        self._move(self.cursor + max(1, self.size.height - 1))
        self.following = self.cursor >= len(self.matches) - 1
        if self.on_counts is not None:
            self.on_counts()

    def action_first(self) -> None:
        self.following = False
        self._move(0)

    def action_last(self) -> None:
        self.following = True
        self._move(len(self.matches) - 1)
        self.scroll_end(animate=False, immediate=True, x_axis=False, force=True)

    def action_choose(self) -> None:
        event = self.cursor_event
        selection = event_selection(event) if event is not None else None
        if selection is not None:
            request_selection(self, selection)

    def on_click(self, event: events.Click) -> None:
        offset = event.get_content_offset(self)
        if offset is None:
            return
        row = self.scroll_offset.y + offset.y
        if row < len(self.matches):
            self.following = row == len(self.matches) - 1
            self._move(row)
            self.action_choose()

    def watch_scroll_y(self, old_value: float, new_value: float) -> None:
        super().watch_scroll_y(old_value, new_value)
        scrolled_up = round(new_value) < round(old_value) and round(new_value) < self.max_scroll_y
        if scrolled_up and self.following:
            self.following = False
            if self.on_counts is not None:
                self.on_counts()

    def on_focus(self) -> None:
        self.refresh_line(self.cursor)

    def on_blur(self) -> None:
        self.refresh_line(self.cursor)

    def refresh_line(self, y: int) -> None:  # y is a row of the list, like ScrollView's
        if 0 <= y < len(self.matches):
            super().refresh_line(y)

    # --- rendering ---------------------------------------------------------------------

    def _graph_path_width(self) -> int:
        graph = self.model.graph
        longest = max((len(nid) + (16 if graph.is_batch(nid) else 3) for nid in graph.nodes), default=12)
        return max(12, min(40, longest))

    def notify_style_update(self) -> None:
        super().notify_style_update()
        self._styles = None
        self._cache.clear()

    def on_resize(self, event: events.Resize) -> None:
        self._cache.clear()
        if self.following and self.matches:
            self.scroll_end(animate=False, immediate=True, x_axis=False, force=True)

    def _get_styles(self) -> dict[Any, Style]:
        if self._styles is None:
            app = self.app
            styles: dict[Any, Style] = {
                cat: Style(color=theme_color(app, var), bold=bold)
                for cat, (var, bold) in CATEGORY_VARS.items()}
            styles.update({code: status_style(app, code) for code in SYMBOLS})
            styles["dim"] = Style(color=theme_color(app, "foreground-darken-2"))
            styles["text"] = Style(color=theme_color(app, "foreground"))
            styles["mark"] = Style(color=theme_color(app, "accent"), bold=True)
            self._styles = styles
        return self._styles

    def event_text(self, event: Event, width: int) -> Text:
        """One event as a styled, literal line (no markup anywhere)."""
        st = self._get_styles()
        get = event.get
        kind = str(get("kind", "?"))
        path = str(get("path", ""))
        rel = _flat(path.partition(".")[2], 400) if "." in path else ""
        pw = min(self._path_width, max(8, width // 4))
        if len(rel) > pw:
            rel = "…" + rel[-(pw - 1):]
        t = get("t")
        text = Text(no_wrap=True, overflow="ellipsis", end="")
        text.append("▌" if self._is_selected(event) else " ", st["mark"])
        text.append(f"{t:8.3f}s " if isinstance(t, (int, float)) else " " * 10, st["dim"])
        text.append(_flat(kind, KIND_WIDTH).ljust(KIND_WIDTH)[:KIND_WIDTH] + " ",
                    st.get(kind.partition(".")[0], st["text"]))
        text.append(rel.ljust(pw) + " ", st["text"])
        status = get("status")
        if kind.endswith(".end") and isinstance(status, str):
            code = STATUS_CODES.get(status)
            label = f"{SYMBOLS.get(code, '?')} {_flat(status, STATUS_WIDTH)}"
            text.append(label.ljust(STATUS_WIDTH)[:STATUS_WIDTH] + " ",
                        st.get(code, st["text"]) if code is not None else st["text"])
        else:
            text.append(" " * (STATUS_WIDTH + 1))
        text.append(summary(event, limit=max(40, width * 2)), st["text"])
        return text

    def render_line(self, y: int) -> Strip:
        row = self.scroll_offset.y + y
        width = self.scrollable_content_region.width or self.size.width
        base = self.rich_style
        if row >= len(self.matches):
            return Strip.blank(width, base)
        index = self.matches[row]
        cursor = row == self.cursor
        if not cursor and (strip := self._cache.get(index)) is not None and strip.cell_length == width:
            return strip
        event, whole = self._event(index)
        text = self.event_text(event, width)
        if cursor:  # plain text on the cursor colours, for contrast
            text = Text(text.plain, no_wrap=True, end="")
        text.truncate(width, overflow="ellipsis", pad=True)
        text.stylize_before(base + self.get_component_rich_style("event-list--cursor") if cursor else base)
        strip = Strip(list(text.render(self.app.console)), width).crop_extend(0, width, base)
        if not cursor and whole:
            self._cache[index] = strip
        return strip

    def _event(self, index: int) -> tuple[Event, bool]:
        """The event at ``index``, and whether it is whole: a replay's big event (megabytes
        of outputs) comes as its leading fields first, and whole right after this frame."""
        events = self.model.events
        ready = getattr(events, "ready", None)
        if ready is None or index in self._later or ready(index):
            return events[index], True
        if len(self._later) > 1024:
            self._later.clear()
        self._later.add(index)
        self.set_timer(0.001, partial(self._parse, index))
        return events.head(index), False

    def _parse(self, index: int) -> None:
        if index < len(self.model.events):
            self.model.events[index]  # (kept parsed for a while)
            self.refresh()


# --- the pane ------------------------------------------------------------------------------


class FilterInput(Input):
    """The filter box. It takes focus only when asked (``/``, a click), never by tab:
    tabbing into the Events pane lands on the events, where the pane's keys work."""

    can_focus = False

    def take_focus(self) -> None:
        """Focus now, not after the keys already queued: ``/status`` typed fast from another
        pane goes into the box whole (``Widget.focus`` would let ``s`` reach that pane)."""
        self.can_focus = True
        self.screen.set_focus(self)

    def _on_blur(self, event: events.Blur) -> None:
        self.can_focus = False
        super()._on_blur(event)

    async def _on_mouse_down(self, event: events.MouseDown) -> None:
        if not self.has_focus:
            self.take_focus()
        await super()._on_mouse_down(event)


class EventLogView(Vertical):
    """The event log: a filter input, the filtered events, and a count row."""

    BINDINGS: ClassVar[list[BindingType]] = [  # "/" is the run screen's: it works from any pane
        Binding("escape", "focus_list", "Back to the events", show=False),
    ]
    DEFAULT_CSS = """
    EventLogView {
        height: 1fr;
        & > Input {
            height: 1;
            border: none;
            padding: 0 1;
            background: $boost;
            &:focus {
                background: $primary-background;
            }
        }
        & > #event-log-status {
            height: 1;
            padding: 0 1;
            color: $foreground-darken-2;
            background: $panel;
        }
    }
    """

    def __init__(self, model: RunModel, *, id: str | None = None) -> None:
        super().__init__(id=id)
        self.model = model
        self.list = EventList(model, id="event-list")
        self.list.on_counts = self._show_counts
        self.filter_input = FilterInput(
            placeholder="/ filter: kind:item.end status:error path:… node:… text",
            id="event-filter", compact=True)
        self.status_row = Static(id="event-log-status")
        self._status = ""

    def compose(self) -> ComposeResult:
        yield self.filter_input
        yield self.list
        yield self.status_row

    def on_mount(self) -> None:
        self.list.update_from(Changes(events=len(self.model.events)))
        self._show_counts()

    # --- the pane contract (contracts.Pane) ----------------------------------------------

    def update_from(self, changes: Changes) -> None:
        """New events: filter only those, repaint only what shows them."""
        self.list.update_from(changes)

    def select(self, selection: Selection) -> None:
        self.list.select(selection)

    def follow(self) -> None:
        """Show the newest events, and keep showing them as more arrive (the replay cursor
        moved: what it just applied is what to see)."""
        lst = self.list
        lst.following = True
        if lst.matches:
            lst.cursor = len(lst.matches) - 1
            lst.scroll_end(animate=False, immediate=True, x_axis=False, force=True)
            lst.refresh()
        self._show_counts()

    # --- filter and focus --------------------------------------------------------------

    def set_filter(self, text: str) -> None:
        """Set the filter text (as if typed)."""
        if self.filter_input.value != text:
            self.filter_input.value = text  # Input.Changed applies it
        self.list.set_filter(text)

    @on(Input.Changed, "#event-filter")
    def _filter_changed(self, event: Input.Changed) -> None:
        event.stop()
        self.list.set_filter(event.value)
        self._show_counts()  # the filter's own problems, though the count may not change

    @on(Input.Submitted, "#event-filter")
    def _filter_submitted(self, event: Input.Submitted) -> None:
        event.stop()
        self.list.focus()

    def action_focus_filter(self) -> None:
        self.filter_input.take_focus()

    def action_focus_list(self) -> None:
        if not self.filter_input.has_focus:
            raise SkipAction()
        self.list.focus()

    def _show_counts(self) -> None:
        lst = self.list
        total = len(self.model.events)
        text = f"{len(lst.matches):,} / {total:,} events" if lst.filter else f"{total:,} events"
        if lst.scanning:
            text += f"  filtering… {lst.seen * 100 // max(1, total)}%"
        elif lst.following:
            text += "  following"
        if problem := unknown_kinds(lst.filter):
            text += "  · " + problem
        if text != self._status:
            self._status = text
            self.status_row.update(Content(text), layout=False)  # one line: no re-layout
