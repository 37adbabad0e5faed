"""The http node on httpx: one pooled client per run, redirects and decoding as requests does,
float timeouts, cancellation without threads, and the runs without a run's loop (a worker
process). Every server here is on loopback."""

from __future__ import annotations

import gzip
import itertools
import json
import socket
import subprocess
import sys
import threading
import time
import zlib
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import anyio
import pytest

from pflow_tui.engine.ir.load import build_flow
from pflow_tui.engine.nodes.base import NodeAbort, NodeFailure, RunContext
from pflow_tui.engine.nodes.http import HTTP, MAX_REDIRECTS
from pflow_tui.engine.problems import FlowError
from pflow_tui.engine.run.executor import run_flow


class Server(ThreadingHTTPServer):
    """Counts the TCP connections it accepts and those still open; HTTP/1.1 keep-alive."""

    daemon_threads = True

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), Handler)
        self.accepted = 0
        self.open = 0
        self.lock = threading.Lock()
        self.got_request = threading.Event()  # /hang was reached
        self.hang_ended = ""  # how /hang ended: "closed by the client" or "gave up waiting"

    def get_request(self) -> tuple[socket.socket, Any]:
        conn = super().get_request()
        with self.lock:
            self.accepted += 1
            self.open += 1
        return conn

    def handle_error(self, request: Any, client_address: Any) -> None:
        pass  # a client that went away (a timed-out request) is what some tests do

    def shutdown_request(self, request: Any) -> None:
        with self.lock:
            self.open -= 1
        super().shutdown_request(request)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True  # headers and body are two writes: no 40 ms delayed ACK
    server: Server

    def log_message(self, *args: Any) -> None:
        pass

    def _send(self, status: int, body: bytes = b"", headers: dict[str, str] | None = None) -> None:
        self.send_response(status)
        for key, value in {"Content-Type": "application/json", **(headers or {})}.items():
            self.send_header(key, value)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def _echo(self) -> None:
        body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
        self._send(200, json.dumps({
            "method": self.command, "path": self.path, "body": body.decode(),
            "type": self.headers.get("Content-Type"), "crumbs": self.headers.get("Cookie"),
            "auth": self.headers.get("Authorization"),
            "accept_encoding": self.headers.get("Accept-Encoding")}).encode())

    def _route(self) -> None:
        path = self.path
        if path.startswith("/echo"):
            return self._echo()
        if path.startswith("/r") and path[2:5].isdigit():  # /r307?to=/echo
            self.rfile.read(int(self.headers.get("Content-Length", 0)))
            target = path.partition("to=")[2] or "/echo"
            return self._send(int(path[2:5]), headers={"Location": target})
        if path == "/set-cookie-then-echo":
            return self._send(302, headers={"Location": "/echo", "Set-Cookie": "sid=abc; Path=/"})
        if path.startswith("/loop"):
            n = int(path.partition("?n=")[2] or 0)
            return self._send(302, headers={"Location": f"/loop?n={n + 1}"})
        if path == "/gzip":
            data = gzip.compress(json.dumps({"zipped": True}).encode())
            return self._send(200, data, {"Content-Encoding": "gzip"})
        if path == "/deflate":
            return self._send(200, zlib.compress("déflaté text".encode()),
                              {"Content-Encoding": "deflate", "Content-Type": "text/plain; charset=utf-8"})
        if path == "/slow":
            time.sleep(3)
            return self._send(200, b"{}")
        if path == "/hang":  # never answers: waits for the client to go away
            self.server.got_request.set()
            self.connection.settimeout(5)
            try:
                ended = self.connection.recv(1) == b""
            except TimeoutError:
                ended = False
            self.server.hang_ended = "closed by the client" if ended else "gave up waiting"
            self.close_connection = True
            return None
        return self._send(200, b'{"ok": true}')

    do_GET = do_POST = do_PUT = do_HEAD = _route


@pytest.fixture
def server() -> Iterator[Server]:
    httpd = Server()
    thread = threading.Thread(target=httpd.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    yield httpd
    httpd.shutdown()
    httpd.server_close()


@pytest.fixture(autouse=True)
def _no_proxy(monkeypatch: pytest.MonkeyPatch) -> None:
    for var in ("http_proxy", "HTTP_PROXY", "https_proxy", "HTTPS_PROXY", "all_proxy", "ALL_PROXY"):
        monkeypatch.delenv(var, raising=False)


def call(**params: Any) -> dict[str, Any]:
    """One attempt without a run (as in a worker process: a client of its own)."""
    return dict(anyio.run(HTTP.run, params, RunContext("t.n")))


def run(nodes: list[dict[str, Any]], tmp_path: Path, **kw: Any) -> tuple[Any, list[dict[str, Any]]]:
    spec = build_flow({"ir_version": "0.1.0", "nodes": nodes,
                       "edges": [{"from": a["id"], "to": b["id"]} for a, b in itertools.pairwise(nodes)]},
                      base_dir=tmp_path)
    events: list[dict[str, Any]] = []
    result = run_flow(spec, {}, trace=tmp_path / "trace.json", sinks=[events.append], **kw)
    return result, events


def wait_until(check: Any, seconds: float = 5.0) -> bool:
    deadline = time.monotonic() + seconds
    while not check():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.01)
    return True


# --------------------------------------------------------------------------- the run's client


@pytest.mark.parametrize("parallel", [False, True])
def test_a_run_reuses_its_connections_and_closes_them_at_its_end(server: Server, tmp_path: Path,
                                                                parallel: bool) -> None:
    batch: dict[str, Any] = {"items": list(range(400))}
    if parallel:
        batch.update(parallel=True, max_concurrent=8)
    result, _ = run([{"id": "get", "type": "http", "batch": batch,
                      "params": {"url": f"{server.url}/echo?i=${{item}}"}}], tmp_path)
    assert result.status == "ok"
    results = result.store["get"]["results"]
    assert [r["response"]["path"] for r in results] == [f"/echo?i={i}" for i in range(400)]
    # one connection per concurrent request at most, not one per request (urllib: 400)
    assert 1 <= server.accepted <= (8 if parallel else 1)
    assert wait_until(lambda: server.open == 0), "the run's client left connections open"


def test_nodes_of_a_run_share_the_client_and_no_cookies(server: Server, tmp_path: Path) -> None:
    result, _ = run([
        {"id": "a", "type": "http", "params": {"url": f"{server.url}/set-cookie-then-echo"}},
        {"id": "b", "type": "http", "params": {"url": f"{server.url}/echo"}},
    ], tmp_path)
    assert result.status == "ok"
    assert result.store["a"]["response"]["crumbs"] == "sid=abc"  # within its redirect chain
    assert result.store["b"]["response"]["crumbs"] is None  # never to the next request (pflow)
    assert server.accepted == 1


def test_a_failed_run_closes_its_connections_too(server: Server, tmp_path: Path) -> None:
    result, _ = run([
        {"id": "a", "type": "http", "params": {"url": f"{server.url}/echo"}},
        {"id": "boom", "type": "http", "params": {"url": f"{server.url}/echo",
                                                  "method": "${a.response.path}"}},  # "/ECHO"
    ], tmp_path)
    assert result.status == "failed" and "Invalid HTTP method '/ECHO'" in result.error["message"]
    assert server.accepted == 1
    assert wait_until(lambda: server.open == 0)


# --------------------------------------------------------------------------- redirects


@pytest.mark.parametrize(("status", "method", "after"), [
    (307, "POST", "POST"), (308, "POST", "POST"), (307, "PUT", "PUT"),  # method and body kept
    (303, "POST", "GET"), (302, "POST", "GET"), (301, "POST", "GET"),  # as requests: a GET
    (302, "PUT", "GET"), (301, "PUT", "PUT"), (303, "HEAD", "HEAD"), (302, "GET", "GET"),
])
def test_redirects_as_requests(server: Server, status: int, method: str, after: str) -> None:
    out = call(url=f"{server.url}/r{status}?to=/echo", method=method, body={"n": 1})
    assert out["status_code"] == 200 and "error" not in out
    if after == "HEAD":
        assert out["response"] == ""
        return
    got = out["response"]
    assert (got["method"], got["path"]) == (after, "/echo")
    kept = status in (307, 308)  # requests sends the body on these only (a 301 PUT stays a PUT)
    assert got["body"] == ('{"n": 1}' if kept else "")
    assert got["type"] == ("application/json" if kept else None)


def test_too_many_redirects_is_requests_message(server: Server) -> None:
    with pytest.raises(NodeFailure, match=f"^HTTP request failed: Exceeded {MAX_REDIRECTS} redirects.$"):
        call(url=f"{server.url}/loop")


def test_authorization_is_not_sent_to_another_host(server: Server) -> None:
    port = server.server_address[1]
    same = call(url=f"{server.url}/r302?to=/echo", auth_token="tok")
    assert same["response"]["auth"] == "Bearer tok"
    other = call(url=f"{server.url}/r302?to=http://localhost:{port}/echo", auth_token="tok")
    assert other["response"]["auth"] is None  # as requests: another host gets no credentials


# --------------------------------------------------------------------------- bodies


def test_gzip_and_deflate_bodies_are_decoded(server: Server) -> None:
    zipped = call(url=f"{server.url}/gzip")
    assert zipped["response"] == {"zipped": True} and zipped["response_is_binary"] is False
    assert zipped["response_headers"]["Content-Encoding"] == "gzip"  # as received (requests too)
    deflated = call(url=f"{server.url}/deflate")
    assert deflated["response"] == "déflaté text"
    assert "gzip" in call(url=f"{server.url}/echo")["response"]["accept_encoding"]


# --------------------------------------------------------------------------- timeouts


def test_a_float_timeout_ends_a_slow_request_quickly(server: Server) -> None:
    t0 = time.monotonic()
    with pytest.raises(NodeFailure, match=r"^Request to .*/slow timed out after 0\.2 seconds\. ") as exc:
        call(url=f"{server.url}/slow", timeout=0.2)
    assert time.monotonic() - t0 < 2  # the server answers after 3 s
    assert type(exc.value).__name__ == "ValueError"
    assert call(url=f"{server.url}/echo", timeout=0.5)["status_code"] == 200


def test_timeout_is_validated_as_a_positive_number(server: Server) -> None:
    def problems(timeout: Any) -> list[tuple[str, str]]:
        try:
            build_flow({"ir_version": "0.1.0", "nodes": [
                {"id": "h", "type": "http", "params": {"url": "http://127.0.0.1/", "timeout": timeout}}]})
        except FlowError as exc:
            return [(p.where, p.what) for p in exc.problems]
        return []

    assert problems(0.5) == [] and problems(30) == []
    assert problems("soon") == [("nodes[0].params.timeout",
                                 "'http' param 'timeout' must be a number, got string \"soon\"")]
    with pytest.raises(NodeAbort, match=r"^Timeout must be a positive number of seconds, got: -0\.5$"):
        call(url=f"{server.url}/echo", timeout=-0.5)


# --------------------------------------------------------------------------- cancelling


def test_stopping_the_run_cancels_the_request_without_a_thread(server: Server, tmp_path: Path) -> None:
    baseline = threading.active_count()  # (the server's thread is running)
    stop = threading.Event()
    server.got_request.clear()

    def stop_when_asked() -> None:
        if server.got_request.wait(10):
            stop.set()

    stopper = threading.Thread(target=stop_when_asked)
    stopper.start()
    result, events = run([{"id": "h", "type": "http",
                           "params": {"url": f"{server.url}/hang", "timeout": 30}}], tmp_path, stop=stop)
    stopper.join()
    assert result.status == "interrupted"
    kinds = [(e["kind"], e.get("status")) for e in events if e["kind"] in ("node.end", "run.end")]
    assert kinds == [("node.end", "cancelled"), ("run.end", "cancelled")]
    # the request's connection was closed by the cancelled run, before the server gave up
    # waiting (5 s; urllib's thread would have held it until its 30 s timeout)
    assert wait_until(lambda: server.hang_ended != "", 10)
    assert server.hang_ended == "closed by the client"
    assert wait_until(lambda: threading.active_count() == baseline), threading.enumerate()


# --------------------------------------------------------------------------- without a run's loop


def test_in_a_worker_process(server: Server, tmp_path: Path) -> None:
    result, _ = run([{"id": "p", "type": "http", "executor": "process",
                      "batch": {"items": [1, 2, 3]},
                      "params": {"url": f"{server.url}/gzip", "timeout": 5}}], tmp_path)
    assert result.status == "ok", result.error
    assert [r["response"] for r in result.store["p"]["results"]] == [{"zipped": True}] * 3


def test_run_start_up_does_not_import_httpx(tmp_path: Path) -> None:
    flow = tmp_path / "echo.json"
    flow.write_text(json.dumps({"ir_version": "0.1.0",
                                "nodes": [{"id": "e", "type": "echo", "params": {"message": "hi"}}]}))
    out = subprocess.run([sys.executable, "-X", "importtime", "-m", "pflow_tui", "run", str(flow),
                          "--trace", str(tmp_path / "t.json"), "-q"], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr[-2000:]
    imported = {line.rsplit("|", 1)[-1].strip() for line in out.stderr.splitlines() if "|" in line}
    assert "pflow_tui.engine.nodes.http" in imported  # the node type is registered...
    assert not {m for m in imported if m.split(".")[0] in ("httpx", "httpcore", "h11")}  # ...lazily
