"""Loading, normalising and validating pflow IR 0.1.0 flow files.

``load_flow(path)`` returns a :class:`FlowSpec` or raises :class:`FlowError` listing every
problem in the file (JSON path, what was expected, how to fix it). Nothing runs before
validation has passed.
"""

from __future__ import annotations

import contextlib
import gc
import re
import unicodedata
from collections.abc import Callable, Collection, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson

from .groups import GraphEdge, Group, find_groups
from .items import SOURCE_KEYS
from .nodes.base import PROCESS, THREAD, NodeType, can_run_in_process
from .problems import FlowError, Problem, Rewrite, clip, did_you_mean
from .reach import default_loop, reachable, upstream_among
from .run.aggregates import AGGREGATE, STATS
from .templates import SEGMENT_RE, Ref, TemplateSyntaxError, parse_text

IR_VERSION = "0.1.0"
IR_MAJOR = IR_VERSION.split(".")[0]  # flows of another major version are refused
ID_RE = re.compile(r"^[A-Za-z_][\w-]*$")
VERSION_RE = re.compile(r"\d+\.\d+\.\d+")
MAX_DEPTH = 100  # objects/arrays nested deeper than this are rejected (the engine walks them recursively)
INPUT_TYPES = ("string", "number", "integer", "boolean", "object", "array")

# Key -> (JSON type name(s), required). "any" accepts everything.
TOP_KEYS: dict[str, tuple[str, bool]] = {
    # the JSON Schema an editor checks the file with (`pflow-tui schema`): accepted, ignored
    "$schema": ("string", False),
    "ir_version": ("string", True),
    "nodes": ("array", True),
    "edges": ("array", False),
    "start_node": ("string", False),
    "mappings": ("object", False),
    "inputs": ("object", False),
    "outputs": ("object", False),
    "enable_namespacing": ("boolean", False),
    "template_resolution_mode": ("string", False),
    # pflow-tui extensions (documented in docs/compatibility.md)
    "name": ("string", False),
    "description": ("string", False),
    "max_visits": ("integer", False),
    "parallel_groups": ("object", False),
    "rate_limits": ("object", False),
}
NODE_KEYS = {
    "id": ("string", True),
    "type": ("string", True),
    "purpose": ("string", False),
    "params": ("object", False),
    "batch": ("object", False),
    "executor": ("string", False),
}
EXECUTORS = (PROCESS, THREAD)  # what a node may ask for; without the key, its type decides
RATE_LIMIT_KEY = "rate_limit_key"  # a param every node type accepts (the engine takes it)
LIMIT_KEYS = {"max_concurrent": ("integer", False), "per_second": ("number", False),
              "per_minute": ("number", False)}  # one entry of rate_limits (rates: whole numbers)
EDGE_KEYS = {
    "from": ("string", True),
    "to": ("string", True),
    "action": ("string", False),
    "parallel_group": ("string", False),
}
GROUP_KEYS = {
    "error_handling": ("string", False),
    "max_concurrent": ("integer", False),
}
BATCH_KEYS = {
    "items": ("string|array|object", True),
    "as": ("string", False),
    "error_handling": ("string", False),
    "parallel": ("boolean", False),
    "max_concurrent": ("integer", False),
    "max_retries": ("integer", False),
    "retry_wait": ("number", False),
    # items held in memory at once (docs/batches.md; batch_config.batch_size too)
    "batch_size": ("integer", False),
    # a template for each item's label in the app and the trace (docs/batches.md)
    "label": ("string", False),
}
INPUT_KEYS = {
    "description": ("string", False),
    "required": ("boolean", False),
    "type": ("string", False),
    "default": ("any", False),
    "stdin": ("boolean", False),
    # pflow-tui: the value is never recorded (docs/security.md)
    "secret": ("boolean", False),
}
OUTPUT_KEYS = {
    "description": ("string", False),
    "source": ("string", False),
    "type": ("string", False),
}

#: A node type's declared param type (nodes.base.Param.type) -> the JSON type it takes.
PARAM_TYPES = {"str": "string", "text": "string", "int": "integer", "float": "number", "bool": "boolean",
               "dict": "object", "list": "array"}
_A = {"string": "a", "integer": "an", "number": "a", "boolean": "a", "object": "an", "array": "an"}


def _value_text(value: Any) -> str:
    """A value quoted in a message: its JSON, cut to a few words."""
    return clip(orjson.dumps(value, option=orjson.OPT_NON_STR_KEYS).decode(), 40)


_JSON_TYPES: dict[str, tuple[type, ...]] = {
    "string": (str,),
    "array": (list,),
    "object": (dict,),
    "boolean": (bool,),
    "integer": (int,),
    "number": (int, float),
    "any": (object,),
}


_NUMBERS = ("integer", "number")  # bool is an int in Python, not a number in JSON
_ONE_NOT_NUMBER = frozenset({"string", "array", "object"})  # no bool among their values


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
    types = _JSON_TYPES.get(expected)
    if types is not None:  # one name (most checks): no split
        return isinstance(value, types) and not (value.__class__ is bool and expected in _NUMBERS)
    for name in expected.split("|"):
        if name in ("integer", "number") and isinstance(value, bool):
            continue
        if isinstance(value, _JSON_TYPES[name]):
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


_clip = clip


# --- the validated model ---------------------------------------------------------------------

@dataclass(frozen=True, slots=True)
class BatchSpec:
    """A node's ``batch`` config, with pflow's defaults applied."""

    items: Any
    alias: str = "item"
    error_handling: str = "fail_fast"
    parallel: bool = False
    max_concurrent: int = 10
    max_retries: int = 1  # total attempts per item
    retry_wait: float = 0.0
    batch_size: int | None = None  # items in memory at once; results spill to a file
    label: str | None = None  # a template for each item's label (pflow-tui's)


@dataclass(frozen=True, slots=True)
class NodeSpec:
    id: str
    type: str
    params: dict[str, Any]  # without rate_limit_key
    batch: BatchSpec | None = None
    purpose: str = ""
    executor: str | None = None  # "process" | "thread" | None: where its node type says
    rate_limit_key: str | None = None


@dataclass(frozen=True, slots=True)
class EdgeSpec:
    src: str
    dst: str
    action: str = "default"
    group: str | None = None  # parallel_group


@dataclass(frozen=True, slots=True)
class InputSpec:
    name: str
    type: str | None = None
    required: bool = True
    default: Any = None
    has_default: bool = False
    description: str = ""
    stdin: bool = False
    secret: bool = False  # redacted wherever the run records it (see redact.py)


@dataclass(frozen=True, slots=True)
class OutputSpec:
    name: str
    source: str | None = None
    description: str = ""


@dataclass(frozen=True, repr=False)
class FlowSpec:
    """A validated flow, ready to compile."""

    name: str
    nodes: dict[str, NodeSpec]
    edges: list[EdgeSpec]
    start: str
    inputs: dict[str, InputSpec]
    outputs: dict[str, OutputSpec]
    ir: dict[str, Any]
    source: str = "<flow>"
    base_dir: Path = field(default_factory=Path.cwd)
    strict_templates: bool = True
    namespacing: bool = True
    max_visits: int = 100
    warnings: list[Problem] = field(default_factory=list)
    groups: list[Group] = field(default_factory=list)  # parallel groups (task parallelism)
    children: dict[str, FlowSpec] = field(default_factory=dict)  # workflow node id -> its flow
    rewrites: list[Rewrite] = field(default_factory=list)  # what normalisation changed (aliases...)
    rate_limits: dict[str, dict[str, int]] = field(default_factory=dict)  # key -> its limits

    def __repr__(self) -> str:  # short: asyncio and anyio repr the coroutines that carry it
        return f"<FlowSpec {self.name!r} from {self.source}: {len(self.nodes)} nodes>"

    def successors(self, node_id: str) -> list[EdgeSpec]:
        return [e for e in self.edges if e.src == node_id]


# --- loading -----------------------------------------------------------------------------------

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
    import json

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


@dataclass(frozen=True, slots=True)
class Normalized:
    """A flow document as it will be validated and run, what was rewritten to get there,
    and the problems found on the way (aliases that contradict each other)."""

    doc: Any
    rewrites: list[Rewrite]
    problems: list[Problem]


def normalize_ir(doc: Any) -> Normalized:
    """pflow's pre-step (unwrap a saved envelope, default ir_version/edges, parameters ->
    params, source/target -> from/to), then the analysis's aliases (``batch_mode``,
    ``execution_mode``, ``batch_config``, ``fail_safe``; see :mod:`.aliases`).

    The given document is not changed; a document that is no object is returned as is.
    """
    notes: list[Rewrite] = []
    problems: list[Problem] = []
    if isinstance(doc, dict) and "nodes" not in doc and isinstance(doc.get("ir"), dict):
        ir = dict(doc["ir"])
        if isinstance(doc.get("name"), str):
            ir.setdefault("name", doc["name"])
        if isinstance(doc.get("description"), str):
            ir.setdefault("description", doc["description"])
        notes.append(Rewrite("ir", "a saved workflow: its \"ir\" is the flow (paths below are inside it)",
                             alias=False))
        doc = ir
    if not isinstance(doc, dict):
        return Normalized(doc, notes, problems)
    doc = dict(doc)
    for key, default in (("ir_version", IR_VERSION), ("edges", [])):
        if key not in doc:
            doc[key] = default
            notes.append(Rewrite(key, f"{orjson.dumps(default).decode()} added (the default)", alias=False))
    if isinstance(doc.get("nodes"), list):
        nodes = []
        for i, node in enumerate(doc["nodes"]):
            if isinstance(node, dict) and "parameters" in node and "params" not in node:
                node = {("params" if k == "parameters" else k): v for k, v in node.items()}
                notes.append(Rewrite(f"nodes[{i}].parameters", 'renamed "params"', alias=False))
            nodes.append(node)
        doc["nodes"] = nodes
    if isinstance(doc.get("edges"), list):
        edges = []
        for i, e in enumerate(doc["edges"]):
            if isinstance(e, dict) and ("source" in e or "target" in e):
                renamed = {"source": "from", "target": "to"}
                e = {renamed.get(k, k): v for k, v in e.items()}
                notes.append(Rewrite(f"edges[{i}]", "source/target renamed from/to", alias=False))
            edges.append(e)
        doc["edges"] = edges
    from .aliases import AliasRewriter  # it uses this module's helpers

    AliasRewriter(doc, notes, problems).run()
    return Normalized(doc, notes, problems)


def normalize(doc: Any) -> Any:
    """The normalised document (see :func:`normalize_ir`)."""
    return normalize_ir(doc).doc


def explain(doc: Any) -> Normalized:
    """:func:`normalize_ir`, with inline child flows (``workflow_ir``) normalised too, as
    they will run; their rewrites' paths start at the node that holds them."""
    normalized = normalize_ir(doc)
    nodes = normalized.doc.get("nodes") if isinstance(normalized.doc, dict) else None
    for i, node in enumerate(nodes if isinstance(nodes, list) else []):
        params = node.get("params") if isinstance(node, dict) else None
        if isinstance(params, dict) and node.get("type") == "workflow" \
                and isinstance(params.get("workflow_ir"), dict):
            child = explain(params["workflow_ir"])
            nodes[i] = {**node, "params": {**params, "workflow_ir": child.doc}}
            prefix = f"nodes[{i}].params.workflow_ir"
            normalized.rewrites.extend(Rewrite(f"{prefix}.{r.where}", r.note, r.alias)
                                       for r in child.rewrites)
    return normalized


def read_doc(path: str | Path) -> Any:
    """A flow file's JSON document (FlowError: the file cannot be read or is not JSON)."""
    from .trace.filecheck import FileRefused, read_limited

    if not Path(path).exists():
        raise FlowError(str(path), [Problem(str(path), "file not found",
                                            "check the path (relative to the current directory)")])
    try:  # a regular file below the flow size limit: never /dev/zero, a FIFO, a folder
        raw = read_limited(path, "flow")
    except FileRefused as exc:
        what = str(exc).removeprefix(f"{path}: ")
        raise FlowError(str(path), [Problem(str(path), what)]) from None
    return parse_json(raw, str(path))


def load_flow(path: str | Path, registry: Mapping[str, NodeType] | None = None, *,
              _chain: tuple[str, ...] = ()) -> FlowSpec:
    """Read, normalise and validate a flow file (and the files its nested flows use)."""
    p = Path(path)
    with paused_gc():
        doc = read_doc(p)
        return build_flow(doc, source=str(path), base_dir=p.resolve().parent, default_name=p.stem,
                          registry=registry, _chain=(*_chain, str(p.resolve())))


@contextlib.contextmanager
def paused_gc() -> Iterator[None]:
    """The cyclic garbage collector off for a while: reading and checking a big flow makes
    many small dicts and lists, which the collector would rescan again and again (the
    documents hold no cycles; reference counting frees them)."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


def build_flow(doc: Any, *, source: str = "<flow>", base_dir: Path | None = None,
               default_name: str = "flow",
               registry: Mapping[str, NodeType] | None = None,
               _chain: tuple[str, ...] = ()) -> FlowSpec:
    """Normalise and validate a flow given as a parsed JSON document.

    Nested flows (``workflow`` nodes) are loaded and validated too; their problems are
    reported at the parent node, naming the child and the place in it.
    """
    with paused_gc():
        return _build_flow(doc, source, base_dir, default_name, registry, _chain)


def _build_flow(doc: Any, source: str, base_dir: Path | None, default_name: str,
                registry: Mapping[str, NodeType] | None, _chain: tuple[str, ...]) -> FlowSpec:
    if registry is None:
        from .registry import registry as default_registry

        registry = default_registry()
    normalized = normalize_ir(doc)
    doc = normalized.doc
    problems = normalized.problems + Validator(doc, registry).run()
    errors = [p for p in problems if p.severity == "error"]
    if errors:
        raise FlowError(source, problems)
    base = base_dir or Path.cwd()
    children, child_problems = _load_children(doc, source, base, registry, _chain or (source,))
    if child_problems:
        raise FlowError(source, child_problems)
    spec = _to_spec(doc, source, base, default_name, problems)
    spec.children.update(children)
    spec.rewrites.extend(normalized.rewrites)
    found = rate_limit_problems(spec, registry, top=len(_chain) <= 1)
    if len(_chain) <= 1 and any((n.executor or registry[n.type].executor) == PROCESS
                                for _, _, n in _limited_nodes(spec)):
        from .run.pool import pool_problem  # only flows that use the process pool need it set right

        bad = pool_problem()
        if bad is not None:
            found.append(bad)
    if any(p.severity == "error" for p in found):
        raise FlowError(source, [*problems, *found])
    spec.warnings.extend(found)
    return spec


def _limited_nodes(spec: FlowSpec, at: tuple[int, ...] = ()
                   ) -> Iterator[tuple[FlowSpec, tuple[int, ...], NodeSpec]]:
    """Every node of a flow and its nested flows that a rate limit may apply to, with where
    it is: the node indexes from the top flow down (see :func:`_nodes_at`)."""
    for i, node in enumerate(spec.nodes.values()):
        if node.type == "workflow":
            if node.id in spec.children:
                yield from _limited_nodes(spec.children[node.id], (*at, i))
        else:
            yield spec, (*at, i), node


def _nodes_at(at: tuple[int, ...]) -> str:
    """``nodes[2]``, or ``nodes[0] > nodes[1]`` inside the nested flow of nodes[0]."""
    return " > ".join(f"nodes[{i}]" for i in at)


def rate_limit_problems(spec: FlowSpec, registry: Mapping[str, NodeType], *,
                        top: bool) -> list[Problem]:
    """``rate_limits`` keys that limit nothing in this flow or the flows it nests (an error
    when the key is not even a node type: a typo), and, for the top flow, nodes whose
    ``rate_limit_key`` has no limit anywhere above them (a warning)."""
    problems: list[Problem] = []
    used = {n.rate_limit_key or n.type for _, _, n in _limited_nodes(spec)} if spec.rate_limits else set()
    for key in spec.rate_limits:
        if key in used:
            continue
        where = key_path("rate_limits", key)
        if key in registry:
            problems.append(Problem(where, f"no node of this flow uses the limit '{key}' (no '{key}' "
                                    "node without a rate_limit_key of its own)",
                                    "remove it if it is not needed here", "warning"))
        else:
            problems.append(Problem(where, f"'{key}' is neither a node type nor the rate_limit_key "
                                    "of a node here: it would limit nothing",
                                    did_you_mean(key, used, "keys in use") if used else
                                    'name a node type (e.g. "llm") or a node\'s "rate_limit_key"'))
    if top:
        seen: set[str] = set()
        for flow, where, node in _limited_nodes(spec):
            key = node.rate_limit_key
            if key is None or key in seen or key in _scope(spec, flow):
                continue
            seen.add(key)
            problems.append(Problem(f"{_nodes_at(where)}.params.{RATE_LIMIT_KEY}", f"no entry of rate_limits "
                                    f"is named '{key}': the calls of '{node.id}' are not limited",
                                    f'add "rate_limits": {{"{key}": {{"max_concurrent": 5}}}}',
                                    "warning"))
    return problems


def _scope(top: FlowSpec, flow: FlowSpec) -> set[str]:
    """The rate limit keys that apply inside ``flow``: its own and those of every flow above it."""
    def path_to(spec: FlowSpec) -> list[FlowSpec] | None:
        if spec is flow:
            return [spec]
        for child in spec.children.values():
            found = path_to(child)
            if found is not None:
                return [spec, *found]
        return None

    return {key for f in path_to(top) or [flow] for key in f.rate_limits}


_IN_CHILD = "in child flow "


def _load_children(doc: dict[str, Any], source: str, base_dir: Path,
                   registry: Mapping[str, NodeType], chain: tuple[str, ...]
                   ) -> tuple[dict[str, FlowSpec], list[Problem]]:
    from .nodes.workflow import MAX_DEPTH

    children: dict[str, FlowSpec] = {}
    problems: list[Problem] = []
    for i, node in enumerate(doc["nodes"]):
        if node.get("type") != "workflow":
            continue
        params = node.get("params") or {}
        where = f"nodes[{i}].params"
        given = [k for k in ("workflow_ir", "workflow_ref", "workflow_name") if k in params]
        if len(given) != 1:
            problems.append(Problem(where, f"workflow node '{node['id']}' needs exactly one of "
                                    f"workflow_ir or workflow_ref (has {', '.join(given) or 'neither'})",
                                    "give the child flow inline (workflow_ir) or as a file path "
                                    "(workflow_ref)"))
            continue
        key = given[0]
        if key == "workflow_name":
            problems.append(Problem(f"{where}.workflow_name", "saved workflows by name are not "
                                    "supported", "point workflow_ref at the flow's file instead"))
            continue
        if len(chain) > MAX_DEPTH:  # chain: this flow and the flows above it
            problems.append(Problem(f"{where}.{key}", f"flows nested more than {MAX_DEPTH} deep "
                                    f"(node '{node['id']}' would open level {len(chain)})",
                                    f"nest at most {MAX_DEPTH} flows: inline or merge some of them "
                                    "(a flow that includes itself, even through others, "
                                    "recurses forever)"))
            continue
        child_source = f"{source} > {node['id']}"
        try:
            if key == "workflow_ir":
                if not isinstance(params["workflow_ir"], dict):
                    problems.append(Problem(f"{where}.workflow_ir", "expected a flow object, got "
                                            f"{json_type(params['workflow_ir'])}",
                                            'inline a flow: {"nodes": [...], "edges": [...]}'))
                    continue
                children[node["id"]] = build_flow(params["workflow_ir"], source=child_source,
                                                  base_dir=base_dir, default_name=node["id"],
                                                  registry=registry, _chain=(*chain, child_source))
                problems += _mapping_problems(params.get("param_mapping"), children[node["id"]],
                                              f"{where}.param_mapping", node["id"])
            else:
                ref = params["workflow_ref"]
                if not isinstance(ref, str) or "${" in ref:
                    problems.append(Problem(f"{where}.workflow_ref", "expected a file path",
                                            "give the child flow's path, relative to this file"))
                    continue
                path = (base_dir / ref).resolve()
                if not path.is_file():
                    problems.append(Problem(f"{where}.workflow_ref", f"node '{node['id']}': child "
                                            f"flow file '{ref}' not found (looked for {path})",
                                            "workflow_ref is relative to the folder of the flow "
                                            f"that uses it ({base_dir}): check the path"))
                    continue
                if str(path) in chain:
                    trail = " > ".join(Path(c).name for c in (*chain, str(path)))
                    problems.append(Problem(f"{where}.workflow_ref", f"node '{node['id']}' includes "
                                            f"'{ref}' again: {trail} recurses forever",
                                            "break the cycle: a flow must not include itself, "
                                            "directly or through other flows"))
                    continue
                children[node["id"]] = load_flow(path, registry, _chain=chain)
            problems += _mapping_problems(params.get("param_mapping"), children[node["id"]],
                                          f"{where}.param_mapping", node["id"])
        except FlowError as exc:
            label = f"{_IN_CHILD}{exc.source if key == 'workflow_ir' else ref} (of node '{node['id']}')"
            for p in exc.problems:
                if p.what.startswith(_IN_CHILD):  # a grandchild's: one trail, not nested sentences
                    what = f"{label} > {p.what[len(_IN_CHILD):]}"
                else:
                    what = f"{label}: {p.where}: {p.what}"
                problems.append(Problem(f"{where}.{key}", what, p.fix))
    return children, problems


def _to_spec(doc: dict[str, Any], source: str, base_dir: Path, default_name: str,
             warnings: list[Problem]) -> FlowSpec:
    nodes: dict[str, NodeSpec] = {}
    for n in doc["nodes"]:
        b = n.get("batch")
        batch = None
        if b is not None:
            batch = BatchSpec(
                items=b["items"], alias=b.get("as", "item"),
                error_handling=b.get("error_handling", "fail_fast"),
                parallel=b.get("parallel", False), max_concurrent=b.get("max_concurrent", 10),
                max_retries=b.get("max_retries", 1), retry_wait=b.get("retry_wait", 0.0),
                batch_size=b.get("batch_size"), label=b.get("label"),
            )
        params = dict(n.get("params") or {})
        nodes[n["id"]] = NodeSpec(n["id"], n["type"], params, batch, n.get("purpose", ""),
                                  n.get("executor"), params.pop(RATE_LIMIT_KEY, None))
    edges = [EdgeSpec(e["from"], e["to"], e.get("action", "default"), e.get("parallel_group"))
             for e in doc["edges"]]
    groups = find_groups(graph_edges(doc["edges"]), doc.get("parallel_groups"))[0] \
        if has_groups(doc["edges"]) else []
    inputs = {
        name: InputSpec(name, d.get("type"), d.get("required", True), d.get("default"),
                        "default" in d, d.get("description", ""), d.get("stdin", False),
                        d.get("secret", False) is True)
        for name, d in (doc.get("inputs") or {}).items()
    }
    outputs = {
        name: OutputSpec(name, d.get("source"), d.get("description", ""))
        for name, d in (doc.get("outputs") or {}).items()
    }
    name = doc.get("name") or default_name
    name = re.sub(r"[^\w-]", "_", name) or "flow"
    return FlowSpec(
        name=name, nodes=nodes, edges=edges,
        start=doc.get("start_node") or doc["nodes"][0]["id"],
        inputs=inputs, outputs=outputs, ir=doc, source=source, base_dir=base_dir,
        strict_templates=doc.get("template_resolution_mode", "strict") == "strict",
        namespacing=doc.get("enable_namespacing", True),
        max_visits=doc.get("max_visits", 100), warnings=warnings, groups=groups,
        rate_limits={k: dict(v) for k, v in (doc.get("rate_limits") or {}).items()},
    )


def _mapping_problems(mapping: Any, child: FlowSpec, where: str, node_id: str) -> list[Problem]:
    """``param_mapping`` must name the child's inputs and give every required one."""
    if mapping is not None and not isinstance(mapping, dict):
        return [Problem(where, f"expected an object, got {json_type(mapping)}",
                        'map child inputs to values: {"child_input": "${parent_node.key}"}')]
    mapping = mapping or {}
    problems = [Problem(key_path(where, key), f"the child flow of '{node_id}' has no input '{key}'",
                        did_you_mean(key, child.inputs, "its inputs") if child.inputs
                        else "the child flow declares no inputs")
                for key in mapping if key not in child.inputs]
    missing = [n for n, i in child.inputs.items() if i.required and not i.has_default and n not in mapping]
    if missing:
        problems.append(Problem(where, f"the child flow of '{node_id}' needs input(s) "
                                f"{', '.join(missing)}", "map them in param_mapping"))
    return problems


def children_ir(spec: FlowSpec) -> dict[str, Any]:
    """The nested flows' IR, by workflow node id, recursively (kept in trace headers)."""
    return {nid: {"flow": child.ir, "children": children_ir(child)}
            for nid, child in spec.children.items()}


def has_groups(edges: Any) -> bool:
    """Whether any edge of an IR document names a parallel group."""
    return isinstance(edges, list) and any(isinstance(e, dict) and e.get("parallel_group") is not None
                                           for e in edges)


def graph_edges(edges: list[Any]) -> list[GraphEdge]:
    """The well-formed edges of an IR document, for the parallel-group analysis."""
    return [GraphEdge(e["from"], e["to"], e.get("action", "default"), e.get("parallel_group"),
                      f"edges[{i}]")
            for i, e in enumerate(edges)
            if isinstance(e, dict) and isinstance(e.get("from"), str) and isinstance(e.get("to"), str)
            and isinstance(e.get("action", "default"), str)
            and isinstance(e.get("parallel_group", ""), str)]


#: What people write for a statistic -> its name here.
_STAT_WORDS = {"avg": "mean", "average": "mean", "median": "p50", "total": "sum", "n": "count",
               "len": "count", "length": "count", "minimum": "min", "maximum": "max"}


# --- validation --------------------------------------------------------------------------------

#: What a batch node writes (pflow's batch outputs), with pflow's declared types.
BATCH_OUTPUT_TYPES = {"results": "array", "count": "number", "success_count": "number",
                      "error_count": "number", "errors": "array", "batch_metadata": "dict"}
#: Types pflow refuses unquoted in a shell command, and those that make a union safe.
_SHELL_BLOCKED = {"dict", "object", "list", "array"}
_SHELL_SAFE = {"str", "string", "any"}
#: ``'${x}'``: a template in single quotes, pflow's sign that its JSON text is wanted there.
_QUOTED_TEMPLATE = re.compile(r"'\$\{([^}]+)\}'")
_ITERATION_STEP = re.compile(r"iteration_\d+")
_BRANCH_STEP = re.compile(r"branch_\d+")

#: A template that is one plain reference, ``${node.key.key}``: parsed without the parser.
_PLAIN_REF = re.compile(r"\$\{([A-Za-z_][\w-]*(?:\.[A-Za-z_][\w-]*)*)\}")


class Validator:
    """Collects every problem in a normalised IR document."""

    def __init__(self, doc: Any, registry: Mapping[str, NodeType]) -> None:
        self.doc = doc
        self.registry = registry
        self.problems: list[Problem] = []
        self.groups: list[Group] = []  # the valid parallel groups (check_groups)
        self.nodes: dict[str, dict[str, Any]] = {}  # id -> node, for the aggregate checks
        self._refs: dict[str, tuple[Ref, ...] | Exception] = {}  # template text -> refs_of
        self._declared: dict[str, list[str]] = {}  # node type -> the output keys it declares
        self._param_names: dict[str, dict[str, None]] = {}  # node type -> its params' names
        self.namespacing = not (isinstance(doc, dict) and doc.get("enable_namespacing") is False)
        inputs = doc.get("inputs") if isinstance(doc, dict) else None
        self.input_types: dict[str, Any] = {  # input name -> declared type
            k: v.get("type") for k, v in inputs.items() if isinstance(v, dict)
        } if isinstance(inputs, dict) else {}

    def error(self, where: str, what: str, fix: str = "") -> None:
        self.problems.append(Problem(where, what, fix))

    def warn(self, where: str, what: str, fix: str = "") -> None:
        self.problems.append(Problem(where, what, fix, "warning"))

    def run(self) -> list[Problem]:
        doc = self.doc
        if not isinstance(doc, dict):
            self.error("(top level)", f"expected a JSON object, got {json_type(doc)}",
                       'a flow looks like {"nodes": [...], "edges": [...]}')
            return self.problems
        self.check_keys(doc, TOP_KEYS, "", "the flow")
        for where in too_deep(doc, ""):
            self.error(where, f"objects and arrays nested more than {MAX_DEPTH} levels deep",
                       "flatten the data, or read it from a file or a node's output at run time")
        if isinstance(doc.get("ir_version"), str) and not VERSION_RE.fullmatch(doc["ir_version"]):
            self.error("ir_version", f"{_clip(doc['ir_version'])!r} is not a version like 0.1.0",
                       f'use "ir_version": "{IR_VERSION}"')
        elif isinstance(doc.get("ir_version"), str) and doc["ir_version"].split(".")[0] != IR_MAJOR:
            self.error("ir_version", f"IR version {doc['ir_version']} is not one this pflow-tui reads "
                       f"(it reads {IR_MAJOR}.x: a new major version may change what a flow means)",
                       f'upgrade pflow-tui, or write the flow for IR {IR_VERSION}: "ir_version": '
                       f'"{IR_VERSION}"')
        mode = doc.get("template_resolution_mode")
        if isinstance(mode, str) and mode not in ("strict", "permissive"):
            self.error("template_resolution_mode", f"'{mode}' is not a mode",
                       did_you_mean(mode, ["strict", "permissive"]))
        mv = doc.get("max_visits")
        if isinstance(mv, int) and not isinstance(mv, bool) and mv < 1:
            self.error("max_visits", f"must be at least 1, got {mv}",
                       "leave it out (default 100) or set how often one node may run, e.g. 10")
        nodes = doc.get("nodes")
        if isinstance(nodes, list) and not nodes:
            self.error("nodes", "a flow needs at least one node", "add a node to 'nodes'")
        ids = self.check_nodes(nodes if isinstance(nodes, list) else [])
        self.check_rate_limits(doc.get("rate_limits"))
        inputs = self.check_inputs(doc.get("inputs"))
        edges = self.check_edges(doc.get("edges") if isinstance(doc.get("edges"), list) else [], ids)
        start = doc.get("start_node")
        if isinstance(start, str) and ids and start not in ids:
            self.error("start_node", f"no node has id '{clip(start)}'", did_you_mean(start, ids, "node ids"))
        if ids:
            first = start if isinstance(start, str) and start in ids else next(iter(ids))
            self.check_groups(doc, ids)
            self.check_graph(ids, edges, first)
            self.check_templates(nodes, ids, inputs, edges)
        self.check_outputs(doc.get("outputs"), ids, inputs)
        return self.problems

    def check_keys(self, obj: dict[str, Any], spec: Mapping[str, tuple[str, bool]], where: str,
                   what: str, unknown_fix: Callable[[str], str] | None = None) -> None:
        for key, (typ, required) in spec.items():
            if key not in obj:
                # a misspelt required key ("typ") is reported once, as an unknown key
                if required and not any(did_you_mean(k, [key]).startswith("did")
                                        for k in obj if k not in spec):
                    self.error(where or "(top level)", f"{what} is missing required key '{key}'",
                               f"add \"{key}\" ({typ.replace('|', ' or ')})")
            elif typ != "any" and not (  # (one type name, the usual case, without a call)
                    isinstance(obj[key], _JSON_TYPES[typ]) and obj[key].__class__ is not bool
                    if typ in _ONE_NOT_NUMBER else is_json_type(obj[key], typ)):
                self.error(key_path(where, key),
                           f"expected {typ.replace('|', ' or ')}, got {json_type(obj[key])}",
                           type_fix(key, typ, obj[key]))
        for key in obj:
            if key not in spec:
                fix = (unknown_fix(key) if unknown_fix else "") or did_you_mean(key, spec, "allowed keys")
                self.error(key_path(where, key), f"unknown key '{clip(key)}' in {what}", fix)

    def check_nodes(self, nodes: list[Any]) -> dict[str, int]:
        ids: dict[str, int] = {}
        for i, node in enumerate(nodes):
            where = f"nodes[{i}]"
            if not isinstance(node, dict):
                self.error(where, f"expected an object, got {json_type(node)}",
                           'a node looks like {"id": "x", "type": "shell", "params": {...}}')
                continue
            ntype = node.get("type")
            node_type = self.registry.get(ntype) if isinstance(ntype, str) else None
            self.check_keys(node, NODE_KEYS, where, "a node",
                            lambda key, t=node_type: (f'move "{key}" into "params": '
                                                      f'"params": {{"{key}": ...}}')
                            if t is not None and t.param(key) else "")
            nid = node.get("id")
            if isinstance(nid, str):
                if not ID_RE.match(nid):
                    self.error(f"{where}.id", f"'{clip(nid)}' is not a valid node id",
                               "use letters, digits, '_' and '-', starting with a letter or '_'")
                elif nid in ids:
                    self.error(f"{where}.id", f"duplicate node id '{clip(nid)}' (also nodes[{ids[nid]}])",
                               "give every node a unique id")
                else:
                    ids[nid] = i
                    self.nodes[nid] = node
            if isinstance(ntype, str):
                if node_type is None:
                    from .registry import plugin_errors

                    broken = plugin_errors().get(ntype)
                    if broken:
                        self.error(f"{where}.type", f"node type '{clip(ntype)}' comes from a plugin "
                                   f"that failed to load ({broken})",
                                   "fix or reinstall the package that provides it")
                    elif ntype.startswith("mcp-"):
                        from .nodes.mcp import config_path

                        self.error(f"{where}.type", f"unknown node type '{clip(ntype)}': no MCP server "
                                   f"of {config_path()} fits it (mcp-<server>-<tool>)",
                                   'add the server under "mcpServers" in that file (pflow\'s format: '
                                   '{"type": "stdio", "command": ..., "args": [...]})')
                    else:
                        self.error(f"{where}.type", f"unknown node type '{clip(ntype)}'",
                                   did_you_mean(ntype, self.registry, "known types"))
                elif isinstance(node.get("params", {}), dict) and not (
                        "params" not in node and any(did_you_mean(k, ["params"]).startswith("did")
                                                     for k in node if k not in NODE_KEYS)):
                    self.check_params(node.get("params", {}), node_type, where,
                                      node.get("batch") is not None, beside=node.keys())
                if node_type is not None:
                    self.check_executor(node.get("executor"), node_type, where)
            if isinstance(node.get("batch"), dict):
                self.check_batch(node["batch"], f"{where}.batch")
        return ids

    def check_executor(self, executor: Any, node_type: NodeType, where: str) -> None:
        """The node's ``executor`` (if any) is one its type can run on."""
        if executor is None:
            why = can_run_in_process(node_type) if node_type.cpu_bound else None
            if why:  # a plugin's CPU-bound type that a worker process could not run
                self.error(f"{where}.type", f"node type '{node_type.name}' is CPU-bound, but cannot "
                           f"run in a worker process: {why}",
                           'add "executor": "thread" to the node, or fix the plugin')
            return
        if not isinstance(executor, str):
            return  # reported by check_keys
        where = f"{where}.executor"
        if executor not in EXECUTORS:
            fix = did_you_mean(executor, EXECUTORS, "one of")
            if executor in ("inline", "loop", "async", "default"):
                fix = (f"leave \"executor\" out: '{node_type.name}' nodes then run where their type "
                       f"says ({node_type.executor})")
            self.error(where, f"'{executor}' is not an executor", fix)
        elif executor == PROCESS and (why := can_run_in_process(node_type)):
            self.error(where, f"'{node_type.name}' nodes cannot run in a worker process: {why}",
                       "leave \"executor\" out")
        elif executor == THREAD and (node_type.is_async or node_type.name == "workflow"):
            self.error(where, f"'{node_type.name}' nodes run on the event loop (they wait without "
                       "blocking it): a thread would not make them faster",
                       "leave \"executor\" out, or use \"process\" for CPU-heavy work")

    def check_params(self, params: dict[str, Any], node_type: NodeType, where: str,
                     batched: bool, beside: Collection[str] = ()) -> None:
        """The params a node type takes, their types and values; ``beside``: the node's own
        keys (a required param written there is reported as misplaced, not as missing)."""
        names = self._param_names.get(node_type.name)
        if names is None:  # in order; a dict for membership; once per node type
            names = self._param_names[node_type.name] = {p.name: None for p in node_type.params}
        if RATE_LIMIT_KEY in params:
            self.check_rate_limit_key(params[RATE_LIMIT_KEY], node_type,
                                      key_path(f"{where}.params", RATE_LIMIT_KEY))
        unknown = [key for key in params if names and key not in names and key != RATE_LIMIT_KEY]
        for p in node_type.params:
            if (p.required and p.name not in params  # else: "move it" (check_nodes)
                    and (p.name not in beside or p.name in NODE_KEYS)):
                typo = [k for k in unknown if did_you_mean(k, [p.name]).startswith("did")]
                fix = (f"rename \"{typo[0]}\" to \"{p.name}\"" if typo else
                       f"add \"{p.name}\" to params" + (f" ({p.description})" if p.description else ""))
                self.error(f"{where}.params", f"'{node_type.name}' needs param '{p.name}'", fix)
        for key in unknown:
            self.warn(key_path(f"{where}.params", key), f"'{node_type.name}' has no param '{clip(key)}'",
                      did_you_mean(key, names, "its params"))
        for p in node_type.params:
            value = params.get(p.name)
            expected = PARAM_TYPES.get(p.type)
            if p.type == "text" and isinstance(value, (dict, list)):
                continue  # taken as JSON data (write-file writes it as JSON)
            if (expected is not None and value is not None and not is_json_type(value, expected)
                    and not (isinstance(value, str) and "${" in value)):  # a template: at run time
                self.error(key_path(f"{where}.params", p.name),
                           f"'{node_type.name}' param '{p.name}' must be {_A[expected]} {expected}, got "
                           f"{json_type(value)} {_value_text(value)}",
                           type_fix(p.name, expected, value)
                           + ' (or a template "${node.key}" whose value is checked when the node runs)')
                continue
            if p.choices and isinstance(value, str) and "${" not in value and value not in p.choices:
                why_missing = getattr(p.choices, "why_missing", None)
                broken = why_missing(value) if why_missing else None
                if broken:  # e.g. a merge strategy whose plugin is broken
                    self.error(key_path(f"{where}.params", p.name),
                               f"{p.name} '{value}' of '{node_type.name}' comes from a plugin that "
                               f"failed to load ({broken})", "fix or reinstall the package that provides it")
                    continue
                self.error(key_path(f"{where}.params", p.name),
                           f"'{value}' is not a {p.name} of '{node_type.name}'",
                           did_you_mean(value, p.choices, "one of"))
        if node_type.check is not None:
            for key, what, fix in node_type.check(params):
                self.error(key_path(f"{where}.params", key) if "." not in key else f"{where}.params.{key}",
                           what, fix)

    def check_rate_limit_key(self, key: Any, node_type: NodeType, where: str) -> None:
        if node_type.name == "workflow":
            self.error(where, "a workflow node cannot be rate limited (it would hold the limit "
                       "while its own nodes wait for it)",
                       "put rate_limit_key on the nodes inside the nested flow")
        elif not isinstance(key, str) or not key.strip() or "${" in key:
            self.error(where, f"expected the name of a rate limit, got {_clip(repr(key))}",
                       'a fixed name, e.g. "rate_limit_key": "openai", with an entry in "rate_limits"')

    def check_rate_limits(self, limits: Any) -> None:
        """The shape of ``rate_limits``; whether its keys are used is checked with the
        nested flows (:func:`rate_limit_problems`)."""
        if not isinstance(limits, dict):
            return
        for key, spec in limits.items():
            where = key_path("rate_limits", key)
            if key == "workflow":
                self.error(where, "workflow nodes cannot be rate limited (a nested flow's node "
                           "would wait for a limit its workflow node holds)",
                           "limit the node types inside the nested flow instead")
                continue
            if not isinstance(spec, dict):
                self.error(where, f"expected an object, got {json_type(spec)}",
                           'a limit looks like {"max_concurrent": 5, "per_second": 10}')
                continue
            self.check_keys(spec, LIMIT_KEYS, where, "a rate limit")
            if not spec:
                self.error(where, "the limit sets none of max_concurrent, per_second, per_minute",
                           'set at least one, e.g. {"max_concurrent": 5}')
            for name in LIMIT_KEYS:
                v = spec.get(name)
                if isinstance(v, int) and not isinstance(v, bool) and v < 1:
                    fix = ("leave it out (no limit on that) or set a whole number from 1"
                           + ("; for fewer than one call per second use per_minute"
                              if name == "per_second" else ""))
                    self.error(key_path(where, name), f"must be at least 1, got {v}", fix)
                elif isinstance(v, float):
                    self.error(key_path(where, name), f"must be a whole number, got {v}",
                               ("for fewer than one call per second use per_minute, e.g. "
                                f'"per_minute": {max(1, int(v * 60))}') if v < 1 else
                               f"use {int(v)}" if v.is_integer() else f"use {int(v)} or {int(v) + 1}")

    def check_batch(self, batch: dict[str, Any], where: str) -> None:
        self.check_keys(batch, BATCH_KEYS, where, "a batch config")
        items = batch.get("items")
        if isinstance(items, str):
            try:
                whole = [type(p).__name__ for p in parse_text(items.strip())] == ["Ref"]
            except TemplateSyntaxError:
                whole = True  # reported by check_templates
            if not whole:
                self.error(f"{where}.items", "must be exactly one template like \"${node.key}\" or an array",
                           "write \"items\": \"${some_node.list_key}\", or list the items inline")
        elif isinstance(items, list) and not items:
            self.error(f"{where}.items", "an inline items array must not be empty",
                       "list at least one item, or reference a list with a template")
        elif isinstance(items, dict):
            self.check_items_source(items, f"{where}.items")
        alias = batch.get("as")
        if isinstance(alias, str) and not re.fullmatch(r"[A-Za-z_]\w*", alias):
            self.error(f"{where}.as", f"'{alias}' is not an identifier", "use a name like item or file")
        eh = batch.get("error_handling")
        if isinstance(eh, str) and eh not in ("fail_fast", "continue"):
            self.error(f"{where}.error_handling", f"'{eh}' is not fail_fast or continue",
                       did_you_mean(eh, ["fail_fast", "continue"]))
        for key, lo, hi in (("max_concurrent", 1, 100), ("max_retries", 1, 10)):
            v = batch.get(key)
            if isinstance(v, int) and not isinstance(v, bool) and not lo <= v <= hi:
                self.error(f"{where}.{key}", f"must be between {lo} and {hi}, got {v}",
                           f"set {key} to a value from {lo} to {hi}")
        size = batch.get("batch_size")
        if is_json_type(size, "integer") and size < 1:
            self.error(f"{where}.batch_size", f"must be at least 1, got {size}",
                       "leave it out, or set how many items to hold in memory at once, e.g. 1000")
        rw = batch.get("retry_wait")
        if is_json_type(rw, "number") and rw < 0:
            self.error(f"{where}.retry_wait", f"must be 0 or more seconds, got {rw}",
                       "set retry_wait to 0 (retry at once) or the seconds to wait between attempts")

    def check_items_source(self, items: dict[str, Any], where: str) -> None:
        """``{"lines_of": TEXT}``, ``{"jsonl_of": TEXT}``, ``{"lines_file": PATH}`` or
        ``{"jsonl_file": PATH}``: exactly one key, a string."""
        keys = list(items)
        example = 'e.g. {"jsonl_file": "rows.jsonl"} or {"lines_of": "${list.stdout}"}'
        if not keys:
            self.error(where, "an items object needs a source", f"give one of "
                       f"{', '.join(SOURCE_KEYS)}: {example}")
            return
        for key in keys:
            if key not in SOURCE_KEYS:
                kind = "jsonl" if "json" in key.lower() else "lines" if "line" in key.lower() else ""
                fix = (f'for a file write "{kind}_file": "path", for a text "{kind}_of": "${{node.stdout}}"'
                       if kind else did_you_mean(key, SOURCE_KEYS, "items sources")
                       or f"use one of {', '.join(SOURCE_KEYS)}: {example}")
                self.error(key_path(where, key), f"unknown key '{clip(key)}' in an items object", fix)
        known = [k for k in keys if k in SOURCE_KEYS]
        if len(known) > 1:
            self.error(where, f"an items object has one source, got {len(known)} "
                       f"({', '.join(known)})", "keep one of them (a batch reads one list of items)")
        for key in known:
            value = items[key]
            if not isinstance(value, str):
                self.error(key_path(where, key), f"expected string, got {json_type(value)}",
                           f'{key} is {SOURCE_KEYS[key]}: write it as a "string"')
            elif not value.strip():
                self.error(key_path(where, key), "must not be empty",
                           f'{key} is {SOURCE_KEYS[key]}')

    def check_inputs(self, inputs: Any) -> set[str]:
        if not isinstance(inputs, dict):
            return set()
        for name, spec in inputs.items():
            where = key_path("inputs", name)
            if not SEGMENT_RE.fullmatch(name):
                self.error(where, f"'{clip(name)}' is not a valid input name",
                           "use letters, digits, '_' and '-'")
            if not isinstance(spec, dict):
                self.error(where, f"expected an object, got {json_type(spec)}",
                           'declare an input as {"type": "string", "required": true}')
                continue
            self.check_keys(spec, INPUT_KEYS, where, "an input")
            t = spec.get("type")
            if isinstance(t, str) and t not in INPUT_TYPES:
                self.error(f"{where}.type", f"unknown input type '{t}'", did_you_mean(t, INPUT_TYPES))
            elif t in INPUT_TYPES and "default" in spec and spec["default"] is not None \
                    and not is_json_type(spec["default"], t):
                # pflow does not check defaults, so flows written for it may have such a default
                self.warn(f"{where}.default", f"the default is {json_type(spec['default'])}, "
                          f"but the input's type is {t}", type_fix("default", t, spec["default"]))
        return set(inputs)

    def check_outputs(self, outputs: Any, ids: dict[str, int], inputs: set[str]) -> None:
        if not isinstance(outputs, dict):
            return
        for name, spec in outputs.items():
            where = key_path("outputs", name)
            if not isinstance(spec, dict):
                self.error(where, f"expected an object, got {json_type(spec)}",
                           'declare an output as {"source": "${node.key}"}')
                continue
            self.check_keys(spec, OUTPUT_KEYS, where, "an output")
            source = spec.get("source")
            if isinstance(source, str) and source.startswith("$") and not source.startswith("${"):
                self.warn(key_path(where, "source"), f"{_clip(source)!r}: pflow refuses the form $node.key "
                          f"(it reads '{_clip(source.split('.')[0])}' as a node id); pflow-tui resolves it",
                          f'write "${{{_clip(source[1:])}}}" (or "{_clip(source[1:])}") for a flow that '
                          "also runs on pflow")
            if isinstance(source, str):
                text = source if "${" in source else "${" + source.lstrip("$") + "}"
                self.check_template_text(text, f"{where}.source", set(ids), inputs, set())

    def check_edges(self, edges: list[Any], ids: dict[str, int]) -> list[tuple[str, str, str]]:
        valid: list[tuple[str, str, str]] = []
        seen: dict[tuple[str, str], int] = {}
        for i, edge in enumerate(edges):
            where = f"edges[{i}]"
            if not isinstance(edge, dict):
                self.error(where, f"expected an object, got {json_type(edge)}",
                           'an edge looks like {"from": "a", "to": "b"}')
                continue
            self.check_keys(edge, EDGE_KEYS, where, "an edge")
            ok = True
            for end in ("from", "to"):
                nid = edge.get(end)
                if isinstance(nid, str) and ids and nid not in ids:
                    self.error(f"{where}.{end}", f"no node has id '{clip(nid)}'",
                               did_you_mean(nid, ids, "node ids"))
                    ok = False
                elif not isinstance(nid, str):
                    ok = False
            action = edge.get("action", "default")
            if not isinstance(action, str):
                continue
            group = edge.get("parallel_group")
            if ok:
                key = (edge["from"], action)
                if key in seen and group is not None and edges[seen[key]].get("parallel_group") == group:
                    valid.append((edge["from"], edge["to"], action))
                elif key in seen:
                    self.error(where, f"node '{edge['from']}' already has a '{action}' edge "
                               f"(edges[{seen[key]}])",
                               "give each edge from a node its own action; one action leads to one node")
                else:
                    seen[key] = i
                    valid.append((edge["from"], edge["to"], action))
        return valid

    def check_groups(self, doc: dict[str, Any], ids: dict[str, int]) -> None:
        """Parallel groups: branches that converge at one join; policies that make sense."""
        raw = doc.get("edges") if has_groups(doc.get("edges")) else None  # else: no group to find
        edges = [e for e in graph_edges(raw if isinstance(raw, list) else [])
                 if e.src in ids and e.dst in ids]
        policies = doc.get("parallel_groups")
        self.groups, problems = find_groups(edges, policies if isinstance(policies, dict) else None)
        self.problems.extend(problems)
        if not isinstance(policies, dict):
            return
        names = {e.group for e in edges if e.group is not None}
        for name, policy in policies.items():
            where = key_path("parallel_groups", name)
            if name not in names:
                self.warn(where, f"no edge has parallel_group '{clip(name)}'",
                          did_you_mean(name, names, "groups") if names else "remove it")
            if not isinstance(policy, dict):
                self.error(where, f"expected an object, got {json_type(policy)}",
                           'a policy looks like {"error_handling": "continue", "max_concurrent": 2}')
                continue
            self.check_keys(policy, GROUP_KEYS, where, "a parallel group policy")
            eh = policy.get("error_handling")
            if isinstance(eh, str) and eh not in ("fail_fast", "continue"):
                self.error(key_path(where, "error_handling"), f"'{eh}' is not fail_fast or continue",
                           did_you_mean(eh, ["fail_fast", "continue"]))
            mc = policy.get("max_concurrent")
            if isinstance(mc, int) and not isinstance(mc, bool) and mc < 1:
                self.error(key_path(where, "max_concurrent"), f"must be at least 1, got {mc}",
                           "leave it out (all branches at once) or set e.g. 2")

    def sibling_group(self, a: str, b: str) -> Group | None:
        """The parallel group in which ``a`` and ``b`` are on different branches, if any."""
        for g in self.groups:
            where = {n: br.index for br in g.branches for n in br.nodes}
            if a in where and b in where and where[a] != where[b]:
                return g
        return None

    def check_graph(self, ids: dict[str, int], edges: list[tuple[str, str, str]], start: str) -> None:
        """A loop through default edges only (it can never end); nodes never reached."""
        default_next = {a: b for a, b, act in edges if act == "default"}
        loop = default_loop(list(ids), default_next)
        if loop is not None:
            cycle = " -> ".join([*loop, loop[0]])
            self.error(f"nodes[{ids[loop[0]]}]", f"loop through default edges only: {cycle}",
                       "a loop needs a named action edge (e.g. \"action\": \"retry\") so it can end")
        successors: dict[str, list[str]] = {}
        for a, b, _ in edges:
            successors.setdefault(a, []).append(b)
        reach = reachable(start, successors)
        for nid, i in ids.items():
            if nid not in reach:
                self.warn(f"nodes[{i}]", f"node '{clip(nid)}' is never reached from '{clip(start)}'",
                          "connect it with an edge, or remove it")

    def check_templates(self, nodes: list[Any], ids: dict[str, int], inputs: set[str],
                        edges: list[tuple[str, str, str]]) -> None:
        texts: dict[str, list[tuple[str, str, set[str]]]] = {}
        wanted: dict[str, set[str]] = {}  # the names each node's templates refer to
        node_texts, refs_of = self.node_texts, self.refs_of
        for nid, i in ids.items():
            texts[nid] = found = list(node_texts(nodes[i], i))
            names: set[str] = set()
            for _, text, _ in found:
                refs = refs_of(text)
                if isinstance(refs, tuple):
                    names.update(ref.root for ref in refs)
            wanted[nid] = names
        upstream = upstream_among(list(ids), ((a, b) for a, b, _ in edges), wanted)
        all_ids = set(ids)
        for nid, found in texts.items():
            above = upstream.get(nid, set())
            for where, text, local in found:
                self.check_template_text(text, where, above, inputs, local, all_ids=all_ids,
                                         node_id=nid, in_node=True)
            node = nodes[ids[nid]]
            params = node.get("params")
            if node.get("type") == "shell" and isinstance(params, dict):
                self.check_shell_command(params.get("command"), f"nodes[{ids[nid]}].params.command", nid)

    def template_type(self, ref: Ref) -> str | None:
        """The type pflow's validator infers for a reference (``infer_template_type``): an
        input's declared type, a node output's declared type (its node type's
        ``output_types``, a batch node's outputs), or None when it cannot tell."""
        if ref.root in self.input_types:
            t = self.input_types[ref.root]
            return t if isinstance(t, str) and not ref.steps else None
        node = self.nodes.get(ref.root)
        if node is None or not self.namespacing or not ref.steps or not isinstance(ref.steps[0], str):
            return None
        key = ref.steps[0]
        if isinstance(node.get("batch"), dict):
            return BATCH_OUTPUT_TYPES.get(key) if len(ref.steps) == 1 else None
        node_type = self.registry.get(node.get("type")) if isinstance(node.get("type"), str) else None
        if node_type is None:
            return None
        if len(ref.steps) > 1 and all(not isinstance(s, str) for s in ref.steps[1:]):
            return None  # ${n.list[0]}: an element, whose type is not declared
        path = ".".join(s for s in ref.steps if isinstance(s, str))
        return dict(node_type.output_types).get(path)

    def check_shell_command(self, command: Any, where: str, node_id: str) -> None:
        """pflow refuses a dict or list template unquoted in a shell command (its JSON text
        would break the command's quoting); ``'${x}'`` in single quotes is allowed."""
        if not isinstance(command, str) or "${" not in command:
            return
        refs = self.refs_of(command)
        if not isinstance(refs, tuple):
            return  # reported by check_templates
        quoted = set(_QUOTED_TEMPLATE.findall(command))
        blocked: list[tuple[str, str]] = []
        for ref in refs:
            t = self.template_type(ref)
            if ref.text in quoted or t is None:
                continue
            bases = [part.strip().split("[")[0] for part in t.split("|")]
            if any(b in _SHELL_SAFE for b in bases):
                continue
            bad = next((b for b in bases if b in _SHELL_BLOCKED), None)
            if bad is not None and (ref.text, bad) not in blocked:
                blocked.append((ref.text, bad))
        if len(blocked) == 1:
            text, kind = blocked[0]
            self.error(where, f"${{{text}}} is {_A.get(PARAM_TYPES.get(kind, kind), 'a')} "
                       f"{PARAM_TYPES.get(kind, kind)}: its JSON text in a shell command breaks the "
                       "command's quoting (pflow refuses it too)",
                       f"give it on stdin (\"stdin\": \"${{{text}}}\"), use one of its fields "
                       f"(${{{text}.key}}), or quote it as '${{{text}}}' to take its JSON text as one word")
        elif blocked:
            listed = ", ".join(f"${{{t}}} ({PARAM_TYPES.get(k, k)})" for t, k in blocked)
            self.error(where, f"multiple structured data templates in command: {listed}: their JSON "
                       "text breaks the command's quoting (pflow refuses it too)",
                       "give one on stdin and write the others to files first, use their fields, or quote "
                       "each as '${...}' to take its JSON text as one word")

    def check_node_ref(self, ref: Ref, where: str) -> None:
        """``${node.key}`` names an output the node writes, as pflow's validator checks:
        ``${node}`` alone and a key the node type does not declare are errors; ``error`` on
        a type that does not declare it is a warning (pflow refuses it, pflow-tui writes it
        when the node fails)."""
        node = self.nodes.get(ref.root, {})
        ntype = node.get("type")
        node_type = self.registry.get(ntype) if isinstance(ntype, str) else None
        batched = isinstance(node.get("batch"), dict)
        if not ref.steps:
            if ref.every or ref.visit is not None:
                return  # ${a[*]}, ${a#2}: its runs (pflow-tui)
            if batched:
                example = "results"
            else:
                example = node_type.outputs[0] if node_type is not None and node_type.outputs else "key"
            self.error(where, f"${{{ref.text}}} is node '{ref.root}' itself, not one of its outputs "
                       "(pflow refuses it too)", f"name an output: ${{{ref.root}.{example}}}")
            return
        key = ref.steps[0]
        if not isinstance(key, str):
            return
        if batched:
            if key in BATCH_OUTPUT_TYPES or _ITERATION_STEP.fullmatch(key) or ref.every:
                return
            declared, what = list(BATCH_OUTPUT_TYPES), "a batch node"
        else:
            if node_type is None or not node_type.output_types:
                return  # output types not declared (pflow-tui's own types, plugins): not checked
            declared = self._declared.get(node_type.name)
            if declared is None:  # once per node type: a flow of 100,000 nodes has a few
                declared = self._declared[node_type.name] = list(dict.fromkeys(
                    [*node_type.outputs, *(k for k, _ in node_type.output_types if "." not in k)]))
            if key in declared:
                return
            what = f"a node of type '{ntype}'"
        if _BRANCH_STEP.fullmatch(key) and any(g.fanout == ref.root for g in self.groups):
            return
        if key == "error":
            self.warn(where, f"${{{ref.text}}}: {what} does not declare an output 'error' "
                      "(pflow's validator refuses this reference; pflow-tui writes 'error' when the "
                      "node fails)", "fine here; for pflow, read one of its declared outputs: "
                      + ", ".join(declared[:6]))
            return
        self.error(where, f"${{{ref.text}}}: node '{ref.root}' is {what}, which has no output '{clip(key)}' "
                   "(pflow refuses it too)",
                   did_you_mean(key, declared, "its outputs") or f"its outputs: {', '.join(declared[:8])}")

    @staticmethod
    def node_texts(node: dict[str, Any], i: int) -> Iterator[tuple[str, str, set[str]]]:
        """(where, text, batch-local names) of every template (a string with ``${``) in a
        node's batch items and params."""
        local: set[str] = set()
        batch = node.get("batch")
        if batch is not None:  # a bad batch config is reported already: assume its alias
            alias = batch.get("as") if isinstance(batch, dict) else None
            local = {alias if isinstance(alias, str) else "item", "__index__"}
        if isinstance(batch, dict) and isinstance(batch.get("items"), (str, list, dict)):
            for where, text in iter_strings(batch["items"], f"nodes[{i}].batch.items"):
                if "${" in text:
                    yield where, text, set()
        label = batch.get("label") if isinstance(batch, dict) else None
        if isinstance(label, str) and "${" in label:
            yield f"nodes[{i}].batch.label", label, local
        params = node.get("params") or {}
        if node.get("type") == "workflow" and isinstance(params, dict):
            params = {k: v for k, v in params.items() if k != "workflow_ir"}  # the child's own
        if isinstance(params, dict) and not any(isinstance(v, (dict, list)) for v in params.values()):
            for key, text in params.items():  # flat params (most nodes): no walk needed
                if isinstance(text, str) and "${" in text:
                    yield key_path(f"nodes[{i}].params", key), text, local
            return
        for where, text in iter_strings(params, f"nodes[{i}].params"):
            if "${" in text:
                yield where, text, local

    def check_aggregate(self, ref: Ref, where: str, node_id: str = "") -> None:
        """``${node.aggregate.STAT.key}``: a batch or fan-out node, a known statistic, a key."""
        node = self.nodes.get(ref.root, {})
        fanouts = {g.fanout: g for g in self.groups}
        group = fanouts.get(ref.root)
        if group is not None and node_id in group.members and not isinstance(node.get("batch"), dict):
            self.error(where, f"${{{ref.text}}}: node '{node_id}' is in a branch of parallel_group "
                       f"'{group.name}', whose results exist only after all its branches ended",
                       f"read it at the join '{group.join}' or after it")
            return
        if not isinstance(node.get("batch"), dict) and ref.root not in fanouts:
            node_type = self.registry.get(node.get("type")) if isinstance(node.get("type"), str) else None
            if node_type is None or not node_type.outputs or AGGREGATE in node_type.outputs:
                return  # outputs not declared: it may have a key 'aggregate' of its own
            joined = next((g for g in self.groups if g.join == ref.root), None)
            rest = ref.text.split(".aggregate", 1)[1]
            if joined is not None:
                fix = (f"aggregate over the group at its fan-out node: ${{{joined.fanout}.aggregate{rest}}} "
                       "(over each branch's last output)")
            else:
                batched = sorted(n for n, v in self.nodes.items() if isinstance(v.get("batch"), dict))
                fix = (f"give '{ref.root}' a \"batch\" config, or aggregate a batch node"
                       + (f" ({', '.join(batched[:5])})" if batched else ""))
            self.error(where, f"${{{ref.text}}}: '{ref.root}' is not a batch node or the fan-out "
                       "node of a parallel group; aggregates run over their results", fix)
            return
        stat = ref.steps[1] if len(ref.steps) > 1 else None
        if not isinstance(stat, str) or stat not in STATS:
            close = ""
            if isinstance(stat, str):
                close = (f"did you mean '{_STAT_WORDS[stat.lower()]}'?" if stat.lower() in _STAT_WORDS
                         else did_you_mean(stat, STATS))
            what = f"'{stat}' is not a statistic" if isinstance(stat, str) else \
                "aggregate needs a statistic after it"
            self.error(where, f"${{{ref.text}}}: {what}",
                       (f"{close} " if close.startswith("did") else "")
                       + f"use one of {', '.join(STATS)}, e.g. ${{{ref.root}.aggregate.mean.value}}")
        elif len(ref.steps) == 2 and stat != "count":
            self.error(where, f"${{{ref.text}}}: aggregate.{stat} needs the key of a number in each "
                       "result", f"name it, e.g. ${{{ref.root}.aggregate.{stat}.value}} for the 'value' "
                       "of each result (only count needs no key)")

    def refs_of(self, text: str) -> tuple[Ref, ...] | TemplateSyntaxError | RecursionError:
        """The references of a template text, or why it does not parse (once per text)."""
        got = self._refs.get(text)
        if got is None and (m := _PLAIN_REF.fullmatch(text)):  # "${a.b.c}": most templates
            steps = tuple(m[1].split("."))
            got = (Ref(m[1], steps[0], steps[1:], None, False,
                       steps.index(AGGREGATE, 1) - 1 if AGGREGATE in steps[1:] else None),)
            self._refs[text] = got
        if got is None:
            try:  # what compile_value(text).refs gives, without building the resolver
                got = tuple(r for part in parse_text(text) if isinstance(part, Ref) for r in part.refs())
            except (TemplateSyntaxError, RecursionError) as exc:  # recursion: '${' nested deep
                got = exc
            self._refs[text] = got
        return got

    def check_template_text(self, text: str, where: str, upstream: set[str], inputs: set[str],
                            local: set[str], *, all_ids: set[str] | None = None,
                            node_id: str = "", in_node: bool = False) -> None:
        if "${" not in text:
            return
        refs = self.refs_of(text)
        if isinstance(refs, TemplateSyntaxError):
            self.error(where, f"bad template {_clip(text)!r}: {refs} (at character {refs.offset})",
                       "templates look like ${node.key}, ${input_name} or ${node.list[0].key}")
            return
        if isinstance(refs, RecursionError):  # the template parser recurses once per nested ${...}
            self.error(where, f"template {_clip(text)!r} nests '${{' too deeply",
                       "use at most one nested index, like ${node.list[${__index__}].key}")
            return
        all_ids = upstream if all_ids is None else all_ids
        for ref in refs:
            root = ref.root
            if root in local or root in inputs:
                continue
            if not self.namespacing and root in all_ids:
                self.error(where, f"${{{ref.text}}}: with \"enable_namespacing\": false a node's outputs "
                           f"are not kept under its id '{root}' (pflow refuses this reference too)",
                           f"remove \"enable_namespacing\": false to read ${{{ref.text}}}")
                continue
            if root in upstream:
                if ref.agg_at == 0:
                    self.check_aggregate(ref, where, node_id)
                elif in_node:
                    self.check_node_ref(ref, where)
                continue
            if root in all_ids:
                group = self.sibling_group(root, node_id)
                if group is not None:
                    self.error(where, f"${{{ref.text}}}: node '{root}' runs in another branch of "
                               f"parallel_group '{group.name}'; branches never see each other's "
                               "outputs", f"read it after the join '{group.join}' (or through the "
                               f"merge), or move '{root}' before '{group.fanout}'")
                    continue
                why = ("a node cannot read its own outputs" if root == node_id
                       else f"node '{root}' does not run before this one")
                self.error(where, f"${{{ref.text}}}: {why}",
                           f"add an edge path from '{root}' to this node, or use an input instead")
                continue
            if root == "__index__" or (root == "item" and not local):
                self.error(where, f"${{{ref.text}}}: {root} only exists in a batch node",
                           "add a \"batch\" config to this node")
                continue
            if root in ("input", "inputs"):  # old pflow examples; never valid at IR 0.1.0
                name = ref.steps[0] if ref.steps and isinstance(ref.steps[0], str) else "name"
                self.error(where, f"${{{ref.text}}}: templates have no '{root}' object",
                           f"declare \"{name}\" under \"inputs\" and write ${{{name}}}")
                continue
            known = sorted(all_ids | inputs | local)
            hint = did_you_mean(root, known, "known names")
            if not inputs:
                declare = f"declare \"{root}\" under \"inputs\" if it comes from the user"
                hint = f"{hint} (or {declare})" if hint else declare
            self.error(where, f"${{{ref.text}}}: '{root}' is not a node, an input or a batch alias", hint)
