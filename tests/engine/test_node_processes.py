"""Node processes end with the run: own process group, killed on timeout, cancel, failure,
Ctrl-C, SIGTERM and kill -9 of pflow-tui; a command that backgrounds a child returns when
the command itself ends."""

from __future__ import annotations

import itertools
import os
import signal
import subprocess
import sys
import threading
from pathlib import Path

import orjson
import pytest
from processes import gone, wait_until

from pflow_tui.engine.ir.load import build_flow
from pflow_tui.engine.run.executor import run_flow
from pflow_tui.engine.trace.writer import read_trace

pytestmark = pytest.mark.skipif(sys.platform != "linux", reason="process groups and /proc: Linux")


def pids(folder: Path) -> list[int]:
    """The pids the commands wrote to ``*.pid`` files."""
    return [int(p.read_text()) for p in sorted(folder.glob("*.pid")) if p.read_text().strip()]


def shell(nid: str, command: str, **params) -> dict:
    return {"id": nid, "type": "shell", "params": {"command": command, **params}}


def flow(*nodes: dict) -> dict:
    edges = [{"from": a["id"], "to": b["id"]} for a, b in itertools.pairwise(nodes)]
    return {"nodes": list(nodes), "edges": edges}


def test_a_command_that_backgrounds_a_child_returns_when_it_ends(tmp_path: Path) -> None:
    doc = flow(shell("bg", f"sleep 77 & echo $! > {tmp_path}/bg.pid; echo started", timeout=20),
               shell("sub", f"(sleep 88 & echo $! > {tmp_path}/sub.pid); echo sub", timeout=20))
    result = run_flow(build_flow(doc), {}, trace=tmp_path / "t.json")
    assert result.status == "ok"  # not a timeout: the node did not wait for the sleeps
    assert result.store["bg"]["stdout"] == "started" and result.store["bg"]["exit_code"] == 0
    assert result.store["sub"]["stdout"] == "sub"
    assert len(pids(tmp_path)) == 2
    assert wait_until(lambda: all(gone(p) for p in pids(tmp_path)), 5)  # ended with the run


def test_a_background_child_serves_later_nodes_and_ends_with_the_run(tmp_path: Path) -> None:
    doc = flow(shell("start", f"sleep 99 & echo $! > {tmp_path}/s.pid"),
               shell("use", f"kill -0 $(cat {tmp_path}/s.pid) && echo alive"))
    result = run_flow(build_flow(doc), {}, trace=tmp_path / "t.json")
    assert result.store["use"]["stdout"] == "alive"
    assert pids(tmp_path) and wait_until(lambda: all(gone(p) for p in pids(tmp_path)), 2)


@pytest.mark.slow
def test_timeout_kills_the_whole_group_at_once(tmp_path: Path) -> None:
    doc = flow(shell("slow", f"sleep 60 & echo $! > {tmp_path}/c.pid; echo $$ > {tmp_path}/sh.pid; "
                     "sleep 60", timeout=1))
    seen: list[list[int]] = []

    def sink(event: dict) -> None:  # the node has ended: its processes must be gone already
        if event["kind"] == "node.end":
            seen.append([p for p in pids(tmp_path) if not gone(p)])

    result = run_flow(build_flow(doc), {}, trace=tmp_path / "t.json", sinks=[sink])
    assert result.status == "failed"
    assert result.store["slow"]["error"] == "Command timed out after 1 seconds"
    assert len(pids(tmp_path)) == 2 and seen == [[]]


@pytest.mark.slow
def test_a_failing_command_leaves_nothing_running(tmp_path: Path) -> None:
    doc = flow(shell("bad", f"sleep 60 & echo $! > {tmp_path}/c.pid; exit 3"))
    alive_at_end: list[int] = []

    def sink(event: dict) -> None:
        if event["kind"] == "node.end":
            alive_at_end.extend(p for p in pids(tmp_path) if not gone(p))

    result = run_flow(build_flow(doc), {}, trace=tmp_path / "t.json", sinks=[sink])
    assert result.status == "failed" and result.store["bad"]["exit_code"] == 3
    assert pids(tmp_path) and alive_at_end == []


def test_a_stopped_run_leaves_no_process_of_its_nodes(tmp_path: Path) -> None:
    doc = flow(shell("long", f"(sleep 88 & echo $! > {tmp_path}/sub.pid); "
                     f"echo $$ > {tmp_path}/sh.pid; sleep 60"))
    stop = threading.Event()
    threading.Thread(target=lambda: wait_until(lambda: len(pids(tmp_path)) == 2) and stop.set(),
                     daemon=True).start()
    result = run_flow(build_flow(doc), {}, trace=tmp_path / "t.json", stop=stop)
    assert result.status == "interrupted"
    assert len(pids(tmp_path)) == 2
    assert wait_until(lambda: all(gone(p) for p in pids(tmp_path)), 5)


LONG = flow(shell("long", "(sleep 88 & echo $! > sub.pid); sleep 66 & echo $! > child.pid; "
                          "echo $$ > sh.pid; wait"))


def start_run(tmp_path: Path) -> subprocess.Popen[bytes]:
    (tmp_path / "flow.json").write_bytes(orjson.dumps(LONG))
    proc = subprocess.Popen([sys.executable, "-m", "pflow_tui", "run", "flow.json", "--trace", "t.json"],
                            cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    assert wait_until(lambda: len(pids(tmp_path)) == 3, 30), "the node never started"
    return proc


@pytest.mark.parametrize(("sig", "code", "error"), [
    (signal.SIGTERM, 143, {"type": "Terminated", "message": "terminated (SIGTERM)"}),
    (signal.SIGINT, 130, {"type": "KeyboardInterrupt", "message": "interrupted (Ctrl-C)"}),
])
def test_sigterm_and_sigint_write_the_footer_and_end_every_process(
        tmp_path: Path, sig: int, code: int, error: dict) -> None:
    proc = start_run(tmp_path)
    proc.send_signal(sig)
    out, _ = proc.communicate(timeout=30)
    assert proc.returncode == code, out
    trace = read_trace(tmp_path / "t.json")
    assert not trace.truncated and trace.status == "interrupted"
    assert trace.footer["error"] == error
    assert "Traceback" not in out.decode()
    assert wait_until(lambda: all(gone(p) for p in pids(tmp_path)), 5)


def test_kill_9_of_the_run_takes_its_node_processes_along(tmp_path: Path) -> None:
    proc = start_run(tmp_path)
    proc.kill()
    proc.wait(timeout=30)
    assert wait_until(lambda: all(gone(p) for p in pids(tmp_path)), 10), [
        p for p in pids(tmp_path) if not gone(p)]


def run_shell_node(**params) -> dict:
    from pflow_tui.engine.nodes.base import RunContext
    from pflow_tui.engine.nodes.shell import run_shell

    return run_shell(params, RunContext("f.n"))


def test_big_stdin_and_outputs_pass_through_without_a_deadlock() -> None:
    data = "x" * 3_000_000 + "\n"
    out = run_shell_node(command="cat; head -c 2000000 /dev/zero | tr '\\0' e >&2", stdin=data)
    assert out["exit_code"] == 0 and out["stdout"] == data.rstrip("\n")
    assert out["stderr"] == "e" * 2_000_000


def test_a_command_that_does_not_read_its_stdin_still_ends_ok() -> None:
    out = run_shell_node(command="echo done", stdin="y" * 1_000_000)
    assert out["exit_code"] == 0 and out["stdout"] == "done"


def test_output_written_just_before_exit_is_kept_when_a_child_holds_the_pipe(tmp_path: Path) -> None:
    out = run_shell_node(command=f"sleep 30 & echo $! > {tmp_path}/c.pid; seq 1 20000; echo err >&2",
                         timeout=20)
    assert out["exit_code"] == 0
    assert out["stdout"].split("\n") == [str(i) for i in range(1, 20001)]
    assert out["stderr"] == "err\n"
    os.kill(int((tmp_path / "c.pid").read_text()), signal.SIGKILL)  # no run around it: clean up
