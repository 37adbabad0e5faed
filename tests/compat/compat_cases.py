"""The compatibility corpus: flows, how each is run, and how a result is normalised.

Shared by ``tests/compat/test_goldens.py`` (runs pflow-tui) and
``scripts/record_pflow_goldens.py`` (runs the real pflow), so both see the same setup
and the same normalisation.

A case is ``flows/NAME.json`` (the flow file, as pflow reads it) plus an optional
``flows/NAME.case.json``::

    {"args": ["k=v", ...],          # command-line inputs
     "stdin": "text",               # piped to the run
     "files": {"rel/path": "text"}, # written in the run's directory first
     "git": true,                   # the run's directory is a git repository with one commit
                                    # (of the files; flow.json is ignored) tagged v0.1.0
     "after_commit": {"path": "text"},  # then written (untracked or modified files)
     "pflow_settings": {...},       # pflow's ~/.pflow/settings.json for the recording
                                    # (pflow denies its git nodes unless settings allow them)
     "mcp": true,                   # ~/.pflow/mcp-servers.json names the MCP server "tiny"
                                    # (tests/engine/mcp/tiny_server.py; pflow: after `mcp sync`)
     "commits_after": [["path", "text", "message"], ...],  # commits after the tag (git)
     "remote": true,                # a bare repository ../remote.git is "origin" (git)
     "http": true}                  # a local HTTP server (ROUTES) runs; "{HTTP}" in args is
                                    # its base URL, shown as <HTTP> in results

Each run happens in a fresh directory (its working directory) holding ``flow.json`` and
the case's files. The result is ``{"exit", "store", "files"}``: the exit status, the
final shared store (each node's namespace, inputs and root keys), and every file in the
directory afterwards (``flow.json`` and ``.git`` left out). Normalised, and nothing else:
the run's directory is ``<TMP>``, batch timings are ``<ms>``, http's ``response_time`` is
``<s>``, a case's HTTP server is ``<HTTP>``, an exception is its type
and message, and pflow's runtime bookkeeping keys (``__execution__``, ``__llm_calls__``,
``__progress_callback__``, ``__warnings__``, ``__verbose__``,
``__non_repairable_error__``: the checkpoint, repair and logging pflow-tui does not carry
over; see docs/compatibility.md) are dropped.
"""

from __future__ import annotations

import base64
import contextlib
import json
import os
import shutil
import subprocess
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

HERE = Path(__file__).parent
FLOWS = HERE / "flows"
GOLDENS = HERE / "goldens"
#: the cases that differ on purpose: name -> {"docs": a phrase of docs/compatibility.md that
#: says why, "ignore": the parts that differ ("exit", "store.node", "store.node.errors.1.error")}
DIFFERENCES = HERE / "differences.json"

#: root keys of pflow's runtime, not of the IR (docs/compatibility.md, "Not carried over")
DROPPED_ROOT_KEYS = frozenset({"__execution__", "__llm_calls__", "__progress_callback__", "__warnings__",
                               "__metrics__", "__cache_hits__", "__modified_nodes__", "__verbose__",
                               "__non_repairable_error__"})

#: fixed identity and dates, so that commits (and their SHAs) are the same on every run
GIT_ENV = {
    "GIT_AUTHOR_NAME": "Compat Test", "GIT_AUTHOR_EMAIL": "compat@example.com",
    "GIT_COMMITTER_NAME": "Compat Test", "GIT_COMMITTER_EMAIL": "compat@example.com",
    "GIT_AUTHOR_DATE": "2024-01-15T10:30:00+00:00", "GIT_COMMITTER_DATE": "2024-01-15T10:30:00+00:00",
    "GIT_CONFIG_NOSYSTEM": "1", "GIT_CONFIG_GLOBAL": os.devnull,
}


#: the MCP server of the cases with "mcp": true
TINY_SERVER = HERE.parent / "engine" / "mcp" / "tiny_server.py"


def write_mcp_config(home: Path, python: str) -> None:
    """pflow's MCP configuration in ``home``: the server "tiny", run by ``python``."""
    (home / ".pflow").mkdir(exist_ok=True)
    config = {"mcpServers": {"tiny": {"type": "stdio", "command": python, "args": [str(TINY_SERVER)]}}}
    (home / ".pflow" / "mcp-servers.json").write_text(json.dumps(config))


#: what a case's HTTP server answers (cases with "http": true): path -> (status, type, body)
ROUTES = {
    "/json": (200, "application/json", '{"name": "compat", "items": [1, 2, 3], "nested": {"ok": true}}'),
    "/text": (200, "text/plain; charset=utf-8", "plain text\nsecond line"),
    "/missing": (404, "text/plain", "not here"),
    "/broken-json": (200, "application/json", "{not json"),
    "/png": (200, "image/png", "\x89PNG-ish"),
}
#: texts replaced in results (a case's server address) besides the run's directory
SCRUB: list[str] = []


class _Handler(BaseHTTPRequestHandler):
    server_version, sys_version = "compat", ""

    def date_time_string(self, timestamp: float | None = None) -> str:
        return "Mon, 15 Jan 2024 10:30:00 GMT"

    def log_message(self, *args: Any) -> None:
        pass

    def _answer(self, status: int, ctype: str, body: str) -> None:
        raw = body.encode("latin-1" if ctype.startswith("image/") else "utf-8")
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(raw)))
        self.end_headers()
        self.wfile.write(raw)

    def do_GET(self) -> None:
        path, _, query = self.path.partition("?")
        if path == "/query":
            self._answer(200, "application/json", json.dumps({"query": query}))
            return
        self._answer(*ROUTES.get(path, (404, "text/plain", "no route")))

    def do_POST(self) -> None:
        raw = self.rfile.read(int(self.headers.get("Content-Length") or 0)).decode("utf-8")
        self._answer(201, "application/json", json.dumps({
            "method": self.command, "body": raw, "content_type": self.headers.get("Content-Type"),
            "auth": self.headers.get("Authorization"), "key": self.headers.get("X-API-Key")}, sort_keys=True))

    do_PUT = do_POST


@contextlib.contextmanager
def http_server() -> Iterator[str]:
    """A local HTTP server for the cases with "http": true; yields its base URL ("{HTTP}" in a
    case's args), which results show as <HTTP>."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    base = f"http://127.0.0.1:{server.server_address[1]}"
    SCRUB.append(base)
    try:
        yield base
    finally:
        SCRUB.remove(base)
        server.shutdown()
        server.server_close()


def args_of(opts: dict[str, Any], base: str | None) -> list[str]:
    return [a.replace("{HTTP}", base or "") for a in opts.get("args", [])]


def names() -> list[str]:
    return sorted(p.stem for p in FLOWS.glob("*.json") if not p.name.endswith(".case.json"))


def case(name: str) -> dict[str, Any]:
    extra = FLOWS / f"{name}.case.json"
    return json.loads(extra.read_text()) if extra.exists() else {}


def prepare(name: str, workdir: Path) -> dict[str, Any]:
    """Lay out the case in ``workdir`` (empty); returns the case options."""
    opts = case(name)
    shutil.copyfile(FLOWS / f"{name}.json", workdir / "flow.json")
    for rel, text in opts.get("files", {}).items():
        path = workdir / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    if opts.get("git"):
        env = {**os.environ, **GIT_ENV}
        for cmd in (["git", "init", "-q", "-b", "main"], ["git", "add", "-A", "--", ".", ":!flow.json"],
                    ["git", "commit", "-q", "-m", "Initial commit\n\nThe first one."],
                    ["git", "tag", "-a", "v0.1.0", "-m", "First release"]):
            subprocess.run(cmd, cwd=workdir, env=env, check=True, capture_output=True)
        (workdir / ".git" / "info" / "exclude").write_text("flow.json\n")
        for rel, text, message in opts.get("commits_after", []):  # history after the tag
            (workdir / rel).write_text(text)
            for cmd in (["git", "add", "--", rel], ["git", "commit", "-q", "-m", message]):
                subprocess.run(cmd, cwd=workdir, env=env, check=True, capture_output=True)
        if opts.get("remote"):  # a bare repository beside the run's directory, as "origin"
            for cmd in (["git", "init", "-q", "--bare", "-b", "main", str(workdir.parent / "remote.git")],
                        ["git", "remote", "add", "origin", "../remote.git"]):
                subprocess.run(cmd, cwd=workdir, env=env, check=True, capture_output=True)
        for rel, text in opts.get("after_commit", {}).items():
            (workdir / rel).write_text(text)
    return opts


def _scrub(value: Any, tmp: tuple[str, ...]) -> Any:
    if isinstance(value, str):
        for t in tmp:
            value = value.replace(t, "<HTTP>" if t.startswith("http://") else "<TMP>")
        return value
    if isinstance(value, BaseException):
        return {"type": type(value).__name__, "message": _scrub(str(value), tmp)}
    if isinstance(value, dict):
        if set(value) == {"type", "message", "traceback"}:  # pflow-tui's record of an exception
            return {"type": value["type"], "message": _scrub(value["message"], tmp)}
        out = {str(k): _scrub(v, tmp) for k, v in value.items()}
        if "timing" in out and isinstance(out["timing"], dict) and "execution_mode" in out:
            out["timing"] = {k: "<ms>" for k in out["timing"]}
        if "response_time" in out and "status_code" in out:  # http: wall-clock seconds
            out["response_time"] = "<s>"
        return out
    if isinstance(value, (list, tuple)):
        return [_scrub(v, tmp) for v in value]
    if value is None or isinstance(value, (bool, int, float)):
        return value
    return repr(value)


def normalise_store(store: dict[str, Any], workdir: Path) -> dict[str, Any]:
    tmp = tuple(sorted({str(workdir), os.path.realpath(workdir)}, key=len, reverse=True))
    tmp = (*tmp, *SCRUB)
    return {k: _scrub(v, tmp) for k, v in store.items() if k not in DROPPED_ROOT_KEYS}


def files(workdir: Path) -> dict[str, str]:
    """Every file under ``workdir`` but flow.json and .git: text, or ``base64:`` bytes."""
    out: dict[str, str] = {}
    for path in sorted(workdir.rglob("*")):
        rel = path.relative_to(workdir).as_posix()
        if rel == "flow.json" or rel.split("/")[0] == ".git" or not path.is_file():
            continue
        raw = path.read_bytes()
        try:
            out[rel] = raw.decode("utf-8")
        except UnicodeDecodeError:
            out[rel] = "base64:" + base64.b64encode(raw).decode("ascii")
    return out


def result(exit_code: int, store: dict[str, Any], workdir: Path) -> dict[str, Any]:
    return {"exit": exit_code, "store": normalise_store(store, workdir), "files": files(workdir)}


def golden(name: str) -> dict[str, Any] | None:
    path = GOLDENS / f"{name}.json"
    return json.loads(path.read_text()) if path.exists() else None


def differences() -> dict[str, dict[str, Any]]:
    return json.loads(DIFFERENCES.read_text()) if DIFFERENCES.exists() else {}
