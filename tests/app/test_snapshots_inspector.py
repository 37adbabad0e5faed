"""Interaction snapshots of the inspector: a failed item, failures first (at 120x40 and 80x24,
after `n`), and the run itself (inputs, outputs and the final store, an entry opened)."""

from __future__ import annotations

import threading
from pathlib import Path

import orjson
from recording import deterministic
from textual.pilot import Pilot

from pflow_tui.app.app import DebuggerApp
from pflow_tui.app.graph import Graph
from pflow_tui.app.messages import Selection
from pflow_tui.engine.ir.load import load_flow
from pflow_tui.engine.run.executor import run_flow
from pflow_tui.engine.trace.reader import TraceIndex

FIXTURES = Path(__file__).parent / "fixtures"
SAMPLES = Path(__file__).resolve().parents[2] / "sample_flows"


def failures_app() -> DebuggerApp:
    doc = orjson.loads((FIXTURES / "parallel_batch_failures.events.json").read_bytes())
    return DebuggerApp.from_events(Graph.from_ir(doc["flow"], doc["flow_name"], doc.get("children")),
                                   doc["events"])


def inputs_outputs_app(trace: Path) -> DebuggerApp:
    """A replay of the sample with inputs and outputs, recorded now with its times made
    deterministic (the final store is in the trace's footer)."""
    spec = load_flow(SAMPLES / "inputs_outputs.json")
    worker = threading.Thread(target=run_flow, args=(spec, {"who": "Ada", "times": 3, "shout": True}),
                              kwargs={"trace": trace})  # (run_flow has an event loop of its own)
    worker.start()
    worker.join()
    lines = trace.read_bytes().rstrip(b"\n").split(b"\n")
    events = deterministic([orjson.loads(line.rstrip(b",")) for line in lines[1:-1]])
    trace.write_bytes(b"\n".join([lines[0], b",\n".join(orjson.dumps(e) for e in events), lines[-1]])
                      + b"\n")
    return DebuggerApp.replay(TraceIndex(trace))


async def settle(pilot: Pilot) -> None:
    await pilot.pause()
    await pilot.pause(0.1)


class TestFailureFirstInspector:
    """A failed item's inspector starts with its error, at both sizes, after `n`."""

    @staticmethod
    async def next_failure(pilot: Pilot) -> None:
        await settle(pilot)
        await pilot.press("n")  # from the first failure (selected at the end) to the second
        await settle(pilot)

    def test_failed_item_120x40(self, snap_compare):
        assert snap_compare(failures_app(), terminal_size=(120, 40), run_before=self.next_failure)

    def test_failed_item_80x24(self, snap_compare):
        assert snap_compare(failures_app(), terminal_size=(80, 24), run_before=self.next_failure)

    def test_failed_batch_node_lists_its_failures_first(self, snap_compare):
        async def batch(pilot: Pilot) -> None:
            await settle(pilot)
            pilot.app.select(Selection("run-tasks"))
            await settle(pilot)

        assert snap_compare(failures_app(), terminal_size=(120, 40), run_before=batch)


class TestRootView:
    """Selecting the run itself: inputs, declared outputs, the final store (browsable)."""

    def test_inputs_outputs_and_store(self, snap_compare, tmp_path):
        async def root(pilot: Pilot) -> None:
            await settle(pilot)
            pilot.app.screen.header.trace = "t.json"  # (not the temporary folder's name)
            pilot.app.screen.header.refresh_status()
            for _ in range(100):  # the replay fills in
                if pilot.app.screen.model.end_seq:
                    break
                await pilot.pause(0.05)
            pilot.app.screen.query_one("#dag").focus()
            pilot.app.select(Selection("greet"))
            await pilot.press("up")  # above the first node: the run
            await settle(pilot)
            inspector = pilot.app.screen.query_one("#inspector")
            store = inspector.query_one("#store")
            greet = next(c for c in store.root.children if str(c.label).startswith("greet"))
            greet.expand()
            await settle(pilot)
            inspector.scroll_end(animate=False)
            await settle(pilot)

        assert snap_compare(inputs_outputs_app(tmp_path / "t.json"), terminal_size=(120, 40), run_before=root)
