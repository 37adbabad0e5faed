"""Keys as a terminal sends them, and a focus model that cannot hurt: bindings use the key
names Textual produces for typed characters; a text box with focus takes every letter; keys
that change a live run ask first; quitting a running run ends it as interrupted."""

from __future__ import annotations

import inspect
import string

import pytest
from recording import wait_for
from textual import events
from textual.binding import Binding
from textual.dom import DOMNode
from textual.keys import Keys, _character_to_key
from textual.widgets import Input

from pflow_tui.app.app import DebuggerApp, screenshot_folder
from pflow_tui.app.event_filter import EventFilter, unknown_kinds
from pflow_tui.app.messages import Selection
from pflow_tui.app.screens.confirm import Confirm
from pflow_tui.app.screens.help import HelpScreen
from pflow_tui.app.widgets.event_log import EventList, EventLogView
from pflow_tui.app.widgets.key_bar import KeyBar
from pflow_tui.engine.ir.load import build_flow
from pflow_tui.engine.run.gate import FailureBreak, NodeBreak
from pflow_tui.engine.trace.writer import read_trace

pytestmark = pytest.mark.anyio

SLOW = {  # a batch that takes a few seconds: long enough to press keys while it runs
    "name": "slow",
    "nodes": [
        {"id": "make", "type": "echo", "params": {"message": "x", "data": list(range(40))}},
        {"id": "work", "type": "llm", "params": {"prompt": "p ${item}", "model": "offline",
                                                 "latency": 0.2},
         "batch": {"items": "${make.data}", "parallel": True, "max_concurrent": 2}},
        {"id": "done", "type": "echo", "params": {"message": "done"}},
    ],
    "edges": [{"from": "make", "to": "work"}, {"from": "work", "to": "done"}],
}
#: the same for about 20 s: still running after many keys pressed on a loaded machine
LONG = {**SLOW, "nodes": [{**SLOW["nodes"][0], "params": {"message": "x", "data": list(range(200))}},
                          *SLOW["nodes"][1:]]}
QUICK = {"name": "quick", "nodes": [{"id": "a", "type": "echo", "params": {"message": "hi"}},
                                    {"id": "b", "type": "echo", "params": {"message": "there"}}],
         "edges": [{"from": "a", "to": "b"}]}


def every_binding() -> list[tuple[str, str]]:
    """(class name, key) of every binding declared in pflow_tui's app."""
    import pflow_tui.app.screens.ask
    import pflow_tui.app.screens.confirm
    import pflow_tui.app.screens.diff
    import pflow_tui.app.screens.fork
    import pflow_tui.app.screens.help
    import pflow_tui.app.widgets.dag
    import pflow_tui.app.widgets.event_log
    import pflow_tui.app.widgets.timeline  # noqa: F401

    found = []
    seen: set[type] = set()
    for module in list(__import__("sys").modules.values()):
        if not getattr(module, "__name__", "").startswith("pflow_tui.app"):
            continue
        for _, cls in inspect.getmembers(module, inspect.isclass):
            if cls in seen or not issubclass(cls, DOMNode) or not cls.__module__.startswith("pflow_tui"):
                continue
            seen.add(cls)
            for binding in cls.__dict__.get("BINDINGS", []):
                assert isinstance(binding, Binding)
                found.extend((cls.__name__, key.strip()) for key in binding.key.split(","))
    return found


def test_every_binding_is_a_key_a_terminal_sends():
    typed = {_character_to_key(c) for c in string.printable if c.isprintable()}
    special = {k.value for k in Keys}
    bindings = every_binding()
    assert len(bindings) > 40
    for owner, key in bindings:
        name = key.rsplit("+", 1)[-1] if "+" in key and len(key) > 1 else key
        assert key in typed or key in special or name in typed or name in special, (owner, key)
    keys = {key for _, key in bindings}
    assert "period" not in keys and {"full_stop", "comma", "slash", "question_mark"} <= keys


async def test_the_footer_shows_the_character_not_the_key_name(tmp_path):
    app = DebuggerApp.live(build_flow(SLOW), {}, tmp_path / "t.json", paused=True)
    async with app.run_test(size=(160, 30)) as pilot:
        await wait_for(pilot, lambda: app.screen.model.status == "running")
        text = str(app.screen.query_one(KeyBar).render())
        assert ". Step" in text and "/ Filter" in text and "? Help" in text
        assert "period" not in text and "full_stop" not in text and "slash" not in text
        await pilot.press("q", "y")


async def test_a_click_on_a_key_in_the_bar_presses_it(tmp_path):
    app = DebuggerApp.live(build_flow(SLOW), {}, tmp_path / "t.json", paused=True)
    async with app.run_test(size=(160, 30)) as pilot:
        await wait_for(pilot, lambda: app.screen.model.status == "running")
        bar = app.screen.query_one(KeyBar)
        text = str(bar.render())
        assert "m Maximise" in text
        await pilot.click(bar, offset=(text.index("? Help") + 1, 0))
        await wait_for(pilot, lambda: isinstance(app.screen, HelpScreen))
        await pilot.press("escape")
        await wait_for(pilot, lambda: not isinstance(app.screen, HelpScreen))
        # the bar follows the bindings: the filter box has the focus, the pane keys go
        await pilot.press("slash")
        await wait_for(pilot, lambda: "Maximise" not in str(app.screen.query_one(KeyBar).render()))
        await pilot.press("escape", "q", "y")


async def test_slash_filters_from_any_pane_and_letters_go_into_the_box(tmp_path):
    app = DebuggerApp.live(build_flow(LONG), {}, tmp_path / "t.json")
    async with app.run_test(size=(120, 36)) as pilot:
        screen = app.screen
        await wait_for(pilot, lambda: screen.model.status == "running")
        assert screen.focused is screen.panes["dag"]
        await pilot.press(*"/status:error sqrRe?mn12345[]/")  # the second "/" is a character
        log = screen.query_one(EventLogView)
        assert log.filter_input.has_focus and log.filter_input.value == "status:error sqrRe?mn12345[]/"
        assert app.screen is screen  # no question, no fork editor, no help
        assert screen.source.running and all(p.display for p in screen.panes.values())
        assert screen.left_width == 42 and screen.maximized is None
        await pilot.press("escape")  # back to the events, the filter kept
        assert log.list.has_focus and log.filter_input.value
        screen.panes["timeline"].focus()
        await pilot.press("5")  # the Events pane hidden: "/" shows it again
        assert not screen.panes["log"].display
        await pilot.press("/")
        assert screen.panes["log"].display and log.filter_input.has_focus
        await pilot.press("enter")
        assert log.list.has_focus
        await pilot.press("q", "y")


async def test_keys_typed_fast_after_slash_all_go_into_the_box(tmp_path):
    """A terminal delivers ``/status`` at once: the box has focus before ``s`` is handled."""
    app = DebuggerApp.live(build_flow(LONG), {}, tmp_path / "t.json")
    async with app.run_test(size=(120, 36)) as pilot:
        screen = app.screen
        await wait_for(pilot, lambda: screen.model.status == "running")
        for char in "/status:error":  # queued together, as a terminal's burst is
            app.post_message(events.Key(_character_to_key(char) if not char.isalnum() else char, char))
        await pilot.pause(0.3)
        assert screen.query_one(EventLogView).filter_input.value == "status:error"
        assert app.screen is screen and screen.source.running
        await pilot.press("q", "y")


async def test_tab_into_the_events_lands_on_the_events_not_the_filter(tmp_path):
    app = DebuggerApp.live(build_flow(QUICK), {}, tmp_path / "t.json")
    async with app.run_test(size=(120, 36)) as pilot:
        screen = app.screen
        await wait_for(pilot, lambda: screen.model.status == "ok")
        visited = []
        for _ in range(8):
            await pilot.press("tab")
            visited.append(screen.focused)
        assert screen.query_one(EventList) in visited
        assert not any(isinstance(w, Input) for w in visited)
        screen.query_one(EventList).focus()
        await pilot.press("1")  # the screen's keys work there (they would type into the box)
        assert not screen.panes["dag"].display
        await pilot.press("1")
        assert screen.panes["dag"].display


async def test_a_click_puts_the_cursor_in_the_filter(tmp_path):
    app = DebuggerApp.live(build_flow(QUICK), {}, tmp_path / "t.json")
    async with app.run_test(size=(120, 36)) as pilot:
        await wait_for(pilot, lambda: app.screen.model.status == "ok")
        await pilot.click("#event-filter")
        await pilot.pause()
        assert app.screen.query_one("#event-filter").has_focus
        await pilot.press(*"kind:node.end", "enter")
        assert app.screen.query_one(EventList).has_focus and len(app.screen.query_one(EventList).matches) == 2


async def test_stop_asks_first(tmp_path):
    app = DebuggerApp.live(build_flow(LONG), {}, tmp_path / "t.json")
    async with app.run_test(size=(120, 36)) as pilot:
        screen = app.screen
        await wait_for(pilot, lambda: screen.model.status == "running")
        await pilot.press("s")
        assert isinstance(app.screen, Confirm)
        await pilot.press("n")  # no: it goes on
        assert app.screen is screen
        await pilot.pause(0.3)
        assert screen.source.running
        await pilot.press("s")
        await pilot.press("escape")  # no, too
        assert app.screen is screen and screen.source.running
        await pilot.press("s", "y")
        await wait_for(pilot, lambda: screen.model.status == "cancelled")
    assert read_trace(tmp_path / "t.json").status == "interrupted"


async def test_closed_from_outside_a_run_going_ends_with_its_footer(tmp_path):
    """The app closed by something else than q (a browser tab of ``serve`` closed): the run
    still going is stopped and its trace finished, not left running or cut short."""
    app = DebuggerApp.live(build_flow(LONG), {}, tmp_path / "t.json")
    async with app.run_test(size=(120, 36)) as pilot:
        await wait_for(pilot, lambda: app.screen.model.status == "running")
        app.exit()  # no status: as textual-serve's driver ends the app
    assert app.return_value is None and app.closed_status == "interrupted"
    assert not app.runs[-1].running
    trace = read_trace(tmp_path / "t.json")
    assert (trace.status, trace.truncated) == ("interrupted", False)


async def test_closed_from_outside_after_the_run_it_says_how_the_run_ended(tmp_path):
    app = DebuggerApp.live(build_flow(QUICK), {}, tmp_path / "t.json")
    async with app.run_test(size=(120, 36)) as pilot:
        await wait_for(pilot, lambda: app.screen.model.status == "ok" and not app.runs[-1].running)
        app.exit()
    assert app.closed_status == "ok"


async def test_q_while_running_asks_then_ends_the_run_as_interrupted(tmp_path):
    app = DebuggerApp.live(build_flow(LONG), {}, tmp_path / "t.json")
    async with app.run_test(size=(120, 36)) as pilot:
        await wait_for(pilot, lambda: app.screen.model.status == "running")
        await pilot.press("q")
        assert isinstance(app.screen, Confirm)
        await pilot.press("enter")
        await wait_for(pilot, lambda: app.return_value is not None)
    assert app.return_value == "interrupted"
    assert read_trace(tmp_path / "t.json").status == "interrupted"


async def test_q_when_nothing_runs_quits_at_once(tmp_path):
    app = DebuggerApp.live(build_flow(QUICK), {}, tmp_path / "t.json")
    async with app.run_test(size=(120, 36)) as pilot:
        await wait_for(pilot, lambda: app.screen.model.status == "ok" and not app.runs[-1].running)
        await pilot.press("q")
    assert app.return_value == "ok"


def test_the_exit_code_of_an_interrupted_run_is_130(monkeypatch, tmp_path):
    from pflow_tui import cli

    monkeypatch.setattr(DebuggerApp, "run", lambda self: "interrupted")
    flow = tmp_path / "f.json"
    flow.write_text(__import__("json").dumps(QUICK))
    assert cli.main([str(flow), "--trace", str(tmp_path / "t.json")]) == 130


async def test_rerun_while_running_asks_and_keeps_the_breakpoints(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    app = DebuggerApp.live(build_flow(SLOW), {}, tmp_path / "t.json")
    async with app.run_test(size=(120, 36)) as pilot:
        first = app.screen
        await wait_for(pilot, lambda: first.model.status == "running")
        app.select(Selection("done"))
        await pilot.press("b", "x")
        await pilot.press("r")
        assert isinstance(app.screen, Confirm)
        await pilot.press("y")
        await wait_for(pilot, lambda: len(app.runs) == 2 and app.screen is not first)
        second = app.screen
        assert second.breaks == {"done"} and second.break_on_failure
        assert {b.id for b in app.runs[-1].breakpoints} == {NodeBreak("done").id, FailureBreak().id}
        await wait_for(pilot, lambda: second.model.paused is not None)  # before "done"
        assert "slow.done" not in second.model.visits
        await pilot.press("q", "y")
    assert read_trace(tmp_path / "t.json").status == "interrupted"


async def test_rerun_from_failure_says_so_when_nothing_failed(tmp_path):
    app = DebuggerApp.live(build_flow(QUICK), {}, tmp_path / "t.json")
    async with app.run_test(size=(120, 36)) as pilot:
        await wait_for(pilot, lambda: app.screen.model.status == "ok" and not app.runs[-1].running)
        await pilot.press("R")
        await pilot.pause(0.2)
        assert len(app.runs) == 1 and app.screen.model.status == "ok"
        assert any("Nothing failed" in n.message for n in app._notifications)


async def test_help_says_how_to_close_it_and_closes_with_each_key(tmp_path):
    app = DebuggerApp.live(build_flow(QUICK), {}, tmp_path / "t.json")
    async with app.run_test(size=(120, 36)) as pilot:
        await wait_for(pilot, lambda: app.screen.model.status == "ok")
        run = app.screen
        for key in ("escape", "q", "?"):
            await pilot.press("?")
            assert isinstance(app.screen, HelpScreen)
            help_text = app.screen.query_one("Static")
            shown = "".join(strip.text for strip in help_text.render_lines(help_text.size.region))
            assert "escape, q or ? closes this help" in shown
            await pilot.press(key)
            assert app.screen is run
        assert app.return_value is None  # q closed the help, it did not quit


async def test_ctrl_a_selects_all_in_the_fork_editor(tmp_path):
    flow = {"name": "fk", "nodes": [{"id": "work", "type": "shell", "params": {"command": "echo hi"}}]}
    app = DebuggerApp.live(build_flow(flow), {}, tmp_path / "t.json")
    async with app.run_test(size=(140, 40)) as pilot:
        await wait_for(pilot, lambda: app.screen.model.status == "ok" and not app.runs[-1].running)
        app.select(Selection("work"))
        await pilot.press("e")
        await pilot.pause(0.2)
        editor = app.screen.query_one("TextArea")
        editor.focus()
        await pilot.pause()
        await pilot.press("ctrl+a")
        assert editor.selected_text == editor.text and "echo hi" in editor.text
        await pilot.press("escape")


async def test_ctrl_s_saves_beside_the_traces_and_says_where(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    app = DebuggerApp.live(build_flow(QUICK), {}, None)  # the default: .pflow-tui/traces
    async with app.run_test(size=(100, 30)) as pilot:
        await wait_for(pilot, lambda: app.screen.model.status == "ok")
        await pilot.press("ctrl+s")
        await pilot.pause()
    shots = list((tmp_path / ".pflow-tui" / "screenshots").glob("quick-*.svg"))
    assert len(shots) == 1 and not list(tmp_path.glob("*.svg"))
    assert any(str(shots[0]) in n.message for n in app._notifications)
    assert screenshot_folder(tmp_path / "x" / "traces" / "t.json") == tmp_path / "x" / "screenshots"
    assert screenshot_folder(None) == tmp_path / ".pflow-tui" / "screenshots"


def test_an_unknown_kind_says_so_with_a_did_you_mean():
    assert unknown_kinds(EventFilter.parse("kind:item.end kind:node")) == ""
    assert (unknown_kinds(EventFilter.parse("kind:itm.end"))
            == "unknown kind 'itm.end': did you mean 'item.end'?")
    message = unknown_kinds(EventFilter.parse("kind:bogus status:error"))
    assert message.startswith("unknown kind 'bogus': kinds: attempt.end, attempt.start")


async def test_the_events_pane_shows_an_unknown_kind(tmp_path):
    app = DebuggerApp.live(build_flow(QUICK), {}, tmp_path / "t.json")
    async with app.run_test(size=(120, 36)) as pilot:
        await wait_for(pilot, lambda: app.screen.model.status == "ok")
        await pilot.press(*"/kind:nod.end")
        await pilot.pause(0.2)
        status = str(app.screen.query_one("#event-log-status").render())
        assert "0 / " in status and "unknown kind 'nod.end': did you mean 'node.end'?" in status


def test_app_module_binds_no_single_letter_at_app_level():
    """Letters bound on the app would reach past a modal screen; they live on the run screen."""
    letters = [b.key for b in DebuggerApp.__dict__["BINDINGS"] if len(b.key) == 1 and b.key.isalpha()]
    assert letters == []
