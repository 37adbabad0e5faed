"""The help screen: keys, symbols and what each pane shows."""

from __future__ import annotations

from typing import ClassVar

from rich.markdown import Markdown
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Static

HELP = """\
# pflow-tui

A debugger for pflow workflows. The run fills the panes live; its trace is saved as it goes.

**`escape`, `q` or `?` closes this help.**

## Panes
- **DAG**: the flow as a graph; each box shows status, type, batch progress and duration.
- **Namespaces**: workflow → node → iteration pages → iteration → output keys.
- **Timeline**: one row per iteration on a shared time axis; dim = queued, colour = running or done,
  amber = failed attempts before a retry. `z` switches between all rows and the aggregate view;
  `w` groups the rows by the cluster worker that ran them (a heading per worker).
- **Inspector**: failures first (error, attempts, stderr, traceback), then item, params
  (template → resolved value) and outputs. The run itself (`up` above the first node): inputs,
  declared outputs, the final store.
- **Events**: the event stream. Filter with `kind:item.end status:error path:square node:square
  label:delta` and free text (item labels included).

## Keys
| key | action |
|---|---|
| `tab` / `shift+tab` | next / previous pane |
| arrows, `enter`, mouse | select a node or an iteration |
| `n` / `N` | next / previous failure |
| `escape` | from an iteration back to its node; restore a maximised pane |
| `1`–`5` | show / hide DAG, namespaces, timeline, inspector, events (the rest take the room) |
| `m` | maximise the focused pane (`m` or `escape` restores) |
| `[` / `]` | narrower / wider left column |
| `/` | filter the event log, from any pane (`enter` or `escape`: back to the events) |
| `enter` / `backspace` (DAG) | open a nested flow's graph / back to the flow around it |
| `p` | pause (running items finish, nothing new starts) / continue |
| `.` / `>` | live: let one node or one batch item start / run to the next node |
| `b` / `x` | breakpoint on the selected node / break on any failure |
| `s` | stop the run (the trace is kept); asks first |
| `r` / `R` | run again / re-run from failure (restore what ended ok); ask first while running |
| `e` | fork the selected item: run it alone with params you edit |
| `z` / `w` | timeline: all rows or the aggregate view / rows grouped by cluster worker |
| `L` | inspector: load the selection's large values (stored beside the trace), not their preview |
| `.` `,` `>` `<` `}` `{` `f` `F` `g` `G` | replay: step by event, node, item, failure; start, end |
| `ctrl+p` | command palette: actions, go to a node, an iteration or an item by its label |
| `ctrl+s` | save an SVG screenshot in `.pflow-tui/screenshots/` |
| `?` | this help |
| `q` / `ctrl+q` | quit (`q` asks first while the run is going; it ends as interrupted) |

## Symbols
`·` pending  `◐` running  `✓` ok  `✗` failed  `⊘` cancelled  `↻3` three attempts  `●` breakpoint

Item breakpoints (palette, "Break on an item…"): `index 3`, `match TEXT`, `error REGEX`,
`slower 0.5`, `slower p95`.
"""


class HelpScreen(ModalScreen[None]):
    """Keys and legend; any of escape, q or ? closes it.

    Opaque: a see-through modal composites the run screen under it on every frame, which
    during a run doubles the cost of each repaint (and of opening the help).
    """

    BINDINGS: ClassVar[list[BindingType]] = [Binding("escape,q,question_mark", "dismiss", "Close")]
    DEFAULT_CSS = """
    HelpScreen { align: center middle; background: $background; }
    HelpScreen > VerticalScroll { width: 90; max-width: 95%; height: 90%; border: round $primary;
                                  background: $surface; padding: 0 1; }
    """

    def compose(self) -> ComposeResult:
        with VerticalScroll() as scroll:
            scroll.border_title = "Help"
            scroll.border_subtitle = "escape · q · ? close"
            yield Static(Markdown(HELP))  # one renderable: opens at once, even mid-run
