"""Item labels: derived from the item's value or rendered from ``batch.label``, in ``item.start``."""

from __future__ import annotations

import unicodedata
from pathlib import Path
from typing import Any

import jsonschema
import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pocketflow import AsyncFlow, AsyncParallelBatchNode, BatchFlow, BatchNode, Flow, Node

import pflow_tui
from pflow_tui.engine.ir.load import build_flow
from pflow_tui.engine.problems import FlowError
from pflow_tui.engine.run.executor import run_flow
from pflow_tui.engine.run.labels import WIDTH, LabelTemplate, item_label, one_line
from pflow_tui.engine.trace.rerun import rerun_flow
from pflow_tui.engine.trace.writer import read_trace, trace_schema

VALIDATOR = jsonschema.Draft202012Validator(trace_schema())


def labels(path: Path) -> dict[int, str | None]:
    """index -> label of every ``item.start`` of a trace (checked against the schema)."""
    VALIDATOR.validate(orjson.loads(path.read_bytes()))
    return {e["index"]: e.get("label") for e in read_trace(path).events if e["kind"] == "item.start"}


def run(tmp_path: Path, batch: dict[str, Any], params: dict | None = None, name: str = "t",
        **kw: Any) -> Path:
    doc = {"name": "f", "inputs": {"who": {"type": "string", "required": False}},
           "nodes": [{"id": "e", "type": "echo", "params": params or {"message": "m ${__index__}"},
                      "batch": {"error_handling": "continue", **batch}}]}
    trace = tmp_path / f"{name}.json"
    run_flow(build_flow(doc, base_dir=tmp_path), kw.get("inputs", {}), trace=trace)
    return trace


# --- derived labels ------------------------------------------------------------------------------

@pytest.mark.parametrize(("item", "label"), [
    ("delta bad", "delta bad"),
    ("  padded  ", "padded"),
    ("", '""'),
    ("   ", '"   "'),
    (3, "3"),
    (-2.5, "-2.5"),
    (True, "true"),
    (None, "null"),
    ({"name": "alpha", "id": 3}, "alpha"),
    ({"id": 7, "x": 1}, "7"),
    ({"id": 0, "text": "service queue"}, "service queue"),  # text says more than a number
    ({"id": "doc-1", "text": "service queue"}, "doc-1"),
    ({"title": "T", "path": "/p"}, "T"),
    ({"url": "https://x.org/a"}, "https://x.org/a"),
    ({"name": "", "file": "a.txt"}, "a.txt"),  # an empty name names nothing
    ({"file_path": "/home/me/" + "d" * 40 + "/in/fox.txt"}, "…" + ("d" * 40 + "/in/fox.txt")[-(WIDTH - 1):]),
    ({"path": "/a\n/b  "}, "/a\\n/b"),
    ({"name": {"first": "A"}}, '{"name":{"first":"A"}}'),  # nor does an object
    ({"q": [1, 2]}, '{"q":[1,2]}'),
    ([1, "a"], '[1,"a"]'),
    ([], "[]"),
    ("two\nlines", "two\\nlines"),
    ("bell\x07 esc\x1b[31m", "bell\\x07 esc\\x1b[31m"),
    ("a\u2028b\u202ec", "a\\u2028b\\u202ec"),
])
def test_a_label_is_derived_from_the_items_json(item: Any, label: str) -> None:
    assert item_label(item) == label


def test_a_long_item_is_cut_with_an_ellipsis_before_it_is_written_out() -> None:
    assert item_label("x" * 100) == "x" * (WIDTH - 1) + "…"
    assert item_label(10 ** 40) == str(10 ** 40)[: WIDTH - 1] + "…"
    huge = {"rows": list(range(1_000_000)), "blob": "y" * 10_000_000}
    label = item_label(huge)
    assert label.startswith('{"rows":[0,1,2,') and label.endswith("…") and len(label) == WIDTH
    assert item_label([["a" * 50]]) == '[["' + "a" * (WIDTH - 4) + "…"
    assert one_line("abc", 2) == "a…"


def test_odd_python_values_get_a_label_too() -> None:
    class Odd:
        def __repr__(self) -> str:
            return "<odd\nthing>"

    class Broken:
        def __repr__(self) -> str:
            raise RuntimeError("no")

    assert item_label(Odd()) == "<odd\\nthing>"
    assert item_label(Broken()) == "<Broken>"
    assert item_label({1: (2, 3), "k": {4}}) == '{"1":[2,3],"k":{4}}'
    assert item_label(float("nan")) == "null"


_UNSAFE = {"\u2028", "\u2029", "\u200e", "\u200f", *map(chr, range(0x202A, 0x202F)),
           *map(chr, range(0x2066, 0x206A))}
json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(),
    lambda children: st.lists(children, max_size=5) | st.dictionaries(st.text(), children, max_size=5),
    max_leaves=20)


@settings(max_examples=400, deadline=None)
@given(json_values, st.integers(min_value=1, max_value=60))
def test_any_json_item_gets_one_short_safe_line(item: Any, width: int) -> None:
    label = item_label(item, width)
    assert isinstance(label, str) and 0 < len(label) <= width
    assert not any(unicodedata.category(c) == "Cc" or c in _UNSAFE for c in label), repr(label)
    assert label == label.strip() or label.startswith('"')  # (a blank string: its JSON)
    assert one_line(label, width) == label  # a label is its own label


@settings(max_examples=300, deadline=None)
@given(st.text(), st.integers(min_value=1, max_value=60), st.booleans())
def test_any_text_makes_one_short_safe_line_cut_at_either_end(text: str, width: int, tail: bool) -> None:
    label = one_line(text, width, tail=tail)
    assert 0 < len(label) <= width
    assert not any(unicodedata.category(c) == "Cc" or c in _UNSAFE for c in label), repr(label)
    if len(text.strip()) > width > 1:  # (escapes only make it longer)
        assert label.startswith("…") if tail else label.endswith("…")


@settings(max_examples=200, deadline=None)
@given(st.text())
def test_a_string_item_is_itself_when_it_is_short_and_plain(text: str) -> None:
    plain = text.strip() and len(text) <= WIDTH and text == text.strip() \
        and not any(unicodedata.category(c) == "Cc" or c in _UNSAFE for c in text)
    assert (item_label(text) == text) == bool(plain)


# --- in the events ------------------------------------------------------------------------------

def test_every_item_start_carries_its_label(tmp_path: Path) -> None:
    items = ["delta bad", 3, 2.5, False, {"name": "alpha"}, {"id": 9}, {"n": 1}, [1, 2], "x\x1b]0;t\x07"]
    assert labels(run(tmp_path, {"items": items, "parallel": True, "max_concurrent": 3})) == {
        0: "delta bad", 1: "3", 2: "2.5", 3: "false", 4: "alpha", 5: "9", 6: '{"n":1}', 7: "[1,2]",
        8: "x\\x1b]0;t\\x07"}


def test_a_label_template_is_rendered_in_each_items_scope(tmp_path: Path) -> None:
    items = [{"name": "a", "n": 1}, {"name": "b\nc", "n": 2}, {"n": 3}, "plain", {"name": "d" * 50}]
    trace = run(tmp_path, {"items": items, "as": "task", "label": "${task.name} (${__index__}) ${who}"},
                inputs={"who": "me"})
    got = labels(trace)
    assert got[0] == "a (0) me"
    assert got[1] == "b\\nc (1) me"  # one line
    assert got[2] == '{"n":3}'  # no name: the derived label, and the item runs
    assert got[3] == "plain"
    assert got[4] == "d" * (WIDTH - 1) + "…"
    assert read_trace(trace).store["e"]["success_count"] == 5


def test_a_whole_value_label_template_is_labelled_like_an_item(tmp_path: Path) -> None:
    items = [{"user": {"name": "ann"}, "tags": ["x"]}, {"user": None}]
    got = labels(run(tmp_path, {"items": items, "label": "${item.user}"}))
    assert got == {0: "ann", 1: '{"user":null}'}  # null: the item's own label


def test_a_label_template_that_fails_never_fails_the_item(tmp_path: Path) -> None:
    doc = {"name": "f", "template_resolution_mode": "permissive", "nodes": [
        {"id": "e", "type": "echo", "params": {"message": "${item}"},
         "batch": {"items": ["a", "b"], "label": "${item.nope[3]}"}}]}
    trace = tmp_path / "t.json"
    result = run_flow(build_flow(doc), {}, trace=trace)
    assert result.status == "ok"
    assert labels(trace) == {0: "a", 1: "b"}
    assert not [e for e in read_trace(trace).events if e["kind"] == "warning"]


def test_an_item_whose_params_fail_still_has_a_label(tmp_path: Path) -> None:
    trace = run(tmp_path, {"items": [{"name": "x"}, {"id": 1}]}, params={"message": "${item.name}"})
    assert labels(trace) == {0: "x", 1: "1"}
    ends = [e for e in read_trace(trace).events if e["kind"] == "item.end"]
    assert ends[1]["status"] == "error" and ends[1]["error"]["type"] == "TemplateError"


def test_chunked_and_streamed_batches_label_their_items(tmp_path: Path) -> None:
    rows = tmp_path / "rows.jsonl"
    rows.write_text("".join(orjson.dumps({"name": f"row {i}", "v": i}).decode() + "\n" for i in range(25)))
    trace = run(tmp_path, {"items": {"jsonl_file": "rows.jsonl"}, "batch_size": 4, "parallel": True,
                           "max_concurrent": 3})
    assert labels(trace) == {i: f"row {i}" for i in range(25)}
    (tmp_path / "lines.txt").write_text("first line\n\n  second  \n")
    trace = run(tmp_path, {"items": {"lines_file": "lines.txt"}, "label": "L ${item}"}, name="u")
    assert labels(trace) == {0: "L first line", 1: "L   second"}


def test_a_rerun_labels_restored_and_new_items(tmp_path: Path) -> None:
    doc = {"name": "f", "nodes": [{"id": "e", "type": "echo", "params": {"message": "${item.name}"},
                                   "batch": {"items": [{"name": "a"}, {"id": 2}], "label": "${item.id}",
                                             "error_handling": "continue"}}]}
    (tmp_path / "f.json").write_text(orjson.dumps(doc).decode())
    first = tmp_path / "a.json"
    run_flow(build_flow(doc), {}, trace=first)
    second = tmp_path / "b.json"
    rerun_flow(first, trace=second)
    got = {e["index"]: (e.get("label"), e.get("cached", False))
           for e in read_trace(second).events if e["kind"] == "item.start"}
    assert got == {0: ("a", True), 1: ("2", False)}  # no id: derived from the name


def test_a_batched_workflow_node_labels_its_items(tmp_path: Path) -> None:
    child = {"nodes": [{"id": "say", "type": "echo", "params": {"message": "${f}"}}],
             "inputs": {"f": {"type": "string"}}}
    doc = {"name": "f", "nodes": [{"id": "each", "type": "workflow",
                                   "params": {"workflow_ir": child, "param_mapping": {"f": "${item.file}"}},
                                   "batch": {"items": [{"file": "a.txt"}, {"file": "b.txt"}]}}]}
    trace = tmp_path / "t.json"
    run_flow(build_flow(doc), {}, trace=trace)
    assert labels(trace) == {0: "a.txt", 1: "b.txt"}


def test_label_template_objects_render_like_items() -> None:
    tpl = LabelTemplate("${item.a} and ${item.b}")
    assert tpl.render(({"item": {"a": 1, "b": [2]}},), {}) == "1 and [2]"
    assert tpl.render(({"item": "s"},), "s") == "s"


# --- validation -----------------------------------------------------------------------------------

def _problems(batch: dict[str, Any]) -> list[str]:
    doc = {"inputs": {"who": {"type": "string"}}, "nodes": [
        {"id": "list", "type": "shell", "params": {"command": "echo []"}},
        {"id": "each", "type": "echo", "params": {"message": "${task}"},
         "batch": {"items": "${list.stdout}", "as": "task", **batch}},
        {"id": "later", "type": "echo", "params": {"message": "x"}}],
        "edges": [{"from": "list", "to": "each"}, {"from": "each", "to": "later"}]}
    try:
        build_flow(doc)
    except FlowError as exc:
        return [f"{p.where}: {p.what} | {p.fix}" for p in exc.problems]
    return []


def test_a_good_label_template_is_valid() -> None:
    assert _problems({"label": "${task.name} ${__index__} ${who} ${list.stdout}"}) == []
    assert _problems({"label": "plain text"}) == []


@pytest.mark.parametrize(("label", "expected"), [
    (3, ["nodes[1].batch.label: expected string, got integer | put the value in double quotes"]),
    (["${task}"], ["nodes[1].batch.label: expected string, got array | write \"label\" as one text"]),
    ("${tsk.name}", ["nodes[1].batch.label: ${tsk.name}: 'tsk' is not a node, an input or a batch alias "
                     "| did you mean 'task'?"]),
    ("${later.x}", ["nodes[1].batch.label: ${later.x}: node 'later' does not run before this one"]),
    ("${task.name", ["nodes[1].batch.label: bad template '${task.name': unclosed '${'"]),
])
def test_a_bad_label_is_reported_where_it_is(label: Any, expected: list[str]) -> None:
    problems = _problems({"label": label})
    assert len(problems) == len(expected)
    for got, want in zip(problems, expected, strict=True):
        assert got.startswith(want.split(" | ")[0]) and want.split(" | ")[-1] in got, got


# --- Python programs ------------------------------------------------------------------------------

def _traced(path: Path, fn: Any, *args: Any) -> dict[int, str | None]:
    with pflow_tui.trace(path) as tracer:
        fn(*args)
    return labels(tracer.paths[0])


def test_a_python_batch_node_labels_its_items(tmp_path: Path) -> None:
    class Each(BatchNode):
        def prep(self, shared):
            return ["delta bad", {"name": "n"}, ("t", 1), {1, 2}]

        def exec(self, item):
            return 1

    got = _traced(tmp_path / "t.json", Flow(start=Each()).run, {})
    assert got == {0: "delta bad", 1: "n", 2: '["t",1]', 3: "{1, 2}"}  # (a set is written as its repr)


def test_python_async_batches_and_batch_flows_label_their_items(tmp_path: Path) -> None:
    class Par(AsyncParallelBatchNode):
        async def prep_async(self, shared):
            return [{"title": "one"}, {"title": "two"}]

        async def exec_async(self, item):
            return item

    class Stamp(Node):
        pass

    class Topics(BatchFlow):
        def prep(self, shared):
            return [{"topic": "AI"}, {"topic": "ML"}]

    import asyncio

    got = _traced(tmp_path / "a.json", lambda: asyncio.run(AsyncFlow(start=Par()).run_async({})))
    assert got == {0: "one", 1: "two"}
    got = _traced(tmp_path / "b.json", Flow(start=Topics(start=Stamp())).run, {})
    assert got == {0: '{"topic":"AI"}', 1: '{"topic":"ML"}'}
