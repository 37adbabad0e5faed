"""Every key of README's key table, typed into the real ``pflow-tui`` in tmux, live and in replay.

Each class shares one session (the tests in it run in order, each leaving the screen as
it found it unless it says otherwise); a key's effect is asserted on what the terminal
shows, polled until it appears.
"""

from __future__ import annotations

import re
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import PFLOW_TUI, SAMPLES, Terminal

from pflow_tui.engine.trace import read_trace

PBF = SAMPLES / "parallel_batch_failures.json"  # 40 items, 6 fail (3, 10, 17, 24, 31, 38)
SEQ = SAMPLES / "sequential_batch.json"  # nothing fails
ROOT = "parallel_batch_failures"
TITLES = {"1": "DAG", "2": "Namespaces", "3": "Timeline", "4": "Inspector", "5": "Events"}
KINDS = r"(?:run|node|item|attempt|branch|edge|race|store|warning|pause|resume|wait)(?:\.\w+)?"
ROW = re.compile(rf"(\d+\.\d{{3}})s ({KINDS})\s+(.*)")


# --- reading the screen ----------------------------------------------------------------------

def cursor(screen: str) -> tuple[int, int]:
    """The replay cursor on the scrubber: (events applied, events in the trace)."""
    found = re.search(r"event ([\d,]+) / ([\d,]+)", screen)
    assert found, screen
    return int(found.group(1).replace(",", "")), int(found.group(2).replace(",", ""))


def event_rows(screen: str) -> list[tuple[str, str]]:
    """The Events pane's rows, top to bottom: (kind, the rest of the row)."""
    return [(m.group(2), m.group(3)) for m in map(ROW.search, screen.splitlines()) if m]


def titled(screen: str, title: str) -> bool:
    """A pane's border title is on the screen."""
    return f"─ {title} ─" in screen


def events_count(screen: str) -> str:
    found = re.search(r"([\d,]+(?: / [\d,]+)?) events", screen)
    assert found, screen
    return found.group(1)


def out_of_the_box(term: Terminal) -> None:
    """Wait until the filter box has let go of the focus: the footer shows the pane keys again
    (a text box with focus hides them: they would be typed), and still does a moment later
    (a lone Escape is only known as such after a short wait for more bytes)."""
    time.sleep(0.2)
    term.wait_for("Next failure", what="the focus back on the panes")
    time.sleep(0.1)
    term.wait_for("Next failure", what="the focus back on the panes")


def into_the_box(term: Terminal) -> None:
    """Type ``/`` and wait until the filter box has the focus (the footer's pane keys go)."""
    term.type("/")
    term.wait_for(lambda s: "Next failure" not in s, what="the focus in the filter box")


def start(workdir: Path, *args: str | Path, width: int = 120, height: int = 40) -> Terminal:
    return Terminal(workdir, width, height).start(*args)


def confirm(term: Terminal, question: str, answer: str) -> None:
    """The question is on the screen; answer it as typed (y, n, or Enter / Escape)."""
    term.wait_for(question)
    if answer in ("y", "n"):
        term.type(answer)
    else:
        term.press(answer)
    term.wait_for(lambda s: question not in s, what=f"the question to close after {answer}")


@pytest.fixture(scope="module")
def trace(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A saved run of the parallel batch with failures (headless, as a user makes one)."""
    path = tmp_path_factory.mktemp("traces") / "pbf.json"
    subprocess.run([str(PFLOW_TUI), "run", str(PBF), "--trace", str(path)], check=True,
                   capture_output=True)
    return path


# --- replay ------------------------------------------------------------------------------------

class TestReplay:
    """``pflow-tui replay TRACE``: the cursor keys, the layout keys, the filter, help, fork."""

    @pytest.fixture(scope="class")
    def events(self, trace: Path) -> list[dict]:
        return read_trace(trace).events

    @pytest.fixture(scope="class")
    def term(self, trace: Path) -> Iterator[Terminal]:
        term = start(trace.parent, "replay", trace)
        term.wait_for(lambda s: "event " in s and cursor(s)[0] == cursor(s)[1] > 0, what="the replay")
        yield term
        term.close()

    def at(self, term: Terminal, key: str, check=None) -> tuple[int, str]:
        """Type ``key``; wait until the cursor moved (and ``check(screen)``): (cursor, screen)."""
        before = cursor(term.screen())[0]
        term.type(key)
        screen = term.wait_for(lambda s: cursor(s)[0] != before and (check is None or check(s)),
                               what=f"the cursor to move on {key!r}")
        return cursor(screen)[0], screen

    def test_g_and_G_go_to_the_start_and_the_end(self, term: Terminal) -> None:
        total = cursor(term.screen())[1]
        term.type("g")
        term.wait_for(lambda s: cursor(s) == (0, total), what="event 0")
        term.type("G")
        term.wait_for(lambda s: cursor(s) == (total, total), what="the last event")

    def test_full_stop_and_comma_step_one_event(self, term: Terminal) -> None:
        term.type("g")
        term.wait_for(lambda s: cursor(s)[0] == 0)
        assert self.at(term, ".")[0] == 1
        at, screen = self.at(term, ".")
        assert at == 2 and [k for k, _ in event_rows(screen)] == ["run.start", "node.start"]
        assert self.at(term, ",")[0] == 1

    @pytest.mark.parametrize(("forward", "back", "kind"), [(">", "<", "node."), ("}", "{", "item.")])
    def test_node_and_item_keys_stop_at_each_event_of_the_kind(self, term: Terminal, events: list[dict],
                                                               forward: str, back: str, kind: str) -> None:
        of_kind = [i + 1 for i, e in enumerate(events) if e["kind"].startswith(kind)]
        term.type("g")
        term.wait_for(lambda s: cursor(s)[0] == 0)
        assert [self.at(term, forward)[0] for _ in range(3)] == of_kind[:3]
        assert self.at(term, back)[0] == of_kind[1]

    def test_f_and_F_step_by_failure(self, term: Terminal, events: list[dict]) -> None:
        failures = [i + 1 for i, e in enumerate(events) if e.get("status") == "error"]
        term.type("g")
        term.wait_for(lambda s: cursor(s)[0] == 0)
        assert [self.at(term, "f")[0] for _ in range(2)] == failures[:2]
        assert events[failures[0] - 1]["path"] == f"{ROOT}.run-tasks.iteration_3"
        assert self.at(term, "F")[0] == failures[0]
        term.type("G")
        term.wait_for(lambda s: cursor(s)[0] == cursor(s)[1])

    def test_slash_filters_the_events_from_the_dag(self, term: Terminal) -> None:
        total = cursor(term.screen())[1]
        term.type("/status:error")  # the DAG has focus: "/" goes to the filter from there
        screen = term.wait_for(f"6 / {total} events")
        assert {k for k, _ in event_rows(screen)} == {"item.end"}
        term.press("Enter")  # back to the events, filtered
        out_of_the_box(term)
        into_the_box(term)  # the filter again, its text selected: one backspace clears it
        term.press("BSpace")
        term.wait_for(lambda s: events_count(s) == str(total), what="every event again")
        term.press("Escape")
        out_of_the_box(term)
        term.press("Tab")  # from the events back to the DAG
        term.type("m")
        term.wait_for(lambda s: titled(s, "DAG") and not titled(s, "Events"), what="the DAG focused")
        term.type("m")
        term.wait_for(lambda s: titled(s, "Events"))

    def test_m_maximises_the_focused_pane_and_restores(self, term: Terminal) -> None:
        term.type("m")
        term.wait_for(lambda s: [t for t in TITLES.values() if titled(s, t)] == ["DAG"], what="the DAG alone")
        term.type("m")
        term.wait_for(lambda s: all(titled(s, t) for t in TITLES.values()), what="every pane back")

    @pytest.mark.parametrize("key", list(TITLES))
    def test_number_keys_hide_and_show_a_pane(self, term: Terminal, key: str) -> None:
        title = TITLES[key]
        others = [t for k, t in TITLES.items() if k != key]
        term.type(key)
        term.wait_for(lambda s: not titled(s, title) and all(titled(s, t) for t in others),
                      what=f"{title} hidden, the others shown")
        term.type(key)
        term.wait_for(lambda s: all(titled(s, t) for t in TITLES.values()), what=f"{title} shown")

    def test_square_brackets_resize_the_left_column(self, term: Terminal) -> None:
        def split(screen: str) -> int:
            line = next(line for line in screen.splitlines() if "─ DAG ─" in line)
            return line.index("╮╭")

        width = split(term.screen())
        term.type("[")
        narrower = split(term.wait_for(lambda s: split(s) < width, what="a narrower left column"))
        term.type("]")
        term.wait_for(lambda s: split(s) == width, what="the left column as it was")
        term.type("]")
        term.wait_for(lambda s: split(s) > width, what="a wider left column")
        term.type("[")
        term.wait_for(lambda s: split(s) == width)
        assert narrower < width

    def test_n_and_N_walk_the_failures(self, term: Terminal) -> None:
        term.type("n")
        screen = term.wait_for(re.compile(r"failure (\d) of 6"))
        first = int(re.search(r"failure (\d) of 6", screen).group(1))
        term.type("n")
        term.wait_for(f"failure {first % 6 + 1} of 6")
        term.type("N")
        term.wait_for(lambda s: s.count(f"failure {first} of 6") >= 1 and f"{ROOT}.run-tasks.iteration_"
                      in s)
        term.press("Escape")  # from the iteration back to its node
        term.wait_for(lambda s: f"{ROOT}.run-tasks.iteration_" not in s, what="the node selected")

    def test_question_mark_opens_help_and_escape_q_question_mark_close_it(self, term: Terminal) -> None:
        for close in ("Escape", "q", "?"):
            term.type("?")
            term.wait_for("closes this help")
            if close == "Escape":
                term.press(close)
            else:
                term.type(close)
            term.wait_for(lambda s: "closes this help" not in s, what=f"{close} to close help")
        time.sleep(0.2)
        assert "event " in term.screen()  # q closed the help, not the app

    def test_z_switches_the_timeline_to_its_summary(self, term: Terminal) -> None:
        term.press("Tab")
        term.press("Tab")  # DAG -> Namespaces -> Timeline
        term.wait_for("z Summary")
        term.type("z")
        term.wait_for("│─ 6 failed", what="the aggregate view")
        term.type("z")
        term.wait_for(lambda s: "│─ 6 failed" not in s and re.search(r"#0\s+✓", s), what="every row")
        for _ in range(3):  # Inspector, Events, DAG
            term.press("Tab")
        term.wait_for(lambda s: "z Summary" not in s)

    def test_ctrl_p_opens_the_command_palette(self, term: Terminal) -> None:
        term.press("C-p")
        term.wait_for("Search for commands")
        term.press("Escape")
        term.wait_for(lambda s: "Search for commands" not in s)

    def test_e_forks_the_selected_iteration_and_ctrl_a_selects_all(self, term: Terminal) -> None:
        term.type("n")  # a failed iteration
        term.wait_for(f"{ROOT}.run-tasks.iteration_")
        term.type("e")
        screen = term.wait_for(f"fork {ROOT}.run-tasks.iteration_")
        assert '"command"' in screen
        term.press("C-a")  # select all, then type over it
        term.type("x")
        screen = term.wait_for(re.compile(r" 1  x\s+▎"), what="the params replaced by x")
        assert not re.search(r" 2 {4}\"", screen)  # no second line left
        term.press("Escape")
        term.wait_for(lambda s: "ctrl+r runs them" not in s)
        term.press("Escape")
        time.sleep(0.2)


# --- live: stepping, breakpoints, the filter while running, stop, quit ------------------------

class TestLiveStepping:
    """``pflow-tui FLOW --paused``: step, break, filter, stop (asked), quit (asked, 130)."""

    @pytest.fixture(scope="class")
    def term(self, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Terminal]:
        workdir = tmp_path_factory.mktemp("stepping")
        term = start(workdir, PBF, "--paused", "--trace", workdir / "t.json")
        term.wait_for('"reason":"start"', what="paused at the start")
        yield term
        term.close()

    def test_full_stop_starts_one_node_then_one_item(self, term: Terminal) -> None:
        term.type(".")
        term.wait_for(lambda s: ("node.end", "make-tasks") in [(k, r.split()[0]) for k, r in event_rows(s)],
                      what="make-tasks started and ended")
        term.type(".")
        term.wait_for(lambda s: ("node.start", "run-tasks") in [(k, r.split()[0]) for k, r in event_rows(s)])
        term.type(".")
        screen = term.wait_for("run-tasks.iteration_0 ", what="one item started")
        time.sleep(0.4)
        assert "iteration_1 " not in term.screen()
        term.type(".")
        screen = term.wait_for("run-tasks.iteration_1 ")
        assert "iteration_2 " not in screen

    def test_x_breaks_on_failure_and_p_continues(self, term: Terminal) -> None:
        term.type("x")
        term.wait_for("break on failure on")
        term.type("p")  # continue: the first failure (item 3) pauses the run
        term.wait_for('"reason":"failure"')
        term.type("x")
        term.wait_for("break on failure off")

    def test_slash_from_the_dag_takes_every_letter_while_the_run_is_going(self, term: Terminal) -> None:
        term.type("/status:error sqrRe?m1[")  # letters that would stop, quit, re-run, fork ...
        screen = term.wait_for(lambda s: "status:error sqrRe?m1[" in s and events_count(s).startswith("0 / "),
                               what="the filter typed whole, matching nothing")
        assert "Stop the run?" not in screen and "Quit while" not in screen and "fork " not in screen
        assert "closes this help" not in screen and all(titled(screen, t) for t in TITLES.values())
        term.press("Escape")  # back to the events
        out_of_the_box(term)
        into_the_box(term)
        term.press("BSpace")
        term.press("Enter")
        term.wait_for(lambda s: "/" not in events_count(s))
        out_of_the_box(term)
        term.press("Tab")  # from the events to the DAG

    def test_b_sets_a_breakpoint_on_the_selected_node(self, term: Terminal) -> None:
        term.press("Down")  # the node below run-tasks: report
        term.wait_for("│ · report  echo", what="report selected")  # (the Inspector's heading)
        term.type("b")
        term.wait_for("breakpoint: pause before report starts")
        assert "●" in term.screen()

    def test_greater_than_runs_to_the_next_node(self, term: Terminal) -> None:
        term.type(">")  # the rest of the batch, then it stops before report
        screen = term.wait_for(lambda s: ("node.end", "run-tasks") in [(k, r.split()[0]) for k, r in
                                                                        event_rows(s)],
                               timeout=20, what="the batch to end")
        time.sleep(0.4)
        screen = term.screen()
        assert not any(k == "node.start" and r.startswith("report") for k, r in event_rows(screen))
        assert "⏸" in screen

    def test_s_asks_and_n_keeps_the_run(self, term: Terminal) -> None:
        term.type("s")
        confirm(term, "Stop the run?", "n")
        term.type("s")
        confirm(term, "Stop the run?", "Escape")
        assert "⏸" in term.screen()

    def test_q_asks_then_ends_the_run_as_interrupted_with_exit_code_130(self, term: Terminal) -> None:
        term.type("q")
        confirm(term, "Quit while the run is going?", "y")
        assert term.wait_exit() == 130
        assert read_trace(term.workdir / "t.json").status == "interrupted"


class TestLivePauseContinue:
    """``p`` pauses a running run and continues it; ``q`` once it is over quits at once."""

    @pytest.fixture(scope="class")
    def term(self, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Terminal]:
        workdir = tmp_path_factory.mktemp("pause")
        term = start(workdir, PBF, "--paused", "--trace", workdir / "t.json")
        term.wait_for('"reason":"start"')
        yield term
        term.close()

    def test_p_continues_and_pauses(self, term: Terminal) -> None:
        term.type("p")
        term.wait_for("item.start", what="the batch running")
        term.type("p")
        term.wait_for('"reason":"user"', what="paused by the user")
        time.sleep(0.6)  # what was running ends; nothing new starts
        before = events_count(term.screen())
        time.sleep(0.4)
        assert events_count(term.screen()) == before
        term.type("p")
        term.wait_for(lambda s: "finished ok" in s and "p Pause" not in s.splitlines()[-1]
                      and "s Stop" not in s.splitlines()[-1], timeout=20,
                      what="the run over, and p and s gone from the footer")

    def test_q_when_the_run_is_over_quits_at_once(self, term: Terminal) -> None:
        term.type("q")
        assert term.wait_exit() == 0


class TestLiveRerun:
    """``r`` and ``R`` while the run is going: asked, then the run stops and runs again."""

    @pytest.fixture(scope="class")
    def term(self, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Terminal]:
        workdir = tmp_path_factory.mktemp("rerun")
        term = start(workdir, PBF, "--paused", "--trace", workdir / "first.json")
        term.wait_for('"reason":"start"')
        yield term
        term.close()

    def traces(self, term: Terminal) -> list[Path]:
        return sorted((term.workdir / ".pflow-tui" / "traces").glob("*.json"))

    def test_r_asks_then_runs_again(self, term: Terminal) -> None:
        term.type(".")
        term.wait_for("node.end")
        term.type("r")
        confirm(term, "Stop the run and run the flow again?", "n")
        assert self.traces(term) == []
        term.type("r")
        confirm(term, "Stop the run and run the flow again?", "Enter")
        term.wait_for(lambda s: len(self.traces(term)) == 1 and "node.end" not in s, what="a new run")
        assert read_trace(term.workdir / "first.json").status == "interrupted"

    def test_R_asks_then_reruns_from_failure(self, term: Terminal) -> None:
        term.type(".")
        term.wait_for("node.end")  # make-tasks ended ok in this run
        term.type("R")
        confirm(term, "Stop the run and re-run from failure?", "y")
        term.wait_for(lambda s: len(self.traces(term)) == 2, what="a third run")
        rerun = max(self.traces(term), key=lambda p: p.stat().st_mtime_ns)
        term.wait_for(lambda s: rerun.exists() and rerun.stat().st_size > 0)
        header = read_trace(rerun).header
        assert Path(header["rerun_of"]) in self.traces(term) and Path(header["rerun_of"]) != rerun

    def test_q_quits_the_rerun_with_130(self, term: Terminal) -> None:
        term.type("q")
        confirm(term, "Quit while the run is going?", "y")
        assert term.wait_exit() == 130


class TestLiveFinishedOk:
    """A live run that ended ok: ``R`` says nothing failed; the pane keys; ``q`` quits at once."""

    @pytest.fixture(scope="class")
    def term(self, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Terminal]:
        workdir = tmp_path_factory.mktemp("ok")
        term = start(workdir, SEQ, "--trace", workdir / "t.json", width=100, height=30)
        term.wait_for("finished ok", timeout=20)
        yield term
        term.close()

    def test_R_says_nothing_failed(self, term: Terminal) -> None:
        term.type("R")
        term.wait_for("Nothing failed")
        assert not (term.workdir / ".pflow-tui").exists()

    def test_slash_m_numbers_help_and_n_live(self, term: Terminal) -> None:
        term.type("/kind:node.end")
        term.wait_for(re.compile(r"\b4 / \d+ events"))
        term.press("Enter")
        out_of_the_box(term)
        term.type("/kind:nod.end")
        term.wait_for("0 / 32 events  · unknown kind 'nod.end': did yo")  # (the rest under a toast)
        term.press("Enter")
        out_of_the_box(term)
        into_the_box(term)  # its text selected: one backspace clears it
        term.press("BSpace")
        term.wait_for(lambda s: "/" not in events_count(s))
        term.press("Escape")
        out_of_the_box(term)
        term.press("Tab")  # the DAG
        term.type("m")
        term.wait_for(lambda s: not titled(s, "Events"))
        term.type("m")
        term.wait_for(lambda s: titled(s, "Events"))
        term.type("3")
        term.wait_for(lambda s: not titled(s, "Timeline"))
        term.type("3")
        term.wait_for(lambda s: titled(s, "Timeline"))
        term.type("n")
        term.wait_for("No failures")
        term.type("?")
        term.wait_for("closes this help")
        term.type("?")
        term.wait_for(lambda s: "closes this help" not in s)

    def test_ctrl_s_saves_a_screenshot_beside_the_traces(self, term: Terminal) -> None:
        term.press("C-s")
        term.wait_for("Screenshot saved")
        shots = list((term.workdir / ".pflow-tui" / "screenshots").glob("sequential_batch-*.svg"))
        assert len(shots) == 1 and "</svg>" in shots[0].read_text()
        assert not list(term.workdir.glob("*.svg"))

    def test_q_quits_at_once(self, term: Terminal) -> None:
        term.type("q")
        assert term.wait_exit() == 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(pytest.main([__file__, "-q"]))
