"""A real terminal for the app: the installed ``pflow-tui`` in a detached tmux session.

Keys go in as a person types them (``tmux send-keys -l '.'`` for characters, ``Escape``,
``Enter`` ...), so a binding on a key name no terminal sends fails here; what the screen
shows is read with ``capture-pane`` and polled until the expected text appears. Each
``Terminal`` has a tmux server of its own (``-L``), killed at the end. Without tmux these
tests are skipped, with the reason.
"""

from __future__ import annotations

import itertools
import os
import re
import shlex
import shutil
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SAMPLES = ROOT / "sample_flows"
TMUX = shutil.which("tmux")
PFLOW_TUI = Path(sys.executable).parent / "pflow-tui"  # the console script, as installed
_COUNTER = itertools.count()


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    reason = ("tmux is not installed (the real-terminal tests drive the app in tmux; "
              "apt-get install tmux)" if TMUX is None else
              f"no pflow-tui console script beside {sys.executable} (pip install -e .)"
              if not PFLOW_TUI.exists() else "")
    if reason:
        here = Path(__file__).parent
        for item in items:
            if here in Path(item.fspath).parents:
                item.add_marker(pytest.mark.skip(reason=reason))


class Terminal:
    """One program in a detached tmux session of a fixed size."""

    def __init__(self, workdir: Path, width: int = 120, height: int = 40) -> None:
        self.workdir = workdir
        self.width, self.height = width, height
        self.server = f"pflow-tui-test-{os.getpid()}-{next(_COUNTER)}"
        self.exit_file = workdir / f"{self.server}.exit"
        self.started = False

    def tmux(self, *args: str, check: bool = True) -> str:
        done = subprocess.run([TMUX or "tmux", "-L", self.server, "-f", os.devnull, *args],
                              capture_output=True, text=True, check=False)
        if check and done.returncode:
            raise RuntimeError(f"tmux {' '.join(args)}: {done.stderr.strip()}")
        return done.stdout

    def start(self, *args: str | Path) -> Terminal:
        """Start ``pflow-tui ARGS`` (its exit code is kept for :meth:`wait_exit`)."""
        command = shlex.join([str(PFLOW_TUI), *map(str, args)])
        exit_file = shlex.quote(str(self.exit_file))
        script = f"cd {shlex.quote(str(self.workdir))} && {command}; echo $? > {exit_file}"
        env = {**os.environ, "TERM": "xterm-256color", "COLORTERM": "truecolor"}
        env.pop("TMUX", None)
        subprocess.run([TMUX or "tmux", "-L", self.server, "-f", os.devnull, "new-session", "-d",
                        "-x", str(self.width), "-y", str(self.height), "-s", "app", "sh", "-c", script],
                       check=True, env=env)
        self.started = True
        return self

    def screen(self) -> str:
        """What the terminal shows now (text only)."""
        return self.tmux("capture-pane", "-p", "-t", "app", check=False)

    def type(self, text: str) -> None:
        """Type characters as a person does (each one literally, no key names)."""
        self.tmux("send-keys", "-t", "app", "-l", text)

    def press(self, *keys: str) -> None:
        """Press named keys: Escape, Enter, Tab, C-p ..."""
        self.tmux("send-keys", "-t", "app", *keys)

    def click(self, x: int, y: int) -> None:
        """A left click at column ``x``, row ``y`` of the screen (0-based, as :meth:`screen`
        reads it), sent as the SGR mouse report a terminal sends (press, then release)."""
        self.type(f"\x1b[<0;{x + 1};{y + 1}M\x1b[<0;{x + 1};{y + 1}m")

    def wait_for(self, check: str | re.Pattern[str] | Callable[[str], object], timeout: float = 10.0,
                 what: str = "") -> str:
        """Poll the screen until ``check`` holds (a text on it, a regex found in it, or a
        predicate of it); return that screen. On a timeout, fail showing the screen."""
        if isinstance(check, str):
            text = check
            test: Callable[[str], object] = lambda s: text in s  # noqa: E731
        elif isinstance(check, re.Pattern):
            pattern = check
            test = pattern.search
        else:
            test = check
        deadline = time.monotonic() + timeout
        screen = ""
        while True:
            screen = self.screen()
            if test(screen):
                return screen
            if time.monotonic() > deadline:
                raise AssertionError(f"timed out waiting for {what or check!r}; the screen:\n{screen}")
            time.sleep(0.03)

    def line(self, pattern: str, screen: str | None = None) -> re.Match[str]:
        """The first match of ``pattern`` on the screen (fails if there is none)."""
        screen = self.screen() if screen is None else screen
        found = re.search(pattern, screen)
        assert found, f"{pattern!r} is not on the screen:\n{screen}"
        return found

    def wait_exit(self, timeout: float = 20.0) -> int:
        """The program's exit code, once it has exited."""
        deadline = time.monotonic() + timeout
        while not self.exit_file.exists() or not self.exit_file.read_text().strip():
            if time.monotonic() > deadline:
                raise AssertionError(f"the program did not exit; the screen:\n{self.screen()}")
            time.sleep(0.03)
        return int(self.exit_file.read_text())

    def close(self) -> None:
        if self.started:
            self.tmux("kill-server", check=False)
            self.started = False


@pytest.fixture
def terminal(tmp_path: Path) -> Iterator[Callable[..., Terminal]]:
    """``terminal(*args, width=120, height=40)`` starts ``pflow-tui ARGS`` in tmux (cwd: tmp_path)."""
    opened: list[Terminal] = []

    def start(*args: str | Path, width: int = 120, height: int = 40) -> Terminal:
        term = Terminal(tmp_path, width, height)
        opened.append(term)
        return term.start(*args)

    yield start
    for term in opened:
        term.close()
