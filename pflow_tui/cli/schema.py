"""``pflow-tui schema [-o FILE]``: the JSON Schema of flow files, for editors."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from ..engine.ir.jsonschema import flow_schema
from .output import print_error
from .parsing import common_arguments


def parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="pflow-tui schema",
        description="Print the JSON Schema (draft-07) of pflow-tui's flow files on stdout: keys, node "
                    "types and their params. Save it and name it in a flow (\"$schema\": "
                    "\"flow.schema.json\") or in your editor's settings for completion and checks "
                    "while typing; `pflow-tui validate` checks more (templates, edges, ids).")
    parser.add_argument("-o", "--output", metavar="FILE", help="write it to FILE instead of stdout")
    common_arguments(parser)
    return parser


def command(opts: argparse.Namespace) -> int:
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
