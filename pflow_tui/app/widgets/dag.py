"""The DAG pane: the flow's nodes as boxes and arrows, coloured by live status."""

from __future__ import annotations

from typing import ClassVar

from rich.cells import cell_len, set_cell_size
from rich.segment import Segment
from rich.style import Style
from textual import events
from textual.binding import Binding, BindingType
from textual.geometry import Size
from textual.scroll_view import ScrollView
from textual.strip import Strip

from ...engine.paths import format_duration
from ...text import literal
from ..dag_layout import Box, DagLayout, Metrics, fit_layout, layout_graph
from ..messages import Selection, request_selection
from ..model import Changes, NodeState, RunModel
from ..status import ERROR, PENDING, RUNNING
from ..styles import SYMBOLS, status_style, theme_color

LIGHT = ("┌", "─", "┐", "│", "└", "┘", "┬")
HEAVY = ("┏", "━", "┓", "┃", "┗", "┛", "┯")
SHARE = 2 / 3  # at most this much of its column's height, when the tree shares it
BELOW = 6  # rows it leaves the tree below it at least (4 of them inside the border)
PURPOSE_FROM = 30  # inner width from which a box's type line also shows the node's purpose


def _fit(text: str, width: int) -> str:
    """``text`` in exactly ``width`` cells, ending with … when cut."""
    if cell_len(text) > width:
        return set_cell_size(text, width - 1) + "…" if width > 0 else ""
    return set_cell_size(text, width)


def _common_stem(a: str, b: str) -> int:
    """How much of ``a`` it shares with ``b`` up to a separator (``-``, ``_``, ``.``), or 0."""
    n = 0
    while n < min(len(a), len(b)) and a[n] == b[n]:
        n += 1
    return max((i + 1 for i in range(n) if a[i] in "-_."), default=0)


class DagView(ScrollView, can_focus=True):
    """The flow's graph. Arrows move the selection, Enter or a click selects a node.

    The graph is laid out at the size that shows the most of it in the pane
    (:func:`fit_layout`: full boxes, compact ones, one-line ones), centred when narrower than
    the pane; scrolling keeps whole layers at the top, so no arrow dangles from a box out of
    view. With ``height: auto`` the pane asks for the graph's height, up to :data:`SHARE` of
    its column.
    """

    ALLOW_MAXIMIZE = True
    requested: Selection | None = None  # asked for, on its way to the screen (request_selection)
    DEFAULT_CSS = """
    DagView {
        width: 1fr;
        height: 1fr;
        scrollbar-size-vertical: 1;
    }
    """

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("up", "move_layer(-1)", "Node above", show=False),
        Binding("down", "move_layer(1)", "Node below", show=False),
        Binding("left", "move_order(-1)", "Node left", show=False),
        Binding("right", "move_order(1)", "Node right", show=False),
        Binding("enter", "choose", "Select / open nested flow", show=False),
        Binding("backspace", "up_level", "Up a flow", show=False),
    ]

    def __init__(self, model: RunModel, *, id: str | None = None) -> None:
        super().__init__(id=id)
        self.model = model
        self.key: tuple[str, ...] = ()  # the nested flow shown: workflow node ids from the top
        self.graph = model.graph
        self.graph_layout: DagLayout = layout_graph(model.graph)
        self._layouts: dict[Metrics, DagLayout] = {}  # the current graph's, by size tried
        self.origin_x = 0  # columns left of the canvas: the graph centred in a wider pane
        self.selected: str | None = None
        self._breakpoints: set[str] = set()
        self._rows: dict[int, Strip] = {}  # canvas row -> full-width strip
        self._styles: dict[str, Style] = {}
        self._live = {nid for nid, s in model.latest.items() if s.status == RUNNING}
        self._t = model.t

    def on_mount(self) -> None:
        self.virtual_size = Size(self.graph_layout.width, self.graph_layout.height)
        if self.selected is not None:
            self.call_after_refresh(self._reveal, self.selected)

    # --- fitting the pane ------------------------------------------------------------------

    def get_content_height(self, container: Size, viewport: Size, width: int) -> int:
        """With ``height: auto``: the graph's height at the size that fits best, at most
        :data:`SHARE` of the column and leaving :data:`BELOW` rows (borders included)."""
        gutter = self.styles.gutter.height  # ``container`` comes without it
        column = container.height + gutter
        cap = max(3, min(int(column * SHARE), column - BELOW) - gutter)
        return min(cap, fit_layout(self.graph, width, cap, self._layouts).height)

    def on_resize(self) -> None:
        self._refit()

    def _refit(self) -> None:
        """Lay the graph out again if another size now shows more of it."""
        size = self.size
        if not size.area:
            return
        layout = fit_layout(self.graph, size.width, size.height, self._layouts)
        origin = max(0, (size.width - layout.width) // 2)
        if layout is self.graph_layout and origin == self.origin_x:
            return
        self.graph_layout, self.origin_x = layout, origin
        self._rows.clear()
        # the graph's own size: the centring margin is drawn, not scrolled, so a new width
        # that only moves the graph costs no second layout of the screen
        self.virtual_size = Size(layout.width, layout.height)
        self.scroll_to(0, 0, animate=False, immediate=True)
        self.refresh()
        if self.selected is not None and self.selected in layout.boxes:
            self.call_after_refresh(self._reveal, self.selected)

    # --- the pane contract (contracts.Pane) --------------------------------------------------

    @property
    def breakpoints(self) -> set[str]:
        """Nodes with a breakpoint: a red dot in their box's title."""
        return self._breakpoints

    @breakpoints.setter
    def breakpoints(self, nodes: set[str]) -> None:
        changed = nodes ^ self._breakpoints
        self._breakpoints = set(nodes)
        for nid in changed:
            box = self.graph_layout.boxes.get(nid)
            if box is not None:
                self._repaint(box.y, 1)

    def _state(self, node: str) -> NodeState | None:
        """The node's latest visit (in a nested flow: all its runs, summed up)."""
        return self.model.summary(self.key, node)

    def update_from(self, changes: Changes) -> None:
        """Repaint the boxes of changed nodes, and the clocks of running ones."""
        if not changes:
            return
        boxes = self.graph_layout.boxes
        changed = changes.nodes | changes.items
        if self.key and any(k[: len(self.key)] == self.key for k in changes.nested):
            changed = set(boxes)
        for nid in changed:
            box = boxes.get(nid)
            if box is None:
                continue
            state = self._state(nid)
            if state is not None and state.status == RUNNING:
                self._live.add(nid)
            else:
                self._live.discard(nid)
            self._repaint(box.y, box.height)
        if self.model.t != self._t:
            self._t = self.model.t
            for nid in self._live:
                if nid in boxes and boxes[nid].height > 1:
                    self._repaint(boxes[nid].y + boxes[nid].height - 2, 1)  # its clock

    def select(self, selection: Selection) -> None:
        """Highlight ``selection.node_id`` (its latest visit) and scroll it into view."""
        if self.key and selection.path is None and selection.node_id in self.model.graph.nodes:
            self.show(())  # a node of the top flow: back to it
        node = selection.node_id if selection.node_id in self.graph_layout.boxes else None
        self._highlight(node)

    def show(self, key: tuple[str, ...]) -> None:
        """Show the flow nested at ``key`` (``()``: the top flow)."""
        graph = self.model.graph.at(key)
        if graph is None:
            return
        self.key, self.graph = key, graph
        self._layouts = {}
        self.graph_layout = layout_graph(graph)
        self.origin_x = 0
        self.selected = None
        self._rows.clear()
        self._live = {n for n in graph.nodes if (st := self._state(n)) and st.status == RUNNING}
        self.virtual_size = Size(self.graph_layout.width, self.graph_layout.height)
        crumbs = " › ".join((self.model.graph.name, *key))
        self.border_title = "DAG" if not key else f"DAG · {literal(crumbs)}"
        self.border_subtitle = "" if not key else "backspace: up"
        self.scroll_to(0, 0, animate=False)
        self._refit()
        self.refresh(layout=True)  # its height may change

    # --- selection -------------------------------------------------------------------------

    def _highlight(self, node: str | None) -> None:
        boxes = self.graph_layout.boxes
        if node != self.selected:
            for old in (self.selected, node):
                if old is not None:
                    self._repaint(boxes[old].y, boxes[old].height)
            self.selected = node
        if node is not None and self.is_mounted:
            if self.size.area:
                self._reveal(node)
            else:  # not laid out yet
                self.call_after_refresh(self._reveal, node)

    def _reveal(self, node: str) -> None:
        """Scroll the box into view: to the top of a layer, so no arrow dangles at the top,
        and centred across when it was out of view."""
        box = self.graph_layout.boxes.get(node)
        if node != self.selected or box is None:
            return
        view = self.scrollable_content_region
        x, y = self.scroll_offset
        y = self._reveal_y(box, y, view.height)
        left = self.origin_x + box.x
        if not x <= left <= left + box.width <= x + view.width:
            x = max(0, left - max(0, view.width - box.width) // 2)
        layout = self.graph_layout
        height = max(layout.height, y + view.height) if layout.height > view.height else layout.height
        if height != self.virtual_size.height:  # room below the last layer to show its top
            self.virtual_size = Size(self.virtual_size.width, height)
        self.scroll_to(x, y, animate=False, immediate=True, force=True)

    def _reveal_y(self, box: Box, top: int, height: int) -> int:
        """The first row to show so ``box`` is in view: ``top`` if it is (and is a layer's
        top); else the top of the highest layer that keeps it in view (the very top if that
        does)."""
        tops = self.graph_layout.layer_tops()
        if top <= box.y and box.bottom <= top + height and (top == 0 or top in tops):
            return top
        if box.bottom <= height:
            return 0
        if box.y < top:
            return box.y
        return min((t for t in tops if box.bottom - height <= t <= box.y), default=box.y)

    def _request(self, node: str) -> None:
        self._highlight(node)
        if not self.key:
            request_selection(self, Selection(node))
            return
        runs = self.model.nested.get((self.key, node))
        if runs:  # a node of a nested flow: its latest run
            request_selection(self, Selection(node, None, runs[-1].path))

    def _first(self) -> str | None:
        layout = self.graph_layout
        if self.graph.start in layout.boxes:
            return self.graph.start
        return layout.layers[0][0] if layout.layers else None

    def action_move_layer(self, step: int) -> None:
        """Go to the nearest box (by column) in the layer above or below."""
        layout = self.graph_layout
        if self.selected is None:
            node = self._first()
        else:
            box = layout.boxes[self.selected]
            lay = box.layer + step
            if lay < 0 and not self.key:  # above the first node: the run itself
                self._highlight(None)
                request_selection(self, Selection(path=self.model.graph.name))
                return
            if not 0 <= lay < len(layout.layers):
                return
            node = min(layout.layers[lay], key=lambda n: (abs(layout.boxes[n].centre - box.centre),
                                                          layout.boxes[n].x))
        if node is not None:
            self._request(node)

    def action_move_order(self, step: int) -> None:
        """Go to the next box to the left or right in the same layer."""
        layout = self.graph_layout
        if self.selected is None:
            node = self._first()
        else:
            box = layout.boxes[self.selected]
            members = layout.layers[box.layer]
            if not 0 <= box.order + step < len(members):
                return
            node = members[box.order + step]
        if node is not None:
            self._request(node)

    def action_choose(self) -> None:
        """Select the node; on a nested flow's node, open that flow."""
        node = self.selected or self._first()
        if node is None:
            return
        self._request(node)
        if node in self.graph.children:
            self.show((*self.key, node))

    def action_up_level(self) -> None:
        """Back to the flow around the nested one shown; in the top flow, select the run itself
        (its inputs, outputs and store)."""
        if self.key:
            inner = self.key[-1]
            self.show(self.key[:-1])
            self._highlight(inner)
        else:
            self._highlight(None)
            request_selection(self, Selection(path=self.model.graph.name))

    def on_click(self, event: events.Click) -> None:
        offset = event.get_content_offset(self)
        if offset is None:
            return
        node = self.graph_layout.box_at(offset.x + self.scroll_offset.x - self.origin_x,
                                        offset.y + self.scroll_offset.y)
        if node is not None:
            event.stop()
            self._request(node)

    # --- rendering -------------------------------------------------------------------------

    def notify_style_update(self) -> None:
        super().notify_style_update()
        self._rows.clear()
        self._styles.clear()

    def _repaint(self, y: int, count: int) -> None:
        for row in range(y, y + count):
            self._rows.pop(row, None)
        if self.is_mounted:
            self.refresh_lines(y, count)

    def _style(self, name: str) -> Style:
        """A cached style, on the widget's background."""
        style = self._styles.get(name)
        if style is None:
            base = self.rich_style
            kind, _, arg = name.partition(":")
            if kind == "status":
                style = base + status_style(self.app, int(arg))
            elif kind == "symbol":
                style = base + status_style(self.app, int(arg), bold=True)
            elif kind == "var":
                style = base + Style(color=theme_color(self.app, arg))
            elif kind == "select":
                style = base + Style(color=theme_color(self.app, "accent"), bold=True)
            elif kind == "id":
                var = "foreground-muted" if arg == str(PENDING) else "foreground"
                style = base + Style(color=theme_color(self.app, var), bold=True)
            elif kind == "label":
                var = "error" if arg == "error" else "foreground"
                style = base + Style(color=theme_color(self.app, var), italic=True)
            elif kind == "group":
                style = base + Style(color=theme_color(self.app, "accent"), bold=True)
            elif kind == "reverse":
                style = self._style(arg) + Style(reverse=True)
            else:
                style = base
            self._styles[name] = style
        return style

    def render_line(self, y: int) -> Strip:
        scroll_x, scroll_y = self.scroll_offset
        width = self.size.width
        row = scroll_y + y
        if not 0 <= row < self.graph_layout.height:
            return Strip.blank(width, self.rich_style)
        strip = self._rows.get(row)
        if strip is None:
            strip = self._rows[row] = self._render_row(row)
        return strip.crop_extend(scroll_x, scroll_x + width, self.rich_style)

    def _render_row(self, y: int) -> Strip:
        layout = self.graph_layout
        row = layout.row(y)
        pieces: list[tuple[int, list[Segment]]] = []
        line_style = self._style("var:foreground-muted")
        for x, char in row.strokes:
            pieces.append((x, [Segment(char, line_style)]))
        for label in row.labels:
            if label.group:
                style = self._style("group")
            else:
                style = self._style("label:error" if label.text.startswith("error") else "label:other")
            pieces.append((label.x, [Segment(set_cell_size(label.text, label.width), style)]))
        for box in row.boxes:
            pieces.append((box.x, self._box_line(box.node_id, y - box.y)))
        pieces.sort(key=lambda p: p[0])
        blank = self._style("")
        segments: list[Segment] = []
        at = 0
        if self.origin_x:
            pieces = [(x + self.origin_x, segs) for x, segs in pieces]
        for x, segs in pieces:
            if x > at:
                segments.append(Segment(" " * (x - at), blank))
            segments.extend(segs)
            at = x + sum(cell_len(s.text) for s in segs)
        width = self.origin_x + layout.width
        if at < width:
            segments.append(Segment(" " * (width - at), blank))
        return Strip(Segment.simplify(segments), width)

    def _box_line(self, node: str, line: int) -> list[Segment]:
        """One row of a node's box (0: the title, the last: the bottom border with its
        ports), exactly the box's width."""
        box = self.graph_layout.boxes[node]
        inner = box.width - 2
        state = self._state(node)
        code = state.status if state is not None else PENDING
        selected = node == self.selected
        if box.height == 1:
            return self._line_box(node, state, inner, selected)
        tl, h, tr, v, bl, br, port = HEAVY if selected else LIGHT
        border = self._style("select" if selected else f"status:{code}")
        base = self._style("")
        if line == 0:
            title = _fit(literal(node), min(inner - 4, cell_len(literal(node))))
            fill = inner - 4 - cell_len(title)
            mark = []
            if node in self._breakpoints and not self.key and fill >= 2:
                mark, fill = [Segment("●", self._style(f"status:{ERROR}")), Segment(" ", base)], fill - 2
            return [Segment(tl, border), Segment(" ", base),
                    Segment(SYMBOLS.get(code, "?"), self._style(f"symbol:{code}")), Segment(" ", base),
                    Segment(title, self._style(f"id:{code}")), Segment(" ", base), *mark,
                    Segment(h * fill + tr, border)]
        if line == box.height - 1:
            cells = [h] * inner
            for col in self.graph_layout.ports.get(node, ()):
                if 0 < col <= inner:
                    cells[col - 1] = port
            return [Segment(bl + "".join(cells) + br, border)]
        left, right = self._detail(node, state, line if box.height > 3 else 0, inner)
        room = inner - 2 - sum(cell_len(s.text) for s in right) - (1 if right else 0)
        if room < 0:  # a huge batch: its progress alone fills the line
            right = [Segment(_fit("".join(s.text for s in right), inner - 2), right[0].style)]
            room = 0
        left = [Segment(_fit(s.text, room), s.style) for s in left] if left else []
        pad = room - sum(cell_len(s.text) for s in left) + (1 if right else 0)
        return [Segment(v + " ", border), *left, Segment(" " * pad, base), *right,
                Segment(" " + v, border)]

    def _line_box(self, node: str, state: NodeState | None, inner: int,
                  selected: bool) -> list[Segment]:
        """A one-line box: ``[✓ id  3/6 ✗1]`` (reversed when selected)."""
        code = state.status if state is not None else PENDING
        _, progress = self._detail(node, state, 1, inner)
        right = "".join(s.text for s in progress if s.text != "batch")
        right = f" {right.strip()}" if right and cell_len(right) + 4 <= inner else ""
        mark = "● " if node in self._breakpoints and not self.key and inner >= 6 else ""
        room = inner - 2 - len(mark) - cell_len(right)
        title = self._short_id(node, max(0, room))
        pad = " " * max(0, room - cell_len(title))
        styles = [f"status:{code}", f"symbol:{code}", f"id:{code}", "var:foreground", f"status:{ERROR}"]
        if selected:
            styles = [f"reverse:{name}" for name in ("select", *styles[1:])]
        border, symbol, ident, muted, red = (self._style(name) for name in styles)
        return [Segment("[", border), Segment(SYMBOLS.get(code, "?"), symbol), Segment(" ", ident),
                Segment(mark, red), Segment(title + pad, ident), Segment(right, muted),
                Segment("]", border)]

    def _short_id(self, node: str, width: int) -> str:
        """The id in ``width`` cells. Cut, it drops the part it shares with a box beside it
        up to a separator (``fetch-users``, ``fetch-orders``: ``…users``, ``…orders``)."""
        text = literal(node)
        if cell_len(text) <= width or width < 3:
            return _fit(text, width)
        box = self.graph_layout.boxes[node]
        shared = max((_common_stem(text, literal(other)) for other in self.graph_layout.layers[box.layer]
                      if other != node), default=0)
        if not shared:
            return _fit(text, width)
        rest = text[shared:]
        return "…" + _fit(rest, width - 1) if width >= 8 else _fit(rest, width)

    def _detail(self, node: str, state: NodeState | None, line: int,
                inner: int = 0) -> tuple[list[Segment], list[Segment]]:
        """Left and right parts of line 1 (type, and its purpose in a wide box; batch
        progress), line 2 (duration, visit), or line 0: both in one (a compact box)."""
        muted = self._style("var:foreground-darken-2")
        if line == 0:
            if state is None:
                return self._detail(node, state, 1)
            left, _ = self._detail(node, state, 2)
            _, right = self._detail(node, state, 1)
            return left, right
        if line == 1:
            graph = self.graph
            kind = literal(state.type if state is not None else graph.node_type(node))
            purpose = graph.nodes.get(node, {}).get("purpose")
            if inner >= PURPOSE_FROM and isinstance(purpose, str) and purpose:
                kind = f"{kind} · {literal(purpose)}"
            left = [Segment(kind, muted)]
            items = state.items if state is not None else None
            if items is not None:
                right = [Segment(f"{items.done + items.failed}/{items.count}", self._style("var:foreground"))]
                if items.failed:
                    right.append(Segment(f" {SYMBOLS[ERROR]}{items.failed}", self._style(f"status:{ERROR}")))
                return left, right
            if graph.is_batch(node):
                return left, [Segment("batch", muted)]
            return left, []
        if state is None:
            return [], []
        text = format_duration(state.duration(self.model.t))
        style = self._style(f"status:{RUNNING}") if state.status == RUNNING else muted
        _, hash_, visit = state.path.rpartition("#")
        right = [Segment(f"#{visit}", muted)] if hash_ and visit.isdigit() else []
        return [Segment(text, style)], right

