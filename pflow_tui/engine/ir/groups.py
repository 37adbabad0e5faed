"""Task parallelism: find the parallel groups of a flow, their branches and their join.

Edges that leave one node with the same ``parallel_group`` start branches that run
concurrently. A branch is every node reachable from its edge's target without passing
the join: the first node that every branch of the group reaches. The join runs once,
after every branch has finished.

A group is rejected when its branches never converge, converge at different nodes
(they share a node before the join), or jump out of it (a branch reaches the fan-out
node or a node after the join); and a ``parallel_group`` on a single edge means nothing.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from ..problems import Problem


@dataclass(frozen=True, slots=True)
class FlowEdge:
    """An edge as the analysis sees it (``where`` is its JSON path, for messages)."""

    src: str
    dst: str
    action: str = "default"
    group: str | None = None
    where: str = ""


@dataclass(frozen=True, slots=True)
class Branch:
    """One branch: its index in the group (edge order), first node, and all its nodes."""

    index: int
    start: str
    nodes: tuple[str, ...]


@dataclass(frozen=True)
class Group:
    """A parallel group: ``fanout`` -``action``-> branches -> ``join``."""

    name: str
    fanout: str
    action: str
    branches: tuple[Branch, ...]
    join: str
    error_handling: str = "fail_fast"
    max_concurrent: int | None = None
    members: frozenset[str] = field(default_factory=frozenset)  # every node of every branch


def has_groups(edges: Any) -> bool:
    """Whether any edge of an IR document names a parallel group."""
    return isinstance(edges, list) and any(isinstance(e, dict) and e.get("parallel_group") is not None
                                           for e in edges)


def flow_edges(edges: list[Any]) -> list[FlowEdge]:
    """The well-formed edges of an IR document, for the parallel-group analysis."""
    return [FlowEdge(e["from"], e["to"], e.get("action", "default"), e.get("parallel_group"),
                      f"edges[{i}]")
            for i, e in enumerate(edges)
            if isinstance(e, dict) and isinstance(e.get("from"), str) and isinstance(e.get("to"), str)
            and isinstance(e.get("action", "default"), str)
            and isinstance(e.get("parallel_group", ""), str)]


def _successors(edges: Iterable[FlowEdge]) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for e in edges:
        out.setdefault(e.src, []).append(e.dst)
    return out


def _reach(start: str, succ: Mapping[str, list[str]], stop: str | None = None) -> list[str]:
    """Nodes reachable from ``start`` (itself included) in BFS order, not going past ``stop``."""
    seen = {start}
    order = [start]
    queue = deque([start])
    while queue:
        cur = queue.popleft()
        if cur == stop:
            continue
        for nxt in succ.get(cur, ()):
            if nxt not in seen:
                seen.add(nxt)
                order.append(nxt)
                queue.append(nxt)
    return order


def find_groups(edges: list[FlowEdge], policies: Mapping[str, Any] | None = None
                ) -> tuple[list[Group], list[Problem]]:
    """Every parallel group, or the problems that make one invalid."""
    policies = policies or {}
    by_key: dict[tuple[str, str], list[FlowEdge]] = {}
    for e in edges:
        if e.group is not None:
            by_key.setdefault((e.src, e.group), []).append(e)
    succ = _successors(edges)
    groups: list[Group] = []
    problems: list[Problem] = []
    for (src, name), members in by_key.items():
        found = _group(src, name, members, succ, policies)
        if isinstance(found, Problem):
            problems.append(found)
        else:
            groups.append(found)
    return groups, problems


def _group(src: str, name: str, members: list[FlowEdge], succ: Mapping[str, list[str]],
           policies: Mapping[str, Any]) -> Group | Problem:
    """The group of the edges ``members`` (from ``src``, named ``name``), or the first
    problem that makes it invalid."""
    where = members[0].where or "edges"
    if len(members) == 1:
        return Problem(where, f"parallel_group '{name}' is on a single edge: there is "
                       "nothing to run beside it",
                       "give two or more edges from the same node this group, "
                       "or remove \"parallel_group\"")
    actions = {e.action for e in members}
    if len(actions) > 1:
        return Problem(where, f"the edges of parallel_group '{name}' from '{src}' have "
                       f"different actions ({', '.join(sorted(actions))})",
                       "a group starts on one action: give its edges the same action")
    targets = [e.dst for e in members]
    join = _join(where, name, src, targets, succ)
    if isinstance(join, Problem):
        return join
    branches = [Branch(i, t, tuple(n for n in _reach(t, succ, stop=join) if n != join))
                for i, t in enumerate(targets)]
    bad = _branch_problem(where, name, src, join, branches, succ)
    if bad is not None:
        return bad
    policy = policies.get(name) if isinstance(policies.get(name), dict) else {}
    return Group(name, src, members[0].action, tuple(branches), join,
                 policy.get("error_handling", "fail_fast"), policy.get("max_concurrent"),
                 frozenset(n for b in branches for n in b.nodes))


def _join(where: str, name: str, src: str, targets: list[str],
          succ: Mapping[str, list[str]]) -> str | Problem:
    """The node where the branches starting at ``targets`` meet, or why there is none."""
    # a loop around the whole group leads back through the fan-out: that is not where
    # the branches meet, so reachability stops at it
    reach = [_reach(t, succ, stop=src) for t in targets]
    common = set(reach[0]).intersection(*map(set, reach[1:]))
    join = next((n for n in reach[0] if n in common), None)
    if join == src:
        return Problem(where, f"the branches of parallel_group '{name}' "
                       f"({', '.join(targets)}) only meet back at '{src}', where "
                       "the group starts", "end every branch at one join node "
                       "(e.g. a merge node); loop around the whole group from there")
    if join is None:
        return Problem(where, f"the branches of parallel_group '{name}' "
                       f"({', '.join(targets)}) never converge",
                       "add edges from the end of every branch to one join node "
                       "(e.g. a merge node)")
    # an edge from after the join back into a branch: two meeting points, each before the other
    cycle = next((c for c in reach[0] if c in common and c != join
                  and c in _reach(join, succ, stop=src) and join in _reach(c, succ, stop=src)
                  and any(c in _reach(t, succ, stop=join) for t in targets)), None)
    if cycle is not None:
        return Problem(where, f"the branches of parallel_group '{name}' meet at "
                       f"'{join}' and at '{cycle}', which lead to each other: an edge "
                       "goes back into the group from after its join",
                       f"loop back to '{src}' instead, so that the whole group runs "
                       "again")
    if join in targets:
        return Problem(where, f"parallel_group '{name}' has an edge straight to its "
                       f"join '{join}': that branch would be empty",
                       f"remove \"parallel_group\" from the edge to '{join}', or put a "
                       "node on that branch")
    return join


def _branch_problem(where: str, name: str, src: str, join: str, branches: list[Branch],
                    succ: Mapping[str, list[str]]) -> Problem | None:
    """The first branch that loops back to the fan-out, jumps past the join, or meets
    another branch before the join."""
    after_join = set(_reach(join, succ, stop=src)) - {join, src}
    owner: dict[str, int] = {}
    for b in branches:
        for n in b.nodes:
            if n == src:
                return Problem(where, f"branch '{b.start}' of parallel_group '{name}' "
                               f"loops back to '{src}', where the group starts",
                               "end every branch at the join; loop around the whole "
                               "group instead")
            if n in after_join:
                return Problem(where, f"branch '{b.start}' of parallel_group '{name}' "
                               f"jumps out of the group to '{n}', after the join "
                               f"'{join}'", f"route '{b.start}' through '{join}'")
            if n in owner and owner[n] != b.index:
                other = branches[owner[n]].start
                return Problem(where, f"the branches of parallel_group '{name}' "
                               f"converge at different nodes: '{b.start}' and "
                               f"'{other}' meet at '{n}' before '{join}'",
                               f"let every branch meet at one join node; '{n}' can be "
                               "the join if all branches lead to it")
            owner.setdefault(n, b.index)
    return None
