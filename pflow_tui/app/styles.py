"""How statuses look: one symbol and one theme colour each, shared by every pane."""

from __future__ import annotations

from functools import lru_cache

from rich.style import Style
from textual.app import App
from textual.color import Color, ColorParseError

from .status import CANCELLED, ERROR, OK, PENDING, RUNNING, SKIPPED

SYMBOLS = {PENDING: "·", RUNNING: "◐", OK: "✓", ERROR: "✗", CANCELLED: "⊘", SKIPPED: "–"}
# the theme variable that colours each status
THEME_VARS = {PENDING: "foreground-muted", RUNNING: "primary-lighten-2", OK: "success",
              ERROR: "error", CANCELLED: "accent", SKIPPED: "foreground-muted"}
QUEUED_VAR = "foreground-muted"
RETRY_VAR = "warning"


LABEL_VAR = "foreground-darken-1"  # the colour of an item's label (``#3 delta bad``)


def theme_color(app: App, var: str) -> str:
    """A theme variable as an opaque ``#rrggbb`` (alpha blended onto the background)."""
    variables = app.theme_variables
    return _opaque(variables.get(var, variables.get("foreground", "#e0e0e0")),
                   variables.get("background", "#000000"))


@lru_cache(maxsize=256)
def _opaque(value: str, background: str) -> str:
    try:
        color = Color.parse(value)
        if color.a < 1:
            color = Color.parse(background) + color
    except ColorParseError:  # values such as "auto 60%" are not plain colours
        return "#808080"
    return color.hex6


def status_style(app: App, code: int, *, bold: bool = False) -> Style:
    """The Rich style of a status code in the current theme."""
    return Style(color=theme_color(app, THEME_VARS.get(code, "foreground")), bold=bold)
