"""pflow-tui against results recorded on the real pflow (tests/compat/goldens).

Every flow in tests/compat/flows runs headless on pflow-tui's engine, laid out and
normalised as ``scripts/record_pflow_goldens.py`` did on pflow (see compat_cases.py); the exit
status, final store and files must equal the golden. A case listed in differences.json
differs on purpose: the entry names the parts that differ (left out of the comparison; the
rest must match) and a phrase of docs/compatibility.md that gives the reason (checked), so
no difference goes undocumented.
"""

from __future__ import annotations

import contextlib
import io
import json
import sys
from pathlib import Path
from typing import Any

import compat_cases as cases
import pytest

from pflow_tui.engine.ir.load import load_flow
from pflow_tui.engine.problems import FlowError
from pflow_tui.engine.run.executor import run_flow
from pflow_tui.engine.run.inputs import parse_assignments, prepare_inputs

DOCS = Path(__file__).resolve().parents[2] / "docs" / "compatibility.md"
NAMES = cases.names()
DIFFERENT = cases.differences()


def run_tui(name: str, workdir: Path) -> dict[str, Any]:
    """Run the case on pflow-tui as ``pflow-tui run flow.json k=v`` would: exit status and store."""
    opts = cases.prepare(name, workdir)
    if opts.get("mcp"):
        pytest.importorskip("mcp")
        cases.write_mcp_config(Path.home(), sys.executable)
    store: dict[str, Any] = {}
    with cases.http_server() if opts.get("http") else contextlib.nullcontext() as base:
        try:
            spec = load_flow(workdir / "flow.json")
            stdin = opts.get("stdin") if any(i.stdin for i in spec.inputs.values()) else None
            inputs = prepare_inputs(spec, parse_assignments(cases.args_of(opts, base)), as_text=True,
                                    stdin=stdin)
            res = run_flow(spec, inputs, trace=workdir.parent / "trace.json")
            store = res.store
            code = 0 if res.status == "ok" else 1
        except FlowError:
            code = 2
        return cases.result(code, store, workdir)


@pytest.fixture
def workdir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    run = tmp_path / "run"
    run.mkdir()
    monkeypatch.chdir(run)
    (tmp_path / "home").mkdir()
    monkeypatch.setenv("HOME", str(tmp_path / "home"))  # ~/.pflow/ of a case (mcp)
    for key, value in cases.GIT_ENV.items():
        monkeypatch.setenv(key, value)
    monkeypatch.setattr("sys.stdin", io.StringIO(""))
    return run


def _drop(result: dict[str, Any], path: str) -> None:
    """Remove ``path`` ("store.node.key", "store.node.errors.1.error", "exit") from a result."""
    *parents, last = path.split(".")
    here: Any = result
    for part in parents:
        here = here[int(part)] if isinstance(here, list) else here.get(part, {})
    if isinstance(here, list):
        here[int(last)] = "<differs>"
    elif isinstance(here, dict):
        here.pop(last, None)


@pytest.mark.parametrize("name", NAMES)
def test_matches_pflow(name: str, workdir: Path) -> None:
    """Equal to pflow's result; a documented difference leaves out only the parts it names
    (which must still differ: a difference that went away is taken off the list)."""
    want = cases.golden(name)
    assert want is not None, f"no golden for {name}: run scripts/record_pflow_goldens.py {name}"
    got = run_tui(name, workdir)
    if name not in DIFFERENT:
        assert got == want
        return
    assert got != want, f"{name} now matches pflow: take it out of differences.json"
    for path in DIFFERENT[name]["ignore"]:
        _drop(got, path)
        _drop(want, path)
    assert got == want


def test_every_golden_has_a_flow() -> None:
    assert sorted(p.stem for p in cases.GOLDENS.glob("*.json")) == NAMES


@pytest.mark.parametrize("name", sorted(DIFFERENT))
def test_differences_are_documented(name: str) -> None:
    assert name in NAMES
    phrase = DIFFERENT[name]["docs"]
    assert phrase in " ".join(DOCS.read_text().split()), \
        f"{name}: docs/compatibility.md does not say {phrase!r}"


def test_corpus_covers_every_pflow_node_type() -> None:
    """Each node type pflow-tui shares with pflow runs in at least one case."""
    used = set()
    for name in NAMES:
        doc = json.loads((cases.FLOWS / f"{name}.json").read_text())
        nodes = doc.get("ir", doc).get("nodes")
        used |= {n["type"] for n in nodes if isinstance(n, dict)} if isinstance(nodes, list) else set()
    shared = {"shell", "echo", "read-file", "write-file", "code", "copy-file", "move-file", "delete-file",
              "git-status", "git-log", "git-commit", "git-checkout", "git-get-latest-tag", "git-push", "http",
              "workflow"}
    assert shared <= used, sorted(shared - used)
