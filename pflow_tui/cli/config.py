"""``pflow-tui config [--format text|json]``: every setting, its value and where it came
from (a flag, an environment variable, a file and its line, or the default)."""

from __future__ import annotations

import sys
from typing import Any

import orjson
from rich.console import Console
from rich.table import Table
from rich.text import Text

from ..settings import SETTINGS, Settings, Value, theme_problem
from ..text import literal
from .output import report_flow_error
from .parsing import Options


def command(opts: Options) -> int:
    settings: Settings = opts.settings
    problem = theme_problem(settings)
    if problem is not None:
        return report_flow_error(problem)
    if opts.format == "json":
        doc = {"settings": {key: {"value": v.value, "source": v.source, "env": SETTINGS[key].env}
                            for key, v in settings.values.items()},
               "files": [str(p) for p in settings.files]}
        sys.stdout.write(orjson.dumps(doc, option=orjson.OPT_INDENT_2).decode() + "\n")
        return 0
    console = Console(highlight=False)
    table = Table(box=None, pad_edge=False, header_style="bold")
    for name in ("setting", "value", "from"):
        table.add_column(name, overflow="fold", no_wrap=name == "setting")
    for key, value in settings.values.items():
        table.add_row(key, Text(literal(shown(value))),
                      Text(literal(value.source), "" if value.given else "dim"))
    console.print(table)
    files = ", ".join(str(p) for p in settings.files) or "none (pflow-tui.toml, [tool.pflow-tui] " \
                                                        "in pyproject.toml, or the user's config.toml)"
    console.print(Text.assemble(("files read: ", "dim"), literal(files)))
    return 0


def shown(value: Value) -> str:
    """The value on one line: a price table as its models, the process count's default."""
    v: Any = value.value
    if value.key == "processes" and v is None:
        import os

        return f"one per core ({os.cpu_count() or 1})"
    if isinstance(v, dict):
        return ", ".join(f"{model}: " + " ".join(f"{k} {r:g}" for k, r in rates.items())
                         for model, rates in v.items()) or "none"
    return str(v)
