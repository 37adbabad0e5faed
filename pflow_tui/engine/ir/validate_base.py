"""What every section of the validator shares: the problems found so far, the
document's nodes and groups, and the check of an object's keys against a key table."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from ..nodes.base import NodeType
from ..problems import Problem, clip, did_you_mean
from .groups import Group
from .jsontypes import JSON_TYPES, NON_NUMBER_TYPES, is_json_type, json_type, key_path, type_fix
from .templates import Ref


class Checks:
    """The state of one validation; the sections (nodes, graph, templates) add checks."""

    def __init__(self, doc: Any, registry: Mapping[str, NodeType]) -> None:
        self.doc = doc
        self.registry = registry
        self.problems: list[Problem] = []
        self.groups: list[Group] = []  # the valid parallel groups (check_groups)
        self.nodes: dict[str, dict[str, Any]] = {}  # id -> node, for the aggregate checks
        self._refs: dict[str, tuple[Ref, ...] | Exception] = {}  # template text -> refs_of
        self._declared: dict[str, list[str]] = {}  # node type -> the output keys it declares
        self._trees: dict[str, Any] = {}  # node type -> its declared outputs, nested (validate_types)
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
                    isinstance(obj[key], JSON_TYPES[typ]) and obj[key].__class__ is not bool
                    if typ in NON_NUMBER_TYPES else is_json_type(obj[key], typ)):
                self.error(key_path(where, key),
                           f"expected {typ.replace('|', ' or ')}, got {json_type(obj[key])}",
                           type_fix(key, typ, obj[key]))
        for key in obj:
            if key not in spec:
                fix = (unknown_fix(key) if unknown_fix else "") or did_you_mean(key, spec, "allowed keys")
                self.error(key_path(where, key), f"unknown key '{clip(key)}' in {what}", fix)

    def sibling_group(self, a: str, b: str) -> Group | None:
        """The parallel group in which ``a`` and ``b`` are on different branches, if any."""
        for g in self.groups:
            where = {n: br.index for br in g.branches for n in br.nodes}
            if a in where and b in where and where[a] != where[b]:
                return g
        return None
