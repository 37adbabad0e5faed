"""Errors that are the user's to fix: what went wrong, where, and how to fix it."""

from __future__ import annotations

import difflib
import re
from collections.abc import Iterable
from dataclasses import dataclass

CLIP = 80  # characters of an id or a value quoted in a message
_WORD_LIMIT = 160  # a run of characters without a space longer than this is cut (safety net)
_FIELD_LIMIT = 2000  # and a whole field of a problem longer than this
_LONG_WORD = re.compile(rf"\S{{{_WORD_LIMIT + 1},}}")


def clip(text: str, size: int = CLIP) -> str:
    """``text`` cut to ``size`` characters, with ``…`` where it was cut."""
    return text if len(text) <= size else text[: size - 1] + "…"


def _short(text: str) -> str:
    """A message field that fits on a few lines: long words and long fields cut."""
    if len(text) <= _WORD_LIMIT:
        return text
    text = _LONG_WORD.sub(lambda m: clip(m.group(0), _WORD_LIMIT), text)
    if len(text) <= _FIELD_LIMIT:
        return text
    half = _FIELD_LIMIT // 2  # the start and the end of a long list (a loop's nodes) say most
    return f"{text[:half]} … ({len(text) - 2 * half} characters) … {text[-half:]}"


@dataclass(frozen=True, slots=True)
class Problem:
    """One finding about a flow file.

    ``where`` is a JSON path such as ``nodes[2].batch.items`` (or ``line 3, column 7``
    for syntax errors); ``fix`` says what to do about it.
    """

    where: str
    what: str
    fix: str = ""
    severity: str = "error"  # "error" | "warning"

    def __post_init__(self) -> None:  # a 1 MB id in a message prints a few lines, not 12,500
        for name in ("where", "what", "fix"):
            value = getattr(self, name)
            if isinstance(value, str) and len(value) > _WORD_LIMIT:
                object.__setattr__(self, name, _short(value))

    def __str__(self) -> str:
        text = f"{self.where}: {self.what}"
        return f"{text}\n    fix: {self.fix}" if self.fix else text


@dataclass(frozen=True, slots=True)
class Rewrite:
    """One change the normalisation of a flow made: where (a JSON path) and what happened.

    ``alias`` is False for pflow's own normalisation (renamed keys, defaults added), True
    for the analysis's aliases (see :mod:`pflow_tui.engine.ir.aliases`).
    """

    where: str
    note: str
    alias: bool = True

    def __str__(self) -> str:
        return f"{self.where}: {self.note}"


class FlowError(Exception):
    """A flow (or its inputs) cannot run; carries every problem found, not only the first."""

    def __init__(self, source: str, problems: Iterable[Problem]) -> None:
        self.source = source
        self.problems = [p for p in problems if p.severity == "error"]
        self.warnings = [p for p in problems if p.severity != "error"]
        super().__init__(self.render())

    def render(self) -> str:
        n = len(self.problems)
        head = f"{self.source}: {n} problem{'s' if n != 1 else ''}"
        return "\n".join([head, *(f"  {p}" for p in self.problems)])


def did_you_mean(word: str, choices: Iterable[str], what: str = "") -> str:
    """A 'did you mean ...?' hint, or a list of what is allowed when nothing is close."""
    options = sorted(set(choices))
    close = difflib.get_close_matches(word, options, n=1, cutoff=0.6)
    if close:
        return f"did you mean '{clip(close[0])}'?"
    if not options:
        return ""
    shown = ", ".join(clip(o, 40) for o in options[:12]) + (", ..." if len(options) > 12 else "")
    return f"{what or 'expected one of'}: {shown}"
