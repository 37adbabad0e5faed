"""pflow template variables: ``${node.key}``, ``${a.b[0].c}``, ``${a[${__index__}].x}``.

Templates are parsed once, when a flow is compiled, into small resolver objects;
resolving one at run time is a walk over dicts and lists, never ``eval``.

Rules (pflow IR 0.1.0, see docs/compatibility.md):
- a value that is exactly one template keeps the resolved type;
- a template inside other text is rendered into a string (None -> "",
  dict/list -> JSON, everything else ``str``);
- a path that steps into a JSON string parses it;
- ``$${x}`` is an escape for the literal text ``${x}``;
- ``${node.aggregate.STAT.key}`` is a statistic over a batch's or a parallel group's
  results (see :mod:`pflow_tui.engine.aggregates`).
"""

from __future__ import annotations

import contextlib
import json
import re
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from functools import partial
from typing import Any

import orjson

from ..paths import iteration_index
from ..run import aggregates
from ..run.spill import LazyList, MappedList
from .jsontypes import SEGMENT_RE

_LISTS = (list, tuple, LazyList)

_INT_RE = re.compile(r"\d+")


class TemplateSyntaxError(ValueError):
    """A template that cannot be parsed; ``offset`` is where, in the source text."""

    def __init__(self, message: str, text: str, offset: int) -> None:
        super().__init__(message)
        self.text = text
        self.offset = offset


class Unresolved(LookupError):
    """A template whose path does not lead to a value."""

    def __init__(self, template: str, reason: str) -> None:
        super().__init__(f"${{{template}}}: {reason}")
        self.template = template
        self.reason = reason


Scope = tuple[Mapping[str, Any], ...]
"""Where root names are looked up, first match wins (e.g. item locals, inputs, store)."""

_MISSING = object()


@dataclass(frozen=True, slots=True)
class Ref:
    """A parsed ``${...}`` reference: a root name followed by steps.

    After the root may come ``#N`` (the N-th visit of a node a loop ran again) and
    ``[*]`` (every iteration, branch or visit of it, as a list the later steps map over).
    ``.iteration_N`` on a batch's output is its N-th result; ``.branch_N`` on a fan-out
    node is that branch's store. These follow the grammar of event paths.
    ``.aggregate.STAT.key`` on a batch's output or a fan-out node is a statistic of
    ``key`` over its results; ``agg_at`` is the index of that ``aggregate`` step.
    """

    text: str
    root: str
    steps: tuple[str | int | Ref, ...]
    visit: int | None = None
    every: bool = False
    agg_at: int | None = None

    def resolve(self, scope: Scope, lazy: bool = False) -> Any:
        """The value; a spilled batch's results (or ``[*]`` over them) as a plain list,
        unless ``lazy`` (then a :class:`~pflow_tui.engine.spill.LazyList`)."""
        for layer in scope:
            value = layer.get(self.root, _MISSING)
            if value is not _MISSING:
                break
        else:
            if self.every:  # every run of a node that has not run yet: none
                return []
            raise Unresolved(self.text, f"'{self.root}' is not defined")
        if self.visit is not None:
            value = _visit(scope, self.root, value, self.visit, self.text)
        if self.agg_at is not None:
            if self.every:
                return [None if v is None else self._aggregate(v, scope, f"{self.root}[*]", lenient=True)
                        for v in _every(scope, self.root, value)]
            return self._aggregate(value, scope, self.root)
        if self.every:
            runs = _every(scope, self.root, value)
            if isinstance(runs, LazyList):  # a spilled batch: walk each entry on demand
                each = MappedList(runs, partial(self._each, scope))
                return each if lazy else each.tolist()
            return [None if v is None else self._walk(v, scope, f"{self.root}[*]", self.steps, True)
                    for v in runs]
        value = self._walk(value, scope, self.root, self.steps)
        if lazy or not isinstance(value, LazyList):
            return value
        return value.tolist()

    def _each(self, scope: Scope, value: Any) -> Any:
        return (None if value is None
                else self._walk(value, scope, f"{self.root}[*]", self.steps, True))

    def _walk(self, value: Any, scope: Scope, walked: str, steps: tuple[str | int | Ref, ...],
              lenient: bool = False) -> Any:
        for step in steps:
            if isinstance(step, Ref):
                step = step.resolve(scope)
                if not isinstance(step, int) or isinstance(step, bool):
                    raise Unresolved(self.text, f"index {step!r} is not an integer")
            if isinstance(value, str) and value[:1] in ("{", "["):
                with contextlib.suppress(orjson.JSONDecodeError):
                    value = orjson.loads(value)
            if isinstance(step, str):
                if isinstance(value, Mapping) and step in value:
                    value = value[step]
                elif (item := _iteration(value, step)) is not None:
                    value = value["results"][item]
                elif lenient:
                    return None
                else:
                    raise Unresolved(self.text, _no_key(walked, step, value))
                walked += "." + step
            else:
                if isinstance(value, _LISTS) and -len(value) <= step < len(value):
                    value = value[step]
                elif lenient:
                    return None
                else:
                    size = f"has {len(value)} items" if isinstance(value, _LISTS) else (
                        f"is {type(value).__name__}, not a list")
                    raise Unresolved(self.text, f"{walked}[{step}]: {walked} {size}")
                walked += f"[{step}]"
        return value

    def _aggregate(self, value: Any, scope: Scope, walked: str, lenient: bool = False) -> Any:
        """Walk to the ``aggregate`` step, then compute the statistic over the results.

        A value that is no batch output or fan-out (or that has a key ``aggregate`` of its
        own) is walked on as usual.
        """
        at = self.agg_at
        assert at is not None
        value = self._walk(value, scope, walked, self.steps[:at], lenient)
        walked += "".join(_step_text(s) for s in self.steps[:at])
        found = aggregates.entries(value)
        if found is None or aggregates.AGGREGATE in value:
            return self._walk(value, scope, walked, self.steps[at:], lenient)
        stat = self.steps[at + 1] if at + 1 < len(self.steps) else None
        if stat not in aggregates.STATS:
            raise Unresolved(self.text, f"{walked}.aggregate needs a statistic: "
                             f"{', '.join(aggregates.STATS)}"
                             + (f" ({stat!r} is not one)" if stat is not None else ""))
        key = self.steps[at + 2:]
        if not key and stat != "count":
            raise Unresolved(self.text, f"{walked}.aggregate.{stat} needs the key of a number in "
                             f"each result, e.g. {walked}.aggregate.{stat}.value")
        values = []
        for label, entry in found:
            if aggregates.failed(entry):
                continue
            if not key:
                values.append(entry)
                continue
            v = self._walk(entry, scope, f"{walked}.{label}", key)
            if v is None:
                continue
            number = aggregates.as_number(v)
            if number is None:
                where = f"{walked}.{label}" + "".join(_step_text(s) for s in key)
                shown = to_text(v)
                shown = shown if len(shown) <= 40 else shown[:37] + "..."
                raise Unresolved(self.text, f"{where} is {_kind(v)} {shown!r}, not a number "
                                 f"(aggregate.{stat} needs numbers; null is skipped)")
            values.append(number)
        return aggregates.compute(stat, values)

    def refs(self) -> Iterator[Ref]:
        yield self
        for step in self.steps:
            if isinstance(step, Ref):
                yield from step.refs()


def _step_text(step: str | int | Ref) -> str:
    if isinstance(step, str):
        return "." + step
    if isinstance(step, int):
        return f"[{step}]"
    return f"[${{{step.text}}}]"


def _kind(value: Any) -> str:
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, float):
        return "a non-finite number"
    if isinstance(value, str):
        return "text"
    return {dict: "an object", list: "a list"}.get(type(value), f"a {type(value).__name__}")


def _iteration(value: Any, step: str) -> int | None:
    """N for ``iteration_N`` on a batch output whose results has an N-th entry, else None."""
    index = iteration_index(step) if isinstance(value, Mapping) else None
    if index is None:
        return None
    results = value.get("results")
    return index if isinstance(results, _LISTS) and index < len(results) else None


def _history(scope: Scope, root: str) -> list[Any] | None:
    for layer in scope:
        visits = layer.get("__visits__")
        if isinstance(visits, Mapping) and isinstance(visits.get(root), list):
            return visits[root]
    return None


def _visit(scope: Scope, root: str, value: Any, n: int, text: str) -> Any:
    history = _history(scope, root)
    if history is None:
        if n == 1:
            return value
        raise Unresolved(text, f"'{root}' ran once; there is no visit {n}")
    if not 1 <= n <= len(history):
        raise Unresolved(text, f"'{root}' ran {len(history)} times; there is no visit {n}")
    return history[n - 1]


def _every(scope: Scope, root: str, value: Any) -> list[Any] | LazyList:
    """Every iteration (a batch), branch (a fan-out node) or visit (a loop) of ``root``."""
    if isinstance(value, Mapping):
        if isinstance(value.get("results"), _LISTS) and "batch_metadata" in value:
            return value["results"]
        if "branch_0" in value:
            return [value[f"branch_{i}"] for i in range(len(value)) if f"branch_{i}" in value]
    history = _history(scope, root)
    return list(history) if history is not None else [value]


def _no_key(walked: str, key: str, value: Any) -> str:
    hint = (" (aggregates work on a batch node or on the fan-out node of a parallel group)"
            if key == aggregates.AGGREGATE else "")
    if isinstance(value, Mapping):
        keys = ", ".join(sorted(map(str, value))[:12]) or "none"
        return f"{walked} has no key '{key}' (its keys: {keys}){hint}"
    return f"{walked} is {type(value).__name__}, which has no key '{key}'{hint}"


# --- parsing -----------------------------------------------------------------------------------

MAX_NESTING = 8  # ${a[${b[${c}]}]} ... deeper than this is a mistake, not a template


def _parse_ref(text: str, start: int, depth: int = 0) -> tuple[Ref, int]:
    """Parse the reference whose ``${`` ends at ``start``; return it and the index after ``}``."""
    if depth > MAX_NESTING:
        raise TemplateSyntaxError(f"templates nested more than {MAX_NESTING} deep", text, start)
    i = start
    m = SEGMENT_RE.match(text, i)
    if not m:
        raise TemplateSyntaxError("expected a name after '${'", text, i)
    root = m.group()
    i = m.end()
    visit = None
    if text.startswith("#", i):
        m = _INT_RE.match(text, i + 1)
        if not m or int(m.group()) < 1:
            raise TemplateSyntaxError("expected a visit number like #2 after '#'", text, i)
        visit, i = int(m.group()), m.end()
    every = text.startswith("[*]", i)
    if every:
        i += 3
    steps: list[str | int | Ref] = []
    while i < len(text):
        c = text[i]
        if c == "}":
            agg_at = steps.index(aggregates.AGGREGATE) if aggregates.AGGREGATE in steps else None
            return Ref(text[start:i], root, tuple(steps), visit, every, agg_at), i + 1
        if c == ".":
            m = SEGMENT_RE.match(text, i + 1)
            if not m:
                raise TemplateSyntaxError("expected a name after '.'", text, i + 1)
            steps.append(m.group())
            i = m.end()
        elif c == "[":
            if text.startswith("${", i + 1):
                inner, j = _parse_ref(text, i + 3, depth + 1)
                steps.append(inner)
            else:
                m = _INT_RE.match(text, i + 1)
                if not m:
                    raise TemplateSyntaxError("expected an index like [0] or [${__index__}]", text, i)
                steps.append(int(m.group()))
                j = m.end()
            if j >= len(text) or text[j] != "]":
                raise TemplateSyntaxError("expected ']'", text, j)
            i = j + 1
        else:
            raise TemplateSyntaxError(f"unexpected {c!r} in template", text, i)
    raise TemplateSyntaxError("unclosed '${' (missing '}')", text, start - 2)


def parse_text(text: str) -> list[str | Ref]:
    """Split ``text`` into literal strings and references."""
    parts: list[str | Ref] = []
    literal: list[str] = []
    i = 0
    while True:
        j = text.find("${", i)
        if j < 0:
            literal.append(text[i:])
            break
        if j > 0 and text[j - 1] == "$":  # "$${x}" is the literal "${x}"
            literal.append(text[i : j - 1] + "${")
            i = j + 2
            continue
        literal.append(text[i:j])
        ref, i = _parse_ref(text, j + 2)
        if lit := "".join(literal):
            parts.append(lit)
        literal = []
        parts.append(ref)
    if lit := "".join(literal):
        parts.append(lit)
    return parts


def has_template(value: Any) -> bool:
    """Whether ``value`` (any JSON value) contains a ``${``."""
    if isinstance(value, str):
        return "${" in value
    if isinstance(value, dict):
        return any(has_template(v) for v in value.values())
    if isinstance(value, list):
        return any(has_template(v) for v in value)
    return False


# --- compiled templates --------------------------------------------------------------------------

Resolver = Callable[[Scope], Any]


def to_text(value: Any) -> str:
    """How pflow renders a value inside a string."""
    if value.__class__ is str:
        return value
    if value is None:
        return ""
    if isinstance(value, (dict, list, LazyList)):
        return json.dumps(value, ensure_ascii=False, default=_plain)
    return str(value)


def to_json_text(value: Any) -> str:
    """A dict or list given whole to a text param, as pflow's param coercion writes it:
    ``json.dumps`` defaults (ASCII escapes such as ``\\u00e9``, ``", "`` separators, one line).
    (Rendered inside text, :func:`to_text` keeps non-ASCII characters, as pflow does.)"""
    return json.dumps(value, default=_plain)


def _plain(value: Any) -> Any:
    """``default=`` of :func:`to_text`: a lazy list (inside a list) is rendered in full."""
    if isinstance(value, LazyList):
        return value.tolist()
    raise TypeError(f"{type(value).__name__} is not JSON serialisable")


@dataclass(frozen=True, slots=True)
class Template:
    """A JSON value with templates in it, ready to resolve.

    ``refs`` lists every reference (for validation and the inspector); ``resolve``
    returns the value with templates substituted.
    """

    source: Any
    resolve: Resolver
    refs: tuple[Ref, ...]

    @property
    def is_constant(self) -> bool:
        return not self.refs


def compile_value(value: Any, *, in_container: bool = False) -> Template:
    """Compile a JSON value (str, dict, list, scalar) into a :class:`Template`."""
    refs: list[Ref] = []
    fn = _compile(value, refs, in_container)
    return Template(value, fn, tuple(r for ref in refs for r in ref.refs()))


def _const(value: Any) -> Resolver:
    return lambda scope: value


def _compile(value: Any, refs: list[Ref], in_container: bool) -> Resolver:
    if isinstance(value, str):
        if "${" not in value:
            return _const(value)
        parts = parse_text(value)
        refs.extend(p for p in parts if isinstance(p, Ref))
        if len(parts) == 1 and isinstance(parts[0], Ref):
            ref = parts[0]
            if in_container:  # pflow parses JSON text inside dict/list params
                return lambda scope: _maybe_json(ref.resolve(scope))
            return ref.resolve
        if all(isinstance(p, str) for p in parts):
            return _const("".join(parts))  # type: ignore[arg-type]
        return _inline(tuple(parts))
    if isinstance(value, (dict, list)) and not has_template(value):
        return _const(value)
    if isinstance(value, dict):
        items = [(k, _compile(v, refs, True)) for k, v in value.items()]
        return lambda scope: {k: f(scope) for k, f in items}
    if isinstance(value, list):
        fns = [_compile(v, refs, True) for v in value]
        return lambda scope: [f(scope) for f in fns]
    return _const(value)


def _inline(parts: tuple[str | Ref, ...]) -> Resolver:
    """Render text with templates in it; the common one- and two-part shapes are unrolled."""
    if len(parts) == 2:
        a, b = parts
        if isinstance(a, str):
            rb = b.resolve  # type: ignore[union-attr]
            return lambda scope: a + to_text(rb(scope))
        if isinstance(b, str):
            ra = a.resolve
            return lambda scope: to_text(ra(scope)) + b
    return lambda scope: "".join(
        [p if p.__class__ is str else to_text(p.resolve(scope)) for p in parts]  # type: ignore[union-attr]
    )


def _maybe_json(value: Any) -> Any:
    """pflow parses JSON text that a whole-value template yields inside a dict or list."""
    if isinstance(value, str) and value.strip():
        try:
            return orjson.loads(value)
        except orjson.JSONDecodeError:
            return value
    return value
