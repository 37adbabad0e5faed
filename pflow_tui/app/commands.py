"""Command palette: go to a node or an iteration (failures first, or by its label)."""

from __future__ import annotations

import re
from collections.abc import Iterator
from functools import partial
from time import perf_counter
from typing import cast

from textual.command import DiscoveryHit, Hit, Hits, Provider
from textual.content import Content

from .contracts import Debugger
from .messages import Selection
from .model import RunModel

_ITERATION = re.compile(r"^(?:[\w-]+\.)?([\w-]+)\.iteration_(\d+)$")
MAX_FAILURE_HITS = 50
MAX_LABEL_HITS = 50  # items found by their label, per search
LABEL_BUDGET = 0.15  # seconds of reading labels per search (a huge batch: its first items)


class GoToProvider(Provider):
    """Offers every node and failed iteration; typing ``node.iteration_6`` goes there."""

    @property
    def debugger(self) -> Debugger:
        return cast(Debugger, self.app)  # (the palette is DebuggerApp's, which is a Debugger)

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
        for node_id, index, label, spans in labelled(app.model, query):
            text = f"go to {node_id}.iteration_{index}  "
            shown = Content(text + label)  # (a label is data: never markup)
            for a, b in spans:
                shown = shown.stylize("bold underline", len(text) + a, len(text) + b)
            score = 0.9 * max(matcher.match(text + label), 0.5)  # (below an exact path)
            yield Hit(score, shown, partial(app.select, Selection(node_id, index)), text=text + label,
                      help="item label")


def labelled(model: RunModel, query: str) -> Iterator[tuple[str, int, str, list[tuple[int, int]]]]:
    """Items of the top graph's batches whose label holds every word of ``query`` (any case):
    (node id, index, label, where the words are in it); at most :data:`MAX_LABEL_HITS`, in
    run order, reading labels for at most :data:`LABEL_BUDGET` seconds."""
    words = query.lower().split()
    if not words:
        return
    found = 0
    deadline = perf_counter() + LABEL_BUDGET
    for node_id, state in model.latest.items():
        items = state.items
        if items is None:
            continue
        for index in range(items.count):
            if not items.start_seq[index]:
                continue
            label = model.item_label(state, index)
            low = label.lower()
            if all(w in low for w in words):
                spans = sorted((low.find(w), low.find(w) + len(w)) for w in words)
                yield node_id, index, label, spans
                found += 1
                if found >= MAX_LABEL_HITS:
                    return
            if index % 256 == 0 and perf_counter() > deadline:
                return
