"""``pflow-tui run FILE.py:NAME`` and ``MODULE:NAME``: Python PocketFlow programs from the
command line, and the clear errors for targets that are not one."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from pflow_tui.cli import main
from pflow_tui.engine.python.pyprogram import is_target
from pflow_tui.engine.trace.writer import read_trace

SAMPLE = Path(__file__).parents[2] / "sample_flows" / "map_reduce.py"

PROGRAM = """
from pocketflow import Flow, Node

class Hello(Node):
    def prep(self, shared):
        return shared.get("who", "world")
    def exec(self, who):
        return f"hello {who}"
    def post(self, shared, prep_res, exec_res):
        shared["greeting"] = exec_res

class Fail(Node):
    def exec(self, prep_res):
        raise RuntimeError("no luck")

hello = Flow(start=Hello())

def failing():
    h = Hello()
    h >> Fail()
    return Flow(start=h)

def store():
    return {"who": "factory"}

def not_a_store():
    return [1, 2]

def needs_args(x):
    return hello

number = 3
"""


@pytest.fixture(autouse=True)
def _isolated(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("COLUMNS", "250")
    (tmp_path / "prog.py").write_text(textwrap.dedent(PROGRAM))


def flat(text: str) -> str:
    return " ".join(text.split())


@pytest.mark.parametrize(("text", "expected"), [
    ("flow.json", False), ("dir/flow.json", False), ("prog.py", True), ("prog.py:flow", True),
    ("pkg.mod:build", True), ("a.json:x", False), ("C", False), (":x", False)])
def test_what_counts_as_a_python_target(text: str, expected: bool) -> None:
    assert is_target(text) is expected


def test_run_a_program_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["run", "prog.py:hello", "--trace", "t.json", "who=you"]) == 0
    doc = read_trace(tmp_path / "t.json")
    assert doc.status == "ok" and doc.store == {"who": "you", "greeting": "hello you"}
    assert doc.header["target"] == "prog.py:hello" and doc.header["flow_name"] == "prog"
    assert "greeting  hello you" in capsys.readouterr().err


def test_a_module_and_a_store_factory(tmp_path: Path) -> None:
    assert main(["run", "prog:hello", "--shared", "prog:store", "--trace", "t.json"]) == 0
    assert read_trace(tmp_path / "t.json").store["greeting"] == "hello factory"


def test_a_failing_program_exits_1_and_keeps_the_trace(tmp_path: Path,
                                                        capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["run", "prog.py:failing", "--trace", "t.json"]) == 1
    doc = read_trace(tmp_path / "t.json")
    assert doc.status == "failed" and doc.footer["error"]["message"] == "no luck"
    assert doc.store == {"greeting": "hello world"}  # what ran before the failure is kept
    assert "Traceback" not in capsys.readouterr().err


@pytest.mark.parametrize(("target", "extra", "says"), [
    ("missing.py:flow", [], "missing.py: no such file"),
    ("prog.py", [], "name the flow, e.g. prog.py:flow"),
    ("prog.py:helo", [], "did you mean 'hello'"),
    ("prog.py:number", [], "it is int, not a pocketflow Flow"),
    ("prog.py:needs_args", [], "give a function that takes no arguments"),
    ("prog.py:hello", ["--shared", "prog.py:not_a_store"], "returned list, not a dict"),
    ("nosuchmodule:flow", [], "no module named 'nosuchmodule'"),
    ("broken.py:flow", [], "importing it raised ZeroDivisionError: division by zero"),
])
def test_bad_targets_get_a_clear_message_and_exit_2(target: str, extra: list[str], says: str, tmp_path: Path,
                                                    capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "broken.py").write_text("x = 1 / 0\n")
    assert main(["run", target, *extra]) == 2
    err = flat(capsys.readouterr().err)
    assert says in err
    assert "Traceback" not in err


def test_shared_is_for_programs_only(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "f.json").write_text('{"nodes": [{"id": "a", "type": "echo", "params": {"message": "x"}}]}')
    assert main(["run", "f.json", "--shared", "prog.py:store"]) == 2
    assert "only Python programs take a shared store" in flat(capsys.readouterr().err)


def test_validate_a_program(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["validate", str(SAMPLE) + ":flow"]) == 0
    assert "a PocketFlow program (8 nodes, nested flows included)" in flat(capsys.readouterr().err)


def test_the_sample_program_runs_headless(tmp_path: Path) -> None:
    env = {**os.environ, "COLUMNS": "200"}
    done = subprocess.run([sys.executable, "-m", "pflow_tui.cli", "run", f"{SAMPLE}:flow", "documents=30",
                           "--trace", "t.json"], capture_output=True, text=True, env=env, timeout=60)
    assert done.returncode == 0, done.stderr
    doc = read_trace(tmp_path / "t.json")
    items = [e for e in doc.events if e["kind"] == "item.end" and ".map_documents." in e["path"]]
    assert sorted(e["index"] for e in items) == list(range(30))
    retried = {e["index"] for e in items if e["attempts"] == 2}
    assert retried == {3, 10, 13, 17, 24}  # ids 3 mod 7 time out once; 13 fails both times
    assert next(e for e in items if e["index"] == 13)["fallback"]["type"] == "ConnectionError"
    assert doc.store["report"].startswith("30 documents")


def test_rerun_and_fork_say_why_a_program_cannot(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from pflow_tui.engine.trace.fork import ForkError, fork_item

    assert main(["run", "prog.py:failing", "--trace", "t.json"]) == 1
    capsys.readouterr()
    assert main(["rerun", "t.json"]) == 2
    err = flat(capsys.readouterr().err)
    assert "a run of the Python program prog.py:failing" in err
    assert "run it again with `pflow-tui prog.py:failing`" in err
    with pytest.raises(ForkError, match="Python program"):
        fork_item(tmp_path / "t.json", "hello", None)
