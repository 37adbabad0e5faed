"""LLM usage rolled up per model and per run: run.end's usage, the footer's summary, the
run result, and the cost from the user's price table."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from pflow_tui.engine.ir.load import build_flow
from pflow_tui.engine.run.executor import run_flow
from pflow_tui.engine.trace.runs import read_run
from pflow_tui.engine.trace.usage import UsageTally, run_cost, usage_text
from pflow_tui.engine.trace.writer import read_trace

FLOW = {"name": "u", "nodes": [
    {"id": "one", "type": "llm", "params": {"model": "offline", "prompt": "say hi to everyone here"}},
    {"id": "many", "type": "llm", "batch": {"items": ["a b", "c", "d e f"], "parallel": True},
     "params": {"model": "offline", "prompt": "word ${item}"}},
    {"id": "echo", "type": "echo", "params": {"message": "not an llm"}},
], "edges": [{"from": "one", "to": "many"}, {"from": "many", "to": "echo"}]}


@pytest.fixture(autouse=True)
def _config(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    folder = tmp_path / "cfg"
    folder.mkdir()
    monkeypatch.setenv("PFLOW_TUI_CONFIG_DIR", str(folder))
    return folder


def run(tmp_path: Path, doc: dict[str, Any] = FLOW) -> tuple[Any, list[dict[str, Any]]]:
    events: list[dict[str, Any]] = []
    result = run_flow(build_flow(doc), {}, trace=tmp_path / "t.json", sinks=[events.append])
    return result, events


def test_run_end_sums_every_call_once_per_model(tmp_path: Path) -> None:
    result, events = run(tmp_path)
    calls = [e["outputs"]["llm_usage"] for e in events
             if e["kind"] in ("node.end", "item.end") and "llm_usage" in (e.get("outputs") or {})]
    assert len(calls) == 4  # one node and three items; the batch node's own end is not a call
    [end] = [e for e in events if e["kind"] == "run.end"]
    usage = end["usage"]
    assert usage["calls"] == 4
    assert usage["input_tokens"] == sum(c["input_tokens"] for c in calls)
    assert usage["output_tokens"] == sum(c["output_tokens"] for c in calls)
    assert usage["models"] == {"offline": {k: usage[k] for k in (
        "input_tokens", "output_tokens", "cache_read_input_tokens", "cache_creation_input_tokens")}}
    assert "cost" not in usage  # no price known for 'offline'
    assert result.usage == usage
    summary = read_trace(tmp_path / "t.json").footer["summary"]
    assert (summary["llm_calls"], summary["input_tokens"]) == (4, usage["input_tokens"])
    record = read_run(tmp_path / "t.json")  # the runs list still reads the flat summary
    assert record.items == 3 and record.status == "ok"


def test_a_run_without_llm_calls_has_no_usage(tmp_path: Path) -> None:
    result, events = run(tmp_path, {"nodes": [{"id": "e", "type": "echo"}]})
    assert "usage" not in events[-1] and result.usage is None
    assert "input_tokens" not in read_trace(tmp_path / "t.json").footer["summary"]


def test_cost_from_the_users_price_table(tmp_path: Path, _config: Path) -> None:
    (_config / "prices.json").write_text(json.dumps({"offline": {"input": 2.0, "output": 10.0}}))
    result, _ = run(tmp_path)
    u = result.usage
    assert u["cost"] == pytest.approx((u["input_tokens"] * 2.0 + u["output_tokens"] * 10.0) / 1e6)
    assert usage_text(u).endswith(f"· ${u['cost']:.4f}")


def test_cost_counts_cached_input_at_its_own_rate_and_needs_every_model_priced() -> None:
    models = {"m": {"input_tokens": 1000, "output_tokens": 100, "cache_read_input_tokens": 400}}
    prices = {"m": {"input": 1.0, "output": 4.0, "cached_input": 0.5}}
    assert run_cost(models, prices) == pytest.approx((600 * 1.0 + 100 * 4.0 + 400 * 0.5) / 1e6)
    assert run_cost({**models, "other": models["m"]}, prices) is None
    assert run_cost(models, {"m": {"input": "free", "output": 1}}) is None


def test_tally_counts_only_sensible_numbers() -> None:
    tally = UsageTally()
    tally.add({"response": "no usage"})
    tally.add(None)
    tally.add({"llm_usage": {"model": "m", "input_tokens": 3, "output_tokens": True,
                             "cache_read_input_tokens": -1}})
    assert tally.to_json(prices={}) == {
        "calls": 1, "input_tokens": 3, "output_tokens": 0, "cache_read_input_tokens": 0,
        "cache_creation_input_tokens": 0,
        "models": {"m": {"input_tokens": 3, "output_tokens": 0, "cache_read_input_tokens": 0,
                         "cache_creation_input_tokens": 0}}}


def test_the_calls_of_nested_flows_count(tmp_path: Path) -> None:
    inner = {"nodes": [{"id": "ask", "type": "llm", "params": {"model": "offline", "prompt": "${q}"}}],
             "inputs": {"q": {"type": "string"}}}
    doc = {"name": "n", "nodes": [
        {"id": "per", "type": "workflow", "batch": {"items": ["x y", "z"]},
         "params": {"workflow_ir": inner, "param_mapping": {"q": "${item}"}}},
        {"id": "flaky", "type": "llm", "batch": {"items": [1, 2, 3, 4, 5, 6]},
         "params": {"model": "offline", "prompt": "p ${item}", "fail_rate": 0.5}}],
        "edges": [{"from": "per", "to": "flaky"}]}
    result, events = run(tmp_path, doc)
    assert result.usage["calls"] >= 2  # the two nested calls at least (flaky may all fail)
    nested = [e for e in events if e["kind"] == "node.end" and ".per.iteration_" in e["path"]
              and "llm_usage" in (e.get("outputs") or {})]
    assert len(nested) == 2
