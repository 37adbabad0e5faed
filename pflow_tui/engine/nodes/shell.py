"""The ``shell`` node: run a command with ``/bin/sh`` (``shell=True``), as pflow's ShellNode does;
``"shell": "bash"`` runs it with bash instead (a pflow-tui extension)."""

from __future__ import annotations

import base64
import contextlib
import json
import os
import re
import selectors
import shutil
import subprocess
import threading
import time
from typing import Any

from ..run import process_groups
from .base import NodeCancelled, NodeType, Param, RunContext, abort

_POLL = 0.05  # seconds between looks at the cancel flag
_KILL_WAIT = 1.0  # at most this long for a killed group to be gone before the node ends
#: the shells a node may choose with its ``shell`` param; ``sh`` (pflow's, ``shell=True``) is
#: the default, ``bash`` is a pflow-tui extension (brace expansion, ``[[ ]]``, arrays)
_SHELLS = {"sh": "/bin/sh", "bash": shutil.which("bash") or "/bin/bash"}

#: (label, pattern) pairs for obviously destructive commands. A safety net, not security.
_DANGEROUS: tuple[tuple[str, re.Pattern[str]], ...] = (
    ("rm -rf /", re.compile(r"\brm\s+(?:-{1,2}[\w-]+\s+)*/\*?(?:\s+-{1,2}[\w-]+)*\s*(?:$|[;&|)])")),
    (":(){ :|:& };:", re.compile(r":\(\)\s*\{\s*:\s*\|\s*:\s*&\s*\}\s*;\s*:")),
    ("mkfs on a device", re.compile(r"\bmkfs(?:\.\w+)?\b[^;&|]*\s/dev/")),
    ("dd to a device", re.compile(r"\bdd\b[^;&|]*\bof=/dev/(?!null\b|zero\b|std(?:out|err)\b)")),
    ("write to a block device", re.compile(r">\s*/dev/(?:sd|hd|nvme|disk|mmcblk)")),
    ("chmod 777 /", re.compile(r"\bchmod\s+(?:-R\s+)?777\s+/(?:\s|$)")),
)


def _dangerous(command: str) -> str | None:
    """The label of the first dangerous pattern ``command`` contains, if any."""
    lowered = command.lower()
    for label, pattern in _DANGEROUS:
        if pattern.search(lowered):
            return label
    return None


def _stdin_bytes(value: Any) -> bytes | None:
    """Adapt any stdin value to bytes: dict/list as JSON, bools as true/false."""
    if value is None:
        return None
    if isinstance(value, bytes):
        return value
    if isinstance(value, bool):
        text = "true" if value else "false"
    elif isinstance(value, (dict, list)):
        try:
            text = json.dumps(value, ensure_ascii=False)
        except (TypeError, ValueError):
            text = str(value)
    else:
        text = str(value)
    return text.encode("utf-8")


def _decode(raw: bytes | bytearray) -> tuple[str, bool]:
    """UTF-8 text, or base64 with the binary flag set."""
    try:
        return raw.decode("utf-8"), False
    except UnicodeDecodeError:
        return base64.b64encode(raw).decode("ascii"), True


def _no_match_reason(command: str, exit_code: int, stdout: str, stderr: str) -> str | None:
    """Why a non-zero exit is a benign "no results" outcome (pflow's smart handling)."""
    cmd = command.strip()
    quiet = not stderr.strip()
    if (
        cmd.startswith("ls ")
        and any(c in command for c in "*?[]")
        and ("No such file or directory" in stderr or "cannot access" in stderr)
    ):
        return "ls with glob pattern - no matches"
    if exit_code == 1 and quiet:
        for tool, name in (("grep", "grep"), ("rg", "ripgrep")):
            if cmd.startswith(f"{tool} ") or any(
                f"{sep}{tool} " in command for sep in (" ", "|", "| ")
            ):
                return f"{name} exit 1 with empty stderr - no matches"
    if quiet and cmd.startswith("which "):
        return "which exit 1 with empty stderr - command not found"
    if quiet and "command -v" in command:
        return "command -v exit 1 with empty stderr - command not found"
    if (
        cmd.startswith("type ")
        and ("not found" in stderr or "not found" in stdout)
        and (quiet or "not found" in stderr)
    ):
        return "type exit 1 - command not found"
    return None


def _execute(
    command: str, stdin: bytes | None, cwd: str | None, env: dict[str, str] | None, timeout: float,
    cancel: threading.Event | None = None, shell: str = "/bin/sh",
) -> tuple[bytearray, bytearray, int | None]:
    """Run ``command`` in its own process group; exit code None means it timed out.

    Returns when the command itself ends, as ``/bin/sh`` does: a child it left in the
    background may hold stdout open, but what the command wrote is read and the node goes
    on (the child ends with the run, see :mod:`pflow_tui.engine.run.process_groups`). The group is
    killed at the timeout, as soon as ``cancel`` is set (the run was stopped or a
    fail_fast sibling failed), on any exception, and when the command fails.
    """
    process_groups.prepare()
    proc = subprocess.Popen(
        command,
        shell=True,
        executable=shell,
        stdin=subprocess.PIPE if stdin is not None else subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        cwd=cwd,
        env=env,
        start_new_session=True,
    )
    process_groups.started(proc.pid)
    try:
        out, err, code = _communicate(proc, stdin, time.monotonic() + timeout, cancel)
    except BaseException:
        process_groups.kill(proc.pid)
        proc.wait()
        process_groups.kill(proc.pid, wait=_KILL_WAIT)
        process_groups.forget(proc.pid)
        raise
    if code != 0:  # failed or timed out: nothing of it goes on
        process_groups.kill(proc.pid, wait=_KILL_WAIT)
    process_groups.settled(proc.pid)
    return out, err, code


def _communicate(proc: subprocess.Popen[bytes], stdin: bytes | None, deadline: float,
                 cancel: threading.Event | None) -> tuple[bytearray, bytearray, int | None]:
    """Feed stdin, read stdout and stderr until the command (not its children) has exited.

    Exit code None: the deadline passed (the group is killed; what was read is returned).
    Raises NodeCancelled when ``cancel`` is set.
    """
    chunks: dict[int, bytearray] = {}  # one growing buffer a pipe: no second copy to join
    sel = selectors.DefaultSelector()
    for f in (proc.stdout, proc.stderr):
        assert f is not None
        os.set_blocking(f.fileno(), False)
        chunks[f.fileno()] = bytearray()
        sel.register(f.fileno(), selectors.EVENT_READ, "out")
    data = memoryview(stdin or b"")
    if proc.stdin is not None:
        os.set_blocking(proc.stdin.fileno(), False)
        sel.register(proc.stdin.fileno(), selectors.EVENT_WRITE, "in")
    exit_fd = _pidfd(proc.pid)
    if exit_fd is not None:
        sel.register(exit_fd, selectors.EVENT_READ, "exit")
    outs = [proc.stdout.fileno(), proc.stderr.fileno()]  # type: ignore[union-attr]
    code: int | None = None
    try:
        while True:
            if cancel is not None and cancel.is_set():
                raise NodeCancelled(proc.args)  # type: ignore[arg-type]
            left = deadline - time.monotonic()
            if left <= 0:
                process_groups.kill(proc.pid)
                proc.wait()
                break
            if proc.poll() is not None:
                code = proc.returncode
                break
            for key, _ in sel.select(min(_POLL, left)):
                if key.data == "in":
                    data = _feed(proc, sel, data)
                elif key.data == "out":
                    _read(key.fd, sel, chunks[key.fd])
        for fd in outs:  # what the command wrote before it exited (children may go on)
            if fd in sel.get_map():
                _read(fd, sel, chunks[fd], drain=True)
        return chunks[outs[0]], chunks[outs[1]], code
    finally:
        sel.close()
        if exit_fd is not None:
            os.close(exit_fd)
        for f in (proc.stdin, proc.stdout, proc.stderr):
            if f is not None:
                with contextlib.suppress(OSError):
                    f.close()


def _pidfd(pid: int) -> int | None:
    """A file descriptor that becomes readable when the process exits (Linux 5.3+)."""
    try:
        return os.pidfd_open(pid)  # type: ignore[attr-defined]
    except (AttributeError, OSError):
        return None  # the loop looks at the process every _POLL seconds instead


def _feed(proc: subprocess.Popen[bytes], sel: selectors.BaseSelector, data: memoryview) -> memoryview:
    """Write what the pipe takes of ``data``; close stdin once all is written (or unwanted)."""
    assert proc.stdin is not None
    try:
        data = data[os.write(proc.stdin.fileno(), data[:1 << 16]):] if data else data
    except BlockingIOError:
        return data
    except (BrokenPipeError, OSError):  # the command does not read its input
        data = data[:0]
    if not data:
        sel.unregister(proc.stdin.fileno())
        with contextlib.suppress(OSError):
            proc.stdin.close()
    return data


def _read(fd: int, sel: selectors.BaseSelector, into: bytearray, *, drain: bool = False) -> None:
    """Read what ``fd`` has (all of it now when ``drain``); unregister it at end of file."""
    for _ in range(1024 if drain else 1):
        try:
            chunk = os.read(fd, 1 << 16)
        except BlockingIOError:
            return
        if not chunk:
            sel.unregister(fd)
            return
        into += chunk


def run_shell(params: dict[str, Any], ctx: RunContext) -> dict[str, Any]:
    """Run the command and report stdout/stderr/exit_code; failures are handled, not raised."""
    command = params.get("command")
    if not command or not isinstance(command, str):
        return {"error": "Missing required 'command' parameter"}
    label = _dangerous(command)
    if label:
        return {"command": command, "error": f"Dangerous command pattern detected: {label}"}
    timeout = params.get("timeout", 30)
    if timeout is None:
        timeout = 30
    if isinstance(timeout, bool) or not isinstance(timeout, (int, float)) or timeout <= 0:
        return {"command": command, "error": f"Invalid timeout value: {timeout}"}
    cwd = params.get("cwd") or None
    if cwd:
        cwd = os.path.normpath(os.path.abspath(os.path.expanduser(str(cwd))))
        if not os.path.isdir(cwd):  # pflow raises this from prep: the node fails, no error edge
            raise abort(ValueError, f"Working directory does not exist: {cwd}")
    shell = _SHELLS.get(params.get("shell") or "sh")
    if shell is None:
        return {"command": command, "error": f"Unknown shell {params.get('shell')!r}: use 'sh' or 'bash'"}
    extra_env = params.get("env") or {}
    env = {**os.environ, **{str(k): str(v) for k, v in extra_env.items()}} if extra_env else None

    try:
        out, err, code = _execute(command, _stdin_bytes(params.get("stdin")), cwd, env, timeout,
                                  ctx.cancel, shell)
    except OSError as exc:
        return {
            "stdout": "",
            "stdout_is_binary": False,
            "stderr": str(exc),
            "stderr_is_binary": False,
            "exit_code": -2,
            "command": command,
            "error": f"Failed to execute command: {exc}",
        }

    if code is None:  # timed out: partial output, decoded lossily as text
        stdout, stdout_bin = out.decode("utf-8", errors="replace"), False
        stderr, stderr_bin = err.decode("utf-8", errors="replace"), False
    else:
        stdout, stdout_bin = _decode(out)
        stderr, stderr_bin = _decode(err)
    if params.get("strip_newline", True) and not stdout_bin:
        stdout = stdout.rstrip("\n")
    result: dict[str, Any] = {
        "stdout": stdout,
        "stdout_is_binary": stdout_bin,
        "stderr": stderr,
        "stderr_is_binary": stderr_bin,
        "exit_code": -1 if code is None else code,
        "command": command,
    }
    if code is None:
        result["error"] = f"Command timed out after {timeout} seconds"
    elif code != 0:
        reason = None
        if not (stdout_bin or stderr_bin):
            reason = _no_match_reason(command, code, stdout, stderr)
        ignore = params.get("ignore_errors", False)
        if reason:
            result["exit_code"] = 1  # pflow normalises benign exits across platforms
            if not ignore:
                result.update(smart_handled=True, smart_handled_reason=reason)
            if reason.startswith("type") and "not found" not in stderr and not ignore:
                result["stderr"] = stdout
        elif not ignore:
            message = f"Command failed with exit code {code}"
            result["error"] = f"{message}: {stderr[:500]}" if stderr else message
    return result


SHELL = NodeType(
    name="shell",
    run=run_shell,
    params=(
        Param("command", "str", required=True, description="Shell command to execute"),
        Param("stdin", "any", description="Input data (dict/list serialized to JSON)"),
        Param("cwd", "str", description="Working directory (defaults to current)"),
        Param("env", "dict", description="Extra environment variables"),
        Param("timeout", "int", default=30, description="Max execution time in seconds"),
        Param("ignore_errors", "bool", default=False, description="Continue on non-zero exit"),
        Param("strip_newline", "bool", default=True, description="Strip trailing newlines"),
        Param("shell", "str", choices=("sh", "bash"),
              description="sh (/bin/sh, as pflow; the default) or bash (a pflow-tui extension)"),
    ),
    outputs=("stdout", "stdout_is_binary", "stderr", "stderr_is_binary", "exit_code", "command"),
    output_types=(("stdout", "str"), ("stdout_is_binary", "bool"), ("stderr", "str"),
                  ("stderr_is_binary", "bool"), ("exit_code", "int")),
    description="Execute a shell command (pipes, redirects and all).",
    blocking=True,
    max_retries=1,
)
