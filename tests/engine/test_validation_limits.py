"""Validation gaps of issue 14 (point 15): param types from each node type's declared params,
duplicate JSON keys, unknown major IR versions, long ids cut in messages."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pflow_tui.cli import main
from pflow_tui.engine.ir.keys import PARAM_TYPES
from pflow_tui.engine.ir.load import build_flow
from pflow_tui.engine.ir.parse import duplicate_keys, parse_json
from pflow_tui.engine.problems import FlowError
from pflow_tui.engine.registry import builtin_types


@pytest.fixture(autouse=True)
def _isolated(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("COLUMNS", "100")


def problems(doc: dict[str, Any]) -> list[tuple[str, str, str]]:
    try:
        build_flow(doc)
    except FlowError as exc:
        return [(p.where, p.what, p.fix) for p in exc.problems]
    return []


def node(ntype: str, **params: Any) -> dict[str, Any]:
    return {"nodes": [{"id": "a", "type": ntype, "params": params}]}


def test_every_declared_param_type_is_known() -> None:
    for t in builtin_types():
        for p in t.params:
            assert p.type == "any" or p.type in PARAM_TYPES, (t.name, p.name, p.type)


@pytest.mark.parametrize(("ntype", "params", "where", "what"), [
    ("shell", {"command": 12345}, "nodes[0].params.command", "must be a string, got integer 12345"),
    ("shell", {"command": "x", "timeout": "10"}, "nodes[0].params.timeout", "must be an integer"),
    ("shell", {"command": "x", "env": ["A=1"]}, "nodes[0].params.env", "must be an object, got array"),
    ("shell", {"command": "x", "ignore_errors": "yes"}, "nodes[0].params.ignore_errors",
     "must be a boolean"),
    ("http", {"url": 5}, "nodes[0].params.url", "must be a string, got integer 5"),
    ("read-file", {"file_path": ["a", "b"]}, "nodes[0].params.file_path", "must be a string, got array"),
    ("llm", {"prompt": "hi", "model": "offline", "temperature": "hot"}, "nodes[0].params.temperature",
     "must be a number"),
])
def test_wrong_param_types_are_reported_with_a_fix(ntype: str, params: dict[str, Any], where: str,
                                                    what: str) -> None:
    found = problems(node(ntype, **params))
    assert [w for w, _, _ in found] == [where]
    assert what in found[0][1]
    assert "template" in found[0][2]  # the fix says a template is fine too


@pytest.mark.parametrize("params", [
    {"command": "x", "timeout": "${t}"},  # a template: its value is checked at run time
    {"command": "x", "env": "${e}"},
    {"command": "x", "timeout": None},  # null: the default
    {"command": "x", "timeout": 5, "env": {"A": "1"}, "ignore_errors": True},
])
def test_right_types_and_templates_pass(params: dict[str, Any]) -> None:
    doc = node("shell", **params)
    doc["inputs"] = {"t": {"type": "integer", "required": False}, "e": {"type": "object", "required": False}}
    assert problems(doc) == []


def test_write_file_content_takes_json_data_as_in_pflow() -> None:
    """pflow's write-file writes a dict or list given as content as JSON: not a type error."""
    assert problems(node("write-file", file_path="d.json", content={"k": [1, 2]})) == []
    assert problems(node("write-file", file_path="d.json", content=[1])) == []
    found = problems(node("write-file", file_path="d.json", content=5))
    assert [w for w, _, _ in found] == ["nodes[0].params.content"] and "got integer 5" in found[0][1]


def test_float_params_take_integers() -> None:
    assert problems(node("llm", prompt="hi", model="offline", temperature=1)) == []


def test_unknown_major_ir_version_is_refused_and_0x_accepted() -> None:
    doc = {"ir_version": "2.0.0", "nodes": [{"id": "a", "type": "echo"}]}
    [(where, what, fix)] = problems(doc)
    assert where == "ir_version" and "2.0.0" in what and "0.1.0" in fix
    assert problems({**doc, "ir_version": "0.9.3"}) == []


def test_duplicate_keys_are_named_with_their_place(tmp_path: Path,
                                                   capsys: pytest.CaptureFixture[str]) -> None:
    text = ('{"nodes": [{"id": "a", "type": "shell", "params": {"command": "echo 1", '
            '"env": {"X": "1", "X": "2"}}}], "nodes": []}')
    with pytest.raises(FlowError) as info:
        parse_json(text, "f.json")
    found = {(p.where, p.what.split(" (")[0]) for p in info.value.problems}
    assert found == {("(top level)", "duplicate key 'nodes'"),
                     ("nodes[0].params.env", "duplicate key 'X'")}
    flow = tmp_path / "f.json"
    flow.write_text(text)
    assert main(["validate", str(flow)]) == 2
    assert "duplicate key 'X'" in capsys.readouterr().err


def _doc() -> st.SearchStrategy[Any]:
    keys = st.sampled_from(["a", "b", "c", 'q"', "d:", '":'])
    scalars = st.one_of(st.integers(-5, 5), st.sampled_from(['":', 'x":y', "\\u0022", "", "z"]))
    return st.recursive(scalars, lambda inner: st.one_of(
        st.lists(inner, max_size=3),
        st.lists(st.tuples(keys, inner), max_size=4)), max_leaves=12)


def _write(value: Any, spaced: bool) -> str:
    """JSON text of ``value`` where a list of (key, value) pairs is an object (keys may repeat)."""
    if isinstance(value, list) and value and all(isinstance(v, tuple) for v in value):
        colon = " : " if spaced else ":"
        return "{" + ",".join(json.dumps(k) + colon + _write(v, spaced) for k, v in value) + "}"
    if isinstance(value, list):
        return "[" + ",".join(_write(v, spaced) for v in value) + "]"
    return json.dumps(value)


def _has_duplicates(value: Any) -> bool:
    if isinstance(value, list) and value and all(isinstance(v, tuple) for v in value):
        names = [k for k, _ in value]
        return len(set(names)) != len(names) or any(_has_duplicates(v) for _, v in value)
    if isinstance(value, list):
        return any(_has_duplicates(v) for v in value)
    return False


@settings(max_examples=300, deadline=None)
@given(_doc(), st.booleans())
def test_the_fast_duplicate_check_agrees_with_a_full_parse(value: Any, spaced: bool) -> None:
    text = _write(value, spaced)
    dup = _has_duplicates(value)
    try:
        parse_json(text, "f")
    except FlowError:
        assert dup
    else:
        assert not dup
    assert bool(duplicate_keys(text)) == dup


def test_a_huge_node_id_prints_a_few_lines(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    huge = "a" * 1_000_000
    flow = tmp_path / "f.json"
    flow.write_bytes(orjson.dumps({"nodes": [{"id": huge + "!", "type": "echo"},
                                             {"id": huge, "type": "echo"}],
                                   "start_node": "b" * 1_000_000,
                                   "edges": [{"from": huge + "x", "to": huge}]}))
    assert main(["validate", str(flow)]) == 2
    err = capsys.readouterr().err
    assert 3 <= len(err.splitlines()) <= 40, len(err.splitlines())
    assert "…" in err and "Traceback" not in err
    assert main(["run", str(flow), f"x={'v' * 100_000}", "--trace", str(tmp_path / "t.json")]) == 2
    assert len(capsys.readouterr().err.splitlines()) <= 40
