"""Consent in a real terminal: a trace made with another key (someone else's) is replayed
with nothing run; ``R`` asks first (``n``: nothing runs, ``y``: it runs), and ``pflow-tui
rerun`` on a terminal asks ``Run it? [y/N]``. A marker file says whether anything ran."""

from __future__ import annotations

import json
import os
import subprocess
import time
from pathlib import Path

import pytest
from conftest import PFLOW_TUI, Terminal


@pytest.fixture
def foreign(tmp_path: Path) -> tuple[Path, Path]:
    """(the trace, the marker): a run made with another user's key of a flow whose node b
    leaves the marker and fails."""
    marker = tmp_path / "MARKER"
    flow = {"name": "evil", "nodes": [
        {"id": "a", "type": "shell", "params": {"command": "echo hello"}},
        {"id": "b", "type": "shell", "params": {"command": f"touch {marker}; exit 1"}}],
        "edges": [{"from": "a", "to": "b"}]}
    (tmp_path / "flow.json").write_text(json.dumps(flow))
    trace = tmp_path / "theirs.json"
    env = {**os.environ, "PFLOW_TUI_CONFIG_DIR": str(tmp_path / "someone-else")}
    subprocess.run([str(PFLOW_TUI), "run", "flow.json", "--trace", str(trace)], cwd=tmp_path, env=env,
                   capture_output=True, check=False, timeout=60)
    assert marker.exists()
    marker.unlink()
    return trace, marker


def test_R_in_a_replay_asks_and_runs_only_on_y(foreign: tuple[Path, Path], tmp_path: Path) -> None:
    trace, marker = foreign
    term = Terminal(tmp_path, 120, 40).start("replay", trace)
    try:
        term.wait_for(lambda s: "event 9 / 9" in s, what="the replay")
        term.type("R")
        screen = term.wait_for("Re-run a trace you did not make?")
        assert f"touch {marker}" in screen and "signed by someone else" in screen
        term.type("n")
        term.wait_for(lambda s: "did not make" not in s, what="the question to close")
        time.sleep(0.5)
        assert not marker.exists()
        term.type("R")
        term.wait_for("Re-run a trace you did not make?")
        term.type("y")
        term.wait_for(lambda s: marker.exists(), timeout=20, what="the re-run to run node b")
        term.wait_for(lambda s: ".pflow-tui/traces/evil-" in s and "run.end" in s, timeout=20,
                      what="the re-run to end")
        term.type("q")
        if "Quit while the run is going?" in term.wait_for(
                lambda s: "Quit while" in s or term.exit_file.exists(), what="q to quit or ask"):
            term.type("y")  # (its process was still ending)
        term.wait_exit()
    finally:
        term.close()


def test_rerun_on_a_terminal_asks(foreign: tuple[Path, Path], tmp_path: Path) -> None:
    trace, marker = foreign
    term = Terminal(tmp_path, 120, 40).start("rerun", trace, "--trace", tmp_path / "no.json")
    try:
        term.wait_for("Run it? [y/N]")
        term.type("n")
        term.press("Enter")
        assert term.wait_exit() == 2
        assert not marker.exists() and not (tmp_path / "no.json").exists()
    finally:
        term.close()
    term = Terminal(tmp_path, 120, 40).start("rerun", trace, "--trace", tmp_path / "yes.json")
    try:
        term.wait_for("Run it? [y/N]")
        term.type("y")
        term.press("Enter")
        assert term.wait_exit() == 1  # node b ran, left the marker, and failed again
        assert marker.exists()
    finally:
        term.close()
