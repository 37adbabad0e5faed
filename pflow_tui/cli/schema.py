"""``pflow-tui schema [-o FILE]``: the JSON Schema of flow files, for editors."""

from __future__ import annotations

import json
import sys
from pathlib import Path

from ..engine.ir.jsonschema import flow_schema
from .output import print_error
from .parsing import Options


def command(opts: Options) -> int:
    text = json.dumps(flow_schema(), indent=2, ensure_ascii=False) + "\n"
    if not opts.output:
        sys.stdout.write(text)
        return 0
    try:
        Path(opts.output).write_text(text, encoding="utf-8")
    except OSError as exc:
        print_error(f"cannot write {opts.output}: {exc.strerror or exc}")
        return 2
    return 0
