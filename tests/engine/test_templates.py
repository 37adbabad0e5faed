"""Template parsing and resolution (pflow IR 0.1.0 rules)."""

from __future__ import annotations

import pytest

from pflow_tui.engine.ir.templates import TemplateSyntaxError, Unresolved, compile_value, parse_text

STORE = {
    "list": {"stdout": '[{"x": 1}, {"x": 2}]', "n": 2, "none": None, "flag": True},
    "batch": {"results": [{"stdout": "a"}, {"stdout": "b"}, {"stdout": "c"}]},
    "my-node": {"v": {"deep": [10, 20, 30]}},
}


def resolve(value, **local):
    return compile_value(value).resolve((local, STORE))


def test_whole_value_keeps_type_and_inline_renders_text():
    assert resolve("${list.n}") == 2
    assert resolve("${list.none}") is None
    assert resolve("n=${list.n}") == "n=2"
    assert resolve("[${list.none}]") == "[]"
    assert resolve("${list.flag}!") == "True!"
    assert resolve("v=${my-node.v}") == 'v={"deep": [10, 20, 30]}'


def test_paths_indexes_and_json_text():
    assert resolve("${batch.results[1].stdout}") == "b"
    assert resolve("${list.stdout[1].x}") == 2  # steps into JSON text
    assert resolve("${my-node.v.deep[2]}") == 30
    assert resolve("${batch.results[${__index__}].stdout}", __index__=2) == "c"
    assert resolve("${item}-${batch.results[${__index__}].stdout}", item="z", __index__=0) == "z-a"


def test_containers_resolve_recursively_and_parse_json_text():
    value = {"a": ["${list.n}", "x${list.n}"], "b": "${list.stdout}", "c": 5}
    assert resolve(value) == {"a": [2, "x2"], "b": [{"x": 1}, {"x": 2}], "c": 5}


def test_escape_keeps_literal_text():
    assert parse_text("cost: $${price}") == ["cost: ${price}"]
    assert resolve("$${a.b} and ${list.n}") == "${a.b} and 2"


@pytest.mark.parametrize("text, reason", [
    ("${nope.x}", "'nope' is not defined"),
    ("${list.nothing}", "list has no key 'nothing' (its keys: flag, n, none, stdout)"),
    ("${batch.results[7]}", "batch.results has 3 items"),
    ("${list.n.x}", "list.n is int, which has no key 'x'"),
    ("${batch.results[${list.stdout}]}", "is not an integer"),
])
def test_unresolved_says_why(text, reason):
    with pytest.raises(Unresolved) as info:
        resolve(text)
    assert reason in str(info.value)


@pytest.mark.parametrize("text", ["${", "${a", "${a.}", "${a[x]}", "${1a}", "${a b}", "${a[0}"])
def test_syntax_errors(text):
    with pytest.raises(TemplateSyntaxError):
        parse_text(text)


def test_refs_are_listed_for_validation():
    refs = compile_value({"k": "${a.b[${__index__}].c} ${d}"}).refs
    assert sorted(r.root for r in refs) == ["__index__", "a", "d"]
