"""The key tables of pflow IR 0.1.0: which keys each object of a flow file takes, with
their JSON types (the validator and ``pflow-tui schema`` both read them)."""

from __future__ import annotations

import re

from ..nodes.base import CLUSTER, PROCESS, THREAD

IR_VERSION = "0.1.0"
IR_MAJOR = IR_VERSION.split(".")[0]  # flows of another major version are refused
ID_RE = re.compile(r"^[A-Za-z_][\w-]*$")
VERSION_RE = re.compile(r"\d+\.\d+\.\d+")
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
EXECUTORS = (PROCESS, THREAD, CLUSTER)  # what a node may ask for; without the key, its type decides
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

#: What a batch node writes (pflow's batch outputs), with pflow's declared types.
BATCH_OUTPUT_TYPES = {"results": "array", "count": "number", "success_count": "number",
                      "error_count": "number", "errors": "array", "batch_metadata": "dict"}
