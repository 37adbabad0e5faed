"""Property tests: no input may crash the validator or the template engine.

(a) any JSON value, and flow-shaped documents with random parts, either build a FlowSpec or
    raise FlowError, and every problem says where and what;
(b) any text either compiles as a template or raises TemplateSyntaxError, and a compiled
    template resolved against any scope returns a value or raises Unresolved;
(c) ``${path}`` resolves to the value reached by walking the data.
"""

from __future__ import annotations

import contextlib
from typing import Any

import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pflow_tui.engine.ir.keys import INPUT_TYPES
from pflow_tui.engine.ir.load import build_flow, normalize_ir
from pflow_tui.engine.ir.spec import FlowSpec
from pflow_tui.engine.ir.templates import (
    Ref,
    TemplateSyntaxError,
    Unresolved,
    compile_value,
    parse_text,
    to_text,
)
from pflow_tui.engine.problems import FlowError, Problem
from pflow_tui.engine.registry import registry
from pflow_tui.engine.run.execution import Execution
from pflow_tui.engine.run.flow import compile_flow
from pflow_tui.engine.trace.events import Emitter

FUZZ = settings(max_examples=200, deadline=None,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much])

# --- strategies ----------------------------------------------------------------------------------

scalars = (st.none() | st.booleans() | st.integers(-(2**63), 2**63 - 1)
           | st.floats(allow_nan=False, allow_infinity=False) | st.text(max_size=12))
json_values = st.recursive(
    scalars,
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children,
                                                                       max_size=4),
    max_leaves=16,
)
TEMPLATE_PIECES = ["${", "}", "[", "]", ".", "$$", "$", "a", "b_1", "x-y", "0", "12", " ", "item",
                   "__index__", "${a", "[${", "fetch", ".stdout", "[0]", "é", "\n", ".aggregate", ".mean",
                   ".count"]
template_text = st.lists(st.sampled_from(TEMPLATE_PIECES), max_size=12).map("".join)
names = st.sampled_from(["a", "b", "fetch", "each", "item", "__index__", "x y", "", "1a", "a.b",
                         "shell"]) | st.text(max_size=6)
values = json_values | template_text

params = st.dictionaries(st.sampled_from(["command", "message", "data", "url", "stdin", "count",
                                          "timeout", "prompt"]) | st.text(max_size=6),
                         values, max_size=3)
batches = st.fixed_dictionaries({}, optional={
    "items": template_text | st.lists(values, max_size=3) | json_values,
    "as": names | json_values,
    "error_handling": st.sampled_from(["fail_fast", "continue", "continu"]) | json_values,
    "parallel": st.booleans() | json_values,
    "max_concurrent": st.integers(-2, 120) | json_values,
    "max_retries": st.integers(-1, 12) | json_values,
    "retry_wait": st.floats(-1, 5, allow_nan=False) | json_values,
    "batch_size": st.integers(-1, 3) | json_values,
    "concurrency": json_values,
})
nodes = st.fixed_dictionaries(
    {"id": names | json_values,
     "type": st.sampled_from(["shell", "echo", "http", "llm", "read-file", "write-file", "shel", ""])
     | json_values},
    optional={"params": params | json_values, "parameters": params, "batch": batches | json_values,
              "purpose": st.text(max_size=8) | json_values, "command": values,
              "batch_mode": st.booleans() | json_values},
)
edges = st.fixed_dictionaries(
    {"from": names | json_values, "to": names | json_values},
    optional={"action": st.sampled_from(["default", "error", "retry"]) | names | json_values,
              "source": names, "target": names, "weight": json_values},
)
inputs = st.dictionaries(
    names,
    st.fixed_dictionaries({}, optional={
        "type": st.sampled_from([*INPUT_TYPES, "int"]) | json_values,
        "required": st.booleans() | json_values, "default": json_values,
        "description": st.text(max_size=8), "stdin": st.booleans() | json_values}) | json_values,
    max_size=3,
)
outputs = st.dictionaries(names, st.fixed_dictionaries({}, optional={
    "source": template_text | names | json_values, "description": json_values}) | json_values, max_size=2)
flows = st.fixed_dictionaries(
    {"nodes": st.lists(nodes, max_size=4) | json_values},
    optional={
        "edges": st.lists(edges | json_values, max_size=4) | json_values,
        "inputs": inputs | json_values,
        "outputs": outputs,
        "start_node": names | json_values,
        "ir_version": st.sampled_from(["0.1.0", "0.1", "1.0.0\n"]) | json_values,
        "template_resolution_mode": st.sampled_from(["strict", "permissive", "lenient"]) | json_values,
        "enable_namespacing": st.booleans() | json_values,
        "max_visits": st.integers(-1, 5) | json_values,
        "mappings": json_values,
        "name": st.text(max_size=8) | json_values,
        "nodez": json_values,
        # the analysis's aliases (engine/ir/aliases.py)
        "execution_mode": st.sampled_from(["sequential", "batch", "parallel", "paralel"]) | json_values,
        "batch_config": st.fixed_dictionaries({}, optional={
            "batch_size": st.integers(-1, 3) | json_values,
            "error_handling": st.sampled_from(["fail_fast", "fail_safe", "continue", "x"]) | json_values,
            "size": json_values}) | json_values,
        "parallel_groups": st.dictionaries(names, st.fixed_dictionaries({}, optional={
            "max_concurrent": st.integers(0, 3) | json_values,
            "error_handling": st.sampled_from(["fail_safe", "continue"]) | json_values}) | json_values,
            max_size=2) | json_values,
    },
)
# Mostly valid flows with random parts: they reach the deeper checks and the compiler.
good_templates = st.sampled_from([
    "${fetch.stdout}", "x ${fetch.stdout[0]} y", "${item}", "${__index__}", "$${x}", "${n}", "plain",
    "${fetch.stdout.a[${__index__}]}", "${fetch}", "${item.k}", "${n} and ${fetch.exit_code}", "${nope}",
    "${each.aggregate.count}", "${each.aggregate.mean.stdout}", "${fetch.aggregate.sum.x}", "${b.aggregate}",
])
good_values = good_templates | scalars | st.lists(good_templates | scalars, max_size=3) | st.dictionaries(
    st.sampled_from(["k", "d"]), good_templates | scalars, max_size=2)
good_nodes = st.fixed_dictionaries(
    {"id": st.sampled_from(["each", "show", "b"]), "type": st.sampled_from(["echo", "echo", "shell"])},
    optional={
        "params": st.dictionaries(st.sampled_from(["message", "data", "count", "prefix", "command"]),
                                  good_values, max_size=3),
        "batch": st.fixed_dictionaries(
            {"items": st.sampled_from(["${fetch.stdout}", "${n}", "${item}"])
             | st.lists(good_values, min_size=1, max_size=3)},
            optional={"as": st.sampled_from(["item", "f"]), "parallel": st.booleans(),
                      "max_concurrent": st.integers(1, 3), "error_handling": st.sampled_from(["continue"]),
                      "max_retries": st.integers(1, 3), "retry_wait": st.sampled_from([0, 0.5])}),
        "batch_mode": st.booleans(),
    },
)
near_valid = st.builds(
    lambda node, extra, action, inp, mode, aliases: {
        **aliases, "inputs": inp, "template_resolution_mode": mode,
        "nodes": [{"id": "fetch", "type": "shell", "params": {"command": "echo '[1]'"}}, node,
                  *([extra] if extra["id"] != node["id"] else [])],
        "edges": [{"from": "fetch", "to": node["id"], "action": action},
                  {"from": node["id"], "to": extra["id"]}],
        "outputs": {"out": {"source": "${fetch.stdout}"}},
    },
    good_nodes, good_nodes, st.sampled_from(["default", "error"]),
    st.sampled_from([{}, {"n": {"type": "array", "required": False}},
                     {"n": {"type": "string", "default": 3}}]),
    st.sampled_from(["strict", "permissive"]),
    st.fixed_dictionaries({}, optional={
        "execution_mode": st.sampled_from(["sequential", "batch", "parallel"]),
        "batch_config": st.fixed_dictionaries({}, optional={
            "error_handling": st.sampled_from(["fail_fast", "fail_safe"]),
            "batch_size": st.integers(1, 3)})}),
)


def check_problems(problems: list[Problem]) -> None:
    for p in problems:
        assert isinstance(p.where, str) and p.where.strip(), p
        assert isinstance(p.what, str) and p.what.strip(), p
        assert isinstance(p.fix, str)
        assert p.severity in ("error", "warning")
        str(p)


def build_or_flow_error(doc: Any) -> FlowSpec | None:
    try:
        spec = build_flow(doc)
    except FlowError as exc:
        assert exc.problems, "a FlowError lists at least one error"
        check_problems(exc.problems + exc.warnings)
        exc.render()
        return None
    assert isinstance(spec, FlowSpec)
    check_problems(spec.warnings)
    assert spec.start in spec.nodes
    for e in spec.edges:
        assert e.src in spec.nodes and e.dst in spec.nodes
    return spec


# --- (a) the validator ------------------------------------------------------------------------------

@FUZZ
@given(json_values)
def test_any_json_value_validates_or_raises_flow_error(doc: Any) -> None:
    build_or_flow_error(doc)
    build_or_flow_error({"ir": doc})  # the saved-workflow envelope


@pytest.mark.slow
@FUZZ
@given(flows)
def test_flow_shaped_documents_validate_or_raise_flow_error(doc: dict[str, Any]) -> None:
    build_or_flow_error(doc)


@pytest.mark.slow
@FUZZ
@given(flows | json_values)
def test_normalisation_is_idempotent_and_leaves_the_input_alone(doc: Any) -> None:
    before = orjson.dumps(doc)
    once = normalize_ir(doc)
    assert orjson.dumps(doc) == before
    check_problems(once.problems)
    twice = normalize_ir(once.doc)
    assert (twice.doc, twice.rewrites, twice.problems) == (once.doc, [], [])


@FUZZ
@given(near_valid)
def test_near_valid_flows_validate_and_compile(doc: dict[str, Any]) -> None:
    spec = build_or_flow_error(doc)
    if spec is not None:  # whatever the validator accepts, the compiler builds
        ex = Execution(spec, Emitter(), {}, {})
        compile_flow(spec, ex, registry())


def test_validator_survives_deep_nesting() -> None:
    deep: Any = "${x}"
    for _ in range(3000):
        deep = [deep]
    with pytest.raises(FlowError) as info:
        build_flow({"nodes": [{"id": "a", "type": "echo", "params": {"data": deep}}],
                    "mappings": {"m": deep}})
    assert {p.where for p in info.value.problems} >= {"nodes[0].params.data", "mappings.m"}


def test_problem_paths_quote_odd_keys() -> None:
    with pytest.raises(FlowError) as info:
        build_flow({"": 1, "nodes": [{"id": "a", "type": "echo", "params": {"a b": "${nope}"}}]})
    wheres = {p.where for p in info.value.problems}
    assert '[""]' in wheres
    assert 'nodes[0].params["a b"]' in wheres


# --- (b) the template parser and resolver ---------------------------------------------------------

ROOTS = ["a", "b_1", "x-y", "item", "__index__", "fetch"]
scopes = st.lists(st.dictionaries(st.sampled_from(ROOTS), json_values | st.integers(-3, 5), max_size=6),
                  min_size=1, max_size=3).map(tuple)
any_text = template_text | st.text(max_size=30) | st.text(alphabet="${}[].$a0_ -", max_size=30)


@FUZZ
@given(any_text)
def test_parse_text_raises_only_template_syntax_error(text: str) -> None:
    try:
        parts = parse_text(text)
    except TemplateSyntaxError as exc:
        assert 0 <= exc.offset <= len(text)
        return
    for part in parts:
        assert isinstance(part, (str, Ref))


@FUZZ
@given(any_text | st.lists(any_text, max_size=3) | st.dictionaries(st.text(max_size=4), any_text,
                                                                   max_size=3), scopes)
def test_compiled_templates_resolve_or_raise_unresolved(value: Any,
                                                        scope: tuple[dict[str, Any], ...]) -> None:
    try:
        template = compile_value(value)
    except TemplateSyntaxError:
        return
    assert all(isinstance(r, Ref) for r in template.refs)
    try:
        template.resolve(scope)
    except Unresolved as exc:
        assert str(exc).startswith("${")


@pytest.mark.parametrize("closed", [True, False])
def test_deeply_nested_template_does_not_crash_the_parser(closed: bool) -> None:
    text = "a"
    for _ in range(1500):
        text = "a[${" + text + ("}]" if closed else "")
    with contextlib.suppress(TemplateSyntaxError):  # either is fine; RecursionError is not
        parse_text("${" + text + "}")


# --- (c) round trip: ${path} walks the data ---------------------------------------------------------

identifiers = st.from_regex(r"[A-Za-z_][A-Za-z0-9_-]{0,8}", fullmatch=True)


@st.composite
def data_and_path(draw: st.DrawFn) -> tuple[str, dict[str, Any], Any]:
    """(template path, scope layer, expected value) with the data built around the path."""
    root = draw(identifiers)
    steps = draw(st.lists(identifiers | st.integers(0, 3), max_size=5))
    leaf = draw(json_values)  # the last value is returned as is, even JSON text
    value: Any = leaf
    for step in reversed(steps):
        if isinstance(step, str):
            siblings = draw(st.dictionaries(identifiers, json_values, max_size=2))
            container: Any = {**siblings, step: value}
        else:
            filler = draw(st.lists(json_values, min_size=step + 1, max_size=step + 2))
            filler[step] = value
            container = filler
        if draw(st.booleans()) and draw(st.booleans()):  # sometimes a step goes into JSON text
            container = orjson.dumps(container).decode()
        value = container
    path = root + "".join(f".{s}" if isinstance(s, str) else f"[{s}]" for s in steps)
    return path, {root: value}, leaf


@pytest.mark.slow
@FUZZ
@given(data_and_path())
def test_template_path_resolves_to_the_value_in_the_data(case: tuple[str, dict[str, Any], Any]) -> None:
    path, layer, expected = case
    assert compile_value("${" + path + "}").resolve((layer,)) == expected
    inline = compile_value("<${" + path + "}>").resolve((layer,))
    assert inline == "<" + to_text(expected) + ">"
    refs = compile_value({"k": ["${" + path + "}"]}).refs
    assert [r.text for r in refs] == [path]


@FUZZ
@given(st.lists(json_values, min_size=1, max_size=5), st.data())
def test_dynamic_index_resolves_to_the_item(items: list[Any], data: st.DataObject) -> None:
    i = data.draw(st.integers(0, len(items) - 1))
    expected = items[i]
    scope = ({"__index__": i}, {"things": {"list": items}})
    assert compile_value("${things.list[${__index__}]}").resolve(scope) == expected
