"""A run's inputs: command-line ``NAME=VALUE`` text, piped stdin, the environment and the
declared defaults, checked against what the flow declares."""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from typing import Any

import orjson

from ..ir.jsontypes import is_json_type, json_type
from ..ir.spec import FlowSpec
from ..problems import FlowError, Problem, clip, did_you_mean

_BOOLS = {"true": True, "false": False, "yes": True, "no": False, "1": True, "0": False}


class Inputs(dict):  # type: ignore[type-arg]
    """A run's input values; ``from_env``: the names filled from an environment variable
    (secret: see redact.py)."""

    from_env: frozenset[str] = frozenset()


def parse_assignments(args: Sequence[str]) -> dict[str, str]:
    """``NAME=VALUE`` command-line arguments as a dict (raises FlowError on a bad one, and
    on a name given twice)."""
    out: dict[str, str] = {}
    bad = []
    for arg in args:
        name, sep, value = arg.partition("=")
        if not sep or not name:
            bad.append(Problem(f"argument {clip(repr(arg))}", "expected NAME=VALUE",
                               "pass inputs as name=value, e.g. count=3"))
        elif name in out:
            bad.append(Problem(f"argument {clip(repr(arg))}", f"'{clip(name)}' is given twice "
                               f"({clip(name)}={clip(out[name])} before)",
                               f"give {clip(name)}=VALUE once"))
        else:
            out[name] = value
    if bad:
        raise FlowError("command line", bad)
    return out


def from_text(text: str, typ: str | None) -> Any:
    """A command-line (or environment) value as its declared JSON type: text stays text for
    a string input, JSON is parsed, anything else is kept as the text."""
    if typ == "string":
        return text
    if typ == "boolean" and text.lower() in _BOOLS:
        return _BOOLS[text.lower()]
    try:
        return orjson.loads(text)
    except orjson.JSONDecodeError:
        return text


def prepare_inputs(spec: FlowSpec, given: Mapping[str, Any], *, as_text: bool = False,
                   stdin: str | None = None) -> dict[str, Any]:
    """Check and convert workflow inputs: given values, then piped stdin, then defaults.

    ``as_text``: the values are command-line text, to be converted to the declared type.
    """
    problems: list[Problem] = []
    values = Inputs()
    from_env = set()
    for name, raw in given.items():
        if name not in spec.inputs:
            fix = did_you_mean(name, spec.inputs, "declared inputs") if spec.inputs else (
                "this flow declares no inputs")
            problems.append(Problem(f"input '{clip(name)}'", "not an input of this flow", fix))
            continue
        decl = spec.inputs[name]
        value = from_text(raw, decl.type) if as_text and isinstance(raw, str) else raw
        if decl.type == "number" and isinstance(value, int) and not isinstance(value, bool):
            value = value
        if decl.type and not is_json_type(value, decl.type):
            problems.append(Problem(
                f"input '{name}'", f"expected {decl.type}, got {json_type(value)} ({clip(repr(raw))})",
                f"pass {'an' if decl.type[:1] in 'aeiou' else 'a'} {decl.type} value, "
                f"e.g. {name}={_example(decl.type)}"))
            continue
        values[name] = value
    for name, decl in spec.inputs.items():
        if name in values or name in given:
            continue
        if decl.stdin and stdin is not None:
            values[name] = stdin[:-1] if stdin.endswith("\n") else stdin  # as pflow: one newline off
        elif name in os.environ:  # as pflow: the environment variable of the same name
            value = from_text(os.environ[name], decl.type)
            if decl.type and not is_json_type(value, decl.type):
                problems.append(Problem(
                    f"input '{name}'", f"environment variable {name}: expected {decl.type}, "
                    f"got {json_type(value)}", f"unset {name} or give it a {decl.type} value"))
            else:
                values[name] = value
                from_env.add(name)
        elif decl.has_default:
            values[name] = decl.default
        elif decl.required:
            problems.append(Problem(f"inputs.{name}", f"required input '{name}' is missing",
                                    f"pass it on the command line: {name}=VALUE"
                                    + (f" ({decl.description})" if decl.description else "")))
        else:
            values[name] = None
    if problems:
        raise FlowError(spec.source, problems)
    values.from_env = frozenset(from_env)
    return values


def _example(typ: str) -> str:
    return {"string": "text", "integer": "3", "number": "2.5", "boolean": "true",
            "object": "'{\"k\": 1}'", "array": "'[1, 2]'"}.get(typ, "value")


def child_inputs(child: FlowSpec, params: Mapping[str, Any]) -> dict[str, Any]:
    """A nested flow's inputs from its ``workflow`` node's resolved params (FlowError: they
    do not fit)."""
    mapping = params.get("param_mapping") or {}
    if params.get("storage_mode", "mapped") == "isolated":
        mapping = {}
    return prepare_inputs(child, mapping)


def note_secrets(redactor: Any, child: FlowSpec, inputs: dict[str, Any]) -> None:
    """A nested flow's secret inputs are the run's secrets too (``redactor``: the run's
    :class:`~..trace.redact.Redactor`, or None)."""
    if redactor is not None:
        from ..trace.redact import input_secrets

        for name, value in input_secrets(child, inputs).items():
            redactor.add_input(name, value)
