"""Shared pytest fixtures."""

import os
import shutil
import tempfile

import pytest

_KEY_DIR: list[str] = []


def pytest_configure(config: pytest.Config) -> None:
    """The suite's own pflow-tui config folder (its trace-signing key), for this process and
    every process it starts (the CLI, the app's worker, tmux): traces the tests write are
    signed by it, and the user's real key in ~/.config is never read nor made."""
    folder = tempfile.mkdtemp(prefix="pflow-tui-config-")
    _KEY_DIR.append(folder)
    os.environ["PFLOW_TUI_CONFIG_DIR"] = folder


def pytest_unconfigure(config: pytest.Config) -> None:
    for folder in _KEY_DIR:
        shutil.rmtree(folder, ignore_errors=True)


@pytest.fixture
def anyio_backend() -> str:
    """Run ``@pytest.mark.anyio`` tests on asyncio only."""
    return "asyncio"


@pytest.fixture(autouse=True)
def _crash_logs_stay_in_the_test(tmp_path_factory: pytest.TempPathFactory,
                                 monkeypatch: pytest.MonkeyPatch) -> None:
    """Crash logs (pflow_tui.crash) of a test go to a temporary state folder, never the user's."""
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path_factory.getbasetemp() / "state"))
