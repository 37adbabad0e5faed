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

#: What people write for a statistic -> its name here.
_STAT_WORDS = {"avg": "mean", "average": "mean", "median": "p50", "total": "sum", "n": "count",
               "len": "count", "length": "count", "minimum": "min", "maximum": "max"}


#: Types pflow refuses unquoted in a shell command, and those that make a union safe.
_SHELL_BLOCKED = {"dict", "object", "list", "array"}
_SHELL_SAFE = {"str", "string", "any"}
#: ``'${x}'``: a template in single quotes, pflow's sign that its JSON text is wanted there.
_QUOTED_TEMPLATE = re.compile(r"'\$\{([^}]+)\}'")

#: A template that is one plain reference, ``${node.key.key}``: parsed without the parser.
_PLAIN_REF = re.compile(r"\$\{([A-Za-z_][\w-]*(?:\.[A-Za-z_][\w-]*)*)\}")



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
            node = nodes[ids[nid]]
            params = node.get("params")
            if node.get("type") == "shell" and isinstance(params, dict):
                self.check_shell_command(params.get("command"), f"nodes[{ids[nid]}].params.command", nid)

    def template_type(self, ref: Ref) -> str | None:
        """The type pflow's validator infers for a reference (``infer_template_type``): an
        input's declared type, a node output's declared type (its node type's
        ``output_types``, a batch node's outputs), or None when it cannot tell."""
        if ref.root in self.input_types:
            t = self.input_types[ref.root]
            return t if isinstance(t, str) and not ref.steps else None
        node = self.nodes.get(ref.root)
        if node is None or not self.namespacing or not ref.steps or not isinstance(ref.steps[0], str):
            return None
        key = ref.steps[0]
        if isinstance(node.get("batch"), dict):
            return BATCH_OUTPUT_TYPES.get(key) if len(ref.steps) == 1 else None
        node_type = self.registry.get(node.get("type")) if isinstance(node.get("type"), str) else None
        if node_type is None:
            return None
        if len(ref.steps) > 1 and all(not isinstance(s, str) for s in ref.steps[1:]):
            return None  # ${n.list[0]}: an element, whose type is not declared
        path = ".".join(s for s in ref.steps if isinstance(s, str))
        return dict(node_type.output_types).get(path)

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
            if key in BATCH_OUTPUT_TYPES or iteration_index(key) is not None or ref.every:
                return
            declared, what = list(BATCH_OUTPUT_TYPES), "a batch node"
        else:
            if node_type is None or not node_type.output_types:
                return  # output types not declared (pflow-tui's own types, plugins): not checked
            declared = self._declared.get(node_type.name)
            if declared is None:  # once per node type: a flow of 100,000 nodes has a few
                declared = self._declared[node_type.name] = list(dict.fromkeys(
                    [*node_type.outputs, *(k for k, _ in node_type.output_types if "." not in k)]))
            if key in declared:
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
        self.error(where, f"${{{ref.text}}}: node '{ref.root}' is {what}, which has no output '{clip(key)}' "
                   "(pflow refuses it too)",
                   did_you_mean(key, declared, "its outputs") or f"its outputs: {', '.join(declared[:8])}")

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
