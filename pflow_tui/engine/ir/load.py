"""Loading, normalising and validating pflow IR 0.1.0 flow files.

``load_flow(path)`` returns a :class:`FlowSpec` or raises :class:`FlowError` listing every
problem in the file (JSON path, what was expected, how to fix it). Nothing runs before
validation has passed.
"""


from __future__ import annotations

import contextlib
import gc
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson

from ..nodes.base import CLUSTER, PROCESS, NodeType
from ..nodes.workflow import MAX_DEPTH
from ..problems import FlowError, Problem, Rewrite, did_you_mean
from ..trace.filecheck import FileRefused, read_limited
from .aliases import AliasRewriter
from .groups import find_groups, flow_edges, has_groups
from .jsontypes import json_type, key_path
from .keys import IR_VERSION, RATE_LIMIT_KEY
from .parse import parse_json
from .spec import BatchSpec, EdgeSpec, FlowSpec, InputSpec, NodeSpec, OutputSpec
from .validate import Validator, limited_nodes, rate_limit_problems


@dataclass(frozen=True, slots=True)
class Normalized:
    """A flow document as it will be validated and run, what was rewritten to get there,
    and the problems found on the way (aliases that contradict each other)."""

    doc: Any
    rewrites: list[Rewrite]
    problems: list[Problem]


def normalize_ir(doc: Any) -> Normalized:
    """pflow's pre-step (unwrap a saved envelope, default ir_version/edges, parameters ->
    params, source/target -> from/to), then the analysis's aliases (``batch_mode``,
    ``execution_mode``, ``batch_config``, ``fail_safe``; see :mod:`.aliases`).

    The given document is not changed; a document that is no object is returned as is.
    """
    notes: list[Rewrite] = []
    problems: list[Problem] = []
    if isinstance(doc, dict) and "nodes" not in doc and isinstance(doc.get("ir"), dict):
        ir = dict(doc["ir"])
        if isinstance(doc.get("name"), str):
            ir.setdefault("name", doc["name"])
        if isinstance(doc.get("description"), str):
            ir.setdefault("description", doc["description"])
        notes.append(Rewrite("ir", "a saved workflow: its \"ir\" is the flow (paths below are inside it)",
                             alias=False))
        doc = ir
    if not isinstance(doc, dict):
        return Normalized(doc, notes, problems)
    doc = dict(doc)
    for key, default in (("ir_version", IR_VERSION), ("edges", [])):
        if key not in doc:
            doc[key] = default
            notes.append(Rewrite(key, f"{orjson.dumps(default).decode()} added (the default)", alias=False))
    if isinstance(doc.get("nodes"), list):
        nodes = []
        for i, node in enumerate(doc["nodes"]):
            if isinstance(node, dict) and "parameters" in node and "params" not in node:
                node = {("params" if k == "parameters" else k): v for k, v in node.items()}
                notes.append(Rewrite(f"nodes[{i}].parameters", 'renamed "params"', alias=False))
            nodes.append(node)
        doc["nodes"] = nodes
    if isinstance(doc.get("edges"), list):
        edges = []
        for i, e in enumerate(doc["edges"]):
            if isinstance(e, dict) and ("source" in e or "target" in e):
                renamed = {"source": "from", "target": "to"}
                e = {renamed.get(k, k): v for k, v in e.items()}
                notes.append(Rewrite(f"edges[{i}]", "source/target renamed from/to", alias=False))
            edges.append(e)
        doc["edges"] = edges
    AliasRewriter(doc, notes, problems).run()
    return Normalized(doc, notes, problems)


def normalize(doc: Any) -> Any:
    """The normalised document (see :func:`normalize_ir`)."""
    return normalize_ir(doc).doc


def explain(doc: Any) -> Normalized:
    """:func:`normalize_ir`, with inline child flows (``workflow_ir``) normalised too, as
    they will run; their rewrites' paths start at the node that holds them."""
    normalized = normalize_ir(doc)
    nodes = normalized.doc.get("nodes") if isinstance(normalized.doc, dict) else None
    for i, node in enumerate(nodes if isinstance(nodes, list) else []):
        params = node.get("params") if isinstance(node, dict) else None
        if isinstance(params, dict) and node.get("type") == "workflow" \
                and isinstance(params.get("workflow_ir"), dict):
            child = explain(params["workflow_ir"])
            nodes[i] = {**node, "params": {**params, "workflow_ir": child.doc}}
            prefix = f"nodes[{i}].params.workflow_ir"
            normalized.rewrites.extend(Rewrite(f"{prefix}.{r.where}", r.note, r.alias)
                                       for r in child.rewrites)
    return normalized


def read_doc(path: str | Path) -> Any:
    """A flow file's JSON document (FlowError: the file cannot be read or is not JSON)."""
    if not Path(path).exists():
        raise FlowError(str(path), [Problem(str(path), "file not found",
                                            "check the path (relative to the current directory)")])
    try:  # a regular file below the flow size limit: never /dev/zero, a FIFO, a folder
        raw = read_limited(path, "flow")
    except FileRefused as exc:
        what = str(exc).removeprefix(f"{path}: ")
        raise FlowError(str(path), [Problem(str(path), what)]) from None
    return parse_json(raw, str(path))


def load_flow(path: str | Path, registry: Mapping[str, NodeType] | None = None, *,
              _chain: tuple[str, ...] = ()) -> FlowSpec:
    """Read, normalise and validate a flow file (and the files its nested flows use)."""
    p = Path(path)
    with paused_gc():
        doc = read_doc(p)
        return build_flow(doc, source=str(path), base_dir=p.resolve().parent, default_name=p.stem,
                          registry=registry, _chain=(*_chain, str(p.resolve())))


@contextlib.contextmanager
def paused_gc() -> Iterator[None]:
    """The cyclic garbage collector off for a while: reading and checking a big flow makes
    many small dicts and lists, which the collector would rescan again and again (the
    documents hold no cycles; reference counting frees them)."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


def build_flow(doc: Any, *, source: str = "<flow>", base_dir: Path | None = None,
               default_name: str = "flow",
               registry: Mapping[str, NodeType] | None = None,
               _chain: tuple[str, ...] = ()) -> FlowSpec:
    """Normalise and validate a flow given as a parsed JSON document.

    Nested flows (``workflow`` nodes) are loaded and validated too; their problems are
    reported at the parent node, naming the child and the place in it.
    """
    with paused_gc():
        return _build_flow(doc, source, base_dir, default_name, registry, _chain)


def _build_flow(doc: Any, source: str, base_dir: Path | None, default_name: str,
                registry: Mapping[str, NodeType] | None, _chain: tuple[str, ...]) -> FlowSpec:
    if registry is None:
        # imported here for start-up time: the registry loads importlib.metadata (~20 ms), which
        # reading a flow for a replay or the view model never needs
        from ..registry import registry as default_registry

        registry = default_registry()
    normalized = normalize_ir(doc)
    doc = normalized.doc
    problems = normalized.problems + Validator(doc, registry).run()
    errors = [p for p in problems if p.severity == "error"]
    if errors:
        raise FlowError(source, problems)
    base = base_dir or Path.cwd()
    children, child_problems = _load_children(doc, source, base, registry, _chain or (source,))
    if child_problems:
        raise FlowError(source, child_problems)
    spec = _to_spec(doc, source, base, default_name, problems)
    spec.children.update(children)
    spec.rewrites.extend(normalized.rewrites)
    found = rate_limit_problems(spec, registry, top=len(_chain) <= 1)
    if len(_chain) <= 1 and any((n.executor or registry[n.type].executor) == PROCESS
                                for _, _, n in limited_nodes(spec)):
        # imported here for start-up time: only flows that use the process pool load it
        from ..run.pool import pool_problem

        bad = pool_problem()
        if bad is not None:
            found.append(bad)
    if len(_chain) <= 1:
        found += _cluster_problems(spec)
    if any(p.severity == "error" for p in found):
        raise FlowError(source, [*problems, *found])
    spec.warnings.extend(found)
    return spec



def _cluster_problems(spec: FlowSpec) -> list[Problem]:
    """A flow with ``"executor": "cluster"`` nodes needs Dask (the ``[dask]`` extra) and a
    good ``PFLOW_TUI_CLUSTER``: reported at the first such node (a ``workflow`` node too).
    And a warning where the flow's rate limits do not reach: inside a child flow that runs
    whole on a worker."""
    found: list[Problem] = []
    for at, node in _every_node(spec):
        if node.executor == CLUSTER:
            # imported here for start-up time: only flows that use a cluster load it
            from ..run.cluster import cluster_problem

            bad = cluster_problem(" > ".join(f"nodes[{i}]" for i in at) + ".executor")
            found += [bad] if bad is not None else []
            break
    return found + _limits_out_of_reach(spec, frozenset(spec.rate_limits))


def _every_node(spec: FlowSpec, at: tuple[int, ...] = ()) -> Iterator[tuple[tuple[int, ...], NodeSpec]]:
    """Every node of a flow and of the flows it nests, with its indexes from the top down."""
    for i, node in enumerate(spec.nodes.values()):
        yield (*at, i), node
        if node.type == "workflow" and node.id in spec.children:
            yield from _every_node(spec.children[node.id], (*at, i))


def _limits_out_of_reach(spec: FlowSpec, keys: frozenset[str], at: tuple[int, ...] = ()) -> list[Problem]:
    """Rate limits (``keys``, from the flows above) that a child flow run on a cluster worker
    would need, as warnings at its ``workflow`` node."""
    found: list[Problem] = []
    for i, node in enumerate(spec.nodes.values()):
        child = spec.children.get(node.id) if node.type == "workflow" else None
        if child is None:
            continue
        if node.executor != CLUSTER:
            found += _limits_out_of_reach(child, keys | frozenset(child.rate_limits), (*at, i))
            continue
        missed = sorted({n.rate_limit_key or n.type for _, _, n in limited_nodes(child)} & keys)
        if missed:
            names = ", ".join(repr(k) for k in missed)
            limits = f"rate limits {names} do" if len(missed) > 1 else f"rate limit {names} does"
            found.append(Problem(
                " > ".join(f"nodes[{j}]" for j in (*at, i)) + ".executor",
                f"the flow's {limits} not reach inside this node's child flow, which runs whole "
                "on a Dask worker",
                "give the child flow rate_limits of its own (they hold within each item's run), "
                "or leave \"executor\" out", severity="warning"))
    return found


_IN_CHILD = "in child flow "


def _load_children(doc: dict[str, Any], source: str, base_dir: Path,
                   registry: Mapping[str, NodeType], chain: tuple[str, ...]
                   ) -> tuple[dict[str, FlowSpec], list[Problem]]:
    """The nested flows of the workflow nodes, by node id, and the problems found in them
    (reported at the node). ``chain``: this flow and the flows above it."""
    children: dict[str, FlowSpec] = {}
    problems: list[Problem] = []
    for i, node in enumerate(doc["nodes"]):
        if node.get("type") != "workflow":
            continue
        child, found = _load_child(node, f"nodes[{i}].params", source, base_dir, registry, chain)
        problems += found
        if child is not None:
            children[node["id"]] = child
    return children, problems


def _load_child(node: dict[str, Any], where: str, source: str, base_dir: Path,
                registry: Mapping[str, NodeType], chain: tuple[str, ...]
                ) -> tuple[FlowSpec | None, list[Problem]]:
    """The nested flow of one workflow node (``where``: its params' path)."""
    params = node.get("params") or {}
    given = [k for k in ("workflow_ir", "workflow_ref", "workflow_name") if k in params]
    if len(given) != 1:
        return None, [Problem(where, f"workflow node '{node['id']}' needs exactly one of "
                              f"workflow_ir or workflow_ref (has {', '.join(given) or 'neither'})",
                              "give the child flow inline (workflow_ir) or as a file path "
                              "(workflow_ref)")]
    key = given[0]
    if key == "workflow_name":
        return None, [Problem(f"{where}.workflow_name", "saved workflows by name are not "
                              "supported", "point workflow_ref at the flow's file instead")]
    if len(chain) > MAX_DEPTH:
        return None, [Problem(f"{where}.{key}", f"flows nested more than {MAX_DEPTH} deep "
                              f"(node '{node['id']}' would open level {len(chain)})",
                              f"nest at most {MAX_DEPTH} flows: inline or merge some of them "
                              "(a flow that includes itself, even through others, "
                              "recurses forever)")]
    child_source = f"{source} > {node['id']}"
    mapping = params.get("param_mapping")
    try:
        if key == "workflow_ir":
            child, problems = _inline_child(params["workflow_ir"], node["id"], where, child_source,
                                            base_dir, registry, chain)
            if child is not None:  # (its mapping's problems are listed twice, as they always were)
                problems += _mapping_problems(mapping, child, f"{where}.param_mapping", node["id"])
        else:
            child, problems = _child_file(params["workflow_ref"], node["id"], where, base_dir,
                                          registry, chain)
        if child is not None:
            problems += _mapping_problems(mapping, child, f"{where}.param_mapping", node["id"])
        return child, problems
    except FlowError as exc:
        named = exc.source if key == "workflow_ir" else params["workflow_ref"]
        return None, _child_problems(exc, f"{_IN_CHILD}{named} (of node '{node['id']}')", f"{where}.{key}")


def _inline_child(ir: Any, node_id: str, where: str, child_source: str, base_dir: Path,
                  registry: Mapping[str, NodeType], chain: tuple[str, ...]
                  ) -> tuple[FlowSpec | None, list[Problem]]:
    if not isinstance(ir, dict):
        return None, [Problem(f"{where}.workflow_ir", f"expected a flow object, got {json_type(ir)}",
                              'inline a flow: {"nodes": [...], "edges": [...]}')]
    return build_flow(ir, source=child_source, base_dir=base_dir, default_name=node_id,
                      registry=registry, _chain=(*chain, child_source)), []


def _child_file(ref: Any, node_id: str, where: str, base_dir: Path, registry: Mapping[str, NodeType],
                chain: tuple[str, ...]) -> tuple[FlowSpec | None, list[Problem]]:
    where = f"{where}.workflow_ref"
    if not isinstance(ref, str) or "${" in ref:
        return None, [Problem(where, "expected a file path",
                              "give the child flow's path, relative to this file")]
    path = (base_dir / ref).resolve()
    if not path.is_file():
        return None, [Problem(where, f"node '{node_id}': child flow file '{ref}' not found (looked "
                              f"for {path})", "workflow_ref is relative to the folder of the flow "
                              f"that uses it ({base_dir}): check the path")]
    if str(path) in chain:
        trail = " > ".join(Path(c).name for c in (*chain, str(path)))
        return None, [Problem(where, f"node '{node_id}' includes '{ref}' again: {trail} recurses "
                              "forever", "break the cycle: a flow must not include itself, "
                              "directly or through other flows")]
    return load_flow(path, registry, _chain=chain), []


def _child_problems(exc: FlowError, label: str, where: str) -> list[Problem]:
    """A child flow's problems, reported at the workflow node that holds it."""
    problems = []
    for p in exc.problems:
        if p.what.startswith(_IN_CHILD):  # a grandchild's: one trail, not nested sentences
            what = f"{label} > {p.what[len(_IN_CHILD):]}"
        else:
            what = f"{label}: {p.where}: {p.what}"
        problems.append(Problem(where, what, p.fix))
    return problems


def _to_spec(doc: dict[str, Any], source: str, base_dir: Path, default_name: str,
             warnings: list[Problem]) -> FlowSpec:
    nodes: dict[str, NodeSpec] = {}
    for n in doc["nodes"]:
        b = n.get("batch")
        batch = None
        if b is not None:
            batch = BatchSpec(
                items=b["items"], alias=b.get("as", "item"),
                error_handling=b.get("error_handling", "fail_fast"),
                parallel=b.get("parallel", False), max_concurrent=b.get("max_concurrent", 10),
                max_retries=b.get("max_retries", 1), retry_wait=b.get("retry_wait", 0.0),
                batch_size=b.get("batch_size"), label=b.get("label"),
            )
        params = dict(n.get("params") or {})
        nodes[n["id"]] = NodeSpec(n["id"], n["type"], params, batch, n.get("purpose", ""),
                                  n.get("executor"), params.pop(RATE_LIMIT_KEY, None))
    edges = [EdgeSpec(e["from"], e["to"], e.get("action", "default"), e.get("parallel_group"))
             for e in doc["edges"]]
    groups = find_groups(flow_edges(doc["edges"]), doc.get("parallel_groups"))[0] \
        if has_groups(doc["edges"]) else []
    inputs = {
        name: InputSpec(name, d.get("type"), d.get("required", True), d.get("default"),
                        "default" in d, d.get("description", ""), d.get("stdin", False),
                        d.get("secret", False) is True)
        for name, d in (doc.get("inputs") or {}).items()
    }
    outputs = {
        name: OutputSpec(name, d.get("source"), d.get("description", ""))
        for name, d in (doc.get("outputs") or {}).items()
    }
    name = doc.get("name") or default_name
    name = re.sub(r"[^\w-]", "_", name) or "flow"
    return FlowSpec(
        name=name, nodes=nodes, edges=edges,
        start=doc.get("start_node") or doc["nodes"][0]["id"],
        inputs=inputs, outputs=outputs, ir=doc, source=source, base_dir=base_dir,
        strict_templates=doc.get("template_resolution_mode", "strict") == "strict",
        namespacing=doc.get("enable_namespacing", True),
        max_visits=doc.get("max_visits", 100), warnings=warnings, groups=groups,
        rate_limits={k: dict(v) for k, v in (doc.get("rate_limits") or {}).items()},
    )


def _mapping_problems(mapping: Any, child: FlowSpec, where: str, node_id: str) -> list[Problem]:
    """``param_mapping`` must name the child's inputs and give every required one."""
    if mapping is not None and not isinstance(mapping, dict):
        return [Problem(where, f"expected an object, got {json_type(mapping)}",
                        'map child inputs to values: {"child_input": "${parent_node.key}"}')]
    mapping = mapping or {}
    problems = [Problem(key_path(where, key), f"the child flow of '{node_id}' has no input '{key}'",
                        did_you_mean(key, child.inputs, "its inputs") if child.inputs
                        else "the child flow declares no inputs")
                for key in mapping if key not in child.inputs]
    missing = [n for n, i in child.inputs.items() if i.required and not i.has_default and n not in mapping]
    if missing:
        problems.append(Problem(where, f"the child flow of '{node_id}' needs input(s) "
                                f"{', '.join(missing)}", "map them in param_mapping"))
    return problems


