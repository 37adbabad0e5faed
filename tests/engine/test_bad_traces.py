"""The corpus of crafted traces (tests/bad_traces/) through every reader and command.

Each trace has one thing wrong; ``cases.json`` says whether a reader must refuse it (a bad
header, no trace: exit 2 with a message) or how many malformed events it skips. Readers
(``read_trace``, replay's index, export) say exactly that many; diff and rerun count the
malformed events among those they read. No command shows a traceback or exits 70.
The app's side (Pilot) is in tests/app/test_replay_bad_traces.py, a real terminal in
tests/terminal/test_bad_traces_in_tmux.py.
"""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from pflow_tui.cli import main
from pflow_tui.engine.trace.check import check_event, malformed_note
from pflow_tui.engine.trace.diff import diff_traces
from pflow_tui.engine.trace.export import open_trace
from pflow_tui.engine.trace.reader import TraceIndex
from pflow_tui.engine.trace.writer import TraceError, read_trace

CORPUS = Path(__file__).resolve().parents[1] / "bad_traces"
CASES: dict[str, dict[str, Any]] = json.loads((CORPUS / "cases.json").read_text())
REFUSED = sorted(n for n, c in CASES.items() if c.get("refused"))
READ = sorted(n for n, c in CASES.items() if not c.get("refused"))
PFLOW_TUI = Path(sys.executable).parent / "pflow-tui"


def trace(name: str) -> Path:
    return CORPUS / f"{name}.json"


def test_the_corpus_is_what_its_generator_writes() -> None:
    spec = importlib.util.spec_from_file_location("make_corpus", CORPUS / "make_corpus.py")
    assert spec is not None and spec.loader is not None
    gen = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(gen)
    assert len(gen.CASES) >= 40 and set(gen.CASES) == set(CASES)
    for name, (make, expect) in gen.CASES.items():
        assert trace(name).read_bytes() == make(), f"{name}: run tests/bad_traces/make_corpus.py"
        assert CASES[name] == expect
    assert len(REFUSED) >= 8 and len(READ) >= 40


@pytest.mark.parametrize("name", REFUSED)
def test_a_bad_header_or_no_trace_is_refused_by_every_reader(name: str) -> None:
    for read in (read_trace, TraceIndex):
        with pytest.raises(TraceError) as info:
            read(trace(name))
        assert str(trace(name)) in str(info.value)
    with pytest.raises(TraceError):
        open_trace(trace(name))
    with pytest.raises(TraceError):
        diff_traces(trace(name), trace(name))


@pytest.mark.parametrize("name", READ)
def test_readers_skip_and_count_what_is_malformed(name: str) -> None:
    expected = CASES[name]["skipped"]
    whole = read_trace(trace(name))
    index = TraceIndex(trace(name))
    events = list(index)
    assert index.skipped == index.check_all()
    source = open_trace(trace(name))
    list(source.events)
    if expected is not None:
        assert whole.skipped == index.skipped == source.skipped() == expected
    for e in [*whole.events, *events]:  # what readers hand out passes the check
        assert check_event(e) is None
    diff = diff_traces(trace(name), trace(name))
    assert not diff.differs
    assert diff.a.skipped <= (expected if expected is not None else 2)


def test_sizes_come_from_the_events_present() -> None:
    index = TraceIndex(trace("batch_count_is_10e11"))
    start = next(e for e in index if e["kind"] == "node.start" and "batch" in e)
    assert start["batch"]["count"] == 10**11  # the number is kept (the app caps what it allocates)
    assert index.skipped == 0


def test_seal_lines_are_no_events_and_are_not_counted() -> None:
    index = TraceIndex(trace("kind_is_seal_lines_between_events"))
    plain = TraceIndex(trace("event_is_a_number"))
    assert len(index) == len(plain)  # the seal lines are out of the index
    assert [e["seq"] for e in index] == list(range(1, len(index) + 1))  # seq = position + 1
    assert index.skipped == 0 and read_trace(index.path).skipped == 0


@pytest.mark.parametrize("name", ["pretty_printed", "crlf_line_ends"])
def test_reformatted_traces_open_in_the_index(name: str) -> None:
    index = TraceIndex(trace(name))
    base = TraceIndex(trace("seq_twice_the_same"))
    assert index.reformatted and len(index) == len(base) == 15
    assert index.status == "ok" and not index.truncated
    assert [e["kind"] for e in index.summaries(0, len(index))] == [e["kind"] for e in base]


@pytest.mark.parametrize("name", sorted(CASES))
def test_commands_in_process(name: str, tmp_path: Path, capsys: pytest.CaptureFixture[str],
                             monkeypatch: pytest.MonkeyPatch) -> None:
    """diff, export and rerun of every trace: exit 2 (refused) or 0 (diff, export) and
    0/1/2 (rerun), never 70 (an internal error)."""
    monkeypatch.chdir(tmp_path)
    refused = bool(CASES[name].get("refused"))
    path = str(trace(name))
    codes = {"diff": main(["diff", path, path]),
             "export": main(["export", path, "-o", str(tmp_path / "out.json")]),
             "rerun": main(["rerun", path, "--trace", str(tmp_path / "rerun.json")])}
    err = " ".join(capsys.readouterr().err.split())
    assert "Traceback" not in err and "internal error" not in err
    if refused:
        assert codes == {"diff": 2, "export": 2, "rerun": 2}
        assert err.count("error:") == 3
        return
    assert codes["diff"] == 0 and codes["export"] == 0 and codes["rerun"] in (0, 1, 2)
    expected = CASES[name]["skipped"]
    if expected:  # export reads every event: it says exactly how many it skipped
        assert malformed_note(expected) in err
    elif expected == 0:
        assert "malformed" not in err


SUBPROCESS = [*REFUSED[:4], "every_event_is_a_scalar", "pretty_printed_events_are_scalars",
              "event_is_nested_100k_deep", "seq_is_10e30", "batch_count_is_10e11", "crlf_line_ends",
              "kind_is_seal_lines_between_events", "node_id_holds_rich_markup"]


@pytest.mark.parametrize("name", SUBPROCESS)
def test_commands_as_subprocesses(name: str, tmp_path: Path) -> None:
    """The same as a user runs them: exit codes, and no 'Traceback' on stderr."""
    path = str(trace(name))
    for args, codes in ((["diff", path, path], {0, 2}), (["export", path, "-o", "o.json"], {0, 2}),
                        (["rerun", path, "--trace", "r.json"], {0, 1, 2})):
        done = subprocess.run([str(PFLOW_TUI), *args], cwd=tmp_path, capture_output=True, text=True,
                              timeout=60, check=False)
        assert done.returncode in codes, (args, done.stderr)
        assert "Traceback" not in done.stderr and "Traceback" not in done.stdout
        if CASES[name].get("refused"):
            assert done.returncode == 2 and "error:" in done.stderr


@pytest.mark.parametrize("name", sorted(CASES))
def test_replay_at_a_place_the_run_never_reached(name: str, capsys: pytest.CaptureFixture[str]) -> None:
    """``--at`` is checked against the raw lines of the trace: any of them may be odd."""
    assert main(["replay", str(trace(name)), "--at", "corpus.sq.iteration_99"]) == 2
    err = " ".join(capsys.readouterr().err.split())
    assert err.startswith("error:") and "Traceback" not in err and "internal error" not in err
    assert ("iteration_99" in err) != bool(CASES[name].get("refused"))


def test_the_list_of_runs_of_the_corpus(tmp_path: Path) -> None:
    """Every crafted trace in a folder: the list shows each (unreadable or not), never raises."""
    from pflow_tui.engine.trace.runs import list_runs

    records = {r.path.stem: r for r in list_runs(CORPUS)}
    assert records.pop("cases").status == "unreadable"  # (the list of what each file is)
    assert set(records) == set(CASES)
    reformatted = {"pretty_printed", "pretty_printed_events_are_scalars", "crlf_line_ends"}
    for name, case in CASES.items():  # (the list reads a trace's first and last lines only:
        if name in reformatted:       # a re-formatted one shows as unreadable there)
            assert records[name].status == "unreadable"
            continue
        assert (records[name].status == "unreadable") == bool(case.get("refused")), (name, records[name])
    assert records["header_pid_is_10e30_and_cut_short"].status == "interrupted"
    done = subprocess.run([str(PFLOW_TUI), "runs", "--plain", "--dir", str(CORPUS)], capture_output=True,
                          text=True, timeout=60, check=False, cwd=tmp_path)
    assert done.returncode == 0 and "Traceback" not in done.stderr
    assert f"{len(CASES) + 1} runs in" in " ".join(done.stdout.split())
