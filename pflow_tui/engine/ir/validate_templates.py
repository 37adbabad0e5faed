"""The validator's checks of templates: what each ``${...}`` refers to, whether it runs
before the node that reads it, aggregates, shell-command quoting, outputs."""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

from ..paths import branch_index, iteration_index
from ..problems import clip, did_you_mean
from ..run.aggregates import AGGREGATE, STATS
from .jsontypes import ARTICLE, iter_strings, json_type, key_path
from .keys import BATCH_OUTPUT_TYPES, OUTPUT_KEYS, PARAM_TYPES
from .reach import upstream_among
from .templates import Ref, TemplateSyntaxError, parse_text
from .validate_base import Checks
from .validate_types import (
    Field,
    base,
    batch_tree,
    compatible,
    output_tree,
    pflow_accepts_path,
    pflow_compatible,
    pflow_infer,
    pflow_param_type,
    walk,
)

#: What people write for a statistic -> its name here.
_STAT_WORDS = {"avg": "mean", "average": "mean", "median": "p50", "total": "sum", "n": "count",
               "len": "count", "length": "count", "minimum": "min", "maximum": "max"}


#: Types pflow refuses unquoted in a shell command, and those that make a union safe.
_SHELL_BLOCKED = {"dict", "object", "list", "array"}
_SHELL_SAFE = {"str", "string", "any"}
#: ``'${x}'``: a template in single quotes, pflow's sign that its JSON text is wanted there.
_QUOTED_TEMPLATE = re.compile(r"'\$\{([^}]+)\}'")

#: pflow's SIMPLE_TEMPLATE_PATTERN: one template, nothing else (``re.match`` with a final ``$``,
#: which also matches before a final newline: ``"${x}\n"`` is ``${x}`` to pflow)
_PFLOW_SIMPLE = re.compile(r"\$\{[a-zA-Z_][\w-]*(?:(?:\[\d+\])?(?:\.[a-zA-Z_][\w-]*(?:\[\d+\])?)*)?\}")

#: A template that is one plain reference, ``${node.key.key}``: parsed without the parser.
_PLAIN_REF = re.compile(r"\$\{([A-Za-z_][\w-]*(?:\.[A-Za-z_][\w-]*)*)\}")



def _type_fix(text: str, is_input: bool, got: str, expected: str) -> str:
    """How to mend a template of the wrong type for its param."""
    want = {"int": "number", "integer": "number", "float": "number", "number": "number",
            "bool": "boolean", "boolean": "boolean", "str": "string", "string": "string",
            "dict": "object", "object": "object", "list": "array", "array": "array"}.get(base(expected))
    if is_input and want:
        return (f"declare the input \"type\": \"{want}\" (it is converted when given), or give the param "
                "a constant")
    return (f"read a field of the right type (e.g. ${{{text}.key}}), convert it in a code node, or give "
            f"the param a constant {expected}")


class TemplateChecks(Checks):
    """Templates in params, batch items and labels, and the flow's outputs."""

    def check_outputs(self, outputs: Any, ids: dict[str, int], inputs: set[str]) -> None:
        if not isinstance(outputs, dict):
            return
        for name, spec in outputs.items():
            where = key_path("outputs", name)
            if not isinstance(spec, dict):
                self.error(where, f"expected an object, got {json_type(spec)}",
                           'declare an output as {"source": "${node.key}"}')
                continue
            self.check_keys(spec, OUTPUT_KEYS, where, "an output")
            source = spec.get("source")
            if isinstance(source, str) and source.startswith("$") and not source.startswith("${"):
                self.warn(key_path(where, "source"), f"{clip(source)!r}: pflow refuses the form $node.key "
                          f"(it reads '{clip(source.split('.')[0])}' as a node id); pflow-tui resolves it",
                          f'write "${{{clip(source[1:])}}}" (or "{clip(source[1:])}") for a flow that '
                          "also runs on pflow")
            if isinstance(source, str):
                text = source if "${" in source else "${" + source.lstrip("$") + "}"
                self.check_template_text(text, f"{where}.source", set(ids), inputs, set())

    def check_templates(self, nodes: list[Any], ids: dict[str, int], inputs: set[str],
                        edges: list[tuple[str, str, str]]) -> None:
        texts: dict[str, list[tuple[str, str, set[str]]]] = {}
        wanted: dict[str, set[str]] = {}  # the names each node's templates refer to
        node_texts, refs_of = self.node_texts, self.refs_of
        for nid, i in ids.items():
            texts[nid] = found = list(node_texts(nodes[i], i))
            names: set[str] = set()
            for _, text, _ in found:
                refs = refs_of(text)
                if isinstance(refs, tuple):
                    names.update(ref.root for ref in refs)
            wanted[nid] = names
        upstream = upstream_among(list(ids), ((a, b) for a, b, _ in edges), wanted)
        all_ids = set(ids)
        for nid, found in texts.items():
            above = upstream.get(nid, set())
            for where, text, local in found:
                self.check_template_text(text, where, above, inputs, local, all_ids=all_ids,
                                         node_id=nid, in_node=True)
                if "$${" in text:
                    self.warn(where, f"{clip(text)!r}: pflow-tui reads '$${{' as the literal text '${{'; "
                              "pflow's validator reads the template after it and refuses the flow "
                              "(an undefined input)", "fine here; the flow runs on pflow-tui only")
                if text.endswith("}\n") and _PFLOW_SIMPLE.fullmatch(text[:-1]):
                    self.warn(where, f"{clip(text)!r}: pflow reads a template followed by one newline as "
                              "the template alone (its pattern's '$' matches before a final newline): "
                              "it drops the newline; pflow-tui keeps the text as written",
                              "fine here; for the same result on pflow, write the newline elsewhere "
                              "(e.g. \"v${x}\\n\", or append it in a shell or code node)")
            node = nodes[ids[nid]]
            if node.get("type") == "workflow":
                self.warn(f"nodes[{ids[nid]}].type", "pflow (fed939d7) refuses a flow with a 'workflow' node "
                          "before running it (\"Unknown node type: 'workflow'\"); pflow-tui runs it",
                          "fine here; the flow runs on pflow-tui only")
            params = node.get("params")
            if node.get("type") == "shell" and isinstance(params, dict):
                self.check_shell_command(params.get("command"), f"nodes[{ids[nid]}].params.command", nid)
            if isinstance(params, dict):
                self.check_param_types(node, params, f"nodes[{ids[nid]}].params", above, inputs)
        self.check_unused_inputs(texts, inputs, all_ids)

    def check_param_types(self, node: dict[str, Any], params: dict[str, Any], where: str,
                          upstream: set[str], inputs: set[str]) -> None:
        """pflow's ``_validate_template_types``: the type of each template in a param (a
        declared input's type, a node output's declared type) must fit the type the param's
        node type declares: ``"timeout": "${name}"`` with a string input is refused. pflow
        refuses a generic type it has no row for (``list[str]`` to a str param): accepted here,
        with a warning."""
        ntype = node.get("type")
        node_type = self.registry.get(ntype) if isinstance(ntype, str) else None
        if node_type is None or not node_type.params:
            return
        local = {"__index__"} if isinstance(node.get("batch"), dict) else set()
        for key, text in params.items():
            if not isinstance(text, str) or "${" not in text:
                continue
            p = node_type.param(key)
            expected = pflow_param_type(node_type, p) if p is not None else None
            if expected is None:
                continue
            refs = self.refs_of(text)
            if not isinstance(refs, tuple):
                continue
            for ref in refs:
                if ref.root in inputs or ref.root in upstream:
                    got = self.template_type(ref)
                elif ref.root in local and not ref.steps:
                    got = "int"  # ${__index__}
                else:
                    continue
                if got is None or got == "any" or pflow_compatible(got, expected):
                    continue
                whose = (f"input '{ref.root}' is declared \"type\": \"{got}\"" if ref.root in inputs
                         else "as its node type declares it")
                if compatible(got, expected):
                    if any(not isinstance(step, str) for step in ref.steps):
                        continue  # ${g.git_status.modified[0]}: check_nested says pflow refuses it
                    self.warn(key_path(where, key), f"${{{ref.text}}} ({got}) given to '{ntype}' param "
                              f"'{key}' ({expected}): pflow's validator refuses a type it has no rule for "
                              f"(\"Type mismatch\"); pflow-tui passes it on",
                              "fine here; for pflow, give it to a param of type any, or turn it into text "
                              "in a code or shell node first")
                    continue
                self.error(key_path(where, key), f"${{{ref.text}}} is {got} ({whose}) but '{ntype}' param "
                           f"'{key}' takes {expected} (pflow refuses it too: \"Type mismatch\")",
                           _type_fix(ref.text, ref.root in inputs, got, expected))

    def check_unused_inputs(self, texts: dict[str, list[tuple[str, str, set[str]]]], inputs: set[str],
                            ids: set[str]) -> None:
        """pflow's ``_validate_unused_inputs``: pflow refuses a flow with a declared input that
        no template in a node uses (an output's ``source`` does not count; nor does
        ``${rows[0]}``, an index right after the name). Harmless here (delete-file even reads
        its ``confirm_delete`` input from the store): a warning."""
        if not inputs:
            return
        used: set[str] = set()
        plain: set[str] = set()
        warned: set[tuple[str, str]] = set()
        for found in texts.values():
            for where, text, local in found:
                refs = self.refs_of(text)
                if not isinstance(refs, tuple):
                    continue
                for ref in refs:
                    root = ref.root
                    if root not in inputs or root in local or (self.namespacing and root in ids):
                        continue
                    used.add(root)
                    if not ref.steps or isinstance(ref.steps[0], str):
                        plain.add(root)
                    elif (where, ref.text) not in warned:
                        warned.add((where, ref.text))
                        self.warn(where, f"${{{ref.text}}}: pflow's validator refuses an index right after "
                                  f"an input's name (it looks for an input named "
                                  f"'{clip(ref.text.split('.')[0])}'); pflow-tui reads it",
                                  f"fine here; for pflow, pass ${{{clip(root)}}} whole and pick the element "
                                  "in a code or shell node")
        for name in sorted(inputs):
            where = key_path("inputs", name)
            if name not in used:
                self.warn(where, f"input '{clip(name)}' is declared but no node's template uses it "
                          "(pflow refuses the flow: \"Declared input(s) never used as template variable\")",
                          f"fine here; for pflow, use it in a node's params as ${{{clip(name)}}} (an "
                          "output's \"source\" does not count), or remove it from \"inputs\"")
            elif name not in plain:
                self.warn(where, f"input '{clip(name)}' is used only as ${{{clip(name)}[...]}}, which "
                          "pflow's validator does not count as a use (it refuses the flow: \"Declared "
                          "input(s) never used as template variable\")",
                          f"fine here; for pflow, also use ${{{clip(name)}}} somewhere")

    def template_type(self, ref: Ref) -> str | None:
        """The type pflow's validator infers for a reference (``infer_template_type``): an
        input's declared type, a node output's declared type (its node type's
        ``output_types``, nested fields too, a batch node's outputs), or None when it cannot
        tell (pflow's quirks included: ``${b.results[0]}`` is not known)."""
        if ref.root in self.input_types:
            t = self.input_types[ref.root]
            return t if isinstance(t, str) and not ref.steps else None
        node = self.nodes.get(ref.root)
        if node is None or not self.namespacing or not ref.steps or not isinstance(ref.steps[0], str):
            return None
        tree = self.tree_of(ref.root)
        if tree is None:
            return None
        return pflow_infer(tree, ref.steps)

    def tree_of(self, node_id: str) -> dict[str, Field] | None:
        """The declared outputs of node ``node_id`` (None: its type declares none)."""
        node = self.nodes.get(node_id, {})
        ntype = node.get("type")
        node_type = self.registry.get(ntype) if isinstance(ntype, str) else None
        if isinstance(node.get("batch"), dict):
            key = f"batch:{ntype}"
            if key not in self._trees:
                self._trees[key] = batch_tree(node_type)
            return self._trees[key]
        if node_type is None or not node_type.output_types:
            return None
        if ntype not in self._trees:
            self._trees[ntype] = output_tree(node_type)
        return self._trees[ntype]

    def check_shell_command(self, command: Any, where: str, node_id: str) -> None:
        """pflow refuses a dict or list template unquoted in a shell command (its JSON text
        would break the command's quoting); ``'${x}'`` in single quotes is allowed."""
        if not isinstance(command, str) or "${" not in command:
            return
        refs = self.refs_of(command)
        if not isinstance(refs, tuple):
            return  # reported by check_templates
        quoted = set(_QUOTED_TEMPLATE.findall(command))
        blocked: list[tuple[str, str]] = []
        for ref in refs:
            t = self.template_type(ref)
            if ref.text in quoted or t is None:
                continue
            bases = [part.strip().split("[")[0] for part in t.split("|")]
            if any(b in _SHELL_SAFE for b in bases):
                continue
            bad = next((b for b in bases if b in _SHELL_BLOCKED), None)
            if bad is not None and (ref.text, bad) not in blocked:
                blocked.append((ref.text, bad))
        if len(blocked) == 1:
            text, kind = blocked[0]
            self.error(where, f"${{{text}}} is {ARTICLE.get(PARAM_TYPES.get(kind, kind), 'a')} "
                       f"{PARAM_TYPES.get(kind, kind)}: its JSON text in a shell command breaks the "
                       "command's quoting (pflow refuses it too)",
                       f"give it on stdin (\"stdin\": \"${{{text}}}\"), use one of its fields "
                       f"(${{{text}.key}}), or quote it as '${{{text}}}' to take its JSON text as one word")
        elif blocked:
            listed = ", ".join(f"${{{t}}} ({PARAM_TYPES.get(k, k)})" for t, k in blocked)
            self.error(where, f"multiple structured data templates in command: {listed}: their JSON "
                       "text breaks the command's quoting (pflow refuses it too)",
                       "give one on stdin and write the others to files first, use their fields, or quote "
                       "each as '${...}' to take its JSON text as one word")

    def check_node_ref(self, ref: Ref, where: str) -> None:
        """``${node.key}`` names an output the node writes, as pflow's validator checks:
        ``${node}`` alone and a key the node type does not declare are errors; ``error`` on
        a type that does not declare it is a warning (pflow refuses it, pflow-tui writes it
        when the node fails)."""
        node = self.nodes.get(ref.root, {})
        ntype = node.get("type")
        node_type = self.registry.get(ntype) if isinstance(ntype, str) else None
        batched = isinstance(node.get("batch"), dict)
        if not ref.steps:
            if ref.every or ref.visit is not None:
                return  # ${a[*]}, ${a#2}: its runs (pflow-tui)
            if batched:
                example = "results"
            else:
                example = node_type.outputs[0] if node_type is not None and node_type.outputs else "key"
            self.error(where, f"${{{ref.text}}} is node '{ref.root}' itself, not one of its outputs "
                       "(pflow refuses it too)", f"name an output: ${{{ref.root}.{example}}}")
            return
        key = ref.steps[0]
        if not isinstance(key, str):
            return
        if batched:
            if key in BATCH_OUTPUT_TYPES:
                self.check_nested(ref, where)
                return
            if iteration_index(key) is not None or ref.every:
                return
            declared, what = list(BATCH_OUTPUT_TYPES), "a batch node"
        else:
            if node_type is None or not node_type.output_types:
                return  # output types not declared (pflow-tui's own types, plugins): not checked
            declared = self._declared.get(node_type.name)
            if declared is None:  # once per node type: a flow of 100,000 nodes has a few
                declared = self._declared[node_type.name] = [
                    k for k, _ in node_type.output_types if "." not in k and "[" not in k]
            if key in declared:
                self.check_nested(ref, where)
                return
            what = f"a node of type '{ntype}'"
        if branch_index(key) is not None and any(g.fanout == ref.root for g in self.groups):
            return
        if key == "error":
            self.warn(where, f"${{{ref.text}}}: {what} does not declare an output 'error' "
                      "(pflow's validator refuses this reference; pflow-tui writes 'error' when the "
                      "node fails)", "fine here; for pflow, read one of its declared outputs: "
                      + ", ".join(declared[:6]))
            return
        if node_type is not None and not batched and key in node_type.outputs:
            self.warn(where, f"${{{ref.text}}}: {what} writes '{key}' but does not declare it "
                      "(pflow's validator refuses this reference; pflow writes it too)",
                      "fine here; for pflow, read one of its declared outputs: " + ", ".join(declared[:6]))
            return
        self.error(where, f"${{{ref.text}}}: node '{ref.root}' is {what}, which has no output '{clip(key)}' "
                   "(pflow refuses it too)",
                   did_you_mean(key, declared, "its outputs") or f"its outputs: {', '.join(declared[:8])}")

    def check_nested(self, ref: Ref, where: str) -> None:
        """A path below a declared output (``${g.git_status.branch}``, ``${b.results[0].echo}``)
        must follow the structure its node type declares, as pflow's validator checks; where
        pflow's validator refuses a path pflow-tui reads (an index into a declared list, such as
        ``${log.commits[0].sha}``), a warning."""
        if len(ref.steps) < 2 or ref.agg_at is not None or ref.every:
            return
        tree = self.tree_of(ref.root)
        if tree is None:
            return
        got = walk(tree, ref.steps)
        if got.bad is not None:
            fix = (did_you_mean(got.bad, got.keys, "its keys") or f"its keys: {', '.join(got.keys[:8])}"
                   if got.keys else f"read ${{{ref.text.rsplit('.', 1)[0]}}} itself")
            self.error(where, f"${{{ref.text}}}: {got.what} (pflow refuses it too)", fix)
        elif not pflow_accepts_path(tree, ref.steps):
            self.warn(where, f"${{{ref.text}}}: pflow's validator refuses this path (it follows an "
                      "index only into a batch's results or an output declared \"array\" or text); "
                      "pflow-tui reads it",
                      "fine here; for pflow, pass the whole list on (e.g. to a code or shell node) "
                      "and pick the element there")

    @staticmethod
    def node_texts(node: dict[str, Any], i: int) -> Iterator[tuple[str, str, set[str]]]:
        """(where, text, batch-local names) of every template (a string with ``${``) in a
        node's batch items and params."""
        local: set[str] = set()
        batch = node.get("batch")
        if batch is not None:  # a bad batch config is reported already: assume its alias
            alias = batch.get("as") if isinstance(batch, dict) else None
            local = {alias if isinstance(alias, str) else "item", "__index__"}
        if isinstance(batch, dict) and isinstance(batch.get("items"), (str, list, dict)):
            for where, text in iter_strings(batch["items"], f"nodes[{i}].batch.items"):
                if "${" in text:
                    yield where, text, set()
        label = batch.get("label") if isinstance(batch, dict) else None
        if isinstance(label, str) and "${" in label:
            yield f"nodes[{i}].batch.label", label, local
        params = node.get("params") or {}
        if node.get("type") == "workflow" and isinstance(params, dict):
            params = {k: v for k, v in params.items() if k != "workflow_ir"}  # the child's own
        if isinstance(params, dict) and not any(isinstance(v, (dict, list)) for v in params.values()):
            for key, text in params.items():  # flat params (most nodes): no walk needed
                if isinstance(text, str) and "${" in text:
                    yield key_path(f"nodes[{i}].params", key), text, local
            return
        for where, text in iter_strings(params, f"nodes[{i}].params"):
            if "${" in text:
                yield where, text, local

    def check_aggregate(self, ref: Ref, where: str, node_id: str = "") -> None:
        """``${node.aggregate.STAT.key}``: a batch or fan-out node, a known statistic, a key."""
        node = self.nodes.get(ref.root, {})
        fanouts = {g.fanout: g for g in self.groups}
        group = fanouts.get(ref.root)
        if group is not None and node_id in group.members and not isinstance(node.get("batch"), dict):
            self.error(where, f"${{{ref.text}}}: node '{node_id}' is in a branch of parallel_group "
                       f"'{group.name}', whose results exist only after all its branches ended",
                       f"read it at the join '{group.join}' or after it")
            return
        if not isinstance(node.get("batch"), dict) and ref.root not in fanouts:
            node_type = self.registry.get(node.get("type")) if isinstance(node.get("type"), str) else None
            if node_type is None or not node_type.outputs or AGGREGATE in node_type.outputs:
                return  # outputs not declared: it may have a key 'aggregate' of its own
            joined = next((g for g in self.groups if g.join == ref.root), None)
            rest = ref.text.split(".aggregate", 1)[1]
            if joined is not None:
                fix = (f"aggregate over the group at its fan-out node: ${{{joined.fanout}.aggregate{rest}}} "
                       "(over each branch's last output)")
            else:
                batched = sorted(n for n, v in self.nodes.items() if isinstance(v.get("batch"), dict))
                fix = (f"give '{ref.root}' a \"batch\" config, or aggregate a batch node"
                       + (f" ({', '.join(batched[:5])})" if batched else ""))
            self.error(where, f"${{{ref.text}}}: '{ref.root}' is not a batch node or the fan-out "
                       "node of a parallel group; aggregates run over their results", fix)
            return
        stat = ref.steps[1] if len(ref.steps) > 1 else None
        if not isinstance(stat, str) or stat not in STATS:
            close = ""
            if isinstance(stat, str):
                close = (f"did you mean '{_STAT_WORDS[stat.lower()]}'?" if stat.lower() in _STAT_WORDS
                         else did_you_mean(stat, STATS))
            what = f"'{stat}' is not a statistic" if isinstance(stat, str) else \
                "aggregate needs a statistic after it"
            self.error(where, f"${{{ref.text}}}: {what}",
                       (f"{close} " if close.startswith("did") else "")
                       + f"use one of {', '.join(STATS)}, e.g. ${{{ref.root}.aggregate.mean.value}}")
        elif len(ref.steps) == 2 and stat != "count":
            self.error(where, f"${{{ref.text}}}: aggregate.{stat} needs the key of a number in each "
                       "result", f"name it, e.g. ${{{ref.root}.aggregate.{stat}.value}} for the 'value' "
                       "of each result (only count needs no key)")

    def refs_of(self, text: str) -> tuple[Ref, ...] | TemplateSyntaxError | RecursionError:
        """The references of a template text, or why it does not parse (once per text)."""
        got = self._refs.get(text)
        if got is None and (m := _PLAIN_REF.fullmatch(text)):  # "${a.b.c}": most templates
            steps = tuple(m[1].split("."))
            got = (Ref(m[1], steps[0], steps[1:], None, False,
                       steps.index(AGGREGATE, 1) - 1 if AGGREGATE in steps[1:] else None),)
            self._refs[text] = got
        if got is None:
            try:  # what compile_value(text).refs gives, without building the resolver
                got = tuple(r for part in parse_text(text) if isinstance(part, Ref) for r in part.refs())
            except (TemplateSyntaxError, RecursionError) as exc:  # recursion: '${' nested deep
                got = exc
            self._refs[text] = got
        return got

    def check_template_text(self, text: str, where: str, upstream: set[str], inputs: set[str],
                            local: set[str], *, all_ids: set[str] | None = None,
                            node_id: str = "", in_node: bool = False) -> None:
        if "${" not in text:
            return
        refs = self.refs_of(text)
        if isinstance(refs, TemplateSyntaxError):
            self.error(where, f"bad template {clip(text)!r}: {refs} (at character {refs.offset})",
                       "templates look like ${node.key}, ${input_name} or ${node.list[0].key}")
            return
        if isinstance(refs, RecursionError):  # the template parser recurses once per nested ${...}
            self.error(where, f"template {clip(text)!r} nests '${{' too deeply",
                       "use at most one nested index, like ${node.list[${__index__}].key}")
            return
        all_ids = upstream if all_ids is None else all_ids
        for ref in refs:
            root = ref.root
            if root in local or root in inputs:
                continue
            if not self.namespacing and root in all_ids:
                self.error(where, f"${{{ref.text}}}: with \"enable_namespacing\": false a node's outputs "
                           f"are not kept under its id '{root}' (pflow refuses this reference too)",
                           f"remove \"enable_namespacing\": false to read ${{{ref.text}}}")
                continue
            if root in upstream:
                if ref.agg_at == 0:
                    self.check_aggregate(ref, where, node_id)
                elif in_node:
                    self.check_node_ref(ref, where)
                continue
            if root in all_ids:
                group = self.sibling_group(root, node_id)
                if group is not None:
                    self.error(where, f"${{{ref.text}}}: node '{root}' runs in another branch of "
                               f"parallel_group '{group.name}'; branches never see each other's "
                               "outputs", f"read it after the join '{group.join}' (or through the "
                               f"merge), or move '{root}' before '{group.fanout}'")
                    continue
                why = ("a node cannot read its own outputs" if root == node_id
                       else f"node '{root}' does not run before this one")
                self.error(where, f"${{{ref.text}}}: {why}",
                           f"add an edge path from '{root}' to this node, or use an input instead")
                continue
            if root == "__index__" or (root == "item" and not local):
                self.error(where, f"${{{ref.text}}}: {root} only exists in a batch node",
                           "add a \"batch\" config to this node")
                continue
            if root in ("input", "inputs"):  # old pflow examples; never valid at IR 0.1.0
                name = ref.steps[0] if ref.steps and isinstance(ref.steps[0], str) else "name"
                self.error(where, f"${{{ref.text}}}: templates have no '{root}' object",
                           f"declare \"{name}\" under \"inputs\" and write ${{{name}}}")
                continue
            known = sorted(all_ids | inputs | local)
            hint = did_you_mean(root, known, "known names")
            if not inputs:
                declare = f"declare \"{root}\" under \"inputs\" if it comes from the user"
                hint = f"{hint} (or {declare})" if hint else declare
            self.error(where, f"${{{ref.text}}}: '{root}' is not a node, an input or a batch alias", hint)
