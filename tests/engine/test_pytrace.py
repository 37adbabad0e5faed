"""Tracing Python PocketFlow programs: the events it records, and that the program's
behaviour stays exactly PocketFlow's (warnings, instance patches, isinstance, timing,
exceptions, return values)."""

from __future__ import annotations

import asyncio
import copy
import time
import warnings
from pathlib import Path

import jsonschema
import pocketflow
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pocketflow import (
    AsyncFlow,
    AsyncNode,
    AsyncParallelBatchFlow,
    AsyncParallelBatchNode,
    BatchFlow,
    BatchNode,
    Flow,
    Node,
)

import pflow_tui
from pflow_tui.engine.python.pytrace import Tracer
from pflow_tui.engine.trace.writer import read_trace, trace_schema

VALIDATOR = jsonschema.Draft202012Validator(trace_schema())


def traced(path: Path, fn, *args):
    """Run ``fn(*args)`` inside a tracer; (its result, the trace document)."""
    with pflow_tui.trace(path) as tracer:
        result = fn(*args)
    doc = read_trace(tracer.paths[0])
    return result, doc, tracer


def kinds(doc, kind):
    return [e for e in doc.events if e["kind"] == kind]


def valid(path: Path) -> None:
    import orjson

    VALIDATOR.validate(orjson.loads(path.read_bytes()))


# --- the program ------------------------------------------------------------------------------

class Load(Node):
    def prep(self, shared):
        return shared["n"]

    def exec(self, n):
        return list(range(n))

    def post(self, shared, prep_res, exec_res):
        shared["items"] = exec_res


class Square(BatchNode):
    def prep(self, shared):
        return shared["items"]

    def exec(self, x):
        if x == 3:
            raise ValueError("three")
        return x * x

    def exec_fallback(self, prep_res, exc):
        return -1

    def post(self, shared, prep_res, exec_res):
        shared["squares"] = exec_res
        return "done"


class Flaky(Node):
    def __init__(self):
        super().__init__(max_retries=3)
        self.calls = 0

    def exec(self, prep_res):
        self.calls += 1
        if self.calls < 2:
            raise RuntimeError("flaky")
        return "ok"

    def post(self, shared, prep_res, exec_res):
        shared["report"] = exec_res
        return "finished"


def program():
    load, square, flaky = Load(), Square(), Flaky()
    load >> square
    square - "done" >> flaky
    return Flow(start=load)


def test_a_sync_flow_is_recorded_node_by_node_item_by_item(tmp_path):
    shared = {"n": 5}
    result, doc, _ = traced(tmp_path / "t.json", program().run, shared)
    assert result == "finished"
    assert shared["squares"] == [0, 1, 4, -1, 16]
    assert doc.header["flow"]["nodes"][0]["id"] == "load"
    assert [(e["from"], e["to"], e["action"]) for e in kinds(doc, "edge")] == [
        ("load", "square", "default"), ("square", "flaky", "done")]
    assert [e["path"] for e in kinds(doc, "node.start")] == ["flow.load", "flow.square", "flow.flaky"]
    items = kinds(doc, "item.end")
    assert [e["index"] for e in items] == [0, 1, 2, 3, 4]
    assert [e["outputs"]["result"] for e in items] == [0, 1, 4, -1, 16]
    assert items[3]["fallback"]["message"] == "three"  # exec_fallback recovered from it
    attempts = kinds(doc, "attempt.end")
    assert [(a["attempt"], a["status"]) for a in attempts] == [(1, "error"), (2, "ok")]
    assert attempts[0]["will_retry"] is True
    flaky_end = kinds(doc, "node.end")[-1]
    assert flaky_end["attempts"] == 2 and flaky_end["action"] == "finished"
    writes = {(e["path"], e["key"]): e["value"] for e in kinds(doc, "store.write")}
    assert writes[("flow.square", "squares")] == [0, 1, 4, -1, 16]
    assert writes[("flow.flaky", "report")] == "ok"
    assert doc.status == "ok" and doc.store["report"] == "ok"
    valid(doc.path)


def test_in_place_changes_to_the_store_are_seen(tmp_path):
    class Append(Node):
        def post(self, shared, prep_res, exec_res):
            shared["log"].append(self.params.get("x", 1))

    a, b = Append(), Append()
    a >> b
    _, doc, _ = traced(tmp_path / "t.json", Flow(start=a).run, {"log": []})
    writes = [(e["path"], e["value"]) for e in kinds(doc, "store.write")]
    assert writes == [("flow", []), ("flow.append", [1]), ("flow.append_2", [1, 1])]


def test_async_parallel_items_overlap_and_keep_their_indexes(tmp_path):
    class Sleepy(AsyncParallelBatchNode):
        async def prep_async(self, shared):
            return [0.06, 0.01, 0.04, 0.02]

        async def exec_async(self, delay):
            await asyncio.sleep(delay)
            return delay

    async def main():
        return await AsyncFlow(start=Sleepy()).run_async({})

    started = time.perf_counter()
    _, doc, _ = traced(tmp_path / "t.json", asyncio.run, main())
    assert time.perf_counter() - started < 0.2  # not 0.13 s one after the other plus slack
    ends = kinds(doc, "item.end")
    assert [e["index"] for e in ends] == [1, 3, 2, 0]  # finishing order: shortest first
    assert {e["index"]: e["outputs"]["result"] for e in ends} == {0: 0.06, 1: 0.01, 2: 0.04, 3: 0.02}
    starts = kinds(doc, "item.start")
    assert max(s["seq"] for s in starts) < min(e["seq"] for e in ends)  # all started first
    assert kinds(doc, "node.start")[0]["batch"]["parallel"] is True


def test_nested_flows_and_batch_flow_iterations_nest_under_their_paths(tmp_path):
    class Stamp(Node):
        def post(self, shared, prep_res, exec_res):
            shared.setdefault("seen", []).append(self.params["k"])

    class Each(BatchFlow):
        def prep(self, shared):
            return [{"k": 1}, {"k": 2}]

    inner = Flow(start=Stamp())
    each = Each(start=inner)
    outer = Flow(start=each)
    shared: dict = {}
    _, doc, _ = traced(tmp_path / "t.json", outer.run, shared)
    assert shared["seen"] == [1, 2]
    paths = [e["path"] for e in kinds(doc, "node.start")]
    assert paths == ["flow.each", "flow.each.iteration_0.flow", "flow.each.iteration_0.flow.stamp",
                     "flow.each.iteration_1.flow", "flow.each.iteration_1.flow.stamp"]
    assert [e["item"] for e in kinds(doc, "item.start")] == [{"k": 1}, {"k": 2}]
    children = doc.header["children"]
    assert children["each"]["flow"]["nodes"][0]["id"] == "flow"
    assert children["each"]["children"]["flow"]["flow"]["nodes"][0]["type"] == "Stamp"
    valid(doc.path)


def test_a_loop_gets_visit_numbers(tmp_path):
    class Count(Node):
        def post(self, shared, prep_res, exec_res):
            shared["i"] = shared.get("i", 0) + 1
            return "again" if shared["i"] < 3 else "stop"

    count = Count()
    count - "again" >> count
    count - "stop" >> Node()
    _, doc, _ = traced(tmp_path / "t.json", Flow(start=count).run, {})
    assert [e["path"] for e in kinds(doc, "node.start")] == [
        "flow.count", "flow.count#2", "flow.count#3", "flow.node"]
    valid(doc.path)


def test_the_original_exception_propagates_and_the_trace_keeps_it(tmp_path):
    boom = KeyError("missing")

    class Fails(Node):
        def exec(self, prep_res):
            raise boom

    trace = tmp_path / "t.json"
    with pytest.raises(KeyError) as caught, pflow_tui.trace(trace):
        Flow(start=Fails()).run({})
    assert caught.value is boom  # the very exception, not wrapped
    doc = read_trace(trace)
    assert doc.status == "failed"
    end = kinds(doc, "node.end")[0]
    assert end["status"] == "error" and end["error"]["type"] == "KeyError"
    assert "engine/python/pytrace.py" not in end["error"]["traceback"]  # the tracer's frames are left out
    assert "raise boom" in end["error"]["traceback"]
    assert kinds(doc, "run.end")[0]["error"]["path"] == "flow.fails"
    valid(trace)


def test_return_values_of_post_and_run_pass_through(tmp_path):
    marker = object()

    class Returns(Node):
        def post(self, shared, prep_res, exec_res):
            return marker

    with pflow_tui.trace(tmp_path / "t.json"):
        assert Returns().run({}) is marker

        class Custom(Flow):
            def post(self, shared, prep_res, exec_res):
                return ("custom", exec_res)

        assert Custom(start=Node()).run({}) == ("custom", None)


def test_warnings_keep_their_text_and_origin(tmp_path):
    class Ends(Node):
        def post(self, shared, prep_res, exec_res):
            return "nowhere"

    def run_both():
        ends = Ends()
        ends - "somewhere" >> Node()
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            Flow(start=ends).run({})
            ends.run({})
        return [(str(w.message), Path(w.filename).name) for w in caught]

    plain = run_both()
    with pflow_tui.trace(tmp_path / "t.json"):
        assert run_both() == plain
    assert plain == [("Flow ends: 'nowhere' not found in ['somewhere']", "__init__.py"),
                     ("Node won't run successors. Use Flow.", "__init__.py")]


def test_methods_patched_on_instances_survive_the_copies(tmp_path):
    node = Node()
    node.exec = lambda prep_res: "patched"  # PocketFlow copies the node per run: the patch goes along

    class Keep(Node):
        def prep(self, shared):
            return None

    def post(shared, prep_res, exec_res):
        shared["got"] = exec_res

    node.post = post
    shared: dict = {}
    with pflow_tui.trace(tmp_path / "t.json"):
        Flow(start=node).run(shared)
        assert copy.copy(node).exec(None) == "patched"
    assert shared == {"got": "patched"}


def test_isinstance_decisions_are_pocketflows(tmp_path):
    class Sync(Node):
        def post(self, shared, prep_res, exec_res):
            shared["sync"] = True

    class Async(AsyncNode):
        async def post_async(self, shared, prep_res, exec_res):
            shared["async"] = True

    a, s = Async(), Sync()
    a >> s
    shared: dict = {}
    with pflow_tui.trace(tmp_path / "t.json") as tracer:
        asyncio.run(AsyncFlow(start=a).run_async(shared))  # a sync node inside an async flow
        with pytest.raises(RuntimeError, match="Use run_async"):
            Flow(start=Async()).run({})  # an async node in a sync flow fails as it always did
        assert isinstance(a, AsyncNode) and not isinstance(s, AsyncNode)
    assert shared == {"async": True, "sync": True}
    assert len(tracer.paths) == 2  # one trace per top-level run
    assert read_trace(tracer.paths[1]).status == "failed"


def test_nothing_is_left_patched_and_nothing_is_traced_outside(tmp_path):
    originals = {(cls, name): cls.__dict__[name] for cls in (pocketflow.BaseNode, Node, Flow)
                 for name in ("_run", "_exec", "get_next_node") if name in cls.__dict__}
    with pflow_tui.trace(tmp_path / "t.json") as tracer:
        Flow(start=Flaky()).run({})
    assert {(cls, name): cls.__dict__[name] for cls, name in originals} == originals
    assert "exec" in Flaky.__dict__ and not hasattr(Flaky.__dict__["exec"], "__pflow_tui__")
    Flow(start=Flaky()).run({})  # after the block: no new trace
    assert len(tracer.paths) == 1


def test_parallel_batch_flow_iterations_run_concurrently(tmp_path):
    class Wait(AsyncNode):
        async def exec_async(self, prep_res):
            await asyncio.sleep(0.05)
            return self.params["i"]

    class Fan(AsyncParallelBatchFlow):
        async def prep_async(self, shared):
            return [{"i": i} for i in range(5)]

    started = time.perf_counter()
    _, doc, _ = traced(tmp_path / "t.json", asyncio.run, Fan(start=Wait()).run_async({}))
    assert time.perf_counter() - started < 0.2
    assert sorted(e["index"] for e in kinds(doc, "item.end")) == [0, 1, 2, 3, 4]
    assert sorted(e["path"] for e in kinds(doc, "node.end") if e["node"] == "wait") == [
        f"fan.fan.iteration_{i}.wait" for i in range(5)]
    valid(doc.path)


# --- same behaviour, with and without the tracer, on generated programs ------------------------

@st.composite
def programs(draw):
    """A chain of nodes: plain, batch or nested flows; some fail on some inputs, some retry."""
    return draw(st.lists(st.tuples(
        st.sampled_from(["plain", "batch", "nested"]),
        st.integers(1, 3),  # max_retries
        st.integers(0, 4),  # fail on this item / attempt count
        st.booleans(),  # has a fallback
    ), min_size=1, max_size=5))


def build(spec):
    class Step(Node):
        def __init__(self, k, retries, fail_at, fallback):
            super().__init__(max_retries=retries)
            self.k, self.fail_at, self.fallback, self.calls = k, fail_at, fallback, 0

        def prep(self, shared):
            return shared.get("v", 0)

        def exec(self, v):
            self.calls += 1
            if (v + self.k) % 5 == self.fail_at and self.calls < 3:
                raise ValueError(f"step {self.k} fails on {v}")
            return v + self.k

        def exec_fallback(self, prep_res, exc):
            if self.fallback:
                return -self.k
            raise exc

        def post(self, shared, prep_res, exec_res):
            shared["v"] = exec_res
            shared.setdefault("trail", []).append(exec_res)

    class Many(BatchNode):
        def __init__(self, k, retries, fail_at, fallback):
            super().__init__(max_retries=retries)
            self.k, self.fail_at, self.fallback = k, fail_at, fallback

        def prep(self, shared):
            return list(range(shared.get("v", 0) % 4 + 1))

        def exec(self, x):
            if x == self.fail_at:
                raise ArithmeticError(f"item {x}")
            return x * self.k

        def exec_fallback(self, prep_res, exc):
            if self.fallback:
                return None
            raise exc

        def post(self, shared, prep_res, exec_res):
            shared["v"] = sum(r or 0 for r in exec_res)
            shared.setdefault("trail", []).append(exec_res)

    nodes = []
    for k, (kind, retries, fail_at, fallback) in enumerate(spec):
        if kind == "batch":
            node = Many(k, retries, fail_at, fallback)
        elif kind == "nested":
            node = Flow(start=Step(k, retries, fail_at, fallback))
        else:
            node = Step(k, retries, fail_at, fallback)
        if nodes:
            nodes[-1] >> node
        nodes.append(node)
    return Flow(start=nodes[0])


def outcome(flow):
    shared: dict = {}
    try:
        result = flow.run(shared)
    except Exception as exc:
        return ("raised", type(exc).__name__, str(exc), shared)
    return ("returned", result, shared)


@settings(max_examples=60, deadline=None)
@given(programs())
def test_tracing_never_changes_what_a_program_does(tmp_path_factory, spec):
    plain = outcome(build(spec))
    path = tmp_path_factory.mktemp("p") / "t.json"
    with Tracer(path) as tracer:
        traced_outcome = outcome(build(spec))
    assert traced_outcome == plain
    doc = read_trace(tracer.paths[0])
    assert doc.status == ("ok" if plain[0] == "returned" else "failed")
    assert doc.store == plain[-1]
    valid(path)
