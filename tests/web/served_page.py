"""``pflow-tui serve`` for real: the installed command on a free port, and a page of it in
headless Chromium (Playwright). The terminal in the page draws on a canvas, so what it shows is
read from the websocket: the app's output, escape sequences taken out. Used by the tests in
this folder and by screenshots/make_browser_screenshot.py."""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

PFLOW_TUI = Path(sys.executable).parent / "pflow-tui"  # the console script, as installed
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
LAUNCH_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
               "--disable-background-networking", "--disable-component-update", "--disable-sync"]
ESCAPES = re.compile(r"\x1b\[[0-9;?<>=]*[ -/]*[@-~]"  # CSI: colours, cursor moves, modes
                     r"|\x1b\][^\x07\x1b]*(?:\x07|\x1b\\)"  # OSC: titles, links
                     r"|\x1b[()][0-9A-Za-z]|\x1b[=>78]")
LOCAL = re.compile(r"^https?://(?!127\.0\.0\.1[:/])")  # the page's web fonts: not fetched


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_for_port(port: int, process: subprocess.Popen[str], timeout: float = 30) -> None:
    """Until ``port`` takes connections (AssertionError: the server ended, or never listened)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise AssertionError(f"pflow-tui serve ended ({process.returncode}): "
                                 f"{process.stderr.read() if process.stderr else ''}")
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), timeout=1):
            return
        time.sleep(0.1)
    raise AssertionError(f"nothing listens on port {port} after {timeout}s")


@contextlib.contextmanager
def served(args: list[str], cwd: Path, port: int) -> Iterator[subprocess.Popen[str]]:
    """``pflow-tui serve ARGS --port PORT`` until the block ends (then Ctrl-C, and killed if it
    does not stop)."""
    process = subprocess.Popen([str(PFLOW_TUI), "serve", *args, "--port", str(port)], cwd=cwd,
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                               env={**os.environ, "COLUMNS": "200"})
    try:
        wait_for_port(port, process)
        yield process
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGINT)
            try:
                process.wait(15)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


class TerminalPage:
    """A served page in Chromium, and what its terminal was sent."""

    def __init__(self, page: Any) -> None:
        self.page = page
        self.frames: list[str] = []
        page.route(LOCAL, lambda route: route.abort())
        page.on("websocket", lambda ws: ws.on("framereceived", self._received))

    def _received(self, payload: bytes | str) -> None:
        self.frames.append(payload.decode("utf-8", "replace") if isinstance(payload, bytes) else payload)

    def text(self, since: int = 0) -> str:
        """What the app wrote to the terminal (from frame ``since`` on), escape sequences out."""
        return ESCAPES.sub("", "".join(self.frames[since:]))

    def wait_for(self, *texts: str, since: int = 0, timeout: float = 30) -> str:
        """Until the terminal was sent every one of ``texts``; what it was sent."""
        deadline = time.monotonic() + timeout
        while True:
            shown = self.text(since)
            if all(t in shown for t in texts):
                return shown
            if time.monotonic() > deadline:
                raise AssertionError(f"{texts} not shown after {timeout}s; shown: {shown[-2000:]!r}")
            self.page.wait_for_timeout(100)

    def press(self, key: str) -> int:
        """Type ``key`` into the terminal; the frame count before it (for ``since``)."""
        self.page.locator(".xterm-helper-textarea").focus()
        before = len(self.frames)
        self.page.keyboard.press(key)
        return before


@contextlib.contextmanager
def browser_page(url: str, width: int = 1400, height: int = 850) -> Iterator[TerminalPage]:
    """``url`` open in headless Chromium."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=LAUNCH_ARGS)
        try:
            page = TerminalPage(browser.new_page(viewport={"width": width, "height": height}))
            page.page.goto(url)
            yield page
        finally:
            browser.close()
