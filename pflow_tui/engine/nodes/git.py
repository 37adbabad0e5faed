"""pflow's git nodes: ``git-status``, ``git-log``, ``git-get-latest-tag``, ``git-commit``,
``git-checkout`` and ``git-push``, with pflow's params, outputs and messages (pflow's
nodes/git/*.py at fed939d7). ``git-push`` pushes to whatever remote the repository names (a
directory or a server); it is tested against a bare repository on disk.

As in pflow: a param mistake found before git runs (no commit message, a bad branch name or
``limit``) fails the node without an error edge (pflow raises it from ``prep``); a failure of
git is an ``error`` with pflow's message and pflow's outputs for it (``git_status`` with an
``error`` key, ``commits: []``, ...). A git command that fails is tried twice, 0.5 s apart
(pflow's retry); "not a git repository" and the checks of checkout are not retried, as
retrying gives the same answer.
"""

from __future__ import annotations

import re
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

from .base import NodeType, Param, RunContext, abort

_ATTEMPTS = 2
_NOT_A_REPO = ("Error: Directory '{cwd}' is not a git repository. "
               "Please run this command from within a git repository.")
_NOT_INSTALLED = "Error: Git is not installed or not available in PATH. Please install git and try again."


def _cwd(params: dict[str, Any]) -> str:
    return str(Path(params.get("working_directory") or ".").expanduser().resolve())


def _git(args: list[str], cwd: str, timeout: int = 30) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["git", *args], cwd=cwd, capture_output=True, text=True, shell=False,
                          timeout=timeout, check=False)


def _failed(result: subprocess.CompletedProcess[str]) -> subprocess.CalledProcessError:
    return subprocess.CalledProcessError(result.returncode, result.args, output=result.stdout,
                                         stderr=result.stderr)


def _attempt(ctx: RunContext, work: Callable[[], dict[str, Any]],
             fallback: Callable[[Exception], dict[str, Any]]) -> dict[str, Any]:
    """pflow's exec + exec_fallback: a git failure is retried (outside a batch, whose own
    ``max_retries`` counts), then becomes the node's error outputs."""
    try:
        return work()
    except ValueError as exc:  # pflow's own checks: the same answer on every attempt
        return fallback(exc)
    except (subprocess.SubprocessError, OSError) as exc:
        if ctx.index is None and ctx.attempt < _ATTEMPTS:
            raise
        return fallback(exc)


def _git_error(exc: Exception, cwd: str, what: str, timed_out: str) -> str:
    if isinstance(exc, ValueError) and "not a git repository" in str(exc):
        return _NOT_A_REPO.format(cwd=cwd)
    if isinstance(exc, subprocess.TimeoutExpired):
        return timed_out
    if isinstance(exc, subprocess.CalledProcessError):
        return f"Error: Git command failed with exit code {exc.returncode}. {exc.stderr or 'Unknown error'}"
    if isinstance(exc, FileNotFoundError):
        return _NOT_INSTALLED
    return f"Error: Could not {what} after {_ATTEMPTS} retries. {exc!s}"


def _check_repo(result: subprocess.CompletedProcess[str], cwd: str) -> None:
    if result.returncode != 0 and "not a git repository" in result.stderr.lower():
        raise ValueError(f"Directory '{cwd}' is not a git repository")


# --------------------------------------------------------------------------- git-status

def _parse_status(output: str) -> dict[str, Any]:
    status: dict[str, Any] = {"modified": [], "untracked": [], "staged": [], "branch": "main",
                              "ahead": 0, "behind": 0}
    for line in output.strip().split("\n") if output.strip() else []:
        if line.startswith("# branch.head"):
            parts = line.split()
            if len(parts) >= 3:
                status["branch"] = parts[2]
        elif line.startswith("# branch.ab"):
            m = re.match(r"# branch\.ab \+(\d+) -(\d+)", line)
            if m:
                status["ahead"], status["behind"] = int(m.group(1)), int(m.group(2))
        elif line.startswith(("1", "2")):
            parts = line.split()
            if len(parts) >= 9:
                path = parts[8]
                if parts[1][0] in "MADRC" and path not in status["staged"]:
                    status["staged"].append(path)
                if parts[1][1] == "M" and path not in status["modified"]:
                    status["modified"].append(path)
        elif line.startswith("?"):
            parts = line.split(maxsplit=1)
            if len(parts) >= 2 and parts[1] not in status["untracked"]:
                status["untracked"].append(parts[1])
    for key in ("modified", "untracked", "staged"):
        status[key].sort()
    return status


def git_status(params: dict[str, Any], ctx: RunContext) -> dict[str, Any]:
    cwd = _cwd(params)

    def work() -> dict[str, Any]:
        result = _git(["status", "--porcelain=v2", "--branch"], cwd)
        _check_repo(result, cwd)
        if result.returncode != 0:
            raise _failed(result)
        return {"git_status": _parse_status(result.stdout)}

    def fallback(exc: Exception) -> dict[str, Any]:
        error = _git_error(exc, cwd, "get git status",
                           "Error: Git status command timed out after 30 seconds. The repository may be "
                           "very large or there may be system issues.")
        return {"error": error, "git_status": {"modified": [], "untracked": [], "staged": [],
                                               "branch": "unknown", "ahead": 0, "behind": 0, "error": error}}

    return _attempt(ctx, work, fallback)


# --------------------------------------------------------------------------- git-log

def _parse_commits(output: str) -> list[dict[str, Any]]:
    commits: list[dict[str, Any]] = []
    for raw in output.strip().split("|ENDCOMMIT\n") if output.strip() else []:
        if not raw.strip():
            continue
        parts = raw.split("|", 7)
        if len(parts) < 7:
            continue
        body = ""
        if len(parts) > 7:
            body = parts[7]
            if body.endswith("|ENDCOMMIT"):
                body = body[:-10]
            body = body.strip()
        subject = parts[6]
        commits.append({
            "sha": parts[0], "short_sha": parts[1], "author_name": parts[2], "author_email": parts[3],
            "date": parts[4], "timestamp": int(parts[5]), "subject": subject,
            "message": f"{subject}\n\n{body}" if body else subject, "body": body,
        })
    return commits


def git_log(params: dict[str, Any], ctx: RunContext) -> dict[str, Any]:
    limit = params.get("limit", 20)
    if limit is None:
        limit = 20
    if isinstance(limit, bool) or not isinstance(limit, int) or limit < 1:
        raise abort(ValueError, f"Invalid limit: {limit}. Must be positive integer.")
    cwd = _cwd(params)

    def is_ref(ref: str) -> bool:
        return _git(["rev-parse", "--verify", "--quiet", ref], cwd, timeout=10).returncode == 0

    def work() -> dict[str, Any]:
        cmd = ["log", "--format=%H|%h|%an|%ae|%aI|%at|%s|%b|ENDCOMMIT", f"-n{limit}"]
        since, until = params.get("since"), params.get("until")
        if since:
            if is_ref(since):
                end = until if until and is_ref(until) else "HEAD"
                cmd.append(f"{since}..{end}")
                until = None if (until and is_ref(until)) else until
            else:
                cmd.append(f"--since={since}")
        if until:
            cmd.append(until if is_ref(until) else f"--until={until}")
        if params.get("author"):
            cmd += ["--author", params["author"]]
        if params.get("grep"):
            cmd += ["--grep", params["grep"]]
        if params.get("path"):
            cmd += ["--", params["path"]]
        result = _git(cmd, cwd)
        if result.returncode != 0:
            err = result.stderr.lower()
            _check_repo(result, cwd)
            if "unknown revision" in err:
                raise ValueError(f"Invalid revision reference in since/until parameters: {result.stderr}")
            if "does not have any commits yet" in err:
                return {"commits": []}
            raise _failed(result)
        return {"commits": _parse_commits(result.stdout)}

    def fallback(exc: Exception) -> dict[str, Any]:
        if isinstance(exc, ValueError) and "Invalid revision" in str(exc):
            error = ("Error: Invalid revision reference. Check that your since/until parameters are valid "
                     "tags, branches, SHAs, or dates.")
        else:
            error = _git_error(exc, cwd, "retrieve git log",
                               "Error: Git log command timed out after 30 seconds. Try reducing the limit "
                               "or using more specific filters.")
        return {"error": error, "commits": []}

    return _attempt(ctx, work, fallback)


# --------------------------------------------------------------------------- git-get-latest-tag

def _parse_tag(output: str) -> dict[str, Any]:
    if not output.strip():
        return {}
    parts = output.strip().split("|", 4)
    if len(parts) < 4:
        return {}
    name, sha, date, subject = parts[0], parts[1], parts[2], parts[3]
    annotated = bool(subject)
    return {"name": name, "sha": sha, "date": date, "message": "" if not annotated and sha else subject,
            "is_annotated": annotated}


def git_get_latest_tag(params: dict[str, Any], ctx: RunContext) -> dict[str, Any]:
    pattern = params.get("pattern")
    cwd = _cwd(params)

    def work() -> dict[str, Any]:
        cmd = ["for-each-ref", "--sort=-version:refname", "--count=1",
               "--format=%(refname:short)|%(objectname)|%(creatordate:iso)|%(contents:subject)"]
        if pattern:
            if ";" in pattern or "&" in pattern or "|" in pattern:
                raise ValueError(f"Invalid pattern: {pattern}. Pattern cannot contain shell operators.")
            cmd.append(f"refs/tags/{pattern}")
        else:
            cmd.append("refs/tags")
        result = _git(cmd, cwd)
        if result.returncode != 0:
            _check_repo(result, cwd)
            if "fatal:" in result.stderr.lower():
                raise _failed(result)
        return {"latest_tag": _parse_tag(result.stdout)}

    def fallback(exc: Exception) -> dict[str, Any]:
        if isinstance(exc, ValueError) and "Invalid pattern" in str(exc):
            error = f"Error: Invalid tag pattern '{pattern}'. Pattern cannot contain shell operators."
        else:
            error = _git_error(exc, cwd, "get latest tag",
                               "Error: Git command timed out after 30 seconds. The repository may be very "
                               "large or there may be system issues.")
        return {"error": error, "latest_tag": {}}

    return _attempt(ctx, work, fallback)


# --------------------------------------------------------------------------- git-commit

def git_commit(params: dict[str, Any], ctx: RunContext) -> dict[str, Any]:
    message = params.get("message")
    if not message:
        raise abort(ValueError, "Commit message is required. Provide it as a parameter.")
    files = params.get("files")
    if files is None:
        files = ["."]
    if isinstance(files, str):
        files = [files]
    cwd = _cwd(params)

    def work() -> dict[str, Any]:
        added = _git(["add", *files], cwd)
        if added.returncode != 0:
            _check_repo(added, cwd)
            raise _failed(added)
        result = _git(["commit", "-m", message], cwd)
        if result.returncode == 1 and "nothing to commit" in result.stdout.lower():
            return {"commit_sha": "", "commit_message": message, "commit_status": "nothing_to_commit"}
        if result.returncode != 0:
            raise _failed(result)
        m = re.search(r"\[[\w/-]+ ([a-f0-9]+)\]", result.stdout)
        sha = m.group(1) if m else ""
        if not sha:
            head = _git(["rev-parse", "HEAD"], cwd, timeout=10)
            if head.returncode == 0:
                sha = head.stdout.strip()[:7]
        return {"commit_sha": sha, "commit_message": message}

    def fallback(exc: Exception) -> dict[str, Any]:
        error = _git_error(exc, cwd, "create commit",
                           "Error: Git command timed out after 30 seconds. The repository may be very "
                           "large or there may be system issues.")
        return {"error": error, "commit_sha": "", "commit_message": message, "commit_status": "error"}

    return _attempt(ctx, work, fallback)


# --------------------------------------------------------------------------- git-checkout

_PROTECTED = ["main", "master", "develop", "production", "staging"]


def git_checkout(params: dict[str, Any], ctx: RunContext) -> dict[str, Any]:
    branch = params.get("branch")
    if not branch:
        raise abort(ValueError, "Branch name is required. Provide it as a parameter.")
    if not re.match(r"^[\w\-/.]+$", str(branch)):
        raise abort(ValueError, f"Invalid branch name '{branch}'. Use only alphanumeric characters, "
                                "hyphens, slashes, and dots.")
    create, base = params.get("create", False), params.get("base")
    force, stash = params.get("force", False), params.get("stash", False)
    protected = _PROTECTED + list(params.get("protected_branches") or [])
    cwd = _cwd(params)

    def current() -> str:
        result = _git(["branch", "--show-current"], cwd, timeout=10)
        if result.returncode != 0:
            _check_repo(result, cwd)
            alt = _git(["rev-parse", "--abbrev-ref", "HEAD"], cwd, timeout=10)
            if alt.returncode == 0:
                name = alt.stdout.strip()
                return "" if name == "HEAD" else name
            raise _failed(result)
        return result.stdout.strip()

    def work() -> dict[str, Any]:
        try:
            previous = current()
        except subprocess.CalledProcessError as exc:
            raise ValueError(f"Failed to get current branch: {exc.stderr or 'Unknown error'}") from exc
        stash_ref = ""
        if _git(["status", "--porcelain"], cwd, timeout=10).stdout.strip():
            if not stash:
                raise ValueError("Uncommitted changes detected. "
                                 "Commit your changes, stash them manually, or set stash=true to auto-stash.")
            saved = _git(["stash", "push", "-m", f"Auto-stash before checkout to {branch}"], cwd)
            if saved.returncode != 0:
                if "no local changes to save" not in saved.stdout.lower():
                    raise ValueError(f"Failed to stash changes: {saved.stderr or 'Unknown error'}")
            else:
                m = re.search(r"stash@\{(\d+)\}", saved.stdout)
                stash_ref = (f"stash@{{{m.group(1)}}}" if m
                             else "stash@{0}" if "Saved working directory" in saved.stdout else "")
        created = False
        if create:
            if branch.lower() in [p.lower() for p in protected] and not force:
                raise ValueError(f"Cannot create protected branch '{branch}'. Protected branches: "
                                 f"{', '.join(protected)}. Use force=true to override this protection.")
            exists = _git(["rev-parse", "--verify", f"refs/heads/{branch}"], cwd, timeout=10).returncode == 0
            if exists and not force:
                raise ValueError(f"Branch '{branch}' already exists. Use force=true to reset it or "
                                 "create=false to switch to it.")
            if base and base != previous:
                based = _git(["checkout", base], cwd)
                if based.returncode != 0:
                    err = based.stderr.lower()
                    if "did not match any file" in err or "pathspec" in err:
                        raise ValueError(f"Base branch '{base}' does not exist")
                    raise ValueError(f"Failed to checkout base branch '{base}': {based.stderr}")
            cmd, created = ["checkout", "-B" if force else "-b", branch], True
        else:
            cmd = ["checkout", branch]
        result = _git(cmd, cwd)
        if result.returncode != 0:
            err = result.stderr.lower()
            if "did not match any file" in err or "pathspec" in err:
                raise ValueError(f"Branch '{branch}' does not exist. Use create=true to create a new branch.")
            if "already exists" in err:
                raise ValueError(f"Branch '{branch}' already exists. Use force=true to reset it or "
                                 "create=false to switch to it.")
            raise _failed(result)
        out: dict[str, Any] = {"current_branch": branch, "previous_branch": previous or "",
                               "branch_created": created}
        if stash_ref:
            out["stash_created"] = stash_ref
        return out

    def fallback(exc: Exception) -> dict[str, Any]:
        if isinstance(exc, ValueError):
            error = str(exc)
        else:
            error = _git_error(exc, cwd, "checkout branch",
                               "Error: Git checkout command timed out after 30 seconds. The repository may "
                               "be very large or there may be system issues.")
        return {"error": error, "current_branch": "", "previous_branch": "", "branch_created": False}

    return _attempt(ctx, work, fallback)


_WD = Param("working_directory", "str", default=".", description="Directory to run git commands in")


def _git_type(name: str, run: Any, params: tuple[Param, ...], outputs: tuple[str, ...],
              description: str, output_types: tuple[tuple[str, str], ...] = ()) -> NodeType:
    return NodeType(name=name, run=run, params=(*params, _WD), outputs=outputs, description=description,
                    blocking=True, max_retries=_ATTEMPTS, wait=0.5, output_types=output_types)


GIT_STATUS = _git_type("git-status", git_status, (), ("git_status",),
                       "Git repository status: modified, untracked and staged files, branch, ahead/behind.",
                       (("git_status", "dict"), ("git_status.modified", "list[str]"),
                        ("git_status.untracked", "list[str]"), ("git_status.staged", "list[str]"),
                        ("git_status.branch", "str"), ("git_status.ahead", "int"),
                        ("git_status.behind", "int")))
GIT_LOG = _git_type("git-log", git_log, (
    Param("since", "str", description="Start point: a tag, branch, SHA or a date"),
    Param("until", "str", description="End point: a tag, branch, SHA or a date (default HEAD)"),
    Param("limit", "int", default=20, description="Maximum commits to return"),
    Param("author", "str", description="Filter by author email or name"),
    Param("grep", "str", description="Filter commits by message content"),
    Param("path", "str", description="Filter by file path"),
), ("commits",), "Commit history with filters (sha, author, date, subject, body of each).",
    (("commits", "list[dict]"), *((f"commits[].{k}", "str") for k in (
        "author_email", "author_name", "body", "date", "message", "sha", "short_sha", "subject")),
     ("commits[].timestamp", "int")))
GIT_GET_LATEST_TAG = _git_type("git-get-latest-tag", git_get_latest_tag, (
    Param("pattern", "str", description="Tag pattern filter, e.g. 'v*'"),
), ("latest_tag",), "The latest tag (by version order): name, sha, date, message, is_annotated.",
    (("latest_tag", "dict"), ("latest_tag.date", "str"), ("latest_tag.is_annotated", "bool"),
     ("latest_tag.message", "str"), ("latest_tag.name", "str"), ("latest_tag.sha", "str")))
GIT_COMMIT = _git_type("git-commit", git_commit, (
    Param("message", "str", required=True, description="Commit message"),
    Param("files", "list", description="Files to add (default ['.'])"),
), ("commit_sha", "commit_message", "commit_status"), "Stage files and create a commit.",
    (("commit_sha", "str"), ("commit_message", "str")))
GIT_CHECKOUT = _git_type("git-checkout", git_checkout, (
    Param("branch", "str", required=True, description="Branch name to create or switch to"),
    Param("create", "bool", default=False, description="Create a new branch"),
    Param("base", "str", description="Base branch for a new branch (default: the current one)"),
    Param("force", "bool", default=False, description="Force create even if it exists"),
    Param("stash", "bool", default=False, description="Auto-stash uncommitted changes"),
    Param("protected_branches", "list", description="More branch names that create may not reuse"),
), ("current_branch", "previous_branch", "branch_created", "stash_created"),
    "Switch to a branch, or create one (with protection of main, master, ...).",
    (("current_branch", "str"), ("previous_branch", "str"), ("branch_created", "bool"),
     ("stash_created", "str")))



# --------------------------------------------------------------------------- git-push

def git_push(params: dict[str, Any], ctx: RunContext) -> dict[str, Any]:
    """``git push REMOTE BRANCH``: ``push_result`` {success, branch, remote}; a rejected push is
    ``success: false`` (the ``default`` action, as in pflow); any other failure writes ``error``
    too and takes ``error``."""
    branch = params.get("branch") or "HEAD"
    remote = params.get("remote") or "origin"
    cwd = _cwd(params)

    def work() -> dict[str, Any]:
        result = _git(["push", remote, branch], cwd)
        if result.returncode != 0:
            _check_repo(result, cwd)
            if "rejected" in (result.stderr + result.stdout).lower():
                return {"push_result": {"success": False, "branch": branch, "remote": remote}}
            raise _failed(result)
        return {"push_result": {"success": True, "branch": branch, "remote": remote}}

    def fallback(exc: Exception) -> dict[str, Any]:
        if isinstance(exc, subprocess.CalledProcessError):
            stderr = exc.stderr or "Unknown error"
            if "authentication" in stderr.lower() or "permission" in stderr.lower():
                error = f"Error: Git push failed - authentication or permission issue. {stderr}"
            elif "could not read from remote" in stderr.lower():
                error = (f"Error: Could not connect to remote '{remote}'. Check your network connection "
                         "and remote URL.")
            else:
                error = f"Error: Git push failed with exit code {exc.returncode}. {stderr}"
        else:
            error = _git_error(exc, cwd, "push to remote", "Error: Git push timed out after 30 seconds. This "
                               "may be due to network issues or authentication problems.")
        return {"error": error, "push_result": {"success": False, "branch": branch, "remote": remote}}

    return _attempt(ctx, work, fallback)


GIT_PUSH = NodeType(
    name="git-push", run=git_push, params=(
        Param("branch", "str", default="HEAD", description="Branch to push"),
        Param("remote", "str", default="origin", description="Remote name (or a URL or path)"),
        _WD),
    outputs=("push_result",), description="Push commits to a remote repository.",
    blocking=True, max_retries=_ATTEMPTS, wait=1.0,
    output_types=(("push_result", "dict"), ("push_result.success", "bool"), ("push_result.branch", "str"),
                  ("push_result.remote", "str")))

GIT_TYPES = (GIT_STATUS, GIT_LOG, GIT_GET_LATEST_TAG, GIT_COMMIT, GIT_CHECKOUT, GIT_PUSH)
