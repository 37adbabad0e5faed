"""NodeAbort (what pflow raises out of a node) and NodeType.reads (store keys a node reads)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pflow_tui.engine.ir.load import build_flow
from pflow_tui.engine.nodes.base import NodeType, Param, RunContext, abort
from pflow_tui.engine.registry import registry
from pflow_tui.engine.run.executor import run_flow
from pflow_tui.engine.run.inputs import prepare_inputs
from pflow_tui.engine.trace import events as ev
from pflow_tui.engine.trace.writer import read_trace

attempts: list[int] = []


def _flaky_abort(params: dict[str, Any], ctx: RunContext) -> dict[str, Any]:
    attempts.append(ctx.attempt)
    raise abort(ValueError, f"bad {params.get('value')}")


FLAKY = NodeType("aborts", _flaky_abort, params=(Param("value"),), max_retries=2)


def reg() -> dict[str, NodeType]:
    return {**registry(), FLAKY.name: FLAKY}


def test_abort_is_retried_then_fails_the_run_without_the_error_edge(tmp_path: Path) -> None:
    attempts.clear()
    spec = build_flow({"nodes": [{"id": "a", "type": "aborts", "params": {"value": 1}},
                                 {"id": "h", "type": "echo", "params": {"message": "handled"}}],
                       "edges": [{"from": "a", "to": "h", "action": "error"}]}, registry=reg())
    result = run_flow(spec, {}, trace=tmp_path / "t.json", registry=reg())
    assert attempts == [1, 2]
    assert result.status == "failed"
    assert result.store["a"] == {} and "h" not in result.store
    assert result.error is not None and result.error["message"] == "bad 1"
    trace = read_trace(tmp_path / "t.json")
    ends = [e for e in trace.events if e["kind"] == ev.NODE_END]
    assert [(e["node"], e["status"]) for e in ends] == [("a", "error")]  # one node.end, not two
    assert ends[0]["error"]["type"] == "ValueError"


def test_abort_in_a_continue_batch_is_the_items_exception(tmp_path: Path) -> None:
    spec = build_flow({"nodes": [{"id": "e", "type": "echo", "params": {"message": "${item}"},
                                  "batch": {"items": ["a", 5], "error_handling": "continue"}}]})
    result = run_flow(spec, {}, trace=tmp_path / "t.json")
    assert result.status == "ok"
    out = result.store["e"]
    assert out["results"][1] is None and out["error_count"] == 1
    assert out["errors"][0]["exception"]["type"] == "TypeError"
    assert "echo message must be a string, got int" in out["errors"][0]["error"]


def test_delete_file_reads_confirm_delete_from_the_inputs(tmp_path: Path) -> None:
    victim = tmp_path / "v.txt"
    victim.write_text("x")
    doc = {"inputs": {"confirm_delete": {"type": "boolean", "required": True}},
           "nodes": [{"id": "rm", "type": "delete-file", "params": {"file_path": str(victim)}}]}
    spec = build_flow(doc)
    kept = run_flow(spec, prepare_inputs(spec, {"confirm_delete": False}), trace=tmp_path / "1.json")
    assert kept.store["rm"] == {"error": f"Error: Deletion of '{victim}' not confirmed. "
                                         "Set shared['confirm_delete'] = True to confirm."}
    assert victim.exists()
    gone = run_flow(spec, prepare_inputs(spec, {"confirm_delete": True}), trace=tmp_path / "2.json")
    assert gone.store["rm"] == {"deleted": f"Successfully deleted '{victim}'"}
    assert not victim.exists()
