"""git-push (pflow's GitPushNode, run against a bare repository on disk) and the pflow node
types pflow-tui does not run (claude-code, github-*, MCP servers over HTTP): refused before
running, exit 2, with why and what to do instead (docs/compatibility.md)."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest

from pflow_tui.engine.ir.load import build_flow
from pflow_tui.engine.nodes.base import RunContext
from pflow_tui.engine.nodes.git import git_push
from pflow_tui.engine.problems import FlowError

ENV = {"GIT_AUTHOR_NAME": "T", "GIT_AUTHOR_EMAIL": "t@example.com", "GIT_COMMITTER_NAME": "T",
       "GIT_COMMITTER_EMAIL": "t@example.com", "GIT_CONFIG_NOSYSTEM": "1", "GIT_CONFIG_GLOBAL": os.devnull}


def git(cwd: Path, *args: str) -> str:
    return subprocess.run(["git", *args], cwd=cwd, env={**os.environ, **ENV}, check=True,
                          capture_output=True, text=True).stdout


@pytest.fixture
def repo(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    for key, value in ENV.items():
        monkeypatch.setenv(key, value)
    work = tmp_path / "work"
    work.mkdir()
    git(tmp_path, "init", "-q", "--bare", "-b", "main", "remote.git")
    git(work, "init", "-q", "-b", "main")
    (work / "a.txt").write_text("a\n")
    git(work, "add", "a.txt")
    git(work, "commit", "-q", "-m", "first")
    git(work, "remote", "add", "origin", "../remote.git")
    return work


def push(repo: Path, attempt: int = 2, **params: str) -> dict:
    ctx = RunContext("push", attempt=attempt)
    return git_push({"working_directory": str(repo), **params}, ctx)


def test_git_push_pushes_to_the_remote(repo):
    assert push(repo) == {"push_result": {"success": True, "branch": "HEAD", "remote": "origin"}}
    assert git(repo.parent / "remote.git", "log", "--format=%s", "main").split() == ["first"]


def test_a_rejected_push_is_success_false_without_an_error(repo):
    push(repo, branch="main")
    git(repo, "commit", "-q", "--amend", "-m", "rewritten")
    assert push(repo, branch="main") == {
        "push_result": {"success": False, "branch": "main", "remote": "origin"}}


def test_a_failed_push_writes_error(repo):
    got = push(repo, remote="nowhere")
    assert got["push_result"] == {"success": False, "branch": "HEAD", "remote": "nowhere"}
    assert got["error"] == ("Error: Could not connect to remote 'nowhere'. Check your network connection "
                            "and remote URL.")


def test_a_failed_push_is_retried_before_its_last_attempt(repo):
    with pytest.raises(subprocess.CalledProcessError):
        push(repo, attempt=1, remote="nowhere")


def test_git_push_outside_a_repository(tmp_path):
    got = git_push({"working_directory": str(tmp_path)}, RunContext("push", attempt=2))
    assert got["error"] == (f"Error: Directory '{tmp_path.resolve()}' is not a git repository. Please run "
                            "this command from within a git repository.")


def problems(doc: dict) -> list[str]:
    with pytest.raises(FlowError) as exc:
        build_flow(doc)
    return [f"{p.where}: {p.what}" for p in exc.value.problems if p.severity == "error"]


@pytest.mark.parametrize("ntype,why", [
    ("claude-code", "it drives the Claude Code agent"),
    ("github-create-pr", "it calls GitHub's API (through the gh CLI): it needs the network"),
    ("github-list-prs", "it calls GitHub's API"),
])
def test_a_node_type_pflow_tui_does_not_run_is_refused_with_why(ntype, why):
    got = problems({"nodes": [{"id": "n", "type": ntype, "params": {}}]})
    assert len(got) == 1
    assert got[0].startswith(f"nodes[0].type: '{ntype}' is a pflow node type that pflow-tui does not "
                             f"run: {why}")


def test_the_cli_says_it_on_one_screen_and_exits_2(tmp_path, capsys, monkeypatch):
    from pflow_tui.cli import main

    monkeypatch.setenv("COLUMNS", "250")
    flow = tmp_path / "f.json"
    flow.write_text(json.dumps({"nodes": [{"id": "pr", "type": "github-create-pr",
                                           "params": {"title": "t"}}]}))
    assert main(["run", str(flow), "--trace", str(tmp_path / "t.json")]) == 2
    err = capsys.readouterr().err
    assert "'github-create-pr' is a pflow node type that pflow-tui does not run" in err
    assert "gh pr create" in err and "Traceback" not in err
    assert len(err.splitlines()) < 25


def test_an_mcp_server_over_http_is_refused_before_running(tmp_path, monkeypatch):
    monkeypatch.setenv("HOME", str(tmp_path))
    (tmp_path / ".pflow").mkdir()
    (tmp_path / ".pflow" / "mcp-servers.json").write_text(json.dumps({"mcpServers": {
        "web": {"type": "http", "url": "https://example.com/mcp"},
        "local": {"type": "stdio", "command": "true"}}}))
    got = problems({"nodes": [{"id": "a", "type": "mcp-web-search", "params": {}},
                              {"id": "b", "type": "mcp-local-search", "params": {}}],
                    "edges": [{"from": "a", "to": "b"}]})
    assert len(got) == 1
    assert got[0].startswith("nodes[0].type: 'mcp-web-search': its MCP server is a \"http\" server in ")
    assert "pflow-tui runs MCP servers over stdio only" in got[0]
