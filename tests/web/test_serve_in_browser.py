"""``pflow-tui serve`` for real: the installed command serves a sample flow from a folder whose
name needs quoting, its page is fetched over HTTP, then opened in headless Chromium, where the
debugger runs the flow, shows it, and answers a key. Skipped, with the reason, without
Chromium, Playwright, textual-serve or the installed command."""

from __future__ import annotations

import importlib.util
import shutil
import urllib.request
from pathlib import Path

import psutil
import pytest
from served_page import CHROMIUM, PFLOW_TUI, browser_page, free_port, served

SAMPLES = Path(__file__).resolve().parents[2] / "sample_flows"

MISSING = ("no chromium on PATH (apt-get install chromium)" if CHROMIUM is None else
           "playwright is not installed (pip install -e '.[test]')"
           if importlib.util.find_spec("playwright") is None else
           "textual-serve is not installed (pip install -e '.[web]')"
           if importlib.util.find_spec("textual_serve") is None else
           f"no pflow-tui console script beside {PFLOW_TUI.parent}" if not PFLOW_TUI.exists() else "")
pytestmark = [pytest.mark.slow, pytest.mark.skipif(bool(MISSING), reason=MISSING)]


def test_the_debugger_runs_in_a_browser_tab_and_takes_keys(tmp_path: Path) -> None:
    folder = tmp_path / "it's a \"flow\" dir"
    folder.mkdir()
    flow = folder / "greet me.json"
    shutil.copy(SAMPLES / "inputs_outputs.json", flow)
    port = free_port()
    with served([str(flow), "who=Ada Lovelace", "times=2"], cwd=tmp_path, port=port) as server:
        assert server.stdout is not None
        assert server.stdout.readline() == f"http://127.0.0.1:{port}\n"  # the URL, alone on stdout
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=10) as response:
            html = response.read().decode()
        assert "pflow-tui · inputs_outputs" in html  # textual-serve's page, named for the flow
        assert f"ws://127.0.0.1:{port}/ws" in html and "js/textual.js" in html
        with browser_page(f"http://127.0.0.1:{port}/") as page:
            shown = page.wait_for("inputs_outputs", "greet", "measure", "finished ok")
            assert "Ada Lovelace" in shown  # the inputs got through the shell's quoting
            sessions = psutil.Process(server.pid).children(recursive=True)
            assert sessions  # the tab's debugger (and its run) are the server's children
            since = page.press("?")
            page.wait_for("closes this help", since=since)
            since = page.press("Escape")
            page.wait_for("Events", since=since)  # back on the run's panes
        traces = list((tmp_path / ".pflow-tui" / "traces").glob("inputs_outputs-*.json"))
        assert len(traces) == 1  # the tab's run, in the server's working folder
        server.send_signal(2)  # Ctrl-C
        assert server.wait(15) == 130
    _, still = psutil.wait_procs(sessions, timeout=10)
    assert not still, still


def test_a_replay_is_served_too(tmp_path: Path) -> None:
    import subprocess

    trace = tmp_path / "a run's trace.json"
    subprocess.run([str(PFLOW_TUI), "run", str(SAMPLES / "fanout_merge.json"), "--trace", str(trace)],
                   check=True, capture_output=True, cwd=tmp_path)
    port = free_port()
    with served(["replay", str(trace), "--at", "fanout_merge.merge"], cwd=tmp_path, port=port) as server, \
            browser_page(f"http://127.0.0.1:{port}/") as page:
        page.wait_for("fanout_merge", "merge", "report", "replay")
        assert server.poll() is None


def test_the_debuggers_options_reach_each_tab(tmp_path: Path) -> None:
    """A Python program served --paused: nothing runs until p is pressed in the page."""
    port = free_port()
    with served([f"{SAMPLES / 'map_reduce.py'}:flow", "--paused"], cwd=tmp_path, port=port), \
            browser_page(f"http://127.0.0.1:{port}/") as page:
        page.wait_for("map_reduce", "paused")
        assert "finished ok" not in page.text()
        since = page.press("p")
        page.wait_for("finished ok", since=since)
