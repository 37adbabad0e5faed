"""The types pflow's validator gives templates (``runtime/type_checker.py`` and
``template_validator.py`` at fed939d7) and what it makes of them: a template whose type does
not fit the param's declared type, a nested path its node's output structure does not declare.

Two answers for each question: pflow's own (:func:`pflow_compatible`,
:func:`pflow_accepts_path`, replicas of its rules, quirks included) and pflow-tui's
(:func:`compatible`, :func:`walk`), which differ only where pflow's rules are accidents of its
implementation (a generic type such as ``list[str]`` is unknown to its compatibility table; an
index into a declared ``list[dict]`` output is refused). The validator reports pflow-tui's
verdict as the error and pflow's refusal beyond it as a warning.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from ..nodes.base import NodeType, Param
from .keys import BATCH_OUTPUT_TYPES

_NUMBERS = ["int", "integer", "float", "number"]
#: pflow's TYPE_COMPATIBILITY_MATRIX: source type -> the param types it may be given to
PFLOW_MATRIX: dict[str, list[str]] = {
    "any": ["any", "str", "string", *_NUMBERS, "bool", "boolean", "dict", "object", "list", "array"],
    "str": ["any", "str", "string", "dict", "object", "list", "array"],
    "int": ["any", *_NUMBERS, "str", "string"],
    "float": ["any", "float", "number", "str", "string"],
    "number": ["any", *_NUMBERS, "str", "string"],
    "bool": ["any", "bool", "boolean", "str", "string"],
    "dict": ["any", "dict", "object", "str", "string"],
    "list": ["any", "list", "array", "str", "string"],
}
for _alias, _name in (("string", "str"), ("integer", "int"), ("boolean", "bool"), ("object", "dict"),
                      ("array", "list")):
    PFLOW_MATRIX[_alias] = PFLOW_MATRIX[_name]

#: pflow's declared param types where pflow-tui's Param.type says it in its own words
#: (``text`` is a str that also takes data; pflow-tui's ``list`` params are pflow's ``list[str]``)
_PFLOW_PARAM_TYPES = {("git-commit", "files"): "list[str]", ("llm", "images"): "list[str]",
                      ("code", "timeout"): "int", ("http", "timeout"): "int", ("http", "body"): "dict|str"}

#: types a nested key may step into without a declared structure (pflow: traversable)
_TRAVERSABLE = {"dict", "object", "any", "str", "string"}
_LISTS = {"list", "array"}
_DICTS = {"dict", "object"}


def pflow_compatible(source: str, target: str) -> bool:
    """pflow's ``is_type_compatible``: may a value of ``source`` type go to a ``target`` param."""
    if source == target:
        return True
    if "|" in source:
        return all(pflow_compatible(s.strip(), target) for s in source.split("|"))
    if "|" in target:
        return any(pflow_compatible(source, t.strip()) for t in target.split("|"))
    return target in PFLOW_MATRIX.get(source, [])


def base(type_name: str) -> str:
    """``list[dict]`` -> ``list``; a union keeps its parts' bases (``dict|list[str]`` -> ``dict|list``)."""
    return "|".join(part.strip().split("[")[0] for part in type_name.split("|"))


def compatible(source: str, target: str) -> bool:
    """pflow's rule on the base types: a ``list[str]`` may go where a list or text goes."""
    return pflow_compatible(base(source), base(target))


def pflow_param_type(node_type: NodeType, p: Param) -> str | None:
    """The type pflow declares for param ``p`` (None: any, not checked)."""
    declared = _PFLOW_PARAM_TYPES.get((node_type.name, p.name))
    if declared is not None:
        return declared
    return None if p.type == "any" else "str" if p.type == "text" else p.type


@dataclass
class Field:
    """A declared output or a field of one: its type, its declared keys (for a list, the keys
    of each element, as pflow's interfaces write ``list[dict]`` structures), and, for a batch
    node's ``results``, what each element is."""

    type: str
    children: dict[str, Field] = field(default_factory=dict)
    items: Field | None = None


def output_tree(node_type: NodeType) -> dict[str, Field]:
    """The outputs ``node_type`` declares, nested: ``git_status.modified`` is a child of
    ``git_status``, ``commits[].sha`` a key of each element of ``commits``."""
    tree: dict[str, Field] = {}
    for path, type_name in node_type.output_types:
        parts = path.replace("[]", "").split(".")
        here = tree
        for part in parts[:-1]:
            here = here.setdefault(part, Field("any")).children
        if parts[-1] in here:
            here[parts[-1]].type = type_name
        else:
            here[parts[-1]] = Field(type_name)
    return tree


def batch_tree(inner: NodeType | None) -> dict[str, Field]:
    """A batch node's outputs (pflow's six keys); each result is the inner node's outputs
    plus ``item`` when the inner node type declares its outputs."""
    tree = {key: Field(t) for key, t in BATCH_OUTPUT_TYPES.items()}
    if inner is not None and inner.output_types:
        tree["results"].items = Field("dict", {"item": Field("any"), **output_tree(inner)})
    return tree


def _pflow_parts(steps: tuple[Any, ...]) -> list[str]:
    """Steps as pflow splits a template on dots: ``commits[0]``, ``subject``."""
    parts: list[str] = []
    for step in steps:
        if isinstance(step, str):
            parts.append(step)
        elif parts:
            parts[-1] += f"[{step if isinstance(step, int) else 'i'}]"
    return parts


def _pflow_nested(parts: list[str], info: Field) -> bool:
    struct = info.children
    if not struct:
        return any(t.strip().lower() in _TRAVERSABLE for t in info.type.split("|"))
    for i, part in enumerate(parts):
        if part not in struct:
            return False
        f = struct[part]
        if i < len(parts) - 1:
            struct = f.children
            if not struct:
                return f.type.lower() in _TRAVERSABLE
        else:
            return True
    return True


def pflow_accepts_path(tree: dict[str, Field], steps: tuple[Any, ...]) -> bool:
    """pflow's ``_validate_namespaced_output`` for ``${node.<steps>}`` whose first key is
    declared: True when its validator lets the reference through."""
    parts = _pflow_parts(steps)
    head = parts[0]
    indexed = "[" in head and head.endswith("]")
    info = tree.get(head.split("[")[0])
    if info is None:
        return False
    if indexed:
        if info.items is not None:
            return len(parts) == 1 or _pflow_nested(parts[1:], info.items)
        return info.type in ("array", "str", "string")
    return len(parts) == 1 or _pflow_nested(parts[1:], info)


def pflow_infer(tree: dict[str, Field], steps: tuple[Any, ...]) -> str | None:
    """pflow's ``infer_template_type`` for ``${node.<steps>}``: the declared type, with its
    quirks (an index is dropped from the field it follows, ``${b.results[0]}`` is unknown)."""
    parts = _pflow_parts(steps)
    info = tree.get(parts[0].split("[")[0]) if parts else None
    if info is None:
        return None
    if len(parts) == 1 and "[" not in parts[0]:
        return info.type
    struct = info.children
    if not struct:
        return "any" if any(t.strip() in ("dict", "object", "any") for t in info.type.split("|")) else None
    for i, part in enumerate(parts[1:]):
        f = struct.get(part.split("[")[0])
        if f is None:
            return None
        if i == len(parts) - 2:
            return f.type
        struct = f.children
        if not struct:
            return "any" if f.type in ("dict", "object", "any") else None
    return None


@dataclass
class Walked:
    """Where a path through declared outputs led: the type there (None: not declared that
    deep), or the problem (``bad`` the step, ``keys`` the keys declared there)."""

    type: str | None
    bad: str | None = None
    what: str = ""
    keys: tuple[str, ...] = ()


def walk(tree: dict[str, Field], steps: tuple[Any, ...]) -> Walked:
    """pflow-tui's reading of ``${node.<steps>}`` through the declared outputs: a key a
    declared structure does not have, or a step into a number or a boolean, is a problem;
    an index into a list gives its element; a step into text (JSON, parsed when the template
    resolves) or into an undeclared dict is not checked further."""
    f: Field | None = tree.get(steps[0]) if isinstance(steps[0], str) else None
    if f is None:
        return Walked(None)
    t = f.type
    done = steps[0]
    for step in steps[1:]:
        kinds = set(base(t).split("|"))
        if isinstance(step, str):
            if f is not None and f.children and kinds & _DICTS:
                if step not in f.children:
                    return Walked(None, step, f"'{done}' declares no key '{step}'", tuple(f.children))
                f = f.children[step]
                t = f.type
            elif kinds & _TRAVERSABLE:
                return Walked("any")
            elif kinds & _LISTS:
                return Walked(None)  # a key of a list: not declared, found when it resolves
            else:
                return Walked(None, step, f"'{done}' is {t}: it has no keys")
            done = f"{done}.{step}"
        else:
            if kinds & _LISTS:
                if f is not None and f.items is not None:
                    f = f.items
                    t = f.type
                elif f is not None and f.children:
                    f = Field("dict", f.children)
                    t = "dict"
                else:
                    inner = t[t.index("[") + 1:t.rindex("]")] if "[" in t else "any"
                    f, t = None, inner
            elif kinds & {"any", "str", "string"}:
                return Walked("any")
            elif kinds & _DICTS:
                return Walked(None)
            else:
                return Walked(None, f"[{step if isinstance(step, int) else '...'}]",
                              f"'{done}' is {t}: it is not a list")
            done = f"{done}[{step if isinstance(step, int) else '...'}]"
    return Walked(t)
