"""Plugins: node types (``pflow_tui.nodes``) and merge strategies (``pflow_tui.merges``)."""

from __future__ import annotations

import sys
from importlib.metadata import EntryPoint, entry_points

import pytest

from pflow_tui.engine import plugins as plug
from pflow_tui.engine import registry as reg
from pflow_tui.engine.ir.load import build_flow
from pflow_tui.engine.problems import FlowError
from pflow_tui.engine.run.executor import run_flow
from pflow_tui.engine.run.merge_strategies import BUILTIN_STRATEGIES

PLUGIN = '''
from pflow_tui.engine.run.merge_strategies import MergeStrategy
from pflow_tui.engine.nodes.base import NodeType, Param

def shout(params, ctx):
    return {"text": params["text"].upper() + "!"}

SHOUT = NodeType("shout", shout, params=(Param("text", "str", required=True),))

def longest(branches, options):
    outputs = [b["output"]["echo"] for b in branches if b["status"] == "ok"]
    return {"result": max(outputs, key=len), "seen": len(outputs)}

LONGEST = MergeStrategy("longest", longest)
NOT_A_STRATEGY = object()
'''


@pytest.fixture
def plugins(tmp_path, monkeypatch):
    (tmp_path / "my_plugin.py").write_text(PLUGIN)
    monkeypatch.syspath_prepend(str(tmp_path))
    eps = {
        reg.ENTRY_POINT_GROUP: [
            EntryPoint("shout", "my_plugin:SHOUT", reg.ENTRY_POINT_GROUP),
            EntryPoint("broken", "no_such_module_xyz:THING", reg.ENTRY_POINT_GROUP),
            EntryPoint("echo", "my_plugin:SHOUT", reg.ENTRY_POINT_GROUP),  # cannot shadow a built-in
        ],
        plug.MERGE_ENTRY_POINT_GROUP: [
            EntryPoint("longest", "my_plugin:LONGEST", plug.MERGE_ENTRY_POINT_GROUP),
            EntryPoint("shaky", "no_such_module_xyz:MERGE", plug.MERGE_ENTRY_POINT_GROUP),
            EntryPoint("odd", "my_plugin:NOT_A_STRATEGY", plug.MERGE_ENTRY_POINT_GROUP),
            EntryPoint("array", "my_plugin:LONGEST", plug.MERGE_ENTRY_POINT_GROUP),  # no shadowing
        ],
    }
    scans: list[str] = []

    def fake_entry_points(group: str) -> list[EntryPoint]:
        scans.append(group)
        return eps.get(group, [])

    monkeypatch.setattr(plug, "entry_points", fake_entry_points)
    reg.registry.cache_clear()
    plug.merge_strategies.cache_clear()
    yield scans
    reg.registry.cache_clear()
    plug.merge_strategies.cache_clear()
    sys.modules.pop("my_plugin", None)


def test_plugin_node_type_runs(plugins, tmp_path):
    types = reg.registry()
    assert types["echo"].name == "echo" and types["echo"].run.__module__.endswith("echo")
    spec = build_flow({"nodes": [{"id": "s", "type": "shout", "params": {"text": "hey"}}]})
    result = run_flow(spec, {}, trace=tmp_path / "t.json")
    assert result.store["s"] == {"text": "HEY!"}


def test_broken_plugin_is_named_in_the_error(plugins):
    with pytest.raises(FlowError) as info:
        build_flow({"nodes": [{"id": "b", "type": "broken"}]})
    problem = info.value.problems[0]
    assert problem.where == "nodes[0].type"
    assert "plugin that failed to load" in problem.what and "no_such_module_xyz" in problem.what


# --- merge strategies ----------------------------------------------------------------------------

def group(strategy: str) -> dict:
    return {"name": "g", "nodes": [
        {"id": "fan", "type": "echo", "params": {"message": "go"}},
        {"id": "a", "type": "echo", "params": {"message": "short"}},
        {"id": "b", "type": "echo", "params": {"message": "the longest one"}},
        {"id": "m", "type": "merge", "params": {"strategy": strategy}},
    ], "edges": [
        {"from": "fan", "to": "a", "parallel_group": "p"}, {"from": "fan", "to": "b", "parallel_group": "p"},
        {"from": "a", "to": "m"}, {"from": "b", "to": "m"},
    ]}


def test_plugin_merge_strategy_runs_at_a_join(plugins, tmp_path):
    result = run_flow(build_flow(group("longest")), {}, trace=tmp_path / "t.json")
    assert result.status == "ok", result.error
    assert result.store["m"] == {"result": "the longest one", "seen": 2}


def test_plugins_never_shadow_builtin_strategies(plugins, tmp_path):
    result = run_flow(build_flow(group("array")), {}, trace=tmp_path / "t.json")
    assert [o["echo"] for o in result.store["m"]["result"]] == ["short", "the longest one"]


def test_a_builtin_strategy_does_not_scan_for_plugins(plugins):
    build_flow(group("by_branch"))
    assert plug.MERGE_ENTRY_POINT_GROUP not in plugins
    build_flow(group("longest"))
    assert plugins.count(plug.MERGE_ENTRY_POINT_GROUP) == 1  # once, then remembered


def test_broken_merge_plugins_are_reported_like_node_plugins(plugins):
    strategies = plug.merge_strategies()
    assert sorted(strategies) == ["array", "by_branch", "dict", "longest"]
    assert "no_such_module_xyz" in strategies.broken["shaky"]
    assert strategies.broken["odd"] == "my_plugin:NOT_A_STRATEGY is a object, not a MergeStrategy"
    with pytest.raises(FlowError) as info:
        build_flow(group("shaky"))
    (problem,) = info.value.problems
    assert problem.where == "nodes[3].params.strategy"
    assert "plugin that failed to load" in problem.what and "no_such_module_xyz" in problem.what
    assert problem.fix == "fix or reinstall the package that provides it"


def test_unknown_strategy_suggests_plugins_too(plugins):
    with pytest.raises(FlowError) as info:
        build_flow(group("longst"))
    (problem,) = info.value.problems
    assert problem.what == "'longst' is not a strategy of 'merge'"
    assert problem.fix == "did you mean 'longest'?"


def test_a_templated_strategy_is_checked_when_it_runs(plugins, tmp_path):
    doc = group("${fan.echo}")
    doc["nodes"][0]["params"]["message"] = "shaky"
    result = run_flow(build_flow(doc), {}, trace=tmp_path / "t.json")
    assert result.status == "failed"
    assert "merge strategy 'shaky' comes from a plugin that failed to load" in result.store["m"]["error"]
    doc["nodes"][0]["params"]["message"] = "nope"
    result = run_flow(build_flow(doc), {}, trace=tmp_path / "t2.json")
    assert result.store["m"]["error"] == (
        "unknown merge strategy 'nope'; use one of array, dict, by_branch, longest")


def test_vote_comes_in_through_pflow_tuis_own_entry_point():
    """The sample strategy is not a built-in: the installed package's metadata registers it."""
    assert "vote" not in {s.name for s in BUILTIN_STRATEGIES}
    (ep,) = [ep for ep in entry_points(group=plug.MERGE_ENTRY_POINT_GROUP) if ep.name == "vote"]
    assert ep.value == "pflow_tui.plugins.vote:VOTE"
    plug.merge_strategies.cache_clear()
    try:
        assert plug.merge_strategies()["vote"].name == "vote"
        assert plug.merge_strategies().broken == {}
    finally:
        plug.merge_strategies.cache_clear()
