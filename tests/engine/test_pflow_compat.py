"""Compatibility with JSON-era pflow (IR 0.1.0 at spinje/pflow fed939d7).

Expected values come from pflow-ir-0.1.0.md (the shared reference) (section numbers in the
comments), not from what pflow-tui happens to do. Where pflow-tui deliberately differs
the test says so and docs/compatibility.md explains why; where it differs without a
documented reason the test keeps pflow's behaviour and is marked xfail(strict=True).
"""

from __future__ import annotations

import itertools
import json
from pathlib import Path
from typing import Any

import pytest

from pflow_tui.engine.ir.load import build_flow, load_flow
from pflow_tui.engine.nodes.base import NodeType, Param, RunContext
from pflow_tui.engine.problems import FlowError
from pflow_tui.engine.registry import registry
from pflow_tui.engine.run.executor import RunResult, run_flow
from pflow_tui.engine.run.inputs import prepare_inputs

# --------------------------------------------------------------------------- helpers

_traces = itertools.count()


def _probe(params: dict[str, Any], ctx: RunContext) -> dict[str, Any]:
    """A test node: ``mode`` chooses success, an exception, a handled error, or odd outputs."""
    value, mode = params.get("value"), params.get("mode", "ok")
    fails = params.get("fail_attempts", 0)
    if mode == "raise" or ctx.attempt <= fails:
        raise RuntimeError(f"boom {value} (attempt {ctx.attempt})")
    if mode == "error":
        return {"error": f"bad {value}", "value": value}
    if mode == "item":
        return {"value": value, "item": "from the node"}
    if mode == "root":
        return {"value": value, "__note__": f"note {value}"}
    return {"value": value}


PROBE = NodeType(
    "probe", _probe,
    params=(Param("value"), Param("mode", "str"), Param("fail_attempts", "int")),
)
# Echoes its resolved params back, one per declared type, to observe template resolution.
CAPTURE = NodeType(
    "capture", lambda params, ctx: {"got": dict(params)},
    params=(Param("value"), Param("text", "str"), Param("obj", "dict"), Param("items", "list")),
)


def reg() -> dict[str, NodeType]:
    return {**registry(), PROBE.name: PROBE, CAPTURE.name: CAPTURE}


def run(doc: dict[str, Any], tmp_path: Path, **inputs: Any) -> RunResult:
    spec = build_flow(doc, registry=reg())
    return run_flow(spec, prepare_inputs(spec, inputs), trace=tmp_path / f"t{next(_traces)}.json",
                    registry=reg())


@pytest.fixture(autouse=True)
def _in_tmp(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)


def shell(nid: str, command: str, **extra: Any) -> dict[str, Any]:
    return {"id": nid, "type": "shell", "params": {"command": command}, **extra}


def chain(*ids: str) -> list[dict[str, str]]:
    return [{"from": a, "to": b} for a, b in itertools.pairwise(ids)]


# --------------------------------------------------------------------------- (a) nested index

def nested_index_doc(parallel: bool = False) -> dict[str, Any]:
    """The shape of pflow's examples/test-nested-index.json (spec section 5)."""
    users = ('[{"name": "alice", "score": 85}, {"name": "bob", "score": 92}, '
             '{"name": "charlie", "score": 78}]')
    return {
        "ir_version": "0.1.0",
        "nodes": [
            shell("generate-data", f"echo '{users}'"),
            {"id": "process-batch", "type": "shell",
             "batch": {"items": "${generate-data.stdout}", "as": "user", "parallel": parallel},
             "params": {"command": 'sleep 0.0$(( 3 - ${__index__} )); '
                                   'echo "Processing user ${user.name} (index ${__index__}) '
                                   'with score ${user.score}"'}},
            {"id": "correlate-batch", "type": "shell",
             "batch": {"items": [{"label": "First user", "extra": "VIP"},
                                 {"label": "Second user", "extra": "Regular"},
                                 {"label": "Third user", "extra": "New"}],
                       "parallel": parallel},
             "params": {"command": 'echo "${item.label}: ${process-batch.results[${__index__}].stdout}'
                                   ' (${item.extra})"'}},
        ],
        "edges": chain("generate-data", "process-batch", "correlate-batch"),
    }


PROCESS_LINES = [
    "Processing user alice (index 0) with score 85",
    "Processing user bob (index 1) with score 92",
    "Processing user charlie (index 2) with score 78",
]
CORRELATE_LINES = [
    "First user: Processing user alice (index 0) with score 85 (VIP)",
    "Second user: Processing user bob (index 1) with score 92 (Regular)",
    "Third user: Processing user charlie (index 2) with score 78 (New)",
]


@pytest.mark.parametrize("parallel", [False, True], ids=["sequential", "parallel"])
def test_nested_index_stdout(tmp_path: Path, parallel: bool) -> None:
    result = run(nested_index_doc(parallel), tmp_path)
    assert result.status == "ok"
    process = result.store["process-batch"]["results"]
    # results are in input order (parallel items finish in reverse order here)
    assert [r["stdout"] for r in process] == PROCESS_LINES
    assert [r["item"]["name"] for r in process] == ["alice", "bob", "charlie"]
    assert [r["stdout"] for r in result.store["correlate-batch"]["results"]] == CORRELATE_LINES
    # a shell result has exactly the shell node's outputs plus "item" (section 7)
    assert set(process[0]) == {"stdout", "stdout_is_binary", "stderr", "stderr_is_binary",
                               "exit_code", "command", "item"}


# --------------------------------------------------------------------------- (b) batch output

BATCH_KEYS = {"results", "count", "success_count", "error_count", "errors", "batch_metadata"}
META_KEYS = {"parallel", "max_concurrent", "max_retries", "retry_wait", "execution_mode", "timing"}
TIMING_KEYS = {"total_items_ms", "avg_item_ms", "min_item_ms", "max_item_ms"}


def probe_batch(items: list[Any], **batch: Any) -> dict[str, Any]:
    return {"id": "b", "type": "probe", "batch": {"items": items, **batch},
            "params": {"value": "${item.v}", "mode": "${item.mode}"}}


def test_batch_output_structure_sequential(tmp_path: Path) -> None:
    items = [{"v": 1, "mode": "ok"}, {"v": 2, "mode": "ok"}]
    result = run({"nodes": [probe_batch(items)]}, tmp_path)
    out = result.store["b"]
    assert set(out) == BATCH_KEYS
    assert out["results"] == [{"value": 1, "item": items[0]}, {"value": 2, "item": items[1]}]
    assert (out["count"], out["success_count"], out["error_count"], out["errors"]) == (2, 2, 0, None)
    meta = out["batch_metadata"]
    assert set(meta) == META_KEYS
    assert {k: meta[k] for k in META_KEYS - {"timing"}} == {
        "parallel": False, "max_concurrent": None, "max_retries": 1, "retry_wait": None,
        "execution_mode": "sequential"}
    assert set(meta["timing"]) == TIMING_KEYS
    t = meta["timing"]
    assert 0 <= t["min_item_ms"] <= t["avg_item_ms"] <= t["max_item_ms"] <= t["total_items_ms"]


def test_batch_output_structure_parallel(tmp_path: Path) -> None:
    items = [{"v": i, "mode": "ok"} for i in range(5)]
    doc = {"nodes": [probe_batch(items, parallel=True, max_concurrent=3, max_retries=2,
                                 retry_wait=0.01)]}
    meta = run(doc, tmp_path).store["b"]["batch_metadata"]
    assert {k: meta[k] for k in META_KEYS - {"timing"}} == {
        "parallel": True, "max_concurrent": 3, "max_retries": 2, "retry_wait": 0.01,
        "execution_mode": "parallel"}


@pytest.mark.parametrize("parallel", [False, True], ids=["sequential", "parallel"])
def test_batch_continue_errors(tmp_path: Path, parallel: bool) -> None:
    items = [{"v": 1, "mode": "ok"}, {"v": 2, "mode": "raise"}, {"v": 3, "mode": "error"},
             {"v": 4, "mode": "ok"}]
    doc = {"nodes": [probe_batch(items, error_handling="continue", parallel=parallel,
                                 max_retries=2)]}
    result = run(doc, tmp_path)
    assert result.status == "ok"  # continue mode: the batch node takes "default"
    out = result.store["b"]
    assert out["results"] == [
        {"value": 1, "item": items[0]},
        None,  # the exception exhausted its retries: no result
        {"error": "bad 3", "value": 3, "item": items[2]},  # handled error: the result is kept
        {"value": 4, "item": items[3]},
    ]
    assert (out["count"], out["success_count"], out["error_count"]) == (4, 2, 2)
    assert [set(e) for e in out["errors"]] == [{"index", "item", "error", "exception"}] * 2
    raised, handled = out["errors"]
    assert (raised["index"], raised["item"], raised["error"]) == (1, items[1], "boom 2 (attempt 2)")
    # pflow keeps the Python exception object here; pflow-tui keeps its type and message
    # (deliberate: the store must be JSON for traces; docs/compatibility.md)
    assert raised["exception"]["type"] == "RuntimeError"
    assert raised["exception"]["message"] == "boom 2 (attempt 2)"
    assert handled == {"index": 2, "item": items[2], "error": "bad 3", "exception": None}


def test_batch_retries_per_item(tmp_path: Path) -> None:
    doc = {"nodes": [{"id": "b", "type": "probe",
                      "batch": {"items": [0, 1, 2, 3], "max_retries": 3,
                                "error_handling": "continue"},
                      "params": {"value": "${item}", "fail_attempts": "${item}"}}]}
    out = run(doc, tmp_path).store["b"]
    # item n fails its first n attempts; max_retries is the total number of attempts
    assert out["results"] == [{"value": 0, "item": 0}, {"value": 1, "item": 1},
                              {"value": 2, "item": 2}, None]
    assert [e["index"] for e in out["errors"]] == [3]
    assert out["errors"][0]["error"] == "boom 3 (attempt 3)"


def test_batch_item_key_is_reserved(tmp_path: Path) -> None:
    doc = {"nodes": [probe_batch([{"v": 1, "mode": "item"}])]}
    out = run(doc, tmp_path).store["b"]
    assert out["results"] == [{"value": 1, "item": {"v": 1, "mode": "item"}}]


def test_batch_defaults_alias_index_and_inline_templates(tmp_path: Path) -> None:
    doc = {"nodes": [shell("a", "echo hi"),
                     {"id": "b", "type": "capture",
                      "batch": {"items": ["${a.stdout}", {"k": "${a.stdout}"}, 7]},
                      "params": {"value": "${item}", "text": "#${__index__}"}}],
           "edges": chain("a", "b")}
    out = run(doc, tmp_path).store["b"]
    assert [r["got"] for r in out["results"]] == [
        {"value": "hi", "text": "#0"}, {"value": {"k": "hi"}, "text": "#1"},
        {"value": 7, "text": "#2"}]
    assert [r["item"] for r in out["results"]] == ["hi", {"k": "hi"}, 7]


def test_batch_items_must_be_a_list(tmp_path: Path) -> None:
    doc = {"nodes": [shell("a", "echo not-a-list"),
                     {"id": "b", "type": "shell", "batch": {"items": "${a.stdout}"},
                      "params": {"command": "echo ${item}"}}],
           "edges": chain("a", "b")}
    result = run(doc, tmp_path)
    assert result.status == "failed"
    assert result.error["node"] == "b"


def test_batch_fail_fast_stops_and_fails_the_run(tmp_path: Path) -> None:
    items = [{"v": 1, "mode": "ok"}, {"v": 2, "mode": "error"}, {"v": 3, "mode": "ok"}]
    doc = {"nodes": [probe_batch(items), shell("after", "echo after")], "edges": chain("b", "after")}
    result = run(doc, tmp_path)
    assert result.status == "failed"  # pflow: the error escapes the batch, the workflow fails
    assert "after" not in result.store
    # the item after the failing one never ran
    assert result.store["b"]["results"][2] is None


def test_batch_metadata_defaults_ignore_node_type_retries(tmp_path: Path) -> None:
    doc = {"nodes": [{"id": "b", "type": "llm", "batch": {"items": ["x"]},
                      "params": {"model": "offline", "prompt": "${item}"}}]}
    meta = run(doc, tmp_path).store["b"]["batch_metadata"]
    assert (meta["max_retries"], meta["retry_wait"]) == (1, None)


def test_batch_empty_items_timing_is_none(tmp_path: Path) -> None:
    doc = {"nodes": [shell("a", "echo '[]'"),
                     {"id": "b", "type": "shell", "batch": {"items": "${a.stdout}"},
                      "params": {"command": "echo ${item}"}}],
           "edges": chain("a", "b")}
    out = run(doc, tmp_path).store["b"]
    assert (out["results"], out["count"], out["errors"]) == ([], 0, None)
    assert out["batch_metadata"]["timing"] is None


# --------------------------------------------------------------------------- (c) templates

SOURCE_DATA = {"none": None, "yes": True, "no": False, "int": 3, "float": 2.5,
               "obj": {"k": [1, 2]}, "list": [1, "x"], "text": "hi"}


def capture_run(tmp_path: Path, params: dict[str, Any], *, pre: list[dict] = (),
                **doc_extra: Any) -> dict[str, Any]:
    nodes = [{"id": "src", "type": "echo", "params": {"message": "m", "data": SOURCE_DATA}},
             shell("j", """echo '{"a": {"b": [10, 20]}}'"""), *pre,
             {"id": "cap", "type": "capture", "params": params}]
    doc = {"nodes": nodes, "edges": chain(*(n["id"] for n in nodes)), **doc_extra}
    result = run(doc, tmp_path)
    assert result.status == "ok", result.error
    return result.store["cap"]["got"]


def test_whole_value_template_keeps_type(tmp_path: Path) -> None:
    for key, expected in SOURCE_DATA.items():
        assert capture_run(tmp_path, {"value": f"${{src.data.{key}}}"}) == {"value": expected}


def test_inline_template_renders_text(tmp_path: Path) -> None:
    text = "|".join(f"{k}=${{src.data.{k}}}" for k in SOURCE_DATA)
    got = capture_run(tmp_path, {"value": text})
    assert got["value"] == 'none=|yes=True|no=False|int=3|float=2.5|obj={"k": [1, 2]}|list=[1, "x"]|text=hi'


def test_json_string_is_parsed_when_a_path_steps_in(tmp_path: Path) -> None:
    got = capture_run(tmp_path, {"value": "${j.stdout.a.b[1]}", "items": "${j.stdout.a.b}"})
    assert got == {"value": 20, "items": [10, 20]}


def test_json_text_in_params(tmp_path: Path) -> None:
    got = capture_run(tmp_path, {
        "value": "${j.stdout}",                   # top-level, untyped: stays text
        "obj": "${j.stdout}",                     # top-level, dict-typed: parsed
        "items": ["${j.stdout}", "${src.data.text}"],  # whole value inside a list: parsed
        "text": "${src.data.obj}",                # dict into a str param: JSON text
    })
    assert got == {
        "value": '{"a": {"b": [10, 20]}}',
        "obj": {"a": {"b": [10, 20]}},
        "items": [{"a": {"b": [10, 20]}}, "hi"],
        "text": '{"k": [1, 2]}',
    }
    got = capture_run(tmp_path, {"value": {"d": "${j.stdout}", "inline": "x ${j.stdout}"}})
    assert got == {"value": {"d": {"a": {"b": [10, 20]}}, "inline": 'x {"a": {"b": [10, 20]}}'}}


def test_hyphenated_ids_and_dynamic_index(tmp_path: Path) -> None:
    rows = shell("my-list", """echo '{"rows": [{"name": "a"}, {"name": "b"}, {"name": "c"}]}'""")
    doc_inputs = {"inputs": {"idx": {"type": "integer", "required": False, "default": 2}}}
    got = capture_run(tmp_path, {"value": "${my-list.stdout.rows[${idx}].name}"}, pre=[rows],
                      **doc_inputs)
    assert got == {"value": "c"}


def test_strict_mode_fails_the_node(tmp_path: Path) -> None:
    nodes = [shell("a", """echo '{"x": 1}'"""), shell("b", "echo ${a.stdout.nope}"),
             shell("c", "echo never")]
    for extra in ({}, {"template_resolution_mode": "strict"}):  # strict is the default
        result = run({"nodes": nodes, "edges": chain("a", "b", "c"), **extra}, tmp_path)
        assert result.status == "failed"
        assert result.error["node"] == "b"
        assert result.store["b"]["error"].startswith("Unresolved variables in parameter 'command'")
        assert "c" not in result.store


def test_permissive_mode_passes_the_literal(tmp_path: Path) -> None:
    doc = {"template_resolution_mode": "permissive",
           "nodes": [shell("a", """echo '{"x": 1}'"""),
                     shell("b", "echo '${a.stdout.nope}' ${a.stdout.x}")],
           "edges": chain("a", "b")}
    result = run(doc, tmp_path)
    # pflow calls this run "degraded"; pflow-tui has ok/failed and shows the warnings
    assert result.status == "ok"
    assert result.store["b"]["stdout"] == "${a.stdout.nope} 1"
    errors = result.store["__template_errors__"]
    assert len(errors) == 1 and "b" in str(errors) and "a.stdout.nope" in str(errors)


def test_json_scalar_text_in_container_is_parsed(tmp_path: Path) -> None:
    pre = [shell("num", "echo 42"), shell("flag", "echo true")]
    got = capture_run(tmp_path, {"value": {"n": "${num.stdout}", "f": "${flag.stdout}"}}, pre=pre)
    assert got == {"value": {"n": 42, "f": True}}


def test_inline_json_keeps_non_ascii(tmp_path: Path) -> None:
    pre = [{"id": "u", "type": "echo", "params": {"message": "m", "data": {"city": "Zürich"}}}]
    got = capture_run(tmp_path, {"value": "at ${u.data}"}, pre=pre)
    assert got == {"value": 'at {"city": "Zürich"}'}


# --------------------------------------------------------------------------- (d) normalisation

def test_parameters_is_renamed_and_defaults_are_added(tmp_path: Path) -> None:
    doc = {"nodes": [{"id": "a", "type": "shell", "parameters": {"command": "echo hi"}}]}
    spec = build_flow(doc)
    assert spec.ir["ir_version"] == "0.1.0" and spec.ir["edges"] == []
    assert spec.nodes["a"].params == {"command": "echo hi"}
    assert run(doc, tmp_path).store["a"]["stdout"] == "hi"


def test_saved_envelope_is_unwrapped(tmp_path: Path) -> None:
    envelope = {"name": "saved", "description": "a saved workflow", "version": "1.0.0",
                "ir": {"ir_version": "0.1.0", "nodes": [shell("a", "echo from-envelope")],
                       "edges": []}}
    path = tmp_path / "saved.json"
    path.write_text(json.dumps(envelope))
    spec = load_flow(path)
    assert spec.name == "saved"
    result = run_flow(spec, {}, trace=tmp_path / "env.json")
    assert result.status == "ok" and result.store["a"]["stdout"] == "from-envelope"


def test_source_target_edges_and_start_node(tmp_path: Path) -> None:
    doc = {"start_node": "b",
           "nodes": [shell("a", "echo a"), shell("b", "echo b")],
           "edges": [{"source": "b", "target": "a"}]}
    result = run(doc, tmp_path)
    assert result.status == "ok"
    assert (result.store["a"]["stdout"], result.store["b"]["stdout"]) == ("a", "b")
    assert list(result.store) == ["b", "a"]  # started at start_node, not nodes[0]


def test_schema_errors(tmp_path: Path) -> None:
    bad = [
        {"nodes": [shell("a", "echo")], "unknown_key": 1},
        {"nodes": []},
        {"nodes": [shell("a", "echo"), shell("a", "echo")]},
        {"nodes": [shell("a", "echo")], "edges": [{"from": "a", "to": "nowhere"}]},
        {"nodes": [{"id": "a", "type": "no-such-type"}]},
        {"nodes": [shell("a", "echo ${undeclared}")]},
        {"nodes": [shell("a", "echo ${b.stdout}"), shell("b", "echo")], "edges": chain("a", "b")},
    ]
    for doc in bad:
        with pytest.raises(FlowError):
            build_flow(doc)


def test_mappings_are_accepted_and_ignored(tmp_path: Path) -> None:
    doc = {"nodes": [shell("a", "echo hi")], "mappings": {"a": {"input_mappings": {"x": "y"}}}}
    assert run(doc, tmp_path).store["a"]["stdout"] == "hi"


# --------------------------------------------------------------------------- (e) namespacing

def test_outputs_are_namespaced_and_dunder_keys_go_to_the_root(tmp_path: Path) -> None:
    doc = {"nodes": [{"id": "p", "type": "probe", "params": {"value": 5, "mode": "root"}},
                     shell("s", "echo hi")],
           "edges": chain("p", "s")}
    store = run(doc, tmp_path).store
    assert store["p"] == {"value": 5}
    assert store["__note__"] == "note 5"
    assert store["s"]["stdout"] == "hi"
    assert "stdout" not in store and "value" not in store


def test_without_namespacing_outputs_go_to_the_root(tmp_path: Path) -> None:
    doc = {"enable_namespacing": False, "nodes": [shell("s", "echo hi")]}
    store = run(doc, tmp_path).store
    assert store["stdout"] == "hi" and store["exit_code"] == 0
    assert "s" not in store


def test_inputs_are_at_the_root_and_win_over_store_keys(tmp_path: Path) -> None:
    doc = {"enable_namespacing": False,
           "inputs": {"stdout": {"type": "string", "required": False, "default": "from-input"}},
           "nodes": [shell("s", "echo from-node"),
                     {"id": "e", "type": "echo", "params": {"message": "${stdout}"}}],
           "edges": chain("s", "e")}
    store = run(doc, tmp_path).store
    # the node overwrote the root key, but templates see the input (section 4)
    assert store["stdout"] == "from-node"
    assert store["echo"] == "from-input"


def test_inputs_in_store_and_optional_without_default_is_none(tmp_path: Path) -> None:
    doc = {"inputs": {"who": {"type": "string"},
                      "n": {"type": "integer", "required": False, "default": 2},
                      "maybe": {"type": "string", "required": False}},
           "nodes": [{"id": "e", "type": "echo", "params": {"message": "${who}/${maybe}",
                                                           "count": "${n}"}}]}
    result = run(doc, tmp_path, who="ada")
    assert {k: result.store[k] for k in ("who", "n", "maybe")} == {"who": "ada", "n": 2, "maybe": None}
    assert result.store["e"]["echo"] == "ada/ ada/"


def test_output_sources_in_all_three_forms(tmp_path: Path) -> None:
    doc = {"nodes": [shell("a", """echo '{"x": {"y": 7}}'""")],
           "outputs": {"braces": {"source": "${a.stdout.x.y}"},
                       "dollar": {"source": "$a.stdout.x"},
                       "bare": {"source": "a.exit_code"},
                       "no_source": {"description": "declared only"}}}
    result = run(doc, tmp_path)
    assert result.outputs == {"braces": 7, "dollar": {"y": 7}, "bare": 0}
    assert (result.store["braces"], result.store["dollar"], result.store["bare"]) == (7, {"y": 7}, 0)
    assert "no_source" not in result.store


def test_unresolved_output_is_not_written(tmp_path: Path) -> None:
    doc = {"nodes": [shell("a", "echo hi")], "outputs": {"missing": {"source": "${a.nope}"}}}
    result = run(doc, tmp_path)
    assert result.status == "ok"
    assert "missing" not in result.store


def test_input_from_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("who_env_test", "from-env")
    spec = build_flow({"inputs": {"who_env_test": {"type": "string", "required": False,
                                                   "default": "dflt"}},
                       "nodes": [shell("a", "echo ${who_env_test}")]})
    assert prepare_inputs(spec, {})["who_env_test"] == "from-env"


# --------------------------------------------------------------------------- run status

def test_error_action_without_edge_fails_the_run(tmp_path: Path) -> None:
    result = run({"nodes": [shell("a", "echo oops >&2; exit 2")]}, tmp_path)
    assert result.status == "failed"
    assert result.store["a"]["error"] == "Command failed with exit code 2: oops\n"


def test_error_edge_handles_the_failure(tmp_path: Path) -> None:
    doc = {"nodes": [shell("a", "exit 2"), shell("ok", "echo fine"), shell("fix", "echo handled")],
           "edges": [{"from": "a", "to": "ok"}, {"from": "a", "to": "fix", "action": "error"}]}
    result = run(doc, tmp_path)
    assert result.status == "ok"
    assert result.store["fix"]["stdout"] == "handled" and "ok" not in result.store


# --------------------------------------------------------------------------- deliberate differences
# pflow-tui behaviour that differs from pflow on purpose (docs/compatibility.md).

def test_dollar_escape_gives_literal_template(tmp_path: Path) -> None:
    # pflow: the validator rejects $${x} as an undefined input; pflow-tui: literal ${x}
    doc = {"inputs": {"who": {"type": "string", "required": False, "default": "me"}},
           "nodes": [shell("a", "echo '$${HOME} $${x}' ${who}")]}
    assert run(doc, tmp_path).store["a"]["stdout"] == "${HOME} ${x} me"


def test_dollar_escape_in_a_param_without_references(tmp_path: Path) -> None:
    result = run({"nodes": [shell("a", "echo '$${HOME}'")]}, tmp_path)
    assert result.store["a"]["stdout"] == "${HOME}"


def test_extension_keys_are_accepted(tmp_path: Path) -> None:
    doc = {"name": "named", "description": "d", "max_visits": 3, "nodes": [shell("a", "echo")]}
    assert build_flow(doc).name == "named"


def test_loop_through_an_action_edge(tmp_path: Path) -> None:
    # pflow rejects every cycle; pflow-tui runs it, each node at most max_visits times
    doc = {"nodes": [shell("start", "echo go"),
                     shell("try", "test -f flag || { touch flag; exit 1; }")],
           "edges": [{"from": "start", "to": "try"},
                     {"from": "try", "to": "start", "action": "error"}]}
    result = run(doc, tmp_path)
    assert result.status == "ok"
    assert result.store["try"]["exit_code"] == 0
    runaway = {"max_visits": 3,
               "nodes": [shell("a", "exit 1")], "edges": [{"from": "a", "to": "a", "action": "error"}]}
    result = run(runaway, tmp_path)
    assert result.status == "failed" and "max_visits" in result.error["message"]


def test_fail_fast_batch_takes_the_error_edge(tmp_path: Path) -> None:
    # pflow raises out of the batch; pflow-tui's batch node takes the "error" action
    items = [{"v": 1, "mode": "ok"}, {"v": 2, "mode": "raise"}]
    doc = {"nodes": [probe_batch(items), shell("handler", "echo handled")],
           "edges": [{"from": "b", "to": "handler", "action": "error"}]}
    result = run(doc, tmp_path)
    assert result.status == "ok"
    assert result.store["handler"]["stdout"] == "handled"
    assert result.store["b"]["error"].startswith("item 1 failed: boom 2")


def test_unknown_params_are_warnings() -> None:
    spec = build_flow({"nodes": [{"id": "a", "type": "shell",
                                  "params": {"command": "echo", "comand": "x"}}]})
    assert [w.where for w in spec.warnings] == ["nodes[0].params.comand"]


def test_read_file_line_numbers_param(tmp_path: Path) -> None:
    (tmp_path / "f.txt").write_text("one\ntwo\n")
    doc = {"nodes": [{"id": "n", "type": "read-file", "params": {"file_path": "f.txt"}},
                     {"id": "p", "type": "read-file",
                      "params": {"file_path": "f.txt", "line_numbers": False}}],
           "edges": chain("n", "p")}
    store = run(doc, tmp_path).store
    assert store["n"]["content"] == "1: one\n2: two\n"  # pflow's format
    assert store["p"]["content"] == "one\ntwo\n"
