"""Short labels for batch items: ``delta bad`` beside ``#3``, so an item is found by value.

:func:`item_label` derives one from the item's JSON value: a string is itself, a number or
a boolean its JSON text, an object the text (else the number) of its first sensible key
(:data:`KEYS`) else its compact JSON, a list its compact JSON. :func:`one_line` makes any text a label:
one line, control characters made visible, at most :data:`WIDTH` characters (cut with
``…``). A flow may give ``batch.label``, a template rendered per item (see
:class:`LabelTemplate`); a label that fails to render falls back to the derived one.

Both run once per item on the batch hot path, so the common items (short strings,
numbers) take a fast path; a big item is cut before it is looked at.
"""

from __future__ import annotations

import re
from typing import Any

import orjson

from ...text import literal
from ..ir.templates import Scope, Template, compile_value

WIDTH = 32  # characters of a label at most
KEYS = ("name", "title", "label", "id", "key", "path", "file", "filename", "file_path", "url",
        "text", "message", "query", "prompt")
"""The keys whose value names an object item, in order of preference (text before numbers)."""
_PATHS = frozenset(("path", "file", "filename", "file_path"))  # cut at the start: the end names it

# line breaks, tabs and direction overrides that would disturb a one-line row (``literal``
# makes the other control characters visible)
_UNSAFE = re.compile(r"[\n\t\u2028\u2029\u200e\u200f\u202a-\u202e\u2066-\u2069]")
# what needs more than a cut: control characters (C0, DEL, C1) and the characters above
_ODD = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029\u200e\u200f\u202a-\u202e\u2066-\u2069]")


def one_line(text: str, width: int = WIDTH, *, tail: bool = False) -> str:
    """``text`` as a label: outer blanks dropped, one line, control characters visible
    (``\\n``, ``\\x1b``, ``\\u2028`` ...), at most ``width`` characters, cut with ``…`` at
    the end (at the start with ``tail``: a path's end names it). A text that is empty or
    blank is shown as its JSON (``""``, ``"  "``)."""
    width = max(width, 1)
    keep = 4 * width + 8  # (escapes may grow it; a long text is cut first)
    text = text[-keep:] if tail else text[:keep]
    text = text.strip() or orjson.dumps(text).decode()  # (blanks include NEL and U+2028)
    if _ODD.search(text):
        text = _UNSAFE.sub(lambda m: repr(m.group())[1:-1], literal(text))
    if len(text) <= width:
        return text
    return "…" + text[len(text) - width + 1:] if tail else text[: width - 1] + "…"


def item_label(item: Any, width: int = WIDTH) -> str:
    """A short label derived from an item's value; never raises."""
    cls = item.__class__
    if cls is str:
        # the common case; (printable: no control, format, line-break or odd space characters)
        if item and len(item) <= width and item.isprintable() and item[0] != " " != item[-1]:
            return item
        return one_line(item, width)
    if cls is int:
        if -10 ** 15 < item < 10 ** 15 and width >= 16:
            return str(item)  # the other common case
        text = str(item) if -10 ** 30 < item < 10 ** 30 else repr(item)[: width + 1]
        return text if len(text) <= width else text[: width - 1] + "…"
    try:
        if isinstance(item, dict):
            number = None
            for key in KEYS:
                value = item.get(key)
                if value.__class__ is str and value and len(value) <= width and value.isprintable() \
                        and value[0] != " " != value[-1]:
                    return value  # (as a string item's fast path)
                if isinstance(value, str) and value.strip():
                    return one_line(value, width, tail=key in _PATHS)
                if number is None and isinstance(value, (int, float)) and value.__class__ is not bool:
                    number = value  # ({"id": 3, "text": ...}: the text says more)
            if number is not None:
                return one_line(_compact(number, width), width)
        return one_line(_compact(item, width), width)
    except Exception:  # an odd object (a Python program's item): its repr will do
        try:
            return one_line(repr(item)[: 4 * width], width)
        except Exception:
            return one_line(f"<{cls.__name__}>", width)


def _compact(value: Any, width: int) -> str:
    """Compact JSON of ``value``, stopped soon after ``width`` characters (a big item is
    never written out whole)."""
    out: list[str] = []
    _write(value, out, width + 1)
    return "".join(out)


def _write(value: Any, out: list[str], budget: int) -> int:
    """Append ``value``'s JSON to ``out`` until ``budget`` characters are spent; what is left."""
    if budget <= 0:
        return budget
    if isinstance(value, str):
        text = orjson.dumps(value[:budget]).decode()
    elif value is None or isinstance(value, (bool, float)):
        text = orjson.dumps(value).decode()  # (NaN and infinities: null, as in the trace)
    elif isinstance(value, int):
        text = str(value) if -10 ** 30 < value < 10 ** 30 else repr(value)[:budget]
    elif isinstance(value, dict):
        out.append("{")
        budget -= 1
        for n, (key, v) in enumerate(value.items()):
            if budget <= 0:
                break
            if n:
                out.append(",")
                budget -= 1
            budget = _write(key if isinstance(key, str) else str(key), out, budget)
            out.append(":")
            budget = _write(v, out, budget - 1)
        out.append("}")
        return budget - 1
    elif isinstance(value, (list, tuple)):
        out.append("[")
        budget -= 1
        for n, v in enumerate(value):
            if budget <= 0:
                break
            if n:
                out.append(",")
                budget -= 1
            budget = _write(v, out, budget)
        out.append("]")
        return budget - 1
    else:
        text = repr(value)[:budget]
    out.append(text)
    return budget - len(text)


class LabelTemplate:
    """A batch's ``label`` template, rendered per item with the item's template scope.

    The rendered value is made a label like an item (a whole-value template that gives
    an object is labelled as that object); a value that cannot be rendered (a missing
    key, anything raised) gives the item's derived label instead.
    """

    __slots__ = ("template",)

    def __init__(self, source: str) -> None:
        self.template: Template = compile_value(source)

    def render(self, scope: Scope, item: Any) -> str:
        """The label of the item whose scope is ``scope``."""
        try:
            value = self.template.resolve(scope)
        except Exception:
            return item_label(item)
        if value is None:
            return item_label(item)
        return item_label(value)
