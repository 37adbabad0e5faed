"""Crafted traces (tests/bad_traces/) replayed in a real terminal: the app opens, says how
many malformed events it skipped, takes keys and quits with exit 0; a bad header prints
an error and exits 2. No traceback on the screen, ever."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from conftest import Terminal

CORPUS = Path(__file__).resolve().parents[1] / "bad_traces"
CASES = json.loads((CORPUS / "cases.json").read_text())


@pytest.mark.parametrize("name", ["every_event_is_a_scalar", "event_is_nested_100k_deep",
                                  "batch_count_is_10e11", "pretty_printed_events_are_scalars"])
def test_a_malformed_trace_opens_and_says_what_it_skipped(terminal, name: str) -> None:
    term: Terminal = terminal("replay", CORPUS / f"{name}.json")
    n = CASES[name]["skipped"]
    if n:
        screen = term.wait_for("malformed event", what="the toast about malformed events")
        assert f"{n} malformed event" in screen
    else:
        term.wait_for("sq", what="the flow's nodes")
    for key in ("G", "g", ".", "f"):
        term.type(key)
    term.press("Tab", "Enter")
    term.type("q")
    assert term.wait_exit() == 0
    assert "Traceback" not in term.screen()


@pytest.mark.parametrize("name", ["pretty_printed", "crlf_line_ends"])
def test_a_reformatted_trace_replays(terminal, name: str) -> None:
    term: Terminal = terminal("replay", CORPUS / f"{name}.json")
    term.wait_for(lambda s: "gen" in s and "sq" in s, what="the flow's nodes")
    assert "malformed" not in term.screen()
    term.type("q")
    assert term.wait_exit() == 0


def test_a_bad_header_exits_2_at_once(terminal) -> None:
    """(The message itself: tests/engine/test_bad_traces.py; the pane is gone at exit.)"""
    term: Terminal = terminal("replay", CORPUS / "header_version_is_99.json")
    assert term.wait_exit(timeout=10) == 2
