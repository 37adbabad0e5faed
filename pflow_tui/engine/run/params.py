"""A node's params, compiled once: constants, defaults, and templates resolved per step.

pflow's coercion of param values lives here too (:func:`coerce`): a dict or list given
to a text param becomes JSON text, JSON text given to a dict or list param is parsed.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import orjson

from ..ir.templates import Ref, Scope, Template, Unresolved, compile_value, parse_text, to_json_text, to_text
from ..nodes.base import NodeType


class TemplateFailure(Exception):
    """Params that cannot be resolved in strict mode; the node fails without retrying."""


class Params:
    """A node's params, compiled once: constants, defaults and templates to resolve."""

    __slots__ = ("constant", "dynamic", "strict", "templates")

    def __init__(self, raw: Mapping[str, Any], node_type: NodeType, strict: bool) -> None:
        self.strict = strict
        self.templates: dict[str, Template] = {}
        self.constant: dict[str, Any] = {
            p.name: p.default for p in node_type.params if not p.required and p.default is not None
        }
        self.dynamic: list[tuple[str, Any, str | None]] = []
        compiled = {key: compile_value(value) for key, value in raw.items()}
        # pflow coerces params only in its template wrapper, which a node has when one of
        # its params holds a template: without one, a dict stays a dict (write-file then
        # writes it indented)
        wrapped = any(not tpl.is_constant for tpl in compiled.values())
        for key, tpl in compiled.items():
            ptype = p.type if (p := node_type.param(key)) else "any"
            if tpl.is_constant:
                value = tpl.resolve(())
                self.constant[key] = coerce(value, ptype) if wrapped or ptype not in _TEXT else value
            else:
                self.templates[key] = tpl
                self.dynamic.append((key, tpl.resolve, ptype if ptype in _COERCED else None))
                # a templated param's value comes from its template, never from the default
                # (a batch node's node.start lists the constant ones: not echo's default text
                # for ``message: "item ${item}"``)
                self.constant.pop(key, None)

    def resolve(self, scope: Scope, errors: list[str] | None = None
                ) -> tuple[dict[str, Any], dict[str, Any]]:
        """(all params, the templated ones as resolved); strict mode raises TemplateFailure.

        In permissive mode the unresolved ones keep their ``${...}`` text and are listed
        in ``errors``.
        """
        resolved: dict[str, Any] = {}
        try:
            for key, resolve, ptype in self.dynamic:
                value = resolve(scope)
                resolved[key] = value if ptype is None else coerce(value, ptype)
        except Unresolved:
            if self.strict:
                self._failed(scope)
            for key, resolve, ptype in self.dynamic:
                try:
                    value = resolve(scope)
                    resolved[key] = value if ptype is None else coerce(value, ptype)
                except Unresolved as exc:
                    resolved[key] = _lenient(self.templates[key].source, scope)
                    if errors is not None:
                        errors.append(f"{key}: {exc}")
        return {**self.constant, **resolved}, resolved

    def _failed(self, scope: Scope) -> None:
        for key, resolve, _ in self.dynamic:
            try:
                resolve(scope)
            except Unresolved as exc:
                raise TemplateFailure(f"Unresolved variables in parameter '{key}': {exc}") from None
        raise AssertionError("unreachable")


_TEXT = ("str", "text")  # text params: a dict or list given whole becomes JSON text
_COERCED = (*_TEXT, "dict", "list")


def coerce(value: Any, ptype: str) -> Any:
    """pflow's param coercion: dict/list into a str param -> JSON; JSON text into dict/list."""
    if ptype in _TEXT and isinstance(value, (dict, list)):
        return to_json_text(value)
    if ptype in ("dict", "list") and isinstance(value, str) and value[:1] in ("{", "["):
        try:
            return orjson.loads(value)
        except orjson.JSONDecodeError:
            return value
    return value


def _lenient(value: Any, scope: Scope) -> Any:
    """Permissive mode: resolve what resolves, keep the literal ``${...}`` of the rest."""
    if isinstance(value, str):
        if "${" not in value:
            return value
        try:
            return compile_value(value).resolve(scope)
        except Unresolved:
            out = []
            for part in parse_text(value):
                if isinstance(part, Ref):
                    try:
                        out.append(to_text(part.resolve(scope)))
                    except Unresolved:
                        out.append("${" + part.text + "}")
                else:
                    out.append(part)
            return "".join(out)
    if isinstance(value, dict):
        return {k: _lenient(v, scope) for k, v in value.items()}
    if isinstance(value, list):
        return [_lenient(v, scope) for v in value]
    return value
