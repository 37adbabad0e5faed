"""A JSON Schema of the flow files pflow-tui reads, for editors (``pflow-tui schema``).

It is generated from the tables the validator checks with (:mod:`.keys`: the keys of the
flow, its nodes, edges, batch configs, inputs, outputs, parallel groups and rate limits,
with their JSON types; the node types of the registry with their params), so the two
cannot drift apart. A flow file names it with a top-level ``"$schema"`` key, which
pflow-tui accepts and ignores.

The schema describes a flow as written: what pflow's normalisation accepts is allowed
too (``ir_version`` and ``edges`` may be left out, a node's ``parameters`` for ``params``,
an edge's ``source``/``target`` for ``from``/``to``, a saved-workflow envelope
``{"ir": {...}}``). It cannot say everything ``pflow-tui validate`` checks (templates,
edges between existing nodes, unique ids, param types given by a template): it is for
completion and the first checks while typing. The aliases of docs/aliases.md are not in it.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ..nodes.base import NodeType, Param
from . import keys as ir_keys
from .items import SOURCE_KEYS
from .jsontypes import SEGMENT_RE

DRAFT = "http://json-schema.org/draft-07/schema#"
#: a string holding a template: stands for any value until the node runs
TEMPLATE = {"type": "string", "pattern": r"\$\{"}


def _json_types(spec: str) -> dict[str, Any]:
    if spec == "any":
        return {}
    types = spec.split("|")
    return {"type": types[0] if len(types) == 1 else types}


def _object(keys: Mapping[str, tuple[str, bool]], *, required: bool = True,
            extra: Mapping[str, Any] | None = None, descriptions: Mapping[str, str] | None = None,
            ) -> dict[str, Any]:
    """An object with exactly ``keys`` (a table of :mod:`.keys`: key -> (JSON types, required))."""
    props: dict[str, Any] = {}
    for key, (types, _) in keys.items():
        props[key] = {**_json_types(types), **(extra or {}).get(key, {})}
        if descriptions and key in descriptions:
            props[key]["description"] = descriptions[key]
    out: dict[str, Any] = {"type": "object", "properties": props, "additionalProperties": False}
    need = [k for k, (_, req) in keys.items() if req]
    if required and need:
        out["required"] = need
    return out


_PARAM_JSON = {"str": "string", "int": "integer", "float": "number", "bool": "boolean",
               "dict": "object", "list": "array"}


def param_schema(p: Param) -> dict[str, Any]:
    """A param's value: its declared JSON type (or its choices), or a template."""
    if p.choices and not hasattr(p.choices, "why_missing"):  # (plugin names: not listed)
        out: dict[str, Any] = {"anyOf": [{"enum": list(p.choices)}, TEMPLATE]}
    elif p.type == "any":
        out = {}
    elif p.type == "text":  # a string, or data written as JSON (write-file content)
        out = {"type": ["string", "object", "array"]}
    elif _PARAM_JSON.get(p.type, "string") == "string":
        out = {"type": "string"}  # a template is a string too
    else:
        out = {"anyOf": [{"type": _PARAM_JSON[p.type]}, TEMPLATE]}
    if p.description:
        out["description"] = p.description
    if p.default is not None:
        out["default"] = p.default
    return out


def node_type_schema(t: NodeType) -> dict[str, Any]:
    """``if {"type": NAME} then params: {...}``: completion and checks of a type's params.
    Unknown params stay allowed (``validate`` warns about them)."""
    params: dict[str, Any] = {"type": "object",
                              "properties": {p.name: param_schema(p) for p in t.params}}
    need = [p.name for p in t.params if p.required]
    if need:
        params["required"] = need
    return {"if": {"properties": {"type": {"const": t.name}}, "required": ["type"]},
            "then": {"properties": {"params": params, "parameters": params}}}


def flow_schema(registry: Mapping[str, NodeType] | None = None) -> dict[str, Any]:
    """The JSON Schema (draft-07) of a flow file, from the validator's key tables."""
    if registry is None:
        # imported here for start-up time: the registry loads importlib.metadata (~20 ms)
        from ..registry import registry as default_registry

        registry = default_registry()
    types = dict(registry.items())

    node = _object(ir_keys.NODE_KEYS, extra={
        "id": {"pattern": ir_keys.ID_RE.pattern, "description": "unique node id"},
        "type": {"anyOf": [{"enum": sorted(types)}, {"type": "string"}],
                 "description": "a registered node type"},
        "executor": {"enum": list(ir_keys.EXECUTORS)},
    }, descriptions={"params": "the node type's params (templates ${...} allowed)",
                     "batch": "run the node once per item"})
    node["properties"]["parameters"] = {"type": "object", "description": "pflow's old name of params"}
    node["properties"]["batch"] = {"$ref": "#/definitions/batch"}
    node["allOf"] = [node_type_schema(t) for _, t in sorted(types.items())]

    edge = _object(ir_keys.EDGE_KEYS, required=False)
    edge["properties"].update({"source": {"type": "string", "description": "pflow's old name of from"},
                               "target": {"type": "string", "description": "pflow's old name of to"}})
    edge["anyOf"] = [{"required": ["from", "to"]}, {"required": ["source", "to"]},
                     {"required": ["from", "target"]}, {"required": ["source", "target"]}]

    items_source = {"type": "object", "minProperties": 1, "maxProperties": 1, "additionalProperties": False,
                    "properties": {k: {"type": "string", "minLength": 1, "description": d}
                                   for k, d in SOURCE_KEYS.items()}}
    batch = _object(ir_keys.BATCH_KEYS, extra={
        "items": {"anyOf": [TEMPLATE, {"type": "array", "minItems": 1},
                            {"$ref": "#/definitions/items_source"}]},
        "as": {"pattern": r"^[A-Za-z_]\w*$"},
        "error_handling": {"enum": ["fail_fast", "continue"]},
        "max_concurrent": {"minimum": 1, "maximum": 100},
        "max_retries": {"minimum": 1, "maximum": 10},
        "retry_wait": {"minimum": 0},
        "batch_size": {"minimum": 1},
    })
    batch["properties"]["items"].pop("type", None)  # the anyOf says it

    inputs = _object(ir_keys.INPUT_KEYS, extra={"type": {"enum": list(ir_keys.INPUT_TYPES)}})
    outputs = _object(ir_keys.OUTPUT_KEYS, descriptions={
        "source": "${node.key} or node.key: written at the root of the store after the run"})
    group = _object(ir_keys.GROUP_KEYS, extra={"error_handling": {"enum": ["fail_fast", "continue"]},
                                          "max_concurrent": {"minimum": 1}})
    limit = _object(ir_keys.LIMIT_KEYS, extra={k: {"minimum": 1} for k in ir_keys.LIMIT_KEYS})
    limit["minProperties"] = 1

    flow = _object(ir_keys.TOP_KEYS, required=False, extra={
        "ir_version": {"pattern": r"^0\.\d+\.\d+$", "default": ir_keys.IR_VERSION},
        "nodes": {"items": {"$ref": "#/definitions/node"}, "minItems": 1},
        "edges": {"items": {"$ref": "#/definitions/edge"}},
        "inputs": {"additionalProperties": {"$ref": "#/definitions/input"},
                   "propertyNames": {"pattern": f"^{SEGMENT_RE.pattern}$"}},
        "outputs": {"additionalProperties": {"$ref": "#/definitions/output"}},
        "parallel_groups": {"additionalProperties": {"$ref": "#/definitions/parallel_group"}},
        "rate_limits": {"additionalProperties": {"$ref": "#/definitions/rate_limit"}},
        "template_resolution_mode": {"enum": ["strict", "permissive"]},
        "max_visits": {"minimum": 1},
    }, descriptions={"$schema": "this schema (ignored when the flow runs)"})
    flow["required"] = ["nodes"]  # ir_version and edges are added when missing
    envelope = {"type": "object", "required": ["ir"], "not": {"required": ["nodes"]},
                "properties": {"$schema": {"type": "string"}, "name": {"type": "string"},
                               "description": {"type": "string"}, "ir": {"$ref": "#/definitions/flow"}},
                "description": "a saved workflow: its ir is the flow"}
    return {
        "$schema": DRAFT,
        "title": "pflow IR 0.1.0 flow (pflow-tui)",
        "description": "A pflow JSON workflow as pflow-tui reads it (docs/compatibility.md).",
        "anyOf": [{"$ref": "#/definitions/flow"}, envelope],
        "definitions": {"flow": flow, "node": node, "edge": edge, "batch": batch,
                        "items_source": items_source, "input": inputs, "output": outputs,
                        "parallel_group": group, "rate_limit": limit},
    }
