"""The ``vote`` merge strategy (a plugin that ships with pflow-tui)."""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from pflow_tui.engine.ir.load import build_flow
from pflow_tui.engine.nodes.base import NodeFailure
from pflow_tui.engine.run.executor import run_flow
from pflow_tui.plugins.vote import canonical, vote


def branches(outputs: list[Any], failed: tuple[int, ...] = ()) -> list[dict[str, Any]]:
    return [{"index": i, "start": f"s{i}", "last": f"s{i}", "output": o,
             "status": "error" if i in failed else "ok"} for i, o in enumerate(outputs)]


json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-5, 5) | st.sampled_from(["a", "b", "c"]),
    lambda children: st.lists(children, max_size=3) | st.dictionaries(st.sampled_from("xyz"), children,
                                                                      max_size=3),
    max_leaves=6)


@given(st.lists(json_values, min_size=1, max_size=12))
def test_the_winner_is_the_most_common_value_and_ties_go_to_the_first_voted(outputs: list[Any]) -> None:
    out = vote(branches(outputs), {})
    counts = Counter(canonical(o) for o in outputs)
    top = max(counts.values())
    first_top = next(o for o in outputs if counts[canonical(o)] == top)
    assert canonical(out["result"]) == canonical(first_top)
    assert out["tie"] == (sum(c == top for c in counts.values()) > 1)
    assert [v["count"] for v in out["votes"]] == sorted(counts.values(), reverse=True)
    assert sum(len(v["branches"]) for v in out["votes"]) == len(outputs)
    assert ("warnings" in out) == out["tie"]


def test_unhashable_values_vote_by_canonical_json() -> None:
    outputs = [{"label": "x", "n": 1}, {"n": 1.0, "label": "x"}, {"label": "y"}, [1, {"b": 2, "a": 1}]]
    out = vote(branches(outputs), {})
    assert out["result"] == {"label": "x", "n": 1}  # the first of the winning value's votes
    assert out["votes"][0] == {"value": {"label": "x", "n": 1}, "count": 2, "branches": ["s0", "s1"]}
    assert out["tie"] is False and "warnings" not in out
    assert canonical(True) != canonical(1) and canonical(1.0) == canonical(1)
    assert canonical({"b": [1.0], "a": None}) == '{"a":null,"b":[1]}'


def test_a_tie_is_flagged_and_warned() -> None:
    out = vote(branches(["no", "yes", "yes", "no", "maybe"]), {})
    assert out["result"] == "no" and out["tie"] is True
    assert out["warnings"] == ['tie: 2 values have 2 vote(s) each ("no", "yes"); the first voted for '
                               "wins (branch 's0')"]


def test_failed_branches_do_not_vote_and_nobody_voting_gives_null() -> None:
    out = vote(branches(["a", "b", "b"], failed=(1, 2)), {})
    assert out["result"] == "a" and out["votes"] == [{"value": "a", "count": 1, "branches": ["s0"]}]
    assert vote(branches(["a"], failed=(0,)), {}) == {"result": None, "votes": [], "tie": False}
    assert vote([], {})["result"] is None


def test_key_votes_on_one_value_and_missing_ones_abstain() -> None:
    outputs = [{"response": {"label": "cat"}, "llm_usage": {"t": 1}},
               {"response": '{"label": "dog"}', "llm_usage": {"t": 2}},
               {"response": {"label": "cat"}, "llm_usage": {"t": 3}},
               {"response": "not json"}]
    out = vote(branches(outputs), {"key": "response.label"})
    assert out["result"] == "cat" and [v["count"] for v in out["votes"]] == [2, 1]
    assert out["warnings"] == ["branch 's3' has no 'response.label' in its output: it does not vote"]
    assert vote(branches([{"xs": [5, 6]}, {"xs": [7, 6]}]), {"key": "xs.1"})["result"] == 6


@pytest.mark.parametrize("options, message", [
    ({"keys": "a"}, "vote: unknown option 'keys'; vote takes key"),
    ({"key": ""}, "vote: options.key must be a path like \"response\", got ''"),
    ({"key": 3}, "vote: options.key must be a path like \"response\", got 3"),
])
def test_bad_options_fail_the_node(options: dict[str, Any], message: str) -> None:
    with pytest.raises(NodeFailure) as info:
        vote(branches(["a"]), options)
    assert str(info.value) == message


def test_vote_at_the_join_of_a_group(tmp_path: Path) -> None:
    answers = ["positive", "negative", "positive"]
    ends = ("judge0", "judge1", "judge2", "broken")
    doc = {"name": "v", "parallel_groups": {"judges": {"error_handling": "continue"}}, "nodes": [
        {"id": "ask", "type": "echo", "params": {"message": "go"}},
        *[{"id": f"judge{i}", "type": "echo", "params": {"message": a}} for i, a in enumerate(answers)],
        {"id": "broken", "type": "shell", "params": {"command": "exit 2"}},
        {"id": "decide", "type": "merge", "params": {"strategy": "vote", "options": {"key": "echo"}}},
        {"id": "say", "type": "echo",
         "params": {"message": "${decide.result} (${decide.votes[0].count} votes)"}},
    ], "edges": [
        *[{"from": "ask", "to": n, "parallel_group": "judges"} for n in ends],
        *[{"from": n, "to": "decide"} for n in ends],
        {"from": "decide", "to": "say"},
    ]}
    result = run_flow(build_flow(doc), {}, trace=tmp_path / "t.json")
    assert result.status == "ok", result.error
    assert result.store["say"]["echo"] == "positive (2 votes)"
    assert result.store["decide"]["failed"][0]["start"] == "broken"
    assert result.store["decide"]["tie"] is False
