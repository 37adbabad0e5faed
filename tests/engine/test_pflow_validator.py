"""The checks of pflow's validator (fed939d7) that pflow-tui makes before running.

pflow's rules (``runtime/template_validator.py``, ``core/workflow_validator.py``): a dict or
list template unquoted in a shell command, a whole-node reference, a key a node type does
not declare, a node reference with namespacing off are refused; what pflow-tui accepts
beyond pflow (an output ``source`` written ``$node.key``, ``${node.error}`` on a type that
does not declare ``error``) is a warning. tests/compat holds the same cases recorded on pflow.
"""

from __future__ import annotations

from itertools import pairwise
from typing import Any

import pytest

from pflow_tui.engine.ir.load import build_flow
from pflow_tui.engine.problems import FlowError


def flow(*nodes: dict[str, Any], **top: Any) -> dict[str, Any]:
    ids = [n["id"] for n in nodes]
    return {"nodes": list(nodes), "edges": [{"from": a, "to": b} for a, b in pairwise(ids)], **top}


def echo(nid: str, message: str = "hi", **extra: Any) -> dict[str, Any]:
    return {"id": nid, "type": "echo", "params": {"message": message}, **extra}


def sh(nid: str, command: str) -> dict[str, Any]:
    return {"id": nid, "type": "shell", "params": {"command": command}}


def errors(doc: dict[str, Any]) -> list[str]:
    try:
        build_flow(doc)
    except FlowError as exc:
        return [f"{p.where}: {p.what}" for p in exc.problems if p.severity == "error"]
    return []


def warnings(doc: dict[str, Any]) -> list[str]:
    return [f"{p.where}: {p.what}" for p in build_flow(doc).warnings]


ARRAY_INPUT = {"names": {"type": "array", "required": False, "default": ["a"]}}
GIT = {"id": "g", "type": "git-status", "params": {}}
BATCH = {"id": "b", "type": "echo", "params": {"message": "${item}"}, "batch": {"items": [1, 2]}}


@pytest.mark.parametrize("nodes,command,kind", [
    ([echo("e")], "echo ${e.metadata}", "an object"),
    ([GIT], "ls ${g.git_status}", "an object"),
    ([GIT], "ls ${g.git_status.modified}", "an array"),  # a nested list[str] field
    ([{"id": "l", "type": "git-log", "params": {}}], "echo ${l.commits}", "an array"),
    ([BATCH], "echo ${b.results}", "an array"),
    ([BATCH], "echo ${b.batch_metadata}", "an object"),
    ([{"id": "h", "type": "http", "params": {"url": "http://x"}}], "echo ${h.response_headers}", "an object"),
    ([echo("e")], "echo ${names}", "an array"),  # an array input
])
def test_a_structured_template_in_a_shell_command_is_refused(nodes, command, kind):
    got = errors(flow(*nodes, sh("s", command), inputs=ARRAY_INPUT))
    assert len(got) == 1 and got[0].startswith(f"nodes[{len(nodes)}].params.command: ")
    assert f"is {kind}: its JSON text in a shell command breaks the command's quoting" in got[0]


def test_several_structured_templates_are_one_error_naming_each():
    got = errors(flow(echo("e"), sh("s", "echo ${e.metadata} ${names} ${e.metadata}"), inputs=ARRAY_INPUT))
    assert got == ["nodes[1].params.command: multiple structured data templates in command: "
                   "${e.metadata} (object), ${names} (array): their JSON text breaks the command's "
                   "quoting (pflow refuses it too)"]


@pytest.mark.parametrize("command", [
    "echo '${e.metadata}' '${names}'",  # quoted: pflow's escape hatch
    "echo ${e.metadata.count} ${e.echo} ${e.data}",  # a field, a str, an any
    "echo ${h.response} ${b.results[0]} ${b.count} ${g.git_status.branch}",  # dict|str, an element, scalars
])
def test_what_pflow_lets_into_a_shell_command(command):
    nodes = [echo("e"), {"id": "h", "type": "http", "params": {"url": "http://x"}}, BATCH, GIT]
    assert errors(flow(*nodes, sh("s", command), inputs=ARRAY_INPUT)) == []


def test_the_check_is_for_the_shell_command_only():
    assert errors(flow(echo("e"), echo("f", "${e.metadata}"), {"id": "s", "type": "shell", "params": {
        "command": "cat", "stdin": "${e.metadata}"}})) == []


def test_a_whole_node_reference_is_refused():
    assert errors(flow(echo("a"), echo("b", "got ${a}"))) == [
        "nodes[1].params.message: ${a} is node 'a' itself, not one of its outputs (pflow refuses it too)"]
    # its runs (pflow-tui's [*] and #N) and an output source naming the node stay allowed
    doc = flow(echo("a"), echo("b", "${a[*].echo} ${a#1.echo}"), outputs={"all": {"source": "a"}})
    assert errors(doc) == []


def test_a_key_the_node_type_does_not_declare_is_refused():
    assert errors(flow(echo("a"), echo("b", "${a.nope}"))) == [
        "nodes[1].params.message: ${a.nope}: node 'a' is a node of type 'echo', which has no output "
        "'nope' (pflow refuses it too)"]
    assert errors(flow(BATCH, echo("c", "${b.echo}"))) == [
        "nodes[1].params.message: ${b.echo}: node 'b' is a batch node, which has no output 'echo' "
        "(pflow refuses it too)"]
    # a batch's own keys, its iterations and every result's key are fine
    assert errors(flow(BATCH, echo("c", "${b.count} ${b.iteration_1.echo} ${b[*].echo}"))) == []


def test_error_where_the_type_does_not_declare_it_is_a_warning():
    doc = flow(sh("s", "exit 3"), echo("h", "${s.error}"))
    doc["edges"] = [{"from": "s", "to": "h", "action": "error"}]
    assert warnings(doc) == [
        "nodes[1].params.message: ${s.error}: a node of type 'shell' does not declare an output 'error' "
        "(pflow's validator refuses this reference; pflow-tui writes 'error' when the node fails)"]
    # read-file declares it: no warning
    read = {"id": "r", "type": "read-file", "params": {"file_path": "x"}}
    assert warnings(flow(read, echo("h", "${r.error}"))) == []


def test_types_without_declared_output_types_are_not_checked():
    merge = {"id": "m", "type": "route", "params": {"value": "x", "cases": []}}
    assert errors(flow(merge, echo("b", "${m.anything}"))) == []


def test_a_node_reference_with_namespacing_off_is_refused_before_running():
    got = errors(flow(echo("a"), echo("b", "got ${a.echo}"), enable_namespacing=False))
    assert got == ["nodes[1].params.message: ${a.echo}: with \"enable_namespacing\": false a node's "
                   "outputs are not kept under its id 'a' (pflow refuses this reference too)"]


def test_an_output_source_written_dollar_node_key_is_a_warning():
    doc = flow(echo("a"), outputs={"said": {"source": "$a.echo"}, "ok": {"source": "a.echo"}})
    assert warnings(doc) == ["outputs.said.source: '$a.echo': pflow refuses the form $node.key (it reads "
                             "'$a' as a node id); pflow-tui resolves it"]


def test_run_shows_the_warnings_before_running(tmp_path, monkeypatch, capsys):
    """What runs here but not on pflow is said by `run` too, not only by `validate`."""
    from pathlib import Path

    from pflow_tui.cli import main

    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("COLUMNS", "250")
    flow_file = Path(__file__).resolve().parents[1] / "compat" / "flows" / "probe-val-output-dollar.json"
    assert main(["run", str(flow_file), "--trace", str(tmp_path / "t.json")]) == 0
    err = capsys.readouterr().err
    assert "warning: outputs.said.source: '$a.echo': pflow refuses the form $node.key" in err
