"""pflow's validator on template types, nested paths and unused inputs (fed939d7,
``runtime/template_validator.py`` and ``type_checker.py``), as pflow-tui makes the checks.

Refused as in pflow: a template whose declared type does not fit the param's declared type,
a path below an output that its declared structure does not have. Accepted with a warning
(pflow refuses them; docs/compatibility.md says why): an unused declared input, an output the
node writes but does not declare (``${s.command}``), an index into a declared list, a
``list[str]`` given to a text param. tests/compat holds the same cases recorded on pflow.
"""

from __future__ import annotations

from typing import Any

import pytest
from test_pflow_validator import BATCH, GIT, echo, errors, flow, sh, warnings

from pflow_tui.engine.ir.validate_types import compatible, pflow_compatible

LOG = {"id": "log", "type": "git-log", "params": {}}
STR_INPUT = {"t": {"type": "string", "required": False, "default": "5"}}


def shell_timeout(value: str) -> dict[str, Any]:
    return {"id": "s", "type": "shell", "params": {"command": "true", "timeout": value}}


def test_pflow_type_table():
    assert pflow_compatible("int", "str") and pflow_compatible("str", "dict")
    assert pflow_compatible("dict", "str")
    assert not pflow_compatible("str", "int") and not pflow_compatible("dict", "bool")
    assert not pflow_compatible("float", "int") and pflow_compatible("number", "int")
    assert pflow_compatible("dict|str", "str") and not pflow_compatible("dict|str", "int")
    assert pflow_compatible("int", "dict|str")  # any part of the target
    # pflow has no row for generic types; pflow-tui reads their base
    assert not pflow_compatible("list[str]", "str") and compatible("list[str]", "str")
    assert pflow_compatible("list[str]", "list[str]") and not compatible("list[dict]", "int")


@pytest.mark.parametrize("doc,want", [
    (flow(shell_timeout("${t}"), inputs=STR_INPUT),
     "nodes[0].params.timeout: ${t} is string (input 't' is declared \"type\": \"string\") but 'shell' "
     "param 'timeout' takes int (pflow refuses it too: \"Type mismatch\")"),
    (flow(echo("a", "3"), echo("b", "x", **{}) | {"params": {"message": "x", "count": "${a.echo}"}}),
     "nodes[1].params.count: ${a.echo} is str (as its node type declares it) but 'echo' param 'count' "
     "takes int (pflow refuses it too: \"Type mismatch\")"),
    (flow(echo("a"), {"id": "b", "type": "echo", "params": {"message": "x", "uppercase": "${a.metadata}"}}),
     "nodes[1].params.uppercase: ${a.metadata} is dict (as its node type declares it) but 'echo' param "
     "'uppercase' takes bool (pflow refuses it too: \"Type mismatch\")"),
    (flow({"id": "h", "type": "http", "params": {"url": "http://x"}}, shell_timeout("${h.response_time}")),
     "nodes[1].params.timeout: ${h.response_time} is float (as its node type declares it) but 'shell' "
     "param 'timeout' takes int (pflow refuses it too: \"Type mismatch\")"),
])
def test_a_template_of_the_wrong_type_is_refused(doc, want):
    assert errors(doc) == [want]


def test_the_fix_says_how_to_mend_it():
    from pflow_tui.engine.ir.load import build_flow
    from pflow_tui.engine.problems import FlowError

    with pytest.raises(FlowError) as got:
        build_flow(flow(shell_timeout("${t}"), inputs=STR_INPUT))
    assert 'declare the input "type": "number"' in got.value.problems[0].fix


@pytest.mark.parametrize("params,inputs", [
    ({"message": "hi", "count": "${n}"}, {"n": {"type": "number", "required": False, "default": 2}}),
    ({"message": "${a.metadata}", "count": "${a.metadata.count}"}, {}),  # dict to text, a nested int
    ({"message": "${a.metadata.count}", "prefix": "${f}", "uppercase": "${f}"},
     {"f": {"type": "boolean", "required": False, "default": True}}),  # int and bool to text
    ({"message": "${a.data}", "count": "${a.data}"}, {}),  # any: checked when it runs
    ({"message": "text ${a.metadata.count} and more"}, {}),
])
def test_what_pflow_lets_through(params, inputs):
    doc = flow(echo("a"), {"id": "b", "type": "echo", "params": params}, inputs=inputs)
    assert errors(doc) == [] and warnings(doc) == []


def test_the_index_of_a_batch_item_is_an_int():
    item = {"id": "b", "type": "echo", "params": {"message": "x", "count": "${__index__}"},
            "batch": {"items": [1, 2]}}
    assert errors(flow(item)) == []
    item["params"] = {"message": "x", "uppercase": "${__index__}"}
    assert errors(flow(item)) == ["nodes[0].params.uppercase: ${__index__} is int (as its node type declares "
                                  "it) but 'echo' param 'uppercase' takes bool (pflow refuses it too: "
                                  "\"Type mismatch\")"]


def test_a_generic_list_given_to_text_is_a_warning():
    doc = flow(GIT, echo("b", "${g.git_status.modified}"))
    assert errors(doc) == []
    assert warnings(doc) == ["nodes[1].params.message: ${g.git_status.modified} (list[str]) given to 'echo' "
                             "param 'message' (str): pflow's validator refuses a type it has no rule for "
                             "(\"Type mismatch\"); pflow-tui passes it on"]
    # the same list to a list[str] param is fine on both
    commit = {"id": "c", "type": "git-commit",
              "params": {"message": "m", "files": "${g.git_status.modified}"}}
    assert warnings(flow(GIT, commit)) == []


@pytest.mark.parametrize("ref,want", [
    ("${e.metadata.nope}", "${e.metadata.nope}: 'metadata' declares no key 'nope' (pflow refuses it too)"),
    ("${s.exit_code.x}", "${s.exit_code.x}: 'exit_code' is int: it has no keys (pflow refuses it too)"),
    ("${b.results[0].nope}",
     "${b.results[0].nope}: 'results[0]' declares no key 'nope' (pflow refuses it too)"),
    ("${log.commits[0].nope}",
     "${log.commits[0].nope}: 'commits[0]' declares no key 'nope' (pflow refuses it too)"),
    ("${g.git_status.branch.x}", "${g.git_status.branch.x}: 'git_status.branch' is str"),
])
def test_a_path_its_output_does_not_declare_is_refused(ref, want):
    nodes = [echo("e"), sh("s", "echo 1"), BATCH, LOG, GIT]
    got = errors(flow(*nodes, echo("z", ref)))
    if want.endswith("is str"):  # text: JSON, parsed when it resolves
        assert got == []
        return
    assert got == [f"nodes[5].params.message: {want}"]


def test_the_fix_names_the_declared_keys():
    from pflow_tui.engine.ir.load import build_flow
    from pflow_tui.engine.problems import FlowError

    with pytest.raises(FlowError) as got:
        build_flow(flow(echo("e"), echo("z", "${e.metadata.counts}")))
    assert got.value.problems[0].fix == "did you mean 'count'?"


def test_paths_pflow_accepts():
    data = {"id": "e", "type": "echo", "params": {"message": "hi", "data": {"x": 1}}}
    nodes = [data, sh("s", "echo '{}'"), BATCH]
    text = "${e.metadata.count} ${e.data.x.y[1]} ${s.stdout.a.b[0]} ${b.results[1].echo} " \
           "${b.results[0].metadata.modified} ${b.results[0].item}"
    doc = flow(*nodes, echo("z", text))
    assert errors(doc) == [] and warnings(doc) == []


def test_an_index_into_a_declared_list_is_a_warning():
    doc = flow(LOG, echo("z", "${log.commits[0].subject}"))
    assert errors(doc) == []
    assert warnings(doc) == ["nodes[1].params.message: ${log.commits[0].subject}: pflow's validator "
                             "refuses this path (it follows an index only into a batch's results or an "
                             "output declared \"array\" or text); pflow-tui reads it"]
    code = {"id": "c", "type": "code", "params": {"code": "result: list = [1]"}}
    assert len(warnings(flow(code, echo("z", "${c.result[0]}")))) == 1  # an "any" output
    got = warnings(flow(GIT, echo("z", "${g.git_status.modified[0]}")))
    assert len(got) == 1 and "${g.git_status.modified[0]}: pflow's validator refuses this path" in got[0]


@pytest.mark.parametrize("node,ref", [
    (sh("s", "echo hi"), "${s.command}"),
    ({"id": "s", "type": "git-commit", "params": {"message": "m"}}, "${s.commit_status}"),
])
def test_an_output_written_but_not_declared_is_a_warning(node, ref):
    doc = flow(node, echo("z", ref))
    assert errors(doc) == []
    assert len(warnings(doc)) == 1 and "does not declare it (pflow's validator refuses this reference; " \
        "pflow writes it too)" in warnings(doc)[0]


def test_git_outputs_are_declared_as_in_pflow():
    doc = flow({"id": "c", "type": "git-commit", "params": {"message": "m"}}, echo("z", "${c.nope}"))
    assert errors(doc) == ["nodes[1].params.message: ${c.nope}: node 'c' is a node of type 'git-commit', "
                           "which has no output 'nope' (pflow refuses it too)"]
    tag = {"id": "t", "type": "git-get-latest-tag", "params": {}}
    assert errors(flow(tag, echo("z", "${t.latest_tag.name} ${t.latest_tag.is_annotated}"))) == []


def test_an_unused_input_is_a_warning():
    inputs = {"used": {"type": "string", "default": "u"}, "spare": {"type": "string", "default": "s"}}
    doc = flow(sh("a", "echo ${used}"), inputs=inputs, outputs={"o": {"source": "${spare}"}})
    assert errors(doc) == []
    assert warnings(doc) == ["inputs.spare: input 'spare' is declared but no node's template uses it (pflow "
                             "refuses the flow: \"Declared input(s) never used as template variable\")"]


def test_an_input_used_only_with_an_index_is_a_warning():
    inputs = {"rows": {"type": "array", "default": [1]}}
    got = warnings(flow(echo("a", "${rows[0]}"), inputs=inputs))
    assert [w.split(":")[0] for w in got] == ["nodes[0].params.message", "inputs.rows"]
    assert got[1].startswith("inputs.rows: input 'rows' is used only as ${rows[...]}")


def test_an_index_right_after_an_input_is_a_warning():
    inputs = {"tags": {"type": "array", "default": ["a"]}}
    got = warnings(flow(echo("a", "${tags} ${tags[0]}"), inputs=inputs))
    assert got == ["nodes[0].params.message: ${tags[0]}: pflow's validator refuses an index right after an "
                   "input's name (it looks for an input named 'tags[0]'); pflow-tui reads it"]


@pytest.mark.parametrize("text,warned", [
    ("${v}\n", True), ("${a.echo}\n", True), ("${v}\n\n", False), ("v${v}\n", False), ("${v}", False),
    ("${v} \n", False),
])
def test_a_template_and_one_newline_is_a_warning(text, warned):
    doc = flow(echo("a"), echo("b", text), inputs={"v": {"type": "string", "default": "1"}})
    got = [w for w in warnings(doc) if "drops the newline" in w]
    assert len(got) == (1 if warned else 0)


def test_a_workflow_node_is_a_warning():
    child = {"nodes": [echo("c")], "edges": []}
    got = warnings(flow({"id": "w", "type": "workflow", "params": {"workflow_ir": child}}))
    assert got == ["nodes[0].type: pflow (fed939d7) refuses a flow with a 'workflow' node before running it "
                   "(\"Unknown node type: 'workflow'\"); pflow-tui runs it"]


def test_a_batch_alias_named_like_an_input_is_not_its_use():
    inputs = {"item": {"type": "string", "default": "i"}}
    got = warnings(flow({"id": "b", "type": "echo", "params": {"message": "${item}"},
                         "batch": {"items": [1]}}, inputs=inputs))
    assert any(w.startswith("inputs.item: input 'item' is declared but no node's template uses it")
               for w in got)


def test_a_loop_through_action_edges_is_a_warning():
    doc = flow(sh("try", "false"), echo("done"))
    doc["edges"].append({"from": "try", "to": "try", "action": "error"})
    assert errors(doc) == []
    assert warnings(doc) == ["nodes[0]: the flow loops (try -> try); pflow refuses a flow with any cycle, "
                             "even through action edges (\"Circular dependency detected\")"]
    assert warnings(flow(echo("a"), echo("b"))) == []


def test_find_cycle():
    from pflow_tui.engine.ir.reach import find_cycle

    assert find_cycle(["a", "b", "c"], {"a": ["b"], "b": ["c"], "c": ["a"]}) == ["a", "b", "c"]
    assert find_cycle(["a", "b", "c"], {"a": ["b", "c"], "b": ["c"]}) is None
    chain = {str(i): [str(i + 1)] for i in range(100_000)}  # deep: no recursion
    assert find_cycle(list(chain), chain) is None
    assert find_cycle(["x"], {"x": ["y"], "y": ["z", "y"]}) == ["y"]


def test_an_escaped_dollar_is_a_warning():
    got = warnings(flow(echo("a", "cost $${x}")))
    assert len(got) == 1 and "pflow-tui reads '$${' as the literal text '${'" in got[0]
