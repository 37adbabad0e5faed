"""The http node: 400 requests to a loopback server, httpx (one pooled client per run) vs urllib.

    python bench/bench_http.py [--requests 400] [--rounds 3] [--tls]

A batch of ``--requests`` GETs runs with ``run_flow`` (events and trace included) twice
per round, sequential and parallel (``max_concurrent`` 10), interleaved: once with the
http node as it is (httpx, on the event loop, one ``AsyncClient`` per run) and once with a
stand-in for the node as it was before (``urllib.request.urlopen`` in a worker thread: a new
TCP connection per request). The server runs in a process of its own (HTTP/1.1 keep-alive,
Nagle off) and counts the connections it accepts. The best wall time of the rounds is kept
(the least disturbed by a shared machine). Issue 16: 400 requests opened 400 connections.
``--tls``: the server speaks HTTPS with a certificate made for the run (``openssl``), trusted
through ``SSL_CERT_FILE`` by both: every new connection is then a TLS handshake too.
"""

from __future__ import annotations

import argparse
import json
import os
import ssl
import subprocess
import sys
import tempfile
import time
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from pflow_tui.engine.ir.load import build_flow
from pflow_tui.engine.nodes.base import NodeType, Param, RunContext
from pflow_tui.engine.registry import registry
from pflow_tui.engine.run.executor import run_flow

TMP = Path(tempfile.mkdtemp(prefix="pflow-bench-http-"))


def make_cert() -> tuple[Path, Path]:
    """A self-signed certificate for 127.0.0.1 and its key."""
    cert, key = TMP / "cert.pem", TMP / "key.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
                    "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1",
                    "-keyout", str(key), "-out", str(cert)], check=True, capture_output=True)
    return cert, key


def serve(tls: str | None) -> None:
    """The server process: prints its port, answers every GET with a small JSON body;
    ``/stats`` gives the connections accepted so far. ``tls``: "CERT,KEY" to speak HTTPS."""
    accepted = [0]

    class Server(ThreadingHTTPServer):
        daemon_threads = True

        def get_request(self) -> Any:
            accepted[0] += 1
            return super().get_request()

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        disable_nagle_algorithm = True

        def log_message(self, *args: Any) -> None:
            pass

        def do_GET(self) -> None:
            stats = self.path == "/stats"
            body = json.dumps({"accepted": accepted[0]} if stats else {"ok": True, "path": self.path})
            data = body.encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

    httpd = Server(("127.0.0.1", 0), Handler)
    if tls:
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(*tls.split(","))
        httpd.socket = context.wrap_socket(httpd.socket, server_side=True)
    print(httpd.server_address[1], flush=True)
    httpd.serve_forever()


def urllib_get(params: dict[str, Any], ctx: RunContext) -> dict[str, Any]:
    """The node as it was, reduced to a GET: urlopen in a worker thread, a connection each."""
    with urllib.request.urlopen(params["url"], timeout=params.get("timeout", 30)) as response:
        return {"response": json.loads(response.read()), "status_code": response.status}


URLLIB_HTTP = NodeType(name="http", run=urllib_get, params=(Param("url", "str", required=True),),
                       outputs=("response", "status_code"), blocking=True, max_retries=3, wait=1.0)


def accepted(base: str) -> int:
    with urllib.request.urlopen(f"{base}/stats") as response:
        return int(json.loads(response.read())["accepted"])


def one_run(base: str, n: int, parallel: bool, old: bool) -> tuple[float, int]:
    """(wall seconds, connections accepted) of one run of the batch."""
    batch: dict[str, Any] = {"items": list(range(n))}
    if parallel:
        batch.update(parallel=True, max_concurrent=10)
    spec = build_flow({"ir_version": "0.1.0", "nodes": [
        {"id": "get", "type": "http", "batch": batch, "params": {"url": f"{base}/item/${{item}}"}}]},
        base_dir=TMP)
    types = dict(registry().items()) if not old else {**dict(registry().items()), "http": URLLIB_HTTP}
    before = accepted(base)
    t = time.perf_counter()
    result = run_flow(spec, {}, trace=TMP / f"t{time.monotonic_ns()}.json", registry=types)
    wall = time.perf_counter() - t
    assert result.status == "ok", result.error
    assert len(result.store["get"]["results"]) == n
    return wall, accepted(base) - before - 1  # (the /stats request itself)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--requests", type=int, default=400)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--tls", action="store_true", help="HTTPS: a TLS handshake per new connection")
    ap.add_argument("--serve", nargs="?", const="", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.serve is not None:
        return serve(args.serve or None)
    tls = ""
    if args.tls:
        cert, key = make_cert()
        os.environ["SSL_CERT_FILE"] = str(cert)  # trusted by urllib and httpx alike
        tls = f"{cert},{key}"
    server = subprocess.Popen([sys.executable, __file__, f"--serve={tls}"], stdout=subprocess.PIPE,
                              text=True)
    try:
        scheme = "https" if tls else "http"
        base = f"{scheme}://127.0.0.1:{server.stdout.readline().strip()}"  # type: ignore[union-attr]
        best: dict[tuple[str, str], tuple[float, int]] = {}
        for _ in range(args.rounds):
            for mode in ("sequential", "parallel"):
                for name in ("urllib (before)", "httpx (now)"):
                    got = one_run(base, args.requests, mode == "parallel", old=name.startswith("urllib"))
                    key = (mode, name)
                    best[key] = min(best.get(key, got), got)
        print(f"{args.requests} GETs to a loopback {scheme.upper()} server, best of {args.rounds} "
              "(run_flow, trace written)")
        print(f"{'batch':<12} {'node':<16} {'wall s':>8} {'req/s':>8} {'connections':>12}")
        for (mode, name), (wall, conns) in best.items():
            print(f"{mode:<12} {name:<16} {wall:8.3f} {args.requests / wall:8.0f} {conns:12d}")
    finally:
        server.terminate()
        server.wait()


if __name__ == "__main__":
    main()
