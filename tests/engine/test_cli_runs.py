"""The command line around saved runs: ``runs``, ``pflow-tui`` alone, ``replay --last``,
``--at`` checked before anything opens, and the help of each command."""

from __future__ import annotations

import sys
import threading
from pathlib import Path

import orjson
import pytest

from pflow_tui.cli import main
from pflow_tui.engine.ir.load import build_flow
from pflow_tui.engine.run.executor import run_flow

sys.path.insert(0, str(Path(__file__).parents[1] / "app"))
from synthetic_runs import write_runs

TRACES = Path(".pflow-tui") / "traces"
FLOW = {"name": "cr", "nodes": [
    {"id": "make", "type": "echo", "params": {"message": "x", "data": [1, 2, 3]}},
    {"id": "square", "type": "shell", "params": {"command": "echo ${item}"},
     "batch": {"items": "${make.data}"}},
    {"id": "per", "type": "workflow", "params": {"workflow_ir": {
        "nodes": [{"id": "inner", "type": "echo", "params": {"message": "in"}}]}}},
], "edges": [{"from": "make", "to": "square"}, {"from": "square", "to": "per"}]}


@pytest.fixture(autouse=True)
def _isolated(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("COLUMNS", "250")
    monkeypatch.setenv("TZ", "UTC")


@pytest.fixture
def opened(monkeypatch: pytest.MonkeyPatch) -> list[tuple[str, object]]:
    """What would have opened in the app (nothing opens in these tests)."""
    from pflow_tui.app.app import DebuggerApp

    seen: list[tuple[str, object]] = []

    class Stub:
        def __init__(self, what: str, arg: object) -> None:
            self.what, self.arg = what, arg
            self.runs: list = []

        def run(self) -> str:
            seen.append((self.what, self.arg))
            return "ok"

    monkeypatch.setattr(DebuggerApp, "replay",
                        classmethod(lambda cls, index, at=None: Stub("replay", (index, at))))
    monkeypatch.setattr(DebuggerApp, "browser", classmethod(lambda cls, folder: Stub("browser", folder)))
    monkeypatch.setattr(DebuggerApp, "live", classmethod(lambda cls, *a, **k: Stub("live", a[3])))
    return seen


def flow_file(tmp_path: Path) -> str:
    path = tmp_path / "flow.json"
    path.write_bytes(orjson.dumps(FLOW))
    return str(path)


def recorded(tmp_path: Path) -> str:
    path = tmp_path / "rec.json"
    worker = threading.Thread(target=run_flow, args=(build_flow(FLOW), {}), kwargs={"trace": path})
    worker.start()
    worker.join()
    return str(path)


# --- pflow-tui alone ---------------------------------------------------------------------------------

def test_no_arguments_and_no_runs_is_a_short_usage(capsys: pytest.CaptureFixture[str]) -> None:
    assert main([]) == 2
    err = capsys.readouterr().err
    assert "pflow-tui FLOW.json" in err and "pflow-tui runs" in err and "--help" in err
    assert "required" not in err and "error" not in err
    assert len(err.splitlines()) <= 8


def test_no_arguments_with_runs_lists_them(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                           opened) -> None:
    write_runs(tmp_path / TRACES)
    assert main([]) == 0  # not a terminal: the plain list
    out = capsys.readouterr().out
    lines = [" ".join(line.split()) for line in out.splitlines()]
    assert lines[0].startswith("flow started status duration items failures trace")
    assert lines[1].startswith("demo 2026-03-01 10:00:00 interrupted — — —")
    assert lines[2].startswith("demo 2026-03-01 09:05:00 ok 264ms 4 1 .pflow-tui/traces/demo-2.json")
    assert lines[5].startswith("? — unreadable")
    assert lines[-1] == "5 runs in .pflow-tui/traces/"


def test_runs_json_is_one_record_a_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    files = write_runs(tmp_path / "elsewhere")
    assert main(["runs", "--json", "--dir", str(tmp_path / "elsewhere")]) == 0
    records = [orjson.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [r["path"] for r in records] == [str(files[k]) for k in ("cut", "rerun", "first", "other", "junk")]
    assert records[1]["rerun_of"] == str(files["first"]) and records[1]["restored"] == 4
    assert records[-1]["status"] == "unreadable" and "not a pflow-tui trace" in records[-1]["error"]


def test_runs_in_a_folder_that_does_not_exist_is_bad_input(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["runs", "--dir", "nope"]) == 2
    assert "nope: no such folder" in capsys.readouterr().err
    assert main(["runs", "--plain"]) == 0  # the default folder not made yet: no runs
    assert "no runs in .pflow-tui/traces/" in capsys.readouterr().out


def test_runs_opens_the_browser_in_a_terminal(monkeypatch: pytest.MonkeyPatch, opened) -> None:
    monkeypatch.setattr(sys.stdout, "isatty", lambda: True)
    assert main(["runs"]) == 0
    assert opened == [("browser", TRACES)]


# --- replay --last -----------------------------------------------------------------------------------

def test_replay_last_opens_the_newest_run(tmp_path: Path, opened) -> None:
    files = write_runs(tmp_path / TRACES)
    assert main(["replay", "--last"]) == 0
    (what, (index, at)), = opened
    assert what == "replay" and index.path.resolve() == files["cut"] and at is None


def test_replay_last_without_runs_and_other_misuse(capsys: pytest.CaptureFixture[str], opened) -> None:
    assert main(["replay", "--last"]) == 2
    assert "no runs in .pflow-tui/traces/" in capsys.readouterr().err
    assert main(["replay"]) == 2
    assert "give a trace file, or --last" in capsys.readouterr().err
    assert main(["replay", "x.json", "--last"]) == 2
    assert main(["replay", "x.json", "--dir", "d"]) == 2
    assert opened == []


# --- --at ------------------------------------------------------------------------------------------

@pytest.mark.parametrize(("at", "what", "fix"), [
    ("bogus.path", "the flow is 'cr', not 'bogus'", "paths start with the flow's name, e.g. cr.make"),
    ("cr.sqaure", "no node 'sqaure' in the flow", "did you mean 'square'?"),
    ("square.iteration_2", "a path starts with the flow's name", "did you mean 'cr.square.iteration_2'?"),
    ("cr.make.iteration_1", "'make' is not a batch node", "use cr.make, or a batch node: square"),
    ("cr.make.x", "'make' runs no nested flow: 'x' cannot follow it", "did you mean 'cr.make'?"),
    ("cr.per.innr", "no node 'innr' in the flow nested in 'per'", "did you mean 'inner'?"),
    ("cr.make.branch_0", "'make' starts no parallel branches", "no parallel branches"),
])
def test_a_wrong_at_is_said_before_the_debugger_opens(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                                      opened, at: str, what: str, fix: str) -> None:
    assert main([flow_file(tmp_path), "--at", at]) == 2
    err = " ".join(capsys.readouterr().err.split())
    assert f"--at {at}: {what}" in err and fix in err, err
    assert "Traceback" not in err and opened == []
    assert not (tmp_path / ".pflow-tui").exists()  # nothing ran


def test_a_right_at_opens(tmp_path: Path, opened) -> None:
    for at in ("cr.square", "cr.square.iteration_99", "cr.per.inner", "cr"):  # 99: size not known yet
        assert main([flow_file(tmp_path), "--at", at]) == 0
    assert [sel.node_id for _, sel in opened[:3]] == ["square", "square", "inner"]


def test_a_replay_checks_at_against_the_trace(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                             opened) -> None:
    trace = recorded(tmp_path)
    assert main(["replay", trace, "--at", "cr.square.iteration_99"]) == 2
    err = " ".join(capsys.readouterr().err.split())
    assert "'square' ran 3 items in this run: there is no iteration_99" in err
    assert "use cr.square.iteration_0 … cr.square.iteration_2" in err
    assert main(["replay", trace, "--at", "cr.sqare"]) == 2
    assert "did you mean 'square'?" in capsys.readouterr().err
    assert main(["replay", trace, "--at", "cr.square.iteration_2"]) == 0
    assert main(["replay", trace, "--at", "cr.per.inner"]) == 0
    assert [at for _, (_, at) in opened] == [opened[0][1][1], opened[1][1][1]]
    assert opened[0][1][1].index == 2


def test_a_replay_of_a_run_that_stopped_before_the_node(tmp_path: Path,
                                                        capsys: pytest.CaptureFixture[str], opened) -> None:
    files = write_runs(tmp_path / TRACES)
    data = files["first"].read_bytes()
    cut = tmp_path / "short.json"
    cut.write_bytes(data[: data.index(b'{"seq":4,')])  # gen ran, sq never started
    assert main(["replay", str(cut), "--at", "demo.sq"]) == 2
    assert "the run never reached demo.sq" in capsys.readouterr().err


# --- help and messages -----------------------------------------------------------------------------

def test_each_help_lists_what_the_command_takes(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["run", "--help"]) == 0
    run_help = capsys.readouterr().out
    assert "--trace" in run_help and "--paused" not in run_help and "--break" not in run_help
    assert "--at" not in run_help
    assert main(["--help"]) == 0
    top = capsys.readouterr().out
    assert "--paused" in top and "--at" in top
    assert "[--view]" in top and "pflow-tui runs" in top and "--last" in top
    assert main(["runs", "--help"]) == 0
    assert "--json" in capsys.readouterr().out


def test_run_still_explains_why_it_rejects_stepping(tmp_path: Path,
                                                    capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["run", flow_file(tmp_path), "--paused"]) == 2
    assert "need the debugger" in capsys.readouterr().err


def test_messages_say_an_integer_and_count_properly(tmp_path: Path,
                                                   capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "in.json"
    path.write_bytes(orjson.dumps({"inputs": {"n": {"type": "integer"}},
                                   "nodes": [{"id": "a", "type": "echo", "params": {"message": "${n}"}}]}))
    assert main(["run", str(path), "n=lots"]) == 2
    err = " ".join(capsys.readouterr().err.split())
    assert "pass an integer value, e.g. n=" in err and "a integer" not in err
    assert main(["validate", str(path)]) == 0
    assert "valid (1 node, 0 edges)" in " ".join(capsys.readouterr().err.split())
