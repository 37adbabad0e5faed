"""The validator's checks of nodes and batches: keys, node types, params, executors,
batch configs, items sources, inputs and rate limits."""

from __future__ import annotations

import re
from collections.abc import Collection, Mapping
from typing import Any

from ..nodes.base import CLUSTER, PROCESS, THREAD, NodeType, can_run_in_process
from ..problems import clip, did_you_mean
from .items import SOURCE_KEYS
from .jsontypes import ARTICLE, SEGMENT_RE, is_json_type, json_type, key_path, type_fix, value_text
from .keys import (
    BATCH_KEYS,
    EXECUTORS,
    ID_RE,
    INPUT_KEYS,
    INPUT_TYPES,
    LIMIT_KEYS,
    NODE_KEYS,
    PARAM_TYPES,
    RATE_LIMIT_KEY,
)
from .templates import TemplateSyntaxError, parse_text
from .validate_base import Checks

#: pflow's node types that pflow-tui does not run, and why (docs/compatibility.md)
_GITHUB = "it calls GitHub's API (through the gh CLI): it needs the network and a GitHub login"
UNSUPPORTED = {
    "claude-code": "it drives the Claude Code agent (many turns with tools that edit files, a session "
                   "to resume) over Anthropic's API: it needs the network, an API key and the Claude "
                   "Code CLI, and an llm node (one completion, no tools) would not do its work",
    "github-create-pr": _GITHUB, "github-get-issue": _GITHUB, "github-list-issues": _GITHUB,
    "github-list-prs": _GITHUB,
}
_INSTEAD = {"github-create-pr": "gh pr create ...", "github-get-issue": "gh issue view N --json ...",
            "github-list-issues": "gh issue list --json ...", "github-list-prs": "gh pr list --json ...",
            "claude-code": "claude -p ..."}


_WORKFLOW_FIX = ('leave "executor" out (its child\'s nodes take their own executors), or use '
                 '"cluster": each item runs its whole child flow on a Dask worker')

class NodeChecks(Checks):
    """Nodes, their params and batch configs; inputs; the shape of ``rate_limits``."""

    def check_nodes(self, nodes: list[Any]) -> dict[str, int]:
        ids: dict[str, int] = {}
        for i, node in enumerate(nodes):
            where = f"nodes[{i}]"
            if not isinstance(node, dict):
                self.error(where, f"expected an object, got {json_type(node)}",
                           'a node looks like {"id": "x", "type": "shell", "params": {...}}')
                continue
            ntype = node.get("type")
            node_type = self.registry.get(ntype) if isinstance(ntype, str) else None
            self.check_keys(node, NODE_KEYS, where, "a node",
                            lambda key, t=node_type: (f'move "{key}" into "params": '
                                                      f'"params": {{"{key}": ...}}')
                            if t is not None and t.param(key) else "")
            nid = node.get("id")
            if isinstance(nid, str) and self.check_id(nid, where, ids):
                ids[nid] = i
                self.nodes[nid] = node
            if isinstance(ntype, str):
                if node_type is None:
                    self.unknown_type(ntype, f"{where}.type")
                elif isinstance(node.get("params", {}), dict) and not (
                        "params" not in node and any(did_you_mean(k, ["params"]).startswith("did")
                                                     for k in node if k not in NODE_KEYS)):
                    self.check_params(node.get("params", {}), node_type, where,
                                      node.get("batch") is not None, beside=node.keys())
                if node_type is not None:
                    self.check_executor(node.get("executor"), node_type, where)
                if node_type is not None and ntype.startswith("mcp-"):
                    self.check_mcp_transport(ntype, f"{where}.type")
            if isinstance(node.get("batch"), dict):
                self.check_batch(node["batch"], f"{where}.batch")
        return ids

    def check_id(self, nid: str, where: str, ids: Mapping[str, int]) -> bool:
        """Whether a node's id is valid and new (else the problem is reported)."""
        if not ID_RE.match(nid):
            self.error(f"{where}.id", f"'{clip(nid)}' is not a valid node id",
                       "use letters, digits, '_' and '-', starting with a letter or '_'")
            return False
        if nid in ids:
            self.error(f"{where}.id", f"duplicate node id '{clip(nid)}' (also nodes[{ids[nid]}])",
                       "give every node a unique id")
            return False
        return True

    def unknown_type(self, ntype: str, where: str) -> None:
        """A node type the registry does not know: a broken plugin's, an MCP tool without a
        server, or a typo."""
        # imported here for start-up time: see load._build_flow (importlib.metadata)
        from ..registry import plugin_errors

        broken = plugin_errors().get(ntype)
        if broken:
            self.error(where, f"node type '{clip(ntype)}' comes from a plugin "
                       f"that failed to load ({broken})",
                       "fix or reinstall the package that provides it")
        elif ntype in UNSUPPORTED:
            self.error(where, f"'{ntype}' is a pflow node type that pflow-tui does not run: "
                       f"{UNSUPPORTED[ntype]}", "remove the node, or do its work in a shell node "
                       f"({_INSTEAD.get(ntype, 'a command line tool')}); see docs/compatibility.md, "
                       "\"Node types pflow-tui does not run\"")
        elif ntype.startswith("mcp-"):
            # imported here for start-up time: the MCP module loads for mcp- types only
            from ..nodes.mcp import config_path

            self.error(where, f"unknown node type '{clip(ntype)}': no MCP server "
                       f"of {config_path()} fits it (mcp-<server>-<tool>)",
                       'add the server under "mcpServers" in that file (pflow\'s format: '
                       '{"type": "stdio", "command": ..., "args": [...]})')
        else:
            self.error(where, f"unknown node type '{clip(ntype)}'",
                       did_you_mean(ntype, self.registry, "known types"))

    def check_mcp_transport(self, ntype: str, where: str) -> None:
        """An MCP tool node whose server speaks HTTP: refused before running (stdio only)."""
        # imported here for start-up time: the MCP module loads for mcp- types only
        from ..nodes.mcp import config_path, unsupported_transport

        kind = unsupported_transport(ntype)
        if kind is not None:
            self.error(where, f"'{clip(ntype)}': its MCP server is a \"{clip(kind)}\" server in "
                       f"{config_path()}; pflow-tui runs MCP servers over stdio only (an HTTP server "
                       "needs the network)", "configure the server as {\"type\": \"stdio\", \"command\": "
                       "..., \"args\": [...]} if it can run locally, or call its HTTP API with an http node")

    def check_executor(self, executor: Any, node_type: NodeType, where: str) -> None:
        """The node's ``executor`` (if any) is one its type can run on."""
        if executor is None:
            why = can_run_in_process(node_type) if node_type.cpu_bound else None
            if why:  # a plugin's CPU-bound type that a worker process could not run
                self.error(f"{where}.type", f"node type '{node_type.name}' is CPU-bound, but cannot "
                           f"run in a worker process: {why}",
                           'add "executor": "thread" to the node, or fix the plugin')
            return
        if not isinstance(executor, str):
            return  # reported by check_keys
        where = f"{where}.executor"
        if executor not in EXECUTORS:
            fix = did_you_mean(executor, EXECUTORS, "one of")
            if executor in ("inline", "loop", "async", "default"):
                fix = (f"leave \"executor\" out: '{node_type.name}' nodes then run where their type "
                       f"says ({node_type.executor})")
            self.error(where, f"'{executor}' is not an executor", fix)
        elif executor == PROCESS and (why := can_run_in_process(node_type)):
            self.error(where, f"'{node_type.name}' nodes cannot run in a worker process: {why}",
                       _WORKFLOW_FIX if node_type.name == "workflow" else "leave \"executor\" out")
        elif executor == CLUSTER and node_type.name != "workflow" \
                and (why := can_run_in_process(node_type)):  # (a workflow's child runs whole there)
            self.error(where, f"'{node_type.name}' nodes cannot run on a cluster: {why}",
                       "leave \"executor\" out")
        elif executor == THREAD and (node_type.is_async or node_type.name == "workflow"):
            self.error(where, f"'{node_type.name}' nodes run on the event loop (they wait without "
                       "blocking it): a thread would not make them faster",
                       _WORKFLOW_FIX if node_type.name == "workflow"
                       else "leave \"executor\" out, or use \"process\" for CPU-heavy work")

    def check_params(self, params: dict[str, Any], node_type: NodeType, where: str,
                     batched: bool, beside: Collection[str] = ()) -> None:
        """The params a node type takes, their types and values; ``beside``: the node's own
        keys (a required param written there is reported as misplaced, not as missing)."""
        names = self._param_names.get(node_type.name)
        if names is None:  # in order; a dict for membership; once per node type
            names = self._param_names[node_type.name] = {p.name: None for p in node_type.params}
        if RATE_LIMIT_KEY in params:
            self.check_rate_limit_key(params[RATE_LIMIT_KEY], node_type,
                                      key_path(f"{where}.params", RATE_LIMIT_KEY))
        unknown = [key for key in params if names and key not in names and key != RATE_LIMIT_KEY]
        for p in node_type.params:
            if (p.required and p.name not in params  # else: "move it" (check_nodes)
                    and (p.name not in beside or p.name in NODE_KEYS)):
                typo = [k for k in unknown if did_you_mean(k, [p.name]).startswith("did")]
                fix = (f"rename \"{typo[0]}\" to \"{p.name}\"" if typo else
                       f"add \"{p.name}\" to params" + (f" ({p.description})" if p.description else ""))
                self.error(f"{where}.params", f"'{node_type.name}' needs param '{p.name}'", fix)
        for key in unknown:
            self.warn(key_path(f"{where}.params", key), f"'{node_type.name}' has no param '{clip(key)}'",
                      did_you_mean(key, names, "its params"))
        for p in node_type.params:
            value = params.get(p.name)
            expected = PARAM_TYPES.get(p.type)
            if p.type == "text" and isinstance(value, (dict, list)):
                continue  # taken as JSON data (write-file writes it as JSON)
            if (expected is not None and value is not None and not is_json_type(value, expected)
                    and not (isinstance(value, str) and "${" in value)):  # a template: at run time
                self.error(key_path(f"{where}.params", p.name),
                           f"'{node_type.name}' param '{p.name}' must be {ARTICLE[expected]} {expected}, got "
                           f"{json_type(value)} {value_text(value)}",
                           type_fix(p.name, expected, value)
                           + ' (or a template "${node.key}" whose value is checked when the node runs)')
                continue
            if p.choices and isinstance(value, str) and "${" not in value and value not in p.choices:
                why_missing = getattr(p.choices, "why_missing", None)
                broken = why_missing(value) if why_missing else None
                if broken:  # e.g. a merge strategy whose plugin is broken
                    self.error(key_path(f"{where}.params", p.name),
                               f"{p.name} '{value}' of '{node_type.name}' comes from a plugin that "
                               f"failed to load ({broken})", "fix or reinstall the package that provides it")
                    continue
                self.error(key_path(f"{where}.params", p.name),
                           f"'{value}' is not a {p.name} of '{node_type.name}'",
                           did_you_mean(value, p.choices, "one of"))
        if node_type.check is not None:
            for key, what, fix in node_type.check(params):
                self.error(key_path(f"{where}.params", key) if "." not in key else f"{where}.params.{key}",
                           what, fix)

    def check_rate_limit_key(self, key: Any, node_type: NodeType, where: str) -> None:
        if node_type.name == "workflow":
            self.error(where, "a workflow node cannot be rate limited (it would hold the limit "
                       "while its own nodes wait for it)",
                       "put rate_limit_key on the nodes inside the nested flow")
        elif not isinstance(key, str) or not key.strip() or "${" in key:
            self.error(where, f"expected the name of a rate limit, got {clip(repr(key))}",
                       'a fixed name, e.g. "rate_limit_key": "openai", with an entry in "rate_limits"')

    def check_rate_limits(self, limits: Any) -> None:
        """The shape of ``rate_limits``; whether its keys are used is checked with the
        nested flows (:func:`rate_limit_problems`)."""
        if not isinstance(limits, dict):
            return
        for key, spec in limits.items():
            where = key_path("rate_limits", key)
            if key == "workflow":
                self.error(where, "workflow nodes cannot be rate limited (a nested flow's node "
                           "would wait for a limit its workflow node holds)",
                           "limit the node types inside the nested flow instead")
                continue
            if not isinstance(spec, dict):
                self.error(where, f"expected an object, got {json_type(spec)}",
                           'a limit looks like {"max_concurrent": 5, "per_second": 10}')
                continue
            self.check_keys(spec, LIMIT_KEYS, where, "a rate limit")
            if not spec:
                self.error(where, "the limit sets none of max_concurrent, per_second, per_minute",
                           'set at least one, e.g. {"max_concurrent": 5}')
            for name in LIMIT_KEYS:
                v = spec.get(name)
                if isinstance(v, int) and not isinstance(v, bool) and v < 1:
                    fix = ("leave it out (no limit on that) or set a whole number from 1"
                           + ("; for fewer than one call per second use per_minute"
                              if name == "per_second" else ""))
                    self.error(key_path(where, name), f"must be at least 1, got {v}", fix)
                elif isinstance(v, float):
                    self.error(key_path(where, name), f"must be a whole number, got {v}",
                               ("for fewer than one call per second use per_minute, e.g. "
                                f'"per_minute": {max(1, int(v * 60))}') if v < 1 else
                               f"use {int(v)}" if v.is_integer() else f"use {int(v)} or {int(v) + 1}")

    def check_batch(self, batch: dict[str, Any], where: str) -> None:
        self.check_keys(batch, BATCH_KEYS, where, "a batch config")
        items = batch.get("items")
        if isinstance(items, str):
            try:
                whole = [type(p).__name__ for p in parse_text(items.strip())] == ["Ref"]
            except TemplateSyntaxError:
                whole = True  # reported by check_templates
            if not whole:
                self.error(f"{where}.items", "must be exactly one template like \"${node.key}\" or an array",
                           "write \"items\": \"${some_node.list_key}\", or list the items inline")
        elif isinstance(items, list) and not items:
            self.error(f"{where}.items", "an inline items array must not be empty",
                       "list at least one item, or reference a list with a template")
        elif isinstance(items, dict):
            self.check_items_source(items, f"{where}.items")
        alias = batch.get("as")
        if isinstance(alias, str) and not re.fullmatch(r"[A-Za-z_]\w*", alias):
            self.error(f"{where}.as", f"'{alias}' is not an identifier", "use a name like item or file")
        eh = batch.get("error_handling")
        if isinstance(eh, str) and eh not in ("fail_fast", "continue"):
            self.error(f"{where}.error_handling", f"'{eh}' is not fail_fast or continue",
                       did_you_mean(eh, ["fail_fast", "continue"]))
        for key, lo, hi in (("max_concurrent", 1, 100), ("max_retries", 1, 10)):
            v = batch.get(key)
            if isinstance(v, int) and not isinstance(v, bool) and not lo <= v <= hi:
                self.error(f"{where}.{key}", f"must be between {lo} and {hi}, got {v}",
                           f"set {key} to a value from {lo} to {hi}")
        size = batch.get("batch_size")
        if is_json_type(size, "integer") and size < 1:
            self.error(f"{where}.batch_size", f"must be at least 1, got {size}",
                       "leave it out, or set how many items to hold in memory at once, e.g. 1000")
        rw = batch.get("retry_wait")
        if is_json_type(rw, "number") and rw < 0:
            self.error(f"{where}.retry_wait", f"must be 0 or more seconds, got {rw}",
                       "set retry_wait to 0 (retry at once) or the seconds to wait between attempts")

    def check_items_source(self, items: dict[str, Any], where: str) -> None:
        """``{"lines_of": TEXT}``, ``{"jsonl_of": TEXT}``, ``{"lines_file": PATH}`` or
        ``{"jsonl_file": PATH}``: exactly one key, a string."""
        keys = list(items)
        example = 'e.g. {"jsonl_file": "rows.jsonl"} or {"lines_of": "${list.stdout}"}'
        if not keys:
            self.error(where, "an items object needs a source", f"give one of "
                       f"{', '.join(SOURCE_KEYS)}: {example}")
            return
        for key in keys:
            if key not in SOURCE_KEYS:
                kind = "jsonl" if "json" in key.lower() else "lines" if "line" in key.lower() else ""
                fix = (f'for a file write "{kind}_file": "path", for a text "{kind}_of": "${{node.stdout}}"'
                       if kind else did_you_mean(key, SOURCE_KEYS, "items sources")
                       or f"use one of {', '.join(SOURCE_KEYS)}: {example}")
                self.error(key_path(where, key), f"unknown key '{clip(key)}' in an items object", fix)
        known = [k for k in keys if k in SOURCE_KEYS]
        if len(known) > 1:
            self.error(where, f"an items object has one source, got {len(known)} "
                       f"({', '.join(known)})", "keep one of them (a batch reads one list of items)")
        for key in known:
            value = items[key]
            if not isinstance(value, str):
                self.error(key_path(where, key), f"expected string, got {json_type(value)}",
                           f'{key} is {SOURCE_KEYS[key]}: write it as a "string"')
            elif not value.strip():
                self.error(key_path(where, key), "must not be empty",
                           f'{key} is {SOURCE_KEYS[key]}')

    def check_inputs(self, inputs: Any) -> set[str]:
        if not isinstance(inputs, dict):
            return set()
        for name, spec in inputs.items():
            where = key_path("inputs", name)
            if not SEGMENT_RE.fullmatch(name):
                self.error(where, f"'{clip(name)}' is not a valid input name",
                           "use letters, digits, '_' and '-'")
            if not isinstance(spec, dict):
                self.error(where, f"expected an object, got {json_type(spec)}",
                           'declare an input as {"type": "string", "required": true}')
                continue
            self.check_keys(spec, INPUT_KEYS, where, "an input")
            t = spec.get("type")
            if isinstance(t, str) and t not in INPUT_TYPES:
                self.error(f"{where}.type", f"unknown input type '{t}'", did_you_mean(t, INPUT_TYPES))
            elif t in INPUT_TYPES and "default" in spec and spec["default"] is not None \
                    and not is_json_type(spec["default"], t):
                # pflow does not check defaults, so flows written for it may have such a default
                self.warn(f"{where}.default", f"the default is {json_type(spec['default'])}, "
                          f"but the input's type is {t}", type_fix("default", t, spec["default"]))
        return set(inputs)
