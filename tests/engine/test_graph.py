"""``pflow-tui graph``: the flow's graph as Mermaid or DOT. Read back line by line from the
samples: every node once with its type, every edge with its action, nested flows as
subgraphs, parallel groups as clusters around their branches, batch nodes marked."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import orjson
import pytest

from pflow_tui.cli import main
from pflow_tui.engine.ir.diagram import to_dot, to_mermaid
from pflow_tui.engine.ir.load import load_flow, normalize
from pflow_tui.engine.ir.spec import children_ir

SAMPLES = Path(__file__).resolve().parents[2] / "sample_flows"
JSON_SAMPLES = sorted(p.name for p in SAMPLES.glob("*.json"))

M_NODE = re.compile(r'^(\s*)(\w+)(\[\[|\[)"(.*)<br/>(.*)"(\]\]|\])$')
M_EDGE = re.compile(r'^\s*(\w+) (-->|-\.->)(?:\|"(.*)"\|)? (\w+)$')
M_SUB = re.compile(r'^(\s*)subgraph (\w+)\["(.*)"\]$')
D_NODE = re.compile(r'^(\s*)(\w+) \[label="(.*)\\n(.*?)"(, shape=(\w+))?\];$')
D_EDGE = re.compile(r'^\s*(\w+) -> (\w+)(?: \[(label="(.*)"|style=dotted)\])?;$')
D_SUB = re.compile(r"^(\s*)subgraph (cluster_\w+) \{$")


class Read:
    """A diagram read back: nodes (id -> (label, kind, batch shape)), edges (labels), the
    node labels inside each subgraph."""

    def __init__(self) -> None:
        self.nodes: dict[str, tuple[str, str, bool]] = {}
        self.edges: list[tuple[str, str, str]] = []  # from label, to label, action / "nested"
        self.subgraphs: dict[str, set[str]] = {}  # title -> the node labels drawn inside
        self.raw_edges: list[tuple[str, str, str]] = []


def read_mermaid(text: str) -> Read:
    lines = text.splitlines()
    assert lines[1] == "flowchart TD"
    out, stack = Read(), []
    for line in lines[2:]:
        if m := M_SUB.match(line):
            stack.append(m.group(3))
            out.subgraphs[m.group(3)] = set()
        elif line.strip() == "end":
            stack.pop()
        elif m := M_NODE.match(line):
            assert m.group(2) not in out.nodes, f"{m.group(2)} drawn twice"
            out.nodes[m.group(2)] = (m.group(4), m.group(5), m.group(3) == "[[")
            for title in stack:
                out.subgraphs[title].add(m.group(4))
        elif m := M_EDGE.match(line):
            action = "nested" if m.group(2) == "-.->" else m.group(3) or "default"
            out.raw_edges.append((m.group(1), m.group(4), action))
        else:
            raise AssertionError(f"a line neither node, edge nor subgraph: {line!r}")
    assert not stack
    out.edges = [(out.nodes[a][0], out.nodes[b][0], action) for a, b, action in out.raw_edges]
    return out


def read_dot(text: str) -> Read:
    lines = text.splitlines()
    assert lines[0].startswith("digraph ") and lines[-1] == "}"
    out, stack = Read(), []
    title = None
    for line in lines[4:-1]:
        if m := D_SUB.match(line):
            stack.append(m.group(2))
            title = None
        elif line.strip().startswith("label="):
            title = re.match(r'\s*label="(.*?)";', line).group(1)  # type: ignore[union-attr]
            out.subgraphs[title] = set()
            stack[-1] = title
        elif line.strip() == "}":
            stack.pop()
        elif m := D_NODE.match(line):
            assert m.group(2) not in out.nodes
            out.nodes[m.group(2)] = (m.group(3), m.group(4), m.group(6) == "box3d")
            for t in stack:
                out.subgraphs[t].add(m.group(3))
        elif m := D_EDGE.match(line):
            action = "nested" if m.group(3) == "style=dotted" else m.group(4) or "default"
            out.raw_edges.append((m.group(1), m.group(2), action))
        else:
            raise AssertionError(f"a line neither node, edge nor cluster: {line!r}")
    out.edges = [(out.nodes[a][0], out.nodes[b][0], action) for a, b, action in out.raw_edges]
    return out


def expected(ir: dict[str, Any]) -> tuple[dict[str, tuple[str, bool]], set[tuple[str, str, str]]]:
    doc = normalize(ir)
    nodes = {n["id"]: (n["type"] + (" · batch" if "batch" in n else ""), "batch" in n) for n in doc["nodes"]}
    edges = {(e["from"], e["to"], e.get("action", "default")) for e in doc["edges"]}
    return nodes, edges


@pytest.mark.parametrize("sample", JSON_SAMPLES)
@pytest.mark.parametrize("fmt", ["mermaid", "dot"])
def test_every_node_and_edge_of_each_sample(sample: str, fmt: str) -> None:
    spec = load_flow(SAMPLES / sample)
    text = (to_mermaid if fmt == "mermaid" else to_dot)(spec.ir, spec.name, children_ir(spec))
    drawn = read_mermaid(text) if fmt == "mermaid" else read_dot(text)
    nodes, edges = expected(spec.ir)
    for nid, child in spec.children.items():  # nested flows: their nodes too, and a dotted edge in
        child_nodes, child_edges = expected(child.ir)
        nodes.update(child_nodes)
        edges |= child_edges | {(nid, child.start, "nested")}
        assert {label for label in drawn.subgraphs[f"nested flow {nid}"]} == set(child_nodes)
    assert {label: (kind, batch) for label, kind, batch in drawn.nodes.values()} == nodes
    assert len(drawn.nodes) == len(nodes)  # (no id is drawn twice)
    assert set(drawn.edges) == edges and len(drawn.edges) == len(edges)
    groups = {title: members for title, members in drawn.subgraphs.items() if title.startswith("parallel")}
    assert {title: members for title, members in groups.items()} == {
        f"parallel group {g.name}": set(g.members) for g in spec.groups}


def test_the_parallel_group_holds_its_branches_not_the_fanout_nor_the_join() -> None:
    spec = load_flow(SAMPLES / "fanout_merge.json")
    for drawn in (read_mermaid(to_mermaid(spec.ir, spec.name)), read_dot(to_dot(spec.ir, spec.name))):
        assert drawn.subgraphs["parallel group analysis"] == {"analyze", "visualize", "chart", "summarize"}
        assert ("filter", "analyze", "default") in drawn.edges
        assert ("chart", "merge", "default") in drawn.edges


def test_a_nested_flow_and_batch_marks() -> None:
    spec = load_flow(SAMPLES / "pipeline.json")
    text = to_mermaid(spec.ir, spec.name, children_ir(spec))
    assert '  n_per_file[["per_file<br/>workflow · batch"]]' in text.splitlines()
    assert "  n_per_file -.-> n_per_file__read" in text.splitlines()
    assert '  subgraph f_per_file["nested flow per_file"]' in text.splitlines()
    dot = to_dot(spec.ir, spec.name, children_ir(spec))
    assert '  n_per_file [label="per_file\\nworkflow · batch", shape=box3d];' in dot.splitlines()
    assert '  n_per_file -> n_per_file__read [style=dotted];' in dot.splitlines()


def test_any_id_is_quoted_and_escaped() -> None:
    ir = {"name": 'we"ird', "nodes": [
        {"id": "end", "type": "echo", "params": {"message": "x"}},
        {"id": 'a"b<c>', "type": "echo", "params": {"message": "y"}},
        {"id": "a-b", "type": "echo", "params": {"message": "z"}},
        {"id": "a_b", "type": "echo", "params": {"message": "z"}}],
        "edges": [{"from": "end", "to": 'a"b<c>', "action": 'go "on"'}, {"from": 'a"b<c>', "to": "a-b"},
                  {"from": "a-b", "to": "a_b"}]}
    mermaid = to_mermaid(ir, ir["name"])
    assert '  n_end["end<br/>echo"]' in mermaid and '  n_a_b_c_["a#quot;b#lt;c#gt;<br/>echo"]' in mermaid
    assert '  n_a_b["a-b<br/>echo"]' in mermaid and '  n_a_b_2["a_b<br/>echo"]' in mermaid
    assert '  n_end -->|"go #quot;on#quot;"| n_a_b_c_' in mermaid
    dot = to_dot(ir, ir["name"])
    assert dot.startswith('digraph "we\\"ird" {') and '  n_a_b_c_ [label="a\\"b<c>\\necho"];' in dot
    assert '  n_end -> n_a_b_c_ [label="go \\"on\\""];' in dot


# --- the command ---------------------------------------------------------------------------------------

def test_graph_command(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    sample = str(SAMPLES / "judges.json")
    assert main(["graph", sample]) == 0
    out = capsys.readouterr().out
    assert out.startswith("%% judges\nflowchart TD\n") and "parallel group judges" in out
    assert main(["graph", sample, "--format", "dot", "-o", str(tmp_path / "j.dot")]) == 0
    assert capsys.readouterr().out == ""
    assert (tmp_path / "j.dot").read_text().startswith('digraph "judges" {')
    assert main(["graph", f"{SAMPLES / 'map_reduce.py'}:flow"]) == 0  # a Python program
    assert "nested flow per_topic" in capsys.readouterr().out


def test_graph_bad_input(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    bad = tmp_path / "bad.json"
    bad.write_bytes(orjson.dumps({"nodes": [{"id": "a", "type": "shel"}]}))
    assert main(["graph", str(bad)]) == 2
    assert "nodes[0].type" in capsys.readouterr().err
    assert main(["graph", str(SAMPLES / "judges.json"), "--format", "svg"]) == 2
    assert "invalid choice: 'svg' (choose from mermaid, dot)" in " ".join(capsys.readouterr().err.split())
    assert main(["graph", str(SAMPLES / "judges.json"), "-o", str(tmp_path / "no" / "such" / "x")]) == 2
    assert "cannot write" in capsys.readouterr().err
