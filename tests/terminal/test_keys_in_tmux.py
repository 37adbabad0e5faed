"""Every key of README's key table, typed into the real ``pflow-tui`` in tmux, live and in replay.

Mouse clicks go in as the SGR reports a terminal sends (``Terminal.click``).

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

from pflow_tui.engine.trace.writer import read_trace

PBF = SAMPLES / "parallel_batch_failures.json"  # 40 items, 6 fail (3, 10, 17, 24, 31, 38)
FAILED = (3, 10, 17, 24, 31, 38)
SEQ = SAMPLES / "sequential_batch.json"  # nothing fails
PIPELINE = SAMPLES / "pipeline.json"  # files -> per_file (a nested flow: read -> process -> write) -> report
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


def pane(screen: str, title: str) -> list[str]:
    """The lines inside a pane's border (the pane titled ``title``), without the border;
    fails if the pane is not on the screen."""
    lines = screen.splitlines()
    for y, line in enumerate(lines):
        found = re.search(rf"─ {re.escape(title)}(?: · [^─]*)? ─", line)  # (DAG · flow › nested)
        if found is None:
            continue
        at = found.start()
        left, right = line.rfind("╭", 0, at), line.find("╮", at)
        inside = []
        for below in lines[y + 1:]:
            if below[left:left + 1] == "╰":
                break
            inside.append(below[left + 1:right])
        return inside
    raise AssertionError(f"no {title} pane on the screen:\n{screen}")


def heading(screen: str) -> str:
    """The Inspector's first line (what it shows: ``✗ run-tasks.iteration_10  shell``),
    without the scrollbar and without an item's label (``task 10 · 0.05s``, between the
    path and the type)."""
    line = pane(screen, "Inspector")[0].rstrip(" ▁▂▃▄▅▆▇█").strip()
    return re.sub(r"(\.iteration_\d+)  .+  (\S+)$", r"\1  \2", line)


def item_starts(screen: str) -> list[str]:
    """The paths of the ``item.start`` rows the Events pane shows."""
    return [rest.split()[0] for kind, rest in event_rows(screen) if kind == "item.start"]


def timeline_row(screen: str, index: int) -> str:
    """The Timeline's row of item ``index`` (``#0  task 0 · 0.05s  ✓ ...``), or ''."""
    return next((row.strip() for row in pane(screen, "Timeline")
                 if re.match(rf"#{index}\s", row)), "")


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

    def test_n_and_N_walk_the_failures_and_escape_goes_back_to_the_node(self, term: Terminal) -> None:
        def failed(k: int) -> str:  # the Inspector's heading on the k-th failure (1-based)
            return f"✗ run-tasks.iteration_{FAILED[(k - 1) % 6]}  shell"

        term.type("n")
        screen = term.wait_for(re.compile(r"failure (\d) of 6"))
        first = int(re.search(r"failure (\d) of 6", screen).group(1))
        screen = term.wait_for(lambda s: heading(s) == failed(first),
                               what=f"the Inspector on {failed(first)}")
        index = FAILED[(first - 1) % 6]
        assert f"iteration_{index}  task {index} · " in pane(screen, "Inspector")[0]  # its label
        term.type("n")
        term.wait_for(lambda s: f"failure {first % 6 + 1} of 6" in s and heading(s) == failed(first + 1),
                      what=f"the Inspector on {failed(first + 1)}")
        term.type("N")
        term.wait_for(lambda s: heading(s) == failed(first), what=f"the Inspector back on {failed(first)}")
        term.press("Escape")  # from the iteration back to its node
        term.wait_for(lambda s: heading(s) == "✓ run-tasks  shell", what="the node selected")
        assert "failed iterations (6)" in "\n".join(pane(term.screen(), "Inspector"))

    def test_escape_restores_a_maximised_pane(self, term: Terminal) -> None:
        term.type("m")
        term.wait_for(lambda s: [t for t in TITLES.values() if titled(s, t)] == ["DAG"], what="the DAG alone")
        term.press("Escape")
        term.wait_for(lambda s: all(titled(s, t) for t in TITLES.values()), what="every pane back")
        assert heading(term.screen()) == "✓ run-tasks  shell"  # the selection stayed

    def test_up_above_the_first_node_selects_the_run_and_down_comes_back(self, term: Terminal) -> None:
        term.press("Up")  # run-tasks -> make-tasks
        term.wait_for(lambda s: heading(s) == "✓ make-tasks  shell", what="make-tasks selected")
        term.press("Up")  # above the first node: the run itself
        screen = term.wait_for(lambda s: heading(s) == f"✓ {ROOT}  flow", what="the run selected")
        assert re.search(r"^ outputs \(3\)", "\n".join(pane(screen, "Inspector")), re.M)
        term.press("Down")
        term.wait_for(lambda s: heading(s) == "✓ make-tasks  shell", what="make-tasks again")
        term.press("Down")
        term.wait_for(lambda s: heading(s) == "✓ run-tasks  shell", what="run-tasks again")

    def test_m_maximises_every_pane_in_turn(self, term: Terminal) -> None:
        for title in ("DAG", "Namespaces", "Timeline", "Inspector", "Events"):  # the tab order
            term.type("m")
            term.wait_for(lambda s, title=title: [t for t in TITLES.values() if titled(s, t)] == [title],
                          what=f"{title} alone")
            term.type("m")
            term.wait_for(lambda s: all(titled(s, t) for t in TITLES.values()), what="every pane back")
            term.press("Tab")
        term.type("m")  # the focus went round to the DAG
        term.wait_for(lambda s: [t for t in TITLES.values() if titled(s, t)] == ["DAG"], what="the DAG alone")
        term.type("m")
        term.wait_for(lambda s: all(titled(s, t) for t in TITLES.values()), what="every pane back")

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

        def summary(screen: str) -> bool:  # the counts, the percentiles, the slowest
            rows = [row.strip() for row in pane(screen, "Timeline")]
            return ("✓ 34 ok   ✗ 6 failed" in "\n".join(rows) and any(r.startswith("p50 ") for r in rows)
                    and any(r.startswith("─ 10 slowest") for r in rows))

        term.wait_for(summary, what="the aggregate view")
        term.type("z")

        def every_row(screen: str) -> bool:
            lines = pane(screen, "Timeline")
            rows = [m for m in (re.match(r"#(\d+)\s+task (\d+) · \d\.\d\ds\s+([✓✗])", r) for r in lines) if m]
            # one row an item, from #0: its index, its label, its status, and no summary
            return (len(rows) >= 5 and rows[0][1] == "0"
                    and all(m[1] == m[2] and (m[3] == "✗") == (int(m[1]) in FAILED) for m in rows)
                    and not summary(screen))

        term.wait_for(every_row, what="a row for every item")
        term.press("Home")  # the first row, and enter selects its item
        term.press("Enter")
        term.wait_for(lambda s: heading(s) == "✓ run-tasks.iteration_0  shell", what="item 0 selected")
        for _ in range(3):  # Inspector, Events, DAG
            term.press("Tab")
        term.wait_for(lambda s: "z Summary" not in s)

    def test_ctrl_p_opens_the_command_palette(self, term: Terminal) -> None:
        term.press("C-p")
        term.wait_for("Search for commands")
        term.press("Escape")
        term.wait_for(lambda s: "Search for commands" not in s)
        term.press("C-p")
        term.wait_for("Search for commands")
        term.type("task 24")  # an item by its label
        term.wait_for("go to run-tasks.iteration_24  task 24 · ")
        term.press("Enter")
        term.wait_for(lambda s: heading(s) == "✗ run-tasks.iteration_24  shell"
                      and "go to run-tasks" not in s, what="the palette closed on iteration 24")

    def test_e_forks_the_selected_iteration_and_ctrl_a_selects_all(self, term: Terminal) -> None:
        before = re.search(r"iteration_(\d+)  shell$", heading(term.screen()))
        index = FAILED[0] if before is None else FAILED[(FAILED.index(int(before[1])) + 1) % 6]
        term.type("n")  # the next failed iteration
        term.wait_for(lambda s: heading(s) == f"✗ run-tasks.iteration_{index}  shell",
                      what=f"iteration {index} selected")
        term.type("e")
        screen = term.wait_for(f"fork {ROOT}.run-tasks.iteration_{index} ")
        assert '"command"' in screen
        term.press("C-a")  # select all, then type over it
        term.type("x")
        screen = term.wait_for(re.compile(r" 1  x\s+▎"), what="the params replaced by x")
        assert not re.search(r" 2 {4}\"", screen)  # no second line left
        term.press("Escape")
        term.wait_for(lambda s: "ctrl+r runs them" not in s)
        term.press("Escape")
        term.wait_for(lambda s: heading(s) == "✓ run-tasks  shell", what="the node selected")

    def test_a_click_on_the_scrubber_moves_the_cursor_and_on_a_tree_row_selects(self, term: Terminal) -> None:
        def bar_line(screen: str) -> int:
            return next(y for y, line in enumerate(screen.splitlines()) if line.startswith(" event "))

        # the whole bar (a toast, "failure 5 of 6", may lie over its right half for 2 s)
        screen = term.wait_for(lambda s: "●" in s.splitlines()[bar_line(s)], what="the scrubber uncovered")
        total = cursor(screen)[1]
        y = bar_line(screen)
        bar = screen.splitlines()[y]
        x = (bar.index("━") + bar.index("●")) // 2  # half way along the bar
        term.click(x, y)
        screen = term.wait_for(lambda s: 0 < cursor(s)[0] < total, what="the cursor moved back by the click")
        at = cursor(screen)[0]
        assert total * 0.25 < at < total * 0.75, at
        term.type("G")
        screen = term.wait_for(lambda s: cursor(s)[0] == total)
        rows = [(y, re.search(r"([✓✗]) iteration_(\d+)  task \d+", line.rpartition("││")[0]))
                for y, line in enumerate(screen.splitlines())]  # the left column: the tree's rows
        y, found = [(y, m) for y, m in rows if m][-1]
        term.click(found.start(2), y)
        term.wait_for(lambda s: heading(s) == f"{found[1]} run-tasks.iteration_{found[2]}  shell",
                      what=f"iteration {found[2]} selected by the click")


# --- live: stepping, breakpoints, the filter while running, stop, quit ------------------------

def test_L_loads_a_large_value_from_its_side_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A value over the limit is stored beside the trace; the Inspector shows its preview,
    and ``L`` shows it whole (literally: the markup in it stays text)."""
    from pflow_tui.engine.ir.load import build_flow
    from pflow_tui.engine.run.executor import run_flow

    monkeypatch.setenv("PFLOW_TUI_LARGE_VALUE", "500")
    command = "printf '[red]x[/red] '; head -c 700 /dev/zero | tr '\\0' y; printf ' THE-'; printf END"
    flow = {"name": "big", "nodes": [{"id": "say", "type": "shell", "params": {"command": command}}],
            "edges": []}
    run_flow(build_flow(flow), {}, trace=tmp_path / "t.json")
    term = start(tmp_path, "replay", tmp_path / "t.json", "--at", "big.say")
    try:
        term.wait_for("ok · ", what="the node in the Inspector")
        term.type("123")  # the DAG, the namespaces and the timeline give the Inspector their room
        term.wait_for("large value", what="the preview of the large value")
        assert "THE-END" not in term.screen()
        term.type("L")
        term.wait_for("THE-END", what="the whole value")
        assert "[red]x[/red]" in term.screen()
    finally:
        term.close()


def test_b_typed_right_after_a_cursor_move_acts_on_the_new_node(tmp_path: Path) -> None:
    """Keys typed fast arrive in one write: the cursor's selection message would come after
    the ``b``, which then set the breakpoint on the node the cursor had left."""
    term = start(tmp_path, PBF, "--paused", "--trace", tmp_path / "t.json")
    try:
        term.wait_for('"reason":"start"', what="paused at the start")
        term.press("Down", "Down", "b")  # from make-tasks to report, and b, in one write
        term.wait_for("breakpoint: pause before report starts")
        assert "make-tasks starts" not in term.screen() and "run-tasks starts" not in term.screen()
    finally:
        term.close()


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
        term.type(".")  # the batch starts and waits before its first item
        term.wait_for(lambda s: ("node.start", "run-tasks") in [(k, r.split()[0]) for k, r in event_rows(s)]
                      and "at run-tasks.iteration_0" in s.splitlines()[0], what="paused before item 0")
        assert item_starts(term.screen()) == []
        term.type(".")
        term.wait_for(lambda s: item_starts(s) == ["run-tasks.iteration_0"], what="item 0 started")
        time.sleep(0.4)  # and no other one
        screen = term.screen()
        assert item_starts(screen) == ["run-tasks.iteration_0"]
        assert "at run-tasks.iteration_1" in screen.splitlines()[0]  # the header: where it waits
        assert re.match(r"#1\s+·", timeline_row(screen, 1)), timeline_row(screen, 1)  # item 1 pending
        term.type(".")
        term.wait_for(lambda s: item_starts(s)[-1:] == ["run-tasks.iteration_1"], what="item 1 started")
        time.sleep(0.4)
        screen = term.screen()
        assert "run-tasks.iteration_2" not in item_starts(screen)
        assert re.match(r"#2\s+·", timeline_row(screen, 2)), timeline_row(screen, 2)

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


class TestLiveStop:
    """``s`` and yes: the run stops (cancelled), its trace is kept; ``q`` then quits at once."""

    @pytest.fixture(scope="class")
    def term(self, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Terminal]:
        workdir = tmp_path_factory.mktemp("stop")
        term = start(workdir, PBF, "--paused", "--trace", workdir / "t.json")
        term.wait_for('"reason":"start"')
        yield term
        term.close()

    def test_s_and_y_stop_the_run_and_keep_the_trace(self, term: Terminal) -> None:
        term.type(".")
        term.wait_for("node.end", what="make-tasks ran")
        term.type("s")
        confirm(term, "Stop the run?", "y")
        term.wait_for(lambda s: "stopped" in s.splitlines()[0] and "run.end" in [k for k, _ in event_rows(s)],
                      what="the header: stopped, and the run's end in the events")
        trace = read_trace(term.workdir / "t.json")  # kept, with what ran and nothing after
        assert trace.status == "interrupted" and trace.events[-1]["kind"] == "run.end"
        assert trace.events[-1]["status"] == "cancelled"
        assert [(e["kind"], e.get("node")) for e in trace.events if e["kind"].startswith("node.")] == \
            [("node.start", "make-tasks"), ("node.end", "make-tasks")]

    def test_q_on_the_stopped_run_quits_at_once_with_130(self, term: Terminal) -> None:
        term.type("q")
        assert term.wait_exit() == 130  # the run was stopped: interrupted


class TestLiveCtrlQ:
    """``ctrl+q`` while the run is going: no question, the run ends as interrupted (130)."""

    def test_ctrl_q_ends_a_paused_run_at_once(self, tmp_path: Path) -> None:
        term = start(tmp_path, PBF, "--paused", "--trace", tmp_path / "t.json")
        try:
            term.wait_for('"reason":"start"')
            term.press("C-q")
            assert term.wait_exit() == 130
            assert read_trace(tmp_path / "t.json").status == "interrupted"
        finally:
            term.close()


class TestNestedFlow:
    """``enter`` on a nested flow's node in the DAG opens its graph, ``backspace`` goes back."""

    @pytest.fixture(scope="class")
    def term(self, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Terminal]:
        workdir = tmp_path_factory.mktemp("nested")
        term = start(workdir, PIPELINE, "--trace", workdir / "t.json")
        term.wait_for("finished ok", timeout=20)
        yield term
        term.close()

    @staticmethod
    def boxes(screen: str) -> list[str]:
        """The node names in the DAG's boxes, top to bottom."""
        return re.findall(r"[┌┏] \S (\S+) [─━]", "\n".join(pane(screen, "DAG")))

    def test_enter_opens_the_nested_flow_and_backspace_goes_back(self, term: Terminal) -> None:
        assert self.boxes(term.screen()) == ["files", "per_file", "report"]
        term.press("Up")  # from report (the last started) to per_file
        term.wait_for(lambda s: heading(s) == "✓ per_file  workflow", what="per_file selected")
        term.press("Enter")
        screen = term.wait_for(lambda s: self.boxes(s) == ["read", "process", "write"],
                               what="the nested flow's graph")
        assert "─ DAG · pipeline › per_file ─" in screen and " backspace: up ─╯" in screen
        term.press("BSpace")
        term.wait_for(lambda s: self.boxes(s) == ["files", "per_file", "report"] and titled(s, "DAG"),
                      what="the flow around it")
        term.press("BSpace")  # in the top flow: the run itself
        term.wait_for(lambda s: heading(s) == "✓ pipeline  flow", what="the run selected")
        assert self.boxes(term.screen()) == ["files", "per_file", "report"]

    def test_q_quits(self, term: Terminal) -> None:
        term.type("q")
        assert term.wait_exit() == 0


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
