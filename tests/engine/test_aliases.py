"""The analysis's keys (batch_mode, execution_mode, batch_config, fail_safe) as aliases, and
``pflow-tui validate --explain``."""

from __future__ import annotations

import itertools
from pathlib import Path
from typing import Any

import orjson
import pytest

from pflow_tui.cli import main
from pflow_tui.engine.ir.load import build_flow, normalize, normalize_ir
from pflow_tui.engine.problems import FlowError
from pflow_tui.engine.run.executor import run_flow


@pytest.fixture(autouse=True)
def _isolated(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("COLUMNS", "250")


def flow(*batches: dict[str, Any] | None, groups: bool = False, **top: Any) -> dict[str, Any]:
    """A list node, then one node per entry (a batch config, or None for a plain node);
    with ``groups``, a parallel group 'g' after them."""
    nodes: list[dict[str, Any]] = [{"id": "list", "type": "echo", "params": {"data": [1, 2, 3]}}]
    for i, batch in enumerate(batches):
        node: dict[str, Any] = {"id": f"n{i}", "type": "echo", "params": {"message": "x"}}
        if batch is not None:
            node["batch"] = {"items": "${list.data}", **batch}
        nodes.append(node)
    edges = [{"from": a["id"], "to": b["id"]} for a, b in itertools.pairwise(nodes)]
    if groups:
        last = nodes[-1]["id"]
        nodes += [{"id": n, "type": "echo", "params": {"message": n}} for n in ("a", "b", "join")]
        edges += [{"from": last, "to": "a", "parallel_group": "g"},
                  {"from": last, "to": "b", "parallel_group": "g"},
                  {"from": "a", "to": "join"}, {"from": "b", "to": "join"}]
    return {"nodes": nodes, "edges": edges, **top}


def batches(doc: dict[str, Any]) -> list[dict[str, Any] | None]:
    return [n.get("batch") for n in normalize(doc)["nodes"][1:] if n["id"].startswith("n")]


def errors(doc: dict[str, Any]) -> list[tuple[str, str, str]]:
    with pytest.raises(FlowError) as info:
        build_flow(doc)
    return [(p.where, p.what, p.fix) for p in info.value.problems]


def warnings(doc: dict[str, Any]) -> list[tuple[str, str]]:
    return [(p.where, p.what) for p in build_flow(doc).warnings]


# --- the mapping ---------------------------------------------------------------------------------

ITEMS = {"items": "${list.data}"}


@pytest.mark.parametrize("mode, parallel, group_limit", [
    ("sequential", False, 1), ("batch", False, None), ("parallel", True, None)])
def test_execution_mode(mode: str, parallel: bool, group_limit: int | None) -> None:
    doc = flow({}, {"parallel": parallel}, None, groups=True, execution_mode=mode)
    out = normalize(doc)
    assert "execution_mode" not in out
    assert batches(doc) == [{**ITEMS, "parallel": parallel}, {**ITEMS, "parallel": parallel}, None]
    assert out.get("parallel_groups", {}).get("g", {}).get("max_concurrent") == group_limit
    spec = build_flow(doc)
    assert [spec.nodes[n].batch.parallel for n in ("n0", "n1")] == [parallel, parallel]
    assert spec.groups[0].max_concurrent == group_limit
    assert "execution_mode" not in spec.ir  # the trace header holds the normalised flow


def test_batch_config_and_fail_safe() -> None:
    doc = flow({}, {"error_handling": "fail_safe", "batch_size": 10}, None,
               batch_config={"batch_size": 10, "error_handling": "fail_safe"},
               parallel_groups={"g": {"error_handling": "fail_safe"}}, groups=True)
    out = normalize(doc)
    assert "batch_config" not in out
    assert batches(doc) == [{**ITEMS, "batch_size": 10, "error_handling": "continue"},
                            {**ITEMS, "error_handling": "continue", "batch_size": 10}, None]
    assert out["parallel_groups"] == {"g": {"error_handling": "continue"}}
    assert build_flow(doc).groups[0].error_handling == "continue"
    assert batches(flow({}, batch_config={"error_handling": "fail_fast"})) == [
        {**ITEMS, "error_handling": "fail_fast"}]


def test_batch_mode() -> None:
    doc = flow({})
    doc["nodes"][1]["batch_mode"] = True
    doc["nodes"][0]["batch_mode"] = False
    assert normalize(doc) == flow({}) | {"ir_version": "0.1.0"}


def test_the_input_is_not_changed_and_rewrites_are_listed() -> None:
    doc = flow({}, groups=True, execution_mode="sequential", batch_config={"batch_size": 5})
    doc["nodes"][1]["batch_mode"] = True
    before = orjson.dumps(doc)
    result = normalize_ir(doc)
    assert orjson.dumps(doc) == before
    assert [str(r) for r in result.rewrites if r.alias] == [
        "nodes[1].batch_mode: true removed (the node's batch makes it a batch node)",
        'execution_mode: "sequential" removed; applied as listed below',
        'nodes[1].batch.parallel: false (from execution_mode "sequential")',
        'parallel_groups.g.max_concurrent: 1 (from execution_mode "sequential")',
        'batch_config: {"batch_size":5} removed; applied as listed below',
        "nodes[1].batch.batch_size: 5 (from batch_config.batch_size)",
    ]
    assert [str(r) for r in result.rewrites if not r.alias] == ['ir_version: "0.1.0" added (the default)']


def test_a_flow_in_the_analysis_syntax_runs(tmp_path: Path) -> None:
    doc = {"execution_mode": "parallel", "batch_config": {"error_handling": "fail_safe"}, "nodes": [
        {"id": "files", "type": "shell", "params": {"command": "echo '[\"a\", \"\", \"c\"]'"}},
        {"id": "process", "type": "shell", "batch_mode": True, "batch": {"items": "${files.stdout}"},
         "params": {"command": "test -n '${item}' && echo ${item}${item}"}},
    ], "edges": [{"from": "files", "to": "process"}]}
    result = run_flow(build_flow(doc), {}, trace=tmp_path / "t.json")
    assert result.status == "ok", result.error  # fail_safe: the empty item fails, the run goes on
    out = result.store["process"]
    assert out["batch_metadata"]["parallel"] is True
    assert [r["stdout"] for r in out["results"]] == ["aa", "", "cc"] and out["error_count"] == 1


# --- problems -------------------------------------------------------------------------------------

def test_contradictions_are_errors_at_the_key_as_written() -> None:
    assert errors(flow({"parallel": True}, execution_mode="sequential")) == [(
        "nodes[1].batch.parallel", 'parallel is true, but execution_mode "sequential" says false',
        "remove one of them: execution_mode sets parallel for every batch of the flow; to mix, leave "
        "execution_mode out and set parallel on each batch")]
    assert errors(flow({}, groups=True, execution_mode="sequential",
                       parallel_groups={"g": {"max_concurrent": 2}})) == [(
        "parallel_groups.g.max_concurrent", 'max_concurrent is 2, but execution_mode "sequential" says 1',
        "remove one of them: execution_mode sets max_concurrent for every group of the flow; to mix, "
        "leave execution_mode out and set max_concurrent on each group")]
    assert errors(flow({}, groups=True, execution_mode="parallel",
                       parallel_groups={"g": {"max_concurrent": 1}}))[0][:2] == (
        "parallel_groups.g.max_concurrent", 'max_concurrent is 1 (one branch at a time), but '
        'execution_mode "parallel" runs every group\'s branches at once')
    doc = flow({"error_handling": "fail_fast"}, batch_config={"error_handling": "fail_safe"})
    assert errors(doc)[0][:2] == (
        "nodes[1].batch.error_handling", 'error_handling is "fail_fast", but batch_config.error_handling '
        'says "fail_safe"')
    doc = flow({"batch_size": 3}, batch_config={"batch_size": 4})
    assert errors(doc)[0][0] == "nodes[1].batch.batch_size"


def test_batch_mode_problems() -> None:
    doc = flow(None)
    doc["nodes"][1]["batch_mode"] = True
    doc["nodes"][1]["params"] = {"message": "${item}", "data": "${list.data}"}
    (where, what, fix), *rest = errors(doc)
    assert where == "nodes[1].batch_mode"
    assert what == "batch_mode is true, but the node has no items to run over"
    assert fix == ('add "batch": {"items": "${node.list_key}"} (the list; each item is ${item} in params) '
                   'and remove batch_mode (e.g. "items": "${list.data}" if params.data is the list)')
    assert [r[0] for r in rest] == ["nodes[1].params.message"]  # ${item} outside a batch, as before
    doc = flow({})
    doc["nodes"][1]["batch_mode"] = False
    assert errors(doc)[0][:2] == ("nodes[1].batch_mode",
                                  "batch_mode is false, but the node has a batch config")
    doc["nodes"][1]["batch_mode"] = "yes"
    assert errors(doc)[0][:2] == ("nodes[1].batch_mode", "expected boolean, got string")


@pytest.mark.parametrize("top, where, what, fix", [
    ({"execution_mode": "paralel"}, "execution_mode", "'paralel' is not an execution mode",
     "did you mean 'parallel'?"),
    ({"execution_mode": 1}, "execution_mode", "expected string, got integer",
     'put the value in double quotes: "1"'),
    ({"batch_config": []}, "batch_config", "expected object, got array",
     'write "batch_config" as an object: {"batch_size": 100, "error_handling": "fail_safe"}'),
    ({"batch_config": {"batch_size": 0}}, "batch_config.batch_size", "must be at least 1, got 0",
     "set how many items to hold in memory at once, e.g. 1000"),
    ({"batch_config": {"batch_size": "10"}}, "batch_config.batch_size", "expected integer, got string",
     "remove the quotes: 10"),
    ({"batch_config": {"error_handling": "failsafe"}}, "batch_config.error_handling",
     '"failsafe" is not fail_fast or fail_safe', "did you mean 'fail_safe'?"),
    ({"batch_config": {"batchsize": 2}}, "batch_config.batchsize", "unknown key 'batchsize' in batch_config",
     "did you mean 'batch_size'?"),
    ({"batch_config": {"parallel": True}}, "batch_config.parallel", "unknown key 'parallel' in batch_config",
     "batch_config takes batch_size, error_handling; set other batch settings in each node's \"batch\""),
])
def test_bad_alias_values(top: dict[str, Any], where: str, what: str, fix: str) -> None:
    assert errors(flow({}, **top)) == [(where, what, fix)]


def test_aliases_that_change_nothing_are_warnings() -> None:
    assert warnings(flow(None, execution_mode="batch")) == [
        ("execution_mode", 'execution_mode is "batch", but no node has a batch config')]
    assert warnings(flow(None, execution_mode="parallel"))[0][1].startswith(
        'execution_mode is "parallel", but nothing in the flow can run in parallel')
    assert warnings(flow(None, execution_mode="parallel", groups=True)) == []
    assert warnings(flow(None, batch_config={"batch_size": 2})) == [
        ("batch_config", "batch_config applies to batch nodes, and no node has a batch config")]
    assert warnings(flow(None, execution_mode="sequential")) == []


def test_batch_size_is_a_positive_integer_of_batch() -> None:
    build_flow(flow({"batch_size": 1000}))
    assert errors(flow({"batch_size": 0})) == [(
        "nodes[1].batch.batch_size", "must be at least 1, got 0",
        "leave it out, or set how many items to hold in memory at once, e.g. 1000")]


# --- validate --explain ---------------------------------------------------------------------------

def write(tmp_path: Path, doc: Any, name: str = "flow.json") -> str:
    (tmp_path / name).write_bytes(orjson.dumps(doc))
    return str(tmp_path / name)


def test_explain_prints_the_normalised_flow_and_what_was_rewritten(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    doc = flow({}, execution_mode="parallel", batch_config={"error_handling": "fail_safe"})
    doc["nodes"][0]["parameters"] = doc["nodes"][0].pop("params")
    path = write(tmp_path, doc)
    assert main(["validate", "--explain", path]) == 0
    out, err = capsys.readouterr()
    assert orjson.loads(out) == normalize(doc) == build_flow(doc).ir
    assert out.startswith('{\n  "nodes": [\n')  # pretty
    assert "aliases rewritten (4):" in err
    assert 'nodes[1].batch.parallel: true (from execution_mode "parallel")' in err
    assert 'nodes[1].batch.error_handling: "continue" (from batch_config.error_handling)' in err
    assert "pflow's shorthands and defaults (2):" in err and 'nodes[0].parameters: renamed "params"' in err
    assert "valid (2 nodes, 1 edge)" in err


def test_explain_shows_inline_child_flows_as_they_run(tmp_path: Path,
                                                     capsys: pytest.CaptureFixture[str]) -> None:
    child = flow({}, execution_mode="parallel")
    doc = {"nodes": [{"id": "w", "type": "workflow", "params": {"workflow_ir": child}}]}
    assert main(["validate", "--explain", write(tmp_path, doc)]) == 0
    out, err = capsys.readouterr()
    shown = orjson.loads(out)["nodes"][0]["params"]["workflow_ir"]
    assert shown == normalize(child)
    assert 'nodes[0].params.workflow_ir.nodes[1].batch.parallel: true (from execution_mode "parallel")' in err


def test_explain_still_prints_the_flow_when_it_has_problems(tmp_path: Path,
                                                           capsys: pytest.CaptureFixture[str]) -> None:
    doc = flow({"parallel": False}, execution_mode="parallel")
    assert main(["validate", "--explain", write(tmp_path, doc)]) == 2
    out, err = capsys.readouterr()
    assert orjson.loads(out)["nodes"][1]["batch"]["parallel"] is False
    assert "nodes[1].batch.parallel: parallel is false, but execution_mode \"parallel\" says true" in \
        " ".join(err.split())


def test_explain_of_a_file_that_is_no_json(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "bad.json").write_text('{"nodes": [}')
    assert main(["validate", "--explain", str(tmp_path / "bad.json")]) == 2
    out, err = capsys.readouterr()
    assert out == "" and "invalid JSON" in err and "Traceback" not in err


def test_explain_of_a_flow_without_aliases(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    doc = normalize(flow({}))
    assert main(["validate", "--explain", write(tmp_path, doc)]) == 0
    out, err = capsys.readouterr()
    assert orjson.loads(out) == doc
    assert "nothing rewritten: the file is already in pflow-tui's form" in err


def test_validate_mentions_rewritten_aliases(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["validate", write(tmp_path, flow({}, execution_mode="batch"))]) == 0
    out, err = capsys.readouterr()
    assert out == ""
    assert "2 aliases rewritten into pflow-tui's forms; `pflow-tui validate --explain FLOW.json` shows " \
           "the result" in " ".join(err.split())
    assert main(["validate", write(tmp_path, flow({}), "plain.json")]) == 0
    assert "alias" not in capsys.readouterr().err


def test_explain_needs_a_json_flow(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "prog.py").write_text("import pocketflow\nflow = pocketflow.Flow(pocketflow.Node())\n")
    assert main(["validate", "--explain", f"{tmp_path / 'prog.py'}:flow"]) == 2
    out, err = capsys.readouterr()
    assert out == "" and "a Python program has no IR to rewrite" in " ".join(err.split())
