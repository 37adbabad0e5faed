"""The replay cursor: where in the recorded run the panes are, on one line you can click."""

from __future__ import annotations

from rich.text import Text
from textual import events
from textual.message import Message
from textual.widget import Widget

from ...engine.paths import format_duration
from ...engine.trace.reader import TraceIndex
from ..model import RunModel
from ..styles import theme_color


class Scrubber(Widget):
    """``event 1,234 / 56,789  ━━━━━●──────  0.52s / 1.7s``; a click moves the cursor there."""

    DEFAULT_CSS = "Scrubber { height: 1; background: $panel; padding: 0 1; }"

    class Moved(Message):
        """The user clicked the bar: go to event ``cursor`` (a count of events)."""

        def __init__(self, cursor: int) -> None:
            super().__init__()
            self.cursor = cursor

    def __init__(self, model: RunModel, index: TraceIndex, *, id: str | None = None) -> None:
        super().__init__(id=id)
        self.model = model
        self.index = index
        self._bar = (0, 0)  # x and width of the bar, for clicks

    def render(self) -> Text:
        total = len(self.index)
        at = len(self.model.events)
        left = f"event {at:,} / {total:,}  "
        end_t = self.index.event(total - 1)["t"] if total else 0.0
        right = f"  {format_duration(self.model.t)} / {format_duration(end_t)}"
        if self.index.truncated:
            right += "  (trace cut short)"
        elif self.index.status == "interrupted":
            right += "  (run interrupted)"
        width = max(self.size.width - len(left) - len(right), 10)
        self._bar = (len(left), width)
        pos = round(at / total * (width - 1)) if total else 0
        accent = theme_color(self.app, "accent")
        muted = theme_color(self.app, "foreground-muted")
        return Text.assemble(left, ("━" * pos, accent), ("●", f"bold {accent}"),
                             ("─" * (width - pos - 1), muted), right)

    def on_click(self, event: events.Click) -> None:
        x, width = self._bar
        if width and x <= event.x < x + width:
            share = (event.x - x) / max(width - 1, 1)
            self.post_message(self.Moved(round(share * len(self.index))))
