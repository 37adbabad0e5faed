"""The JSON Schema of flow files (``pflow-tui schema``), generated from the validator's tables.

It must accept every flow pflow-tui accepts (the samples, the compatibility corpus) and
refuse the structural mistakes of tests/bad_flows (unknown keys, wrong JSON types, values
out of range); ``validate`` checks more than a schema can (templates, edges, ids).
"""

from __future__ import annotations

import json
from pathlib import Path

import jsonschema
import pytest

from pflow_tui.cli import main
from pflow_tui.engine.ir.jsonschema import flow_schema
from pflow_tui.engine.ir.keys import TOP_KEYS
from pflow_tui.engine.ir.load import build_flow, load_flow
from pflow_tui.engine.problems import FlowError
from pflow_tui.engine.registry import registry

ROOT = Path(__file__).resolve().parents[2]
GOOD = sorted([*ROOT.glob("sample_flows/*.json"),
               *(p for p in ROOT.glob("tests/compat/flows/*.json") if not p.name.endswith(".case.json"))])
STRUCTURAL = [  # tests/bad_flows whose mistake is in the shape of the document
    "unknown_top_key.json", "unknown_node_key.json", "node_type_key_typo.json", "node_missing_type.json",
    "nodes_missing.json", "nodes_empty.json", "nodes_not_array.json", "node_not_object.json",
    "node_id_invalid.json", "params_not_object.json", "edge_key_typo.json", "edge_missing_to.json",
    "edges_not_array.json", "batch_unknown_key.json", "batch_items_missing.json", "batch_items_number.json",
    "batch_max_concurrent_0.json", "batch_max_retries_too_big.json", "batch_parallel_string.json",
    "batch_error_handling_typo.json", "bad_template_mode.json", "ir_version_not_string.json",
    "ir_version_major_unknown.json", "input_decl_unknown_type.json", "input_decl_bad_name.json",
    "namespacing_not_bool.json", "missing_required_param.json", "param_type_shell_command_number.json",
    "param_type_shell_timeout_string.json", "executor_typo.json", "rate_limits_zero.json",
    "top_level_array.json",
]


@pytest.fixture(scope="module")
def validator() -> jsonschema.Draft7Validator:
    schema = flow_schema()
    jsonschema.Draft7Validator.check_schema(schema)
    return jsonschema.Draft7Validator(schema)


def test_the_schema_is_made_of_the_validators_tables() -> None:
    schema = flow_schema()
    flow = schema["definitions"]["flow"]
    assert set(flow["properties"]) == set(TOP_KEYS) and flow["additionalProperties"] is False
    kinds = {rule["if"]["properties"]["type"]["const"] for rule in schema["definitions"]["node"]["allOf"]}
    assert kinds == set(registry())
    shell = next(r["then"]["properties"]["params"] for r in schema["definitions"]["node"]["allOf"]
                 if r["if"]["properties"]["type"]["const"] == "shell")
    assert shell["required"] == ["command"]
    assert shell["properties"]["timeout"]["anyOf"][0] == {"type": "integer"}  # or a template


@pytest.mark.parametrize("path", GOOD, ids=lambda p: f"{p.parent.name}/{p.name}")
def test_every_flow_pflow_tui_accepts_is_valid(path: Path, validator: jsonschema.Draft7Validator) -> None:
    try:
        load_flow(path)
    except FlowError:
        pytest.skip("pflow-tui refuses this flow (a probe of pflow's refusals)")
    doc = json.loads(path.read_text())
    errors = [f"{list(e.absolute_path)}: {e.message[:200]}" for e in validator.iter_errors(doc)]
    assert errors == []


def test_most_of_the_corpus_is_checked() -> None:
    accepted = 0
    for path in GOOD:
        try:
            load_flow(path)
            accepted += 1
        except FlowError:
            pass
    assert accepted >= 50


@pytest.mark.parametrize("name", STRUCTURAL)
def test_structural_mistakes_are_refused(name: str, validator: jsonschema.Draft7Validator) -> None:
    doc = json.loads((ROOT / "tests" / "bad_flows" / name).read_text())
    assert not validator.is_valid(doc)


def test_pflow_shorthands_and_the_envelope_are_valid(validator: jsonschema.Draft7Validator) -> None:
    flow = {"nodes": [{"id": "a", "type": "shell", "parameters": {"command": "echo hi"}},
                      {"id": "b", "type": "echo", "params": {"message": "${a.stdout}", "count": "${n}"}}],
            "edges": [{"source": "a", "target": "b"}], "inputs": {"n": {"type": "integer"}}}
    assert validator.is_valid(flow)
    assert validator.is_valid({"name": "saved", "description": "d", "ir": flow, "created_at": "x"})
    assert not validator.is_valid({"ir": {**flow, "nodez": []}})


def test_a_schema_key_is_accepted_and_ignored(validator: jsonschema.Draft7Validator) -> None:
    doc = {"$schema": "flow.schema.json", "nodes": [{"id": "a", "type": "echo", "params": {"message": "hi"}}]}
    spec = build_flow(doc)
    assert [n.id for n in spec.nodes.values()] == ["a"] and not spec.warnings
    assert validator.is_valid(doc)


def test_the_command_prints_the_schema(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    assert main(["schema"]) == 0
    assert json.loads(capsys.readouterr().out) == flow_schema()
    assert main(["schema", "-o", str(tmp_path / "s.json")]) == 0
    assert json.loads((tmp_path / "s.json").read_text()) == flow_schema()
    assert main(["schema", "-o", str(tmp_path / "no" / "s.json")]) == 2
    assert "cannot write" in capsys.readouterr().err
