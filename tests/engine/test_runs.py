"""The list of runs: records from each trace's header and footer lines, newest first."""

from __future__ import annotations

import os
import threading
import time
from pathlib import Path

import orjson
import pytest

from pflow_tui.engine.ir.load import build_flow
from pflow_tui.engine.run.executor import run_flow
from pflow_tui.engine.trace import runs
from pflow_tui.engine.trace.rerun import prepare_rerun
from pflow_tui.engine.trace.runs import list_runs, newest_trace, read_run

BATCH = {"name": "lr", "nodes": [{"id": "sq", "type": "shell", "batch": {
    "items": [1, 2, 3, 4], "error_handling": "continue"},
    "params": {"command": "test ${item} -ne 3 && echo ${item}"}}]}
FAILS = {"name": "boom", "nodes": [{"id": "x", "type": "shell",
                                    "params": {"command": "echo bad >&2; exit 3"}}]}


def run(doc: dict, path: Path, **kwargs) -> Path:
    worker = threading.Thread(target=run_flow, args=(build_flow(doc), {}), kwargs={"trace": path, **kwargs})
    worker.start()
    worker.join()
    return path


@pytest.fixture(scope="module")
def folder(tmp_path_factory) -> Path:
    d = tmp_path_factory.mktemp("traces")
    run(BATCH, d / "a.json")
    time.sleep(0.01)
    run(FAILS, d / "b.json")
    return d


def test_a_finished_run_is_read_from_its_header_and_footer(folder: Path) -> None:
    r = read_run(folder / "a.json")
    assert (r.status, r.flow, r.items, r.failed, r.cancelled, r.restored) == ("ok", "lr", 4, 1, 0, 0)
    assert r.duration is not None and r.duration > 0 and r.started and r.finished
    assert r.source == "<flow>" and r.error is None and r.readable
    b = read_run(folder / "b.json")
    assert (b.status, b.flow, b.items, b.failed) == ("failed", "boom", 0, 1)
    assert b.error and "exit code 3" in b.error


def test_only_the_two_ends_are_read(folder: Path, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """A trace much bigger than the blocks read: no read reaches the events in the middle."""
    data = (folder / "a.json").read_bytes()
    head, _, rest = data.partition(b"\n")
    events, _, foot = rest.rpartition(b"\n],")
    filler = b'{"seq":0,"t":0,"kind":"warning","path":"lr","message":"' + b"x" * 1000 + b'"},\n'
    big = tmp_path / "big.json"
    big.write_bytes(head + b"\n" + filler * 5000 + events + b"\n]," + foot)
    reads: list[int] = []
    real_open = open

    class Spy:
        def __init__(self, f) -> None:
            self.f = f

        def read(self, n: int = -1) -> bytes:
            reads.append(n)
            return self.f.read(n)

        def __getattr__(self, name):
            return getattr(self.f, name)

        def __enter__(self):
            return self

        def __exit__(self, *exc) -> None:
            self.f.close()

    monkeypatch.setattr(runs, "open", lambda *a, **k: Spy(real_open(*a, **k)), raising=False)
    r = read_run(big)
    assert (r.status, r.items, r.failed) == ("ok", 4, 1)
    assert sum(reads) <= 4 * runs.HEAD_BLOCK < big.stat().st_size / 50
    assert all(n >= 0 for n in reads)  # never "read the rest"


def test_a_trace_without_footer_is_interrupted_with_what_its_header_says(folder: Path,
                                                                         tmp_path: Path) -> None:
    data = (folder / "a.json").read_bytes()
    cut = tmp_path / "cut.json"
    header = orjson.loads(data.split(b"\n", 1)[0][: -len(b',"events":[')] + b"}")
    cut.write_bytes(data[: data.rindex(b"\n],")].replace(f'"pid":{header["pid"]}'.encode(), b'"pid":0'))
    r = read_run(cut)
    assert (r.status, r.flow, r.started, r.items, r.failed, r.duration) == (
        "interrupted", "lr", header["created"], None, None, None)
    # its process still alive, the file written lately: still running
    cut.write_bytes(data[: data.rindex(b"\n],")].replace(f'"pid":{header["pid"]}'.encode(),
                                                         f'"pid":{os.getpid()}'.encode()))
    assert read_run(cut).status == "running"
    os.utime(cut, (time.time() - 3600, time.time() - 3600))
    assert read_run(cut).status == "interrupted"
    # cut inside the footer: no footer
    cut.write_bytes(data[:-40])
    assert read_run(cut).status in ("interrupted", "running")


@pytest.mark.parametrize(("content", "why"), [
    (b"", "empty"),
    (b"\n\n", "empty"),
    (b'{"hello": "world"}\n', "not a pflow-tui trace"),
    (b'{"format":"other","version":1,"events":[\n]}\n', "format is 'other'"),
    (b'{"format":"pflow-tui-trace","version":9,"events":[\n],"status":"ok"}\n', "upgrade"),
    (b'{"format":"pflow-tui-trace","version":1,"created":"x', "ends inside the trace header"),
    (b"\x00\x01\x02binary" * 100, "binary"),
    (b'{"format":"pflow-tui-trace","version":1,"events":[\n{"seq":1,\n', None),
])
def test_a_corrupt_or_foreign_file_is_unreadable_and_never_raises(tmp_path: Path, content: bytes,
                                                                  why: str | None) -> None:
    path = tmp_path / "x.json"
    path.write_bytes(content)
    r = read_run(path)
    if why is None:  # a damaged trace with a good header: interrupted
        assert r.status == "interrupted"
    else:
        assert r.status == "unreadable" and not r.readable
        assert why in (r.error or ""), r.error


def test_the_list_is_newest_first_and_keeps_the_unreadable(folder: Path, tmp_path: Path) -> None:
    d = tmp_path / "traces"
    d.mkdir()
    for name in ("a.json", "b.json"):
        (d / name).write_bytes((folder / name).read_bytes())
    (d / "junk.json").write_bytes(b"not json")
    (d / "a.perfetto.json").write_bytes(b"[]")  # an export beside its trace: not a run
    (d / "notes.txt").write_text("x")
    (d / "a.results").mkdir()
    listed = list_runs(d)
    assert [r.path.name for r in listed] == ["b.json", "a.json", "junk.json"]
    assert {r.path.name for r in listed} == {"a.json", "b.json", "junk.json"}
    assert newest_trace(d) == d / "b.json"


def test_an_empty_or_missing_folder_lists_nothing(tmp_path: Path) -> None:
    assert list_runs(tmp_path) == [] and list_runs(tmp_path / "nope") == []
    assert newest_trace(tmp_path) is None


def test_a_rerun_counts_what_it_restored(folder: Path, tmp_path: Path) -> None:
    spec, inputs, cache = prepare_rerun(folder / "a.json")
    out = tmp_path / "re.json"
    worker = threading.Thread(target=run_flow, args=(spec, inputs),
                              kwargs={"trace": out, "cache": cache})
    worker.start()
    worker.join()
    r = read_run(out)
    assert (r.items, r.failed, r.restored) == (4, 1, 3)
    assert r.rerun_of == str((folder / "a.json").resolve())


def test_a_trace_written_before_summaries_shows_its_duration(folder: Path, tmp_path: Path) -> None:
    data = (folder / "a.json").read_bytes()
    head, _, foot = data.rpartition(b"\n],")
    doc = orjson.loads(b"{" + foot)
    del doc["summary"]
    old = tmp_path / "old.json"
    old.write_bytes(head + b"\n]," + orjson.dumps(doc)[1:] + b"\n")
    r = read_run(old)
    assert r.status == "ok" and r.duration == read_run(folder / "a.json").duration
    assert r.items is None and r.failed is None
