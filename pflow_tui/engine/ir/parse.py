"""JSON text -> a flow document: syntax errors with a caret under the column, keys
written twice, files that are not UTF-8."""

from __future__ import annotations

import json
import re
import unicodedata
from typing import Any

import orjson

from ..problems import FlowError, Problem, clip
from .jsontypes import key_path


def parse_json(text: bytes | str, source: str) -> Any:
    """Parse JSON text; a syntax error becomes a FlowError with line and column."""
    if isinstance(text, (bytes, bytearray)):
        try:
            text.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise FlowError(source, [_not_utf8(bytes(text), exc)]) from None
    try:
        doc = orjson.loads(text)
    except orjson.JSONDecodeError as exc:
        where = f"line {exc.lineno}, column {exc.colno}"
        lines = exc.doc.splitlines() if exc.doc else []
        line = lines[exc.lineno - 1] if 0 < exc.lineno <= len(lines) else ""
        what = f"invalid JSON: {exc.msg}{source_excerpt(line, exc.lineno, exc.colno)}"
        raise FlowError(source, [Problem(where, what, _json_fix(exc.msg))]) from None
    duplicates = [] if _no_duplicates_fast(text, doc) else duplicate_keys(text)
    if duplicates:
        raise FlowError(source, [Problem(where, f"duplicate key '{clip(key)}' (JSON keeps only the "
                                         "last of them, silently)",
                                         f"remove one of the \"{clip(key)}\" keys, or rename it")
                                 for where, key in duplicates])
    return doc


#: characters of a long line shown around the column of a syntax error (with the line number
#: and the cut marks it fits 80 columns)
EXCERPT_WIDTH = 66
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


def source_excerpt(line: str, lineno: int, column: int, width: int = EXCERPT_WIDTH) -> str:
    """The line of a syntax error with a caret under ``column`` (1-based, in characters), as
    lines to append to a message: ``\n      3 | {"a" 1}\n        |      ^``. A line longer
    than ``width`` is cut around the column (``…`` marks a cut); a tab or a control character
    shows as one space or ``·``, so the caret stays under its character. Empty for a blank line."""
    if not line.strip():
        return ""
    col = min(max(column, 1), len(line) + 1) - 1  # 0-based; the caret may sit just past the end
    start, end = 0, len(line)
    if len(line) > width:
        start = max(0, min(col - width // 2, len(line) - width))
        end = start + width
    shown = _CONTROL.sub(lambda m: " " if m[0] == "\t" else "·", line[start:end])
    head, tail = ("…" if start else ""), ("…" if end < len(line) else "")
    offset = sum(2 if unicodedata.east_asian_width(c) in "WF" else 1  # CJK: two columns
                 for c in head + shown[: col - start])
    number = str(lineno)
    return (f"\n      {number} | {head}{shown}{tail}"
            f"\n      {' ' * len(number)} | {' ' * offset}^")


_SPACED_COLON = re.compile(rb'"[ \t\r\n]+:')


def _no_duplicates_fast(text: bytes | str, doc: Any) -> bool:
    """Whether ``text`` surely has no key twice in one object, in a few milliseconds for 10,000
    nodes (else :func:`duplicate_keys` looks closely).

    Each key in the file is a ``"`` followed by ``:``; strings may hold ``":`` too (JSON
    inside a string). The parsed document written back compactly holds the same strings,
    but only the keys JSON kept: the same count of ``":`` means none was dropped. Files
    where a key and its colon are apart, or that escape characters as ``\\u``, are
    looked at closely.
    """
    raw = text.encode("utf-8", "surrogatepass") if isinstance(text, str) else bytes(text)
    if b"\\u" in raw or _SPACED_COLON.search(raw):
        return False
    try:
        again = orjson.dumps(doc)
    except orjson.JSONEncodeError:
        return False
    return raw.count(b'":') == again.count(b'":')


class _Pairs(dict):  # type: ignore[type-arg]
    """An object of a document read by :func:`duplicate_keys` that has a key twice."""

    duplicates: list[str]
    pairs: list[tuple[str, Any]]  # every pair as written: the values JSON drops are looked at too


def _no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    d = dict(pairs)
    if len(d) == len(pairs):
        return d
    seen: set[str] = set()
    out = _Pairs(d)
    out.duplicates = [k for k, _ in pairs if k in seen or seen.add(k)]  # type: ignore[func-returns-value]
    out.pairs = pairs
    return out


def duplicate_keys(text: bytes | str) -> list[tuple[str, str]]:
    """(JSON path of the object, key) of every key written twice in one object of ``text``
    (valid JSON). orjson keeps the last silently; ``json`` with a hook sees every pair, at
    about the cost of the orjson parse (see bench/bench_validate.py)."""
    found: list[bool] = []

    def hook(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
        d = _no_duplicates(pairs)
        if d.__class__ is _Pairs:
            found.append(True)
        return d

    try:
        doc = json.loads(text, object_pairs_hook=hook)
    except (ValueError, RecursionError):  # orjson read it: json may differ at the edges (depth)
        return []
    if not found:
        return []
    out: list[tuple[str, str]] = []
    stack: list[tuple[Any, str]] = [(doc, "")]
    while stack:
        v, where = stack.pop()
        if isinstance(v, dict):
            items = list(v.items())
            if isinstance(v, _Pairs):
                out.extend((where or "(top level)", k) for k in dict.fromkeys(v.duplicates))
                items = v.pairs
            stack.extend((c, key_path(where, k)) for k, c in reversed(items))
        elif isinstance(v, list):
            stack.extend((c, f"{where}[{i}]") for i, c in reversed(list(enumerate(v))))
    return out


#: orjson's message (a part of it) -> how to fix it.
_JSON_FIXES: tuple[tuple[str, str], ...] = (
    ("empty document", 'the file is empty: a flow looks like {"nodes": [{"id": "a", "type": "shell", '
                       '"params": {"command": "echo hi"}}]}'),
    ("byte order mark", "save the file as UTF-8 without a byte order mark (BOM)"),
    ("trailing comma", "remove the comma before the closing bracket or brace"),
    ("expected a string key", "keys need double quotes (\"key\"); JSON has no single quotes, "
                              "comments or trailing commas"),
    ("expected ',' or", "add the missing comma between the two values, or close the bracket"),
    ("expected ':'", "put a ':' between a key and its value"),
    ("expected a JSON value", "a value is a \"string\" in double quotes, a number, true, false, null, "
                              "an object or an array (no NaN, comments or single quotes)"),
    ("end of data", "the file ends too early: close every '{', '[' and '\"' "
                    "(was the file saved completely?)"),
    ("after document", "a flow file holds one JSON object: remove what follows it"),
    ("depth limit", "nest objects and arrays less than 1024 levels deep"),
    ("control character", "write a newline or tab inside a string as \\n or \\t"),
    ("escape", "write a backslash inside a string as \\\\"),
)


def _json_fix(msg: str) -> str:
    for needle, fix in _JSON_FIXES:
        if needle in msg:
            return fix
    return "check for a missing comma or quote, a trailing comma, or an unclosed bracket"


def _not_utf8(raw: bytes, exc: UnicodeDecodeError) -> Problem:
    start = raw.rfind(b"\n", 0, exc.start) + 1
    line = raw.count(b"\n", 0, exc.start) + 1
    column = len(raw[start : exc.start].decode("utf-8", "replace")) + 1
    end = raw.find(b"\n", exc.start)
    text = raw[start : end if end >= 0 else len(raw)].decode("utf-8", "replace")
    return Problem(f"line {line}, column {column}",
                   f"the file is not UTF-8 text (byte 0x{raw[exc.start]:02x})"
                   + source_excerpt(text, line, column),
                   "save the file as UTF-8 (your editor's encoding setting)")

