"""read_footer: a finished trace's footer from the end of the file, without its events."""

from __future__ import annotations

from pathlib import Path

from pflow_tui.engine.ir.load import build_flow
from pflow_tui.engine.run.executor import run_flow
from pflow_tui.engine.trace.writer import read_footer, read_trace

FLOW = {"name": "f", "nodes": [
    {"id": "a", "type": "echo", "params": {"message": "x" * 5000}},
    {"id": "b", "type": "echo", "params": {"message": "${a.echo}"}}],
    "edges": [{"from": "a", "to": "b"}]}


def test_the_footer_is_read_from_the_end(tmp_path: Path) -> None:
    path = tmp_path / "t.json"
    run_flow(build_flow(FLOW), {}, trace=path)
    footer = read_footer(path, chunk=100)  # a footer longer than a chunk
    assert footer is not None
    assert footer == read_trace(path).footer
    assert footer["store"]["b"]["echo"] == "x" * 5000


def test_no_footer_yet_or_cut_short_is_none(tmp_path: Path) -> None:
    path = tmp_path / "t.json"
    run_flow(build_flow(FLOW), {}, trace=path)
    data = path.read_bytes()
    head, _, _ = data.rpartition(b"\n],")
    (tmp_path / "running.json").write_bytes(head + b"\n")  # events only: the run goes on
    assert read_footer(tmp_path / "running.json") is None
    (tmp_path / "cut.json").write_bytes(data[:-20])  # the footer cut in the middle
    assert read_footer(tmp_path / "cut.json") is None
    assert read_footer(tmp_path / "missing.json") is None
    (tmp_path / "empty.json").write_bytes(b"")
    assert read_footer(tmp_path / "empty.json") is None
