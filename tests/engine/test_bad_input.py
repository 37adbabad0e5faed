"""The corpus of broken flows in tests/bad_flows: exit code, a message naming the place, no traceback.

``tests/bad_flows/expected.json`` maps each file to
``{"args": [...], "exit": 2|1, "where": str|[str], "hint": str|[str], "validate": 0|2}``:
``args`` are extra ``NAME=VALUE`` arguments for ``pflow-tui run``; ``where`` (the place:
a JSON path, ``line L, column C``, an input or a run path) and ``hint`` (what is expected
or how to fix it) must appear in the output; ``validate`` is the exit code of
``pflow-tui validate`` on the same file. A run-time failure (exit 1) must leave a
complete trace.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections import Counter
from pathlib import Path
from typing import Any

import orjson
import pytest

from pflow_tui.cli import main
from pflow_tui.engine.ir.load import load_flow
from pflow_tui.engine.problems import FlowError

CORPUS = Path(__file__).resolve().parent.parent / "bad_flows"
EXPECTED: dict[str, dict[str, Any]] = orjson.loads((CORPUS / "expected.json").read_bytes())
RUNTIME = sorted(n for n, e in EXPECTED.items() if e["exit"] == 1)
STATIC = sorted(n for n, e in EXPECTED.items() if e["validate"] == 2)


def as_list(value: str | list[str] | None) -> list[str]:
    if value is None:
        return []
    return value if isinstance(value, list) else [value]


def flat(text: str) -> str:
    """Whitespace collapsed, so that a message wrapped by the console still matches."""
    return " ".join(text.split())


@pytest.fixture(autouse=True)
def _isolated(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.chdir(tmp_path)  # no .pflow-tui/ is left in the repository
    monkeypatch.setenv("COLUMNS", "250")  # keep Rich from wrapping paths and hints


def assert_reported(output: str, entry: dict[str, Any]) -> None:
    text = flat(output)
    for where in as_list(entry["where"]):
        assert flat(where) in text, f"the place {where!r} is not named in:\n{output}"
    for hint in as_list(entry.get("hint")):
        assert flat(hint) in text, f"the hint {hint!r} is missing from:\n{output}"
    assert "Traceback" not in output


def assert_complete_trace(path: Path) -> dict[str, Any]:
    data = orjson.loads(path.read_bytes())  # a finished trace is plain JSON
    assert data["status"] == "failed"
    events = data["events"]
    assert events[0]["kind"] == "run.start"
    assert events[-1]["kind"] == "run.end"
    kinds = Counter(e["kind"] for e in events)
    assert kinds["node.start"] == kinds["node.end"] >= 1
    assert kinds["item.start"] == kinds["item.end"]
    assert data["error"]["message"]
    return data


# --- the corpus itself --------------------------------------------------------------------------

def test_corpus_covers_every_file() -> None:
    files = {p.name for p in CORPUS.glob("*.json")} - {"expected.json"}  # children/ holds helpers
    assert files == set(EXPECTED)
    assert len(files) >= 30
    assert len(RUNTIME) >= 3
    assert any(len(as_list(e["where"])) >= 5 for e in EXPECTED.values())  # many errors in one file
    for name, entry in EXPECTED.items():
        assert entry["exit"] in (1, 2), name
        assert entry["validate"] in (0, 2), name
        assert as_list(entry["where"]), name


# --- pflow-tui run, in-process --------------------------------------------------------------------

@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_run_reports_where_and_how(name: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    entry = EXPECTED[name]
    trace = tmp_path / "t.json"
    code = main(["run", str(CORPUS / name), *entry["args"], "--trace", str(trace)])
    out, err = capsys.readouterr()
    assert code == entry["exit"], out + err
    assert_reported(out + err, entry)
    if entry["exit"] == 1:
        assert_complete_trace(trace)
    else:
        assert not trace.exists()  # nothing runs before the flow and its inputs are valid
    assert not (tmp_path / ".pflow-tui").exists()


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_validate(name: str, capsys: pytest.CaptureFixture[str]) -> None:
    entry = EXPECTED[name]
    code = main(["validate", str(CORPUS / name)])
    out, err = capsys.readouterr()
    assert code == entry["validate"], out + err
    assert "Traceback" not in out + err
    if code == 2:
        assert_reported(out + err, {"where": entry["where"], "hint": entry.get("hint")})


@pytest.mark.parametrize("name", STATIC)
def test_every_problem_says_where_what_and_how(name: str) -> None:
    with pytest.raises(FlowError) as info:
        load_flow(CORPUS / name)
    assert info.value.problems
    for problem in info.value.problems:
        assert problem.where.strip() and problem.what.strip() and problem.fix.strip(), problem


def test_all_problems_of_a_file_are_reported_together() -> None:
    with pytest.raises(FlowError) as info:
        load_flow(CORPUS / "many_errors.json")
    wheres = [p.where for p in info.value.problems]
    for where in as_list(EXPECTED["many_errors.json"]["where"]):
        assert where in wheres
    assert len(wheres) == len(set(wheres)) + 1  # nodes[3].batch.items has two distinct problems


def test_child_flows_are_helpers_used_by_the_corpus() -> None:
    """children/ holds the flows that corpus files include; they are not corpus entries."""
    children = sorted(p.name for p in (CORPUS / "children").glob("*.json"))
    assert children and not set(children) & set(EXPECTED)
    used = " ".join((CORPUS / name).read_text(encoding="utf-8", errors="replace") for name in EXPECTED)
    used += " ".join((CORPUS / "children" / name).read_text() for name in children)
    assert all(name in used for name in children)


@pytest.mark.parametrize("name", STATIC)
def test_static_errors_fit_on_one_screen(name: str, monkeypatch: pytest.MonkeyPatch,
                                         capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv("COLUMNS", "80")
    assert main(["validate", str(CORPUS / name)]) == 2
    out, err = capsys.readouterr()
    assert len((out + err).splitlines()) <= 24, out + err


def test_runtime_trace_names_the_failing_node(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    trace = tmp_path / "t.json"
    assert main(["run", str(CORPUS / "items_not_list_at_runtime.json"), "--trace", str(trace)]) == 1
    capsys.readouterr()
    data = assert_complete_trace(trace)
    end = data["events"][-1]
    assert end["error"]["node"] == "each"
    assert "batch.items must resolve to a list" in end["error"]["message"]
    started = [e["path"] for e in data["events"] if e["kind"] == "node.start"]
    assert started == ["items_not_list_at_runtime.list", "items_not_list_at_runtime.each"]


def test_max_visits_failure_is_reported_at_the_looping_node(tmp_path: Path,
                                                            capsys: pytest.CaptureFixture[str]) -> None:
    trace = tmp_path / "t.json"
    assert main(["run", str(CORPUS / "loop_exceeds_max_visits.json"), "--trace", str(trace)]) == 1
    out, err = capsys.readouterr()
    assert "at loop_exceeds_max_visits.try" in flat(out + err)


# --- pflow-tui run, as a separate process ------------------------------------------------------

SUBPROCESS_CASES = [
    "syntax_unclosed_bracket.json",  # used to raise IndexError while quoting the line
    "syntax_not_utf8.json",
    "params_nested_too_deep.json",  # used to raise RecursionError in the validator
    "template_nested_too_deep.json",  # used to raise RecursionError in the template parser
    "many_errors.json",
    "input_wrong_type.json",
    "items_not_list_at_runtime.json",
    "loop_exceeds_max_visits.json",
    "branch_loop_exceeds_max_visits.json",  # a loop guard in a parallel branch
    "workflow_too_deep.json",
]


@pytest.mark.parametrize("name", SUBPROCESS_CASES)
def test_no_traceback_from_the_command(name: str, tmp_path: Path) -> None:
    entry = EXPECTED[name]
    trace = tmp_path / "t.json"
    env = {**os.environ, "COLUMNS": "250"}
    proc = subprocess.run(
        [sys.executable, "-m", "pflow_tui", "run", str(CORPUS / name), *entry["args"],
         "--trace", str(trace)],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=60,
    )
    output = proc.stdout + proc.stderr
    assert "Traceback" not in proc.stdout and "Traceback" not in proc.stderr, output
    assert proc.returncode == entry["exit"], output
    assert_reported(output, entry)
    if entry["exit"] == 1:
        assert_complete_trace(trace)
    assert sorted(p.name for p in tmp_path.iterdir()) == (["t.json"] if entry["exit"] == 1 else [])


# --- a JSON syntax error shows its line, with a caret under the column ------------------------

def _shown(capsys: pytest.CaptureFixture[str], path: Path) -> list[str]:
    assert main(["validate", str(path)]) == 2
    out, err = capsys.readouterr()
    return (out + err).splitlines()


def test_a_syntax_error_shows_the_line_and_a_caret(capsys: pytest.CaptureFixture[str]) -> None:
    lines = _shown(capsys, CORPUS / "syntax_missing_comma.json")
    at = next(i for i, line in enumerate(lines) if line.startswith("      4 | "))
    assert '"type": "shell" "params": {"command"' in lines[at]
    caret = lines[at + 1]
    assert caret.rstrip().endswith("^") and caret.startswith("        | ")
    assert lines[at][caret.index("^"):].startswith('"params"')  # column 37
    assert "line 4, column 37" in lines[at - 1] and "fix: add the missing comma" in lines[at + 2]


def test_a_long_line_is_cut_around_the_column(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    nodes = [f'{{"id": "n{i}", "type": "echo"}}' for i in range(40)]
    (tmp_path / "long.json").write_text('{"nodes": [' + ", ".join(nodes[:15]) + ' "oops", '
                                        + ", ".join(nodes[15:]) + "]}")
    lines = _shown(capsys, tmp_path / "long.json")
    at = next(i for i, line in enumerate(lines) if line.startswith("      1 | "))
    shown, caret = lines[at], lines[at + 1]
    assert len(shown) <= 80 and shown.startswith("      1 | …") and shown.endswith("…")
    assert shown[caret.index("^"):].startswith('"oops"')


def test_wide_characters_and_tabs_keep_the_caret_in_place(tmp_path: Path,
                                                          capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "wide.json").write_text('{"a":\t"日本語" "b": 1}')
    lines = _shown(capsys, tmp_path / "wide.json")
    at = next(i for i, line in enumerate(lines) if line.startswith("      1 | "))
    assert lines[at] == '      1 | {"a": "日本語" "b": 1}'  # the tab shown as one space
    assert lines[at + 1] == "        | " + " " * 15 + "^"  # 12 characters before '"b"', 3 of them wide
