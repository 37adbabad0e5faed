"""JSON types and JSON paths: the leaf helpers every part of the IR uses.

``json_type`` names a value's JSON type, ``is_json_type`` checks one, ``key_path`` writes
a JSON path step, ``too_deep`` finds values nested past :data:`MAX_DEPTH`, and
``type_fix`` says how to write a value of the expected type. Nothing here imports
another module of the IR.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

import orjson

from ..problems import clip

#: A plain name: a template path segment (``${node.key}``), a key a JSON path writes bare.
SEGMENT_RE = re.compile(r"[A-Za-z_][\w-]*")
MAX_DEPTH = 100  # objects/arrays nested deeper than this are rejected (the engine walks them recursively)

#: "a" or "an" before a JSON type name.
ARTICLE = {"string": "a", "integer": "an", "number": "a", "boolean": "a", "object": "an", "array": "an"}


def value_text(value: Any) -> str:
    """A value quoted in a message: its JSON, cut to a few words."""
    return clip(orjson.dumps(value, option=orjson.OPT_NON_STR_KEYS).decode(), 40)


JSON_TYPES: dict[str, tuple[type, ...]] = {
    "string": (str,),
    "array": (list,),
    "object": (dict,),
    "boolean": (bool,),
    "integer": (int,),
    "number": (int, float),
    "any": (object,),
}


_NUMBERS = ("integer", "number")  # bool is an int in Python, not a number in JSON
NON_NUMBER_TYPES = frozenset({"string", "array", "object"})  # no bool among their values


def json_type(value: Any) -> str:
    """The JSON name of a Python value's type."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int):
        return "integer"
    if isinstance(value, float):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "array"
    if isinstance(value, dict):
        return "object"
    return type(value).__name__


def is_json_type(value: Any, expected: str) -> bool:
    """Whether ``value`` matches ``expected`` (``"string|array"`` style alternatives allowed)."""
    types = JSON_TYPES.get(expected)
    if types is not None:  # one name (most checks): no split
        return isinstance(value, types) and not (value.__class__ is bool and expected in _NUMBERS)
    for name in expected.split("|"):
        if name in ("integer", "number") and isinstance(value, bool):
            continue
        if isinstance(value, JSON_TYPES[name]):
            return True
    return False


_PLAIN_KEYS: dict[str, bool] = {}  # key -> whether it is a plain name (the same keys recur)


def key_path(prefix: str, key: str) -> str:
    """``prefix.key``, or ``prefix["odd key"]`` for a key that is not a plain name."""
    plain = _PLAIN_KEYS.get(key)
    if plain is None:
        plain = bool(SEGMENT_RE.fullmatch(key))
        if len(_PLAIN_KEYS) < 10_000:
            _PLAIN_KEYS[key] = plain
    if plain:
        return f"{prefix}.{key}" if prefix else key
    return f"{prefix}[{orjson.dumps(key).decode()}]"


#: How to write a value of each JSON type, for "expected X, got Y" fixes.
_TYPE_EXAMPLES = {
    "string": 'a "string" in double quotes',
    "array": "an array [...]",
    "object": "an object {...}",
    "boolean": "true or false (no quotes)",
    "integer": "a whole number like 3 (no quotes)",
    "number": "a number like 2.5 (no quotes)",
}
#: Key-specific examples, for the keys people get wrong most.
_KEY_EXAMPLES = {
    "nodes": 'write "nodes" as an array of objects: [{"id": "a", "type": "shell", "params": {...}}]',
    "edges": 'write "edges" as an array: [{"from": "a", "to": "b"}]',
    "params": 'write "params" as an object: {"command": "echo hi"}',
    "batch": 'write "batch" as an object: {"items": "${node.list_key}"}',
    "inputs": 'write "inputs" as an object: {"name": {"type": "string", "required": true}}',
    "outputs": 'write "outputs" as an object: {"name": {"source": "${node.key}"}}',
    "items": 'write "items" as one template "${node.list_key}", an array [...] or '
             '{"jsonl_file": "rows.jsonl"} (see docs/batches.md)',
    "label": 'write "label" as one text with templates, e.g. "${item.name}" (see docs/compatibility.md)',
}


def type_fix(key: str, expected: str, value: Any) -> str:
    """How to turn ``value`` into the ``expected`` JSON type."""
    kinds = expected.split("|")
    if key == "items":  # "3" would not be a list of items either
        return _KEY_EXAMPLES[key]
    if "string" in kinds and isinstance(value, (int, float)):  # also bool
        return f'put the value in double quotes: "{orjson.dumps(value).decode()}"'
    if isinstance(value, str):
        try:
            parsed = orjson.loads(value)
        except orjson.JSONDecodeError:
            parsed = None
        if parsed is not None and any(is_json_type(parsed, k) for k in kinds):
            return f"remove the quotes: {value.strip()}"
    if key in _KEY_EXAMPLES:
        return _KEY_EXAMPLES[key]
    return f'write "{key}" as ' + " or ".join(_TYPE_EXAMPLES.get(k, k) for k in kinds)


def iter_strings(value: Any, path: str) -> Iterator[tuple[str, str]]:
    """Every string inside a JSON value with its JSON path (iterative: any depth is safe)."""
    stack: list[tuple[Any, str]] = [(value, path)]
    while stack:
        v, where = stack.pop()
        if isinstance(v, str):
            yield where, v
        elif isinstance(v, dict):
            stack.extend((c, key_path(where, k)) for k, c in reversed(list(v.items())))
        elif isinstance(v, list):
            stack.extend((c, f"{where}[{i}]") for i, c in reversed(list(enumerate(v))))


def too_deep(value: Any, path: str, limit: int = MAX_DEPTH) -> Iterator[str]:
    """Paths (cut to their first few steps) of the values nested deeper than ``limit``."""
    if _depth_within(value, limit):  # the usual case: no path strings to build
        return
    stack: list[tuple[Any, str, int]] = [(value, path, 0)]
    reported: set[str] = set()
    while stack:
        v, where, depth = stack.pop()
        if not isinstance(v, (dict, list)):
            continue
        if depth >= limit:
            head = _path_head(where)
            if head not in reported:
                reported.add(head)
                yield head
            continue
        if isinstance(v, dict):
            stack.extend((c, key_path(where, k), depth + 1) for k, c in v.items())
        else:
            stack.extend((c, f"{where}[{i}]", depth + 1) for i, c in enumerate(v))


def _depth_within(value: Any, limit: int) -> bool:
    """Whether no container in ``value`` is nested ``limit`` or more levels deep."""
    level = [value] if isinstance(value, (dict, list)) else []
    containers = (dict, list)
    for _ in range(limit):
        below: list[Any] = []
        append = below.append
        for v in level:
            for c in (v.values() if isinstance(v, dict) else v):
                if isinstance(c, containers):
                    append(c)
        if not below:
            return True
        level = below
    return not level


def _path_head(path: str, steps: int = 4) -> str:
    """The first ``steps`` steps of a JSON path: ``nodes[0].params.x[0][0]`` -> ``nodes[0].params.x``."""
    parts = re.findall(r'\[(?:"(?:[^"\\]|\\.)*"|\d+)\]|\.?[^.\[]+', path)[:steps]
    while len(parts) > 2 and re.fullmatch(r"\[\d+\]", parts[-1]):  # mappings.m[0][0] -> mappings.m
        parts.pop()
    return "".join(parts).lstrip(".") or "(top level)"
