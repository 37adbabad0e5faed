"""Graph questions the validator asks, answered in about linear time for any flow size.

- :func:`default_loop`: the first node on a loop made of default edges only;
- :func:`reachable`: the nodes an edge path leads to from the start node;
- :func:`upstream_among`: for each node, which of the names it refers to run before it
  (have an edge path to it).

Nothing here recurses, so a chain of 100,000 nodes needs no deep stack.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping, Sequence


def default_loop(order: Sequence[str], default_next: Mapping[str, str]) -> list[str] | None:
    """The first node of ``order`` that lies on a loop of default edges, and that loop
    from it (``[a, b, c]`` for a -> b -> c -> a); None when there is none.

    Every node has at most one default successor, so the walks never branch: each node
    is visited once (colour marking), the nodes on loops are collected as they close.
    """
    state: dict[str, int] = {}  # 1: on the current walk, 2: done
    on_loop: set[str] = set()
    for first in order:
        walk: list[str] = []
        at: dict[str, int] = {}
        cur: str | None = first
        while cur is not None and cur not in state:
            state[cur] = 1
            at[cur] = len(walk)
            walk.append(cur)
            cur = default_next.get(cur)
        if cur is not None and state[cur] == 1:  # the walk closed on itself
            on_loop.update(walk[at[cur]:])
        for nid in walk:
            state[nid] = 2
    for nid in order:
        if nid in on_loop:
            loop, cur = [nid], default_next[nid]
            while cur != nid:
                loop.append(cur)
                cur = default_next[cur]
            return loop
    return None


def reachable(start: str, successors: Mapping[str, Iterable[str]]) -> set[str]:
    """``start`` and every node an edge path leads to from it."""
    seen = {start}
    stack = [start]
    while stack:
        for nxt in successors.get(stack.pop(), ()):
            if nxt not in seen:
                seen.add(nxt)
                stack.append(nxt)
    return seen


def components(nodes: Sequence[str], successors: Mapping[str, Sequence[str]]) -> list[list[str]]:
    """The strongly connected components of the graph, sources first (a topological order
    of the components). Tarjan's algorithm, iterative."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    on_stack: set[str] = set()
    stack: list[str] = []
    found: list[list[str]] = []
    for root in nodes:
        if root in index:
            continue
        index[root] = low[root] = len(index)
        stack.append(root)
        on_stack.add(root)
        work = [(root, iter(successors.get(root, ())))]
        while work:
            node, it = work[-1]
            for nxt in it:
                if nxt not in index:
                    index[nxt] = low[nxt] = len(index)
                    stack.append(nxt)
                    on_stack.add(nxt)
                    work.append((nxt, iter(successors.get(nxt, ()))))
                    break
                if nxt in on_stack:
                    low[node] = min(low[node], index[nxt])
            else:
                work.pop()
                if work:
                    parent = work[-1][0]
                    low[parent] = min(low[parent], low[node])
                if low[node] == index[node]:
                    comp = []
                    while True:
                        member = stack.pop()
                        on_stack.discard(member)
                        comp.append(member)
                        if member == node:
                            break
                    found.append(comp)
    found.reverse()  # Tarjan emits sinks first
    return found


def upstream_among(nodes: Sequence[str], edges: Iterable[tuple[str, str]],
                   wanted: Mapping[str, set[str]]) -> dict[str, set[str]]:
    """For each node with an entry in ``wanted``: the names in it that are upstream of the
    node (a path of one or more edges leads from them to it; a node on a loop is upstream
    of itself).

    The ancestors of each strongly connected component are a bit set (a Python int, one
    bit per node), built in topological order from its parents' and freed once its last
    child has it: linear in the graph times a word per 64 nodes, with only the sets of
    the components still waiting for a child in memory (two along a chain).
    """
    successors: dict[str, list[str]] = {}
    direct: dict[str, set[str]] = {}
    for a, b in edges:
        successors.setdefault(a, []).append(b)
        direct.setdefault(b, set()).add(a)
    # the usual case: a node reads the nodes right before it; no bit sets needed for that
    found = {nid: names & direct[nid] for nid, names in wanted.items() if names and nid in direct}
    if all(found.get(nid) == names for nid, names in wanted.items() if names):
        return found
    bit = {nid: i for i, nid in enumerate(nodes)}
    comps = components(nodes, successors)
    comp_of = {nid: c for c, members in enumerate(comps) for nid in members}
    children: list[set[int]] = [set() for _ in comps]
    parents: list[set[int]] = [set() for _ in comps]
    looped = [len(members) > 1 for members in comps]
    for a, targets in successors.items():
        ca = comp_of[a]
        for b in targets:
            cb = comp_of[b]
            if ca == cb:
                looped[ca] = looped[ca] or a == b
            else:
                children[ca].add(cb)
                parents[cb].add(ca)
    waiting = [len(c) for c in children]
    # what a component passes on to its children: its ancestors and its own nodes
    passed: dict[int, int] = {}
    for c, members in enumerate(comps):
        own = 0
        for nid in members:
            own |= 1 << bit[nid]
        above = 0
        for p in parents[c]:
            above |= passed[p]
            waiting[p] -= 1
            if not waiting[p]:
                del passed[p]
        upstream = above | own if looped[c] else above
        for nid in members:
            names = wanted.get(nid)
            if names:
                found[nid] = {r for r in names if r in bit and upstream >> bit[r] & 1}
        if children[c]:
            passed[c] = above | own
    return found


__all__ = ["components", "default_loop", "reachable", "upstream_among"]


def find_cycle(order: Sequence[str], successors: Mapping[str, Sequence[str]]) -> list[str] | None:
    """A loop through any edges (``[a, b]`` for a -> b -> a), the first one a depth-first walk
    from the nodes of ``order`` closes; None when the graph has none. Iterative: O(nodes + edges)."""
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    for first in order:
        if first in state:
            continue
        path: list[str] = [first]
        todo: list[Iterator[str]] = [iter(successors.get(first, ()))]
        state[first] = 1
        while todo:
            nxt = next(todo[-1], None)
            if nxt is None:
                state[path.pop()] = 2
                todo.pop()
            elif state.get(nxt) == 1:
                return path[path.index(nxt):]
            elif nxt not in state:
                state[nxt] = 1
                path.append(nxt)
                todo.append(iter(successors.get(nxt, ())))
    return None
