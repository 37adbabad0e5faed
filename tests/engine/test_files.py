"""Flows and traces must be regular files below a size limit: /dev/zero, a FIFO, a folder,
a missing file or a file over the limit make every command exit 2 at once, with a message
that says what the path is; nothing blocks on a FIFO, nothing reads /dev/zero for ever."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from pflow_tui.cli import main
from pflow_tui.engine.trace.filecheck import FLOW_ENV, TRACE_ENV, FileRefused, check_file, limit, read_limited
from pflow_tui.engine.trace.reader import TraceIndex, TraceStream
from pflow_tui.engine.trace.runs import read_run
from pflow_tui.engine.trace.writer import TraceError, read_trace

CORPUS = Path(__file__).resolve().parents[1] / "bad_traces"
TRACE = CORPUS / "seq_twice_the_same.json"  # a sound trace of a harmless flow
PFLOW_TUI = Path(sys.executable).parent / "pflow-tui"
FLOW = {"name": "f", "nodes": [{"id": "a", "type": "echo", "params": {"message": "hi"}}], "edges": []}


@pytest.fixture
def fifo(tmp_path: Path) -> Path:
    if not hasattr(os, "mkfifo"):
        pytest.skip("no FIFOs here")
    path = tmp_path / "pipe.json"
    os.mkfifo(path)
    return path


def commands(path: Path) -> list[list[str]]:
    """Every command that reads a flow or a trace, given ``path`` as that file."""
    p = str(path)
    return [["run", p], ["validate", p], ["replay", p], ["diff", p, str(TRACE)], ["diff", str(TRACE), p],
            ["export", p, "-o", "out.json"], ["rerun", p, "--trace", "r.json"],
            ["rerun", str(TRACE), "--flow", p, "--trace", "r2.json"]]


@pytest.mark.slow
@pytest.mark.parametrize("what", ["dev_zero", "fifo", "folder", "missing"])
def test_no_command_reads_what_is_no_regular_file(what: str, tmp_path: Path, request) -> None:
    path = {"dev_zero": lambda: Path("/dev/zero"), "fifo": lambda: request.getfixturevalue("fifo"),
            "folder": lambda: tmp_path, "missing": lambda: tmp_path / "nope.json"}[what]()
    if what == "dev_zero" and not Path("/dev/zero").exists():
        pytest.skip("no /dev/zero")
    said = {"dev_zero": "character device", "fifo": "FIFO", "folder": "directory",
            "missing": "no such file"}[what]
    for args in commands(path):
        done = subprocess.run([str(PFLOW_TUI), *args], cwd=tmp_path, capture_output=True, text=True,
                              timeout=20, check=False)  # a FIFO opened would block: the timeout fails
        err = " ".join(done.stderr.split())
        assert done.returncode == 2, (args, err)
        assert said in err or (what == "missing" and "not found" in err), (args, err)
        assert "Traceback" not in err


def test_readers_refuse_at_once(fifo: Path) -> None:
    for read in (read_trace, TraceIndex, TraceStream):
        with pytest.raises(TraceError, match="FIFO"):
            read(fifo)
    with pytest.raises(FileRefused, match="FIFO"):
        check_file(fifo, "trace")
    assert read_run(fifo).status == "unreadable"  # the list of runs never opens it either


def test_size_limits_come_from_the_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                               capsys: pytest.CaptureFixture[str]) -> None:
    assert limit("flow") == 256 << 20 and limit("trace") == 4 << 30
    for raw, value in (("1000", 1000), ("512K", 512 << 10), ("3M", 3 << 20), ("2G", 2 << 30),
                       ("2GB", 2 << 30), ("1GiB", 1 << 30), ("nonsense", 256 << 20), ("0", 256 << 20)):
        monkeypatch.setenv(FLOW_ENV, raw)
        assert limit("flow") == value, raw
    monkeypatch.chdir(tmp_path)
    flow = tmp_path / "flow.json"
    flow.write_text(json.dumps(FLOW))
    monkeypatch.setenv(FLOW_ENV, "20")
    assert main(["validate", str(flow)]) == 2
    err = " ".join(capsys.readouterr().err.split())
    assert "over the 20 bytes limit for flow files" in err and FLOW_ENV in err
    monkeypatch.delenv(FLOW_ENV)
    assert main(["validate", str(flow)]) == 0
    monkeypatch.setenv(TRACE_ENV, "1K")
    for args in (["replay", str(TRACE)], ["diff", str(TRACE), str(TRACE)], ["export", str(TRACE)],
                 ["rerun", str(TRACE)]):
        assert main(args) == 2
        err = " ".join(capsys.readouterr().err.split())
        assert "over the 1 KB limit for trace files" in err and TRACE_ENV in err, args
    monkeypatch.setenv(TRACE_ENV, "1M")
    assert main(["diff", str(TRACE), str(TRACE)]) == 0


def test_read_limited_reads_a_regular_file(tmp_path: Path) -> None:
    f = tmp_path / "x.json"
    f.write_bytes(b"{}")
    assert read_limited(f, "flow") == b"{}"
    with pytest.raises(TraceError, match="cannot read"):
        read_limited(tmp_path / "none", "trace", TraceError)
