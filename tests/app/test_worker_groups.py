"""Cluster workers in the view model and the timeline's rows grouped by worker, without Textual:
the workers and the cluster read from events (live and replayed alike, at any cursor), the
groups, their legend, and the timeline's lines."""

from __future__ import annotations

from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from synthetic_cluster import CLUSTER, FLOW, A, B, cluster_events, write_cluster_trace

from pflow_tui.app.graph import Graph
from pflow_tui.app.item_table import ItemTable
from pflow_tui.app.model import RunModel
from pflow_tui.app.status import ERROR, OK, PENDING, RUNNING
from pflow_tui.app.timeline_geometry import Line
from pflow_tui.app.worker_groups import NO_WORKER, WorkerGroup, by_worker, group_lines, legend, worker_groups
from pflow_tui.engine.trace.reader import TraceIndex
from pflow_tui.engine.trace.replay import LazyEvents


def graph() -> Graph:
    return Graph.from_ir(FLOW, "cl", {})


def model_at(k: int, events: list[dict] | None = None) -> RunModel:
    model = RunModel(graph())
    model.apply((events or cluster_events())[:k])
    return model


def workers_state(model: RunModel) -> tuple:
    """What the model knows of the cluster: its name, the workers, each item's worker and log."""
    state = model.latest.get("sq")
    items = state.items if state is not None else None
    table = None
    if items is not None:
        table = (list(items.worker) if items.worker is not None else None, list(items.worker_seq),
                 list(items.worker_item), list(items.worker_id), items.last_seq)
    return model.cluster, list(model.workers), table


# --- the model -------------------------------------------------------------------------------


def test_the_model_names_the_cluster_and_each_items_worker() -> None:
    model = model_at(10_000)
    assert model.cluster == CLUSTER
    assert model.workers == [A, B]  # in the order they were first seen
    items = model.latest["sq"].items
    assert items is not None and items.worker is not None
    assert [model.worker_name(w) for w in items.worker] == [A, B, A, B, A, A, B]  # item 3: its retry, on B
    assert [model.worker_name(w) for _, w in items.attempt_workers(3)] == [A, B]
    assert model.worker_name(0) == ""


def test_before_any_worker_the_table_has_none() -> None:
    events = cluster_events()
    first_wait_end = next(e["seq"] for e in events if e["kind"] == "wait.end")
    model = model_at(first_wait_end - 1)
    assert model.cluster == CLUSTER and model.workers == []
    assert model.latest["sq"].items.worker is None


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_rewind_forgets_the_workers_seen_later(data) -> None:
    events = cluster_events()
    n = len(events)
    later = data.draw(st.integers(0, n), label="applied")
    k = data.draw(st.integers(0, later), label="rewound to")
    model = model_at(later)
    model.rewind(k)
    assert workers_state(model) == workers_state(model_at(k))


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_a_replay_knows_what_a_live_run_knows(tmp_path_factory, data) -> None:
    """A replay reads only the leading fields of item and attempt events: the workers come
    from the waits on the cluster, so both see the same workers at any cursor."""
    path = write_cluster_trace(tmp_path_factory.mktemp("cl") / "t.json")
    events = cluster_events()
    k = data.draw(st.integers(0, len(events)), label="cursor")
    index = TraceIndex(path)
    replayed = RunModel(graph(), LazyEvents(index))
    replayed.apply(index.summaries(0, k))
    assert workers_state(replayed) == workers_state(model_at(k, events))


def test_a_nodes_own_attempt_on_a_worker() -> None:
    events = [
        {"seq": 1, "t": 0.0, "kind": "run.start", "path": "one", "flow": "one", "inputs": {}},
        {"seq": 2, "t": 0.0, "kind": "node.start", "path": "one.n", "node": "n", "type": "code"},
        {"seq": 3, "t": 0.0, "kind": "wait.start", "path": "one.n", "on": "cluster", "attempt": 1,
         "limit": "local cluster"},
        {"seq": 4, "t": 0.5, "kind": "wait.end", "path": "one.n", "on": "cluster", "attempt": 1,
         "status": "ok", "duration": 0.5, "worker": "tcp://127.0.0.1:1"},
    ]
    model = RunModel(Graph.from_ir({"nodes": [{"id": "n", "type": "code"}]}, "one", {}))
    model.apply(events)
    assert model.cluster == "local cluster" and model.latest["n"].workers == [(4, 1)]
    model.rewind(3)
    assert model.latest["n"].workers == [] and model.workers == [] and model.worker_nodes == []


# --- the groups --------------------------------------------------------------------------------


def table(workers: list[int], statuses: list[int]) -> ItemTable:
    items = ItemTable(len(workers))
    for i, (w, code) in enumerate(zip(workers, statuses, strict=True)):
        if code != PENDING:
            items.start(i, 0.0, 2 * i + 1)
        if w:
            items.on_worker(i, w, 2 * i + 2)
        if code in (OK, ERROR):
            items.end(i, code, 1.0, 100 + i, 1)
    return items


def test_groups_in_the_order_the_workers_were_seen_and_no_worker_last() -> None:
    items = table([2, 0, 1, 2, 1, 0], [OK, PENDING, ERROR, RUNNING, OK, OK])
    groups = worker_groups(items)
    assert groups == [WorkerGroup(1, [2, 4], {ERROR: 1, OK: 1}),
                      WorkerGroup(2, [0, 3], {OK: 1, RUNNING: 1}),
                      WorkerGroup(NO_WORKER, [1, 5], {PENDING: 1, OK: 1})]
    workers = ["tcp://a:1", "tcp://b:2"]
    assert [legend(g, workers) for g in groups] == [
        "tcp://a:1 · 2 items: 1 ok, 1 failed",
        "tcp://b:2 · 2 items: 1 ok, 1 running",
        "no worker (this machine, or not started) · 2 items: 1 ok, 1 pending"]


def test_a_batch_that_ran_on_no_worker_is_one_group() -> None:
    items = table([0, 0, 0], [OK, OK, RUNNING])
    assert worker_groups(items) == [WorkerGroup(NO_WORKER, [0, 1, 2], {OK: 2, RUNNING: 1})]
    assert worker_groups(ItemTable(0)) == []


def test_a_workers_address_is_shown_literally_on_one_line() -> None:
    group = WorkerGroup(1, [0], {OK: 1})
    assert legend(group, ["tcp://[bold]x[/bold]:1\n\x1b[31mred"]) == \
        "tcp://[bold]x[/bold]:1\\n\\x1b[31mred · 1 item: 1 ok"
    assert legend(group, ["tcp://" + "h" * 200]).startswith("tcp://hhh") and \
        len(legend(group, ["tcp://" + "h" * 200]).partition(" · ")[0]) == 60


@settings(max_examples=60)
@given(st.lists(st.tuples(st.integers(0, 4), st.sampled_from([OK, ERROR, RUNNING, PENDING])), max_size=40))
def test_every_row_is_in_exactly_one_group(rows: list[tuple[int, int]]) -> None:
    items = table([w for w, _ in rows], [c for _, c in rows])
    lines = group_lines(items, ["w1", "w2", "w3", "w4"], rows=True)
    shown = [ln.row for ln in lines if ln.kind == "row"]
    assert sorted(shown) == list(range(len(rows)))
    headings = [ln for ln in lines if ln.kind == "heading"]
    assert len(headings) == len({w for w, _ in rows})
    for group in worker_groups(items):  # each group's rows in index order, all of its worker
        assert group.rows == sorted(group.rows)
        assert all(rows[i][0] == group.worker for i in group.rows)
    assert not group_lines(items, ["w1", "w2", "w3", "w4"], rows=False) or \
        all(ln.kind == "heading" for ln in group_lines(items, ["w1", "w2", "w3", "w4"], rows=False))


def test_the_summary_gets_a_heading_per_worker_after_its_lane_counts_and_durations() -> None:
    summary = [Line("lane"), Line("counts"), Line("durations"), Line("heading", text="2 slowest"),
               Line("row", 3), Line("row", 1)]
    groups = [Line("heading", text="tcp://a:1 · 3 items"), Line("heading", text="tcp://b:2 · 1 item")]
    assert by_worker(summary, groups) == [*summary[:3], *groups, *summary[3:]]
    assert by_worker(None, groups) is groups


def test_a_big_batch_on_four_workers() -> None:
    """100,000 items dealt round-robin to 4 workers: each group holds every 4th item, in
    order (its cost: bench/bench_timeline_workers.py)."""
    n = 100_000
    items = ItemTable(n)
    for i in range(n):
        items.start(i, 0.0, i + 1)
        items.on_worker(i, 1 + i % 4, n + i + 1)
    groups = worker_groups(items)
    assert [g.worker for g in groups] == [1, 2, 3, 4]
    assert all(g.rows == list(range(k, n, 4)) and g.counts == {RUNNING: n // 4} for k, g in enumerate(groups))
    lines = group_lines(items, ["a", "b", "c", "d"], rows=True)
    assert len(lines) == n + 4 and lines[1].row == 0 and lines[n // 4 + 2].row == 1


def test_the_saved_cluster_run_replays_with_its_cluster_and_workers(tmp_path: Path) -> None:
    index = TraceIndex(write_cluster_trace(tmp_path / "t.json"))
    model = RunModel(graph(), LazyEvents(index))
    model.apply(index.summaries(0, len(index)))
    assert model.workers == [A, B] and model.cluster == CLUSTER


def test_a_trace_naming_more_workers_than_a_short_holds() -> None:
    """A trace is untrusted: 70,000 worker addresses are 70,000 ids, not an overflow."""
    items = ItemTable(2)
    items.start(0, 0.0, 1)
    items.on_worker(0, 70_000, 2)
    assert items.worker is not None and items.worker[0] == 70_000
    assert worker_groups(items)[0] == WorkerGroup(70_000, [0], {RUNNING: 1})
