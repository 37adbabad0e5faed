"""Behaviour of the built-in node types (pflow-compatible outputs and messages)."""

from __future__ import annotations

import base64
import json
import re
import socket
import sys
import threading
import time
import types
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import anyio
import pytest

from pflow_tui.engine.nodes import llm as llm_node
from pflow_tui.engine.nodes.base import NodeAbort, NodeFailure, RunContext
from pflow_tui.engine.nodes.echo import ECHO
from pflow_tui.engine.nodes.files import READ_FILE, WRITE_FILE
from pflow_tui.engine.nodes.http import HTTP
from pflow_tui.engine.nodes.llm import LLM, check_llm, offline_answer, parse_json_response
from pflow_tui.engine.nodes.shell import SHELL, _dangerous

CTX = RunContext(path="t.n")


def shell(**params: Any) -> dict[str, Any]:
    return dict(SHELL.run({"timeout": 30, "strip_newline": True, **params}, CTX))


# --------------------------------------------------------------------------- shell


def test_shell_success_outputs() -> None:
    assert shell(command="echo hi") == {
        "stdout": "hi",
        "stdout_is_binary": False,
        "stderr": "",
        "stderr_is_binary": False,
        "exit_code": 0,
        "command": "echo hi",
    }


def test_shell_strip_newline() -> None:
    assert shell(command="printf 'a\\n\\n'")["stdout"] == "a"  # pflow strips all trailing \n
    assert shell(command="echo hi", strip_newline=False)["stdout"] == "hi\n"
    assert shell(command="echo oops >&2")["stderr"] == "oops\n"  # stderr never stripped


def test_shell_failure_is_handled() -> None:
    out = shell(command="echo bad thing >&2; exit 2")
    assert out["exit_code"] == 2
    assert out["error"] == "Command failed with exit code 2: bad thing\n"
    assert shell(command="exit 3")["error"] == "Command failed with exit code 3"


def test_shell_ignore_errors() -> None:
    out = shell(command="exit 4", ignore_errors=True)
    assert out["exit_code"] == 4
    assert "error" not in out


def test_shell_benign_grep_no_match(tmp_path: Path) -> None:
    (tmp_path / "f.txt").write_text("alpha\n")
    out = shell(command=f"grep zzz {tmp_path / 'f.txt'}")
    assert out["exit_code"] == 1
    assert "error" not in out
    assert out["smart_handled"] is True
    assert out["smart_handled_reason"] == "grep exit 1 with empty stderr - no matches"
    piped = shell(command=f"cat {tmp_path / 'f.txt'} | grep zzz")
    assert piped["smart_handled"] is True


def test_shell_grep_real_error_is_not_benign(tmp_path: Path) -> None:
    out = shell(command=f"grep x {tmp_path / 'missing.txt'}")
    assert out["exit_code"] == 2
    assert out["error"].startswith("Command failed with exit code 2: grep:")
    assert "smart_handled" not in out


def test_shell_benign_ls_glob_and_which(tmp_path: Path) -> None:
    ls = shell(command=f"ls {tmp_path}/*.nothing")
    assert (ls["exit_code"], ls["smart_handled_reason"]) == (
        1,
        "ls with glob pattern - no matches",
    )
    which = shell(command="which no-such-command-xyz")
    assert which["exit_code"] == 1
    assert which["smart_handled_reason"] == "which exit 1 with empty stderr - command not found"
    find = shell(command=f"find {tmp_path} -name '*.nothing'")
    assert (find["exit_code"], find["stdout"], "error" in find) == (0, "", False)


def test_shell_timeout() -> None:
    start = time.monotonic()
    out = shell(command="sleep 5; echo never", timeout=0.2)
    assert time.monotonic() - start < 3
    assert out["exit_code"] == -1
    assert out["error"] == "Command timed out after 0.2 seconds"
    assert out["stdout"] == ""


def test_shell_binary_output_is_base64() -> None:
    out = shell(command="printf '\\377\\376\\000\\001'")
    assert out["stdout_is_binary"] is True
    assert base64.b64decode(out["stdout"]) == b"\xff\xfe\x00\x01"


def test_shell_stdin_adaptation() -> None:
    assert shell(command="cat", stdin={"a": [1, "é"]})["stdout"] == '{"a": [1, "é"]}'
    assert shell(command="cat", stdin=[1, 2])["stdout"] == "[1, 2]"
    assert shell(command="cat", stdin=True)["stdout"] == "true"
    assert shell(command="cat", stdin=False)["stdout"] == "false"
    assert shell(command="cat", stdin=42)["stdout"] == "42"
    assert shell(command="cat")["stdout"] == ""  # no stdin: never reads the terminal


def test_shell_env_and_cwd(tmp_path: Path) -> None:
    assert shell(command="echo $PFLOW_T_VAR", env={"PFLOW_T_VAR": "x1"})["stdout"] == "x1"
    assert shell(command="echo $HOME", env={"OTHER": "1"})["stdout"]  # merged over os.environ
    assert shell(command="pwd", cwd=str(tmp_path))["stdout"] == str(tmp_path.resolve())
    # pflow raises this (from prep): the node fails without an error edge (NodeAbort)
    with pytest.raises(NodeAbort, match=r"Working directory does not exist: .*nope") as caught:
        shell(command="pwd", cwd=str(tmp_path / "nope"))
    assert isinstance(caught.value, ValueError)
    assert type(caught.value).__name__ == "ValueError"  # recorded as pflow records it


def test_shell_runs_sh_by_default_and_bash_on_request() -> None:
    assert shell(command="echo {a,b}")["stdout"] == "{a,b}"  # /bin/sh, as pflow
    assert shell(command="echo {a,b}", shell="bash")["stdout"] == "a b"
    assert shell(command="[[ 1 == 1 ]] && echo yes", shell="bash")["stdout"] == "yes"
    assert "Unknown shell" in shell(command="true", shell="zsh")["error"]


@pytest.mark.parametrize(
    ("command", "label"),
    [
        ("rm -rf /", "rm -rf /"),
        ("sudo rm -rf /*", "rm -rf /"),
        (":(){ :|:& };:", ":(){ :|:& };:"),
        ("mkfs.ext4 /dev/sda1", "mkfs on a device"),
        ("dd if=/dev/zero of=/dev/sda bs=1M", "dd to a device"),
    ],
)
def test_shell_dangerous_patterns_blocked(command: str, label: str) -> None:
    out = shell(command=command)
    assert out == {"command": command, "error": f"Dangerous command pattern detected: {label}"}


def test_shell_dangerous_patterns_are_specific() -> None:
    for ok in ("rm -rf /tmp/build", "dd if=a.img of=/dev/null", "mkfs.ext4 disk.img", "ls /"):
        assert _dangerous(ok) is None, ok


def test_shell_type_flags() -> None:
    assert (SHELL.name, SHELL.blocking, SHELL.is_async, SHELL.max_retries) == (
        "shell",
        True,
        False,
        1,
    )


# --------------------------------------------------------------------------- files


def test_write_then_read_round_trip(tmp_path: Path) -> None:
    target = tmp_path / "sub" / "dir" / "out.txt"
    out = WRITE_FILE.run({"content": "a\nb\n", "file_path": str(target)}, CTX)
    assert out == {"written": f"Successfully wrote to '{target}'"}  # only that, as pflow
    assert target.read_text() == "a\nb\n"
    read = READ_FILE.run({"file_path": str(target), "encoding": "utf-8"}, CTX)
    assert read == {"content": "1: a\n2: b\n", "content_is_binary": False, "file_path": str(target)}
    raw = READ_FILE.run({"file_path": str(target), "line_numbers": False}, CTX)
    assert raw["content"] == "a\nb\n"


def test_write_append_and_json(tmp_path: Path) -> None:
    target = tmp_path / "log.txt"
    WRITE_FILE.run({"content": "one\n", "file_path": str(target)}, CTX)
    out = WRITE_FILE.run({"content": "two\n", "file_path": str(target), "append": True}, CTX)
    assert out["written"] == f"Successfully appended to '{target}'"
    assert target.read_text() == "one\ntwo\n"
    data = tmp_path / "d.json"
    WRITE_FILE.run({"content": {"k": ["é", 1]}, "file_path": str(data)}, CTX)
    assert data.read_text(encoding="utf-8") == '{\n  "k": [\n    "é",\n    1\n  ]\n}'


def test_relative_paths_resolve_against_cwd(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    out = WRITE_FILE.run({"content": "x", "file_path": "rel/f.txt"}, CTX)
    assert out["written"] == f"Successfully wrote to '{tmp_path / 'rel' / 'f.txt'}'"
    assert READ_FILE.run({"file_path": "rel/f.txt"}, CTX)["content"] == "1: x"


def test_binary_round_trip(tmp_path: Path) -> None:
    payload = bytes(range(256))
    target = tmp_path / "blob.bin"
    encoded = base64.b64encode(payload).decode()
    out = WRITE_FILE.run(
        {"content": encoded, "file_path": str(target), "content_is_binary": True}, CTX
    )
    assert out["written"] == f"Successfully wrote binary file to '{target}'"
    assert target.read_bytes() == payload
    read = READ_FILE.run({"file_path": str(target)}, CTX)
    assert read["content_is_binary"] is True
    assert base64.b64decode(read["content"]) == payload
    odd = tmp_path / "notes.txt"  # undecodable text extension falls back to base64
    odd.write_bytes(b"\xff\xfe\xfa")
    assert READ_FILE.run({"file_path": str(odd)}, CTX)["content_is_binary"] is True


def test_read_missing_file_is_handled(tmp_path: Path) -> None:
    missing = tmp_path / "nope.txt"
    out = READ_FILE.run({"file_path": str(missing)}, CTX)
    assert out["error"] == (
        f"Error: File '{missing}' does not exist. Please check the path and try again."
    )
    assert READ_FILE.run({"file_path": str(tmp_path)}, CTX)["error"] == (
        f"Error: '{tmp_path}' is a directory, not a file."
    )


def test_write_errors(tmp_path: Path) -> None:
    assert "error" in WRITE_FILE.run({"content": "x", "file_path": str(tmp_path)}, CTX)
    blocker = tmp_path / "file"
    blocker.write_text("")
    with pytest.raises(NodeFailure, match="Could not write"):
        WRITE_FILE.run({"content": "x", "file_path": str(blocker / "child.txt")}, CTX)


def test_file_type_flags() -> None:
    for t in (READ_FILE, WRITE_FILE):
        assert (t.blocking, t.max_retries, t.wait) == (True, 3, 0.1)


# --------------------------------------------------------------------------- http


class _Handler(BaseHTTPRequestHandler):
    def log_message(self, *args: Any) -> None:
        pass

    def _send(self, status: int, body: bytes, content_type: str) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("X-Test", "yes")
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self) -> None:
        if self.path.startswith("/json"):
            info = {"ok": True, "path": self.path, "auth": self.headers.get("Authorization")}
            self._send(200, json.dumps(info).encode(), "application/json")
        elif self.path == "/text":
            self._send(200, b'{"looks": "like json"}', "text/plain; charset=utf-8")
        elif self.path == "/png":
            self._send(200, b"\x89PNG\r\n\x1a\n\x00", "image/png")
        else:
            self._send(404, b'{"detail": "not found"}', "application/json")

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
        echo = {"got": body.decode(), "type": self.headers.get("Content-Type")}
        echo["key"] = self.headers.get("X-Key")
        self._send(201, json.dumps(echo).encode(), "application/json")


@pytest.fixture(scope="module")
def server() -> Iterator[str]:
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()
    httpd.server_close()


@pytest.fixture(autouse=True)
def _no_proxy(monkeypatch: pytest.MonkeyPatch) -> None:
    for var in ("http_proxy", "HTTP_PROXY", "https_proxy", "HTTPS_PROXY", "all_proxy"):
        monkeypatch.delenv(var, raising=False)


def http(**params: Any) -> dict[str, Any]:
    """One call, as in a worker process (no run: a client of its own)."""
    return dict(anyio.run(HTTP.run, {"timeout": 30, "api_key_header": "X-API-Key", **params}, CTX))


def test_http_get_json(server: str) -> None:
    out = http(url=f"{server}/json", params={"q": "a b"}, auth_token="tok")
    assert out["status_code"] == 200
    assert out["response"] == {"ok": True, "path": "/json?q=a+b", "auth": "Bearer tok"}
    assert out["response_is_binary"] is False
    assert out["response_headers"]["X-Test"] == "yes"
    assert 0 <= out["response_time"] < 5
    assert "error" not in out


def test_http_404_is_handled_failure(server: str) -> None:
    out = http(url=f"{server}/missing")
    assert out["error"] == "HTTP 404"
    assert out["status_code"] == 404
    assert out["response"] == {"detail": "not found"}


def test_http_post_body(server: str) -> None:
    out = http(url=f"{server}/echo", body={"a": 1}, api_key="k1", api_key_header="X-Key")
    assert out["status_code"] == 201
    assert out["response"] == {"got": '{"a": 1}', "type": "application/json", "key": "k1"}
    raw = http(url=f"{server}/echo", body="plain text")
    assert raw["response"]["got"] == "plain text"
    assert raw["response"]["type"] is None  # no form type for text, as pflow (requests)


def test_http_text_and_binary(server: str) -> None:
    assert http(url=f"{server}/text")["response"] == '{"looks": "like json"}'  # by content type
    png = http(url=f"{server}/png")
    assert png["response_is_binary"] is True
    assert base64.b64decode(png["response"]) == b"\x89PNG\r\n\x1a\n\x00"


def test_http_validation_and_network_errors(server: str) -> None:
    # mistakes in the params fail the node without an error edge (pflow raises them from prep)
    with pytest.raises(NodeAbort, match="Invalid HTTP method") as bad:
        http(url=f"{server}/json", method="FETCH")
    assert isinstance(bad.value, ValueError)
    with pytest.raises(NodeAbort, match="mutually exclusive"):
        http(url=f"{server}/json", auth_token="a", api_key="b")
    for bad in (0, -1.5, "soon", float("inf"), True):
        with pytest.raises(NodeAbort, match=f"Timeout must be a positive number of seconds, got: {bad}"):
            http(url=f"{server}/json", timeout=bad)
    # a network failure is retried, then routable; in a batch it is a ValueError, as in pflow
    with pytest.raises(NodeFailure, match=r"Could not connect .*\(.*refused.*\)") as down:
        http(url=f"http://127.0.0.1:{_free_port()}/x", timeout=2)
    assert isinstance(down.value, ValueError) and type(down.value).__name__ == "ValueError"
    assert (HTTP.executor, HTTP.max_retries, HTTP.wait) == ("loop", 3, 1.0)  # no thread


def _free_port() -> int:
    """A local port with nothing listening on it."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


# --------------------------------------------------------------------------- echo


def test_echo_semantics() -> None:
    assert ECHO.run({"message": "hi"}, CTX) == {
        "echo": "hi",
        "metadata": {"original_message": "hi", "count": 1, "modified": False},
    }
    out = ECHO.run(
        {"message": "hi", "count": 3, "prefix": "<", "suffix": ">", "uppercase": True, "data": [1]},
        CTX,
    )
    assert out == {
        "echo": "<HI> <HI> <HI>",
        "metadata": {"original_message": "hi", "count": 3, "modified": True},
        "data": [1],
    }
    assert ECHO.run({}, CTX)["echo"] == "Hello, World!"


def test_echo_non_string_message_fails() -> None:
    with pytest.raises(TypeError):
        ECHO.run({"message": 42}, CTX)


def test_echo_is_fast_and_inline() -> None:
    assert (ECHO.blocking, ECHO.is_async) == (False, False)
    start = time.perf_counter()
    for i in range(10_000):
        ECHO.run({"message": "m", "count": 1, "data": i, "prefix": "", "suffix": ""}, CTX)
    assert time.perf_counter() - start < 1.0


# --------------------------------------------------------------------------- llm


async def ask(attempt: int = 1, **params: Any) -> dict[str, Any]:
    ctx = RunContext(path="t.n", attempt=attempt)
    return dict(await LLM.run({"model": "offline", "temperature": 1.0, **params}, ctx))


@pytest.mark.anyio
async def test_llm_offline_is_deterministic() -> None:
    prompt = "Summarise the following text:\nThe quick brown fox."
    first, second = await ask(prompt=prompt), await ask(prompt=prompt)
    assert first == second
    assert re.fullmatch(
        r"Offline answer [0-9a-f]{8}: Summarise the following text: The quick brown fox\.",
        first["response"],
    )
    usage = first["llm_usage"]
    assert usage["model"] == "offline"
    assert usage["total_tokens"] == usage["input_tokens"] + usage["output_tokens"] > 0
    assert (await ask(prompt="other"))["response"] != first["response"]


@pytest.mark.anyio
async def test_llm_offline_choices_and_json() -> None:
    seen = set()
    for i in range(40):
        prompt = f"Review #{i}: great.\nAnswer with one of: Positive, negative | neutral."
        answer = (await ask(prompt=prompt))["response"]
        assert answer in {"Positive", "negative", "neutral"}
        seen.add(answer)
    assert len(seen) == 3  # the hash spreads over every choice
    assert (await ask(prompt="Pick ONE OF: yes or no"))["response"] in {"yes", "no"}
    out = await ask(prompt="Return JSON with a field")
    assert out["response"] == {"answer": out["response"]["answer"], "prompt_chars": 24}
    assert offline_answer("Return JSON with a field") == out["response"]


@pytest.mark.anyio
async def test_llm_fail_rate_is_about_right_and_deterministic() -> None:
    failures = []
    for i in range(1000):
        try:
            await ask(prompt=f"item {i}", fail_rate=0.3)
        except RuntimeError:
            failures.append(i)
    assert 240 <= len(failures) <= 360
    again = []
    for i in failures[:50]:
        with pytest.raises(RuntimeError):
            await ask(prompt=f"item {i}", fail_rate=0.3)
        again.append(i)
    assert again == failures[:50]
    assert (await ask(prompt="x", fail_rate=0.0))["response"]
    with pytest.raises(RuntimeError):
        await ask(prompt="x", fail_rate=1.0)


@pytest.mark.anyio
async def test_llm_failing_prompt_succeeds_on_a_later_attempt() -> None:
    prompt = "p0"
    while not await _fails(prompt, 1):
        prompt += "0"
    attempt = 2
    while await _fails(prompt, attempt):
        attempt += 1
    assert await _fails(prompt, 1)  # still fails on attempt 1: deterministic
    out = await ask(attempt=attempt, prompt=prompt, fail_rate=0.5)
    assert out["response"] == offline_answer(prompt)


async def _fails(prompt: str, attempt: int) -> bool:
    try:
        await ask(attempt=attempt, prompt=prompt, fail_rate=0.5)
    except RuntimeError:
        return True
    return False


@pytest.mark.anyio
async def test_llm_latency_does_not_block_the_loop() -> None:
    start = time.monotonic()
    async with anyio.create_task_group() as tg:
        for i in range(10):
            tg.start_soon(lambda i=i: ask(prompt=f"q{i}", latency=0.2))
    elapsed = time.monotonic() - start
    assert 0.2 <= elapsed < 1.0


@pytest.mark.anyio
async def test_llm_missing_prompt_is_handled() -> None:
    out = await ask(prompt="")
    assert out["response"] == ""
    assert out["llm_usage"] == {}
    assert "requires 'prompt'" in out["error"]


@pytest.mark.anyio
async def test_llm_without_the_library_says_so_and_never_falls_back(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "llm", None)  # import llm -> ImportError
    monkeypatch.setattr(llm_node, "_configured", None)
    with pytest.raises(NodeFailure, match="install llm"):
        await ask(prompt="hi", model="gpt-4o-mini")
    problems = list(check_llm({"prompt": "hi"}))  # no model: validation says why
    assert [(key, what) for key, what, _ in problems] == [
        ("model", "no model given, and the llm library is not installed (pip install 'pflow-tui[llm]')")]
    assert 'give "model": "offline"' in problems[0][2]
    assert list(check_llm({"prompt": "hi", "model": "offline"})) == []


class FakeModel:
    """A model of the llm library that declares max_output_tokens and no temperature."""

    model_id = "fake-1"
    needs_key = None

    class Options:
        model_fields = ("max_output_tokens", "top_p")  # (pydantic: a dict of fields)

    def __init__(self) -> None:
        self.kwargs: dict[str, Any] = {}

    def prompt(self, prompt: str, **kwargs: Any) -> Any:
        self.kwargs = kwargs
        usage = types.SimpleNamespace(input=12, output=3,
                                      details={"prompt_tokens_details": {"cached_tokens": 8}})
        return types.SimpleNamespace(text=lambda: '{"ok": true}', usage=lambda: usage)


def fake_llm(model: FakeModel | None) -> types.ModuleType:
    module = types.ModuleType("llm")

    class UnknownModelError(KeyError):
        pass

    def get_model(name: str | None = None) -> FakeModel:
        if model is None or (name is not None and name != model.model_id):
            raise UnknownModelError(f"Unknown model: {name}")
        return model

    module.get_model = get_model  # type: ignore[attr-defined]
    module.UnknownModelError = UnknownModelError  # type: ignore[attr-defined]
    return module


@pytest.mark.anyio
async def test_llm_sends_only_the_options_a_model_declares(monkeypatch: pytest.MonkeyPatch) -> None:
    model = FakeModel()
    monkeypatch.setitem(sys.modules, "llm", fake_llm(model))
    out = await LLM.run({"prompt": "hi", "model": "fake-1", "temperature": 0.2, "max_tokens": 50}, CTX)
    assert model.kwargs == {"stream": False, "max_output_tokens": 50}  # no temperature: not declared
    assert out["response"] == {"ok": True}
    assert out["llm_usage"] == {"model": "fake-1", "input_tokens": 12, "output_tokens": 3,
                                "total_tokens": 15, "cache_creation_input_tokens": 0,
                                "cache_read_input_tokens": 8}


@pytest.mark.anyio
async def test_llm_unknown_model_is_a_handled_failure_not_retried(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "llm", fake_llm(FakeModel()))
    out = await LLM.run({"prompt": "hi", "model": "nope"}, CTX)
    assert out["error"].startswith("UnknownModelError: ") and "llm models list" in out["error"]
    monkeypatch.setattr(llm_node, "_configured", None)
    monkeypatch.setitem(sys.modules, "llm", fake_llm(None))  # no default model
    [(key, what, _)] = check_llm({"prompt": "hi"})
    assert key == "model" and what.startswith("no model given, and llm's default model is not usable")


def test_llm_type_flags_and_json_parsing() -> None:
    assert (LLM.is_async, LLM.blocking, LLM.max_retries, LLM.wait) == (True, False, 3, 1.0)
    assert parse_json_response('```json\n{"a": 1}\n```') == {"a": 1}
    assert parse_json_response("Here:\n```\n[1, 2]\n```\nbye") == [1, 2]
    assert parse_json_response(' {"b": true} ') == {"b": True}
    assert parse_json_response("plain words") == "plain words"
