"""The inspector: everything about the selected node or iteration.

Resolved params (each template beside what it resolved to), the item, the outputs,
timing and attempts, and the error with its traceback. All of it comes from events
and is shown literally: values are rendered as JSON text or plain ``Text``, never as
markup, and control characters are made visible.
"""

from __future__ import annotations

from typing import Any

import orjson
from rich.console import Group, RenderableType
from rich.syntax import Syntax
from rich.table import Table
from rich.text import Text
from textual.containers import VerticalScroll
from textual.timer import Timer
from textual.widgets import Static

from ...engine.trace import dumps
from ...text import literal
from ..messages import Selection
from ..model import ERROR, PENDING, STATUS_CODES, Changes, RunModel, graph_key
from ..styles import SYMBOLS, format_duration, status_style, theme_color

MAX_VALUE_CHARS = 20_000
REFRESH_EVERY = 0.25  # seconds between re-renders while the selection's events stream in
_INDENT = orjson.OPT_INDENT_2 | orjson.OPT_NON_STR_KEYS


def json_text(value: Any, limit: int = MAX_VALUE_CHARS) -> str:
    """A value as indented JSON (strings as they are), cut at ``limit`` characters."""
    if isinstance(value, str):
        text = value
    else:
        try:
            text = orjson.dumps(value, default=repr, option=_INDENT).decode()
        except (orjson.JSONEncodeError, TypeError):
            text = dumps(value).decode()
    if len(text) > limit:
        text = text[:limit] + f"\n… ({len(text) - limit:,} more characters)"
    return literal(text)


class Inspector(VerticalScroll):
    """Shows the selected node or iteration; follows its events as they arrive."""

    DEFAULT_CSS = """
    Inspector { padding: 0 1; }
    Inspector > Static { width: 1fr; }
    """

    def __init__(self, model: RunModel, *, id: str | None = None) -> None:
        super().__init__(id=id)
        self.model = model
        self.selection = Selection()
        self._shown: tuple[Any, ...] = ()
        self._pending: Timer | None = None
        self._body = Static(Text("Select a node or an iteration.", style="dim"))

    def compose(self):
        yield self._body

    def select(self, selection: Selection) -> None:
        if selection != self.selection:
            self.selection = selection
            self.scroll_home(animate=False)
        self._show()

    def on_mount(self) -> None:
        self.app.theme_changed_signal.subscribe(self, self._theme_changed)

    def update_from(self, changes: Changes) -> None:
        """Follow the selection's events, at most a few times a second (re-layout is costly)."""
        node_id = self.selection.node_id
        touched = node_id is not None and (node_id in changes.nodes or node_id in changes.items)
        if touched and self._pending is None:
            self._pending = self.set_timer(REFRESH_EVERY, self._deferred)

    def _deferred(self) -> None:
        self._pending = None
        self._show()

    def show_now(self) -> None:
        """Show the selection as it is now, not a moment later (the user moved the cursor)."""
        if self._pending is not None:
            self._pending.stop()
        self._deferred()

    def _theme_changed(self, _theme: object) -> None:
        self._shown = ()
        self._show()

    def _key(self) -> tuple[Any, ...]:
        """What the rendered content depends on, to skip needless re-renders."""
        sel = self.selection
        state = self._state()
        if state is None:
            return (sel, None)
        if sel.index is not None and state.items is not None and 0 <= sel.index < state.items.count:
            items = state.items
            return (sel, state.path, items.start_seq[sel.index], items.end_seq[sel.index],
                    items.attempts[sel.index], items.status[sel.index])
        items = state.items
        return (sel, state.path, state.start_seq, state.end_seq,
                (items.count, items.done, items.failed, items.running) if items else None)

    def _show(self) -> None:
        key = self._key()
        if key == self._shown:
            return
        self._shown = key
        body = self._body
        height = body.size.height
        body.update(self.build(), layout=False)
        width = body.size.width
        if not width or body.get_content_height(self.size, self.size, width) != height:
            body.refresh(layout=True)  # a layout of the whole screen: only when the height changed

    def _state(self) -> Any:
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
        sel = self.selection
        if sel.node_id is None:
            return Text("Select a node or an iteration.", style="dim")
        state = self._state()
        ir_node = self._ir_node(state)
        if state is None:
            parts: list[RenderableType] = [
                self._title(sel.node_id, str(ir_node.get("type", "?")), "pending", None, None)]
            if ir_node.get("params"):
                parts += [self._heading("params"), self._params(ir_node.get("params") or {}, None)]
            return Group(*parts)
        if sel.index is not None and state.items is not None:
            return self._item(state, sel.index, ir_node)
        return self._node(state, ir_node)

    # --- sections ---------------------------------------------------------------------------

    def _title(self, path: str, node_type: str, status: str, duration: float | None,
               attempts: int | None) -> Text:
        code = STATUS_CODES.get(status, ERROR)
        title = Text.assemble((f"{SYMBOLS[code]} ", status_style(self.app, code)),
                              (literal(path), "bold"), "  ", (node_type, "italic"))
        facts = [status]
        if duration is not None:
            facts.append(format_duration(duration))
        if attempts and attempts > 1:
            facts.append(f"{attempts} attempts")
        title.append("\n" + " · ".join(facts), style=status_style(self.app, code))
        return title

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
                cell.append(json_text(resolved[key], 2000))
            elif has_template:
                cell.append("resolved per iteration" if per_item else "not resolved yet",
                            style=f"italic {muted}")
            else:
                cell.append(json_text(source, 2000))
            table.add_row(Text(literal(str(key))), cell)
        return table

    def _value(self, value: Any) -> RenderableType:
        text = json_text(value)
        if isinstance(value, (dict, list)):
            dark = getattr(self.app.current_theme, "dark", True)
            return Syntax(text, "json", theme="ansi_dark" if dark else "ansi_light",
                          word_wrap=True, background_color="default")
        return Text(text)

    def _error(self, error: dict[str, Any]) -> list[RenderableType]:
        err = theme_color(self.app, "error")
        parts: list[RenderableType] = [
            self._heading("error"),
            Text.assemble((literal(str(error.get("type", "Error"))) + ": ", f"bold {err}"),
                          (literal(str(error.get("message", ""))), err))]
        tb = error.get("traceback")
        if tb:
            dark = getattr(self.app.current_theme, "dark", True)
            parts.append(Syntax(literal(str(tb)), "pytb", theme="ansi_dark" if dark else "ansi_light",
                                word_wrap=True, background_color="default"))
        return parts

    def _failure(self, end: dict[str, Any]) -> list[RenderableType]:
        """The error of a failed end event, or the one a Python node's exec_fallback recovered from."""
        if isinstance(end.get("error"), dict):
            return self._error(end["error"])
        if isinstance(end.get("fallback"), dict):
            return [Text("\nexec failed; exec_fallback gave the result", style="dim"),
                    *self._error(end["fallback"])]
        return []

    def _node(self, state: Any, ir_node: dict[str, Any]) -> RenderableType:
        model = self.model
        start = model.event(state.start_seq) or {}
        end = model.event(state.end_seq) or {}
        parts: list[RenderableType] = [self._title(
            state.path, state.type, state.status_name, state.duration(model.t), end.get("attempts"))]
        if state.items is not None:
            items = state.items
            b = state.batch or {}
            parts.append(Text(
                f"batch: {items.count:,} items · {items.done:,} ok · {items.failed:,} failed · "
                f"{items.running:,} running · "
                + (("parallel, no limit" if not b.get("max_concurrent") else
                    f"parallel, max_concurrent {b.get('max_concurrent')}") if b.get("parallel")
                   else "sequential")
                + f" · {b.get('error_handling', 'fail_fast')}"))
        parts += [self._heading("params"),
                  self._params(ir_node.get("params") or {}, start.get("params"),
                               per_item=state.items is not None)]
        if end.get("action") and end.get("action") != "default":
            parts.append(Text(f"\naction: {literal(str(end['action']))}"))
        if "outputs" in end:
            parts += [self._heading("outputs"), self._value(end["outputs"])]
        parts += self._failure(end)
        if state.items is not None and state.items.failures:
            shown = state.items.failures[:10]
            parts.append(self._heading(f"failed iterations ({len(state.items.failures):,})"))
            for i in shown:
                ev_end = model.iteration_event(state, i) or {}
                msg = (ev_end.get("error") or {}).get("message", "")
                parts.append(Text.assemble((f"  #{i} ", "bold"), literal(str(msg).splitlines()[0][:200]
                                                                          if msg else "")))
            parts.append(Text("  n / N: next / previous failure", style="dim"))
        return Group(*parts)

    def _item(self, state: Any, index: int, ir_node: dict[str, Any]) -> RenderableType:
        model = self.model
        items = state.items
        if not 0 <= index < items.count:
            return Text(f"{state.path} has no iteration {index}", style="dim")
        start = model.iteration_event(state, index, end=False) or {}
        end = model.iteration_event(state, index) or {}
        waiting = not end and start and items.status[index] == PENDING  # for a limit or a process
        status = end.get("status") or ("pending" if waiting or not start else "running")
        duration = None
        if start:
            duration = (end["t"] if end else model.t) - start["t"]
        queued = start["t"] - state.t_start if start else None
        parts: list[RenderableType] = [self._title(
            f"{state.path}.iteration_{index}", state.type, status, duration, end.get("attempts"))]
        wait = model.event(items.waits[0][index]) if items.waits is not None else None
        if wait is not None and queued is not None:  # waited before its first attempt
            ready = model.event(items.waits[1][index]) if items.waits[1][index] else None  # type: ignore[index]
            waited = (ready["t"] if ready else end.get("t", model.t)) - wait["t"]
            on = ("a process" if wait.get("on") == "processes"
                  else f"rate limit '{literal(str(wait.get('key', '')))}'")
            parts.append(Text(f"queued {format_duration(queued + waited)} before it started "
                              f"({format_duration(waited)} waiting for {on}: "
                              f"{literal(str(wait.get('limit', '')))})", style="dim"))
        elif queued is not None:
            parts.append(Text(f"queued {format_duration(queued)} before it started", style="dim"))
        if start:
            parts += [self._heading("item"), self._value(start.get("item"))]
        resolved = {**(model.event(state.start_seq) or {}).get("params", {}), **start.get("params", {})}
        parts += [self._heading("params"), self._params(ir_node.get("params") or {}, resolved or None)]
        if "outputs" in end:
            parts += [self._heading("outputs"), self._value(end["outputs"])]
        parts += self._failure(end)
        return Group(*parts)
