"""A layered, top-to-bottom layout of a flow's graph for the terminal (no Textual, no Rich).

Edges that close a cycle (found by a DFS from the start node) are routed upward along the
right margin; the rest form a DAG laid out in layers (longest path from the start). Edges
that skip layers pass through one-column dummy slots, so every edge segment joins two
adjacent layers through the 3-row channel between them:

    row c0   │            the parent's bottom port going down
    row c1   └────┐       the horizontal run (labels of named actions sit on it)
    row c2        ▼       the arrow into the child's top

Strokes are merged per cell from their directions, so crossings and joins become the right
junction character (┼ ┴ ┬ ├ ┤ ...).
"""

from __future__ import annotations

import math
import unicodedata
from collections.abc import Iterable
from dataclasses import dataclass, field
from itertools import pairwise
from typing import NamedTuple

from ..text import literal
from .graph import Graph

BOX_W = 24  #: box width, borders included (the full size)
BOX_H = 4  #: top border (status + id), type line, duration line, bottom border
GAP = 2  #: columns between two slots of a layer
CHANNEL = 3  #: rows between two layers, for edge routing
LABEL_MAX = 16  #: longest edge label (cells), longer ones end with …
DUMMY_W = 1
GROUP_MARK = "‖ "  #: before a parallel group's name, on its fan-out
SCROLLBAR = 1  #: columns a vertical scrollbar takes (the DAG pane's)
CACHED = 40  #: layouts :func:`fit_layout` keeps at most

N, S, E, W = 1, 2, 4, 8
JUNCTIONS = {
    N: "│", S: "│", N | S: "│", E: "─", W: "─", E | W: "─",
    S | E: "┌", S | W: "┐", N | E: "└", N | W: "┘",
    N | S | E: "├", N | S | W: "┤", S | E | W: "┬", N | E | W: "┴", N | S | E | W: "┼",
}
ARROW_DOWN = "▼"
ARROW_UP = "▲"

Cell = tuple[int, int]


class Metrics(NamedTuple):
    """The sizes a layout is drawn at: box width and height (borders included), the rows
    between two layers, the columns between two boxes.

    Height 4 is the full box, 3 a compact one (title, one detail line), 1 a one-line box
    (``[✓ id 3/6]``, as wide as its id up to ``box_w``; in a layer wider than ``fit_w``,
    cut to share it). A 3-row channel has a stub, the horizontal run and the arrow; a 2-row
    one starts with the run, right under the parent's port; a 1-row one is the run alone,
    its corners pointing down into the children (no arrows).
    """

    box_w: int = BOX_W
    box_h: int = BOX_H
    channel: int = CHANNEL
    gap: int = GAP
    fit_w: int = 0  # one-line boxes: narrower in the layers wider than this (0: never)


FULL = Metrics()
#: The sizes :func:`fit_layout` tries, by kind (full, compact, one line), each from its
#: widest box to its narrowest.
KINDS: tuple[tuple[int, int, int, tuple[int, ...]], ...] = (  # height, channel, gap, widths
    (4, 3, 2, (40, 36, 32, 28, 24)),
    (3, 2, 2, (36, 30, 24, 20, 16)),
    (1, 2, 1, (30,)),
    (1, 1, 1, (30,)),
)
LINE_MIN = 8  #: the narrowest one-line box: ``[✓ ab…]``


def char_width(char: str) -> int:
    """Terminal cells of one character (wide East Asian: 2, combining: 0)."""
    if unicodedata.combining(char):
        return 0
    return 2 if unicodedata.east_asian_width(char) in ("W", "F") else 1


def cell_width(text: str) -> int:
    """Terminal cells of ``text``."""
    if text.isascii():
        return len(text)
    return sum(char_width(c) for c in text)


def clip(text: str, width: int) -> str:
    """``text`` cut to ``width`` cells, ending with … when cut."""
    if cell_width(text) <= width:
        return text
    out: list[str] = []
    used = 0
    for c in text:
        w = char_width(c)
        if used + w > width - 1:
            break
        out.append(c)
        used += w
    return "".join(out) + "…"


@dataclass(frozen=True, slots=True)
class Box:
    """Where one node is drawn (canvas cells, ``x``/``y`` of the top-left corner)."""

    node_id: str
    x: int
    y: int
    layer: int
    order: int  # position among the boxes of its layer, left to right
    width: int = BOX_W
    height: int = BOX_H

    @property
    def centre(self) -> int:
        return self.x + self.width // 2

    @property
    def right(self) -> int:
        """First column after the box."""
        return self.x + self.width

    @property
    def bottom(self) -> int:
        """First row after the box."""
        return self.y + self.height

    def contains(self, x: int, y: int) -> bool:
        return self.x <= x < self.right and self.y <= y < self.bottom


@dataclass(frozen=True, slots=True)
class Label:
    """An edge's action name, written at ``x``/``y`` over ``width`` cells."""

    x: int
    y: int
    text: str
    width: int
    src: str
    dst: str
    back: bool = False
    group: str = ""  # a parallel group's name: the label of its fan-out (``src``), not of an edge


@dataclass(frozen=True, slots=True)
class LaidEdge:
    """One drawn edge (parallel edges between the same two nodes are drawn once)."""

    src: str
    dst: str
    actions: tuple[str, ...]
    back: bool  # routed upward along the right margin
    cells: frozenset[Cell]  # every stroke cell of the edge (some may be under labels)
    label: Label | None


class Row(NamedTuple):
    """What one canvas row holds, left to right."""

    boxes: list[Box]
    strokes: list[tuple[int, str]]  # (x, character)
    labels: list[Label]


@dataclass
class DagLayout:
    """The laid-out graph: canvas size, boxes, edge strokes and labels."""

    width: int
    height: int
    boxes: dict[str, Box]
    layers: list[list[str]]  # node ids per layer, left to right
    strokes: dict[Cell, str]  # edge cells (lines, junctions, arrows) -> character
    labels: list[Label]
    edges: list[LaidEdge]
    ports: dict[str, tuple[int, ...]]  # node id -> columns (in its box) of its bottom ports
    metrics: Metrics = FULL
    _rows: dict[int, Row] | None = field(default=None, repr=False)

    def layer_tops(self) -> list[int]:
        """The first row of each layer's boxes, top to bottom."""
        return [self.boxes[members[0]].y for members in self.layers if members]

    def box_at(self, x: int, y: int) -> str | None:
        """The id of the node drawn at this cell, if any."""
        for box in self.row(y).boxes:
            if box.x <= x < box.right:
                return box.node_id
        return None

    def row(self, y: int) -> Row:
        """Boxes, strokes and labels on row ``y``."""
        if self._rows is None:
            self._rows = self._index()
        return self._rows.get(y) or Row([], [], [])

    def _index(self) -> dict[int, Row]:
        rows: dict[int, Row] = {}

        def at(y: int) -> Row:
            row = rows.get(y)
            if row is None:
                row = rows[y] = Row([], [], [])
            return row

        for box in self.boxes.values():
            for y in range(box.y, box.bottom):
                at(y).boxes.append(box)
        for (x, y), char in self.strokes.items():
            at(y).strokes.append((x, char))
        for label in self.labels:
            at(label.y).labels.append(label)
        for row in rows.values():
            row.boxes.sort(key=lambda b: b.x)
            row.strokes.sort()
            row.labels.sort(key=lambda lb: lb.x)
        return rows

    def text(self) -> list[str]:
        """A plain picture of the layout (node ids as titles), for tests and debugging."""
        grid = [[" "] * self.width for _ in range(self.height)]

        def put(x: int, y: int, text: str) -> None:
            for c in text:
                w = char_width(c)
                if w == 0 or not 0 <= x < self.width:
                    continue
                grid[y][x] = c
                if w == 2 and x + 1 < self.width:
                    grid[y][x + 1] = ""
                x += w

        for (x, y), char in self.strokes.items():
            grid[y][x] = char
        for label in self.labels:
            put(label.x, label.y, label.text)
        for box in self.boxes.values():
            inner = box.width - 2
            if box.height == 1:
                put(box.x, box.y, "[" + clip(literal(box.node_id), inner).ljust(inner) + "]")
                continue
            bottom = ["─"] * inner
            for port in self.ports.get(box.node_id, ()):
                bottom[port - 1] = "┬"
            put(box.x, box.y, "┌" + "─" * inner + "┐")
            put(box.x + 2, box.y, " " + clip(literal(box.node_id), inner - 4) + " ")
            for y in range(box.y + 1, box.bottom - 1):
                put(box.x, y, "│" + " " * inner + "│")
            put(box.x, box.bottom - 1, "└" + "".join(bottom) + "┘")
        return ["".join(row).rstrip() for row in grid]


@dataclass(slots=True)
class _Slot:
    """A box, or a one-column dummy that carries an edge through a layer it skips."""

    node: str | None
    layer: int
    width: int
    tie: float  # IR order, to break ties
    x: int = 0
    ups: list[int] = field(default_factory=list)
    downs: list[int] = field(default_factory=list)

    @property
    def centre(self) -> int:
        return self.x + self.width // 2


@dataclass(slots=True)
class _Edge:
    src: str
    dst: str
    actions: tuple[str, ...]
    order: int
    back: bool = False
    slots: list[int] = field(default_factory=list)  # src box, dummies, dst box (forward)


def layout_graph(graph: Graph, metrics: Metrics = FULL) -> DagLayout:
    """Lay ``graph`` out top to bottom, at ``metrics``' sizes."""
    return _Builder(graph, metrics).build()


def fits(layout: DagLayout, width: int, height: int) -> bool:
    """Whether the layout fits a view of ``width`` x ``height`` cells whole."""
    return layout.width <= width and layout.height <= height


def fit_layout(graph: Graph, width: int, height: int,
               cache: dict[Metrics, DagLayout] | None = None) -> DagLayout:
    """The layout of ``graph`` that shows the most in a ``width`` x ``height`` view.

    The first kind (full boxes, then compact, then one-line) that fits whole wins, at the
    widest box that fits. When none does, the graph scrolls: one-line boxes (the most in
    view), as wide as fit beside a vertical scrollbar. ``cache`` keeps the
    layouts tried, by their metrics.
    """
    cache = {} if cache is None else cache
    if len(cache) > CACHED:  # one-line layouts are kept by width: a terminal resized often
        cache.clear()

    def at(metrics: Metrics) -> DagLayout:
        layout = cache.get(metrics)
        if layout is None:
            layout = cache[metrics] = layout_graph(graph, metrics)
        return layout

    for box_h, channel, gap, widths in KINDS:
        for box_w in widths:
            layout = at(Metrics(box_w, box_h, channel, gap, width if box_h == 1 else 0))
            if fits(layout, width, height):
                return layout
            if layout.height > height:
                break  # every width of this kind is as tall
    box_h, channel, gap, widths = KINDS[-1]
    return at(Metrics(widths[0], box_h, channel, gap, width - SCROLLBAR))


class _Builder:
    def __init__(self, graph: Graph, metrics: Metrics = FULL) -> None:
        self.m = metrics
        self.graph = graph
        self.groups = {src: name for src, name in graph.groups.items() if src in graph.nodes}
        self.fanouts = graph.fanouts
        self.ids = list(graph.nodes)
        self.index = {nid: i for i, nid in enumerate(self.ids)}
        self.start = graph.start if graph.start in self.index else (self.ids[0] if self.ids else "")
        grouped: dict[tuple[str, str], list[str]] = {}
        for e in graph.edges:
            if e.src in self.index and e.dst in self.index:
                actions = grouped.setdefault((e.src, e.dst), [])
                action = str(e.action)
                if action not in actions:
                    actions.append(action)
        self.edges = [_Edge(src, dst, tuple(acts), i) for i, ((src, dst), acts) in enumerate(grouped.items())]
        self.mask: dict[Cell, int] = {}
        self.owners: dict[Cell, set[int]] = {}
        self.arrows: dict[Cell, str] = {}
        self.label_cells: set[Cell] = set()
        self.reserved: set[Cell] = set()  # cells back edges will take (known before their lanes)
        self.reserved_rows: dict[int, int] = {}  # row -> first column back edges take up to the lanes
        self.ports: dict[str, set[int]] = {nid: set() for nid in self.ids}
        self.top: list[int] = []  # the first row of each layer

    # --- structure -------------------------------------------------------------------------

    def find_back_edges(self) -> None:
        """DFS from the start node, then from every node not yet seen, in IR order."""
        out: dict[str, list[_Edge]] = {nid: [] for nid in self.ids}
        for e in self.edges:
            out[e.src].append(e)
        state = dict.fromkeys(self.ids, 0)  # 0 new, 1 on the stack, 2 done
        roots = [self.start, *self.ids] if self.start else []
        for root in roots:
            if state[root]:
                continue
            state[root] = 1
            stack: list[tuple[str, int]] = [(root, 0)]
            while stack:
                nid, i = stack[-1]
                if i < len(out[nid]):
                    stack[-1] = (nid, i + 1)
                    e = out[nid][i]
                    if state[e.dst] == 1:
                        e.back = True
                    elif state[e.dst] == 0:
                        state[e.dst] = 1
                        stack.append((e.dst, 0))
                else:
                    state[nid] = 2
                    stack.pop()

    def assign_layers(self) -> dict[str, int]:
        """Longest path from the start; nodes it never reaches come after, in IR order."""
        forward = [e for e in self.edges if not e.back]
        parents: dict[str, list[str]] = {nid: [] for nid in self.ids}
        children: dict[str, list[str]] = {nid: [] for nid in self.ids}
        for e in forward:
            parents[e.dst].append(e.src)
            children[e.src].append(e.dst)
        reach = {self.start} if self.start else set()
        todo = list(reach)
        while todo:
            for child in children[todo.pop()]:
                if child not in reach:
                    reach.add(child)
                    todo.append(child)
        # topological order (Kahn), IR order among ready nodes
        indegree = {nid: len(parents[nid]) for nid in self.ids}
        ready = [nid for nid in self.ids if indegree[nid] == 0]
        topo: list[str] = []
        while ready:
            nid = ready.pop(0)
            topo.append(nid)
            for child in children[nid]:
                indegree[child] -= 1
                if indegree[child] == 0:
                    ready.append(child)
        layer: dict[str, int] = {}
        for nid in topo:
            if nid in reach:
                layer[nid] = max((layer[p] + 1 for p in parents[nid] if p in reach), default=0)
        base = max(layer.values(), default=-1) + 1
        for nid in topo:
            if nid not in reach:
                layer[nid] = max((layer[p] + 1 for p in parents[nid]), default=base)
        for e in forward:  # edges into the reached part from outside it go up
            if layer[e.dst] <= layer[e.src]:
                e.back = True
        return layer

    def make_slots(self, layer: dict[str, int]) -> tuple[list[_Slot], list[list[int]]]:
        slots = [_Slot(nid, layer[nid], self.m.box_w, float(self.index[nid])) for nid in self.ids]
        slot_of = {nid: i for i, nid in enumerate(self.ids)}
        for e in self.edges:
            if e.back:
                continue
            chain = [slot_of[e.src]]
            tie = self.index[e.src] + 0.5
            for lay in range(layer[e.src] + 1, layer[e.dst]):
                slots.append(_Slot(None, lay, DUMMY_W, tie))
                chain.append(len(slots) - 1)
            chain.append(slot_of[e.dst])
            for a, b in pairwise(chain):
                slots[a].downs.append(b)
                slots[b].ups.append(a)
            e.slots = chain
        layers: list[list[int]] = [[] for _ in range(max((s.layer for s in slots), default=-1) + 1)]
        for i, slot in enumerate(slots):
            layers[slot.layer].append(i)
        if self.m.box_h == 1:
            self.size_line_boxes(slots, layers)
        for members in layers:
            members.sort(key=lambda i: slots[i].tie)
        return slots, layers

    def size_line_boxes(self, slots: list[_Slot], layers: list[list[int]]) -> None:
        """One-line boxes as wide as their id (and a batch's progress), up to ``box_w``; in
        a layer wider than ``fit_w``, all cut to one width that fits (or the narrowest)."""
        m = self.m
        for slot in slots:
            if slot.node is not None:
                extra = 14 if self.graph.is_batch(slot.node) else 4
                slot.width = max(LINE_MIN, min(m.box_w, cell_width(literal(slot.node)) + extra))
        if not m.fit_w:
            return
        for members in layers:
            boxes = [slots[i] for i in members if slots[i].node is not None]
            fixed = sum(slots[i].width for i in members if slots[i].node is None)
            room = m.fit_w - fixed - m.gap * (len(members) - 1)
            cap = max((b.width for b in boxes), default=0)
            while cap > LINE_MIN and sum(min(b.width, cap) for b in boxes) > room:
                cap -= 1
            for b in boxes:
                b.width = min(b.width, cap)

    @staticmethod
    def order_layers(slots: list[_Slot], layers: list[list[int]]) -> None:
        """Barycenter sweeps: down, up, down; ties by IR order."""
        pos = {i: p for members in layers for p, i in enumerate(members)}

        def sweep(seq: Iterable[int], down: bool) -> None:
            for lay in seq:
                members = layers[lay]

                def key(i: int) -> tuple[float, float]:
                    near = slots[i].ups if down else slots[i].downs
                    bary = sum(pos[j] for j in near) / len(near) if near else float(pos[i])
                    return (bary, slots[i].tie)

                members.sort(key=key)
                for p, i in enumerate(members):
                    pos[i] = p

        depth = len(layers)
        sweep(range(1, depth), True)
        sweep(range(depth - 2, -1, -1), False)
        sweep(range(1, depth), True)

    @staticmethod
    def place_x(slots: list[_Slot], layers: list[list[int]], gap: int = GAP) -> None:
        """Columns: each slot as close as it can get to the mean of its neighbours' centres."""
        widths = [sum(slots[i].width for i in m) + gap * (len(m) - 1) for m in layers]
        widest = max(widths, default=0)
        for members, total in zip(layers, widths, strict=True):
            x = (widest - total) // 2
            for i in members:
                slots[i].x = x
                x += slots[i].width + gap

        def relax(seq: Iterable[int], down: bool) -> None:
            for lay in seq:
                members = layers[lay]
                desired: list[float] = []
                for i in members:
                    near = slots[i].ups if down else slots[i].downs
                    centre = (sum(slots[j].centre for j in near) / len(near)) if near else slots[i].centre
                    desired.append(centre - slots[i].width // 2)
                seps = [slots[i].width + gap for i in members[:-1]]
                for i, x in zip(members, _isotonic(desired, seps), strict=True):
                    slots[i].x = x

        depth = len(layers)
        relax(range(1, depth), True)
        relax(range(depth - 2, -1, -1), False)
        relax(range(1, depth), True)
        left = min((s.x for s in slots), default=0)
        for s in slots:
            s.x -= left

    # --- strokes ---------------------------------------------------------------------------

    def stroke(self, cell: Cell, bits: int, edge: int) -> None:
        self.mask[cell] = self.mask.get(cell, 0) | bits
        self.owners.setdefault(cell, set()).add(edge)

    def route_forward(self, e: _Edge, slots: list[_Slot], top: list[int]) -> None:
        for a, b in pairwise(e.slots):
            upper, lower = slots[a], slots[b]
            px, qx = upper.centre, lower.centre
            bottom = top[upper.layer] + self.m.box_h - 1
            c2 = top[lower.layer] - 1  # the arrow's row
            c1 = c2 - 1 if self.m.channel > 1 else c2  # the horizontal run's (1 row: no arrow)
            if upper.node is not None:
                self.ports[upper.node].add(px - upper.x)
            else:
                for y in range(top[upper.layer], bottom + 1):
                    self.stroke((px, y), N | S, e.order)
            for y in range(bottom + 1, c1):
                self.stroke((px, y), N | S, e.order)
            if px == qx:
                self.stroke((px, c1), N | S, e.order)
            else:
                step = 1 if qx > px else -1
                self.stroke((px, c1), N | (E if step > 0 else W), e.order)
                for x in range(px + step, qx, step):
                    self.stroke((x, c1), E | W, e.order)
                self.stroke((qx, c1), S | (W if step > 0 else E), e.order)
            if c2 == c1:
                continue
            self.stroke((qx, c2), N | S, e.order)
            if lower.node is not None:
                self.arrows[(qx, c2)] = ARROW_DOWN

    def route_back(self, e: _Edge, src: Box, dst: Box, lane: int) -> None:
        """Out of the source's bottom, right to the lane, up, left, down into the target."""
        ps, pt = src.x + src.width - 3, dst.x + dst.width - 3
        low, high = src.bottom, dst.y - self.m.channel
        self.ports[src.node_id].add(src.width - 3)
        self.stroke((ps, low), N | E, e.order)
        for x in range(ps + 1, lane):
            self.stroke((x, low), E | W, e.order)
        self.stroke((lane, low), N | W, e.order)
        for y in range(high + 1, low):
            self.stroke((lane, y), N | S, e.order)
        self.arrows[(lane, self.back_arrow_row(src))] = ARROW_UP
        self.stroke((lane, high), S | W, e.order)
        for x in range(pt + 1, lane):
            self.stroke((x, high), E | W, e.order)
        self.stroke((pt, high), S | E, e.order)
        for y in range(high + 1, dst.y):
            self.stroke((pt, y), N | S, e.order)
        self.arrows[(pt, dst.y - 1)] = ARROW_DOWN

    def back_arrow_row(self, src: Box) -> int:
        """The row of a back edge's ▲ (and its label): beside the source box, above its bottom."""
        return src.y + 1 if src.height > 2 else src.y

    # --- labels ----------------------------------------------------------------------------

    def reserve_back(self, src: Box, dst: Box) -> None:
        """Keep labels off the cells a back edge will take, before its lane is known."""
        ps, pt = src.x + src.width - 3, dst.x + dst.width - 3
        low, high = src.bottom, dst.y - self.m.channel
        self.reserved_rows[low] = min(ps, self.reserved_rows.get(low, ps))
        self.reserved_rows[high] = min(pt, self.reserved_rows.get(high, pt))
        self.reserved.update((pt, y) for y in range(high + 1, dst.y))

    def taken(self, x: int, y: int) -> bool:
        cell = (x, y)
        return cell in self.label_cells or cell in self.reserved or x >= self.reserved_rows.get(y, x + 1)

    def free(self, x: int, y: int, width: int) -> bool:
        """Nothing at these cells, and the row is a channel's (not the boxes')."""
        if any(t <= y < t + self.m.box_h for t in self.top):
            return False
        return x >= 0 and all((cx, y) not in self.mask and not self.taken(cx, y)
                              for cx in range(x, x + width))

    def label_forward(self, e: _Edge, slots: list[_Slot], top: list[int]) -> Label | None:
        full = literal("/".join(e.actions))
        first, last = (slots[e.slots[0]], slots[e.slots[1]]), (slots[e.slots[-2]], slots[e.slots[-1]])
        most = min(LABEL_MAX, cell_width(full))
        for size in sorted({most, *(n for n in (6, 4, 2) if n < most)}, reverse=True):
            text = clip(full, size)
            width = cell_width(text)
            if width > size or width == 0:
                continue
            spot = self.on_run(e, [last, first] if last != first else [last], top, width)
            if spot is None:
                spot = self.beside(first, last, top, width)
            if spot is not None:
                x, y = spot
                self.label_cells.update((cx, y) for cx in range(x, x + width))
                return Label(x, y, text, width, e.src, e.dst)
        return None

    def on_run(self, e: _Edge, segments: list[tuple[_Slot, _Slot]], top: list[int],
               width: int) -> Cell | None:
        """A spot on a stretch of the edge's horizontal run that no other edge shares."""
        for upper, lower in segments:
            px, qx = upper.centre, lower.centre
            y = top[lower.layer] - min(2, self.m.channel)  # the horizontal run
            step = 1 if qx > px else -1
            run: list[int] = []
            runs: list[list[int]] = []
            for x in range(qx - step, px, -step):  # from the child end back to the parent
                if self.mask.get((x, y)) == E | W and self.owners[(x, y)] == {e.order} \
                        and not self.taken(x, y):
                    run.append(x)
                else:
                    if run:
                        runs.append(run)
                    run = []
            if run:
                runs.append(run)
            for r in runs:
                if len(r) >= width + 2:
                    lo = min(r)
                    return (lo + (len(r) - width) // 2, y)
        return None

    def beside(self, first: tuple[_Slot, _Slot], last: tuple[_Slot, _Slot], top: list[int],
               width: int) -> Cell | None:
        """A free spot next to the edge's vertical strokes in the channel."""
        px = first[0].centre
        c0 = top[first[0].layer] + self.m.box_h
        qx = last[1].centre
        c2 = top[last[1].layer] - 1
        for x, y in ((px + 1, c0), (px - width, c0), (qx + 1, c2), (qx - width, c2),
                     (qx + 1, c2 - 1), (qx - width, c2 - 1)):
            if self.free(x, y, width):
                return (x, y)
        return None

    def label_groups(self, boxes: dict[str, Box], content: int) -> list[Label]:
        """Each parallel group's name (``‖ name``) in the channel under its fan-out node: right
        of the port, on the stub or arrow rows, else left of it (within ``content`` columns,
        or the width one-line boxes fit in); cut to fit, or left out."""
        labels: list[Label] = []
        for src, name in self.groups.items():
            box = boxes[src]
            full = GROUP_MARK + literal(name)
            rows = range(box.bottom, box.bottom + self.m.channel)
            branches = [boxes[b] for b in self.fanouts.get(src, ()) if b in boxes and boxes[b].y > box.y]
            if not branches:  # its branches come back up: no channel of its own below it
                continue
            right = max((b.right for b in branches), default=box.right) + 2 + LABEL_MAX
            right = min(right, max(content, self.m.fit_w))
            left = min((b.x for b in branches), default=box.x)
            for size in sorted({min(LABEL_MAX + 2, cell_width(full)), 8, 5}, reverse=True):
                text = clip(full, size)
                width = cell_width(text)
                if width > size or width < 3:
                    continue
                spot = next(((x, y) for y in rows
                             for x in (*range(box.centre + 2, right - width + 1),
                                       *range(box.centre - 1 - width, left - 1, -1))
                             if self.free(x - 1, y, width + 2)), None)
                if spot is not None:
                    x, y = spot
                    self.label_cells.update((cx, y) for cx in range(x, x + width))
                    labels.append(Label(x, y, text, width, src, src, group=name))
                    break
        return labels

    # --- all together ----------------------------------------------------------------------

    def build(self) -> DagLayout:
        if not self.ids:
            return DagLayout(0, 0, {}, [], {}, [], [], {})
        self.find_back_edges()
        layer = self.assign_layers()
        slots, layers = self.make_slots(layer)
        self.order_layers(slots, layers)
        self.place_x(slots, layers, self.m.gap)
        backs = sorted((e for e in self.edges if e.back),
                       key=lambda e: (layer[e.src] - layer[e.dst], e.order))
        m = self.m
        top_margin = m.channel if any(layer[e.dst] == 0 for e in backs) else 0
        top = self.top = [top_margin + lay * (m.box_h + m.channel) for lay in range(len(layers))]
        boxes: dict[str, Box] = {}
        node_layers: list[list[str]] = []
        for lay, members in enumerate(layers):
            node_layers.append([n for n in (slots[i].node for i in members) if n is not None])
            for order, nid in enumerate(node_layers[-1]):
                slot = slots[self.index[nid]]
                boxes[nid] = Box(nid, slot.x, top[lay], lay, order, slot.width, m.box_h)
        content = max(s.x + s.width for s in slots)
        height = top[-1] + m.box_h
        for e in self.edges:
            if not e.back:
                self.route_forward(e, slots, top)
        for e in backs:
            self.reserve_back(boxes[e.src], boxes[e.dst])
        labels: list[Label] = []
        forward_labels: dict[int, Label] = {}
        for e in self.edges:
            if not e.back and e.actions != ("default",):
                found = self.label_forward(e, slots, top)
                if found is not None:
                    labels.append(found)
                    forward_labels[e.order] = found
        labels.extend(self.label_groups(boxes, content))
        width = max([content, *(label.x + label.width for label in labels)])
        lane = width + 2
        back_labels: dict[int, Label] = {}
        for e in backs:
            src, dst = boxes[e.src], boxes[e.dst]
            self.route_back(e, src, dst, lane)
            height = max(height, src.bottom + 1)
            text = clip(literal("/".join(e.actions)), LABEL_MAX) if e.actions != ("default",) else ""
            if text:
                size = cell_width(text)
                label = Label(lane + 2, self.back_arrow_row(src), text, size, e.src, e.dst, back=True)
                labels.append(label)
                back_labels[e.order] = label
                self.label_cells.update((x, label.y) for x in range(label.x, label.x + size))
                lane += size + 3
            else:
                lane += 2
            width = lane - 1
        strokes = {cell: JUNCTIONS[bits] for cell, bits in self.mask.items()}
        strokes.update(self.arrows)
        for cell in self.label_cells:
            strokes.pop(cell, None)
        cells: dict[int, set[Cell]] = {}
        for cell, owners in self.owners.items():
            for owner in owners:
                cells.setdefault(owner, set()).add(cell)
        edges = [LaidEdge(e.src, e.dst, e.actions, e.back, frozenset(cells.get(e.order, ())),
                          back_labels.get(e.order) or forward_labels.get(e.order))
                 for e in self.edges]
        ports = {nid: tuple(sorted(p)) for nid, p in self.ports.items() if p}
        return DagLayout(width, height, boxes, node_layers, strokes, labels, edges, ports, m)


def _isotonic(desired: list[float], seps: list[int]) -> list[int]:
    """Positions as close as possible (least squares) to ``desired``, in order, ``seps`` apart."""
    offsets = [0]
    for sep in seps:
        offsets.append(offsets[-1] + sep)
    blocks: list[list[float]] = []  # [sum, count]
    for d, off in zip(desired, offsets, strict=True):
        blocks.append([d - off, 1])
        while len(blocks) > 1 and blocks[-2][0] / blocks[-2][1] > blocks[-1][0] / blocks[-1][1]:
            total, count = blocks.pop()
            blocks[-1][0] += total
            blocks[-1][1] += count
    values: list[float] = []
    for total, count in blocks:
        values.extend([total / count] * int(count))
    return [math.floor(v + 0.5) + off for v, off in zip(values, offsets, strict=True)]
