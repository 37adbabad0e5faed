"""The command line on Click: did-you-mean for commands and options, the debugger as the
default command, -v/-q, the outputs on stdout, the help (every command, option and exit
code), and shell completion through the installed ``pflow-tui`` command."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import click
import orjson
import pytest

from pflow_tui import cli
from pflow_tui.cli import main
from pflow_tui.cli.parsing import EXIT_CODES

SCRIPT = Path(sys.executable).parent / "pflow-tui"
SAMPLES = Path(__file__).resolve().parents[2] / "sample_flows"
OK_FLOW = {"nodes": [{"id": "greet", "type": "echo", "params": {"message": "hello"}}],
           "outputs": {"said": {"source": "${greet.echo}"}}}
TWO_OUTPUTS = {"nodes": [{"id": "greet", "type": "echo",
                          "params": {"message": "hello", "data": [1, 2]}}],
               "outputs": {"said": {"source": "${greet.echo}"}, "data": {"source": "${greet.data}"}}}
BATCH_FAILS = {"name": "bf", "nodes": [{
    "id": "sq", "type": "shell", "batch": {"items": [1, 2, 3], "error_handling": "continue"},
    "params": {"command": "test ${item} -ne 2 || (echo two >&2; exit 3)"}}]}


@pytest.fixture(autouse=True)
def _isolated(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("COLUMNS", "250")


def write(tmp_path: Path, doc: Any, name: str = "flow.json") -> str:
    (tmp_path / name).write_bytes(orjson.dumps(doc))
    return name


def flat(text: str) -> str:
    return " ".join(text.split())


def installed(*args: str, env: dict[str, str] | None = None, cwd: Path | None = None
              ) -> subprocess.CompletedProcess[str]:
    if not SCRIPT.exists():
        pytest.skip(f"no installed pflow-tui beside {sys.executable}")
    return subprocess.run([str(SCRIPT), *args], capture_output=True, text=True, timeout=60, cwd=cwd,
                          env={**os.environ, "COLUMNS": "200", **(env or {})})


# --- did you mean ------------------------------------------------------------------------------------

@pytest.mark.parametrize(("args", "said"), [
    (["rnu", "f.json"], "No such command 'rnu'. Did you mean 'run'?"),
    (["valdiate", "f.json"], "No such command 'valdiate'. Did you mean 'validate'?"),
    (["grahp"], "No such command 'grahp'. Did you mean 'graph'?"),
    (["run", "f.json", "--tarce", "t.json"], "No such option '--tarce'. Did you mean '--trace'?"),
    (["--hlep"], "No such option '--hlep'. Did you mean '--help'?"),
    (["-v", "--tarce", "t.json"], "No such option '--tarce'. Did you mean '--trace'?"),
    (["export", "t.json", "--format", "perfeto"],
     "invalid choice: 'perfeto' (choose from perfetto, otlp); did you mean 'perfetto'?"),
    (["flow"], "No such command 'flow', and no flow file 'flow' to open"),
])
def test_a_mistyped_command_or_option_gets_a_hint(args: list[str], said: str,
                                                 capsys: pytest.CaptureFixture[str]) -> None:
    assert main(args) == 2
    out, err = capsys.readouterr()
    assert said in flat(err) and "Traceback" not in out + err
    assert "usage: pflow-tui" in err and "--help` explains every option" in err
    assert len(err.splitlines()) <= 6  # one screen


def test_a_file_is_never_taken_for_a_command(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "rnu").write_bytes(orjson.dumps(OK_FLOW))  # a flow file without .json
    assert main(["rnu", "--trace", "t.json"]) == 0  # not a terminal: opens ... (stubbed below)
    assert (tmp_path / "t.json").exists()


@pytest.fixture(autouse=True)
def _no_app(monkeypatch: pytest.MonkeyPatch) -> list[Any]:
    """The debugger opens nothing here: it runs the flow headless instead."""
    from pflow_tui.cli import run

    seen: list[Any] = []

    def headless(spec: Any, inputs: Any, trace: Any, at: Any = None, **kw: Any) -> int:
        from pflow_tui.engine.run.executor import run_flow

        seen.append((spec.name, at, kw))
        return 0 if run_flow(spec, inputs, trace=trace).status == "ok" else 1

    monkeypatch.setattr(run, "open_app", headless)
    return seen


def test_the_debugger_takes_its_options_before_the_flow(tmp_path: Path, _no_app: list[Any],
                                                       capsys: pytest.CaptureFixture[str]) -> None:
    flow = write(tmp_path, OK_FLOW)
    assert main(["--trace", "a.json", flow]) == 0
    assert main(["-v", "--paused", "--trace", "b.json", flow]) == 0
    assert main(["-q", flow, "--trace", "c.json", "--break", "greet"]) == 0
    assert all((tmp_path / f"{n}.json").exists() for n in "abc")
    assert [kw["paused"] for _, _, kw in _no_app] == [False, True, False]
    assert main(["--trace", "", flow]) == 2
    assert "the trace path is empty" in capsys.readouterr().err


# --- stdout and stderr, -v and -q -------------------------------------------------------------------

def test_run_prints_the_outputs_on_stdout(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["run", write(tmp_path, OK_FLOW), "--trace", "t.json"]) == 0
    out, err = capsys.readouterr()
    assert out == "hello\n"
    assert "run ok" in err and "trace: t.json" in err and "hello" not in err
    assert main(["run", write(tmp_path, TWO_OUTPUTS, "two.json"), "--trace", "t2.json"]) == 0
    out = capsys.readouterr().out
    assert orjson.loads(out) == {"said": "hello", "data": [1, 2]} and out.count("\n") == 1


def test_quiet_leaves_only_the_outputs_and_errors(tmp_path: Path,
                                                 capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["run", "-q", write(tmp_path, OK_FLOW), "--trace", "t.json"]) == 0
    assert capsys.readouterr() == ("hello\n", "")
    assert main(["-q", "validate", "flow.json"]) == 0
    assert capsys.readouterr() == ("", "")
    assert main(["run", "-q", write(tmp_path, BATCH_FAILS, "bf.json"), "--trace", "t2.json"]) == 0
    assert capsys.readouterr().err == ""
    assert main(["validate", "-q", "nope.json"]) == 2
    assert "file not found" in capsys.readouterr().err


def test_verbose_says_the_trace_first_and_each_failed_item(tmp_path: Path,
                                                          capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["run", "-v", write(tmp_path, BATCH_FAILS), "--trace", "t.json"]) == 0
    err = capsys.readouterr().err
    lines = err.splitlines()
    assert lines[0] == "trace: t.json"
    assert any("✗ bf.sq.iteration_1:" in line and "exit code 3" in line for line in lines), err
    assert not any("iteration_0" in line or "iteration_2" in line for line in lines)
    assert main(["run", write(tmp_path, BATCH_FAILS, "b2.json"), "--trace", "t2.json"]) == 0
    assert "iteration_1" not in capsys.readouterr().err  # without -v: the node's counts only


def test_runs_takes_one_way_to_print(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["runs", "--json", "--plain"]) == 2
    assert "give one of them" in capsys.readouterr().err


# --- help -------------------------------------------------------------------------------------------

def test_the_help_lists_every_command_option_and_exit_code(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--help"]) == 0
    text = flat(capsys.readouterr().out)
    for name, command in cli.cli.commands.items():
        assert f"pflow-tui {name} " in text or text.count(f"pflow-tui {name}") >= 1, name
        for param in command.params:
            if isinstance(param, click.Option) and not param.hidden:
                assert max(param.opts, key=len) in text, (name, param.opts)
    for param in cli.cli.debugger.params:
        if isinstance(param, click.Option):
            assert max(param.opts, key=len) in text, param.opts
    for code, what in EXIT_CODES:
        assert f"{code} {what}" in text
    assert "_PFLOW_TUI_COMPLETE=bash_source pflow-tui" in text
    assert main(["run", "--help"]) == 0
    run_help = flat(capsys.readouterr().out)
    assert "--output-format text|json" in run_help and "Exit code 0: ok, 1: the run failed" in run_help
    assert main(["flow.json", "--help"]) == 0  # the debugger's own
    assert "--break-on-failure" in capsys.readouterr().out


# --- the installed command ----------------------------------------------------------------------------

def test_the_installed_command_says_did_you_mean_and_helps(tmp_path: Path) -> None:
    done = installed("rnu", "f.json")
    assert done.returncode == 2 and "No such command 'rnu'. Did you mean 'run'?" in done.stderr
    assert "Traceback" not in done.stderr
    done = installed("run", "f.json", "--tarce", "x")
    assert done.returncode == 2 and "Did you mean '--trace'?" in done.stderr
    done = installed("--help")
    assert done.returncode == 0 and "Exit codes" in done.stdout and "pflow-tui graph" in done.stdout
    done = installed("graph", str(SAMPLES / "agent_loop.json"))
    assert done.returncode == 0 and done.stdout.startswith("%% agent_loop\nflowchart TD\n")


@pytest.mark.parametrize(("shell", "marks"), [
    ("bash", ("_pflow_tui_completion()", "complete -o nosort -F _pflow_tui_completion pflow-tui")),
    ("zsh", ("#compdef pflow-tui", "_pflow_tui_completion")),
    ("fish", ("function _pflow_tui_completion", "complete --no-files --command pflow-tui")),
])
def test_completion_scripts(shell: str, marks: tuple[str, ...]) -> None:
    done = installed(env={"_PFLOW_TUI_COMPLETE": f"{shell}_source"})
    assert done.returncode == 0, done.stderr
    for mark in marks:
        assert mark in done.stdout, (shell, mark)


def complete(words: str, cwd: Path) -> list[tuple[str, str]]:
    parts = words.split(" ")
    done = installed(cwd=cwd, env={"_PFLOW_TUI_COMPLETE": "bash_complete", "COMP_WORDS": words,
                                   "COMP_CWORD": str(len(parts) - 1)})
    assert done.returncode == 0, done.stderr
    return [tuple(line.split(",", 1)) for line in done.stdout.splitlines()]  # type: ignore[misc]


def test_completion_of_commands_options_choices_and_files(tmp_path: Path) -> None:
    write(tmp_path, OK_FLOW)
    assert complete("pflow-tui r", tmp_path) == [("file", "r"), ("plain", "replay"), ("plain", "rerun"),
                                                 ("plain", "run"), ("plain", "runs")]
    assert complete("pflow-tui fl", tmp_path) == [("file", "fl")]  # a flow file: the shell lists them
    assert ("plain", "--trace") in complete("pflow-tui run flow.json --tr", tmp_path)
    assert complete("pflow-tui run flow.json --trace ", tmp_path) == [("file", "")]
    assert complete("pflow-tui export t.json --format ", tmp_path) == [("plain", "perfetto"),
                                                                       ("plain", "otlp")]
    assert complete("pflow-tui graph flow.json --format ", tmp_path) == [("plain", "mermaid"),
                                                                         ("plain", "dot")]
    debugger = [v for _, v in complete("pflow-tui flow.json --", tmp_path)]
    assert "--paused" in debugger and "--at" in debugger
    assert "--paused" not in [v for _, v in complete("pflow-tui run flow.json --", tmp_path)]
