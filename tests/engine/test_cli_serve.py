"""``pflow-tui serve``: listed in the help; without the web extra a message naming it; a bad
flow or trace said before any server starts; the command each browser tab runs, quoted for
the shell, with the debugger's options given to serve. (Serving for real, in Chromium:
tests/web.)"""

from __future__ import annotations

import os
import shlex
import subprocess
import sys
from pathlib import Path
from typing import Any, ClassVar

import orjson
import pytest

from pflow_tui.cli import main, serve
from pflow_tui.cli.run import SERVED

SCRIPT = Path(sys.executable).parent / "pflow-tui"
OK_FLOW = {"name": "hello", "nodes": [{"id": "greet", "type": "echo", "params": {"message": "${who}"}}],
           "inputs": {"who": {"type": "string", "required": False, "default": "world"}}}


@pytest.fixture(autouse=True)
def _isolated(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("COLUMNS", "250")
    monkeypatch.delenv(SERVED, raising=False)


class Recorded:
    """Stands for textual-serve's server: what it was given, and serve() returns at once."""

    made: ClassVar[list[Recorded]] = []

    def __init__(self, command: str, **kwargs: Any) -> None:
        self.command, self.kwargs, self.exit_code = command, kwargs, 130
        Recorded.made.append(self)

    def serve(self) -> None:
        self.kwargs["announce"]()


@pytest.fixture
def server(monkeypatch: pytest.MonkeyPatch) -> list[Recorded]:
    web_server = pytest.importorskip("pflow_tui.cli.web_server",
                                     reason="the web extra (textual-serve) is not installed")
    Recorded.made = []
    monkeypatch.setattr(web_server, "DebuggerServer", Recorded)
    return Recorded.made


def flat(text: str) -> str:
    return " ".join(text.split())


def test_the_help_lists_serve(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--help"]) == 0
    text = flat(capsys.readouterr().out)
    assert "pflow-tui serve FLOW.json [NAME=VALUE]...|replay TRACE.json" in text
    assert "[--host HOST] [--port N]" in text and "[--paused]" in text
    assert "serve the debugger to a web browser" in text
    assert main(["serve", "--help"]) == 0
    text = flat(capsys.readouterr().out)
    assert "pip install 'pflow-tui[web]'" in text and "[default: 127.0.0.1]" in text
    assert "--trace" not in text  # each tab writes a trace of its own


def test_without_the_web_extra_it_says_which_extra(monkeypatch: pytest.MonkeyPatch, tmp_path: Path,
                                                   capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "flow.json").write_bytes(orjson.dumps(OK_FLOW))
    monkeypatch.delitem(sys.modules, "pflow_tui.cli.web_server", raising=False)
    monkeypatch.setitem(sys.modules, "textual_serve", None)  # import textual_serve: ImportError
    monkeypatch.setitem(sys.modules, "textual_serve.server", None)
    assert main(["serve", "flow.json"]) == 2
    err = flat(capsys.readouterr().err)
    assert err == ("error: serve needs textual-serve, which is not installed: install pflow-tui's web "
                   "extra: pip install 'pflow-tui[web]'")


@pytest.mark.parametrize(("args", "said"), [
    (["serve", "missing.json"], "missing.json"),
    (["serve", "bad.json"], "bad.json: 1 problem"),
    (["serve", "flow.json", "--break", "gret"], "--break gret: no node with this id in the flow"),
    (["serve", "flow.json", "--at", "hello.nope"], "hello.nope"),
    (["serve", "flow.json", "nobody=1"], "nobody"),
    (["serve", "replay", "flow.json"], "flow.json"),  # not a trace
    (["serve", "replay"], "serve replay takes one trace file"),
    (["serve", "flow.json", "--trace", "t.json"], "each browser tab runs the flow anew"),
    (["serve", "flow.json", "--port", "0"], "0 is not in the range 1<=x<=65535"),
    (["serve"], "Missing argument"),
])
def test_bad_input_is_said_before_any_server_starts(args: list[str], said: str, tmp_path: Path,
                                                    server: list[Recorded],
                                                    capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "flow.json").write_bytes(orjson.dumps(OK_FLOW))
    (tmp_path / "bad.json").write_bytes(orjson.dumps({"nodes": [{"id": "x", "type": "no-such-type"}]}))
    assert main(args) == 2
    out, err = capsys.readouterr()
    assert said in flat(err) and "Traceback" not in err
    assert server == [] and out == ""


def test_each_tab_runs_the_debugger_quoted_for_the_shell(tmp_path: Path, server: list[Recorded],
                                                         capsys: pytest.CaptureFixture[str]) -> None:
    folder = tmp_path / "it's a \"dir\" $HOME"
    folder.mkdir()
    flow = folder / "my flow.json"
    flow.write_bytes(orjson.dumps(OK_FLOW))
    assert main(["-v", "serve", str(flow), "who=Ada O'Neil; rm -rf /", "--break", "greet", "--paused",
                 "--port", "9001", "--cluster", "local"]) == 130
    (made,) = server
    argv = shlex.split(made.command)
    assert argv == ["exec", sys.executable, "-m", "pflow_tui", str(flow), "who=Ada O'Neil; rm -rf /",
                    "--cluster", "local", "--paused", "--break", "greet"]
    assert made.kwargs["host"] == "127.0.0.1" and made.kwargs["port"] == 9001
    assert made.kwargs["title"] == "pflow-tui · hello" and made.kwargs["verbose"] is True
    assert made.kwargs["public_url"] == "http://127.0.0.1:9001"
    out, err = capsys.readouterr()
    assert out == "http://127.0.0.1:9001\n"
    assert "serving the debugger on hello" in flat(err) and "Ctrl-C stops the server" in flat(err)
    assert os.environ[SERVED] == "1"  # the tabs inherit it: their stdin is the browser's keys


def test_the_quoted_command_reaches_the_cli_unchanged(tmp_path: Path, server: list[Recorded]) -> None:
    """Through a real shell: the tab's command line, with --help, parses as the debugger's."""
    folder = tmp_path / "a 'b' \"c\""
    folder.mkdir()
    (folder / "run").write_bytes(orjson.dumps(OK_FLOW))  # a flow file named like a command
    os.chdir(folder)
    assert main(["serve", "run", "who=x y"]) == 130
    command = server[0].command
    assert shlex.split(command)[4] == "./run"  # not the run command
    done = subprocess.run(command + " --help", shell=True, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert "--break-on-failure" in done.stdout  # the debugger's help: the flow was taken as a flow


def test_a_replay_takes_at_only(tmp_path: Path, server: list[Recorded],
                                capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "flow.json").write_bytes(orjson.dumps(OK_FLOW))
    assert main(["run", "flow.json", "--trace", "t one.json"]) == 0
    assert main(["serve", "replay", "t one.json", "--at", "hello.greet", "--host", "::1"]) == 130
    assert shlex.split(server[0].command)[4:] == ["replay", "t one.json", "--at", "hello.greet"]
    assert server[0].kwargs["public_url"] == "http://[::1]:8000"
    assert server[0].kwargs["title"] == "pflow-tui · hello"
    capsys.readouterr()
    assert main(["serve", "replay", "t one.json", "--paused"]) == 2
    assert "--paused is for a live run" in capsys.readouterr().err


def test_every_address_gets_a_warning_and_this_machines_name(server: list[Recorded], tmp_path: Path,
                                                            capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "flow.json").write_bytes(orjson.dumps(OK_FLOW))
    assert main(["serve", "flow.json", "--host", "0.0.0.0"]) == 130
    assert server[0].kwargs["public_url"] == serve.public_url("0.0.0.0", 8000) != "http://0.0.0.0:8000"
    assert "anyone who reaches this port runs the flow" in flat(capsys.readouterr().err)
    assert main(["serve", "flow.json", "--public-url", "https://dbg.example.org"]) == 130
    assert server[1].kwargs["public_url"] == "https://dbg.example.org"


def test_a_taken_port_is_said(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    import socket

    (tmp_path / "flow.json").write_bytes(orjson.dumps(OK_FLOW))
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        done = subprocess.run([str(SCRIPT), "serve", "flow.json", "--port", str(port)], cwd=tmp_path,
                              capture_output=True, text=True, timeout=60)
    assert done.returncode == 2, done.stderr
    assert f"cannot listen on 127.0.0.1:{port}" in flat(done.stderr) and "Traceback" not in done.stderr


def test_serve_loads_textual_serve_and_no_other_command_does() -> None:
    probe = ("import sys, pflow_tui.cli.run, pflow_tui.cli.replay, pflow_tui.cli.serve; "
             "print('textual_serve' in sys.modules, 'aiohttp' in sys.modules)")
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)
    assert done.stdout.split() == ["False", "False"]  # imported only once serve runs


def test_the_page_shows_the_flows_name_literally(tmp_path: Path) -> None:
    """The page (textual-serve's template) names the flow, and a name is the flow file's text:
    never markup in the page (the loader makes it an id, the template escapes)."""
    import socket
    import time
    import urllib.request

    pytest.importorskip("textual_serve", reason="the web extra (textual-serve) is not installed")
    (tmp_path / "flow.json").write_bytes(orjson.dumps({**OK_FLOW, "name": "<script>alert(1)</script>"}))
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    server = subprocess.Popen([str(SCRIPT), "serve", "flow.json", "--port", str(port)], cwd=tmp_path,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert server.stdout is not None and server.stdout.readline() == f"http://127.0.0.1:{port}\n"
        for _ in range(100):
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=5) as response:
                    html = response.read().decode()
                break
            except OSError:
                time.sleep(0.1)
        assert "<div>pflow-tui · " in html and "alert(1)</" not in html
    finally:
        server.send_signal(2)
        assert server.wait(15) == 130
