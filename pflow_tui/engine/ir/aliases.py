"""The parallel-execution analysis's IR keys, accepted as aliases of pflow-tui's own forms.

pflow's analysis of parallel execution sketched keys that pflow never shipped; a flow
written from it runs here after they are rewritten (docs/aliases.md has the table):

- ``batch_mode`` on a node: ``true`` needs the node's ``batch`` (its items) and is then
  dropped; ``false`` is dropped when the node has no ``batch``;
- ``execution_mode`` (top level): ``sequential`` sets ``parallel: false`` on every batch
  and ``max_concurrent: 1`` on every parallel group; ``batch`` sets ``parallel: false`` on
  every batch; ``parallel`` sets ``parallel: true`` on every batch;
- ``batch_config`` (top level): ``batch_size`` and ``error_handling`` for every batch;
- ``error_handling: "fail_safe"`` (anywhere) means ``continue``.

A flow-wide key and a node's (or group's) own key that disagree are an error: which one
was meant cannot be known. Problems point at the keys as written in the file.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import orjson

from ..problems import Problem, Rewrite, did_you_mean
from .jsontypes import is_json_type, json_type, key_path, type_fix
from .templates import Ref, parse_text

EXECUTION_MODES = ("sequential", "batch", "parallel")
#: error_handling as written -> pflow-tui's value
ERROR_HANDLING = {"fail_fast": "fail_fast", "fail_safe": "continue", "continue": "continue"}
BATCH_CONFIG_KEYS = ("batch_size", "error_handling")


def _show(value: Any) -> str:
    return orjson.dumps(value).decode()


def _whole(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool) and v >= 1


#: The values a key may have; any other value is the validator's to report, not a conflict.
_VALID: dict[str, Callable[[Any], bool]] = {
    "parallel": lambda v: isinstance(v, bool),
    "batch_size": _whole,
    "max_concurrent": _whole,
    "error_handling": lambda v: isinstance(v, str) and v in ERROR_HANDLING,
}


class AliasRewriter:
    """Rewrites the aliases of a flow document in place (copying what it changes)."""

    def __init__(self, doc: dict[str, Any], notes: list[Rewrite], problems: list[Problem]) -> None:
        self.doc = doc
        self.notes = notes
        self.problems = problems
        nodes = doc.get("nodes")
        self.nodes: list[Any] = []
        if isinstance(nodes, list):
            self.nodes = doc["nodes"] = [_copy(n) for n in nodes]
        if isinstance(doc.get("parallel_groups"), dict):
            doc["parallel_groups"] = {k: dict(v) if isinstance(v, dict) else v
                                      for k, v in doc["parallel_groups"].items()}

    def error(self, where: str, what: str, fix: str) -> None:
        self.problems.append(Problem(where, what, fix))

    def warn(self, where: str, what: str, fix: str) -> None:
        self.problems.append(Problem(where, what, fix, "warning"))

    def note(self, where: str, note: str) -> None:
        self.notes.append(Rewrite(where, note))

    def run(self) -> None:
        for i, node in enumerate(self.nodes):
            if isinstance(node, dict):
                if "batch_mode" in node:
                    self.batch_mode(i, node)
                if isinstance(node.get("batch"), dict):
                    self.fail_safe(node["batch"], f"nodes[{i}].batch")
        policies = self.doc.get("parallel_groups")
        for name, policy in (policies.items() if isinstance(policies, dict) else ()):
            if isinstance(policy, dict):
                self.fail_safe(policy, key_path("parallel_groups", name))
        if "execution_mode" in self.doc:
            self.execution_mode(self.doc.pop("execution_mode"))
        if "batch_config" in self.doc:
            self.batch_config(self.doc.pop("batch_config"))

    def batched(self) -> list[tuple[int, dict[str, Any]]]:
        """``(index, batch dict)`` of every node with a batch config."""
        return [(i, n["batch"]) for i, n in enumerate(self.nodes)
                if isinstance(n, dict) and isinstance(n.get("batch"), dict)]

    def fail_safe(self, obj: dict[str, Any], where: str) -> None:
        if obj.get("error_handling") == "fail_safe":
            obj["error_handling"] = "continue"
            self.note(f"{where}.error_handling", '"fail_safe" -> "continue"')

    def batch_mode(self, i: int, node: dict[str, Any]) -> None:
        where = f"nodes[{i}].batch_mode"
        mode = node.pop("batch_mode")
        if not isinstance(mode, bool):
            self.error(where, f"expected boolean, got {json_type(mode)}",
                       type_fix("batch_mode", "boolean", mode))
        elif mode and "batch" not in node:
            self.error(where, "batch_mode is true, but the node has no items to run over",
                       'add "batch": {"items": "${node.list_key}"} (the list; each item is ${item} in '
                       "params) and remove batch_mode" + _items_hint(node))
        elif not mode and "batch" in node:
            self.error(where, "batch_mode is false, but the node has a batch config",
                       'remove batch_mode (a "batch" makes it a batch node), or remove "batch" to run '
                       "the node once")
        else:
            self.note(where, f"{_show(mode)} removed ("
                      + ("the node's batch makes it a batch node)" if mode else "the node has no batch)"))

    def execution_mode(self, mode: Any) -> None:
        if not isinstance(mode, str):
            self.error("execution_mode", f"expected string, got {json_type(mode)}",
                       type_fix("execution_mode", "string", mode))
            return
        if mode not in EXECUTION_MODES:
            self.error("execution_mode", f"'{mode}' is not an execution mode",
                       did_you_mean(mode, EXECUTION_MODES, "one of"))
            return
        self.note("execution_mode", f'"{mode}" removed; applied as listed below')
        parallel = mode == "parallel"
        source = f"execution_mode \"{mode}\""
        batched = self.batched()
        for i, batch in batched:
            self.apply(batch, f"nodes[{i}].batch", "parallel", parallel, source, "batch")
        groups = self.group_names()
        if mode == "sequential" and groups and isinstance(self.doc.setdefault("parallel_groups", {}), dict):
            policies = self.doc["parallel_groups"]
            for name in groups:
                policy = policies.setdefault(name, {})
                if isinstance(policy, dict):
                    self.apply(policy, key_path("parallel_groups", name), "max_concurrent", 1, source,
                               "group")
        if parallel:
            policies = self.doc.get("parallel_groups")
            for name in groups if isinstance(policies, dict) else ():
                policy = policies.get(name)
                if isinstance(policy, dict) and _whole(policy.get("max_concurrent")) \
                        and policy["max_concurrent"] == 1:
                    self.error(key_path(key_path("parallel_groups", name), "max_concurrent"),
                               f"max_concurrent is 1 (one branch at a time), but {source} runs every "
                               "group's branches at once", "remove one of them; to mix, leave "
                               "execution_mode out")
        if mode == "batch" and not batched:
            self.warn("execution_mode", "execution_mode is \"batch\", but no node has a batch config",
                      'give the node that runs once per item "batch": {"items": ...}, or remove '
                      "execution_mode")
        if parallel and not batched and not groups:
            self.warn("execution_mode", "execution_mode is \"parallel\", but nothing in the flow can "
                      "run in parallel (no batch, no parallel group)",
                      'give a node "batch": {"items": ...}, or edges a "parallel_group"; or remove '
                      "execution_mode")

    def group_names(self) -> list[str]:
        edges = self.doc.get("edges")
        names = [e["parallel_group"] for e in (edges if isinstance(edges, list) else [])
                 if isinstance(e, dict) and isinstance(e.get("parallel_group"), str)]
        return list(dict.fromkeys(names))

    def batch_config(self, config: Any) -> None:
        if not isinstance(config, dict):
            self.error("batch_config", f"expected object, got {json_type(config)}",
                       'write "batch_config" as an object: '
                       '{"batch_size": 100, "error_handling": "fail_safe"}')
            return
        values: dict[str, Any] = {}
        for key, value in config.items():
            where = key_path("batch_config", key)
            if key not in BATCH_CONFIG_KEYS:
                close = did_you_mean(key, BATCH_CONFIG_KEYS)
                self.error(where, f"unknown key '{key}' in batch_config",
                           close if close.startswith("did") else
                           f"batch_config takes {', '.join(BATCH_CONFIG_KEYS)}; set other batch "
                           "settings in each node's \"batch\"")
            elif key == "batch_size" and not is_json_type(value, "integer"):
                self.error(where, f"expected integer, got {json_type(value)}",
                           type_fix(key, "integer", value))
            elif key == "batch_size" and value < 1:
                self.error(where, f"must be at least 1, got {value}",
                           "set how many items to hold in memory at once, e.g. 1000")
            elif key == "error_handling" and not _VALID[key](value):
                self.error(where, f"{_show(value)} is not fail_fast or fail_safe",
                           did_you_mean(value, ("fail_fast", "fail_safe"), "one of")
                           if isinstance(value, str) else 'use "fail_fast" or "fail_safe"')
            else:
                values[key] = ERROR_HANDLING[value] if key == "error_handling" else value
        if len(values) < len(config):
            return
        self.note("batch_config", f"{_show(config)} removed; applied as listed below")
        batched = self.batched()
        for i, batch in batched:
            for key, value in values.items():
                self.apply(batch, f"nodes[{i}].batch", key, value, f"batch_config.{key}", "batch",
                           written=config[key])
        if not batched and values:
            self.warn("batch_config", "batch_config applies to batch nodes, and no node has a batch "
                      "config", 'give the node that runs once per item "batch": {"items": ...}, or '
                      "remove batch_config")

    def apply(self, obj: dict[str, Any], where: str, key: str, value: Any, source: str,
              what: str, written: Any = None) -> None:
        """``obj[key] = value`` (coming from ``source``) unless ``obj`` has its own; its own
        valid value that differs is a conflict (an error at that key)."""
        path = key_path(where, key)
        if key not in obj:
            obj[key] = value
            self.note(path, f"{_show(value)} (from {source})")
            return
        have = obj[key]
        if not _VALID[key](have):
            return  # not a valid value at all: the validator says so
        if (ERROR_HANDLING[have] if key == "error_handling" else have) != value:
            origin = source.split(".")[0].split(" ")[0]
            said = _show(value if written is None else written)
            self.error(path, f"{key} is {_show(have)}, but {source} says {said}",
                       f"remove one of them: {origin} sets {key} for every {what} of the flow; to "
                       f"mix, leave {origin} out and set {key} on each {what}")


def _copy(node: Any) -> Any:
    """A node with its own dicts where the aliases may write."""
    if not isinstance(node, dict):
        return node
    node = dict(node)
    if isinstance(node.get("batch"), dict):
        node["batch"] = dict(node["batch"])
    return node


def _items_hint(node: dict[str, Any]) -> str:
    """``(e.g. ... if params.x is the list)`` for a param that is one whole template (not of
    the item: that is what the batch would give)."""
    params = node.get("params")
    for key, value in (params.items() if isinstance(params, dict) else ()):
        if not isinstance(value, str) or "${" not in value:
            continue
        try:
            parts = parse_text(value)
        except ValueError:
            continue
        if len(parts) == 1 and isinstance(parts[0], Ref) and parts[0].root not in ("item", "__index__"):
            return f' (e.g. "items": "{value}" if params.{key} is the list)'
    return ""
