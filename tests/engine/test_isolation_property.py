"""Property: branches and iterations never see each other's writes; the join sees them all.

Hypothesis draws a fan-out of 2-5 branches, each a chain of 1-3 nodes, optionally one of
them a batch (parallel or not). Every node writes 0-3 keys, some of them root-level
``__x__`` keys, with values that say who wrote them (``b2n1:k``, ``b2n1:k:item0``). The
``writer`` node type writes what it is told and records what its scope held when it ran.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any
from unittest.mock import patch

import anyio
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pflow_tui.engine.ir.load import build_flow
from pflow_tui.engine.nodes.base import NodeType, Param, RunContext
from pflow_tui.engine.registry import registry
from pflow_tui.engine.run.executor import execute
from pflow_tui.engine.run.params import Params
from pflow_tui.engine.trace import events as ev

KEYS = ("k", "v", "w", "__x__", "__y__")
ROOT_KEYS = tuple(k for k in KEYS if k.startswith("__"))


@dataclass(frozen=True)
class NodeShape:
    id: str
    keys: tuple[str, ...]
    batch: int | None  # number of items, or None
    parallel: bool
    sleep: float

    def writes(self, item: int | None = None) -> dict[str, str]:
        suffix = "" if item is None else f":item{item}"
        return {key: f"{self.id}:{key}{suffix}" for key in self.keys}


@st.composite
def shapes(draw: st.DrawFn) -> list[list[NodeShape]]:
    branches = []
    for b in range(draw(st.integers(2, 5))):
        length = draw(st.integers(1, 3))
        batch_at = draw(st.none() | st.integers(0, length - 1))
        chain = []
        for n in range(length):
            chain.append(NodeShape(
                id=f"b{b}n{n}",
                keys=tuple(draw(st.lists(st.sampled_from(KEYS), max_size=3, unique=True))),
                batch=draw(st.integers(1, 3)) if n == batch_at else None,
                parallel=draw(st.booleans()),
                sleep=draw(st.sampled_from((0.0, 0.0, 0.001, 0.003))),
            ))
        branches.append(chain)
    return branches


def to_ir(branches: list[list[NodeShape]]) -> dict[str, Any]:
    nodes: list[dict[str, Any]] = [{"id": "fan", "type": "writer"}]
    edges: list[dict[str, Any]] = []
    for chain in branches:
        edges.append({"from": "fan", "to": chain[0].id, "parallel_group": "g"})
        for node in chain:
            if node.batch is None:
                nodes.append({"id": node.id, "type": "writer",
                              "params": {"write": node.writes(), "sleep": node.sleep, "scope": True}})
            else:
                write = {key: f"{node.id}:{key}:item${{item}}" for key in node.keys}
                nodes.append({"id": node.id, "type": "writer",
                              "params": {"write": write, "sleep": node.sleep, "scope": True},
                              "batch": {"items": list(range(node.batch)), "parallel": node.parallel}})
        edges += [{"from": a.id, "to": b.id} for a, b in itertools.pairwise(chain)]
        edges.append({"from": chain[-1].id, "to": "join"})
    nodes.append({"id": "join", "type": "merge", "params": {"strategy": "array"}})
    return {"name": "f", "nodes": nodes, "edges": edges}


SEEN: dict[str, tuple[set[str], set[str]]] = {}  # call path -> (top-level names, markers)


async def writer(params: dict[str, Any], ctx: RunContext) -> dict[str, Any]:
    if "__seen__" in params:
        SEEN[ctx.path] = params["__seen__"]
    await anyio.sleep(params.get("sleep") or 0)  # always a checkpoint: siblings interleave
    return dict(params.get("write") or {})


REGISTRY = {**registry(), "writer": NodeType("writer", writer, params=(
    Param("write", "dict"), Param("sleep"), Param("scope"), Param("__seen__")))}
_resolve = Params.resolve


def _strings(value: Any) -> Iterator[str]:
    if isinstance(value, str):
        yield value
    elif isinstance(value, dict):
        for k, v in value.items():
            yield str(k)
            yield from _strings(v)
    elif isinstance(value, list):
        for v in value:
            yield from _strings(v)


def recording(self: Params, scope: Any, errors: list[str] | None = None) -> Any:
    """Params.resolve, plus what the scope holds: its names, and every value written by a node."""
    params, resolved = _resolve(self, scope, errors)
    if self.constant.get("scope"):
        names = {str(k) for layer in scope for k in layer}
        markers = {s for layer in scope for s in _strings(dict(layer)) if ":" in s and s[0] == "b"}
        params = {**params, "__seen__": (names, markers)}
    return params, resolved


def run(doc: dict[str, Any]) -> tuple[Any, list[dict[str, Any]]]:
    spec = build_flow(doc, registry=REGISTRY)
    events: list[dict[str, Any]] = []
    SEEN.clear()
    with patch.object(Params, "resolve", recording):
        result = anyio.run(lambda: execute(spec, {}, [events.append], registry=REGISTRY))
    return result, events


def final_writes(chain: list[NodeShape]) -> dict[str, str]:
    """Root keys a branch leaves in its store: the last write wins (a batch's last item)."""
    out: dict[str, str] = {}
    for node in chain:
        for item in range(node.batch) if node.batch is not None else (None,):
            out.update({k: v for k, v in node.writes(item).items() if k in ROOT_KEYS})
    return out


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(shapes())
def test_branches_are_isolated_and_joined(branches: list[list[NodeShape]]) -> None:
    result, events = run(to_ir(branches))
    assert result.status == "ok", result.error
    store = result.store
    owner = {node.id: b for b, chain in enumerate(branches) for node in chain}

    # 1. nobody saw a sibling's writes: neither its nodes' names nor any value it wrote;
    #    everyone saw the earlier nodes of its own branch
    calls = 0
    for path, (names, markers) in SEEN.items():
        b = int(path.split(".")[2].removeprefix("branch_"))
        node = path.split(".")[3]
        calls += 1
        assert not {n for n in names if n in owner and owner[n] != b}, (path, names)
        assert all(m.startswith(f"b{b}n") for m in markers), (path, markers)
        earlier = [n.id for n in branches[b]][: int(node.split("n")[1])]
        assert set(earlier) <= names, (path, earlier, names)
    assert calls == sum(node.batch or 1 for chain in branches for node in chain)

    # 2. after the join, every branch node's namespace is in the store, with its values;
    #    each branch's store is kept under the fan-out node
    for b, chain in enumerate(branches):
        for node in chain:
            if node.batch is None:
                assert store[node.id] == {k: v for k, v in node.writes().items() if k not in ROOT_KEYS}
            else:
                assert store[node.id]["results"] == [{**node.writes(i), "item": i}
                                                     for i in range(node.batch)]
        kept = store["fan"][f"branch_{b}"]
        assert set(kept) == {n.id for n in chain} | set(final_writes(chain))

    # 3. races: one per root key written by 2+ branches, naming them all; and one per root
    #    key written by 2+ items of a parallel batch; nothing else
    expected = set()
    for key in ROOT_KEYS:
        writers = [b for b, chain in enumerate(branches) if key in final_writes(chain)]
        if len(writers) > 1:
            expected.add(("f.fan", key, tuple(f"f.fan.branch_{b}" for b in writers)))
        if writers:
            assert store[key] == final_writes(branches[writers[-1]])[key]  # the last one wins
        else:
            assert key not in store
        for b, chain in enumerate(branches):
            for node in chain:
                if node.batch and node.batch > 1 and node.parallel and key in node.keys:
                    base = f"f.fan.branch_{b}.{node.id}"
                    expected.add((base, key, tuple(f"{base}.iteration_{i}" for i in range(node.batch))))
    races = [(e["path"], e["key"], tuple(e["paths"])) for e in events if e["kind"] == ev.RACE]
    assert sorted(races) == sorted(expected)

    # 4. the merge: each branch's last node output, in edge order
    merged = store["join"]["result"]
    assert len(merged) == len(branches)
    for chain, out in zip(branches, merged, strict=True):
        last = chain[-1]
        if last.batch is None:
            assert out == last.writes()
        else:
            assert out["results"] == [{**last.writes(i), "item": i} for i in range(last.batch)]
