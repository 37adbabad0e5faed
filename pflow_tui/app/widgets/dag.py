"""The DAG pane: the flow's nodes as boxes and arrows, coloured by live status."""

from __future__ import annotations

from typing import ClassVar

from rich.cells import cell_len, set_cell_size
from rich.segment import Segment
from rich.style import Style
from textual import events
from textual.binding import Binding, BindingType
from textual.geometry import Region, Size
from textual.scroll_view import ScrollView
from textual.strip import Strip

from ...text import literal
from ..dag_layout import BOX_H, DagLayout, layout_graph
from ..messages import Selection, SelectionRequested
from ..model import ERROR, PENDING, RUNNING, Changes, NodeState, RunModel
from ..styles import SYMBOLS, format_duration, status_style, theme_color

LIGHT = ("┌", "─", "┐", "│", "└", "┘", "┬")
HEAVY = ("┏", "━", "┓", "┃", "┗", "┛", "┯")
TITLE_MAX = 18  # cells of the node id in the top border


def _fit(text: str, width: int) -> str:
    """``text`` in exactly ``width`` cells, ending with … when cut."""
    if cell_len(text) > width:
        return set_cell_size(text, width - 1) + "…" if width > 0 else ""
    return set_cell_size(text, width)


class DagView(ScrollView, can_focus=True):
    """The flow's graph. Arrows move the selection, Enter or a click selects a node."""

    DEFAULT_CSS = """
    DagView {
        width: 1fr;
        height: 1fr;
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

    # --- pane contract ---------------------------------------------------------------------

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
            self._repaint(box.y, BOX_H)
        if self.model.t != self._t:
            self._t = self.model.t
            for nid in self._live:
                if nid in boxes:
                    self._repaint(boxes[nid].y + 2, 1)

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
        self.graph_layout = layout_graph(graph)
        self.selected = None
        self._rows.clear()
        self._live = {n for n in graph.nodes if (st := self._state(n)) and st.status == RUNNING}
        self.virtual_size = Size(self.graph_layout.width, self.graph_layout.height)
        crumbs = " › ".join((self.model.graph.name, *key))
        self.border_title = "DAG" if not key else f"DAG · {literal(crumbs)}"
        self.border_subtitle = "" if not key else "backspace: up"
        self.scroll_to(0, 0, animate=False)
        self.refresh()

    # --- selection -------------------------------------------------------------------------

    def _highlight(self, node: str | None) -> None:
        boxes = self.graph_layout.boxes
        if node != self.selected:
            for old in (self.selected, node):
                if old is not None:
                    self._repaint(boxes[old].y, BOX_H)
            self.selected = node
        if node is not None and self.is_mounted:
            if self.size.area:
                self._reveal(node)
            else:  # not laid out yet
                self.call_after_refresh(self._reveal, node)

    def _reveal(self, node: str) -> None:
        if node == self.selected:
            box = self.graph_layout.boxes[node]
            self.scroll_to_region(Region(box.x, box.y, box.width, box.height), animate=False,
                                  immediate=True)

    def _request(self, node: str) -> None:
        self._highlight(node)
        if not self.key:
            self.post_message(SelectionRequested(Selection(node)))
            return
        runs = self.model.nested.get((self.key, node))
        if runs:  # a node of a nested flow: its latest run
            self.post_message(SelectionRequested(Selection(node, None, runs[-1].path)))

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
                self.post_message(SelectionRequested(Selection(path=self.model.graph.name)))
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
            self.post_message(SelectionRequested(Selection(path=self.model.graph.name)))

    def on_click(self, event: events.Click) -> None:
        offset = event.get_content_offset(self)
        if offset is None:
            return
        node = self.graph_layout.box_at(offset.x + self.scroll_offset.x, offset.y + self.scroll_offset.y)
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
            kind = "error" if label.text.startswith("error") else "other"
            pieces.append((label.x, [Segment(set_cell_size(label.text, label.width),
                                             self._style(f"label:{kind}"))]))
        for box in row.boxes:
            pieces.append((box.x, self._box_line(box.node_id, y - box.y)))
        pieces.sort(key=lambda p: p[0])
        blank = self._style("")
        segments: list[Segment] = []
        at = 0
        for x, segs in pieces:
            if x > at:
                segments.append(Segment(" " * (x - at), blank))
            segments.extend(segs)
            at = x + sum(cell_len(s.text) for s in segs)
        if at < layout.width:
            segments.append(Segment(" " * (layout.width - at), blank))
        return Strip(Segment.simplify(segments), layout.width)

    def _box_line(self, node: str, line: int) -> list[Segment]:
        """One row (0-3) of a node's box, exactly the box's width."""
        box = self.graph_layout.boxes[node]
        inner = box.width - 2
        state = self._state(node)
        code = state.status if state is not None else PENDING
        selected = node == self.selected
        tl, h, tr, v, bl, br, port = HEAVY if selected else LIGHT
        border = self._style("select" if selected else f"status:{code}")
        base = self._style("")
        if line == 0:
            title = _fit(literal(node), min(TITLE_MAX, cell_len(literal(node))))
            fill = inner - 4 - cell_len(title)
            mark = []
            if node in self._breakpoints and not self.key and fill >= 2:
                mark, fill = [Segment("●", self._style(f"status:{ERROR}")), Segment(" ", base)], fill - 2
            return [Segment(tl, border), Segment(" ", base),
                    Segment(SYMBOLS.get(code, "?"), self._style(f"symbol:{code}")), Segment(" ", base),
                    Segment(title, self._style(f"id:{code}")), Segment(" ", base), *mark,
                    Segment(h * fill + tr, border)]
        if line == BOX_H - 1:
            cells = [h] * inner
            for col in self.graph_layout.ports.get(node, ()):
                if 0 < col <= inner:
                    cells[col - 1] = port
            return [Segment(bl + "".join(cells) + br, border)]
        left, right = self._detail(node, state, line)
        room = inner - 2 - sum(cell_len(s.text) for s in right)
        if room < 0:  # a huge batch: its progress alone fills the line
            right = [Segment(_fit("".join(s.text for s in right), inner - 2), right[0].style)]
            room = 0
        left = [Segment(_fit(s.text, room), s.style) for s in left] if left else []
        pad = room - sum(cell_len(s.text) for s in left)
        return [Segment(v + " ", border), *left, Segment(" " * pad, base), *right,
                Segment(" " + v, border)]

    def _detail(self, node: str, state: NodeState | None, line: int) -> tuple[list[Segment], list[Segment]]:
        """Left and right parts of line 1 (type, batch progress) or 2 (duration, visit)."""
        muted = self._style("var:foreground-darken-2")
        if line == 1:
            graph = self.graph
            kind = literal(state.type if state is not None else graph.node_type(node))
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

