"""Validating a normalised IR document: :class:`Validator` collects every problem (the
sections: :mod:`.validate_nodes`, :mod:`.validate_graph`, :mod:`.validate_templates`);
:func:`rate_limit_problems` checks the limits of a flow with its nested flows."""

from __future__ import annotations

from collections.abc import Iterator, Mapping

from ..nodes.base import NodeType
from ..problems import Problem, clip, did_you_mean
from .jsontypes import MAX_DEPTH, json_type, key_path, too_deep
from .keys import IR_MAJOR, IR_VERSION, RATE_LIMIT_KEY, TOP_KEYS, VERSION_RE
from .spec import FlowSpec, NodeSpec
from .validate_graph import GraphChecks
from .validate_nodes import NodeChecks
from .validate_templates import TemplateChecks


class Validator(NodeChecks, GraphChecks, TemplateChecks):
    """Collects every problem in a normalised IR document."""

    def run(self) -> list[Problem]:
        doc = self.doc
        if not isinstance(doc, dict):
            self.error("(top level)", f"expected a JSON object, got {json_type(doc)}",
                       'a flow looks like {"nodes": [...], "edges": [...]}')
            return self.problems
        self.check_keys(doc, TOP_KEYS, "", "the flow")
        for where in too_deep(doc, ""):
            self.error(where, f"objects and arrays nested more than {MAX_DEPTH} levels deep",
                       "flatten the data, or read it from a file or a node's output at run time")
        if isinstance(doc.get("ir_version"), str) and not VERSION_RE.fullmatch(doc["ir_version"]):
            self.error("ir_version", f"{clip(doc['ir_version'])!r} is not a version like 0.1.0",
                       f'use "ir_version": "{IR_VERSION}"')
        elif isinstance(doc.get("ir_version"), str) and doc["ir_version"].split(".")[0] != IR_MAJOR:
            self.error("ir_version", f"IR version {doc['ir_version']} is not one this pflow-tui reads "
                       f"(it reads {IR_MAJOR}.x: a new major version may change what a flow means)",
                       f'upgrade pflow-tui, or write the flow for IR {IR_VERSION}: "ir_version": '
                       f'"{IR_VERSION}"')
        mode = doc.get("template_resolution_mode")
        if isinstance(mode, str) and mode not in ("strict", "permissive"):
            self.error("template_resolution_mode", f"'{mode}' is not a mode",
                       did_you_mean(mode, ["strict", "permissive"]))
        mv = doc.get("max_visits")
        if isinstance(mv, int) and not isinstance(mv, bool) and mv < 1:
            self.error("max_visits", f"must be at least 1, got {mv}",
                       "leave it out (default 100) or set how often one node may run, e.g. 10")
        nodes = doc.get("nodes")
        if isinstance(nodes, list) and not nodes:
            self.error("nodes", "a flow needs at least one node", "add a node to 'nodes'")
        ids = self.check_nodes(nodes if isinstance(nodes, list) else [])
        self.check_rate_limits(doc.get("rate_limits"))
        inputs = self.check_inputs(doc.get("inputs"))
        edges = self.check_edges(doc.get("edges") if isinstance(doc.get("edges"), list) else [], ids)
        start = doc.get("start_node")
        if isinstance(start, str) and ids and start not in ids:
            self.error("start_node", f"no node has id '{clip(start)}'", did_you_mean(start, ids, "node ids"))
        if ids:
            first = start if isinstance(start, str) and start in ids else next(iter(ids))
            self.check_groups(doc, ids)
            self.check_graph(ids, edges, first)
            self.check_templates(nodes, ids, inputs, edges)
        self.check_outputs(doc.get("outputs"), ids, inputs)
        return self.problems


def limited_nodes(spec: FlowSpec, at: tuple[int, ...] = ()
                   ) -> Iterator[tuple[FlowSpec, tuple[int, ...], NodeSpec]]:
    """Every node of a flow and its nested flows that a rate limit may apply to, with where
    it is: the node indexes from the top flow down (see :func:`_nodes_at`)."""
    for i, node in enumerate(spec.nodes.values()):
        if node.type == "workflow":
            if node.id in spec.children:
                yield from limited_nodes(spec.children[node.id], (*at, i))
        else:
            yield spec, (*at, i), node


def _nodes_at(at: tuple[int, ...]) -> str:
    """``nodes[2]``, or ``nodes[0] > nodes[1]`` inside the nested flow of nodes[0]."""
    return " > ".join(f"nodes[{i}]" for i in at)


def rate_limit_problems(spec: FlowSpec, registry: Mapping[str, NodeType], *,
                        top: bool) -> list[Problem]:
    """``rate_limits`` keys that limit nothing in this flow or the flows it nests (an error
    when the key is not even a node type: a typo), and, for the top flow, nodes whose
    ``rate_limit_key`` has no limit anywhere above them (a warning)."""
    problems: list[Problem] = []
    used = {n.rate_limit_key or n.type for _, _, n in limited_nodes(spec)} if spec.rate_limits else set()
    for key in spec.rate_limits:
        if key in used:
            continue
        where = key_path("rate_limits", key)
        if key in registry:
            problems.append(Problem(where, f"no node of this flow uses the limit '{key}' (no '{key}' "
                                    "node without a rate_limit_key of its own)",
                                    "remove it if it is not needed here", "warning"))
        else:
            problems.append(Problem(where, f"'{key}' is neither a node type nor the rate_limit_key "
                                    "of a node here: it would limit nothing",
                                    did_you_mean(key, used, "keys in use") if used else
                                    'name a node type (e.g. "llm") or a node\'s "rate_limit_key"'))
    if top:
        seen: set[str] = set()
        for flow, where, node in limited_nodes(spec):
            key = node.rate_limit_key
            if key is None or key in seen or key in _scope(spec, flow):
                continue
            seen.add(key)
            problems.append(Problem(f"{_nodes_at(where)}.params.{RATE_LIMIT_KEY}", f"no entry of rate_limits "
                                    f"is named '{key}': the calls of '{node.id}' are not limited",
                                    f'add "rate_limits": {{"{key}": {{"max_concurrent": 5}}}}',
                                    "warning"))
    return problems


def _scope(top: FlowSpec, flow: FlowSpec) -> set[str]:
    """The rate limit keys that apply inside ``flow``: its own and those of every flow above it."""
    def path_to(spec: FlowSpec) -> list[FlowSpec] | None:
        if spec is flow:
            return [spec]
        for child in spec.children.values():
            found = path_to(child)
            if found is not None:
                return [spec, *found]
        return None

    return {key for f in path_to(top) or [flow] for key in f.rate_limits}
