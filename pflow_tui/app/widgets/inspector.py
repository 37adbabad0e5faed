"""The inspector: everything about the selected node or iteration, or about the run.

Failures first: for a failed node or item, the error (type, message, attempts, the last
lines of stderr, then the traceback) comes right under the title; the item, params and
outputs follow. The title and the status line (status, duration, a batch's counts) are
redrawn at every tick, cheaply, so they are as current as the header; the rest only when
the selection's events change. Selecting the run itself (the flow) shows its inputs, the
declared outputs with their values, and the final store as a lazy tree.

All of it comes from events and is shown literally: values are rendered as JSON text or
plain ``Text``, never as markup, and control characters are made visible.
"""

from __future__ import annotations

import os
import re
from typing import Any

import orjson
from rich.console import Console, ConsoleOptions, Group, RenderableType, RenderResult
from rich.measure import Measurement
from rich.syntax import Syntax
from rich.table import Table
from rich.text import Text
from textual.app import ComposeResult
from textual.containers import VerticalScroll
from textual.widgets import Static, Tree
from textual.widgets.tree import TreeNode

from ...engine.paths import format_duration
from ...engine.run.labels import one_line
from ...engine.trace import large
from ...engine.trace.reader import TraceIndex
from ...engine.trace.usage import usage_text
from ...engine.trace.writer import dumps, read_footer
from ...text import literal
from ..contracts import EventSource
from ..graph import graph_key
from ..messages import Selection
from ..model import Changes, NodeState, RunModel
from ..status import ERROR, PENDING, STATUS_CODES, STATUS_NAMES
from ..styles import LABEL_VAR, SYMBOLS, status_style, theme_color
from .namespace_tree import preview

MAX_VALUE_CHARS = 20_000
WORKER_CELLS = 60  # a cluster worker's address is cut beyond this
ATTEMPT_SCAN = 5_000  # events looked at for the end of an attempt that was retried
STDERR_LINES = 8  # the last lines of a failed shell command's stderr, under its error
STORE_CHILDREN = 200  # entries of a dict or list shown when it is expanded in the store
_INDENT = orjson.OPT_INDENT_2 | orjson.OPT_NON_STR_KEYS


def large_shown(value: Any, trace: Any = None) -> Any:
    """``value`` with each large value's marker (see engine/large.py) replaced: by the value
    from its side file when ``trace`` (the trace file) is given, else by a line that says
    what it is, where it is and that ``L`` loads it, followed by its preview."""
    if isinstance(value, dict):
        if large.is_marker(value):
            if trace is not None:
                try:
                    return large.load(value, trace)
                except (large.LargeValueMissing, ValueError) as exc:
                    return f"«large value not loaded: {exc}»"
            size = value.get("size")
            unit = "characters" if value.get("type") == "str" else "bytes of JSON"
            return (f"«large value: {size:,} {unit}, stored once in {value.get('large_value')} "
                    f"(sha256 {str(value.get('sha256'))[:12]}…); L loads it» "
                    f"{value.get('preview', '')}…")
        if not any(isinstance(v, (dict, list)) for v in value.values()):
            return value
        return {k: large_shown(v, trace) for k, v in value.items()}
    if isinstance(value, list) and any(isinstance(v, (dict, list)) for v in value[:1000]):
        return [large_shown(v, trace) for v in value]
    return value


def json_text(value: Any, limit: int = MAX_VALUE_CHARS) -> str:
    """A value as indented JSON (strings as they are, an empty or blank one quoted), cut at
    ``limit`` characters."""
    if isinstance(value, str) and value.strip():
        text = value
    else:
        try:
            text = orjson.dumps(value, default=repr, option=_INDENT).decode()
        except (orjson.JSONEncodeError, TypeError):
            text = dumps(value).decode()
    if len(text) > limit:
        text = text[:limit] + f"\n… ({len(text) - limit:,} more characters)"
    return literal(text)


class Breakable:
    """Text that wraps only between its pieces (a path wraps after a dot, never mid-word);
    a piece wider than the whole line is folded."""

    def __init__(self, pieces: list[Text]) -> None:
        self.pieces = pieces

    def __rich_console__(self, console: Console, options: ConsoleOptions) -> RenderResult:
        width = options.max_width
        lines: list[Text] = [Text(end="")]
        for piece in self.pieces:
            if lines[-1].cell_len and lines[-1].cell_len + piece.cell_len > width:
                lines.append(Text(end=""))
                plain = piece.plain
                piece = piece[len(plain) - len(plain.lstrip(" ")):]  # no spaces to start a line
            lines[-1].append_text(piece)
        yield Text("\n").join(lines)

    def __rich_measure__(self, console: Console, options: ConsoleOptions) -> Measurement:
        widest = max((p.cell_len for p in self.pieces), default=0)
        return Measurement(min(widest, options.max_width),
                           min(sum(p.cell_len for p in self.pieces), options.max_width))


class Head:
    """The title and status line, with what they show as a key (to redraw only on change)."""

    def __init__(self, key: tuple[Any, ...], content: RenderableType) -> None:
        self.key = key
        self.content = content

    def __rich_console__(self, console: Console, options: ConsoleOptions) -> RenderResult:
        yield self.content


def path_pieces(path: str, style: str = "bold") -> list[Text]:
    """A dotted path split after each dot, for :class:`Breakable`."""
    segments = literal(path).split(".")
    return [Text(seg + ("." if i < len(segments) - 1 else ""), style=style, end="")
            for i, seg in enumerate(segments)]


_SITE = re.compile(r'"[^"\n]*/(site-packages|dist-packages)/')


def short_paths(traceback: str) -> str:
    """A traceback with shorter file paths (``…/site-packages/``, none for the current
    folder), so that fewer of them wrap in a narrow pane."""
    cwd = os.getcwd().rstrip("/") + "/"
    return _SITE.sub(lambda m: f'"…/{m.group(1)}/', traceback.replace(f'"{cwd}', '"'))


def _attempts(n: int) -> str:
    return f"{n} attempt" if n == 1 else f"{n} attempts"


def rel_path(path: str) -> str:
    """An event path without the flow's name (the header shows it)."""
    return path.partition(".")[2] or path


class StoreTree(Tree[Any]):
    """The final store, browsable: keys with a one-line preview; a dict or list opens to
    its entries (the first :data:`STORE_CHILDREN`), a long string to its first lines."""

    DEFAULT_CSS = """
    StoreTree { height: auto; max-height: 100%; background: $surface; padding: 0; }
    """

    def __init__(self) -> None:
        super().__init__(Text("store"), None, id="store")
        self.show_root = False
        self.guide_depth = 3
        self.value: Any = None

    def show(self, store: Any) -> None:
        """Show ``store`` (a dict), collapsed."""
        store = large_shown(store)
        self.value = store
        self.clear()
        self._fill(self.root, store)
        self.root.expand()

    def _entry(self, parent: TreeNode[Any], key: str, value: Any) -> None:
        key_style = theme_color(self.app, "primary-lighten-2")
        label = Text.assemble((literal(key), key_style), " ", _summary(value))
        expandable = (isinstance(value, (dict, list)) and len(value) > 0) or (
            isinstance(value, str) and ("\n" in value or len(value) > 60))
        if expandable:
            parent.add(label, value, allow_expand=True)
        else:
            parent.add_leaf(label, value)

    def _fill(self, node: TreeNode[Any], value: Any) -> None:
        if isinstance(value, dict):
            for n, (key, v) in enumerate(value.items()):
                if n == STORE_CHILDREN:
                    node.add_leaf(Text(f"… {len(value) - n:,} more keys", style="dim"))
                    break
                self._entry(node, str(key), v)
        elif isinstance(value, list):
            for n, v in enumerate(value[:STORE_CHILDREN]):
                self._entry(node, f"[{n}]", v)
            if len(value) > STORE_CHILDREN:
                node.add_leaf(Text(f"… {len(value) - STORE_CHILDREN:,} more entries", style="dim"))
        elif isinstance(value, str):
            lines = value.splitlines()
            for line in lines[:STORE_CHILDREN]:
                node.add_leaf(Text(literal(line[:400]) + ("…" if len(line) > 400 else "")))
            if len(lines) > STORE_CHILDREN:
                node.add_leaf(Text(f"… {len(lines) - STORE_CHILDREN:,} more lines", style="dim"))

    def on_tree_node_expanded(self, event: Tree.NodeExpanded[Any]) -> None:
        event.stop()
        if event.node is not self.root and not event.node.children:
            self._fill(event.node, event.node.data)


def _summary(value: Any) -> Text:
    """What a store entry's label says about its value."""
    if isinstance(value, dict):
        return Text(f"{{{len(value):,} keys}}" if value else "{}", style="dim")
    if isinstance(value, list):
        return Text(f"[{len(value):,} entries]" if value else "[]", style="dim")
    return Text("= " + preview(value))


class Inspector(VerticalScroll):
    """Shows the selected node, iteration or the run; follows its events as they arrive."""

    DEFAULT_CSS = """
    Inspector { padding: 0 1; }
    Inspector > Static { width: 1fr; }
    """

    def __init__(self, model: RunModel, *, id: str | None = None) -> None:
        super().__init__(id=id)
        self.model = model
        self.selection = Selection()
        self._head_shown: tuple[Any, ...] = ()
        self._shown: tuple[Any, ...] = ()
        self._store_shown = -1
        self._footer: dict[str, Any] | None = None  # the trace's footer (the final store)
        self._footer_seq = -1  # the run.end it was read for
        self._footer_wait = False
        self._attempts: tuple[Any, Any] = (None, None)  # ((path, end seq), attempts)
        self._large_from: Any = None  # L: the trace whose side files fill in large values
        self._head = Static(Text("Select a node or an iteration.", style="dim"), id="inspector-head")
        self._body = Static("", id="inspector-body")
        self._store = StoreTree()
        self._store.display = False

    def compose(self) -> ComposeResult:
        yield self._head
        yield self._body
        yield self._store

    def select(self, selection: Selection) -> None:
        if selection != self.selection:
            self.selection = selection
            self._large_from = None
            self.scroll_home(animate=False)
        self._show()

    def _source(self) -> EventSource | None:
        """Where the run screen this pane is on gets its events (None: not on one)."""
        source = getattr(self.screen, "source", None) if self.is_attached else None
        return source if isinstance(source, EventSource) else None

    def load_large(self) -> None:
        """Show the selection's large values from their side files (``L``), not their
        preview; selecting something else shows previews again."""
        source = self._source()
        trace = source.trace_path if source is not None else None
        if trace is None:
            self.app.notify("This run has no trace file: large values cannot be loaded.", timeout=3)
            return
        self._large_from = trace
        self._shown = ()
        self._show()

    def on_mount(self) -> None:
        self.app.theme_changed_signal.subscribe(self, self._theme_changed)

    def update_from(self, changes: Changes) -> None:
        """At every tick: the title and status line (cheap, so as current as the header);
        the rest when the selection's events changed."""
        self._show()

    def show_now(self) -> None:
        """Show the selection as it is now (the replay cursor moved)."""
        self._show()

    def _theme_changed(self, _theme: object) -> None:
        self._head_shown = self._shown = ()
        self._store_shown = -1
        self._show()

    # --- what is shown, and when ------------------------------------------------------------

    def _is_root(self) -> bool:
        sel = self.selection
        return sel.node_id is None and sel.path is not None

    def _key(self) -> tuple[Any, ...]:
        """What the body depends on, to skip needless re-renders."""
        sel = self.selection
        if self._is_root():
            model = self.model
            return (sel, model.status, model.end_seq, len(model.inputs))
        state = self._state()
        if state is None:
            return (sel, None)
        items = state.items
        if sel.index is not None and items is not None and 0 <= sel.index < items.count:
            return (sel, state.path, items.start_seq[sel.index], items.end_seq[sel.index],
                    items.status[sel.index], state.start_seq, items.attempts[sel.index],
                    items.worker[sel.index] if items.worker is not None else 0)
        return (sel, state.path, state.start_seq, state.end_seq, state.status,
                len(items.failures) if items is not None else None, len(state.workers))

    def _show(self) -> None:
        head = self.head()
        head_key = head.key
        if head_key != self._head_shown:
            self._head_shown = head_key
            self._update(self._head, head)
        key = self._key()
        if key != self._shown:
            self._shown = key
            self._update(self._body, self.body())
        if self._is_root():
            self._show_store()
        elif self._store.display:  # (shown again, as it is then, when the run is selected)
            self._store.display = False
            self._store_shown = -1

    def _update(self, widget: Static, content: RenderableType) -> None:
        """New content; a layout of the whole screen only when its height changed."""
        height = widget.size.height
        widget.update(content, layout=False)
        width = widget.size.width
        if not width or widget.get_content_height(self.size, self.size, width) != height:
            widget.refresh(layout=True)

    def _state(self) -> NodeState | None:
        sel = self.selection
        if sel.path is not None:
            return self.model.visits.get(sel.path)
        return self.model.latest.get(sel.node_id or "")

    def _ir_node(self, state: Any) -> dict[str, Any]:
        """The node's IR, from the (nested) flow its visit belongs to."""
        node_id = self.selection.node_id or ""
        graph = self.model.graph
        if state is not None:
            key, _ = graph_key(state.path)
            graph = graph.at(key) or graph
        return graph.nodes.get(node_id, {})

    def build(self) -> RenderableType:
        """Everything the inspector shows as text (the store tree apart)."""
        return Group(self.head(), self.body())

    # --- the head: title and status line, redrawn at every tick ------------------------------

    def head(self) -> Head:
        sel = self.selection
        model = self.model
        if self._is_root():
            code = STATUS_CODES.get(model.status, ERROR)
            facts = [model.status]
            if model.status != "pending":
                facts.append(format_duration(model.run_time()))
            return self._title(model.graph.name, "flow", code, " · ".join(facts))
        if sel.node_id is None:
            return Head((), Text("Select a node or an iteration.", style="dim"))
        state = self._state()
        if state is None:
            ir_node = self._ir_node(None)
            return self._title(sel.node_id, str(ir_node.get("type", "?")), PENDING, "pending")
        if sel.index is not None and state.items is not None:
            return self._item_head(state, sel.index)
        return self._node_head(state)

    def _title(self, path: str, node_type: str, code: int, facts: str,
               more: Text | None = None, label: str = "") -> Head:
        key = (path, node_type, code, facts, more.plain if more is not None else None, label)
        style = status_style(self.app, code)
        named = [Text(f"  {literal(label)}", style=theme_color(self.app, LABEL_VAR), end="")] if label else []
        title = Breakable([Text(f"{SYMBOLS.get(code, '?')} ", style=style, end=""), *path_pieces(path),
                           *named, Text(f"  {node_type}", style="italic", end="")])
        parts: list[RenderableType] = [title, Text(facts, style=style)]
        if more is not None:
            parts.append(more)
        return Head(key, Group(*parts))

    def _node_head(self, state: NodeState) -> Head:
        model = self.model
        facts = [state.status_name]
        duration = state.duration(model.t)
        if duration is not None:
            facts.append(format_duration(duration))
        attempts = self._end_attempts(state)
        if isinstance(attempts, int) and (attempts > 1 or state.status == ERROR):
            facts.append(_attempts(attempts))
        more = None
        if state.items is not None:
            items = state.items
            b = state.batch or {}
            mode = ((f"parallel ×{b['max_concurrent']}" if b.get("max_concurrent") else "parallel")
                    if b.get("parallel") else "sequential")
            more = Text(f"{items.count:,} items: {items.done:,} ok · {items.failed:,} failed · "
                        f"{items.running:,} running · {mode} · {b.get('error_handling', 'fail_fast')}")
        return self._title(rel_path(state.path), state.type, state.status, " · ".join(facts), more)

    def _end_attempts(self, state: NodeState) -> Any:
        """``attempts`` of the visit's end event, looked up once per end (the head is drawn
        at every tick, and a replay's big end event is not parsed for it)."""
        key = (state.path, state.end_seq)
        if self._attempts[0] != key:
            end: dict[str, Any] = {}
            if state.end_seq:
                events = self.model.events
                ready = getattr(events, "ready", None)
                if ready is not None and not ready(state.end_seq - 1):
                    end = events.head(state.end_seq - 1)
                else:
                    end = self.model.event(state.end_seq) or {}
            self._attempts = (key, end.get("attempts"))
        return self._attempts[1]

    def _item_head(self, state: NodeState, index: int) -> Head:
        model = self.model
        items = state.items
        assert items is not None
        if not 0 <= index < items.count:
            text = f"{literal(rel_path(state.path))} has no iteration {index}"
            return Head((text,), Text(text, style="dim"))
        start_seq, end_seq = items.start_seq[index], items.end_seq[index]
        code = items.status[index]
        facts = [STATUS_NAMES[code]]
        if start_seq:
            t0 = (model.event(start_seq) or {}).get("t", model.t)  # its waits included
            t1 = items.t_end[index]
            facts.append(format_duration((t1 if t1 == t1 else model.t) - t0))
        attempts = items.attempts[index]
        if end_seq and (attempts > 1 or code == ERROR):
            facts.append(_attempts(attempts))
        elif not end_seq and attempts > 1:
            facts.append(f"attempt {attempts}")
        worker = items.worker[index] if items.worker is not None else 0
        if worker:
            facts.append(f"on {one_line(model.worker_name(worker), WORKER_CELLS)}")
        return self._title(f"{rel_path(state.path)}.iteration_{index}", state.type, code,
                           " · ".join(facts), label=model.item_name(state, index))

    # --- the body: error first, then item, params, outputs ---------------------------------

    def body(self) -> RenderableType:
        sel = self.selection
        if self._is_root():
            return self._root()
        if sel.node_id is None:
            return Text("")
        state = self._state()
        ir_node = self._ir_node(state)
        if state is None:
            if ir_node.get("params"):
                return Group(self._heading("params"), self._params(ir_node.get("params") or {}, None))
            return Text("")
        if sel.index is not None and state.items is not None:
            return self._item(state, sel.index, ir_node)
        return self._node(state, ir_node)

    def _heading(self, text: str) -> Text:
        return Text(f"\n{text}", style=f"bold {theme_color(self.app, 'primary-lighten-2')}")

    def _params(self, templates: dict[str, Any], resolved: dict[str, Any] | None,
                per_item: bool = False) -> Table:
        table = Table(show_header=False, box=None, pad_edge=False, expand=True)
        table.add_column(style="bold", no_wrap=True)
        table.add_column(ratio=1, overflow="fold")
        keys = list(templates)
        if resolved:
            keys += [k for k in resolved if k not in templates]
        muted = theme_color(self.app, "foreground-darken-3")
        for key in keys:
            cell = Text()
            source = templates.get(key)
            has_template = isinstance(source, (str, dict, list)) and "${" in dumps(source).decode()
            if has_template:
                cell.append(json_text(source, 400), style=muted)
                cell.append(" → ", style=muted)
            if resolved is not None and key in resolved:
                cell.append(json_text(large_shown(resolved[key], self._large_from), 2000))
            elif has_template:
                cell.append("resolved per iteration" if per_item else "not resolved yet",
                            style=f"italic {muted}")
            else:
                cell.append(json_text(source, 2000))
            table.add_row(Text(literal(str(key))), cell)
        return table

    def _value(self, value: Any) -> RenderableType:
        value = large_shown(value, self._large_from)
        text = json_text(value)
        if isinstance(value, (dict, list)):
            dark = getattr(self.app.current_theme, "dark", True)
            return Syntax(text, "json", theme="ansi_dark" if dark else "ansi_light",
                          word_wrap=True, background_color="default")
        return Text(text)

    def _error(self, error: dict[str, Any], outputs: Any = None) -> list[RenderableType]:
        """The error: type and message, the last lines of stderr, the traceback (the status
        line above says how many attempts)."""
        err = theme_color(self.app, "error")
        message = str(error.get("message", "")).rstrip("\n")
        stderr = outputs.get("stderr") if isinstance(outputs, dict) else None
        stderr = stderr.rstrip("\n") if isinstance(stderr, str) and stderr.strip() else ""
        lines = stderr.splitlines()
        if stderr and stderr.strip() in message:
            if len(lines) <= 1:
                stderr = ""  # the message says it all
            else:  # the message's first line, and the stderr it holds as its last lines below
                message = message.partition("\n")[0]
        parts: list[RenderableType] = [
            Text.assemble((literal(str(error.get("type", "Error"))) + ": ", f"bold {err}"),
                          (literal(message), err))]
        if stderr:
            shown = lines[-STDERR_LINES:]
            head = ("stderr" if len(shown) == len(lines)
                    else f"stderr (last {len(shown)} of {len(lines):,} lines)")
            parts.append(Text(head, style=f"bold {theme_color(self.app, 'foreground-darken-1')}"))
            parts.append(Text(literal("\n".join(line[:500] for line in shown))))
        tb = error.get("traceback")
        if tb:
            dark = getattr(self.app.current_theme, "dark", True)
            parts.append(Syntax(literal(short_paths(str(tb))), "pytb",
                                theme="ansi_dark" if dark else "ansi_light", word_wrap=True,
                                background_color="default"))
        return parts

    def _failure(self, end: dict[str, Any]) -> list[RenderableType]:
        """The error of a failed end event, or the one a Python node's exec_fallback recovered from."""
        if isinstance(end.get("error"), dict):
            return self._error(end["error"], end.get("outputs"))
        if isinstance(end.get("fallback"), dict):
            return [Text("exec failed; exec_fallback gave the result", style="dim"),
                    *self._error(end["fallback"])]
        return []

    def _node(self, state: NodeState, ir_node: dict[str, Any]) -> RenderableType:
        model = self.model
        start = model.event(state.start_seq) or {}
        end = model.event(state.end_seq) or {}
        parts: list[RenderableType] = self._failure(end)
        if state.items is not None and state.items.failures:
            failures = state.items.failures
            parts.append(self._heading(f"failed iterations ({len(failures):,})"))
            for i in failures[:10]:
                ev_end = model.iteration_event(state, i) or {}
                msg = str((ev_end.get("error") or {}).get("message", "")).strip()
                parts.append(Text.assemble((f"  #{i} ", "bold"),
                                           literal(msg.splitlines()[0][:200] if msg else "")))
            parts.append(Text("  n / N: next / previous failure", style="dim"))
        parts += self._workers(state.workers, state.status_name, state.path)
        parts += [self._heading("params"),
                  self._params(ir_node.get("params") or {}, start.get("params"),
                               per_item=state.items is not None)]
        if end.get("action") and end.get("action") != "default":
            parts.append(Text(f"\naction: {literal(str(end['action']))}"))
        if "outputs" in end:
            parts += [self._heading("outputs"), self._value(end["outputs"])]
        if parts and isinstance(parts[0], Text) and parts[0].plain.startswith("\n"):
            parts[0] = parts[0][1:]  # no blank line under the status line
        return Group(*parts)

    def _item(self, state: NodeState, index: int, ir_node: dict[str, Any]) -> RenderableType:
        model = self.model
        items = state.items
        assert items is not None
        if not 0 <= index < items.count:
            return Text("")
        start = model.iteration_event(state, index, end=False) or {}
        end = model.iteration_event(state, index) or {}
        parts: list[RenderableType] = self._failure(end)
        if parts:
            parts.append(Text(""))
        queued = start["t"] - state.t_start if start else None
        wait = model.event(items.waits[0][index]) if items.waits is not None else None
        if wait is not None and queued is not None:  # waited before its first attempt
            ready = model.event(items.waits[1][index]) if items.waits[1][index] else None  # type: ignore[index]
            waited = (ready["t"] if ready else end.get("t", model.t)) - wait["t"]
            on = ("a process" if wait.get("on") == "processes"
                  else "a cluster worker" if wait.get("on") == "cluster"
                  else f"rate limit '{literal(str(wait.get('key', '')))}'")
            parts.append(Text(f"queued {format_duration(queued + waited)} before it started "
                              f"({format_duration(waited)} waiting for {on}: "
                              f"{literal(str(wait.get('limit', '')))})", style="dim"))
        elif queued is not None:
            parts.append(Text(f"queued {format_duration(queued)} before it started", style="dim"))
        parts += self._workers(items.attempt_workers(index, items.start_seq[index]),
                               STATUS_NAMES[items.status[index]], f"{state.path}.iteration_{index}")
        if start:
            parts += [self._heading("item"), self._value(start.get("item"))]
        resolved = {**(model.event(state.start_seq) or {}).get("params", {}), **start.get("params", {})}
        parts += [self._heading("params"), self._params(ir_node.get("params") or {}, resolved or None)]
        if "outputs" in end:
            parts += [self._heading("outputs"), self._value(end["outputs"])]
        return Group(*parts)

    def _workers(self, attempts: list[tuple[int, int]], status: str, path: str) -> list[RenderableType]:
        """Where the attempts of ``path`` ran on a cluster (``attempts``: each one's ``wait.end``
        seq and worker id): one line for one attempt, a line per attempt when there were more
        (a retry after a failure, or after its worker died: the error's type, from the
        attempt's end); nothing off a cluster. ``status``: the last attempt's (the item's or
        node's) status."""
        if not attempts:
            return []
        model = self.model
        if len(attempts) == 1:
            return [self._heading("worker"), Text(one_line(model.worker_name(attempts[0][1]), WORKER_CELLS))]
        table = Table(show_header=False, box=None, pad_edge=False, expand=True)
        table.add_column(style="bold", no_wrap=True)
        table.add_column(ratio=1, overflow="fold")
        table.add_column(no_wrap=True)
        muted = theme_color(self.app, "foreground-darken-3")
        for n, (seq, worker) in enumerate(attempts, 1):
            attempt = (model.event(seq) or {}).get("attempt")
            number = attempt if isinstance(attempt, int) else n
            if n == len(attempts):
                outcome = Text(status)
            else:
                error = self._attempt_error(path, number, seq, attempts[n][0])
                outcome = Text(f"{one_line(error, 40)}, retried" if error else "failed, retried", style=muted)
            table.add_row(Text(f"attempt {number}"), Text(one_line(model.worker_name(worker), WORKER_CELLS)),
                          outcome)
        return [self._heading(f"workers ({len(attempts)} attempts)"), table]

    def _attempt_error(self, path: str, attempt: int, after: int, before: int) -> str:
        """The error type of attempt ``attempt`` of ``path``: its ``attempt.end``, looked for
        between events ``after`` and ``before`` (at most :data:`ATTEMPT_SCAN` of them, by
        their leading fields); ``""`` when it is not there."""
        model = self.model
        head = getattr(model.events, "head", None)
        for seq in range(after + 1, min(before, after + 1 + ATTEMPT_SCAN)):
            e = head(seq - 1) if head is not None else model.event(seq)
            if e is None or e.get("kind") != "attempt.end" or e.get("path") != path:
                continue
            end = model.event(seq) or {}
            error = end.get("error")
            if end.get("attempt") == attempt and isinstance(error, dict):
                return str(error.get("type", "Error"))
        return ""

    # --- the run itself: inputs, outputs, store ---------------------------------------------

    def _run_end(self) -> dict[str, Any] | None:
        """The run's end event (None before it ended, or while a big one is still unread)."""
        seq = self.model.end_seq
        if not seq:
            return None
        ready = getattr(self.model.events, "ready", None)
        if ready is not None and not ready(seq - 1):
            self.set_timer(0.001, self._read_end_later)
            return None
        return self.model.event(seq) or None

    def _read_end_later(self) -> None:
        if self.model.end_seq:
            self.model.event(self.model.end_seq)  # the slow part: parsed (and kept for a while)
        self._shown = ()
        self._store_shown = -1
        self._show()

    def _root(self) -> RenderableType:
        model = self.model
        declared_in, declared_out = model.graph.inputs, model.graph.outputs
        muted = theme_color(self.app, "foreground-darken-3")
        parts: list[RenderableType] = []
        names = list(model.inputs) + [k for k in declared_in if k not in model.inputs]
        parts.append(Text(f"inputs ({len(names)})" if names else "inputs: none",
                          style=f"bold {theme_color(self.app, 'primary-lighten-2')}"))
        if names:
            table = Table(show_header=False, box=None, pad_edge=False, expand=True)
            table.add_column(style="bold", no_wrap=True)
            table.add_column(ratio=1, overflow="fold")
            for name in names:
                cell = (Text(json_text(model.inputs[name], 2000)) if name in model.inputs
                        else Text("not given", style=f"italic {muted}"))
                table.add_row(Text(literal(str(name))), cell)
            parts.append(table)
        end = self._run_end()
        outputs = end.get("outputs") if end is not None else None
        outputs = outputs if isinstance(outputs, dict) else {}
        out_names = list(declared_out) + [k for k in outputs if k not in declared_out]
        parts.append(self._heading(f"outputs ({len(out_names)})" if out_names else "outputs: none declared"))
        if out_names:
            table = Table(show_header=False, box=None, pad_edge=False, expand=True)
            table.add_column(style="bold", no_wrap=True)
            table.add_column(ratio=1, overflow="fold")
            for name in out_names:
                if name in outputs:
                    cell = Text(json_text(outputs[name], 2000))
                elif model.status in ("pending", "running"):
                    cell = Text("when the run ends", style=f"italic {muted}")
                else:
                    cell = Text("not produced", style=f"italic {muted}")
                spec = declared_out.get(name)
                if isinstance(spec, dict) and spec.get("description"):
                    cell.append(f"\n{literal(str(spec['description']))}", style=muted)
                table.add_row(Text(literal(str(name))), cell)
            parts.append(table)
        if model.usage:
            parts.append(self._heading("llm usage"))
            line = usage_text(model.usage)
            models = model.usage.get("models")
            if isinstance(models, dict) and len(models) > 1:
                line += "; " + ", ".join(f"{literal(str(name))} {c.get('input_tokens', 0):,} in "
                                         f"{c.get('output_tokens', 0):,} out"
                                         for name, c in models.items() if isinstance(c, dict))
            parts.append(Text(f"{line} in {model.usage.get('calls', 0)} calls"))
        if model.error:
            parts.append(Text(""))
            parts += self._error(model.error)
        store = self._final_store()
        if model.status in ("pending", "running") or not model.end_seq:
            parts.append(self._heading("store"))
            parts.append(Text("the final store, when the run ends", style=f"italic {muted}"))
        elif store is None:
            parts.append(self._heading("store"))
            parts.append(Text("reading it from the trace…" if self._footer_wait else
                              "not recorded (no trace file)", style=f"italic {muted}"))
        else:
            count = len(store) if isinstance(store, dict) else 0
            parts.append(self._heading(f"store ({count:,} keys; enter or click opens an entry)"))
        return Group(*parts)

    def _final_store(self) -> dict[str, Any] | None:
        """The final store, from the trace's footer (a replay's index, or a live run's file,
        read once it is written); None before the run ended or when there is no trace."""
        model = self.model
        if not model.end_seq:
            return None
        if self._footer_seq != model.end_seq:
            footer: dict[str, Any] | None = None
            index = getattr(model.events, "index", None)
            source = self._source()
            if isinstance(index, TraceIndex):  # a replay (a list's .index is a method)
                footer = index.footer
            elif source is not None and source.live and source.trace_path:
                footer = read_footer(source.trace_path)
                if footer is None and source.running:
                    self._footer_wait = True  # written a moment after run.end: look again
                    self.set_timer(0.2, self._footer_again)
                    return None
            self._footer, self._footer_seq, self._footer_wait = footer, model.end_seq, False
        store = (self._footer or {}).get("store")
        return store if isinstance(store, dict) else None

    def _footer_again(self) -> None:
        self._footer_seq = -1
        self._shown = ()
        self._store_shown = -1
        self._show()

    def _show_store(self) -> None:
        seq = self.model.end_seq
        if seq == self._store_shown:
            return
        store = self._final_store()
        if self._footer_wait:
            return
        self._store_shown = seq
        self._store.display = store is not None
        self._store.show(store or {})

