"""pflow's MCP tool nodes ``mcp-<server>-<tool>`` against a tiny stdio server the tests start
(tests/engine/mcp/tiny_server.py). tests/compat/flows/probe-mcp.json holds the same calls
recorded on pflow; here: names, configuration and failures."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("mcp")

from pflow_tui.engine.ir.load import build_flow
from pflow_tui.engine.nodes.mcp import split_name
from pflow_tui.engine.problems import FlowError
from pflow_tui.engine.run.executor import run_flow

SERVER = Path(__file__).resolve().parent / "mcp" / "tiny_server.py"


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.chdir(tmp_path)
    return tmp_path


def configure(home: Path, **servers: dict[str, Any]) -> None:
    (home / ".pflow").mkdir(exist_ok=True)
    (home / ".pflow" / "mcp-servers.json").write_text(json.dumps({"mcpServers": servers}))


def tiny(**extra: Any) -> dict[str, Any]:
    return {"type": "stdio", "command": sys.executable, "args": [str(SERVER)], **extra}


def run(doc: dict[str, Any], tmp: Path, **inputs: Any) -> Any:
    return run_flow(build_flow(doc), inputs, trace=tmp / f"t{len(list(tmp.glob('t*.json')))}.json")


def test_the_server_name_may_hold_hyphens() -> None:
    known = {"my-srv": {}, "my": {}}
    assert split_name("mcp-my-srv-list-files", known) == ("my-srv", "list-files")
    assert split_name("mcp-my-tool", known) == ("my", "tool")
    assert split_name("mcp-other-tool", known) is None and split_name("mcp-my-", known) is None


def test_a_tool_call_writes_pflows_outputs(home: Path) -> None:
    configure(home, tiny=tiny())
    result = run({"nodes": [{"id": "add", "type": "mcp-tiny-add", "params": {"a": 2, "b": "${n}"}}],
                  "inputs": {"n": {"type": "integer"}}}, home, n=40)
    assert result.status == "ok"
    assert result.store["add"] == {"result": 42, "tiny_add_result": {"result": 42}}


def test_a_tool_error_takes_the_error_edge(home: Path) -> None:
    configure(home, tiny=tiny())
    result = run({"nodes": [{"id": "bad", "type": "mcp-tiny-fail", "params": {"reason": "x"}},
                            {"id": "fix", "type": "echo", "params": {"message": "${bad.error}"}}],
                  "edges": [{"from": "bad", "to": "fix", "action": "error"}]}, home)
    assert result.status == "ok"
    assert result.store["fix"]["echo"] == "Error executing tool fail: cannot: x"


def test_an_unconfigured_server_is_an_unknown_node_type(home: Path) -> None:
    configure(home, tiny=tiny())
    with pytest.raises(FlowError, match="unknown node type 'mcp-nope-add': no MCP server"):
        build_flow({"nodes": [{"id": "a", "type": "mcp-nope-add"}]})


def test_a_server_that_cannot_start_is_a_handled_failure(home: Path) -> None:
    configure(home, broken={"type": "stdio", "command": str(home / "no-such-server")})
    result = run({"nodes": [{"id": "a", "type": "mcp-broken-add", "params": {"a": 1}}]}, home)
    assert result.status == "failed"
    assert result.store["a"]["error"].startswith("MCP tool failed: ")
    assert result.store["a"]["error_details"] == {"server": "broken", "tool": "add", "timeout": False}


def test_a_bad_timeout_fails_the_node_as_in_pflow(home: Path) -> None:
    configure(home, tiny=tiny())
    result = run({"nodes": [{"id": "a", "type": "mcp-tiny-add", "params": {"a": 1, "b": 1, "timeout": 0}}]},
                 home)
    assert result.status == "failed" and result.store.get("a", {}) == {}
    assert "Invalid 'timeout' parameter: 0" in result.error["message"]
