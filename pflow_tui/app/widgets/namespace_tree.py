"""The namespace tree: workflow → node (each visit) → iteration pages → iteration → keys.

It fills in as the run goes and is lazy: a batch of 100,000 items shows 100 page
entries (``iterations 0–999``), and a page's 1,000 iterations are created only when it
is expanded. Failed iterations are marked, and pages say how many failed inside.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import partial
from itertools import islice
from typing import Any

from rich.style import Style
from rich.text import Text
from textual import events
from textual.widgets import Tree
from textual.widgets.tree import TreeNode, UnknownNodeID

from ...engine.paths import branch_index, iteration_index
from ...engine.trace.writer import dumps
from ...text import literal
from ..messages import Selection, request_selection
from ..model import Changes, NodeState, RunModel
from ..status import ERROR, OK, PENDING, RUNNING
from ..styles import LABEL_VAR, SYMBOLS, status_style, theme_color

PAGE = 1000
PREVIEW_CHARS = 60


@dataclass(frozen=True, slots=True)
class Entry:
    """What a tree node stands for."""

    kind: str  # "node" | "branch" | "page" | "item" | "key"
    path: str = ""  # the node visit's path
    node_id: str = ""
    lo: int = 0  # page range, or item index in lo
    hi: int = 0


def preview(value: Any, limit: int = PREVIEW_CHARS) -> str:
    """A one-line, literal preview of a value, ending in ``…`` when cut."""
    size = limit + 1  # (a huge value is cut before it is looked at)
    if isinstance(value, str):
        text = value[:size]
    else:  # as many entries as characters is plenty; at most 4 bytes a character
        if isinstance(value, (list, tuple)) and len(value) > size:
            value = value[:size]
        elif isinstance(value, dict) and len(value) > size:
            value = dict(islice(value.items(), size))
        text = dumps(value)[: 4 * size].decode("utf-8", "ignore")[:size]
    if not text.strip():  # an empty or blank string: quoted, never a blank label
        text = dumps(text).decode()
    text = literal(text).replace("\n", "⏎")
    return text if len(text) <= limit else text[: limit - 1] + "…"


class NamespaceTree(Tree[Entry]):
    """The run's hierarchical namespace, filling in live."""

    DEFAULT_CSS = "NamespaceTree { background: $surface; }"
    requested: Selection | None = None  # asked for, on its way to the screen (request_selection)

    def __init__(self, model: RunModel, *, id: str | None = None) -> None:
        super().__init__(Text(literal(model.graph.name), style="bold"), Entry("root"), id=id)
        self.model = model
        self._visits: dict[str, TreeNode[Entry]] = {}  # visit path -> tree node
        self._pages: dict[str, dict[int, TreeNode[Entry]]] = {}  # visit path -> page lo -> node
        self._items: dict[tuple[str, int], TreeNode[Entry]] = {}  # loaded item nodes
        self._branches: dict[tuple[str, int], TreeNode[Entry]] = {}  # (fan-out path, index)
        self._moved_to: TreeNode[Entry] | None = None
        self._later: set[TreeNode[Entry]] = set()  # entries whose outputs are read after this frame
        self._by_user = False
        self.show_root = True
        self.guide_depth = 3

    def _on_resize(self, event: events.Resize) -> None:
        """Redraw the rows at the new width. Textual's Tree also lays out the whole screen
        again here, but its rows (and so its virtual size) do not depend on its width."""
        event.prevent_default()  # instead of Tree._on_resize
        self._line_cache.grow(event.size.height)
        self._clear_line_cache()
        self.refresh()

    def on_mount(self) -> None:
        self.root.expand()
        self.update_from(Changes(new_nodes=list(self.model.visits)))

    # --- live updates -----------------------------------------------------------------------

    def update_from(self, changes: Changes) -> None:
        for path in changes.gone:
            self._forget(path)
        for path in changes.new_nodes:
            state = self.model.visits.get(path)
            if state is not None and path not in self._visits:
                self._add_visit(state)
        touched = changes.nodes | changes.items
        if not touched and not changes.nested:
            return
        for path, tree_node in self._visits.items():
            state = self.model.visits[path]
            nested = state is not self.model.latest.get(state.id)
            if not (state.id in touched or (nested and changes.nested)):
                continue
            tree_node.set_label(self._visit_label(state))
            if state.items is not None and tree_node.is_expanded:
                self._refresh_pages(state)
            if state.branches is not None:
                self._refresh_branches(state)
            if state.items is None:
                self._sync_keys(tree_node, state.end_seq)

    def _parent_of(self, path: str) -> TreeNode[Entry] | None:
        """The tree node a visit goes under, if it is loaded (iterations load lazily)."""
        parent = path.rpartition(".")[0]
        if "." not in parent:
            return self.root
        if parent in self._visits:
            return self._visits[parent]
        head, _, leaf = parent.rpartition(".")
        branch = branch_index(leaf)
        if branch is not None:
            return self._branch(head, branch)
        item = iteration_index(leaf)
        if item is not None:
            return self._items.get((head, item))
        return None

    def _add_visit(self, state: NodeState) -> None:
        parent = self._parent_of(state.path)
        if parent is None:
            return
        node = parent.add(self._visit_label(state), Entry("node", state.path, state.id),
                          allow_expand=True)
        self._visits[state.path] = node
        self._pages.pop(state.path, None)  # (made again under the new entry when needed)

    def _page_nodes(self, state: NodeState) -> dict[int, TreeNode[Entry]]:
        """The page entries of a batch visit, made when first needed (a big batch has hundreds)."""
        pages = self._pages.get(state.path)
        if pages is None:
            assert state.items is not None
            node = self._visits[state.path]
            pages = self._pages[state.path] = {}
            for lo in range(0, state.items.count, PAGE):
                hi = min(lo + PAGE, state.items.count) - 1
                pages[lo] = node.add(self._page_label(state, lo, hi),
                                     Entry("page", state.path, state.id, lo, hi), allow_expand=True)
        return pages

    def _forget(self, path: str) -> None:
        """A visit the replay cursor went back before: its entry goes, and so does its
        branch's entry once it has no visits left (the latest visits go first)."""
        node = self._visits.pop(path, None)
        if node is None:
            return
        if self._pages.pop(path, None) is not None:
            for key in [key for key in self._items if key[0] == path]:
                del self._items[key]
        for key in [key for key in self._branches if key[0] == path]:
            del self._branches[key]
        parent = node.parent
        moved = self._moved_to
        while moved is not None and moved is not node:
            moved = moved.parent
        if moved is node:
            self._moved_to = None
        node.remove()
        if parent is not None and parent.data is not None and parent.data.kind == "branch" \
                and not parent.children:
            self._branches.pop((parent.data.path, parent.data.lo), None)
            parent.remove()

    def _branch(self, fan_path: str, index: int) -> TreeNode[Entry] | None:
        """The entry of one branch of a fan-out node (made when first needed)."""
        found = self._branches.get((fan_path, index))
        if found is None and fan_path in self._visits:
            state = self.model.visits[fan_path]
            found = self._visits[fan_path].add(self._branch_label(state, index),
                                               Entry("branch", fan_path, state.id, index),
                                               allow_expand=True)
            found.expand()
            self._visits[fan_path].expand()
            self._branches[(fan_path, index)] = found
        return found

    def _refresh_branches(self, state: NodeState) -> None:
        for (fan_path, index), node in self._branches.items():
            if fan_path == state.path:
                node.set_label(self._branch_label(state, index))

    def _branch_label(self, state: NodeState, index: int) -> Text:
        table = state.branches
        code = table.status[index] if table is not None and index < table.count else PENDING
        start = state.branch_starts[index] if index < len(state.branch_starts) else ""
        return Text.assemble((SYMBOLS[code] + " ", status_style(self.app, code)), f"branch_{index}",
                             (f"  → {literal(start)}" if start else "", "dim"))

    @staticmethod
    def _has_keys(node: TreeNode[Entry]) -> bool:
        return any(child.data is not None and child.data.kind == "key" for child in node.children)

    def _sync_keys(self, node: TreeNode[Entry], end_seq: int) -> None:
        """Show the outputs of a visit or iteration once it has ended (and not before). A
        replay's big end event (megabytes of outputs) is read after this frame, on its own."""
        if end_seq and not self._has_keys(node):
            ready = getattr(self.model.events, "ready", None)
            if ready is not None and not ready(end_seq - 1):
                if node not in self._later:
                    self._later.add(node)
                    self.set_timer(0.001, partial(self._keys_later, node))
                return
            self._load_keys(node, (self.model.event(end_seq) or {}).get("outputs"))
        elif not end_seq and self._has_keys(node):
            self._load_keys(node, None)

    def _keys_later(self, node: TreeNode[Entry]) -> None:
        self._later.discard(node)
        try:
            self.get_node_by_id(node.id)
        except UnknownNodeID:
            return  # gone meanwhile
        entry = node.data
        state = self.model.visits.get(entry.path) if entry is not None else None
        if entry is None or state is None:
            return
        if entry.kind == "item" and state.items is not None and entry.lo < state.items.count:
            end_seq = state.items.end_seq[entry.lo]
        else:
            end_seq = state.end_seq
        if end_seq:
            self.model.event(end_seq)  # the slow part: parsed (and kept for a while)
        self._sync_keys(node, end_seq)

    def _refresh_pages(self, state: NodeState) -> None:
        items = state.items
        assert items is not None
        for page in self._pages.get(state.path, {}).values():
            entry = page.data
            assert entry is not None
            page.set_label(self._page_label(state, entry.lo, entry.hi))
            if page.is_expanded:
                for i in range(entry.lo, entry.hi + 1):
                    item = self._items.get((state.path, i))
                    if item is not None:
                        item.set_label(self._item_label(state, i))
                        if item.is_expanded or item.children:
                            self._sync_keys(item, items.end_seq[i])

    # --- labels ----------------------------------------------------------------------------

    def _visit_label(self, state: NodeState) -> Text:
        code = state.status
        name = state.path.rpartition(".")[2]
        label = Text.assemble((SYMBOLS[code] + " ", status_style(self.app, code)),
                              (literal(name), "bold"), (f"  {state.type}", "italic dim"))
        if state.items is not None:
            items = state.items
            label.append(f"  {items.done + items.failed:,}/{items.count:,}")
            if items.failed:
                label.append(f" ✗{items.failed:,}", style=status_style(self.app, ERROR))
        return label

    def _page_label(self, state: NodeState, lo: int, hi: int) -> Text:
        items = state.items
        assert items is not None
        status = items.status[lo: hi + 1]
        failed = status.count(ERROR)
        done = status.count(OK)
        running = status.count(RUNNING)
        label = Text(f"iterations {lo:,}–{hi:,}", style="")
        label.append(f"  {done + failed:,}/{hi - lo + 1:,}", style="dim")
        if running:
            label.append(f" ◐{running}", style=status_style(self.app, RUNNING))
        if failed:
            label.append(f" ✗{failed:,}", style=status_style(self.app, ERROR))
        return label

    def _item_label(self, state: NodeState, index: int) -> Text:
        items = state.items
        assert items is not None
        code = items.status[index]
        label = Text.assemble((SYMBOLS[code] + " ", status_style(self.app, code)), f"iteration_{index}")
        name = self.model.item_name(state, index)  # (one safe line already)
        if name:
            label.append(f"  {name}", style=theme_color(self.app, LABEL_VAR))
        if items.attempts[index] > 1:
            label.append(f"  ↻{items.attempts[index]}", style=theme_color(self.app, "warning"))
        return label

    # --- lazy loading -----------------------------------------------------------------------

    def on_tree_node_expanded(self, event: Tree.NodeExpanded[Entry]) -> None:
        entry = event.node.data
        if entry is None:
            return
        state = self.model.visits.get(entry.path)
        if state is None:
            return
        if entry.kind == "page" and not event.node.children:
            for i in range(entry.lo, entry.hi + 1):
                item = event.node.add(self._item_label(state, i),
                                      Entry("item", entry.path, entry.node_id, i), allow_expand=True)
                self._items[(entry.path, i)] = item
        elif entry.kind == "item":
            items = state.items
            self._sync_keys(event.node, items.end_seq[entry.lo] if items is not None else 0)
            for path in self.model.children.get(f"{entry.path}.iteration_{entry.lo}", ()):
                child = self.model.visits.get(path)
                if child is not None and path not in self._visits:
                    self._add_visit(child)
        elif entry.kind == "node" and state.items is not None:
            self._page_nodes(state)
            self._refresh_pages(state)

    def on_tree_node_collapsed(self, event: Tree.NodeCollapsed[Entry]) -> None:
        entry = event.node.data
        if entry is not None and entry.kind == "page":  # free the page's iterations
            for i in range(entry.lo, entry.hi + 1):
                self._items.pop((entry.path, i), None)
            prefix = f"{entry.path}.iteration_"
            for path in [p for p in self._visits if p.startswith(prefix)]:
                del self._visits[path]
            event.node.remove_children()

    def render_label(self, node: TreeNode[Entry], base_style: Style, style: Style) -> Text:
        """A value's label ends in ``…`` where the pane cuts it, not mid-character silently."""
        label = super().render_label(node, base_style, style)
        if node.data is not None and node.data.kind == "key":
            depth, parent = 0, node.parent
            while parent is not None:
                depth, parent = depth + 1, parent.parent
            room = self.scrollable_content_region.width - depth * self.guide_depth
            if 8 < room < label.cell_len:
                label.truncate(room, overflow="ellipsis")
        return label

    def _load_keys(self, node: TreeNode[Entry], outputs: Any) -> None:
        for child in list(node.children):
            if child.data is not None and child.data.kind == "key":
                child.remove()
        if not isinstance(outputs, dict):
            return
        key_style = theme_color(self.app, "primary-lighten-2")
        for key, value in outputs.items():
            label = Text.assemble((literal(str(key)), key_style), " = ", preview(value))
            node.add_leaf(label, Entry("key", node.data.path if node.data else "", "", 0))

    # --- selection --------------------------------------------------------------------------

    # The cursor also moves when lines are added or when another pane selects something;
    # only a move the user made (keys, mouse) selects in the other panes.
    def _user_move(self, action: str) -> None:
        self._by_user = True
        getattr(super(), f"action_{action}")()

    def action_cursor_up(self) -> None:
        self._user_move("cursor_up")

    def action_cursor_down(self) -> None:
        self._user_move("cursor_down")

    def action_page_up(self) -> None:
        self._user_move("page_up")

    def action_page_down(self) -> None:
        self._user_move("page_down")

    def action_scroll_home(self) -> None:
        self._user_move("scroll_home")

    def action_scroll_end(self) -> None:
        self._user_move("scroll_end")

    def action_cursor_parent(self) -> None:
        self._user_move("cursor_parent")

    def action_select_cursor(self) -> None:
        self._user_move("select_cursor")

    async def _on_click(self, event: events.Click) -> None:
        self._by_user = True
        await super()._on_click(event)

    def on_tree_node_highlighted(self, event: Tree.NodeHighlighted[Entry]) -> None:
        if not self._by_user or event.node is not self.cursor_node:
            return  # not the user's doing (or stale)
        self._by_user = False
        entry = event.node.data
        if entry is not None and entry.kind == "root":  # the run itself: inputs, outputs, store
            request_selection(self, Selection(path=self.model.graph.name))
            return
        if entry is None or entry.kind in ("key", "page"):
            return
        if entry.kind == "branch":
            state = self.model.visits.get(entry.path)
            starts = state.branch_starts if state is not None else []
            if entry.lo < len(starts) and starts[entry.lo]:
                request_selection(self, Selection(starts[entry.lo]))
            return
        index = entry.lo if entry.kind == "item" else None
        state = self.model.visits.get(entry.path)
        nested = state is not None and state is not self.model.latest.get(entry.node_id)
        request_selection(self, Selection(entry.node_id, index, entry.path if nested else None))

    def select(self, selection: Selection) -> None:
        """Move the cursor to the selection, expanding its page when it is an iteration."""
        if selection.node_id is None and selection.path is not None:  # the run itself
            self._moved_to = self.root
            if self.cursor_node is not self.root:
                self.call_after_refresh(self._move_to, self.root)
            return
        state = self.model.latest.get(selection.node_id or "")
        if state is None:
            return
        node = self._visits.get(state.path)
        if node is None:
            return
        target = node
        if selection.index is not None and state.items is not None:
            lo = selection.index // PAGE * PAGE
            page = self._page_nodes(state).get(lo)
            if page is not None:
                node.expand()
                page.expand()
                if not page.children:  # expanded events arrive later; load now
                    for i in range(lo, min(lo + PAGE, state.items.count)):
                        self._items[(state.path, i)] = page.add(
                            self._item_label(state, i), Entry("item", state.path, state.id, i),
                            allow_expand=True)
                target = self._items.get((state.path, selection.index), page)
        self._moved_to = target
        if self.cursor_node is not target:
            self.call_after_refresh(self._move_to, target)

    def _move_to(self, target: TreeNode[Entry]) -> None:
        """Move the cursor once the tree's lines include ``target`` (the latest one only)."""
        if target is self._moved_to and self.cursor_node is not target:
            self._tree_lines  # noqa: B018 - rebuilds the line numbers that move_cursor reads
            self.move_cursor(target)
