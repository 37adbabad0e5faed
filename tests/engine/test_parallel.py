"""Task and pipeline parallelism: parallel groups, merge, nested flows, loops, namespaces, races.

Every test asserts values (outputs, store contents, event order and timing), not only that
a flow ran. Flows use ``probe``, an async node type that sleeps, fails or writes what its
params say, and counts how many of its calls are in flight.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import anyio
import orjson
import pytest

from pflow_tui.engine.ir.load import build_flow, load_flow
from pflow_tui.engine.nodes.base import NodeType, Param, RunContext
from pflow_tui.engine.problems import FlowError
from pflow_tui.engine.registry import registry
from pflow_tui.engine.run.executor import run_flow
from pflow_tui.engine.run.params import Params
from pflow_tui.engine.trace import events as ev


class Probe:
    """``probe``: sleeps ``sleep`` s, raises if ``fail``, returns ``out``; tracks concurrency.

    With ``scope: true`` it also returns ``seen``: every top-level name visible to its
    templates when it ran (recorded by :func:`recording_scopes`).
    """

    def __init__(self) -> None:
        self.in_flight = 0
        self.peak = 0
        self.calls: list[str] = []

    async def run(self, params: dict[str, Any], ctx: RunContext) -> dict[str, Any]:
        self.calls.append(ctx.path)
        self.in_flight += 1
        self.peak = max(self.peak, self.in_flight)
        try:
            await anyio.sleep(params.get("sleep") or 0)
        finally:
            self.in_flight -= 1
        if params.get("fail"):
            raise RuntimeError(f"probe failed at {ctx.path}")
        out = dict(params.get("out") or {})
        if params.get("scope"):
            out["seen"] = params["__seen__"]
        return out

    def node_type(self) -> NodeType:
        return NodeType("probe", self.run, params=(
            Param("out", "dict"), Param("sleep"), Param("fail"), Param("scope"), Param("__seen__")))


@pytest.fixture
def recording_scopes(monkeypatch: pytest.MonkeyPatch) -> None:
    """Params with ``scope: true`` get ``__seen__``: the names their node's scope holds."""
    resolve = Params.resolve

    def recording(self: Params, scope: Any, errors: list[str] | None = None) -> Any:
        params, resolved = resolve(self, scope, errors)
        if self.constant.get("scope"):
            params = {**params, "__seen__": sorted({str(k) for layer in scope for k in layer})}
        return params, resolved

    monkeypatch.setattr(Params, "resolve", recording)


def counter_type(name: str, actions: list[str]) -> NodeType:
    """A node type that answers ``actions`` one after the other (loops end deterministically)."""
    answers = iter(actions)

    def run(params: dict[str, Any], ctx: RunContext) -> dict[str, Any]:
        return {"response": next(answers), "path": ctx.path}

    return NodeType(name, run)


def run(doc: dict[str, Any], tmp_path: Path, *types: NodeType, probe: Probe | None = None,
        base_dir: Path | None = None) -> tuple[Any, list[dict[str, Any]]]:
    reg = {**registry(), "probe": (probe or Probe()).node_type(), **{t.name: t for t in types}}
    spec = build_flow(doc, registry=reg, base_dir=base_dir)
    events: list[dict[str, Any]] = []
    (tmp_path / "trace.json").unlink(missing_ok=True)  # a test may run twice: the latest run's trace
    result = run_flow(spec, {}, trace=tmp_path / "trace.json", sinks=[events.append], registry=reg)
    return result, events


def of(events: list[dict[str, Any]], kind: str, **match: Any) -> list[dict[str, Any]]:
    return [e for e in events if e["kind"] == kind and all(e.get(k) == v for k, v in match.items())]


def first(events: list[dict[str, Any]], kind: str, path: str) -> dict[str, Any]:
    found = of(events, kind, path=path)
    assert len(found) == 1, (kind, path, found)
    return found[0]


def fan(branches: dict[str, dict[str, Any]], *, join: dict[str, Any] | None = None,
        policy: dict[str, Any] | None = None, after: dict[str, Any] | None = None,
        name: str = "f") -> dict[str, Any]:
    """fan -> one probe per branch (its id and params given) -> join (a merge by default)."""
    doc: dict[str, Any] = {
        "name": name,
        "nodes": [{"id": "fan", "type": "probe"},
                  *({"id": nid, "type": "probe", "params": p} for nid, p in branches.items()),
                  {"id": "join", **(join or {"type": "merge"})}],
        "edges": [*({"from": "fan", "to": nid, "parallel_group": "g"} for nid in branches),
                  *({"from": nid, "to": "join"} for nid in branches)],
    }
    if policy is not None:
        doc["parallel_groups"] = {"g": policy}
    if after is not None:
        doc["nodes"].append({"id": "after", "type": "probe", "params": after})
        doc["edges"].append({"from": "join", "to": "after"})
    return doc


# --- branches run concurrently, each in its own store -------------------------------------------

def test_branches_overlap_in_time(tmp_path: Path) -> None:
    probe = Probe()
    doc = fan({b: {"sleep": 0.3, "out": {"v": b}} for b in ("a", "b", "c")})
    result, events = run(doc, tmp_path, probe=probe)
    assert result.status == "ok", result.error
    assert probe.peak == 3  # (the order of the branch events below says they overlapped too)
    kinds = [e["kind"] for e in events if e["kind"] in (ev.BRANCH_START, ev.BRANCH_END)]
    assert kinds == [ev.BRANCH_START] * 3 + [ev.BRANCH_END] * 3
    assert [e["path"] for e in of(events, ev.BRANCH_START)] == [f"f.fan.branch_{i}" for i in range(3)]
    assert [(e["group"], e["index"], e["start"]) for e in of(events, ev.BRANCH_START)] == [
        ("g", 0, "a"), ("g", 1, "b"), ("g", 2, "c")]
    # each branch node is addressed under its branch, and all three ran at the same time
    starts = [first(events, ev.NODE_START, f"f.fan.branch_{i}.{b}")["t"] for i, b in enumerate("abc")]
    ends = [first(events, ev.NODE_END, f"f.fan.branch_{i}.{b}")["t"] for i, b in enumerate("abc")]
    assert max(starts) < min(ends)
    # the join runs once, after every branch has ended
    join = first(events, ev.NODE_START, "f.join")
    assert join["t"] >= max(e["t"] for e in of(events, ev.BRANCH_END))
    assert result.store["join"]["result"] == [{"v": "a"}, {"v": "b"}, {"v": "c"}]


def test_a_branch_cannot_name_a_sibling_in_a_template() -> None:
    doc = fan({"a": {"out": {"x": 1}}, "b": {"out": {"y": "${a.x}"}}})
    with pytest.raises(FlowError) as info:
        build_flow(doc, registry={**registry(), "probe": Probe().node_type()})
    [problem] = info.value.problems
    assert problem.where == "nodes[2].params.out.y"
    assert "${a.x}: node 'a' runs in another branch of parallel_group 'g'" in problem.what
    assert "read it after the join 'join'" in problem.fix


def test_a_branch_sees_no_sibling_writes(tmp_path: Path, recording_scopes: None) -> None:
    """Not even those of a sibling that finished long before: no namespace, no root key."""
    doc = {"name": "f", "nodes": [
        {"id": "pre", "type": "probe", "params": {"out": {"p": 0}}},
        {"id": "fan", "type": "probe"},
        {"id": "quick", "type": "probe", "params": {"out": {"q": 1, "__shared__": "quick"}}},
        {"id": "slow", "type": "probe", "params": {"sleep": 0.2, "out": {"s": 2}}},
        {"id": "look", "type": "probe", "params": {"scope": True}},
        {"id": "join", "type": "merge"},
        {"id": "after", "type": "probe", "params": {"scope": True}},
    ], "edges": [
        {"from": "pre", "to": "fan"},
        {"from": "fan", "to": "quick", "parallel_group": "g"},
        {"from": "fan", "to": "slow", "parallel_group": "g"},
        {"from": "quick", "to": "join"}, {"from": "slow", "to": "look"}, {"from": "look", "to": "join"},
        {"from": "join", "to": "after"},
    ]}
    result, events = run(doc, tmp_path)
    assert result.status == "ok", result.error
    # 'look' resolved its params 0.2 s after the sibling branch had written everything
    assert (first(events, ev.BRANCH_END, "f.fan.branch_0")["t"]
            < first(events, ev.NODE_START, "f.fan.branch_1.look")["t"] - 0.1)
    seen_in_branch = set(result.store["look"]["seen"])
    assert {"pre", "fan", "slow"} <= seen_in_branch  # before the group, and its own branch
    assert not {"quick", "__shared__"} & seen_in_branch
    # after the join, everything is merged into the parent store
    assert {"quick", "slow", "look", "__shared__", "join"} <= set(result.store["after"]["seen"])


# --- error handling -------------------------------------------------------------------------------

def failing_group(policy: dict[str, Any] | None) -> dict[str, Any]:
    return fan({"a": {"sleep": 0.5, "out": {"x": 1}},
                "b": {"sleep": 0.05, "fail": True},
                "c": {"sleep": 0.1, "out": {"y": 3}}}, policy=policy)


def test_fail_fast_cancels_the_siblings_and_the_join_never_starts(tmp_path: Path) -> None:
    result, events = run(failing_group(None), tmp_path)  # fail_fast is the default
    assert result.status == "failed"
    assert result.error["type"] == "BranchError"
    assert result.error["message"] == ("branch 1 ('b') failed at 'b': probe failed at "
                                       "f.fan.branch_1.b")
    assert result.error["path"] == "f.fan.branch_1"
    ends = {e["path"]: e["status"] for e in of(events, ev.BRANCH_END)}
    assert ends == {"f.fan.branch_0": "cancelled", "f.fan.branch_1": "error",
                    "f.fan.branch_2": "cancelled"}
    assert first(events, ev.NODE_END, "f.fan.branch_0.a")["status"] == "cancelled"
    assert not of(events, ev.NODE_START, node="join")
    assert "join" not in result.store
    assert of(events, ev.RUN_END)[0]["status"] == "error"


def test_continue_runs_the_join_and_lists_the_failures(tmp_path: Path) -> None:
    result, events = run(failing_group({"error_handling": "continue"}), tmp_path)
    assert result.status == "ok", result.error
    ends = {e["path"]: e["status"] for e in of(events, ev.BRANCH_END)}
    assert ends == {"f.fan.branch_0": "ok", "f.fan.branch_1": "error", "f.fan.branch_2": "ok"}
    assert result.store["join"] == {
        "result": [{"x": 1}, None, {"y": 3}],
        "failed": [{"branch": 1, "start": "b", "last": "b",
                    "error": "probe failed at f.fan.branch_1.b"}],
    }
    assert first(events, ev.NODE_START, "f.join")["t"] >= first(events, ev.BRANCH_END,
                                                                 "f.fan.branch_0")["t"]


def test_group_max_concurrent_is_a_hard_limit(tmp_path: Path) -> None:
    probe = Probe()
    doc = fan({f"b{i}": {"sleep": 0.05, "out": {"i": i}} for i in range(6)},
              policy={"max_concurrent": 2})
    result, events = run(doc, tmp_path, probe=probe)
    assert result.status == "ok", result.error
    assert probe.peak == 2
    live = peak = 0
    for e in events:
        if e["kind"] == ev.BRANCH_START:
            live += 1
            peak = max(peak, live)
        elif e["kind"] == ev.BRANCH_END:
            live -= 1
    assert peak == 2
    assert result.store["join"]["result"] == [{"i": i} for i in range(6)]


# --- merge ------------------------------------------------------------------------------------------

BRANCH_OUTPUTS = {"a": {"out": {"k": 1, "a_only": "A"}},
                  "b": {"out": {"k": 2, "b_only": "B"}},
                  "c": {"out": {"k": 2, "c_only": "C"}}}


def test_merge_array(tmp_path: Path) -> None:
    result, _ = run(fan(BRANCH_OUTPUTS, join={"type": "merge", "params": {"strategy": "array"}}),
                    tmp_path)
    assert result.store["join"] == {"result": [{"k": 1, "a_only": "A"}, {"k": 2, "b_only": "B"},
                                               {"k": 2, "c_only": "C"}]}


def test_merge_by_branch(tmp_path: Path) -> None:
    result, _ = run(fan(BRANCH_OUTPUTS, join={"type": "merge", "params": {"strategy": "by_branch"}}),
                    tmp_path)
    assert result.store["join"] == {"result": {"a": {"k": 1, "a_only": "A"},
                                               "b": {"k": 2, "b_only": "B"},
                                               "c": {"k": 2, "c_only": "C"}}}


def test_merge_dict_reports_conflicts_in_the_output_and_as_warnings(tmp_path: Path) -> None:
    result, events = run(fan(BRANCH_OUTPUTS, join={"type": "merge", "params": {"strategy": "dict"}}),
                         tmp_path)
    warning = "key 'k': branch 'b' overrides branch 'a'"
    # 'c' writes the same value as 'b': not a conflict
    assert result.store["join"] == {"result": {"k": 2, "a_only": "A", "b_only": "B", "c_only": "C"},
                                    "warnings": [warning]}
    assert [e["message"] for e in of(events, ev.WARNING, path="f.join")] == [warning]


def test_a_join_that_is_not_a_merge_reads_branch_outputs_through_templates(tmp_path: Path) -> None:
    doc = fan({"a": {"out": {"x": "from a"}}, "b": {"out": {"y": [1, 2]}}},
              join={"type": "probe", "params": {"out": {"both": "${a.x} + ${b.y[1]}", "y": "${b.y}"}}})
    result, _ = run(doc, tmp_path)
    assert result.status == "ok", result.error
    assert result.store["join"] == {"both": "from a + 2", "y": [1, 2]}


# --- namespaces and the template addresses that follow event paths -------------------------------

def test_branch_stores_are_kept_under_the_fanout(tmp_path: Path) -> None:
    doc = fan({"a": {"out": {"x": 1}}, "b": {"out": {"x": 2}}},
              after={"out": {"b1": "${fan.branch_1.b.x}", "every": "${fan[*].a.x}",
                             "stores": "${fan[*]}"}})
    result, _ = run(doc, tmp_path)
    assert result.status == "ok", result.error
    assert result.store["fan"] == {"branch_0": {"a": {"x": 1}}, "branch_1": {"b": {"x": 2}},
                                   "branch_results": [{"x": 1}, {"x": 2}]}  # each branch's last output
    assert (result.store["a"], result.store["b"]) == ({"x": 1}, {"x": 2})
    assert result.store["after"] == {"b1": 2, "every": [1, None],
                                     "stores": [{"a": {"x": 1}}, {"b": {"x": 2}}]}


def test_batch_iterations_are_addressed_like_their_paths(tmp_path: Path) -> None:
    doc = {"name": "f", "nodes": [
        {"id": "each", "type": "probe", "batch": {"items": [10, 11, 12, 13, 14], "parallel": True},
         "params": {"out": {"sq": "${item}", "i": "${__index__}"}}},
        {"id": "after", "type": "probe", "params": {"out": {
            "all": "${each[*].sq}", "third": "${each.iteration_3.sq}", "items": "${each[*].item}"}}},
    ], "edges": [{"from": "each", "to": "after"}]}
    result, events = run(doc, tmp_path)
    assert result.status == "ok", result.error
    assert result.store["after"] == {"all": [10, 11, 12, 13, 14], "third": 13,
                                     "items": [10, 11, 12, 13, 14]}
    assert [e["path"] for e in of(events, ev.ITEM_START)] == [f"f.each.iteration_{i}" for i in range(5)]


def test_loop_visits_are_in_paths_and_kept_in_the_namespace(tmp_path: Path) -> None:
    doc = {"name": "f", "nodes": [
        {"id": "review", "type": "probe", "params": {"out": {"k": "draft"}}},
        {"id": "decide", "type": "judge"},
        {"id": "route", "type": "route", "params": {"value": "${decide.response}",
                                                     "cases": ["again", "done"], "otherwise": "done"}},
        {"id": "after", "type": "probe", "params": {"out": {
            "all": "${decide[*].response}", "second": "${decide#2.response}",
            "second_path": "${decide#2.path}", "reviews": "${review[*].k}"}}},
    ], "edges": [
        {"from": "review", "to": "decide"}, {"from": "decide", "to": "route"},
        {"from": "route", "to": "review", "action": "again"},
        {"from": "route", "to": "after", "action": "done"},
    ]}
    result, events = run(doc, tmp_path, counter_type("judge", ["again", "again", "done"]))
    assert result.status == "ok", result.error
    assert [e["path"] for e in of(events, ev.NODE_START, node="decide")] == [
        "f.decide", "f.decide#2", "f.decide#3"]
    assert [e["path"] for e in of(events, ev.NODE_START, node="review")] == [
        "f.review", "f.review#2", "f.review#3"]
    assert [e["action"] for e in of(events, ev.NODE_END, node="route")] == ["again", "again", "done"]
    assert result.store["__visits__"]["decide"] == [
        {"response": "again", "path": "f.decide"}, {"response": "again", "path": "f.decide#2"},
        {"response": "done", "path": "f.decide#3"}]
    assert result.store["decide"] == {"response": "done", "path": "f.decide#3"}
    assert result.store["after"] == {"all": ["again", "again", "done"], "second": "again",
                                     "second_path": "f.decide#2", "reviews": ["draft"] * 3}


def test_max_visits_exceeded_fails_the_run_naming_the_node(tmp_path: Path) -> None:
    doc = {"name": "f", "max_visits": 3, "nodes": [
        {"id": "spin", "type": "probe", "params": {"out": {"action": "again"}}},
        {"id": "route", "type": "route", "params": {"value": "${spin.action}"}},
    ], "edges": [{"from": "spin", "to": "route"}, {"from": "route", "to": "spin", "action": "again"}]}
    result, events = run(doc, tmp_path)
    assert result.status == "failed"
    assert result.error["node"] == "spin"
    assert result.error["path"] == "f.spin#4"
    assert "node 'spin' was reached 4 times, more than max_visits (3)" in result.error["message"]
    assert [e["path"] for e in of(events, ev.NODE_START, node="spin")] == ["f.spin", "f.spin#2",
                                                                           "f.spin#3"]
    assert of(events, ev.RUN_END)[0]["status"] == "error"


def test_max_visits_in_a_branch_fails_the_run_naming_that_node(tmp_path: Path) -> None:
    """The loop (echo and route never wait) hits its limit before its sibling branch has even
    started: the error still names the looping node, not the sibling that started last."""
    doc = {"name": "f", "max_visits": 2, "nodes": [
        {"id": "fan", "type": "probe"},
        {"id": "spin", "type": "echo", "params": {"message": "again"}},
        {"id": "route", "type": "route", "params": {"value": "${spin.echo}"}},
        {"id": "slow", "type": "probe", "params": {"sleep": 5}},
        {"id": "join", "type": "merge"},
    ], "edges": [
        {"from": "fan", "to": "spin", "parallel_group": "g"},
        {"from": "fan", "to": "slow", "parallel_group": "g"},
        {"from": "spin", "to": "route"},
        {"from": "route", "to": "spin", "action": "again"},
        {"from": "route", "to": "join", "action": "done"},
        {"from": "slow", "to": "join"},
    ]}
    t0 = time.perf_counter()
    result, events = run(doc, tmp_path)
    assert time.perf_counter() - t0 < 2
    assert result.status == "failed"
    assert (result.error["node"], result.error["path"]) == ("spin", "f.fan.branch_0.spin#3")
    assert "more than max_visits (2)" in result.error["message"]
    ends = {e["path"]: e["status"] for e in of(events, ev.BRANCH_END)}
    assert ends == {"f.fan.branch_0": "error", "f.fan.branch_1": "cancelled"}
    assert not of(events, ev.NODE_START, node="join")


def test_a_loop_around_a_whole_group_keeps_every_pass(tmp_path: Path) -> None:
    doc = fan({"a": {"out": {"x": "${fan[*]}"}}, "b": {"out": {"y": 2}}},
              after={"out": {"xs": "${a[*].x}", "second": "${a#2.x}",
                             "first_pass": "${fan#1.branch_1.b.y}",
                             "second_pass": "${fan#2.branch_0.a.x}"}})
    doc["nodes"].insert(-1, {"id": "decide", "type": "judge"})
    doc["edges"] = [e for e in doc["edges"] if e["from"] != "join"] + [
        {"from": "join", "to": "decide"},
        {"from": "decide", "to": "fan", "action": "again"},
        {"from": "decide", "to": "after", "action": "done"}]
    judge = NodeType("judge", lambda p, c: {"action": next(answers)}, action_key="action")
    answers = iter(["again", "done"])
    result, events = run(doc, tmp_path, judge)
    assert result.status == "ok", result.error
    assert [e["path"] for e in of(events, ev.BRANCH_START)] == [
        "f.fan.branch_0", "f.fan.branch_1", "f.fan#2.branch_0", "f.fan#2.branch_1"]
    assert [e["path"] for e in of(events, ev.NODE_START, node="a")] == [
        "f.fan.branch_0.a", "f.fan#2.branch_0.a"]
    # ${fan[*]} in pass 1 is that one visit (no branches yet); in pass 2 both visits
    pass_1 = {"branch_0": {"a": {"x": [{}]}}, "branch_1": {"b": {"y": 2}},
              "branch_results": [{"x": [{}]}, {"y": 2}]}  # each branch's last output
    xs = [[{}], [pass_1, {}]]
    assert result.store["after"] == {"xs": xs, "second": xs[1], "first_pass": 2, "second_pass": xs[1]}
    assert result.store["__visits__"]["fan"] == [
        pass_1, {"branch_0": {"a": {"x": xs[1]}}, "branch_1": {"b": {"y": 2}},
                 "branch_results": [{"x": xs[1]}, {"y": 2}]}]


def test_a_loop_inside_a_branch_keeps_every_visit_after_the_join(tmp_path: Path) -> None:
    judge = NodeType("judge", lambda p, c: {"action": next(answers), "path": c.path},
                     action_key="action")
    answers = iter(["again", "again", "done"])
    doc = fan({"b": {"out": {"y": 2}}},
              after={"out": {"all": "${a[*].path}", "second": "${a#2.path}"}})
    doc["nodes"].insert(1, {"id": "a", "type": "judge"})
    doc["edges"] += [{"from": "fan", "to": "a", "parallel_group": "g"},
                     {"from": "a", "to": "a", "action": "again"},
                     {"from": "a", "to": "join", "action": "done"}]
    result, _ = run(doc, tmp_path, judge)
    assert result.status == "ok", result.error
    paths = ["f.fan.branch_1.a", "f.fan.branch_1.a#2", "f.fan.branch_1.a#3"]
    assert result.store["after"] == {"all": paths, "second": paths[1]}
    assert result.store["join"]["result"] == [{"y": 2}, {"action": "done", "path": paths[2]}]


# --- races ----------------------------------------------------------------------------------------

def test_two_branches_writing_a_root_key_race_and_the_run_goes_on(tmp_path: Path) -> None:
    doc = fan({"a": {"sleep": 0.05, "out": {"__x__": "from a"}}, "b": {"out": {"__x__": "from b"}},
               "c": {"out": {"__y__": "only c"}}},
              after={"out": {"ran": True}})
    result, events = run(doc, tmp_path)
    assert result.status == "ok", result.error
    [race] = of(events, ev.RACE)
    assert race["path"] == "f.fan"
    assert race["key"] == "__x__"
    assert race["paths"] == ["f.fan.branch_0", "f.fan.branch_1"]
    assert "f.fan.branch_0 and f.fan.branch_1" in race["message"]
    assert (result.store["__x__"], result.store["__y__"]) == ("from b", "only c")  # the last in order
    assert result.store["after"] == {"ran": True}
    assert race["seq"] < first(events, ev.NODE_START, "f.after")["seq"]


def test_parallel_batch_items_writing_one_root_key_race(tmp_path: Path) -> None:
    doc = {"name": "f", "nodes": [
        {"id": "par", "type": "probe", "batch": {"items": [0, 1, 2], "parallel": True},
         "params": {"out": {"__x__": "${item}"}}},
        {"id": "seq", "type": "probe", "batch": {"items": [0, 1, 2]},
         "params": {"out": {"__z__": "${item}"}}},
    ], "edges": [{"from": "par", "to": "seq"}]}
    result, events = run(doc, tmp_path)
    assert result.status == "ok", result.error
    [race] = of(events, ev.RACE)  # a sequential batch does not race
    assert (race["path"], race["key"]) == ("f.par", "__x__")
    assert race["paths"] == ["f.par.iteration_0", "f.par.iteration_1", "f.par.iteration_2"]
    assert (result.store["__x__"], result.store["__z__"]) == (2, 2)


# --- nested groups --------------------------------------------------------------------------------

def test_a_group_inside_a_branch(tmp_path: Path) -> None:
    doc = {"name": "f", "nodes": [
        {"id": "fan", "type": "probe"},
        {"id": "a", "type": "probe", "params": {"out": {"x": 1}}},
        {"id": "a1", "type": "probe", "params": {"sleep": 0.1, "out": {"x": 11}}},
        {"id": "a2", "type": "probe", "params": {"sleep": 0.1, "out": {"x": 12}}},
        {"id": "inner", "type": "merge", "params": {"strategy": "by_branch"}},
        {"id": "b", "type": "probe", "params": {"sleep": 0.1, "out": {"x": 2}}},
        {"id": "outer", "type": "merge", "params": {"strategy": "by_branch"}},
        {"id": "after", "type": "probe", "params": {"out": {"a2": "${a.branch_1.a2.x}",
                                                            "deep": "${fan.branch_0.a1.x}"}}},
    ], "edges": [
        {"from": "fan", "to": "a", "parallel_group": "outer"},
        {"from": "fan", "to": "b", "parallel_group": "outer"},
        {"from": "a", "to": "a1", "parallel_group": "inner"},
        {"from": "a", "to": "a2", "parallel_group": "inner"},
        {"from": "a1", "to": "inner"}, {"from": "a2", "to": "inner"},
        {"from": "inner", "to": "outer"}, {"from": "b", "to": "outer"},
        {"from": "outer", "to": "after"},
    ]}
    result, events = run(doc, tmp_path)
    assert result.status == "ok", result.error
    assert [e["path"] for e in of(events, ev.BRANCH_START)] == [
        "f.fan.branch_0", "f.fan.branch_1", "f.fan.branch_0.a.branch_0", "f.fan.branch_0.a.branch_1"]
    assert [e["group"] for e in of(events, ev.BRANCH_START)] == ["outer", "outer", "inner", "inner"]
    first(events, ev.NODE_START, "f.fan.branch_0.a.branch_1.a2")
    first(events, ev.NODE_START, "f.fan.branch_0.inner")  # the inner join runs inside its branch
    # the inner branches overlap the outer sibling 'b'
    b_end = first(events, ev.NODE_END, "f.fan.branch_1.b")["t"]
    assert first(events, ev.NODE_START, "f.fan.branch_0.a.branch_0.a1")["t"] < b_end
    assert result.store["outer"]["result"] == {"a": {"result": {"a1": {"x": 11}, "a2": {"x": 12}}},
                                               "b": {"x": 2}}
    assert result.store["after"] == {"a2": 12, "deep": 11}


# --- nested flows ---------------------------------------------------------------------------------

CHILD = {
    "inputs": {"name": {"type": "string"}, "times": {"type": "integer", "required": False, "default": 1}},
    "outputs": {"greeting": {"source": "${shout.text}"}},
    "nodes": [
        {"id": "read", "type": "probe", "params": {"out": {"text": "hello ${name}"}}},
        {"id": "shout", "type": "probe", "params": {"out": {"text": "${read.text}!", "times": "${times}"}}},
    ],
    "edges": [{"from": "read", "to": "shout"}],
}


def test_inline_child_flow_with_templates_and_mappings(tmp_path: Path) -> None:
    doc = {"name": "f", "nodes": [
        {"id": "who", "type": "probe", "params": {"out": {"name": "ann"}}},
        {"id": "greet", "type": "workflow",
         "params": {"workflow_ir": CHILD, "param_mapping": {"name": "${who.name}"}}},
        {"id": "mapped", "type": "workflow",
         "params": {"workflow_ir": CHILD, "param_mapping": {"name": "bob", "times": 3},
                    "output_mapping": {"shout": "all_of_shout", "greeting": "said"}}},
        {"id": "after", "type": "probe", "params": {"out": {"g": "${greet.greeting}",
                                                            "said": "${mapped.said}"}}},
    ], "edges": [{"from": "who", "to": "greet"}, {"from": "greet", "to": "mapped"},
                 {"from": "mapped", "to": "after"}]}
    result, events = run(doc, tmp_path)
    assert result.status == "ok", result.error
    assert result.store["greet"] == {"greeting": "hello ann!"}
    assert result.store["mapped"] == {"all_of_shout": {"text": "hello bob!", "times": 3},
                                      "said": "hello bob!"}
    assert result.store["after"] == {"g": "hello ann!", "said": "hello bob!"}
    # the child's events nest under the parent node's path; its store is not the parent's
    assert first(events, ev.NODE_END, "f.greet.shout")["outputs"] == {"text": "hello ann!", "times": 1}
    assert "read" not in result.store and "shout" not in result.store


def test_workflow_ref_is_relative_to_the_parent_file(tmp_path: Path,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    flows = tmp_path / "flows"
    (flows / "sub").mkdir(parents=True)
    (flows / "sub" / "child.json").write_bytes(orjson.dumps({
        "inputs": {"n": {"type": "integer"}},
        "outputs": {"twice": {"source": "${double.value}"}},
        "nodes": [{"id": "double", "type": "echo", "params": {"message": "x", "data": "${n}"}}]}))
    parent = {"name": "parent", "nodes": [
        {"id": "call", "type": "workflow",
         "params": {"workflow_ref": "sub/child.json", "param_mapping": {"n": 21},
                    "output_mapping": {"double": "child_double"}}}]}
    (flows / "parent.json").write_bytes(orjson.dumps(parent))
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    spec = load_flow(flows / "parent.json")
    assert spec.children["call"].source == str((flows / "sub" / "child.json").resolve())
    events: list[dict[str, Any]] = []
    result = run_flow(spec, {}, trace=tmp_path / "t.json", sinks=[events.append])
    assert result.status == "ok", result.error
    assert result.store["call"] == {"child_double": {"echo": "x", "data": 21, "metadata": {
        "original_message": "x", "count": 1, "modified": False}}}
    first(events, ev.NODE_END, "parent.call.double")


def test_batched_parallel_workflow_pipelines_its_stages(tmp_path: Path) -> None:
    """Each item reads for its own delay, then processes for 0.3 s: item 0 reads at once and
    processes while item 1 is still reading (stage 1 of one item beside stage 2 of another)."""
    child = {"inputs": {"delay": {"type": "number"}}, "outputs": {"done": {"source": "${process.done}"}},
             "nodes": [
                 {"id": "read", "type": "probe", "params": {"sleep": "${delay}", "out": {"d": "${delay}"}}},
                 {"id": "process", "type": "probe", "params": {"sleep": 0.3, "out": {"done": "${read.d}"}}},
             ], "edges": [{"from": "read", "to": "process"}]}
    doc = {"name": "flow", "nodes": [
        {"id": "per_file", "type": "workflow",
         "batch": {"items": [0.0, 0.25, 0.0, 0.0], "parallel": True, "max_concurrent": 4},
         "params": {"workflow_ir": child, "param_mapping": {"delay": "${item}"}}},
    ]}
    t0 = time.perf_counter()
    result, events = run(doc, tmp_path)
    elapsed = time.perf_counter() - t0
    assert result.status == "ok", result.error
    assert [r["done"] for r in result.store["per_file"]["results"]] == [0.0, 0.25, 0.0, 0.0]
    assert elapsed < 0.9  # one item after the other: 0.25 + 4 * 0.3 = 1.45 s

    def span(i: int, node: str) -> tuple[float, float]:
        path = f"flow.per_file.iteration_{i}.{node}"
        return first(events, ev.NODE_START, path)["t"], first(events, ev.NODE_END, path)["t"]

    first(events, ev.NODE_START, "flow.per_file.iteration_3.read")
    read_0, process_0 = span(0, "read"), span(0, "process")
    read_1, process_1 = span(1, "read"), span(1, "process")
    assert read_0[1] <= process_0[0]  # stages of one item run in order
    # item 1 was reading for most of the time item 0 was processing (0.25 s of 0.3 s)
    assert min(read_1[1], process_0[1]) - max(read_1[0], process_0[0]) > 0.15
    assert read_1[1] <= process_1[0] and process_1[1] > process_0[1] + 0.15


def test_a_failing_child_fails_the_parent_node_naming_the_child_node(tmp_path: Path) -> None:
    child = {"nodes": [{"id": "read", "type": "probe", "params": {"out": {"t": 1}}},
                       {"id": "explode", "type": "probe", "params": {"fail": True}}],
             "edges": [{"from": "read", "to": "explode"}]}
    doc = {"name": "f", "nodes": [{"id": "sub", "type": "workflow", "params": {"workflow_ir": child}},
                                  {"id": "never", "type": "probe"}],
           "edges": [{"from": "sub", "to": "never"}]}
    result, events = run(doc, tmp_path)
    assert result.status == "failed"
    assert result.error["node"] == "sub"
    assert result.error["path"] == "f.sub"
    assert result.error["message"] == ("child flow sub failed at f.sub.explode: probe failed at "
                                       "f.sub.explode")
    assert first(events, ev.NODE_END, "f.sub.explode")["status"] == "error"
    assert first(events, ev.NODE_END, "f.sub")["status"] == "error"
    assert not of(events, ev.NODE_START, node="never")


def chain_of_flows(folder: Path, nested: int) -> Path:
    """top.json -> level_01.json -> ... -> level_<nested>.json (the last one runs an echo)."""
    folder.mkdir(parents=True, exist_ok=True)
    for level in range(nested, -1, -1):
        name = "top.json" if level == 0 else f"level_{level:02d}.json"
        node = ({"id": f"open_{level + 1}", "type": "workflow",
                 "params": {"workflow_ref": f"level_{level + 1:02d}.json"}} if level < nested else
                {"id": "leaf", "type": "echo", "params": {"message": "deep"}})
        (folder / name).write_bytes(orjson.dumps({"nodes": [node]}))
    return folder / "top.json"


def test_ten_nested_flows_are_fine_eleven_are_too_deep(tmp_path: Path) -> None:
    spec = load_flow(chain_of_flows(tmp_path / "ten", 10))
    result = run_flow(spec, {}, trace=tmp_path / "t.json")
    assert result.status == "ok", result.error
    with pytest.raises(FlowError) as info:
        load_flow(chain_of_flows(tmp_path / "eleven", 11))
    [problem] = info.value.problems
    assert problem.where == "nodes[0].params.workflow_ref"
    assert problem.what.startswith("in child flow level_01.json (of node 'open_1') > "
                                   "level_02.json (of node 'open_2') > ")
    assert problem.what.endswith("flows nested more than 10 deep (node 'open_11' would open level 11)")
    assert "nest at most 10 flows" in problem.fix


# --- group analysis -------------------------------------------------------------------------------

def shape(*edges: str) -> dict[str, Any]:
    """A flow from edges written ``a>b`` (default), ``a>b:act`` (an action) or ``a=>b`` (group g)."""
    out, ids = [], ["fan"]
    for text in edges:
        grouped = "=>" in text
        src, _, rest = text.partition("=>" if grouped else ">")
        dst, _, action = rest.partition(":")
        ids += [n for n in (src, dst) if n not in ids]
        out.append({"from": src, "to": dst, **({"action": action} if action else {}),
                    **({"parallel_group": "g"} if grouped else {})})
    return {"nodes": [{"id": n, "type": "probe"} for n in ids], "edges": out}


@pytest.mark.parametrize("edges,join", [
    (("fan=>a", "fan=>b", "a>j", "b>j"), "j"),
    (("fan=>a", "fan=>b", "a>a2", "a2>j", "b>j", "j>end"), "j"),
    (("fan=>a", "fan=>b", "a>j", "b>j", "j>fan:again"), "j"),  # a loop around the whole group
    (("fan=>a", "fan=>b", "a>a:again", "a>j:done", "b>j"), "j"),  # a loop inside a branch
    (("fan=>a", "fan=>b", "a>j", "b>j", "j>k", "k>j:again"), "j"),  # a loop after the join
])
def test_valid_group_shapes(edges: tuple[str, ...], join: str) -> None:
    spec = build_flow(shape(*edges), registry={**registry(), "probe": Probe().node_type()})
    [group] = spec.groups
    assert (group.fanout, group.join, [b.start for b in group.branches]) == ("fan", join, ["a", "b"])


@pytest.mark.parametrize("edges,message", [
    (("fan=>a", "fan=>b", "a>end", "b>end2"), "the branches of parallel_group 'g' (a, b) never converge"),
    (("fan=>a", "fan=>b", "fan=>c", "a>j", "b>m", "c>m", "m>j"),
     "converge at different nodes: 'c' and 'b' meet at 'm' before 'j'"),
    (("fan=>a", "fan=>b", "a>j", "b>j", "j>end", "a>end:skip"),
     "branch 'a' of parallel_group 'g' jumps out of the group to 'end', after the join 'j'"),
    (("fan=>a", "fan=>b", "a>j", "b>j", "b>fan:retry"),
     "branch 'b' of parallel_group 'g' loops back to 'fan'"),
    (("fan=>a", "fan=>b", "a>fan:x", "b>fan:y"), "(a, b) only meet back at 'fan', where the group starts"),
    (("fan=>a", "fan=>b", "a>j", "b>j", "j>a:again"),
     "meet at 'a' and at 'j', which lead to each other"),
    (("fan=>a", "fan=>b", "a>a2", "a2>j", "b>j", "j>a2:again"),
     "meet at 'a2' and at 'j', which lead to each other"),
    (("fan=>a", "fan>b", "a>b"), "parallel_group 'g' is on a single edge"),
    (("fan=>a", "fan=>j", "a>j"), "has an edge straight to its join 'j'"),
])
def test_invalid_group_shapes(edges: tuple[str, ...], message: str) -> None:
    with pytest.raises(FlowError) as info:
        build_flow(shape(*edges), registry={**registry(), "probe": Probe().node_type()})
    assert any(message in p.what and p.fix and p.where.startswith("edges[")
               for p in info.value.problems), info.value.problems


def _walk(value: Any) -> Iterator[Any]:
    yield value
    if isinstance(value, dict):
        for v in value.values():
            yield from _walk(v)
    elif isinstance(value, list):
        for v in value:
            yield from _walk(v)


def test_trace_of_a_parallel_run_is_complete(tmp_path: Path) -> None:
    run(failing_group({"error_handling": "continue"}), tmp_path)
    data = orjson.loads((tmp_path / "trace.json").read_bytes())
    assert data["status"] == "ok"
    counts = Counter(e["kind"] for e in data["events"])
    assert counts[ev.BRANCH_START] == counts[ev.BRANCH_END] == 3
    assert counts[ev.NODE_START] == counts[ev.NODE_END] == 5
    assert "probe failed at f.fan.branch_1.b" in list(_walk(data["store"]))
