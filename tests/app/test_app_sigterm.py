"""SIGTERM of the app (``pflow-tui FLOW.json`` in a real pty): the run ends as interrupted
with its trace footer, the terminal is restored (the alternate screen is left), exit 143."""

from __future__ import annotations

import os
import pty
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import orjson
import pytest

from pflow_tui.engine.trace import events as ev
from pflow_tui.engine.trace.writer import read_trace

pytestmark = pytest.mark.skipif(sys.platform != "linux", reason="a pty and process groups: Linux")

PFLOW_TUI = Path(sys.executable).parent / "pflow-tui"


def wait_until(check, seconds: float) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if check():
            return True
        time.sleep(0.05)
    return check()


def in_pty(tmp_path: Path, *args: str) -> tuple[subprocess.Popen[bytes], bytearray]:
    """``pflow-tui ARGS`` on a fresh pty of 100x30; what it writes collects in the bytearray."""
    master, slave = pty.openpty()
    os.set_inheritable(slave, True)
    import fcntl
    import struct
    import termios

    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 30, 100, 0, 0))
    env = {**os.environ, "TERM": "xterm-256color", "COLUMNS": "100", "LINES": "30"}
    proc = subprocess.Popen([str(PFLOW_TUI), *args], stdin=slave, stdout=slave, stderr=slave,
                            cwd=tmp_path, env=env, start_new_session=True, close_fds=True)
    os.close(slave)
    out = bytearray()

    def drain() -> None:
        while True:
            try:
                chunk = os.read(master, 65536)
            except OSError:
                return
            if not chunk:
                return
            out.extend(chunk)

    threading.Thread(target=drain, daemon=True).start()
    return proc, out


def test_sigterm_of_the_app_ends_the_run_with_its_footer_and_exit_143(tmp_path: Path) -> None:
    marks = tmp_path / "m"
    marks.mkdir()
    doc = {"nodes": [{"id": "work", "type": "shell", "batch": {"items": list(range(200))},
                      "params": {"command": f"sleep 0.05; echo x >> {marks}/m_${{item}}"}}],
           "edges": []}
    flow = tmp_path / "flow.json"
    flow.write_bytes(orjson.dumps(doc))
    trace = tmp_path / "t.json"
    if not PFLOW_TUI.exists():
        pytest.skip("no pflow-tui console script beside the interpreter (pip install -e .)")
    proc, out = in_pty(tmp_path, str(flow), "--trace", str(trace))
    try:
        assert wait_until(lambda: len(list(marks.iterdir())) >= 3, 30), bytes(out[-2000:])
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(30) == 143, bytes(out[-2000:])
    finally:
        if proc.poll() is None:
            proc.kill()
    time.sleep(0.2)  # the last bytes from the pty
    data = bytes(out)
    assert b"\x1b[?1049h" in data  # it had switched to the alternate screen ...
    assert data.rfind(b"\x1b[?1049l") > data.rfind(b"\x1b[?1049h")  # ... and left it
    assert b"Traceback" not in data
    assert b"terminated (SIGTERM)" in data
    t = read_trace(trace)
    assert not t.truncated and t.status == "interrupted"
    assert t.footer["error"]["type"] == "Terminated"
    ends = [e for e in t.events if e["kind"] == ev.ITEM_END]
    assert 0 < len(ends) < 200
    assert not any(p.read_text().count("x") > 1 for p in marks.iterdir())
