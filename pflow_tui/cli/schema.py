"""``pflow-tui schema [-o FILE]``: the JSON Schema of flow files, for editors."""

from __future__ import annotations

import json

from ..engine.ir.jsonschema import flow_schema
from .output import write_output
from .parsing import Options


def command(opts: Options) -> int:
    return write_output(json.dumps(flow_schema(), indent=2, ensure_ascii=False) + "\n", opts.output)
