"""``pflow-tui run --output-format json``: one JSON document on stdout, whatever happened:
pflow's keys (success, status, error, duration_ms, trace_path, total_cost_usd) and ours
(outputs, flow, usage)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import orjson
import pytest

from pflow_tui.cli import main
from pflow_tui.engine.trace.writer import read_trace

KEYS = {"success", "status", "flow", "outputs", "error", "duration_ms", "trace_path", "usage",
        "total_cost_usd"}
OK_FLOW = {"name": "hi", "inputs": {"who": {"type": "string", "required": False, "default": "world"}},
           "nodes": [{"id": "greet", "type": "echo",
                      "params": {"message": "hello ${who}", "data": {"n": 1}}}],
           "outputs": {"said": {"source": "${greet.echo}"}, "data": {"source": "${greet.data}"}}}
FAILING = {"name": "f", "nodes": [
    {"id": "fine", "type": "shell", "params": {"command": "echo fine"}},
    {"id": "boom", "type": "shell", "params": {"command": "echo broken >&2; exit 4"}}],
    "edges": [{"from": "fine", "to": "boom"}]}


@pytest.fixture(autouse=True)
def _isolated(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("COLUMNS", "250")


def write(tmp_path: Path, doc: Any, name: str = "flow.json") -> str:
    (tmp_path / name).write_bytes(orjson.dumps(doc))
    return name


def document(capsys: pytest.CaptureFixture[str]) -> dict[str, Any]:
    out = capsys.readouterr().out
    assert out.count("\n") == 1, out  # one document, one line, nothing else on stdout
    doc = orjson.loads(out)
    assert set(doc) == KEYS
    return doc


def test_a_run_that_succeeds(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    flow = write(tmp_path, OK_FLOW)
    assert main(["run", flow, "who=tui", "--output-format", "json", "--trace", "t.json"]) == 0
    doc = document(capsys)
    trace = read_trace(tmp_path / "t.json")
    assert doc["success"] is True and doc["status"] == "success" and doc["flow"] == "hi"
    assert doc["outputs"] == {"said": "hello tui", "data": {"n": 1}} == trace.outputs
    assert doc["error"] is None and doc["trace_path"] == "t.json"
    assert 0 < trace.events[-1]["duration"] * 1000 <= doc["duration_ms"] < 60_000
    assert doc["usage"] is None and doc["total_cost_usd"] is None  # no llm node ran


def test_llm_usage_and_its_cost(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                monkeypatch: pytest.MonkeyPatch) -> None:
    cfg = tmp_path / "cfg"
    cfg.mkdir()
    (cfg / "prices.json").write_text('{"offline": {"input": 3.0, "output": 15.0}}')
    monkeypatch.setenv("PFLOW_TUI_CONFIG_DIR", str(cfg))
    flow = write(tmp_path, {"name": "ask", "nodes": [
        {"id": "q", "type": "llm", "params": {"model": "offline", "prompt": "one two three"}}]})
    assert main(["run", flow, "--output-format", "json", "--trace", "t.json"]) == 0
    doc = document(capsys)
    usage = read_trace(tmp_path / "t.json").events[-1]["usage"]
    assert doc["usage"] == usage and usage["calls"] == 1
    assert doc["total_cost_usd"] == pytest.approx(
        (usage["input_tokens"] * 3.0 + usage["output_tokens"] * 15.0) / 1e6)


def test_a_run_that_fails(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["run", write(tmp_path, FAILING), "--output-format", "json", "--trace", "t.json"]) == 1
    doc = document(capsys)
    assert doc["success"] is False and doc["status"] == "failed" and doc["outputs"] == {}
    error = doc["error"]
    assert error["path"] == "f.boom" and "exit code 4" in error["message"] and "traceback" not in error
    assert doc["trace_path"] == "t.json" and read_trace(tmp_path / "t.json").status == "failed"


def test_bad_input_is_a_document_too(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    bad = write(tmp_path, {"inputs": {"n": {"type": "integer"}},
                           "nodes": [{"id": "a", "type": "shel", "params": {}}]})
    assert main(["run", bad, "n=x", "--output-format", "json"]) == 2
    doc = document(capsys)
    assert doc["status"] == "invalid" and doc["success"] is False and doc["trace_path"] is None
    wheres = [p["where"] for p in doc["error"]["problems"]]
    assert "nodes[0].type" in wheres and all(p["fix"] is not None for p in doc["error"]["problems"])
    (tmp_path / "t.json").write_text("taken")
    ok = write(tmp_path, OK_FLOW, "ok.json")
    assert main(["run", ok, "--output-format", "json", "--trace", "t.json"]) == 2
    doc = document(capsys)
    assert doc["status"] == "invalid" and doc["error"]["type"] == "TraceExists"
    assert main(["run", "ok.json", "--paused", "--output-format", "json"]) == 2
    assert "need the debugger" in document(capsys)["error"]["message"]


def test_an_interrupted_run(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                            monkeypatch: pytest.MonkeyPatch) -> None:
    def interrupted(*args: Any, **kwargs: Any) -> None:
        raise KeyboardInterrupt

    monkeypatch.setattr("pflow_tui.cli.run.run_flow", interrupted)
    assert main(["run", write(tmp_path, OK_FLOW), "--output-format", "json", "--trace", "t.json"]) == 130
    doc = document(capsys)
    assert doc["status"] == "interrupted" and doc["trace_path"] == "t.json"
    assert doc["error"] == {"type": "KeyboardInterrupt", "message": "interrupted (Ctrl-C)"}


def test_text_stays_the_default_and_a_wrong_format_is_named(tmp_path: Path,
                                                           capsys: pytest.CaptureFixture[str]) -> None:
    flow = write(tmp_path, OK_FLOW)
    assert main(["run", flow, "--trace", "t.json"]) == 0
    assert orjson.loads(capsys.readouterr().out) == {"said": "hello world", "data": {"n": 1}}
    assert main(["run", flow, "--output-format", "yaml"]) == 2
    assert "invalid choice: 'yaml' (choose from text, json)" in " ".join(capsys.readouterr().err.split())
