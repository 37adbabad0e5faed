"""Command palette: go to a node or an iteration (failures first)."""

from __future__ import annotations

import re
from functools import partial
from typing import TYPE_CHECKING

from textual.command import DiscoveryHit, Hit, Hits, Provider

from .messages import Selection

if TYPE_CHECKING:
    from .app import DebuggerApp

_ITERATION = re.compile(r"^(?:[\w-]+\.)?([\w-]+)\.iteration_(\d+)$")
MAX_FAILURE_HITS = 50


class GoToProvider(Provider):
    """Offers every node and failed iteration; typing ``node.iteration_6`` goes there."""

    @property
    def debugger(self) -> DebuggerApp:
        return self.app  # type: ignore[return-value]

    def _targets(self) -> list[tuple[str, str, Selection]]:
        app = self.debugger
        model = app.model
        out = [(f"go to {node_id}", f"{model.node_status(node_id)} · {model.graph.node_type(node_id)}",
                Selection(node_id)) for node_id in model.graph.nodes]
        for node_id, index in model.failures()[:MAX_FAILURE_HITS]:
            if index is not None:
                out.append((f"go to {node_id}.iteration_{index}", "failed iteration",
                            Selection(node_id, index)))
        return out

    async def discover(self) -> Hits:
        for text, help_text, selection in self._targets():
            yield DiscoveryHit(text, partial(self.debugger.select, selection), help=help_text)

    async def search(self, query: str) -> Hits:
        app = self.debugger
        m = _ITERATION.match(query.strip())
        if m and m.group(1) in app.model.graph.nodes:
            selection = Selection(m.group(1), int(m.group(2)))
            yield Hit(1.0, f"go to {m.group(1)}.iteration_{m.group(2)}",
                      partial(app.select, selection), help="iteration")
        matcher = self.matcher(query)
        for text, help_text, selection in self._targets():
            score = matcher.match(text)
            if score > 0:
                yield Hit(score, matcher.highlight(text), partial(app.select, selection), help=help_text)
