"""The event log's filter, without Textual: a text parsed into terms, and the indexes of the
events that match them.

Filter grammar (space-separated terms, all must match; ``"..."`` quotes a value):

- ``kind:item.end`` -- the kind starts with the value (``kind:item`` = every item event);
- ``status:error`` -- the event's ``status`` starts with the value;
- ``path:square`` -- the path contains the value (case-insensitive);
- ``node:square`` -- the path's node segment is the value (``node:review`` matches every
  visit, ``node:review#2`` only the second);
- ``label:delta`` -- the event is in a batch item whose label contains the value
  (case-insensitive): its start, attempts, end and what runs inside it;
- any other word -- case-insensitive substring of the event's JSON text or of the label of
  the item it is in.
"""

from __future__ import annotations

import re
from array import array
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from itertools import compress
from typing import Any

from ..engine.problems import did_you_mean
from ..engine.trace import events as ev
from ..engine.trace.events import Event
from ..engine.trace.writer import dumps

_TOKEN = re.compile(r'(?:(\w+):)?(?:"([^"]*)"?|(\S*))')


@dataclass(frozen=True, slots=True)
class EventFilter:
    """A parsed filter; :meth:`scan` appends the indexes of matching events."""

    kinds: tuple[str, ...] = ()
    statuses: tuple[str, ...] = ()
    paths: tuple[str, ...] = ()
    nodes: tuple[str, ...] = ()
    words: tuple[str, ...] = ()
    labels: tuple[str, ...] = ()

    @classmethod
    def parse(cls, text: str) -> EventFilter:
        terms: dict[str, list[str]] = {"kind": [], "status": [], "path": [], "node": [], "words": [],
                                       "label": []}
        for m in _TOKEN.finditer(text):
            key, quoted, bare = m.group(1), m.group(2), m.group(3)
            value = quoted if quoted is not None else bare
            if key is not None and key.lower() in terms and key.lower() != "words":
                if value:
                    terms[key.lower()].append(value if key.lower() == "node" else value.lower())
            else:
                word = m.group(0) if key is not None else value
                if word:
                    terms["words"].append(word.lower())
        return cls(tuple(terms["kind"]), tuple(terms["status"]), tuple(terms["path"]),
                   tuple(terms["node"]), tuple(terms["words"]), tuple(terms["label"]))

    def __bool__(self) -> bool:
        return bool(self.kinds or self.statuses or self.paths or self.nodes or self.words or self.labels)

    def matcher(self, labels_at: Callable[[str], list[str]] | None = None) -> Callable[[Event], bool] | None:
        """One predicate for every term (cheap terms first), or None to match everything.

        ``labels_at(path)``: the labels of the items an event's path is in (the view
        model's); without it ``label:`` terms match nothing and words only the JSON text.
        """
        checks: list[Callable[[Event], bool]] = []
        for k in self.kinds:
            checks.append(lambda e, k=k: e["kind"].startswith(k))
        for s in self.statuses:
            checks.append(lambda e, s=s: (v := e.get("status")).__class__ is str and v.startswith(s))
        for n in self.nodes:
            checks.append(_node_check(n))
        for p in self.paths:
            checks.append(lambda e, p=p: (v := e.get("path")).__class__ is str and p in v.lower())
        if self.labels:
            checks.append(_label_check(self.labels, labels_at))
        if self.words:
            checks.append(_text_check(self.words, labels_at))
        if not checks:
            return None
        if len(checks) == 1:
            return checks[0]

        def match(e: Event) -> bool:
            for check in checks:  # noqa: SIM110 (faster than all() over a generator)
                if not check(e):
                    return False
            return True

        return match

    def scan(self, events: Sequence[Event], start: int, stop: int, out: array,
             matcher: Callable[[Event], bool] | None = None) -> None:
        """Append to ``out`` the indexes in ``[start, stop)`` of the events that match."""
        match = matcher or self.matcher()
        if match is None:
            out.extend(range(start, stop))
        else:
            out.extend(compress(range(start, stop), map(match, events[start:stop])))


def _text_check(words: tuple[str, ...],
                labels_at: Callable[[str], list[str]] | None) -> Callable[[Event], bool]:
    """Whether every word (lower case) is in the event's JSON text (only while a text search
    is active) or, with ``labels_at``, in the labels of the items the event is in."""
    if all(w.isascii() for w in words):  # bytes.lower() is enough, and faster
        needles: tuple[Any, ...] = tuple(w.encode() for w in words)

        def lowered(e: Event) -> Any:
            return dumps(e).lower()
    else:
        needles = words

        def lowered(e: Event) -> Any:
            return dumps(e).decode("utf-8", "replace").lower()

    if labels_at is None:

        def text(e: Event) -> bool:
            s = lowered(e)
            return all(w in s for w in needles)

        return text

    def text_or_label(e: Event) -> bool:
        s = lowered(e)
        absent = [w for w, n in zip(words, needles, strict=True) if n not in s]
        return not absent or _labels_hold(e, absent, labels_at)

    return text_or_label


def _label_check(values: tuple[str, ...],
                 labels_at: Callable[[str], list[str]] | None) -> Callable[[Event], bool]:
    """Whether an event is in an item whose label contains every value (lower case)."""
    if labels_at is None:
        return lambda e: False
    return lambda e: _labels_hold(e, values, labels_at)


def _labels_hold(e: Event, words: Sequence[str], labels_at: Callable[[str], list[str]]) -> bool:
    """Whether an event is in an item whose labels contain every word (lower case)."""
    path = e.get("path")
    if path.__class__ is not str or ".iteration_" not in path:
        return False
    names = "\n".join(labels_at(path)).lower()
    return bool(names) and all(w in names for w in words)


def _node_check(node: str) -> Callable[[Event], bool]:
    """Whether an event's path is in ``node`` (``node#2``: that visit only; else every visit)."""
    size = len(node)
    ends = "." if "#" in node else ".#"

    def check(e: Event) -> bool:
        path = e.get("path")
        if path.__class__ is not str:
            return False
        i = path.find(".") + 1
        if not i or not path.startswith(node, i):
            return False
        j = i + size
        return j == len(path) or path[j] in ends

    return check


def unknown_kinds(flt: EventFilter) -> str:
    """What is wrong with the filter's ``kind:`` terms (no event kind starts with one), with
    a did-you-mean; empty when every term names a kind."""
    bad = [k for k in flt.kinds if not any(kind.startswith(k) for kind in ev.KINDS)]
    return "  ".join(f"unknown kind {k!r}: {did_you_mean(k, ev.KINDS, 'kinds')}" for k in bad)
