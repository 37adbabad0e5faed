"""Make the SVG screenshots in this folder from live runs of the sample flows.

    python screenshots/make_screenshots.py [SAMPLE ...]   (default: all of them)

Each sample runs for real in the app (driven by Textual's Pilot at 140x40); a screenshot
is taken while it runs and another once it has finished. Times differ from run to run.
"""

from __future__ import annotations

import asyncio
import os
import sys
import tempfile
from pathlib import Path

from pflow_tui.app.app import DebuggerApp
from pflow_tui.app.messages import Selection
from pflow_tui.engine.ir.load import build_flow, load_flow
from pflow_tui.engine.python.pyprogram import load_program
from pflow_tui.engine.run.executor import run_flow
from pflow_tui.engine.run.gate import NodeBreak
from pflow_tui.engine.run.inputs import prepare_inputs
from pflow_tui.engine.trace.diff import diff_traces
from pflow_tui.engine.trace.reader import TraceIndex
from pflow_tui.engine.trace.writer import DEFAULT_DIR, default_trace_path

HERE = Path(__file__).parent
SAMPLES = HERE.parent / "sample_flows"
SIZE = (140, 40)
SHOTS = [
    # (sample, seconds after the run's first event for the "running" shot, keys pressed after it
    # finished, theme)
    ("parallel_batch_failures", 0.7, [], "textual-dark"),
    ("llm_classify", 0.5, ["n"], "textual-dark"),
    ("fanout_merge", 0.45, [], "textual-dark"),
    ("pipeline", 0.6, ["up", "enter"], "textual-dark"),  # open the nested flow in the DAG
    ("agent_loop", None, [], "textual-dark"),
    ("sequential_batch", None, [], "textual-light"),
    ("map_reduce", 0.35, ["up", "up"], "textual-dark"),  # a Python program; select its map
    ("cpu_and_limits", None, [], "textual-dark"),  # processes, and branches queueing for a limit
]
SCENES = ("replay", "stepping", "diff", "failure", "runs",  # the debugger's other modes, by scene()
          "cluster-timeline-by-worker")
# a batch on a cluster of two workers (one task at a time each): items sleep 0.1 to 0.5 s
CLUSTER_FLOW = {"ir_version": "0.1.0", "name": "score", "nodes": [
    {"id": "score", "type": "code", "executor": "cluster",
     "batch": {"items": [round(0.1 + (i * 7 % 5) * 0.1, 1) for i in range(10)], "parallel": True, "max_concurrent": 4},
     "params": {"inputs": {"s": "${item}"},
                "code": "s: float\nimport time\ntime.sleep(s)\nresult: float = s"}}]}


async def scene(name: str, tmp: Path) -> None:
    """``replay``: a saved run with the cursor moved back to its third failure; ``stepping``: a
    run paused at a breakpoint, then stepped item by item; ``diff``: two runs side by side;
    ``failure``: a failed item, its error first in the Inspector; ``runs``: the run browser."""
    tmp = tmp / name  # a trace file holds one run: each scene writes its own
    tmp.mkdir()
    if name == "cluster-timeline-by-worker":
        await cluster_scene(tmp)
        return
    if name == "stepping":
        app = DebuggerApp.live(load_flow(SAMPLES / "llm_classify.json"), {}, tmp / "step.json",
                               breakpoints=[NodeBreak("classify")])
        async with app.run_test(size=SIZE) as pilot:
            for _ in range(200):
                await pilot.pause(0.05)
                if app.screen.model.paused is not None:
                    break
            for _ in range(4):  # four items, one per step
                await pilot.press(".")
                await pilot.pause(0.4)
            app.save_screenshot("stepping.svg", str(HERE))
            await pilot.press("s", "y")  # stop (asked first)
            await pilot.pause(0.5)
        return
    if name == "runs":  # in the scene's folder, as `pflow-tui runs` there shows it
        cwd = Path.cwd()
        os.chdir(tmp)
        try:
            for sample in ("parallel_batch_failures", "sequential_batch", "inputs_outputs", "llm_classify"):
                spec = load_flow(SAMPLES / f"{sample}.json")
                await asyncio.to_thread(run_flow, spec, prepare_inputs(spec, {}),
                                        trace=default_trace_path(spec.name))
            app = DebuggerApp.browser(DEFAULT_DIR)
            async with app.run_test(size=SIZE) as pilot:
                await pilot.pause(0.5)
                await pilot.press("down", "down", "space", "down", "space")  # two runs marked
                await pilot.pause(0.2)
                app.save_screenshot("runs.svg", str(HERE))
        finally:
            os.chdir(cwd)
        return
    first = tmp / "a.json"
    await asyncio.to_thread(run_flow, load_flow(SAMPLES / "parallel_batch_failures.json"), {}, trace=first)
    if name == "failure":
        app = DebuggerApp.replay(TraceIndex(first))
        async with app.run_test(size=(120, 36)) as pilot:
            await pilot.pause(1.0)
            await pilot.press("n", "3")  # the next failure; the Timeline hidden: the Inspector has its room
            await pilot.pause(0.3)
            app.save_screenshot("failure.svg", str(HERE))
        return
    if name == "replay":
        app = DebuggerApp.replay(TraceIndex(first))
        async with app.run_test(size=SIZE) as pilot:
            await pilot.pause(1.0)
            for key in ("G", "g", "f", "f", "f"):  # to the end, the start, then three failures on
                await pilot.press(key)
                await pilot.pause(0.2)
            app.save_screenshot("replay.svg", str(HERE))
        return
    spec = load_flow(SAMPLES / "inputs_outputs.json")
    for n, given in enumerate(({"who": "Ada", "times": 2}, {"who": "Grace", "times": 3}), 1):
        await asyncio.to_thread(run_flow, spec, prepare_inputs(spec, given), trace=tmp / f"b{n}.json")
    app = DebuggerApp.diff_view(diff_traces(tmp / "b1.json", tmp / "b2.json"))
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause(0.5)
        await pilot.press("down")
        await pilot.pause(0.2)
        app.save_screenshot("diff.svg", str(HERE))


async def cluster_scene(tmp: Path) -> None:
    """A batch run on a LocalCluster of two in-process workers, replayed: the header names
    the cluster and its workers, ``w`` in the timeline groups the items by worker."""
    from distributed import LocalCluster  # the dask extra

    trace = tmp / "score.json"
    with LocalCluster(n_workers=2, threads_per_worker=1, processes=False, protocol="tcp",
                      dashboard_address=":0") as cluster:
        await asyncio.to_thread(run_flow, build_flow(CLUSTER_FLOW, base_dir=tmp), {}, trace=trace,
                                cluster=cluster.scheduler_address)
    app = DebuggerApp.replay(TraceIndex(trace))
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause(1.0)
        app.select(Selection("score", 4))
        await pilot.pause(0.3)
        app.screen.panes["timeline"].focus()
        await pilot.press("5", "w")  # the Events hidden: the Timeline has their room
        await pilot.pause(0.3)
        app.save_screenshot("cluster-timeline-by-worker.svg", str(HERE))


async def shoot(sample: str, during: float | None, keys: list[str], theme: str, tmp: Path) -> None:
    program = SAMPLES / f"{sample}.py"
    flow = load_program(f"{program}:flow") if program.exists() else load_flow(SAMPLES / f"{sample}.json")
    inputs = {} if program.exists() else prepare_inputs(flow, {})  # the declared defaults
    app = DebuggerApp.live(flow, inputs, tmp / f"{sample}.json")
    app.theme = theme
    async with app.run_test(size=SIZE) as pilot:
        if during is not None:
            for _ in range(200):  # the clock starts with the run's first event (process start-up varies)
                await pilot.pause(0.02)
                if app.screen.model.events:
                    break
            await pilot.pause(during)
            app.save_screenshot(f"{sample}-running.svg", str(HERE))
        for _ in range(200):
            await pilot.pause(0.05)
            if not app.runs[-1].running:
                break
        await pilot.pause(0.3)
        for key in keys:
            await pilot.press(key)
        await pilot.pause(0.2)
        app.save_screenshot(f"{sample}-finished.svg", str(HERE))


async def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        wanted = set(sys.argv[1:])
        for sample, during, keys, theme in SHOTS:
            if wanted and sample not in wanted:
                continue
            await shoot(sample, during, keys, theme, Path(tmp))
            print(f"screenshots/{sample}-*.svg")
        for name in SCENES:
            if not wanted or name in wanted:
                await scene(name, Path(tmp))
                print(f"screenshots/{name}.svg")


if __name__ == "__main__":
    asyncio.run(main())
