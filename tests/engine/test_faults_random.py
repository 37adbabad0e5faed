"""kill -9 and Ctrl-C at random points of a real ``pflow-tui run``: the trace reads back and
loses nothing older than the flush window, Ctrl-C writes the footer (exit 130), a re-run
resumes either to completion, and no node process outlives a kill -9.

Each case runs a sequential batch of 50 items (each a shell command sleeping 10-30 ms that
then appends a line to its marker file) and stops the run 0.05-1.0 s after its trace file
appeared. The marker file's mtime says when an item's command ended: every item whose
command ended more than the flush window (FLUSH_EVERY, plus a margin for the end event and
a loaded machine) before the kill must have its ``item.end`` in the trace.
"""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import orjson
import pytest
from processes import gone, wait_until

from pflow_tui.engine.trace import events as ev
from pflow_tui.engine.trace.rerun import rerun_flow
from pflow_tui.engine.trace.writer import FLUSH_EVERY, read_trace

pytestmark = pytest.mark.skipif(sys.platform != "linux", reason="process groups and pgrep: Linux")

ITEMS = 50
MARGIN = 0.15  # s: from a command's end to its item.end, and scheduling on a busy machine
SEEDS = range(20)


def left(marker: str) -> list[str]:
    """Processes whose command line holds ``marker`` (ours, not pgrep's own)."""
    out = subprocess.run(["pgrep", "-af", marker], capture_output=True, text=True).stdout
    return [line for line in out.splitlines() if "pgrep" not in line]


class Case:
    """One flow, its marker folder and a ``pflow-tui run`` of it, stopped at a random point."""

    def __init__(self, tmp_path: Path, seed: int, how: str) -> None:
        self.rng = random.Random(seed)
        self.marker = f"pflowfault{how}{seed}p{os.getpid()}"
        self.marks = tmp_path / "m"
        self.marks.mkdir()
        items = [{"i": i, "s": round(self.rng.uniform(0.010, 0.030), 3)} for i in range(ITEMS)]
        doc = {"nodes": [{"id": "work", "type": "shell", "batch": {"items": items},
                          "params": {"command": f": {self.marker}; sleep ${{item.s}}; "
                                                f"echo x >> {self.marks}/m_${{item.i}}"}}],
               "edges": []}
        self.flow = tmp_path / "flow.json"
        self.flow.write_bytes(orjson.dumps(doc))
        self.trace = tmp_path / "t.json"

    def start(self) -> subprocess.Popen[bytes]:
        proc = subprocess.Popen([sys.executable, "-m", "pflow_tui", "run", str(self.flow),
                                 "--trace", str(self.trace)],
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, start_new_session=True)
        assert wait_until(lambda: self.trace.exists() or proc.poll() is not None, 30)
        return proc

    def stop(self, proc: subprocess.Popen[bytes], sig: int) -> tuple[float, bytes]:
        """Send ``sig`` (to the whole process group, as a terminal does) 0.05-1.0 s from now;
        (the wall-clock time it was sent, stderr)."""
        time.sleep(self.rng.uniform(0.05, 1.0))
        at = time.time()
        os.killpg(proc.pid, sig)
        try:
            _, err = proc.communicate(timeout=30)
        finally:
            if proc.poll() is None:
                proc.kill()
        return at, err

    def ended(self) -> dict[int, float]:
        """item index -> when its command last ended (its marker file's mtime)."""
        return {int(p.name[2:]): p.stat().st_mtime for p in self.marks.glob("m_*")}

    def runs(self) -> dict[int, int]:
        return {int(p.name[2:]): len(p.read_text().splitlines()) for p in self.marks.glob("m_*")}

    def check_trace(self, killed_at: float) -> set[int]:
        """The trace reads back, and holds every item that ended before the flush window;
        returns the items it holds as ended ok."""
        trace = read_trace(self.trace)  # (no events at all: killed in its first flush window)
        assert [e["seq"] for e in trace.events] == list(range(1, len(trace.events) + 1))
        ok = {e["index"] for e in trace.events if e["kind"] == ev.ITEM_END and e["status"] == "ok"}
        window = killed_at - FLUSH_EVERY - MARGIN
        old = {i for i, t in self.ended().items() if t < window}
        assert old <= ok, f"lost items {sorted(old - ok)} that ended before the flush window"
        return ok

    def resume(self, tmp_path: Path, recorded_ok: set[int]) -> None:
        """A re-run completes the batch without doing recorded work again."""
        again = rerun_flow(self.trace, trace=tmp_path / "r.json")
        assert again.status == "ok", again.error
        runs = self.runs()
        assert sorted(runs) == list(range(ITEMS))
        assert all(runs[i] == 1 for i in recorded_ok)


@pytest.mark.slow
@pytest.mark.parametrize("seed", SEEDS)
def test_kill_9_at_a_random_point(tmp_path: Path, seed: int) -> None:
    case = Case(tmp_path, seed, "k")
    proc = case.start()
    killed_at, _ = case.stop(proc, signal.SIGKILL)
    assert proc.returncode == -signal.SIGKILL or proc.returncode == 0  # 0: it ended first
    # no command of the run outlives it (the watchdog kills their groups)
    assert wait_until(lambda: not left(case.marker), 5), left(case.marker)
    ok = case.check_trace(killed_at)
    if seed % 4 == 0:  # (a re-run takes time: a quarter of the cases)
        case.resume(tmp_path, ok)


@pytest.mark.slow
@pytest.mark.parametrize("seed", SEEDS)
def test_ctrl_c_at_a_random_point(tmp_path: Path, seed: int) -> None:
    case = Case(tmp_path, seed, "i")
    proc = case.start()
    at, err = case.stop(proc, signal.SIGINT)
    trace = read_trace(case.trace)
    # Exit code 130; or killed by SIGINT (-2, which a shell shows as 130 too) when the signal
    # came as the interpreter was exiting: Python then ends itself with the signal.
    assert proc.returncode in (130, -signal.SIGINT, 0), err.decode()
    if trace.status == "ok":  # the run had ended before the signal came
        return
    assert proc.returncode != 0
    assert b"Traceback" not in err
    assert not trace.truncated and trace.status == "interrupted"
    assert trace.footer["error"]["type"] == "KeyboardInterrupt"
    ok = case.check_trace(at)
    # Ctrl-C keeps everything: every command that ended well before the signal is recorded
    assert {i for i, t in case.ended().items() if t < at - 0.05} <= ok
    assert wait_until(lambda: not left(case.marker), 5), left(case.marker)
    if seed % 2 == 0:  # (a re-run takes time: half of the cases)
        case.resume(tmp_path, ok)


@pytest.mark.slow
def test_a_process_worker_dies_with_a_kill_9_of_the_run(tmp_path: Path) -> None:
    """A code node in a worker process (``"executor": "process"``), busy with a child of its
    own: both end when ``pflow-tui run`` is killed with SIGKILL."""
    marker = f"pflowfaultworker{os.getpid()}"
    pid_file = tmp_path / "worker.pid"
    code = ("import os, subprocess, time\np: str\n"
            f"subprocess.Popen(['sh', '-c', ': {marker}; sleep 99'])\n"
            "open(p, 'w').write(str(os.getpid()))\ntime.sleep(99)\nresult: int = 1")
    doc = {"nodes": [{"id": "busy", "type": "code", "executor": "process",
                      "params": {"inputs": {"p": str(pid_file)}, "code": code}}], "edges": []}
    flow = tmp_path / "flow.json"
    flow.write_bytes(orjson.dumps(doc))
    proc = subprocess.Popen([sys.executable, "-m", "pflow_tui", "run", str(flow),
                             "--trace", str(tmp_path / "t.json")],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, start_new_session=True)
    try:
        assert wait_until(lambda: pid_file.exists() and pid_file.read_text().strip(), 30)
        assert wait_until(lambda: bool(left(marker)), 5)
        worker = int(pid_file.read_text())
        os.kill(proc.pid, signal.SIGKILL)  # pflow-tui alone, not its group
        proc.wait(10)
        assert wait_until(lambda: gone(worker), 5), "the worker outlived the run"
        assert wait_until(lambda: not left(marker), 5), left(marker)
    finally:
        if proc.poll() is None:
            proc.kill()
        for line in left(marker):
            os.kill(int(line.split()[0]), signal.SIGKILL)


def test_a_cancelled_process_worker_takes_its_children_along(tmp_path: Path) -> None:
    """A code node in a worker process that times out... is cancelled by a stop: the worker's
    whole process group is killed, with the child it started."""
    import threading

    from pflow_tui.engine.ir.load import build_flow
    from pflow_tui.engine.run.executor import run_flow

    marker = f"pflowfaultcancel{os.getpid()}"
    pid_file = tmp_path / "worker.pid"
    code = ("import os, subprocess, time\np: str\n"
            f"subprocess.Popen(['sh', '-c', ': {marker}; sleep 99'])\n"
            "open(p, 'w').write(str(os.getpid()))\ntime.sleep(99)\nresult: int = 1")
    doc = {"nodes": [{"id": "busy", "type": "code", "executor": "process",
                      "params": {"inputs": {"p": str(pid_file)}, "code": code}}], "edges": []}
    stop = threading.Event()

    def stopper() -> None:
        wait_until(lambda: pid_file.exists() and pid_file.read_text().strip() and left(marker), 30)
        stop.set()

    t = threading.Thread(target=stopper)
    t.start()
    try:
        result = run_flow(build_flow(doc), {}, trace=tmp_path / "t.json", stop=stop)
        t.join()
        assert result.status == "interrupted"
        assert wait_until(lambda: gone(int(pid_file.read_text())), 5)
        assert wait_until(lambda: not left(marker), 5), left(marker)
    finally:
        stop.set()
        for line in left(marker):
            os.kill(int(line.split()[0]), signal.SIGKILL)
