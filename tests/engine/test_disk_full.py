"""A full disk mid-run: the run stops at the first write that fails (nothing new starts), says
where to resume, exits 1; the trace reads back and a re-run resumes it once there is space."""

from __future__ import annotations

import contextlib
import errno
import io
import os
import subprocess
from pathlib import Path

import orjson
import pytest

from pflow_tui.cli import main
from pflow_tui.engine.ir.load import build_flow
from pflow_tui.engine.run.executor import run_flow
from pflow_tui.engine.trace import events as ev
from pflow_tui.engine.trace import writer as trace_mod
from pflow_tui.engine.trace.rerun import rerun_flow
from pflow_tui.engine.trace.writer import read_trace

ITEMS = 200


def batch_flow(markers: Path, pad: int = 0) -> dict:
    """A first node, then a sequential batch whose items append a line to their marker file
    (how often they ran)."""
    out = f"; printf '%0{pad}d' 0" if pad else ""
    return {"nodes": [{"id": "first", "type": "echo", "params": {"message": "before the batch"}},
                      {"id": "work", "type": "shell",
                       "params": {"command": f"echo x >> {markers}/m_${{item}}; sleep 0.005{out}"},
                       "batch": {"items": list(range(ITEMS))}}],
            "edges": [{"from": "first", "to": "work"}]}


class FullDisk(io.RawIOBase):
    """A file with room for its first write and ``room`` bytes more; then a short write and
    ENOSPC, as a full disk does."""

    def __init__(self, fd: int, room: int) -> None:
        self.fd, self.room, self.first, self.full = fd, room, True, False

    def writable(self) -> bool:
        return True

    def fileno(self) -> int:
        return self.fd

    def write(self, data: bytes) -> int:  # type: ignore[override]
        if self.first:
            self.first = False
            return os.write(self.fd, data)
        if self.room <= 0:
            self.full = True
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        n = os.write(self.fd, bytes(data[: self.room]))
        self.room -= n
        return n

    def close(self) -> None:
        if not self.closed:
            os.close(self.fd)
        super().close()


@pytest.fixture
def full_disk(monkeypatch: pytest.MonkeyPatch) -> list[FullDisk]:
    """Trace files opened from now on fill up after 20 KB of events."""
    opened: list[FullDisk] = []

    def opener(path: Path, *, replace: bool) -> io.BufferedWriter:
        raw = FullDisk(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644), 20_000)
        opened.append(raw)
        return io.BufferedWriter(raw, 1 << 20)

    monkeypatch.setattr(trace_mod, "_open_trace", opener)
    return opened


def ran(markers: Path) -> dict[int, int]:
    """How many times each item ran (lines in its marker file)."""
    return {int(p.name[2:]): len(p.read_text().splitlines()) for p in markers.glob("m_*")}


@pytest.mark.slow
def test_a_full_disk_stops_the_run_and_the_trace_reads_back(
        tmp_path: Path, full_disk: list[FullDisk], monkeypatch: pytest.MonkeyPatch) -> None:
    markers = tmp_path / "m"
    markers.mkdir()
    path = tmp_path / "t.json"
    seen: list[dict] = []
    late_starts: list[dict] = []

    def sink(event: dict) -> None:
        seen.append(event)
        if full_disk and full_disk[0].full and event["kind"] in (ev.ITEM_START, ev.NODE_START):
            late_starts.append(event)

    result = run_flow(build_flow(batch_flow(markers)), {}, trace=path, sinks=[sink])
    assert result.status == "failed"
    assert result.error is not None and result.error["type"] == "TraceWriteError"
    assert result.error["errno"] == errno.ENOSPC
    assert "cannot write the trace (No space left on device)" in result.error["message"]
    assert f"pflow-tui rerun {path}" in result.error["message"]
    counts = ran(markers)
    started = [e for e in seen if e["kind"] == ev.ITEM_START]
    assert 0 < len(counts) < ITEMS  # stopped well before the end
    assert len(counts) == len(started)  # every item that ran had started as an event
    assert len(late_starts) <= 1  # at most the one already on its way when the write failed

    trace = read_trace(path)  # what reached the file: a prefix of the run, cut at a line
    assert trace.truncated and trace.status == "interrupted"
    assert [e["seq"] for e in trace.events] == list(range(1, len(trace.events) + 1))
    assert trace.events == seen[: len(trace.events)]
    assert b"\n]," not in path.read_bytes()  # no footer was forced after the failure

    monkeypatch.setattr(trace_mod, "_open_trace", _real_open)  # space is free again
    ok_on_disk = {e["index"] for e in trace.events
                  if e["kind"] == ev.ITEM_END and e["status"] == "ok"}
    again = rerun_flow(path, trace=tmp_path / "r.json")
    assert again.status == "ok"
    assert again.rerun is not None and again.rerun["restored_items"] == len(ok_on_disk)
    counts = ran(markers)
    assert sorted(counts) == list(range(ITEMS))
    assert all(counts[i] == 1 for i in ok_on_disk)  # recorded work is not done twice


_real_open = trace_mod._open_trace


def test_cli_run_on_a_full_disk_exits_1_with_what_ran_and_where_to_resume(
        tmp_path: Path, full_disk: list[FullDisk], capsys: pytest.CaptureFixture[str],
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("COLUMNS", "250")
    markers = tmp_path / "m"
    markers.mkdir()
    flow = tmp_path / "flow.json"
    flow.write_bytes(orjson.dumps(batch_flow(markers)))
    path = tmp_path / "t.json"
    assert main(["run", str(flow), "--trace", str(path)]) == 1
    out, err = capsys.readouterr()
    text = " ".join((out + err).split())
    assert "run failed" in text
    assert "cannot write the trace (No space left on device)" in text
    assert f"pflow-tui rerun {path}" in text
    assert "what ran until the trace could not be written" in text
    assert "before the batch" in text  # the outputs of the node that ended
    assert "Traceback" not in text


@contextlib.contextmanager
def small_tmpfs(where: Path, size: str):
    where.mkdir()
    try:
        done = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(where)],
                              capture_output=True, timeout=10)
    except (OSError, subprocess.TimeoutExpired):
        pytest.skip("cannot run mount here")
    if done.returncode != 0:
        pytest.skip("mounting a tmpfs is not allowed here")
    try:
        yield where
    finally:
        subprocess.run(["umount", "-l", str(where)], capture_output=True, timeout=10)


@pytest.mark.slow
def test_a_real_full_filesystem(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    markers = tmp_path / "m"
    markers.mkdir()
    flow = tmp_path / "flow.json"
    flow.write_bytes(orjson.dumps(batch_flow(markers, pad=600)))  # ~1.5 KB of events per item
    with small_tmpfs(tmp_path / "disk", "128k") as disk:
        path = disk / "t.json"
        assert main(["run", str(flow), "--trace", str(path)]) == 1
        out, err = capsys.readouterr()
        assert "cannot write the trace (No space left on device)" in " ".join((out + err).split())
        trace = read_trace(path)
        assert trace.truncated and trace.events
        assert [e["seq"] for e in trace.events] == list(range(1, len(trace.events) + 1))
        assert 0 < len(ran(markers)) < ITEMS
        resumed = tmp_path / "r.json"  # where there is space
        assert main(["rerun", str(path), "--trace", str(resumed)]) == 0
    assert sorted(ran(markers)) == list(range(ITEMS))
    assert read_trace(resumed).status == "ok"


# --- the results file of a batch with batch_size (spill.py) fills the disk -------------------

def spilled_flow(markers: Path, pad: int = 600) -> dict:
    """``batch_flow`` whose batch writes its results to a file (``batch_size``)."""
    flow = batch_flow(markers, pad=pad)
    flow["nodes"][1]["batch"]["batch_size"] = 10
    return flow


@pytest.fixture
def full_results(monkeypatch: pytest.MonkeyPatch) -> list[FullDisk]:
    """Results files (spill.py) opened from now on fill up after 20 KB."""
    from pflow_tui.engine.run import spill

    opened: list[FullDisk] = []

    def fake_open(file: Path | int, mode: str, buffering: int = -1) -> io.BufferedWriter:
        assert mode == "wb"
        fd = file if isinstance(file, int) else os.open(file, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        raw = FullDisk(fd, 20_000)
        raw.first = False
        opened.append(raw)
        return io.BufferedWriter(raw, 4096)  # a small buffer: the failure shows early

    monkeypatch.setattr(spill, "open", fake_open, raising=False)
    return opened


@pytest.mark.slow
def test_a_full_disk_under_the_results_file_stops_the_run_too(
        tmp_path: Path, full_results: list[FullDisk], monkeypatch: pytest.MonkeyPatch) -> None:
    markers = tmp_path / "m"
    markers.mkdir()
    path = tmp_path / "t.json"
    seen: list[dict] = []
    late_starts: list[dict] = []

    def sink(event: dict) -> None:
        seen.append(event)
        if full_results and full_results[0].full and event["kind"] == ev.ITEM_START:
            late_starts.append(event)

    result = run_flow(build_flow(spilled_flow(markers)), {}, trace=path, sinks=[sink])
    assert full_results and full_results[0].full
    assert result.status == "failed"
    assert result.error is not None and result.error["type"] == "TraceWriteError"
    assert result.error["errno"] == errno.ENOSPC
    assert f"pflow-tui rerun {path}" in result.error["message"]
    assert 0 < len(ran(markers)) < ITEMS  # stopped well before the end
    assert len(late_starts) <= 1  # nothing new started once the write failed

    trace = read_trace(path)  # the trace stops there too: a prefix of the run, no footer
    assert trace.truncated and trace.events
    assert [e["seq"] for e in trace.events] == list(range(1, len(trace.events) + 1))

    from pflow_tui.engine.run import spill
    monkeypatch.setattr(spill, "open", open, raising=False)  # space is free again
    ok_on_disk = {e["index"] for e in trace.events
                  if e["kind"] == ev.ITEM_END and e["status"] == "ok"}
    again = rerun_flow(path, trace=tmp_path / "r.json")
    assert again.status == "ok", again.error
    assert again.rerun is not None and again.rerun["restored_items"] == len(ok_on_disk)
    counts = ran(markers)
    assert sorted(counts) == list(range(ITEMS))
    assert all(counts[i] == 1 for i in ok_on_disk)  # recorded work is not done twice


@pytest.mark.slow
def test_a_real_full_filesystem_under_the_results_folder(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    markers = tmp_path / "m"
    markers.mkdir()
    flow = tmp_path / "flow.json"
    flow.write_bytes(orjson.dumps(spilled_flow(markers, pad=3000)))  # 600 KB of results
    path = tmp_path / "t.json"  # on a disk with room; its results folder is a tiny tmpfs
    with small_tmpfs(tmp_path / "t.results", "64k"):
        assert main(["run", str(flow), "--trace", str(path)]) == 1
        out, err = capsys.readouterr()
        text = " ".join((out + err).split())
        assert "cannot write the trace (No space left on device)" in text
        assert "Traceback" not in text
        trace = read_trace(path)
        assert trace.truncated and trace.events
        assert 0 < len(ran(markers)) < ITEMS
    resumed = tmp_path / "r.json"
    assert main(["rerun", str(path), "--trace", str(resumed)]) == 0
    assert sorted(ran(markers)) == list(range(ITEMS))
    assert read_trace(resumed).status == "ok"
