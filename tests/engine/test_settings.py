"""Settings: flag > environment > the nearest project file > the user's config.toml >
default; ``pflow-tui config`` says where each value came from; retention (``keep``,
``runs --prune`` and pruning after a run); bad files and variables exit 2."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import orjson
import pytest

from pflow_tui.cli import main
from pflow_tui.engine.ir.load import build_flow
from pflow_tui.engine.run.executor import run_flow
from pflow_tui.settings import SETTINGS, load

SCRIPT = Path(sys.executable).parent / "pflow-tui"
ENVS = [s.env for s in SETTINGS.values()]
ECHO = {"name": "one", "nodes": [{"id": "hi", "type": "echo", "params": {"message": "hi"}}]}


@pytest.fixture(autouse=True)
def _isolated(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    """A project folder as the working directory, a home of its own, no pflow-tui variables."""
    home = tmp_path / "home"
    (home / ".config").mkdir(parents=True)
    project = tmp_path / "project"
    project.mkdir()
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.delenv("XDG_CONFIG_HOME", raising=False)
    monkeypatch.delenv("PFLOW_TUI_CONFIG_DIR", raising=False)
    for name in ENVS:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("COLUMNS", "250")
    monkeypatch.chdir(project)
    return project


def user_config(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "home" / ".config" / "pflow-tui" / "config.toml"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


def sources(**flags: Any) -> dict[str, tuple[Any, str]]:
    return {k: (v.value, v.source) for k, v in load(flags).values.items()}


def config_json(capsys: pytest.CaptureFixture[str], *args: str) -> dict[str, Any]:
    assert main(["config", "--format", "json", *args]) == 0
    return orjson.loads(capsys.readouterr().out)


# --- precedence ---------------------------------------------------------------------------------------

def test_defaults_when_nothing_is_set() -> None:
    got = sources()
    assert got == {"trace_dir": (".pflow-tui/traces", "default"), "keep": (200, "default"),
                   "theme": ("textual-dark", "default"), "processes": (None, "default"),
                   "cluster": ("local", "default"), "prices": ({}, "default")}


def test_each_layer_wins_over_the_ones_below(tmp_path: Path, _isolated: Path,
                                             monkeypatch: pytest.MonkeyPatch) -> None:
    user = user_config(tmp_path, 'keep = 1\ntheme = "nord"\nprocesses = 7\ncluster = "h:1"\n')
    project = _isolated / "pflow-tui.toml"
    project.write_text('keep = 2\ntheme = "gruvbox"\n\nprocesses = 3\n')
    monkeypatch.setenv("PFLOW_TUI_THEME", "textual-light")
    monkeypatch.setenv("PFLOW_TUI_CLUSTER", "tcp://e:2")
    got = sources(cluster="tcp://f:3")
    assert got["cluster"] == ("tcp://f:3", "flag --cluster")  # flag > env > file
    assert got["theme"] == ("textual-light", "env PFLOW_TUI_THEME")  # env > project > user
    assert got["keep"] == (2, f"{project}:1")  # project > user
    assert got["processes"] == (3, f"{project}:4")
    monkeypatch.delenv("PFLOW_TUI_CLUSTER")
    assert sources()["cluster"] == ("tcp://h:1", f"{user}:4")  # user > default
    project.unlink()
    assert sources()["keep"] == (1, f"{user}:1")


def test_the_user_file_follows_xdg_config_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    user_config(tmp_path, "keep = 1\n")  # ~/.config: not read when XDG_CONFIG_HOME says elsewhere
    xdg = tmp_path / "xdg" / "pflow-tui" / "config.toml"
    xdg.parent.mkdir(parents=True)
    xdg.write_text("keep = 9\n")
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "xdg"))
    assert sources()["keep"] == (9, f"{xdg}:1")
    monkeypatch.setenv("PFLOW_TUI_CONFIG_DIR", str(tmp_path / "home" / ".config" / "pflow-tui"))
    assert sources()["keep"][0] == 1


def test_the_nearest_file_walking_up_is_the_projects(_isolated: Path,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    (_isolated / "pflow-tui.toml").write_text("keep = 1\n")
    deep = _isolated / "a" / "b" / "c"
    deep.mkdir(parents=True)
    (deep / "pyproject.toml").write_text('[project]\nname = "x"\n')  # no [tool.pflow-tui]: passed over
    monkeypatch.chdir(deep)
    assert sources()["keep"] == (1, f"{_isolated / 'pflow-tui.toml'}:1")
    nearer = _isolated / "a" / "pyproject.toml"
    nearer.write_text('[project]\nname = "x"\n\n[tool.pflow-tui]\nkeep = 2\n')
    assert sources()["keep"] == (2, f"{nearer}:5")
    assert load().files == (nearer,)


def test_pflow_tui_toml_wins_over_pyproject_in_one_folder(_isolated: Path) -> None:
    (_isolated / "pyproject.toml").write_text("[tool.pflow-tui]\nkeep = 2\ntheme = \"nord\"\n")
    (_isolated / "pflow-tui.toml").write_text("keep = 3\n")
    got = sources()
    assert got["keep"] == (3, f"{_isolated / 'pflow-tui.toml'}:1")
    assert got["theme"] == ("textual-dark", "default")  # the files are not merged: one is the project's


def test_a_path_in_a_file_is_relative_to_the_file(_isolated: Path, monkeypatch: pytest.MonkeyPatch,
                                                   capsys: pytest.CaptureFixture[str]) -> None:
    (_isolated / "pflow-tui.toml").write_text('trace_dir = "runs"\n')
    sub = _isolated / "sub"
    sub.mkdir()
    monkeypatch.chdir(sub)
    (sub / "f.json").write_bytes(orjson.dumps(ECHO))
    assert main(["run", "-q", "f.json"]) == 0
    assert [p.parent for p in (_isolated / "runs").glob("*.json")] == [_isolated / "runs"]
    assert not (sub / ".pflow-tui").exists()
    assert "PFLOW_TUI_TRACE_DIR" not in os.environ  # handed to the run only, taken away after
    monkeypatch.setenv("PFLOW_TUI_TRACE_DIR", "mine")  # a variable: relative to the working directory
    assert main(["run", "-q", "f.json"]) == 0
    assert len(list((sub / "mine").glob("*.json"))) == 1


def test_the_settings_reach_what_the_run_starts(_isolated: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (_isolated / "pflow-tui.toml").write_text('processes = 3\ncluster = "sched:8786"\n')
    flow = {"nodes": [{"id": "sh", "type": "shell",
                       "params": {"command": "echo $PFLOW_TUI_PROCESSES $PFLOW_TUI_CLUSTER"}}],
            "outputs": {"said": {"source": "${sh.stdout}"}}}
    (_isolated / "f.json").write_bytes(orjson.dumps(flow))
    assert main(["run", "-q", "f.json"]) == 0
    assert capsys.readouterr().out.strip() == "3 tcp://sched:8786"


def test_prices_from_a_prices_table_and_from_prices_json(tmp_path: Path, _isolated: Path,
                                                          capsys: pytest.CaptureFixture[str]) -> None:
    flow = {"nodes": [{"id": "l", "type": "llm", "params": {"model": "offline", "prompt": "a b c"}}]}
    (_isolated / "f.json").write_bytes(orjson.dumps(flow))
    (tmp_path / "home" / ".config" / "pflow-tui").mkdir(parents=True)
    legacy = tmp_path / "home" / ".config" / "pflow-tui" / "prices.json"
    legacy.write_text('{"offline": {"input": 1000000, "output": 0}}')
    assert main(["run", "-q", "f.json", "--output-format", "json"]) == 0
    doc = orjson.loads(capsys.readouterr().out)
    assert doc["total_cost_usd"] == doc["usage"]["input_tokens"]  # $1 a token, from prices.json
    assert sources()["prices"][1] == str(legacy)
    (_isolated / "pflow-tui.toml").write_text('[prices]\noffline = {input = 0, output = 2000000}\n')
    assert main(["run", "-q", "f.json", "--output-format", "json"]) == 0
    doc = orjson.loads(capsys.readouterr().out)
    assert doc["total_cost_usd"] == 2 * doc["usage"]["output_tokens"]  # the table replaces prices.json
    assert sources()["prices"] == ({"offline": {"input": 0.0, "output": 2e6}},
                                   f"{_isolated / 'pflow-tui.toml'}:1")


# --- pflow-tui config ---------------------------------------------------------------------------------

def test_config_says_where_each_value_came_from(tmp_path: Path, _isolated: Path,
                                                monkeypatch: pytest.MonkeyPatch,
                                                capsys: pytest.CaptureFixture[str]) -> None:
    user = user_config(tmp_path, 'theme = "nord"\n')
    (_isolated / "pyproject.toml").write_text("[tool.pflow-tui]\n# retention\nkeep = 5\n")
    monkeypatch.setenv("PFLOW_TUI_PROCESSES", "2")
    assert main(["config"]) == 0
    lines = {line.split()[0]: line.split() for line in capsys.readouterr().out.splitlines() if line}
    assert lines["keep"] == ["keep", "5", f"{_isolated / 'pyproject.toml'}:3"]
    assert lines["theme"] == ["theme", "nord", f"{user}:1"]
    assert lines["processes"] == ["processes", "2", "env", "PFLOW_TUI_PROCESSES"]
    assert lines["cluster"] == ["cluster", "local", "default"]
    assert lines["files"][2:] == [f"{_isolated / 'pyproject.toml'},", str(user)]
    doc = config_json(capsys)
    assert doc["settings"]["keep"] == {"value": 5, "source": f"{_isolated / 'pyproject.toml'}:3",
                                       "env": "PFLOW_TUI_KEEP"}
    assert doc["settings"]["processes"]["source"] == "env PFLOW_TUI_PROCESSES"
    assert set(doc["settings"]) == set(SETTINGS)


def test_config_through_the_installed_command(tmp_path: Path, _isolated: Path) -> None:
    if not SCRIPT.exists():
        pytest.skip(f"no installed pflow-tui beside {sys.executable}")
    (_isolated / "pflow-tui.toml").write_text('keep = 12\ntheme = "nord"\n')
    env = {k: v for k, v in os.environ.items() if k not in ENVS}
    done = subprocess.run([str(SCRIPT), "config", "--format", "json"], capture_output=True, text=True,
                          cwd=_isolated, env={**env, "PFLOW_TUI_KEEP": "4"}, timeout=60)
    assert done.returncode == 0, done.stderr
    got = orjson.loads(done.stdout)["settings"]
    assert got["keep"]["source"] == "env PFLOW_TUI_KEEP" and got["keep"]["value"] == 4
    assert got["theme"] == {"value": "nord", "source": f"{_isolated / 'pflow-tui.toml'}:2",
                            "env": "PFLOW_TUI_THEME"}


# --- bad settings ----------------------------------------------------------------------------------

@pytest.mark.parametrize(("text", "said"), [
    ("keep = 3\ntheme = \n", ["pflow-tui.toml: 1 problem", "TOML", "(at line 2, column 9)"]),
    ("kep = 3\n", ["pflow-tui.toml: 1 problem", "kep (line 1): no such setting",
                   "fix: did you mean 'keep'?"]),
    ('keep = "lots"\n', ["keep (line 1): expected a whole number from 0, got 'lots'"]),
    ("processes = 0\n", ["processes (line 1): expected a whole number from 1, got 0"]),
    ("theme = 3\n", ["theme (line 1): expected a non-empty string, got 3"]),
    ('cluster = "http:/x"\n', ["cluster (line 1): 'http:/x' is not a cluster"]),
    ("[prices]\nm = {input = 1, outptu = 2}\n", ["prices (line 1): m: no rate 'outptu'",
                                                  "did you mean 'output'?"]),
    ('theme = "nrod"\n', ["pflow-tui.toml:1: 1 problem", "no theme 'nrod'", "did you mean 'nord'?"]),
])
def test_a_bad_file_says_which_file_and_key_and_exits_2(_isolated: Path, capsys: pytest.CaptureFixture[str],
                                                        text: str, said: list[str]) -> None:
    (_isolated / "pflow-tui.toml").write_text(text)
    assert main(["config"]) == 2
    err = " ".join(capsys.readouterr().err.split())
    assert str(_isolated) in err and "Traceback" not in err
    for part in said:
        assert part in err


def test_a_bad_file_stops_every_command_before_it_runs(_isolated: Path,
                                                       capsys: pytest.CaptureFixture[str]) -> None:
    (_isolated / "pyproject.toml").write_text("[tool.pflow-tui]\nkeep = -1\n")
    (_isolated / "f.json").write_bytes(orjson.dumps(ECHO))
    assert main(["run", "f.json"]) == 2
    err = " ".join(capsys.readouterr().err.split())
    assert f"{_isolated / 'pyproject.toml'} [tool.pflow-tui]: 1 problem" in err
    assert "keep (line 2)" in err
    assert not (_isolated / ".pflow-tui").exists()


def test_a_bad_variable_is_named(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv("PFLOW_TUI_KEEP", "many")
    monkeypatch.setenv("PFLOW_TUI_PRICES", "{")
    assert main(["config"]) == 2
    err = " ".join(capsys.readouterr().err.split())
    assert "environment: 2 problems" in err
    assert "environment variable PFLOW_TUI_KEEP: 'many': expected a whole number from 0" in err
    assert "environment variable PFLOW_TUI_PRICES: '{': not a JSON object" in err
    monkeypatch.delenv("PFLOW_TUI_KEEP")
    monkeypatch.delenv("PFLOW_TUI_PRICES")
    monkeypatch.setenv("PFLOW_TUI_PROCESSES", "zero")  # the engine says so if a flow uses processes
    monkeypatch.setenv("PFLOW_TUI_CLUSTER", "my-laptop")  # (and clusters): these are shown as they are
    got = sources()
    assert (got["processes"], got["cluster"]) == (("zero", "env PFLOW_TUI_PROCESSES"),
                                                  ("my-laptop", "env PFLOW_TUI_CLUSTER"))


# --- retention ---------------------------------------------------------------------------------------

def make_runs(folder: Path, n: int) -> list[Path]:
    """``n`` finished traces in ``folder``, oldest first (their files' times a minute apart)."""
    paths = []
    for i in range(n):
        path = folder / f"run{i}.json"
        run_flow(build_flow(ECHO), {}, trace=path)
        os.utime(path, (1_700_000_000 + 60 * i,) * 2)
        paths.append(path)
    return paths


def test_runs_prune_removes_the_oldest_beyond_keep(_isolated: Path,
                                                   capsys: pytest.CaptureFixture[str]) -> None:
    folder = _isolated / ".pflow-tui" / "traces"
    folder.mkdir(parents=True)
    runs = make_runs(folder, 5)
    (folder / "notes.json").write_text('{"mine": true}')  # not a trace: never removed, not a run
    os.utime(folder / "notes.json", (1_600_000_000,) * 2)
    (folder / "run0.perfetto.json").write_text("{}")  # the oldest run's export and results go with it
    (folder / "run0.otlp.jsonl").write_text("")
    (folder / "run0.results").mkdir()
    (folder / "run0.results" / "value-x.txt").write_text("x")
    (folder / "run3.perfetto.json").write_text("{}")
    (_isolated / "pflow-tui.toml").write_text("keep = 2\n")
    assert main(["runs", "--prune"]) == 0
    out = capsys.readouterr().out
    assert sorted(p.name for p in folder.iterdir()) == [
        "notes.json", "run3.json", "run3.perfetto.json", "run4.json"]
    shown = [str(p.relative_to(_isolated)) for p in runs[:3]]  # (the folder as the setting says it)
    assert [line.removeprefix("removed ") for line in out.splitlines()[:3]] == shown
    assert (f"3 runs removed from .pflow-tui/traces/ (keep = 2, {_isolated / 'pflow-tui.toml'}:1)"
            in " ".join(out.split()))
    assert main(["runs", "--prune"]) == 0
    assert "0 runs removed" in capsys.readouterr().out


def test_runs_prune_takes_dir_and_keep_from_the_environment(_isolated: Path, monkeypatch: pytest.MonkeyPatch,
                                                            capsys: pytest.CaptureFixture[str]) -> None:
    (_isolated / "pflow-tui.toml").write_text('trace_dir = "elsewhere"\nkeep = 1\n')
    folder = _isolated / "mine"
    folder.mkdir()
    make_runs(folder, 3)
    monkeypatch.setenv("PFLOW_TUI_KEEP", "2")
    assert main(["runs", "--prune", "--dir", str(folder)]) == 0  # --dir over the file's trace_dir
    assert sorted(p.name for p in folder.iterdir()) == ["run1.json", "run2.json"]
    assert "keep = 2, env PFLOW_TUI_KEEP" in capsys.readouterr().out
    monkeypatch.setenv("PFLOW_TUI_KEEP", "0")
    assert main(["runs", "--prune", "--dir", str(folder)]) == 0
    assert "keep = 0" in capsys.readouterr().out and len(list(folder.iterdir())) == 2


def test_a_run_prunes_the_trace_folder_after_it(_isolated: Path, capsys: pytest.CaptureFixture[str]) -> None:
    folder = _isolated / ".pflow-tui" / "traces"
    folder.mkdir(parents=True)
    old = make_runs(folder, 3)
    (_isolated / "f.json").write_bytes(orjson.dumps(ECHO))
    (_isolated / "pflow-tui.toml").write_text("keep = 2\n")
    assert main(["run", "-q", "f.json"]) == 0
    left = sorted(folder.glob("*.json"))
    new = [p for p in left if p not in old]
    assert len(new) == 1 and new[0].name.startswith("one-")
    assert left == sorted([old[2], new[0]])  # the newest old run and the run that just ended
    (_isolated / "pflow-tui.toml").write_text("keep = 0\n")  # 0: every run kept
    assert main(["run", "-q", "f.json"]) == 0
    assert len(list(folder.glob("*.json"))) == 3


def test_a_running_trace_is_never_pruned(_isolated: Path) -> None:
    from pflow_tui.engine.trace.runs import prune_runs, read_run

    folder = _isolated / "t"
    folder.mkdir()
    done = make_runs(folder, 2)
    for path in done:  # finished runs written after the live one
        os.utime(path, (os.stat(path).st_mtime + 2e9,) * 2)
    live = folder / "live.json"  # the oldest file, but its writer (this process) is alive and
    run_flow(build_flow(ECHO), {}, trace=live)  # wrote to it lately: with no footer, it is running
    live.write_bytes(b"\n".join(live.read_bytes().rstrip(b"\n").split(b"\n")[:-1]) + b"\n")
    assert read_run(live).status == "running"
    assert [r.path for r in prune_runs(folder, 1)] == done  # it counts as a run, and stays
    assert list(folder.iterdir()) == [live]


# --- the theme ------------------------------------------------------------------------------------

def test_the_app_opens_in_the_configured_theme(_isolated: Path, monkeypatch: pytest.MonkeyPatch,
                                               capsys: pytest.CaptureFixture[str]) -> None:
    from pflow_tui.app.app import DebuggerApp

    opened: list[Any] = []

    class Stub:
        def __init__(self) -> None:
            self.theme, self.runs = "textual-dark", []

        def run(self) -> str:
            opened.append(self.theme)
            return "ok"

    monkeypatch.setattr(DebuggerApp, "live", classmethod(lambda cls, *a, **k: Stub()))
    (_isolated / "f.json").write_bytes(orjson.dumps(ECHO))
    monkeypatch.setenv("PFLOW_TUI_THEME", "gruvbox")
    assert main(["f.json"]) == 0
    assert opened == ["gruvbox"]
    monkeypatch.setenv("PFLOW_TUI_THEME", "gruvbx")
    assert main(["f.json"]) == 2
    assert "did you mean 'gruvbox'?" in capsys.readouterr().err
    assert opened == ["gruvbox"]
