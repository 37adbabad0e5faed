"""Secrets are never written down (trace, side files, exports, console), traces are private
(0600 in folders created 0700), and a re-run reads redacted values again (issue 14, point 13)."""

from __future__ import annotations

import json
import os
import stat
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import orjson
import pytest

from pflow_tui.cli import main
from pflow_tui.engine.ir.load import build_flow
from pflow_tui.engine.run.executor import run_flow
from pflow_tui.engine.run.inputs import prepare_inputs
from pflow_tui.engine.trace.redact import Redactor, mark, secret_key, unredact
from pflow_tui.engine.trace.writer import read_trace

TOKEN = "tok-Zq81-bearer"  # a secret input, sent as the http node's auth_token
API_KEY = "key-Lm55-literal"  # written in the flow itself
COOKIE = "sess-Pw22-cookie"
ENV_TOKEN = "env-Rt09-shell"  # a shell node's env
FROM_ENV = "fromenv-Hx71-value"  # an input filled from the environment
SECRETS = (TOKEN, API_KEY, COOKIE, ENV_TOKEN, FROM_ENV)


class _Echo(BaseHTTPRequestHandler):
    """Answers every GET with the headers it got: the response holds the secrets too."""

    def log_message(self, *args: Any) -> None:
        pass

    def do_GET(self) -> None:
        body = json.dumps({"auth": self.headers.get("Authorization"),
                           "key": self.headers.get("X-API-Key"),
                           "cookie": self.headers.get("Cookie"), "path": self.path}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Set-Cookie", f"echo={COOKIE}")
        self.end_headers()
        self.wfile.write(body)


@pytest.fixture(scope="module")
def server() -> Iterator[str]:
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), _Echo)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()
    httpd.server_close()


@pytest.fixture(autouse=True)
def _isolated(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[None]:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("COLUMNS", "250")
    for var in ("http_proxy", "HTTP_PROXY", "https_proxy", "HTTPS_PROXY", "all_proxy", "no_proxy"):
        monkeypatch.delenv(var, raising=False)
    old = os.umask(0o022)  # the usual umask: files would be 0644 in 0755 folders
    yield
    os.umask(old)


def secret_flow(url: str) -> dict[str, Any]:
    return {
        "ir_version": "0.1.0",
        "inputs": {"token": {"type": "string", "secret": True},
                   "DEPLOY_KEY_X": {"type": "string", "required": False},
                   "who": {"type": "string", "default": "team"}},
        "nodes": [
            {"id": "call", "type": "http", "params": {
                "url": url + "/json?who=${who}", "auth_token": "${token}"}},
            {"id": "keyed", "type": "http", "params": {
                "url": url + "/json", "api_key": API_KEY, "headers": {"Cookie": COOKIE}}},
            {"id": "sh", "type": "shell", "params": {
                "command": "echo token=${token} env=$MY_TOKEN from=${DEPLOY_KEY_X}",
                "env": {"MY_TOKEN": ENV_TOKEN}}},
            {"id": "each", "type": "shell", "batch": {"items": ["a", "b", "c"], "batch_size": 2},
             "params": {"command": "echo item ${item}"}},
            {"id": "show", "type": "echo", "params": {"message": "${call.response}",
                                                      "data": "${DEPLOY_KEY_X}"}},
        ],
        "edges": [{"from": "call", "to": "keyed"}, {"from": "keyed", "to": "sh"},
                  {"from": "sh", "to": "each"},
                  {"from": "each", "to": "show"}],
        "outputs": {"said": {"source": "${sh.stdout}"}, "answer": {"source": "${show.echo}"},
                    "got": {"source": "${call.response}"},
                    "keyed": {"source": "${keyed.response}"}},
    }


def every_file(folder: Path) -> Iterator[Path]:
    for p in folder.rglob("*"):
        if p.is_file():
            yield p


def assert_no_secret(text: bytes | str, where: str) -> None:
    data = text.encode() if isinstance(text, str) else text
    for secret in SECRETS:
        assert secret.encode() not in data, f"{secret!r} found in {where}"


def test_nothing_secret_is_written(tmp_path: Path, server: str, monkeypatch: pytest.MonkeyPatch,
                                   capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv("DEPLOY_KEY_X", FROM_ENV)
    flow = tmp_path / "flow.json"
    flow.write_bytes(orjson.dumps(secret_flow(server)))
    assert main(["run", str(flow), f"token={TOKEN}"]) == 0
    out, err = capsys.readouterr()
    traces = tmp_path / ".pflow-tui" / "traces"
    [trace] = traces.glob("*.json")
    run = read_trace(trace)
    # the nodes got the real values: the server saw them, the shell printed them ...
    said = run.outputs["said"]
    assert said == f"token={mark('token')} env={mark('MY_TOKEN')} from={mark('DEPLOY_KEY_X')}"
    assert run.outputs["got"]["auth"] == f"Bearer {mark('token')}"
    keyed = run.outputs["keyed"]
    # (a secret-named key in the response is redacted too)
    assert keyed["key"] == mark("api_key") and keyed["cookie"] == mark("cookie")
    # ... and none of them was written down
    assert run.header["inputs"]["token"] == mark("token")
    assert run.header["inputs"]["DEPLOY_KEY_X"] == mark("DEPLOY_KEY_X")
    assert run.header["flow"]["nodes"][1]["params"]["api_key"] == mark("api_key")
    assert run.header["flow"]["nodes"][0]["params"]["auth_token"] == "${token}"  # a template: kept
    starts = [e for e in run.events if e["kind"] == "node.start" and e["path"].endswith(".call")]
    assert starts[0]["params"]["auth_token"] == mark("auth_token")
    assert "«redacted:" in out + err  # the console's outputs table, redacted
    side = [p for p in every_file(traces) if p != trace]
    assert side, "the batch_size batch writes its results beside the trace"
    assert main(["export", str(trace), "--format", "perfetto", "-o", str(tmp_path / "p.json")]) == 0
    assert main(["export", str(trace), "--format", "otlp", "-o", str(tmp_path / "o.jsonl")]) == 0
    out2, err2 = capsys.readouterr()
    for p in [*every_file(traces), tmp_path / "p.json", tmp_path / "o.jsonl"]:
        assert_no_secret(p.read_bytes(), str(p))
    assert_no_secret(out + err + out2 + err2, "the console")
    # private: 0700 folders, 0600 files, although the umask is 022
    for folder in (tmp_path / ".pflow-tui", traces, *(p for p in traces.rglob("*") if p.is_dir())):
        assert stat.S_IMODE(folder.stat().st_mode) == 0o700, folder
    for p in [*every_file(traces), tmp_path / "p.json", tmp_path / "o.jsonl"]:
        assert stat.S_IMODE(p.stat().st_mode) == 0o600, p


def test_private_even_with_an_open_umask(tmp_path: Path) -> None:
    os.umask(0)
    spec = build_flow({"nodes": [{"id": "a", "type": "echo", "params": {}}]})
    out = tmp_path / "new" / "deeper" / "t.json"
    run_flow(spec, {}, trace=out)
    assert stat.S_IMODE(out.stat().st_mode) == 0o600
    assert stat.S_IMODE(out.parent.stat().st_mode) == 0o700
    assert stat.S_IMODE((tmp_path / "new").stat().st_mode) == 0o700


def test_secret_values_inside_other_text_and_short_ones(tmp_path: Path) -> None:
    spec = build_flow({"inputs": {"pin": {"type": "string", "secret": True},
                                  "pw": {"type": "string", "secret": True}},
                       "nodes": [{"id": "a", "type": "shell",
                                  "params": {"command": "echo [${pw}] [${pin}] ${pw}${pw}"}}]})
    result = run_flow(spec, prepare_inputs(spec, {"pin": "123", "pw": "hunter2"}),
                      trace=tmp_path / "t.json")
    stdout = result.store["a"]["stdout"]
    # a 3-character secret is not searched for inside other text (noise), but never stored as is
    assert stdout == f"[{mark('pw')}] [123] {mark('pw')}{mark('pw')}"
    run = read_trace(tmp_path / "t.json")
    assert run.header["inputs"] == {"pin": mark("pin"), "pw": mark("pw")}
    assert run.store["pin"] == mark("pin")
    writes = {e["key"]: e["value"] for e in run.events if e["kind"] == "store.write"}
    assert writes["pin"] == mark("pin") and writes["pw"] == mark("pw")
    assert b"hunter2" not in (tmp_path / "t.json").read_bytes()


@pytest.mark.parametrize(("key", "secret"), [
    ("Authorization", True), ("proxy-authorization", True), ("auth_token", True),
    ("GITHUB_TOKEN", True), ("client_secret", True), ("PASSWORD", True), ("db_passwd", True),
    ("api_key", True), ("X-Api-Key", True), ("apikey", True), ("Cookie", True),
    ("set-cookie", True), ("cookies_path", False), ("url", False), ("keyword", False),
    ("command", False), ("api_key_header", True),
])
def test_secret_key_names(key: str, secret: bool) -> None:
    assert secret_key(key) is secret


def test_redactor_keys_nested_text_only() -> None:
    r = Redactor()
    params = {"max_tokens": 100, "headers": {"AUTHORIZATION": "Bearer abcdef"},
              "env": {"MY_SECRET": "s3cr3t-value", "PATH": "/bin"},
              "command": "curl -H 'x: s3cr3t-value'", "list": [{"token": "t0k3n-1"}]}
    out = r.scrub(params)
    assert out == {"max_tokens": 100, "headers": {"AUTHORIZATION": mark("AUTHORIZATION")},
                   "env": {"MY_SECRET": mark("MY_SECRET"), "PATH": "/bin"},
                   "command": f"curl -H 'x: {mark('MY_SECRET')}'", "list": [{"token": mark("token")}]}
    assert params["env"]["MY_SECRET"] == "s3cr3t-value"  # the original is untouched
    clean = {"a": [1, {"b": "plain"}]}
    assert r.scrub(clean) is clean  # nothing secret: no copy
    # a flow as written keeps its templates under secret keys
    assert r.scrub({"auth_token": "${token}"}, templates=True) == {"auth_token": "${token}"}
    assert r.scrub({"auth_token": "raw-literal"}, templates=True) == {"auth_token": mark("auth_token")}


def test_unredact() -> None:
    doc = {"a": mark("X"), "b": ["k=" + mark("X") + ";" + mark("Y")], "c": 3}
    assert unredact(doc, {"X": "1234", "Y": "yy"}) == {"a": "1234", "b": ["k=1234;yy"], "c": 3}


# --- re-run ----------------------------------------------------------------------------------------

def _recorded(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    doc = {"inputs": {"token": {"type": "string", "secret": True},
                      "REGION_SECRET_Q": {"type": "string", "required": False}},
           "nodes": [{"id": "a", "type": "shell",
                      "params": {"command": "echo ${token}-${REGION_SECRET_Q}"}}],
           "outputs": {"out": {"source": "${a.stdout}"}}}
    flow = tmp_path / "flow.json"
    flow.write_bytes(orjson.dumps(doc))
    monkeypatch.setenv("REGION_SECRET_Q", "region-value-1")
    assert main(["run", str(flow), "token=first-token", "--trace", str(tmp_path / "t1.json")]) == 0
    monkeypatch.delenv("REGION_SECRET_Q")
    return tmp_path / "t1.json"


def test_rerun_refuses_without_the_redacted_values(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                   capsys: pytest.CaptureFixture[str]) -> None:
    trace = _recorded(tmp_path, monkeypatch)
    capsys.readouterr()
    assert main(["rerun", str(trace), "--trace", str(tmp_path / "t2.json")]) == 2
    err = " ".join(capsys.readouterr().err.split())
    assert "REGION_SECRET_Q" in err and "token" in err and "token=VALUE" in err
    assert not (tmp_path / "t2.json").exists()


def test_rerun_reads_them_from_the_command_line_and_the_environment(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    trace = _recorded(tmp_path, monkeypatch)
    monkeypatch.setenv("REGION_SECRET_Q", "region-value-2")
    assert main(["rerun", str(trace), "token=second-token", "--trace", str(tmp_path / "t2.json")]) == 0
    capsys.readouterr()
    again = read_trace(tmp_path / "t2.json")
    ran = [e for e in again.events if e["kind"] == "node.end"]
    assert ran and not ran[0].get("cached")  # its output was redacted: it ran again
    data = (tmp_path / "t2.json").read_bytes()
    assert b"second-token" not in data and b"region-value-2" not in data  # still secret
    assert again.outputs["out"] == f"{mark('token')}-{mark('REGION_SECRET_Q')}"


# --- the command line --------------------------------------------------------------------------------

def test_markup_in_a_trace_path_is_printed_literally(tmp_path: Path,
                                                      capsys: pytest.CaptureFixture[str]) -> None:
    flow = tmp_path / "flow.json"
    flow.write_bytes(orjson.dumps({"nodes": [{"id": "a", "type": "echo", "params": {}}]}))
    path = str(tmp_path / "x[red]y[/red]" / "t.json")
    assert main(["run", str(flow), "--trace", path]) == 0
    out, err = capsys.readouterr()
    assert f"trace: {path}" in " ".join((out + err).split())
    blocked = str(flow / "x[red]y[/red]" / "t.json")  # a file as a folder: cannot write
    assert main(["run", str(flow), "--trace", blocked]) == 2
    err = "".join(capsys.readouterr().err.split())
    assert "x[red]y[" in err and "cannotwritethetrace" in err


def test_repeated_input_and_empty_trace_are_rejected(tmp_path: Path,
                                                    capsys: pytest.CaptureFixture[str]) -> None:
    flow = tmp_path / "flow.json"
    flow.write_bytes(orjson.dumps({"inputs": {"who": {"type": "string"}},
                                   "nodes": [{"id": "a", "type": "echo", "params": {}}]}))
    assert main(["run", str(flow), "who=a", "who=b", "--trace", str(tmp_path / "t.json")]) == 2
    err = " ".join(capsys.readouterr().err.split())
    assert "'who' is given twice" in err and "Traceback" not in err
    assert not (tmp_path / "t.json").exists()
    assert main(["run", str(flow), "who=a", "--trace", ""]) == 2
    assert "the trace path is empty" in capsys.readouterr().err
    assert not (tmp_path / ".pflow-tui").exists()


def test_fork_reads_redacted_params_again_and_shows_them_redacted(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from pflow_tui.engine.trace.fork import ForkError, fork_item

    seen = tmp_path / "seen.txt"
    doc = {"nodes": [{"id": "a", "type": "shell",
                      "params": {"command": f"echo $MY_TOKEN | tee {seen}",
                                 "env": {"MY_TOKEN": "literal-token-1"}}}]}
    spec = build_flow(doc)
    run_flow(spec, {}, trace=tmp_path / "t.json")
    assert b"literal-token-1" not in (tmp_path / "t.json").read_bytes()
    monkeypatch.delenv("MY_TOKEN", raising=False)
    with pytest.raises(ForkError, match="MY_TOKEN"):
        fork_item(tmp_path / "t.json", "a", None)
    monkeypatch.setenv("MY_TOKEN", "from-env-token-2")
    forked = fork_item(tmp_path / "t.json", "a", None)
    assert forked["status"] == "ok"
    assert seen.read_text().strip() == "from-env-token-2"  # it ran with the real value ...
    assert forked["outputs"]["stdout"] == mark("MY_TOKEN")
    assert "from-env-token-2" not in json.dumps(forked, default=str)  # ... and shows none


def test_the_apps_worker_process_redacts_inputs_from_the_environment(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The app runs flows in a worker process: what came from the environment stays secret there."""
    import subprocess
    import sys

    from pflow_tui.engine.run.child import job_message

    doc = {"inputs": {"SOME_VALUE_Q": {"type": "string"}},
           "nodes": [{"id": "a", "type": "shell", "params": {"command": "echo ${SOME_VALUE_Q}"}}]}
    spec = build_flow(doc)
    monkeypatch.setenv("SOME_VALUE_Q", "worker-env-value-7")
    inputs = prepare_inputs(spec, {})
    trace = tmp_path / "t.json"
    proc = subprocess.Popen([sys.executable, "-m", "pflow_tui.engine.run.child"], stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    assert proc.stdin is not None and proc.stdout is not None
    proc.stdin.write(job_message(spec.ir, name=spec.name, source=spec.source, base_dir=spec.base_dir,
                                 inputs=inputs, trace=trace))
    proc.stdin.flush()
    events = proc.stdout.read()  # until the run ends
    proc.stdin.close()
    assert proc.wait(timeout=60) == 0
    assert b"worker-env-value-7" not in events
    assert b"worker-env-value-7" not in trace.read_bytes()
    assert read_trace(trace).store["a"]["stdout"] == mark("SOME_VALUE_Q")


def test_a_traced_python_program_redacts_secret_named_keys(tmp_path: Path) -> None:
    import pocketflow

    import pflow_tui

    class Login(pocketflow.Node):
        def post(self, shared: dict[str, Any], prep_res: Any, exec_res: Any) -> None:
            shared["session"] = f"logged in with {shared['api_key']}"

    with pflow_tui.trace(tmp_path / "t.json") as tracer:
        pocketflow.Flow(start=Login()).run({"api_key": "program-key-123"})
    data = Path(tracer.paths[0]).read_bytes()
    assert b"program-key-123" not in data
    assert read_trace(tracer.paths[0]).store["session"] == f"logged in with {mark('api_key')}"


def test_a_secret_inputs_default_is_not_written_down(tmp_path: Path) -> None:
    spec = build_flow({"inputs": {"pw": {"type": "string", "secret": True, "default": "default-pw-9"}},
                       "nodes": [{"id": "a", "type": "echo", "params": {"message": "${pw}"}}]})
    run_flow(spec, prepare_inputs(spec, {"pw": "given-pw-8"}), trace=tmp_path / "t.json")
    data = (tmp_path / "t.json").read_bytes()
    assert b"default-pw-9" not in data and b"given-pw-8" not in data
    assert read_trace(tmp_path / "t.json").header["flow"]["inputs"]["pw"]["default"] == mark("pw")


def test_secret_named_environment_variables_a_command_inherits_are_redacted(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SOME_SERVICE_TOKEN", "inherited-token-5")
    monkeypatch.setenv("PLAIN_SETTING_Q", "plain-value-6")
    spec = build_flow({"nodes": [{"id": "a", "type": "shell", "params": {
        "command": "echo $SOME_SERVICE_TOKEN $PLAIN_SETTING_Q"}}]})
    run_flow(spec, {}, trace=tmp_path / "t.json")
    run = read_trace(tmp_path / "t.json")
    assert run.store["a"]["stdout"] == f"{mark('SOME_SERVICE_TOKEN')} plain-value-6"
