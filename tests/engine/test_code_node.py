"""The ``code`` node: pflow's params and outputs, type-annotation checks, output capture,
timeouts, and what ``validate`` finds before anything runs."""

from __future__ import annotations

import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from pflow_tui.engine.ir.load import build_flow
from pflow_tui.engine.nodes.base import RunContext
from pflow_tui.engine.nodes.code import check_code, outer_types, run_code
from pflow_tui.engine.problems import FlowError
from pflow_tui.engine.run.executor import run_flow
from pflow_tui.engine.trace import events as ev


def code(source: str, inputs: dict[str, Any] | None = None, **params: Any) -> dict[str, Any]:
    """Run the code node's function here (the main thread: the process-worker way)."""
    return run_code({"code": source, "inputs": inputs or {}, **params}, RunContext("t.c"))


def in_thread(source: str, inputs: dict[str, Any] | None = None, **params: Any) -> dict[str, Any]:
    """The same from another thread (the ``executor: thread`` way)."""
    with ThreadPoolExecutor(1) as pool:
        return pool.submit(code, source, inputs, **params).result()


@pytest.mark.parametrize("where", [code, in_thread])
def test_result_and_printed_output(where):
    out = where("rows: list\nn: int\nimport sys\nprint('top', n)\nprint('oops', file=sys.stderr)\n"
                "result: list = sorted(rows)[:n]", {"rows": [3, 1, 2], "n": 2})
    assert out == {"result": [1, 2], "stdout": "top 2\n", "stderr": "oops\n"}


def test_typing_names_are_there_and_inputs_are_plain_variables():
    out = code("x: Any\ny: Optional[int]\nz: typing.List[int]\nresult: dict = {'x': x, 'y': y, 'z': z}",
               {"x": {"a": 1}, "y": None, "z": [1]})
    assert out["result"] == {"x": {"a": 1}, "y": None, "z": [1]}


@pytest.mark.parametrize(("source", "inputs", "error"), [
    ("result: int = 1", {"n": 3}, "Input(s) missing type annotation in code: n"),
    ("n: int\nx = n", {"n": 3}, "Code must declare result type annotation"),
    ("n: int\nresult: int = n", {"n": "3"}, "Input 'n' is declared as int but is str"),
    ("n: list[dict]\nresult: int = 1", {"n": {"a": 1}}, "Input 'n' is declared as list[dict] but is dict"),
    ("n: int | None\nresult: int = 1", {"n": "x"}, "Input 'n' is declared as int | None but is str"),
    ("result: int = 'one'", {}, "Result is declared as int but is str"),
    ("result: int\nx = 1", {}, "Code must set 'result' variable"),
    ("result: int = (", {}, "Python syntax error at line 1"),
    ("", {}, "Missing required 'code' parameter"),
])
def test_mistakes_in_how_the_node_is_written_are_handled_failures(source, inputs, error):
    out = code(source, inputs)
    assert error in out["error"]
    assert "result" not in out


@pytest.mark.parametrize(("annotation", "value"), [
    ("float", 3), ("Optional[str]", None), ("int | None", None), ("'list'", []), ("MyClass", 1),
    ("Any", object()), ("typing.Optional[int]", 2), ("list[dict[str, int]]", []),
])
def test_annotations_that_accept(annotation, value):
    assert code(f"v: {annotation}\nresult: int = 1", {"v": value})["result"] == 1


def test_bad_params():
    assert "Timeout must be a positive number" in code("result: int = 1", timeout=0)["error"]
    assert "'inputs' must be an object" in run_code({"code": "result: int = 1", "inputs": [1]},
                                                    RunContext("t"))["error"]


def test_an_exception_is_raised_with_the_code_in_its_traceback():
    import traceback

    with pytest.raises(KeyError) as info:
        code("d: dict\nresult: int = d['missing']", {"d": {}})
    text = "".join(traceback.format_exception(info.value))
    assert "result: int = d['missing']" in text and 'File "<code ' in text


def test_timeout_stops_the_code_on_a_worker_process_main_thread():
    t0 = time.monotonic()
    with pytest.raises(TimeoutError, match=r"timed out after 0\.3 seconds"):
        code("while True:\n    pass\nresult: int = 1", timeout=0.3)
    assert time.monotonic() - t0 < 10


def test_timeout_in_a_thread_leaves_the_code_behind():
    with pytest.raises(TimeoutError, match=r"timed out after 0\.2 seconds"):
        in_thread("import time\ntime.sleep(2)\nresult: int = 1", timeout=0.2)


def test_a_cancelled_thread_run_returns_at_once():
    from pflow_tui.engine.nodes.base import NodeCancelled

    ctx = RunContext("t.c")
    ctx.cancel = threading.Event()
    threading.Timer(0.1, ctx.cancel.set).start()
    with ThreadPoolExecutor(1) as pool, pytest.raises(NodeCancelled):
        pool.submit(run_code, {"code": "import time\ntime.sleep(2)\nresult: int = 1"}, ctx).result()


def test_concurrent_runs_in_threads_capture_their_own_output():
    source = "i: int\nfor _ in range(200):\n    print(i)\nresult: int = i"
    with ThreadPoolExecutor(8) as pool:
        outs = list(pool.map(lambda i: code(source, {"i": i}), range(8)))
    for i, out in enumerate(outs):
        assert out["stdout"] == f"{i}\n" * 200


def test_in_a_flow_its_outputs_feed_templates_and_a_batch(tmp_path: Path):
    doc = {"name": "c", "nodes": [
        {"id": "gen", "type": "code", "params": {"inputs": {"n": 4}, "code": "n: int\nresult: list = "
                                                                         "[i * 10 for i in range(n)]"}},
        {"id": "half", "type": "code", "executor": "thread", "batch": {"items": "${gen.result}"},
         "params": {"inputs": {"x": "${item}"}, "code": "x: int\nresult: float = x / 2"}},
        {"id": "total", "type": "code", "params": {
            "inputs": {"parts": "${half.results}"},
            "code": "parts: list\nresult: float = sum(p['result'] for p in parts)"}}],
        "edges": [{"from": "gen", "to": "half"}, {"from": "half", "to": "total"}]}
    events: list[dict[str, Any]] = []
    result = run_flow(build_flow(doc), {}, trace=tmp_path / "t.json", sinks=[events.append])
    assert result.status == "ok"
    assert result.store["gen"]["result"] == [0, 10, 20, 30]
    assert result.store["total"]["result"] == 30.0
    assert [e["node"] for e in events if e["kind"] == ev.NODE_END] == ["gen", "half", "total"]


def test_a_handled_failure_takes_the_error_edge(tmp_path: Path):
    doc = {"name": "c", "nodes": [
        {"id": "bad", "type": "code", "params": {"inputs": {"n": "${x}"}, "code": "n: int\nresult: int = n"}},
        {"id": "fix", "type": "echo", "params": {"message": "${bad.error}"}}],
        "edges": [{"from": "bad", "to": "fix", "action": "error"}],
        "inputs": {"x": {"type": "string"}}}
    result = run_flow(build_flow(doc), {"x": "text"}, trace=tmp_path / "t.json")
    assert result.status == "ok"
    assert result.store["fix"]["echo"].startswith("Input 'n' is declared as int but is str")


# --- validate ------------------------------------------------------------------------------------

def problems(params: dict[str, Any]) -> list[tuple[str, str]]:
    with pytest.raises(FlowError) as info:
        build_flow({"nodes": [{"id": "c", "type": "code", "params": params}]})
    return [(p.where, p.what) for p in info.value.problems]


def test_validate_finds_what_is_visible_in_the_code():
    assert problems({"code": "x = (\nresult: int = 1"}) == [
        ("nodes[0].params.code", "Python syntax error at line 1: '(' was never closed")]
    assert problems({"code": "x = 1"}) == [
        ("nodes[0].params.code", "the code never declares result with a type annotation")]
    assert problems({"code": "result: int = n", "inputs": {"n": 1, "m": [2]}}) == [
        ("nodes[0].params.inputs.n", "input 'n' has no type annotation in the code"),
        ("nodes[0].params.inputs.m", "input 'm' has no type annotation in the code")]
    assert problems({"code": "n: str\nresult: str = n", "inputs": {"n": 3}}) == [
        ("nodes[0].params.inputs.n", "input 'n' is declared as str but is int")]
    assert problems({"code": "  "}) == [("nodes[0].params.code", "the code is empty")]
    # templates and annotated inputs pass; code built from a template is checked when it runs
    build_flow({"inputs": {"v": {"type": "string"}}, "nodes": [{"id": "c", "type": "code", "params": {
        "code": "n: str\nresult: str = n", "inputs": {"n": "${v}"}}}]})
    build_flow({"inputs": {"v": {"type": "string"}},
                "nodes": [{"id": "c", "type": "code", "params": {"code": "${v}"}}]})


# --- the type check, for any JSON value ------------------------------------------------------------

JSON = st.recursive(st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(),
                    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(), inner, max_size=3),
                    max_leaves=8)
NAMES = {bool: "bool", int: "int", float: "float", str: "str", list: "list", dict: "dict"}


@pytest.mark.slow
@given(JSON, st.sampled_from(["int", "float", "str", "bool", "list", "dict"]), st.booleans())
def test_an_input_passes_exactly_when_its_value_has_the_declared_outer_type(value, name, optional):
    annotation = f"{name} | None" if optional else name
    accepted = {"int": (int,), "float": (int, float), "str": (str,), "bool": (bool,), "list": (list,),
                "dict": (dict,)}[name] + ((type(None),) if optional else ())
    out = code(f"v: {annotation}\nresult: int = 1", {"v": value})
    assert ("error" not in out) == isinstance(value, accepted)
    assert outer_types(annotation) == accepted
    # its own type's name always fits, and so does Any
    own = "None" if value is None else NAMES[type(value)]
    assert "error" not in code(f"v: {own}\nresult: int = 1", {"v": value})
    assert not list(check_code({"code": "v: Any\nresult: int = 1", "inputs": {"v": value}}))
