"""The validator's checks of the graph: edges, parallel groups, default-edge loops and
nodes never reached."""

from __future__ import annotations

from typing import Any

from ..problems import clip, did_you_mean
from .groups import find_groups, flow_edges, has_groups
from .jsontypes import json_type, key_path
from .keys import EDGE_KEYS, GROUP_KEYS
from .reach import default_loop, find_cycle, reachable
from .validate_base import Checks


class GraphChecks(Checks):
    """Edges, parallel groups and what the graph lets run."""

    def check_edges(self, edges: list[Any], ids: dict[str, int]) -> list[tuple[str, str, str]]:
        valid: list[tuple[str, str, str]] = []
        seen: dict[tuple[str, str], int] = {}
        for i, edge in enumerate(edges):
            where = f"edges[{i}]"
            if not isinstance(edge, dict):
                self.error(where, f"expected an object, got {json_type(edge)}",
                           'an edge looks like {"from": "a", "to": "b"}')
                continue
            self.check_keys(edge, EDGE_KEYS, where, "an edge")
            ok = True
            for end in ("from", "to"):
                nid = edge.get(end)
                if isinstance(nid, str) and ids and nid not in ids:
                    self.error(f"{where}.{end}", f"no node has id '{clip(nid)}'",
                               did_you_mean(nid, ids, "node ids"))
                    ok = False
                elif not isinstance(nid, str):
                    ok = False
            action = edge.get("action", "default")
            if not isinstance(action, str):
                continue
            group = edge.get("parallel_group")
            if ok:
                key = (edge["from"], action)
                if key in seen and group is not None and edges[seen[key]].get("parallel_group") == group:
                    valid.append((edge["from"], edge["to"], action))
                elif key in seen:
                    self.error(where, f"node '{edge['from']}' already has a '{action}' edge "
                               f"(edges[{seen[key]}])",
                               "give each edge from a node its own action; one action leads to one node")
                else:
                    seen[key] = i
                    valid.append((edge["from"], edge["to"], action))
        return valid

    def check_groups(self, doc: dict[str, Any], ids: dict[str, int]) -> None:
        """Parallel groups: branches that converge at one join; policies that make sense."""
        raw = doc.get("edges") if has_groups(doc.get("edges")) else None  # else: no group to find
        edges = [e for e in flow_edges(raw if isinstance(raw, list) else [])
                 if e.src in ids and e.dst in ids]
        policies = doc.get("parallel_groups")
        self.groups, problems = find_groups(edges, policies if isinstance(policies, dict) else None)
        self.problems.extend(problems)
        if not isinstance(policies, dict):
            return
        names = {e.group for e in edges if e.group is not None}
        for name, policy in policies.items():
            where = key_path("parallel_groups", name)
            if name not in names:
                self.warn(where, f"no edge has parallel_group '{clip(name)}'",
                          did_you_mean(name, names, "groups") if names else "remove it")
            if not isinstance(policy, dict):
                self.error(where, f"expected an object, got {json_type(policy)}",
                           'a policy looks like {"error_handling": "continue", "max_concurrent": 2}')
                continue
            self.check_keys(policy, GROUP_KEYS, where, "a parallel group policy")
            eh = policy.get("error_handling")
            if isinstance(eh, str) and eh not in ("fail_fast", "continue"):
                self.error(key_path(where, "error_handling"), f"'{eh}' is not fail_fast or continue",
                           did_you_mean(eh, ["fail_fast", "continue"]))
            mc = policy.get("max_concurrent")
            if isinstance(mc, int) and not isinstance(mc, bool) and mc < 1:
                self.error(key_path(where, "max_concurrent"), f"must be at least 1, got {mc}",
                           "leave it out (all branches at once) or set e.g. 2")

    def check_graph(self, ids: dict[str, int], edges: list[tuple[str, str, str]], start: str) -> None:
        """A loop through default edges only (it can never end); nodes never reached."""
        default_next = {a: b for a, b, act in edges if act == "default"}
        loop = default_loop(list(ids), default_next)
        if loop is not None:
            cycle = " -> ".join([*loop, loop[0]])
            self.error(f"nodes[{ids[loop[0]]}]", f"loop through default edges only: {cycle}",
                       "a loop needs a named action edge (e.g. \"action\": \"retry\") so it can end")
        successors: dict[str, list[str]] = {}
        for a, b, _ in edges:
            successors.setdefault(a, []).append(b)
        if loop is None:
            cycle_nodes = find_cycle(list(ids), successors)
            if cycle_nodes is not None:
                shown = " -> ".join(clip(n) for n in [*cycle_nodes, cycle_nodes[0]])
                self.warn(f"nodes[{ids[cycle_nodes[0]]}]", f"the flow loops ({shown}); pflow refuses a flow "
                          "with any cycle, even through action edges (\"Circular dependency detected\")",
                          "fine here (each node runs at most max_visits times); the flow runs on "
                          "pflow-tui only")
        reach = reachable(start, successors)
        for nid, i in ids.items():
            if nid not in reach:
                self.warn(f"nodes[{i}]", f"node '{clip(nid)}' is never reached from '{clip(start)}'",
                          "connect it with an edge, or remove it")
