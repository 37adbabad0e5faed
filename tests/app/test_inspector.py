"""The inspector (failures first, as current as the header, the run's inputs, outputs and
store), the header (the essentials are never cut; the clock stands still while paused)
and the namespace tree's value labels."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from recording import record_run
from rich.console import Console
from rich.text import Text

from pflow_tui.app.app import DebuggerApp
from pflow_tui.app.graph import Graph
from pflow_tui.app.messages import Selection
from pflow_tui.app.screens.run import RunScreen
from pflow_tui.app.widgets.event_log import summary
from pflow_tui.app.widgets.inspector import json_text
from pflow_tui.app.widgets.namespace_tree import preview
from pflow_tui.app.widgets.run_header import ELAPSED, FAILURES, PAUSED_AT, STATUS, Part, fit
from pflow_tui.engine.ir.load import build_flow, load_flow

pytestmark = pytest.mark.anyio
FIXTURES = Path(__file__).parent / "fixtures"
SAMPLES = Path(__file__).resolve().parents[2] / "sample_flows"


def fixture_app(name: str, extra: list[dict[str, Any]] | None = None) -> DebuggerApp:
    doc = orjson.loads((FIXTURES / f"{name}.events.json").read_bytes())
    events = doc["events"] + (extra or [])
    return DebuggerApp.from_events(Graph.from_ir(doc["flow"], doc["flow_name"], doc.get("children")),
                                   events)


def text_of(renderable: Any, width: int) -> list[str]:
    console = Console(width=width, record=True, color_system=None)
    console.print(renderable)
    return [line.rstrip() for line in console.export_text().splitlines()]


def recorded_inputs_outputs(tmp_path: Path) -> DebuggerApp:
    spec = load_flow(SAMPLES / "inputs_outputs.json")
    inputs = {"who": "Ada", "times": 3, "shout": True}
    return DebuggerApp.from_events(*record_run(spec, tmp_path / "t.json", inputs))


# --- failures first ---------------------------------------------------------------------------


async def test_a_failed_item_starts_with_its_error():
    app = fixture_app("parallel_batch_failures")
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.pause()
        app.select(Selection("run-tasks", 3))
        await pilot.pause()
        inspector = app.screen.query_one("#inspector")
        lines = text_of(inspector.build(), 42)
        assert lines[0] == "✗ run-tasks.iteration_3  shell"
        assert lines[1].startswith("error · ")
        assert lines[2].startswith("NodeError: Command failed with exit code")
        body = "\n".join(lines)
        assert body.index("NodeError") < body.index("\nitem") < body.index("\nparams") \
            < body.index("\noutputs")
        # on screen, at 80x24: the message is in the inspector's visible rows
        head = inspector.query_one("#inspector-head")
        error_row = inspector.query_one("#inspector-body").region.y
        assert error_row < inspector.content_region.bottom
        assert head.region.y >= inspector.content_region.y
        assert "NodeError" in app.screen.query_one("#inspector-body").render_line(0).text


async def test_a_failed_shell_item_shows_the_last_lines_of_stderr_and_its_attempts(tmp_path):
    doc = {"name": "f", "nodes": [{"id": "s", "type": "shell", "params": {
        "command": "for i in $(seq 1 20); do echo line $i >&2; done; exit 5"}}]}
    app = DebuggerApp.from_events(*record_run(build_flow(doc), tmp_path / "t.json"))
    async with app.run_test(size=(120, 40)) as pilot:
        await pilot.pause()
        app.select(Selection("s"))
        await pilot.pause()
        lines = text_of(app.screen.query_one("#inspector").build(), 100)
        assert lines[2].startswith("NodeError: Command failed with exit code 5")
        at = lines.index("stderr (last 8 of 20 lines)")
        assert lines[at + 1: at + 9] == [f"line {i}" for i in range(13, 21)]
        assert at < lines.index("params")


def test_the_event_row_starts_with_the_whole_first_line_of_the_error():
    event = {"seq": 9, "t": 1.0, "kind": "item.end", "path": "f.b.iteration_3", "status": "error",
             "duration": 0.1, "attempts": 1,
             "error": {"type": "NodeError", "message": "Command failed with exit code 3: task 3: "
                                                       "checksum mismatch\nsecond line"}}
    assert summary(event).startswith("Command failed with exit code 3: task 3: checksum mismatch  ")
    assert "second line" not in summary(event)
    event["error"] = {"type": "ValueError", "message": "bad [b]value[/b]"}
    assert summary(event).startswith("ValueError: bad [b]value[/b]")


# --- the header -------------------------------------------------------------------------------


def header_text(app: DebuggerApp) -> str:
    return app.screen.header.content.plain


async def test_the_header_keeps_status_elapsed_failures_and_where_it_is_paused_at_80_columns():
    pause = {"seq": 10_000, "t": 99.0, "kind": "pause", "reason": "breakpoint", "breakpoint": None,
             "path": "parallel_batch_failures.run-tasks.iteration_38"}
    app = fixture_app("parallel_batch_failures")
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.pause()
        text = header_text(app)
        assert re.search(r"✓ finished ok  \d+(\.\d)?s  .*✗6", text), text
        assert len(text) <= 78
    doc = orjson.loads((FIXTURES / "parallel_batch_failures.events.json").read_bytes())
    events = [e for e in doc["events"] if e["kind"] != "run.end"]
    cut = next(i for i, e in enumerate(events) if e.get("status") == "error") + 1
    events = [*events[:cut], {**pause, "seq": events[cut - 1]["seq"] + 1, "t": events[cut - 1]["t"]}]
    app = DebuggerApp.from_events(Graph.from_ir(doc["flow"], doc["flow_name"]), events)
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.pause()
        text = header_text(app)
        assert "⏸ paused" in text and "running" not in text
        assert "at run-tasks.iteration_38 (breakpoint)" in text
        assert "✗1" in text
        assert len(text) <= 78


async def test_the_clock_stands_still_while_paused_and_the_header_follows_a_step(tmp_path):
    doc = {"name": "p", "nodes": [
        {"id": "a", "type": "shell", "params": {"command": "sleep 0.3"}},
        {"id": "b", "type": "shell", "params": {"command": "sleep 0.2"}}],
        "edges": [{"from": "a", "to": "b"}]}
    app = DebuggerApp.live(build_flow(doc), {}, tmp_path / "t.json", paused=True)
    async with app.run_test(size=(100, 30)) as pilot:
        model = app.screen.model
        for _ in range(200):
            await pilot.pause(0.05)
            if model.paused is not None:
                break
        await pilot.pause(0.2)
        first = header_text(app)
        assert "⏸ paused" in first and "at the start" in first, first
        await pilot.pause(0.6)
        assert header_text(app) == first, "the clock stands still while paused"
        await pilot.press("greater_than_sign")  # step over a: it runs, then b waits
        for _ in range(200):
            await pilot.pause(0.05)
            if model.paused is not None and model.paused.get("path") == "p.b":
                break
        await pilot.pause(0.2)
        text = header_text(app)
        assert "⏸ paused" in text and "at b" in text and "at the start" not in text, text
        await pilot.pause(0.5)
        assert header_text(app) == text
        await pilot.press("p")  # continue
        for _ in range(200):
            await pilot.pause(0.05)
            if model.status == "ok":
                break
        await pilot.pause(0.2)
        assert "✓ finished ok" in header_text(app)
        assert model.run_time() == model.t, "once going again, the clock is the run's own time"


# --- as current as the header -----------------------------------------------------------------


async def test_the_inspector_counts_equal_the_headers_after_every_tick(tmp_path, monkeypatch):
    doc = {"name": "c", "nodes": [{"id": "work", "type": "shell", "params": {
        "command": "sleep ${item.d}; test ${item.i} -ne 3 && test ${item.i} -ne 7"},
        "batch": {"items": [{"i": i, "d": 0.02 * (i % 5)} for i in range(24)], "parallel": True,
                  "max_concurrent": 4, "error_handling": "continue"}}]}
    checked: list[tuple[int, int]] = []
    original = RunScreen.tick

    def tick(self: RunScreen, changes: Any = None) -> None:
        original(self, changes)
        if self.selection != Selection("work"):
            return
        head = self.panes["inspector"]._head_shown
        more = head[4] or ""
        counts = re.search(r"(\d+) ok · (\d+) failed", more)
        header = self.header.content.plain
        items = re.search(r"items (\d+)/24", header)
        if counts and items:
            ok, failed = int(counts[1]), int(counts[2])
            assert ok + failed == int(items[1]), (more, header)
            shown_failed = re.search(r"✗(\d+)", header)
            assert failed == (int(shown_failed[1]) if shown_failed else 0), (more, header)
            checked.append((ok, failed))

    monkeypatch.setattr(RunScreen, "tick", tick)
    app = DebuggerApp.live(build_flow(doc), {}, tmp_path / "t.json", at=Selection("work"))
    async with app.run_test(size=(120, 36)) as pilot:
        for _ in range(400):
            await pilot.pause(0.05)
            if app.screen.model.status not in ("pending", "running"):
                break
        await pilot.pause(0.3)
    assert checked and checked[-1] == (22, 2)
    assert len(set(checked)) > 2, "seen while the batch went on"


async def test_a_running_nodes_duration_grows_at_every_tick(tmp_path):
    doc = {"name": "d", "nodes": [{"id": "slow", "type": "shell", "params": {"command": "sleep 1.2"}}]}
    app = DebuggerApp.live(build_flow(doc), {}, tmp_path / "t.json", at=Selection("slow"))
    async with app.run_test(size=(120, 36)) as pilot:
        seen = []
        for _ in range(100):
            await pilot.pause(0.1)
            head = app.screen.panes["inspector"]._head_shown
            if head and head[3].startswith("running"):
                seen.append(head[3])
            if app.screen.model.status == "ok":
                break
    assert len(set(seen)) >= 4, seen


# --- the run itself ---------------------------------------------------------------------------


async def test_the_root_shows_inputs_outputs_and_the_final_store(tmp_path):
    spec = load_flow(SAMPLES / "inputs_outputs.json")
    app = DebuggerApp.live(spec, {"who": "Ada", "times": 3, "shout": True}, tmp_path / "t.json")
    async with app.run_test(size=(120, 40)) as pilot:
        for _ in range(200):
            await pilot.pause(0.05)
            if app.screen.model.status not in ("pending", "running"):
                break
        dag = app.screen.query_one("#dag")
        dag.focus()
        app.select(Selection("greet"))
        await pilot.press("up")  # above the first node: the run itself
        for _ in range(20):  # the store is read from the trace's footer, once it is written
            await pilot.pause(0.1)
        assert app.screen.selection == Selection(path="inputs_outputs")
        inspector = app.screen.query_one("#inspector")
        text = "\n".join(text_of(inspector.build(), 100))
        assert re.search(r"who +Ada", text) and re.search(r"times +3", text)
        assert re.search(r"greeting +HELLO, ADA! HELLO, ADA! HELLO, ADA!", text)
        assert "The greeting text" in text  # the declared output's description
        assert re.search(r"store \(\d+ keys", text), text
        store = inspector.query_one("#store")
        assert store.display
        keys = [str(child.label).split(" ")[0] for child in store.root.children]
        assert {"who", "times", "shout", "greet", "measure"} <= set(keys)
        greet = next(c for c in store.root.children if str(c.label).startswith("greet"))
        greet.expand()
        await pilot.pause()
        assert any(str(c.label).startswith("echo = HELLO") for c in greet.children)
        # another selection hides the store; the namespace tree's root selects the run again
        app.select(Selection("measure"))
        await pilot.pause()
        assert not store.display
        assert "store" not in "\n".join(text_of(inspector.build(), 100))
        tree = app.screen.query_one("#tree")
        tree.focus()
        await pilot.press("home")
        await pilot.pause()
        assert app.screen.selection == Selection(path="inputs_outputs")
        assert store.display and len(store.root.children) >= 5


async def test_llm_usage_in_the_header_and_on_the_run_itself(tmp_path, monkeypatch):
    cfg = tmp_path / "cfg"
    cfg.mkdir()
    (cfg / "prices.json").write_text('{"offline": {"input": 1.0, "output": 2.0}}')
    monkeypatch.setenv("PFLOW_TUI_CONFIG_DIR", str(cfg))
    spec = load_flow(SAMPLES / "llm_classify.json")
    app = DebuggerApp.live(spec, {}, tmp_path / "t.json")
    async with app.run_test(size=(160, 40)) as pilot:
        for _ in range(300):
            await pilot.pause(0.05)
            if app.screen.model.status not in ("pending", "running"):
                break
        usage = app.screen.model.usage
        assert usage is not None and usage["calls"] >= 40 and usage["cost"] > 0
        tokens = usage["input_tokens"] + usage["output_tokens"]
        await pilot.pause(0.3)
        header = str(app.screen.query_one("RunHeader").render())
        assert f"{tokens:,} tok ${usage['cost']:.4f}" in header
        app.select(Selection(path=spec.name))
        await pilot.pause(0.3)
        text = "\n".join(text_of(app.screen.query_one("#inspector").build(), 160))
        assert f"llm usage\n{usage['input_tokens']:,} in · {usage['output_tokens']:,} out tokens" in text
        assert f"in {usage['calls']} calls" in text


async def test_recorded_events_without_a_trace_say_the_store_is_not_recorded(tmp_path):
    app = recorded_inputs_outputs(tmp_path)
    async with app.run_test(size=(120, 40)) as pilot:
        await pilot.pause()
        app.select(Selection(path="inputs_outputs"))
        await pilot.pause()
        inspector = app.screen.query_one("#inspector")
        text = "\n".join(text_of(inspector.build(), 100))
        assert "not recorded (no trace file)" in text
        assert not inspector.query_one("#store").display


# --- fitting the header: the highest-priority parts survive -----------------------------------

_words = st.text(st.characters(codec="utf-8", exclude_categories=("Cc", "Cs", "Mn", "Me", "Cf")),
                 min_size=1, max_size=40)


@settings(max_examples=300, deadline=None)
@given(width=st.integers(0, 240), texts=st.lists(_words, min_size=10, max_size=10),
       cuts=st.lists(st.sampled_from([None, "end", "start"]), min_size=10, max_size=10))
def test_fit_drops_the_least_important_first(width: int, texts: list[str], cuts: list[str | None]):
    parts = [Part(Text(t), priority, cut=cut if priority > PAUSED_AT else None)
             for priority, (t, cut) in enumerate(zip(texts, cuts, strict=True))]
    display = parts[::-1]  # displayed in another order than their priorities
    line = fit(display, width)
    plain = line.plain
    assert line.cell_len <= max(width, 0)
    essential = [p.text.plain for p in parts if p.priority in (STATUS, ELAPSED, FAILURES, PAUSED_AT)]
    need = sum(Text(t).cell_len for t in essential) + 2 * (len(essential) - 1)
    if width >= need:
        for t in essential:
            assert t in plain
    if width < Text(texts[STATUS]).cell_len:  # the status alone is cut to the width: "st…"
        return
    assert texts[STATUS] in plain
    # more important parts are not dropped while less important ones stay
    kept = [p for p in parts if p.text.plain in plain]
    dropped = [p for p in parts if p.text.plain not in plain and p.cut is None]
    if dropped and kept:
        assert min(p.priority for p in dropped) > min(p.priority for p in kept)


# --- namespace values ---------------------------------------------------------------------------


def test_previews_quote_empty_strings_and_end_in_an_ellipsis_when_cut():
    assert json_text("") == '""' and json_text(" \n") == '" \\n"'  # the inspector's item
    assert json_text("text") == "text"
    assert preview("") == '""'
    assert preview("   ") == '"   "'
    cut = preview("x" * 500)
    assert cut.endswith("…") and len(cut) == 60
    assert preview("a\nb") == "a⏎b"


async def test_namespace_value_labels_end_in_an_ellipsis_where_the_pane_cuts_them(tmp_path):
    doc = {"name": "v", "nodes": [{"id": "long", "type": "echo", "params": {
        "message": "a fairly long value that is much wider than the namespace pane is at 80 columns"}},
        {"id": "empty", "type": "echo", "params": {"message": ""}}],
        "edges": [{"from": "long", "to": "empty"}]}
    app = DebuggerApp.from_events(*record_run(build_flow(doc), tmp_path / "t.json"))
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.pause()
        tree = app.screen.query_one("#tree")
        for node in list(tree.root.children):
            node.expand()
        await pilot.pause()
        keys = [child for node in tree.root.children for child in node.children]
        room = tree.scrollable_content_region.width
        labels = [tree.render_label(k, tree.rich_style, tree.rich_style).plain for k in keys]
        long = next(label for label in labels if label.startswith("echo = a fairly"))
        assert long.endswith("…") and len(long) <= room - 2 * tree.guide_depth
        assert 'echo = ""' in labels


def test_paths_wrap_after_a_dot_never_mid_word():
    from pflow_tui.app.widgets.inspector import Breakable, path_pieces

    path = "pipeline.per_file.iteration_12.process_records.write_output"
    title = Breakable([Text("✗ "), *path_pieces(path), Text("  shell")])
    lines = text_of(title, 30)
    assert all(len(line) <= 30 for line in lines)
    assert "".join(lines).replace("✗", "").replace("shell", "").replace(" ", "") == path
    for line in lines[:-1]:
        assert line.rstrip().endswith("."), lines  # every break is after a dot
