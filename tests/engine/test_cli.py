"""The command line: exit codes 0 / 1 / 2 / 130, ``validate`` with warnings, Ctrl-C keeps the trace."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import orjson
import pytest

from pflow_tui.cli import main
from pflow_tui.engine.trace.writer import read_trace


@pytest.fixture(autouse=True)
def _isolated(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("COLUMNS", "250")


def write_flow(tmp_path: Path, doc: Any, name: str = "flow.json") -> str:
    path = tmp_path / name
    path.write_bytes(orjson.dumps(doc))
    return str(path)


def flat(text: str) -> str:
    return " ".join(text.split())


OK_FLOW = {
    "inputs": {"who": {"type": "string", "required": False, "default": "world"}},
    "nodes": [
        {"id": "greet", "type": "shell", "params": {"command": "echo hello ${who}"}},
        {"id": "shout", "type": "echo", "params": {"message": "${greet.stdout}", "uppercase": True}},
    ],
    "edges": [{"from": "greet", "to": "shout"}],
    "outputs": {"loud": {"source": "${shout.echo}"}},
}
FAILING_FLOW = {
    "nodes": [
        {"id": "fine", "type": "shell", "params": {"command": "echo fine"}},
        {"id": "boom", "type": "shell", "params": {"command": "echo broken >&2; exit 4"}},
        {"id": "never", "type": "shell", "params": {"command": "echo never"}},
    ],
    "edges": [{"from": "fine", "to": "boom"}, {"from": "boom", "to": "never"}],
}


# --- exit codes ------------------------------------------------------------------------------------

def test_ok_flow_exits_0(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    trace = tmp_path / "t.json"
    assert main(["run", write_flow(tmp_path, OK_FLOW), "who=tui", "--trace", str(trace)]) == 0
    out, err = capsys.readouterr()
    text = flat(out + err)
    assert "run ok" in text and "HELLO TUI" in text
    t = read_trace(trace)
    assert t.status == "ok" and t.outputs == {"loud": "HELLO TUI"}


def test_run_writes_the_default_trace_under_the_current_directory(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["run", write_flow(tmp_path, OK_FLOW)]) == 0
    capsys.readouterr()
    traces = list((tmp_path / ".pflow-tui" / "traces").glob("flow-*.json"))
    assert len(traces) == 1
    assert read_trace(traces[0]).status == "ok"


def test_failing_node_exits_1(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    trace = tmp_path / "t.json"
    assert main(["run", write_flow(tmp_path, FAILING_FLOW), "--trace", str(trace)]) == 1
    out, err = capsys.readouterr()
    text = flat(out + err)
    assert "flow.boom" in text and "exit code 4" in text and "broken" in text
    assert "Traceback" not in out + err
    t = read_trace(trace)
    assert t.status == "failed"
    assert [e["path"] for e in t.events if e["kind"] == "node.start"] == ["flow.fine", "flow.boom"]
    assert t.events[-1]["kind"] == "run.end"


@pytest.mark.parametrize(("doc", "args", "where"), [
    ({"nodes": [{"id": "a", "type": "shel", "params": {"command": "echo"}}]}, [], "nodes[0].type"),
    ({"inputs": {"n": {"type": "integer"}},
      "nodes": [{"id": "a", "type": "shell", "params": {"command": "echo ${n}"}}]}, ["n=abc"], "input 'n'"),
    ({"inputs": {"n": {"type": "integer"}},
      "nodes": [{"id": "a", "type": "shell", "params": {"command": "echo ${n}"}}]}, [], "inputs.n"),
    (b'{"nodes": [}', [], "line 1, column 12"),
])
def test_bad_input_exits_2(tmp_path: Path, capsys: pytest.CaptureFixture[str], doc: Any, args: list[str],
                           where: str) -> None:
    path = tmp_path / "flow.json"
    path.write_bytes(doc if isinstance(doc, bytes) else orjson.dumps(doc))
    assert main(["run", str(path), *args, "--trace", str(tmp_path / "t.json")]) == 2
    out, err = capsys.readouterr()
    assert where in flat(err)
    assert "Traceback" not in out + err
    assert not (tmp_path / "t.json").exists()


def test_missing_file_exits_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["run", str(tmp_path / "nope.json")]) == 2
    assert "file not found" in capsys.readouterr().err
    assert main(["validate", str(tmp_path)]) == 2  # a directory
    assert "cannot read" in capsys.readouterr().err


# --- validate ----------------------------------------------------------------------------------------

def test_validate_ok_exits_0(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["validate", write_flow(tmp_path, OK_FLOW)]) == 0
    err = flat(capsys.readouterr().err)
    assert "valid (2 nodes, 1 edge)" in err
    assert "warning" not in err
    assert not (tmp_path / ".pflow-tui").exists()  # validate runs nothing


def test_validate_lists_warnings(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    doc = {
        "inputs": {"n": {"type": "integer", "default": "three"}},
        "nodes": [
            {"id": "a", "type": "shell", "params": {"command": "echo ${n}", "timout": 5}},
            {"id": "orphan", "type": "echo", "params": {"message": "hi"}},
        ],
    }
    assert main(["validate", write_flow(tmp_path, doc)]) == 0
    err = flat(capsys.readouterr().err)
    assert "warning: nodes[0].params.timout: 'shell' has no param 'timout' (did you mean 'timeout'?)" in err
    assert "warning: nodes[1]: node 'orphan' is never reached from 'a'" in err
    assert "warning: inputs.n.default" in err
    assert "valid (2 nodes, 0 edges)" in err


def test_validate_bad_flow_exits_2_and_lists_every_problem(tmp_path: Path,
                                                           capsys: pytest.CaptureFixture[str]) -> None:
    doc = {"nodes": [{"id": "a", "type": "shel"}, {"id": "a", "type": "echo", "batch": {"items": []}}],
           "edges": [{"from": "a", "to": "b"}]}
    assert main(["validate", write_flow(tmp_path, doc)]) == 2
    err = flat(capsys.readouterr().err)
    assert "4 problems" in err
    for where in ("nodes[0].type", "nodes[1].id", "nodes[1].batch.items", "edges[0].to"):
        assert f" {where}: " in err


# --- Ctrl-C ------------------------------------------------------------------------------------------

def _start_sleeping_flow(tmp_path: Path, seconds: int) -> tuple[subprocess.Popen[str], Path]:
    flow = write_flow(tmp_path, {"nodes": [
        {"id": "first", "type": "shell", "params": {"command": "echo first"}},
        {"id": "nap", "type": "shell", "params": {"command": f"sleep {seconds}"}},
    ], "edges": [{"from": "first", "to": "nap"}]}, "sleepy.json")
    trace = tmp_path / "t.json"
    proc = subprocess.Popen(
        [sys.executable, "-m", "pflow_tui", "run", flow, "--trace", str(trace)],
        cwd=tmp_path, env={**os.environ, "COLUMNS": "250"}, text=True,
        stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        # a background test runner may ignore SIGINT; the child must not inherit that
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )
    deadline = time.monotonic() + 30
    while not trace.exists():  # the header is written just before the run starts
        assert proc.poll() is None, proc.communicate()
        assert time.monotonic() < deadline
        time.sleep(0.02)
    time.sleep(1.0)
    return proc, trace


@pytest.mark.slow
def test_sigint_exits_130_and_keeps_an_interrupted_trace(tmp_path: Path) -> None:
    proc, trace = _start_sleeping_flow(tmp_path, 5)
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=30)
    assert proc.returncode == 130, out + err
    assert "Traceback" not in out + err
    assert "interrupted" in out + err
    t = read_trace(trace)
    assert t.status == "interrupted"
    assert not t.truncated
    starts = [e for e in t.events if e["kind"] == "node.start"]
    assert [e["node"] for e in starts] == ["first", "nap"]
    nap_end = [e for e in t.events if e["kind"] == "node.end" and e["node"] == "nap"]
    assert nap_end and nap_end[0]["status"] == "cancelled"
    assert t.events[-1]["kind"] == "run.end"


@pytest.mark.slow
def test_sigint_stops_a_running_shell_command_promptly(tmp_path: Path) -> None:
    proc, _ = _start_sleeping_flow(tmp_path, 60)
    proc.send_signal(signal.SIGINT)
    t0 = time.monotonic()
    proc.communicate(timeout=50)
    assert proc.returncode == 130
    assert time.monotonic() - t0 < 15  # not the minute of the sleep (about 0.1 s on a quiet machine)
