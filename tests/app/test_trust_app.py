"""Consent in the app: ``R`` (re-run from failure) and ``e`` (fork) on a trace this user did
not sign show what would run in a modal, and run only after ``y``. A marker file says
whether anything ran; replaying such a trace runs nothing."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest
from recording import wait_for

from pflow_tui.app.app import DebuggerApp
from pflow_tui.app.messages import Selection
from pflow_tui.app.screens.confirm import Consent
from pflow_tui.app.screens.fork import ForkScreen
from pflow_tui.engine.ir.load import build_flow
from pflow_tui.engine.run.executor import run_flow
from pflow_tui.engine.trace import trust
from pflow_tui.engine.trace.reader import TraceIndex

pytestmark = pytest.mark.anyio


def flow(marker: Path) -> dict:
    return {"name": "evil", "nodes": [
        {"id": "a", "type": "shell", "params": {"command": "echo hello"}},
        {"id": "b", "type": "shell", "params": {"command": f"touch {marker}; exit 1"}}],
        "edges": [{"from": "a", "to": "b"}]}


def record(trace: Path, marker: Path, monkeypatch: pytest.MonkeyPatch, key_dir: Path | None) -> Path:
    """A run of ``flow`` with the key of ``key_dir`` (None: the suite's), in a thread (run_flow
    starts an event loop of its own)."""
    with monkeypatch.context() as m:
        if key_dir is not None:
            m.setenv(trust.ENV, str(key_dir))
        worker = threading.Thread(target=run_flow, args=(build_flow(flow(marker)), {}),
                                  kwargs={"trace": trace})
        worker.start()
        worker.join()
    marker.unlink()
    return trace


@pytest.fixture
def marker(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.chdir(tmp_path)  # the re-run's trace goes to tmp_path/.pflow-tui
    return tmp_path / "MARKER"


@pytest.fixture
def foreign(tmp_path: Path, marker: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    return record(tmp_path / "foreign.json", marker, monkeypatch, tmp_path / "someone-else")


@pytest.mark.parametrize("no", ["n", "escape"])
async def test_R_on_a_foreign_trace_asks_and_no_runs_nothing(foreign: Path, marker: Path, no: str) -> None:
    app = DebuggerApp.replay(TraceIndex(foreign))
    async with app.run_test(size=(120, 40)) as pilot:
        await wait_for(pilot, lambda: app.screen.model.status == "error")
        run_screen = app.screen
        await pilot.press("R")
        await wait_for(pilot, lambda: isinstance(app.screen, Consent))
        consent = app.screen
        assert "signed by someone else" in consent.text
        assert f"touch {marker}; exit 1" in consent.text  # the command that would run
        assert "evil.a:" in consent.text and "stdout: hello" in consent.text  # what is restored
        await pilot.press("enter")  # not an answer here
        assert app.screen is consent
        await pilot.press(no)
        await pilot.pause(0.5)
        assert app.screen is run_screen and not app.runs
    assert not marker.exists()


async def test_R_on_a_foreign_trace_runs_after_y(foreign: Path, marker: Path) -> None:
    app = DebuggerApp.replay(TraceIndex(foreign))
    async with app.run_test(size=(120, 40)) as pilot:
        await wait_for(pilot, lambda: app.screen.model.status == "error")
        await pilot.press("R")
        await wait_for(pilot, lambda: isinstance(app.screen, Consent))
        await pilot.press("y")
        await wait_for(pilot, lambda: len(app.runs) == 1 and not app.runs[0].running)
        # the run's last events reach the model at a tick after its process ended
        await wait_for(pilot, lambda: app.screen.model.status not in ("pending", "running"))
        assert marker.exists()
        model = app.screen.model
        assert model.event(model.latest["a"].end_seq).get("cached") is True  # restored, as asked


async def test_R_on_an_own_trace_runs_without_asking(tmp_path: Path, marker: Path,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    own = record(tmp_path / "own.json", marker, monkeypatch, None)
    app = DebuggerApp.replay(TraceIndex(own))
    async with app.run_test(size=(120, 40)) as pilot:
        await wait_for(pilot, lambda: app.screen.model.status == "error")
        await pilot.press("R")
        await pilot.pause()
        assert not isinstance(app.screen, Consent)
        await wait_for(pilot, lambda: len(app.runs) == 1 and not app.runs[0].running)
        assert marker.exists()


async def test_R_on_a_tampered_own_trace_asks(tmp_path: Path, marker: Path,
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    own = record(tmp_path / "own.json", marker, monkeypatch, None)
    own.write_bytes(own.read_bytes().replace(b'"stdout":"hello"', b'"stdout":"hellp"', 1))
    app = DebuggerApp.replay(TraceIndex(own))
    async with app.run_test(size=(120, 40)) as pilot:
        await wait_for(pilot, lambda: app.screen.model.status == "error")
        await pilot.press("R")
        await wait_for(pilot, lambda: isinstance(app.screen, Consent))
        assert "changed since" in app.screen.text
        await pilot.press("n")
        await pilot.pause(0.3)
    assert not marker.exists() and not app.runs


async def test_fork_of_a_foreign_trace_asks_first(foreign: Path, marker: Path) -> None:
    app = DebuggerApp.replay(TraceIndex(foreign))
    async with app.run_test(size=(120, 40)) as pilot:
        await wait_for(pilot, lambda: app.screen.model.status == "error")
        app.select(Selection("b"))
        await pilot.pause()
        await pilot.press("e")
        await wait_for(pilot, lambda: isinstance(app.screen, Consent))
        assert f"touch {marker}; exit 1" in app.screen.text and "evil.b (shell)" in app.screen.text
        await pilot.press("escape")
        await pilot.pause()
        assert not isinstance(app.screen, (Consent, ForkScreen))
        await pilot.press("e")
        await wait_for(pilot, lambda: isinstance(app.screen, Consent))
        await pilot.press("y")
        await wait_for(pilot, lambda: isinstance(app.screen, ForkScreen))
        await pilot.press("escape")
    assert not marker.exists()  # the fork editor runs only on ctrl+r


async def test_replay_of_a_foreign_trace_runs_nothing(foreign: Path, marker: Path) -> None:
    app = DebuggerApp.replay(TraceIndex(foreign))
    async with app.run_test(size=(120, 40)) as pilot:
        await wait_for(pilot, lambda: app.screen.model.status == "error")
        await pilot.press("g", "G", "n", "f", "F", ".", ",")
        await pilot.pause(0.3)
        assert not app.runs
    assert not marker.exists()
