"""The key bar at the bottom of every screen: the keys that work here, in one line.

Textual's ``Footer`` mounts a widget per key and mounts them all again whenever the
bindings change, which is on every change of focus or screen: 20–50 ms at 140 columns,
paid by the key that moved the focus (``1``, ``m``, ``/``, closing the help). This bar is
one widget that draws the same line as text, so a change of bindings costs one repaint.
A click on a key presses it, as in the ``Footer``.
"""

from __future__ import annotations

from typing import ClassVar, NamedTuple

from rich.style import Style
from rich.text import Text
from textual import events
from textual.screen import Screen
from textual.widget import Widget


class _Key(NamedTuple):
    """One key shown: where it is in the line, and what a click on it does."""

    start: int
    end: int
    key: str
    enabled: bool


class KeyBar(Widget):
    """The keys of the focused widget, its screen and the app, as the ``Footer`` lists them
    (one per action, in binding order, the command palette's at the right end)."""

    ALLOW_SELECT = False
    COMPONENT_CLASSES: ClassVar[set[str]] = {"key-bar--key", "key-bar--description"}
    DEFAULT_CSS = """
    KeyBar {
        dock: bottom;
        height: 1;
        color: $footer-foreground;
        background: $footer-background;
        text-wrap: nowrap;
        text-overflow: clip;
        .key-bar--key {
            color: $footer-key-foreground;
            background: $footer-key-background;
            text-style: bold;
        }
        .key-bar--description {
            color: $footer-description-foreground;
            background: $footer-description-background;
        }
    }
    """

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__(id=id)
        self._keys: list[_Key] = []

    def on_mount(self) -> None:
        self.screen.bindings_updated_signal.subscribe(self, self._bindings_changed)

    def on_unmount(self) -> None:
        self.screen.bindings_updated_signal.unsubscribe(self)

    def _bindings_changed(self, screen: Screen) -> None:
        self.refresh()

    def render(self) -> Text:
        key_style = self.get_component_rich_style("key-bar--key", partial=True)
        text_style = self.get_component_rich_style("key-bar--description", partial=True)
        dim = Style(dim=True)
        palette_key = self.app.COMMAND_PALETTE_BINDING if self.app.ENABLE_COMMAND_PALETTE else None
        line = Text(no_wrap=True, overflow="crop", end="")
        keys: list[_Key] = []
        palette: tuple[str, str, str, bool] | None = None
        shown: set[str] = set()
        for key, active in self.screen.active_bindings.items():
            binding = active.binding
            if key == palette_key:
                palette = (key, self.app.get_key_display(binding), binding.description, active.enabled)
                continue
            if not binding.show or binding.action in shown:
                continue
            shown.add(binding.action)
            start = line.cell_len
            extra = Style() if active.enabled else dim
            line.append(f" {self.app.get_key_display(binding)} ", key_style + extra)
            line.append(f"{binding.description} ", text_style + extra)
            keys.append(_Key(start, line.cell_len, key, active.enabled))
        if palette is not None:
            key, display, description, enabled = palette
            tail = Text.assemble((f" {display} ", key_style), (f"{description} ", text_style))
            gap = self.size.width - line.cell_len - tail.cell_len
            if gap >= 1:  # at the right end, when there is room for it
                line.append(" " * gap)
                keys.append(_Key(line.cell_len, line.cell_len + tail.cell_len, key, enabled))
                line.append_text(tail)
        self._keys = keys
        return line

    def on_click(self, event: events.Click) -> None:
        hit = next((k for k in self._keys if k.start <= event.x < k.end), None)
        if hit is None:
            return
        if hit.enabled:
            self.app.simulate_key(hit.key)
        else:
            self.app.bell()
