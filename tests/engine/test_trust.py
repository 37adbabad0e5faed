"""Signed traces (engine/trust.py): the per-user key, seals, the verifier, readers that skip
seals, and consent before a re-run of a trace this user did not sign (a marker file says
whether anything ran).

The suite's key lives in a temporary config folder (tests/conftest.py); "someone else" is a
run made with ``PFLOW_TUI_CONFIG_DIR`` pointing at another folder, so another key.
"""

from __future__ import annotations

import os
import signal
import stat
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import orjson
import pytest

from pflow_tui.engine.ir.load import build_flow
from pflow_tui.engine.run.cache import RunCache
from pflow_tui.engine.run.executor import run_flow
from pflow_tui.engine.trace import trust
from pflow_tui.engine.trace.diff import diff_traces
from pflow_tui.engine.trace.export import export_file
from pflow_tui.engine.trace.reader import TraceIndex, TraceStream
from pflow_tui.engine.trace.writer import TraceWriter, read_trace

PFLOW_TUI = [sys.executable, "-m", "pflow_tui"]


def flow(marker: Path, first: str = "echo hello") -> dict[str, Any]:
    """A flow whose second node fails after leaving the marker: a re-run runs it again."""
    return {"name": "evil", "nodes": [
        {"id": "a", "type": "shell", "params": {"command": first}},
        {"id": "b", "type": "shell", "params": {"command": f"touch {marker}; exit 1"}}],
        "edges": [{"from": "a", "to": "b"}]}


def run_as(folder: Path | None, ir: dict[str, Any], trace: Path,
           monkeypatch: pytest.MonkeyPatch) -> Path:
    """Run ``ir`` with the key of config folder ``folder`` (None: the suite's own key)."""
    with monkeypatch.context() as m:
        if folder is not None:
            m.setenv(trust.ENV, str(folder))
        run_flow(build_flow(ir), {}, trace=trace)
    return trace


def cli(*args: str | Path, cwd: Path, stdin: Any = subprocess.DEVNULL) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*PFLOW_TUI, *map(str, args)], cwd=cwd, stdin=stdin, capture_output=True,
                          text=True, timeout=60, env={**os.environ, "COLUMNS": "200"})


@pytest.fixture
def marker(tmp_path: Path) -> Path:
    return tmp_path / "MARKER"


@pytest.fixture
def foreign(tmp_path: Path, marker: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A trace someone else made (another key) of a flow whose node b runs ``touch MARKER``."""
    trace = run_as(tmp_path / "someone-else", flow(marker), tmp_path / "foreign.json", monkeypatch)
    marker.unlink()
    return trace


# --- the key --------------------------------------------------------------------------------

def test_the_key_is_made_once_0600_in_a_0700_folder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    folder = tmp_path / "cfg" / "pflow-tui"
    monkeypatch.setenv(trust.ENV, str(folder))
    key = trust.load_key()
    assert key is not None and len(key) == 32
    assert stat.S_IMODE(folder.stat().st_mode) == 0o700
    assert stat.S_IMODE((folder / trust.KEY_FILE).stat().st_mode) == 0o600
    assert sorted(p.name for p in folder.iterdir()) == [trust.KEY_FILE]  # no temporary file left
    trust._keys.clear()
    assert trust.load_key() == key  # read back, not made again


def test_a_second_maker_keeps_the_first_key(tmp_path: Path) -> None:
    """Two runs making the key at once agree on one: the second link fails, it reads the first."""
    first = trust._make_key(tmp_path, tmp_path / trust.KEY_FILE)
    second = trust._make_key(tmp_path, tmp_path / trust.KEY_FILE)
    assert first is not None and second == first


def test_the_config_folder_follows_xdg_then_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(trust.ENV)
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "xdg"))
    assert trust.config_dir() == tmp_path / "xdg" / "pflow-tui"
    monkeypatch.delenv("XDG_CONFIG_HOME")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert trust.config_dir() == tmp_path / "home" / ".config" / "pflow-tui"


def test_no_key_when_none_can_be_made_and_the_trace_is_unsigned(tmp_path: Path,
                                                                monkeypatch: pytest.MonkeyPatch) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    monkeypatch.setenv(trust.ENV, str(blocker / "pflow-tui"))  # a folder inside a file: cannot be
    assert trust.load_key() is None
    run_flow(build_flow({"name": "q", "nodes": [{"id": "a", "type": "echo", "params": {}}]}), {},
             trace=tmp_path / "t.json")
    assert trust.verify(tmp_path / "t.json").state == trust.UNSIGNED
    assert read_trace(tmp_path / "t.json").status == "ok"


# --- signing and verifying ------------------------------------------------------------------

def test_own_trace_is_signed_all_through(tmp_path: Path, marker: Path, monkeypatch) -> None:
    trace = run_as(None, flow(marker), tmp_path / "t.json", monkeypatch)
    verdict = trust.verify(trace)
    assert verdict.trusted and verdict.complete and verdict.state == trust.OWN
    assert verdict.total == len(read_trace(trace).events)
    assert verdict.describe().startswith("signed by you (all")
    footer = read_trace(trace).footer
    assert set(footer["seal"]) == {"mac", "upto"}
    assert orjson.loads(trace.read_bytes())["status"] == "failed"  # still plain JSON


def test_one_byte_changed_in_an_event_is_tampered(tmp_path: Path, marker: Path, monkeypatch) -> None:
    trace = run_as(None, flow(marker), tmp_path / "t.json", monkeypatch)
    data = trace.read_bytes()
    at = data.index(b'"command":"echo hello"') + len(b'"command":"echo h')
    changed = data[:at] + b"a" + data[at + 1:]  # echo hallo
    verdict = trust.verify_bytes(changed)
    assert verdict.state == trust.TAMPERED and not verdict.trusted
    assert "changed since" in verdict.describe()
    footer_changed = data.replace(b'"status":"failed"', b'"status":"ok"', 1)
    assert trust.verify_bytes(footer_changed).state == trust.TAMPERED


def test_another_key_is_foreign_and_no_signer_is_unsigned(tmp_path: Path, foreign: Path) -> None:
    assert trust.verify(foreign).state == trust.FOREIGN
    assert "someone else" in trust.verify(foreign).describe()
    data = foreign.read_bytes()
    header = orjson.loads(data[: data.index(b"\n") - len(b',"events":[')] + b"}")
    assert trust.verify(foreign, key=b"k" * 32).state == trust.FOREIGN
    stripped = data.replace(b',"signer":"' + header["signer"].encode() + b'"', b"", 1)
    assert trust.verify_bytes(stripped).state == trust.UNSIGNED
    pretty = orjson.dumps(orjson.loads(data), option=orjson.OPT_INDENT_2)  # `jq .`: not verifiable
    assert trust.verify_bytes(pretty).state == trust.UNSIGNED


def test_sign_signs_a_hand_written_trace_with_a_key(tmp_path: Path, foreign: Path) -> None:
    key = b"s" * 32
    signed = trust.sign(foreign.read_bytes(), key)
    assert trust.verify_bytes(signed, key).complete
    assert trust.verify_bytes(signed).state == trust.FOREIGN  # not the suite's key
    cut = foreign.read_bytes()[: foreign.read_bytes().rindex(b"\n],")]
    partial = trust.verify_bytes(trust.sign(cut, key), key)
    assert partial.trusted and not partial.complete and partial.events == partial.total


def test_seals_are_written_at_every_flush_and_cover_the_bytes_before_them(tmp_path: Path) -> None:
    key = b"w" * 32
    writer = TraceWriter(tmp_path / "t.json", {"flow_name": "w", "flow": {"nodes": []}, "inputs": {}},
                         key=key)
    for i in range(1, 4):
        writer.write({"seq": i, "t": i / 10, "kind": "warning", "path": "w", "message": str(i)})
        writer.flush()  # a seal now (the flush thread does this every FLUSH_EVERY seconds)
    writer.flush()  # nothing new: no seal
    data = (tmp_path / "t.json").read_bytes()
    seals = [orjson.loads(line.rstrip(b",")) for line in data.split(b"\n") if b'"kind":"seal"' in line]
    assert [(s["seq"], s["events"], s["path"]) for s in seals] == [(1, 1, "w"), (2, 2, "w"), (3, 3, "w")]
    for s in seals:
        assert data[s["upto"]: s["upto"] + 2] == b",\n"
    verdict = trust.verify_bytes(data, key)
    assert verdict.trusted and not verdict.complete and (verdict.events, verdict.total) == (3, 3)
    assert [e["message"] for e in read_trace(tmp_path / "t.json").events] == ["1", "2", "3"]
    writer.finish("ok", outputs={}, store={}, error=None)
    assert trust.verify(tmp_path / "t.json", key).complete


def test_an_unsigned_tail_after_the_last_seal_is_not_trusted(tmp_path: Path) -> None:
    """A trace of one's own cut short, with events someone appended: trusted up to the last
    seal only, and a re-run restores nothing from what follows it."""
    key = trust.load_key()
    writer = TraceWriter(tmp_path / "t.json", {"flow_name": "f", "flow": {"nodes": []}, "inputs": {}})
    writer.write({"seq": 1, "t": 0.0, "kind": "node.start", "path": "f.a", "node": "a", "type": "shell",
                  "params": {"command": "echo ok"}})
    writer.write({"seq": 2, "t": 0.1, "kind": "node.end", "path": "f.a", "node": "a", "status": "ok",
                  "duration": 0.1, "action": "default", "outputs": {"stdout": "ok"}})
    writer.flush()
    writer._abandon()  # as kill -9: no footer
    forged = (b',\n{"seq":3,"t":0.2,"kind":"node.start","path":"f.b","node":"b","type":"shell","params":{}},'
              b'\n{"seq":4,"t":0.3,"kind":"node.end","path":"f.b","node":"b","status":"ok","duration":0.1,'
              b'"action":"default","outputs":{"stdout":"hello; touch MARKER"}}')
    with open(tmp_path / "t.json", "ab") as f:
        f.write(forged)
    verdict = trust.verify(tmp_path / "t.json", key)
    assert verdict.trusted and (verdict.events, verdict.total) == (2, 4)
    assert "up to event 2 of 4" in verdict.describe()
    assert set(RunCache.from_trace(tmp_path / "t.json", upto=verdict.upto).nodes) == {"a"}
    assert set(RunCache.from_trace(tmp_path / "t.json").nodes) == {"a", "b"}
    assert [e["seq"] for _, e in TraceStream(tmp_path / "t.json", verdict.upto).scan()] == [1, 2]


# --- readers skip seals ---------------------------------------------------------------------

SLOW = {"name": "slow", "nodes": [
    {"id": "items", "type": "shell", "batch": {"items": list(range(6)), "parallel": False},
     "params": {"command": "sleep 0.12; echo ${item}"}},
    {"id": "done", "type": "echo", "params": {"message": "done"}}],
    "edges": [{"from": "items", "to": "done"}]}


def test_every_reader_skips_the_seals(tmp_path: Path) -> None:
    spec = build_flow(SLOW)
    run_flow(spec, {}, trace=tmp_path / "signed.json")
    data = (tmp_path / "signed.json").read_bytes()
    assert data.count(b'"kind":"seal"') >= 2  # the run lasted over 0.6 s: several flushes
    trace = read_trace(tmp_path / "signed.json")
    assert [e["seq"] for e in trace.events] == list(range(1, len(trace.events) + 1))
    index = TraceIndex(tmp_path / "signed.json")
    assert len(index) == len(trace.events) and list(index) == trace.events
    assert all(e["kind"] != "seal" for e in index.summaries(0, len(index)))
    assert index.find(0, 1, "node") is not None
    # a trace cut short after a seal line: the seal is not its last event
    cut = data[: data.index(b'"kind":"seal"')]
    cut = cut[: cut.rindex(b"\n") + 1] + data[len(cut[: cut.rindex(b"\n") + 1]):].split(b"\n", 1)[0] + b"\n"
    (tmp_path / "cut.json").write_bytes(cut)
    assert all(e["kind"] != "seal" for e in read_trace(tmp_path / "cut.json").events)
    assert all(e["kind"] != "seal" for e in TraceIndex(tmp_path / "cut.json"))
    # jq-style re-formatted: the events list holds the seals, the reader drops them
    (tmp_path / "pretty.json").write_bytes(orjson.dumps(orjson.loads(data), option=orjson.OPT_INDENT_2))
    assert read_trace(tmp_path / "pretty.json").events == trace.events
    # diff and export: a signed run equals itself, and exports as many spans as an unsigned one
    assert not diff_traces(tmp_path / "signed.json", tmp_path / "pretty.json").differs
    done = export_file(tmp_path / "signed.json", "perfetto", str(tmp_path / "out.json"))
    assert b"seal" not in (tmp_path / "out.json").read_bytes()
    assert done.counts.get("item") == 6


def test_runs_list_reads_the_error_of_a_signed_footer(tmp_path: Path, marker: Path, monkeypatch) -> None:
    from pflow_tui.engine.trace.runs import read_run

    trace = run_as(None, flow(marker), tmp_path / "t.json", monkeypatch)
    record = read_run(trace)
    assert record.status == "failed" and "exit code 1" in (record.error or "")


# --- consent: rerun -------------------------------------------------------------------------

def test_rerun_of_a_foreign_trace_without_a_terminal_refuses(tmp_path: Path, foreign: Path,
                                                             marker: Path) -> None:
    done = cli("rerun", foreign, "--trace", tmp_path / "out.json", cwd=tmp_path)
    assert done.returncode == 2
    assert not marker.exists() and not (tmp_path / "out.json").exists()
    assert f"touch {marker}; exit 1" in done.stderr  # what would run
    assert "signed by someone else" in done.stderr and "--trust" in done.stderr
    assert "Traceback" not in done.stderr + done.stdout


def test_rerun_of_a_foreign_trace_with_trust_runs_it(tmp_path: Path, foreign: Path, marker: Path) -> None:
    done = cli("rerun", foreign, "--trust", "--trace", tmp_path / "out.json", cwd=tmp_path)
    assert done.returncode == 1  # node b fails again, after touching the marker
    assert marker.exists()
    assert trust.verify(tmp_path / "out.json").trusted  # the re-run's trace is this user's


def test_rerun_of_an_unsigned_trace_refuses_too(tmp_path: Path, foreign: Path, marker: Path) -> None:
    data = foreign.read_bytes()
    (tmp_path / "old.json").write_bytes(data.replace(b',"signer":"', b',"signer_was":"', 1))
    done = cli("rerun", tmp_path / "old.json", cwd=tmp_path)
    assert done.returncode == 2 and not marker.exists() and "not signed" in done.stderr


def test_a_no_on_the_terminal_runs_nothing(tmp_path: Path, foreign: Path, marker: Path) -> None:
    """With a terminal the question is asked; anything but y/yes is a no."""
    import pty

    main, child = pty.openpty()
    try:
        os.write(main, b"no\n")
        done = cli("rerun", foreign, cwd=tmp_path, stdin=child)
    finally:
        os.close(main)
        os.close(child)
    assert done.returncode == 2 and not marker.exists()
    assert "Run it? [y/N]" in done.stderr and "Nothing ran." in done.stderr


def test_restored_outputs_of_a_foreign_trace_into_my_flow_need_consent(tmp_path: Path, marker: Path,
                                                                       monkeypatch) -> None:
    """``rerun THEIRS --flow MINE``: their recorded stdout, restored, becomes my next command."""
    theirs = flow(marker, first=f"printf 'hello; touch {marker}'")
    theirs["nodes"][1]["params"]["command"] = "exit 1"
    trace = run_as(tmp_path / "someone-else", theirs, tmp_path / "theirs.json", monkeypatch)
    mine = {**theirs, "nodes": [theirs["nodes"][0],
                                {"id": "b", "type": "shell", "params": {"command": "${a.stdout}"}}]}
    (tmp_path / "mine.json").write_text(orjson.dumps(mine).decode())
    assert not marker.exists()
    done = cli("rerun", trace, "--flow", "mine.json", cwd=tmp_path)
    assert done.returncode == 2 and not marker.exists()
    assert f"stdout: hello; touch {marker}" in done.stderr  # the restored output is listed
    done = cli("rerun", trace, "--flow", "mine.json", "--trust", cwd=tmp_path)
    assert marker.exists(), done.stderr


def test_own_trace_reruns_without_asking(tmp_path: Path, marker: Path, monkeypatch) -> None:
    trace = run_as(None, flow(marker), tmp_path / "mine.json", monkeypatch)
    marker.unlink()
    done = cli("rerun", trace, cwd=tmp_path)
    assert done.returncode == 1 and marker.exists()  # b ran again (and failed again)
    assert "refused" not in done.stderr and "Run it?" not in done.stderr


def test_a_tampered_own_trace_is_treated_as_foreign(tmp_path: Path, marker: Path, monkeypatch) -> None:
    trace = run_as(None, flow(marker), tmp_path / "mine.json", monkeypatch)
    marker.unlink()
    data = trace.read_bytes()
    trace.write_bytes(data.replace(b'"stdout":"hello"', b'"stdout":"hellp"', 1))
    done = cli("rerun", trace, cwd=tmp_path)
    assert done.returncode == 2 and not marker.exists()
    assert "signed by you but changed since" in done.stderr


KILLED = {"name": "killed", "inputs": {"secs": {"type": "number", "required": False, "default": 30}},
          "nodes": [
              {"id": "a", "type": "shell", "params": {"command": "echo a"}},
              {"id": "b", "type": "shell", "params": {"command": "echo b"}},
              {"id": "c", "type": "shell", "params": {"command": "sleep ${secs}"}}],
          "edges": [{"from": "a", "to": "b"}, {"from": "b", "to": "c"}]}


def test_own_run_killed_is_trusted_up_to_its_last_seal(tmp_path: Path) -> None:
    (tmp_path / "f.json").write_text(orjson.dumps(KILLED).decode())
    trace = tmp_path / "t.json"
    proc = subprocess.Popen([*PFLOW_TUI, "run", "f.json", "--trace", str(trace)], cwd=tmp_path,
                            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 30
        while not (trace.exists() and b'"kind":"seal"' in trace.read_bytes()
                   and b'"path":"killed.c"' in trace.read_bytes()):
            assert time.monotonic() < deadline, "no seal after node c started"
            time.sleep(0.05)
        time.sleep(FLUSH_WAIT)  # c's start is sealed too
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    verdict = trust.verify(trace)
    assert verdict.trusted and not verdict.complete and verdict.events >= 7
    done = cli("rerun", trace, "secs=0", "--trace", tmp_path / "again.json", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert "refused" not in done.stderr and "restored 2 nodes" in done.stdout + done.stderr


FLUSH_WAIT = 0.5


def test_diff_export_and_runs_of_a_foreign_trace_run_nothing_and_ask_nothing(
        tmp_path: Path, foreign: Path, marker: Path) -> None:
    for args in (("diff", foreign, foreign), ("export", foreign, "-o", tmp_path / "out.json"),
                 ("runs", "--dir", tmp_path, "--plain")):
        done = cli(*args, cwd=tmp_path)
        assert done.returncode == 0, (args, done.stderr)
        assert "Run it?" not in done.stderr and "refused" not in done.stderr
    assert not marker.exists()
