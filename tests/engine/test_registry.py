"""Node types from the ``pflow_tui.nodes`` entry-point group."""

from __future__ import annotations

import sys
from importlib.metadata import EntryPoint

import pytest

from pflow_tui.engine import registry as reg
from pflow_tui.engine.executor import run_flow
from pflow_tui.engine.ir import build_flow
from pflow_tui.engine.problems import FlowError

PLUGIN = '''
from pflow_tui.engine.nodes.base import NodeType, Param

def shout(params, ctx):
    return {"text": params["text"].upper() + "!"}

SHOUT = NodeType("shout", shout, params=(Param("text", "str", required=True),))
'''


@pytest.fixture
def plugins(tmp_path, monkeypatch):
    (tmp_path / "my_plugin.py").write_text(PLUGIN)
    monkeypatch.syspath_prepend(str(tmp_path))
    eps = [
        EntryPoint("shout", "my_plugin:SHOUT", reg.ENTRY_POINT_GROUP),
        EntryPoint("broken", "no_such_module_xyz:THING", reg.ENTRY_POINT_GROUP),
        EntryPoint("echo", "my_plugin:SHOUT", reg.ENTRY_POINT_GROUP),  # cannot shadow a built-in
    ]
    monkeypatch.setattr(reg, "entry_points", lambda group: eps if group == reg.ENTRY_POINT_GROUP else [])
    monkeypatch.setattr(reg, "_broken", {})
    reg.registry.cache_clear()
    yield
    reg.registry.cache_clear()
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
