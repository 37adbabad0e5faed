"""A parallel group as a ``pocketflow.AsyncNode``: its branches run concurrently, each in
its own store, and are merged into the parent's when they have ended."""

from __future__ import annotations

import contextlib
from typing import Any

import anyio
import pocketflow

from ..ir.groups import Group
from ..ir.templates import to_text
from ..trace import events as ev
from .execution import Execution, FlowRuntimeError, Frame, is_root_key
from .land import merge_roots


class PflowGroup(pocketflow.AsyncNode):
    """A parallel group: runs its branches concurrently, each in its own store.

    It stands in the PocketFlow graph between the fan-out node and the join. Each branch
    is a :class:`~.flow.PflowFlow` of its own; its writes go to its own store, which siblings
    never see. When every branch has ended (or, with ``fail_fast``, when one failed and
    the others were cancelled) the branch stores are merged into the parent's, each
    branch is kept under ``<fanout>.branch_<i>``, root keys written by more than one
    branch are reported as races, and the join gets the branches' results.
    """

    def __init__(self, group: Group, flows: list[pocketflow.AsyncFlow], ex: Execution) -> None:
        super().__init__()
        self.group, self.flows, self.ex = group, flows, ex
        self.path = ""

    async def _run_async(self, frame: Frame) -> str:  # type: ignore[override]
        ex, g = self.ex, self.group
        fan_path = ex.paths.get((frame.path, g.fanout), f"{frame.path}.{g.fanout}")
        self.path = fan_path
        n = len(self.flows)
        stores: list[dict[str, Any]] = [{} for _ in range(n)]
        results: list[dict[str, Any] | None] = [None] * n
        crashed: list[BaseException] = []
        limited = g.max_concurrent is not None and g.max_concurrent < n
        limiter = anyio.CapacityLimiter(g.max_concurrent) if limited else contextlib.nullcontext()

        async with anyio.create_task_group() as tg:

            async def run_branch(i: int) -> None:
                branch = g.branches[i]
                path = f"{fan_path}.branch_{i}"
                async with limiter:
                    bframe = Frame(stores[i], (stores[i], *frame.scope), path)
                    t0 = ex.now()
                    ex.emit(ev.BRANCH_START, path, {"group": g.name, "index": i, "start": branch.start})
                    ex.emit(ev.EDGE, fan_path, {"from": g.fanout, "to": branch.start,
                                                "action": g.action, "group": g.name})
                    try:
                        action = await self.flows[i].run_async(bframe)
                    except FlowRuntimeError as exc:
                        crashed.append(exc)
                        action = "error"
                    except BaseException:
                        ex.emit(ev.BRANCH_END, path, {"group": g.name, "index": i,
                                                      "status": "cancelled", "duration": ex.now() - t0})
                        raise
                    failed = isinstance(action, str) and action.startswith("error")
                    last_id, last_out = bframe.last or (branch.start, {})
                    result = {"index": i, "start": branch.start, "last": last_id,
                              "status": "error" if failed else "ok", "output": last_out}
                    if failed:
                        result["error"] = last_out.get("error") if isinstance(last_out, dict) else None
                    results[i] = result
                    ex.emit(ev.BRANCH_END, path, {"group": g.name, "index": i,
                                                  "status": result["status"],
                                                  "duration": ex.now() - t0, "last": last_id})
                    if failed and (g.error_handling == "fail_fast" or crashed):
                        tg.cancel_scope.cancel()

            for i in range(n):
                tg.start_soon(run_branch, i)
        if crashed:  # a sibling may have started since: the run's error names this node
            ex.last_node = getattr(crashed[0], "node", None) or ex.last_node
            raise crashed[0]
        return self._join(frame, fan_path, stores, results)

    def _join(self, frame: Frame, fan_path: str, stores: list[dict[str, Any]],
              results: list[dict[str, Any] | None]) -> str:
        ex, g = self.ex, self.group
        for store in stores:  # node namespaces: ids are unique, so nothing collides
            visits = store.get("__visits__")
            for key, value in store.items():
                if not is_root_key(key):
                    _merge_namespace(frame.store, key, value,
                                     visits.get(key) if isinstance(visits, dict) else None)
        merge_roots(ex, frame, [(f"{fan_path}.branch_{i}", s) for i, s in enumerate(stores)],
                     fan_path, concurrent=True)
        fan_ns = frame.store.get(g.fanout)
        if isinstance(fan_ns, dict):  # ${fanout.branch_1.node.key} addresses a branch's store
            kept = {**fan_ns, **{f"branch_{i}": st for i, st in enumerate(stores)},
                    # what the join receives, for ${fanout.aggregate.STAT.key}
                    "branch_results": [r["output"] if r is not None and r["status"] == "ok" else None
                                       for r in results]}
            frame.store[g.fanout] = kept
            history = frame.store.get("__visits__", {}).get(g.fanout)
            if history and history[-1] is fan_ns:  # ${fanout#2.branch_0...} too
                history[-1] = kept
        done = [r for r in results if r is not None]
        failed = [r for r in done if r["status"] == "error"]
        if failed and g.error_handling == "fail_fast":
            first = failed[0]
            message = f"branch {first['index']} ('{first['start']}') failed at '{first['last']}'"
            if first.get("error"):
                message += f": {to_text(first['error'])}"
            ex.last_error = {"node": first["last"], "path": f"{fan_path}.branch_{first['index']}",
                             "type": "BranchError", "message": message}
            return "error"
        for r in done:
            ex.emit(ev.EDGE, f"{fan_path}.branch_{r['index']}",
                    {"from": r["last"], "to": g.join, "action": "default", "group": g.name})
        ex.joins[(frame.path, g.join)] = [r if r is not None else
                                          {"index": i, "start": g.branches[i].start,
                                           "status": "cancelled", "output": None}
                                          for i, r in enumerate(results)]
        return "default"


def _merge_namespace(store: dict[str, Any], key: str, value: Any, runs: list[Any] | None) -> None:
    """A branch node's namespace into the parent store. Its earlier visits are kept in
    ``__visits__``: those in the branch (``runs``, a loop inside it) and those of earlier
    runs of the whole group (a loop around it)."""
    if runs is not None or key in store:
        visits = store.setdefault("__visits__", {})
        before = visits.get(key) or ([store[key]] if key in store else [])
        visits[key] = [*before, *(runs if runs is not None else [value])]
    store[key] = value
