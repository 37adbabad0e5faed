"""The command line is a package of one module per command: only the command given is
imported (start-up time), and `python -m pflow_tui.cli` still runs it."""

from __future__ import annotations

import subprocess
import sys
from importlib.metadata import entry_points

import pytest

from pflow_tui import cli

PROBE = """
import sys
import pflow_tui.cli
{then}
print(",".join(sorted(m for m in sys.modules if m.startswith(("pflow_tui.engine", "pflow_tui.app",
                                                              "pflow_tui.cli.", "rich", "textual")))))
"""


def loaded_after(then: str = "") -> set[str]:
    out = subprocess.run([sys.executable, "-c", PROBE.format(then=then)], capture_output=True, text=True,
                         check=True)
    return set(filter(None, out.stdout.strip().split(",")))


@pytest.mark.parametrize("command", ["", *cli.SUBCOMMANDS])
def test_every_command_has_its_module(command: str) -> None:
    module = cli.command_module(command)
    assert module.__name__ == f"pflow_tui.cli.{command or 'run'}" and callable(module.command)
    if command:
        assert cli.cli.commands[command].name == command


def test_importing_the_cli_loads_no_command_nor_the_engine() -> None:
    assert loaded_after() == {"pflow_tui.cli.parsing"}


def test_a_command_loads_what_it_uses_and_no_textual() -> None:
    schema = loaded_after("import pflow_tui.cli.schema")
    assert "pflow_tui.engine.ir.jsonschema" in schema and "pflow_tui.engine.run.executor" not in schema
    for command in ("run", "rerun", "diff", "runs", "replay", "validate", "export", "schema", "serve"):
        loaded = loaded_after(f"import pflow_tui.cli.{command}")
        assert not any(m.startswith("textual") for m in loaded), command


def test_python_dash_m_runs_the_cli() -> None:
    for module in ("pflow_tui", "pflow_tui.cli"):
        out = subprocess.run([sys.executable, "-m", module, "--version"], capture_output=True, text=True)
        assert out.returncode == 0 and out.stdout.startswith("pflow-tui "), module


def test_the_pflow_tui_script_is_the_packages_main() -> None:
    (script,) = entry_points(group="console_scripts", name="pflow-tui")
    assert script.value == "pflow_tui.cli:main" and script.load() is cli.main
