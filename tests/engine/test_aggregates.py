"""``${node.aggregate.STAT.key}``: statistics over a batch's or a parallel group's results."""

from __future__ import annotations

import math
import statistics
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from pflow_tui.engine.ir.load import build_flow
from pflow_tui.engine.ir.templates import Unresolved, compile_value
from pflow_tui.engine.problems import FlowError
from pflow_tui.engine.run.aggregates import STATS, as_number, compute, nearest_rank
from pflow_tui.engine.run.executor import run_flow

ints = st.integers(min_value=-10**12, max_value=10**12)
floats = st.floats(min_value=-1e9, max_value=1e9, allow_nan=False, allow_infinity=False)
numbers = st.one_of(ints, floats)


def batch(results: list[Any]) -> dict[str, Any]:
    """A batch node's output, as the engine writes it."""
    return {"results": results, "count": len(results), "success_count": 0, "error_count": 0,
            "errors": None, "batch_metadata": {}}


def resolve(text: str, store: dict[str, Any]) -> Any:
    return compile_value(text).resolve((store,))


# --- the statistics, against the statistics module -----------------------------------------------

@given(st.lists(numbers, min_size=1, max_size=60))
def test_statistics_match_the_statistics_module(values: list[float]) -> None:
    assert compute("count", values) == len(values)
    assert compute("min", values) == min(values)
    assert compute("max", values) == max(values)
    assert math.isclose(compute("mean", values), statistics.fmean(values), rel_tol=1e-9, abs_tol=1e-6)
    assert math.isclose(compute("sum", values), math.fsum(values), rel_tol=1e-12, abs_tol=1e-6)
    assert compute("p50", values) == statistics.median_low(values)


@given(st.lists(ints, min_size=1, max_size=60))
def test_integer_sums_are_exact(values: list[int]) -> None:
    total = compute("sum", values)
    assert total == sum(values) and type(total) is int


@given(st.lists(numbers, min_size=1, max_size=200), st.sampled_from([50, 95]))
def test_percentiles_are_nearest_rank(values: list[float], q: int) -> None:
    """The smallest value with at least q% of the values at or below it."""
    p = compute(f"p{q}", values)
    n = len(values)
    assert p in values
    assert sum(v <= p for v in values) >= q / 100 * n
    assert sum(v < p for v in values) < q / 100 * n


def test_percentile_examples_and_empty_input() -> None:
    assert compute("p50", [1, 2, 3, 4]) == 2  # the lower middle, not 2.5
    assert compute("p95", list(range(1, 21))) == 19
    assert compute("p95", list(range(1, 101))) == 95
    assert nearest_rank([7], 95) == 7
    assert [compute(s, []) for s in STATS] == [0, 0, None, None, None, None, None]


@pytest.mark.parametrize("value, number", [
    (3, 3), (2.5, 2.5), ("42\n", 42), (" -1.5e2 ", -150.0), ("0", 0),
    (True, None), ("abc", None), ("007", None), ("1_000", None), ("NaN", None),
    (float("inf"), None), (float("nan"), None), ([1], None), ({"a": 1}, None), ("1e999", None),
])
def test_what_counts_as_a_number(value: Any, number: Any) -> None:
    got = as_number(value)
    assert got == number and type(got) is type(number)


# --- templates ---------------------------------------------------------------------------------

entry = st.one_of(
    st.none(),  # an item that failed with an exception
    st.just({"error": "boom", "item": 0}),  # an item that failed with an error key
    st.builds(lambda v: {"v": v, "item": 0}, st.one_of(numbers, st.none(),
                                                        numbers.map(lambda n: f"{n!r}\n"))),
)


@given(st.lists(entry, max_size=40))
def test_templates_aggregate_the_successful_items(results: list[Any]) -> None:
    store = {"b": batch(results)}
    values = [as_number(r["v"]) for r in results
              if r is not None and "error" not in r and r["v"] is not None]
    assert None not in values
    for stat in STATS:
        got = resolve(f"${{b.aggregate.{stat}.v}}", store)
        want = compute(stat, values)
        if isinstance(want, float):
            assert math.isclose(got, want, rel_tol=1e-9, abs_tol=1e-6), stat
        else:
            assert got == want, stat
    assert resolve("${b.aggregate.count}", store) == sum(
        r is not None and "error" not in r for r in results)


def test_key_paths_json_text_visits_and_every_visit() -> None:
    results = [{"stdout": '{"score": [1, 5]}', "item": 0}, {"stdout": '{"score": [2, 7]}', "item": 1}]
    store = {"b": batch(results), "__visits__": {"b": [batch(results[:1]), batch(results)]}}
    assert resolve("${b.aggregate.max.stdout.score[1]}", store) == 7
    assert resolve("${b.aggregate.sum.stdout.score[${i}]}", {**store, "i": 0}) == 3
    assert resolve("${b#1.aggregate.mean.stdout.score[1]}", store) == 5.0
    assert resolve("${b#2.aggregate.count}", store) == 2
    assert resolve("mean ${b.aggregate.mean.stdout.score[0]}!", store) == "mean 1.5!"
    assert resolve("${b.aggregate.mean.stdout.score[0]}", {"b": batch([None])}) is None


def test_a_key_of_its_own_wins_and_other_values_are_walked_as_usual() -> None:
    store = {"n": {"aggregate": {"mean": {"v": "mine"}}}, "plain": {"x": 1},
             "b": {**batch([]), "aggregate": {"count": 99}}}
    assert resolve("${n.aggregate.mean.v}", store) == "mine"
    assert resolve("${b.aggregate.count}", store) == 99
    with pytest.raises(Unresolved) as info:
        resolve("${plain.aggregate.count}", store)
    assert "plain has no key 'aggregate'" in info.value.reason
    assert "aggregates work on a batch node or on the fan-out node of a parallel group" in info.value.reason


@pytest.mark.parametrize("text, results, reason", [
    ("${b.aggregate.mean.v}", [{"v": 1}, {"v": "abc"}],
     "b.iteration_1.v is text 'abc', not a number (aggregate.mean needs numbers; null is skipped)"),
    ("${b.aggregate.sum.v}", [{"v": True}], "b.iteration_0.v is a boolean 'True', not a number"),
    ("${b.aggregate.max.v.w}", [{"v": {"w": [1]}}], "b.iteration_0.v.w is a list '[1]', not a number"),
    ("${b.aggregate.min.v}", [{"v": 1}, {"x": 2}], "b.iteration_1 has no key 'v' (its keys: x)"),
    ("${b.aggregate.mean}", [{"v": 1}], "b.aggregate.mean needs the key of a number in each result"),
    ("${b.aggregate.avg.v}", [{"v": 1}], "b.aggregate needs a statistic: count, sum, min, max, mean"),
    ("${b.aggregate}", [{"v": 1}], "b.aggregate needs a statistic"),
])
def test_errors_name_the_item(text: str, results: list[Any], reason: str) -> None:
    with pytest.raises(Unresolved) as info:
        resolve(text, {"b": batch(results)})
    assert reason in info.value.reason


# --- static validation -------------------------------------------------------------------------

def problems(doc: dict[str, Any]) -> list[tuple[str, str, str]]:
    with pytest.raises(FlowError) as info:
        build_flow(doc)
    return [(p.where, p.what, p.fix) for p in info.value.problems]


def flow(message: str, **extra: Any) -> dict[str, Any]:
    return {"nodes": [
        {"id": "list", "type": "echo", "params": {"data": [1, 2, 3]}},
        {"id": "b", "type": "echo", "batch": {"items": "${list.data}"}, "params": {"message": "x"}},
        {"id": "r", "type": "echo", "params": {"message": message}},
    ], "edges": [{"from": "list", "to": "b"}, {"from": "b", "to": "r"}], **extra}


def test_valid_aggregates_pass_validation() -> None:
    build_flow(flow("${b.aggregate.count} ${b.aggregate.p95.metadata.count} ${b[*].aggregate.count}"))


@pytest.mark.parametrize("message, where, what, fix", [
    ("${list.aggregate.count}", "nodes[2].params.message",
     "${list.aggregate.count}: 'list' is not a batch node or the fan-out node of a parallel group; "
     "aggregates run over their results", "give 'list' a \"batch\" config, or aggregate a batch node (b)"),
    ("${b.aggregate.average.v}", "nodes[2].params.message", "${b.aggregate.average.v}: 'average' is "
     "not a statistic", "did you mean 'mean'? use one of count, sum, min, max, mean, p50, p95, "
     "e.g. ${b.aggregate.mean.value}"),
    ("${b.aggregate.maxx.v}", "nodes[2].params.message", "${b.aggregate.maxx.v}: 'maxx' is not a "
     "statistic", "did you mean 'max'? use one of count, sum, min, max, mean, p50, p95, "
     "e.g. ${b.aggregate.mean.value}"),
    ("${b.aggregate}", "nodes[2].params.message", "${b.aggregate}: aggregate needs a statistic "
     "after it", "use one of count, sum, min, max, mean, p50, p95, e.g. ${b.aggregate.mean.value}"),
    ("${b.aggregate.p50}", "nodes[2].params.message", "${b.aggregate.p50}: aggregate.p50 needs the "
     "key of a number in each result", "name it, e.g. ${b.aggregate.p50.value} for the 'value' of "
     "each result (only count needs no key)"),
])
def test_static_problems(message: str, where: str, what: str, fix: str) -> None:
    assert problems(flow(message)) == [(where, what, fix)]


def test_outputs_are_checked_too() -> None:
    doc = flow("ok", outputs={"n": {"source": "${list.aggregate.count}"}})
    assert [p[0] for p in problems(doc)] == ["outputs.n.source"]


def fan_doc(join_message: str, policy: str = "continue") -> dict[str, Any]:
    return {"name": "f", "parallel_groups": {"g": {"error_handling": policy}}, "nodes": [
        {"id": "fan", "type": "echo", "params": {"message": "go"}},
        {"id": "a", "type": "shell", "params": {"command": "echo 3"}},
        {"id": "b", "type": "shell", "params": {"command": "echo 8"}},
        {"id": "b2", "type": "shell", "params": {"command": "echo '${b.stdout}1'"}},
        {"id": "c", "type": "shell", "params": {"command": "exit 4"}},
        {"id": "join", "type": "echo", "params": {"message": join_message}},
    ], "edges": [
        {"from": "fan", "to": "a", "parallel_group": "g"}, {"from": "fan", "to": "b", "parallel_group": "g"},
        {"from": "fan", "to": "c", "parallel_group": "g"}, {"from": "b", "to": "b2"},
        {"from": "a", "to": "join"}, {"from": "b2", "to": "join"}, {"from": "c", "to": "join"},
    ]}


def test_aggregating_at_the_join_points_to_the_fanout() -> None:
    (problem,) = problems(fan_doc("x") | {"outputs": {
        "m": {"source": "${join.aggregate.mean.stdout}"}}})
    assert problem[0] == "outputs.m.source"
    assert problem[2] == ("aggregate over the group at its fan-out node: ${fan.aggregate.mean.stdout} "
                          "(over each branch's last output)")


def test_a_branch_cannot_aggregate_its_own_group() -> None:
    doc = fan_doc("x")
    doc["nodes"][3]["params"]["command"] = "echo ${fan.aggregate.count}"  # b2, in branch 1
    assert problems(doc) == [(
        "nodes[3].params.command", "${fan.aggregate.count}: node 'b2' is in a branch of parallel_group "
        "'g', whose results exist only after all its branches ended",
        "read it at the join 'join' or after it")]


# --- running ----------------------------------------------------------------------------------

def test_a_parallel_group_aggregates_its_branches_last_outputs(tmp_path: Path) -> None:
    spec = build_flow(fan_doc("n=${fan.aggregate.count} sum=${fan.aggregate.sum.stdout} "
                              "max=${fan.aggregate.max.stdout} p50=${fan.aggregate.p50.exit_code}"))
    result = run_flow(spec, {}, trace=tmp_path / "t.json")
    assert result.status == "ok", result.error
    # branch 1 ends at b2 (stdout 81); branch 2 failed and is skipped
    assert result.store["join"]["echo"] == "n=2 sum=84 max=81 p50=0"
    assert [r and r["stdout"] for r in result.store["fan"]["branch_results"]] == ["3", "81", None]


def test_a_batch_aggregate_at_run_time(tmp_path: Path) -> None:
    doc = {"name": "f", "nodes": [
        {"id": "sq", "type": "shell", "batch": {"items": [1, 2, 3, "x", 4], "error_handling": "continue",
                                                "parallel": True},
         "params": {"command": "test ${item} != x && echo $((${item} * ${item}))"}},
        {"id": "r", "type": "echo", "params": {"message": "x", "data": {
            "n": "${sq.aggregate.count}", "sum": "${sq.aggregate.sum.stdout}",
            "mean": "${sq.aggregate.mean.stdout}", "p95": "${sq.aggregate.p95.stdout}"}}},
        {"id": "bad", "type": "echo", "params": {"message": "${sq.aggregate.mean.command}"}},
    ], "edges": [{"from": "sq", "to": "r"}, {"from": "r", "to": "bad"}]}
    result = run_flow(build_flow(doc), {}, trace=tmp_path / "t.json")
    assert result.store["r"]["data"] == {"n": 4, "sum": 30, "mean": 7.5, "p95": 16}
    assert result.status == "failed"
    assert result.error["node"] == "bad"
    assert "sq.iteration_0.command is text 'test 1 != x && echo $((1 * 1))', not a number" in \
        result.error["message"]
