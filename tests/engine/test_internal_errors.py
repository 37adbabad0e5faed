"""An exception nothing handled (a bug): every command prints a short message that says
where the details are, writes them to a log file (0600), and exits 70; --debug raises."""

from __future__ import annotations

from pathlib import Path

import pytest

from pflow_tui import cli
from pflow_tui.crash import EXIT_INTERNAL, log_dir, message

CORPUS = Path(__file__).resolve().parents[1] / "bad_traces"
TRACE = str(CORPUS / "seq_twice_the_same.json")


def boom(*args, **kwargs):
    raise KeyError("the [red]secret[/red] key\nsecond line")


@pytest.mark.parametrize("command,args", [("diff.command", ["diff", TRACE, TRACE]),
                                          ("export.command", ["export", TRACE]),
                                          ("rerun.command", ["rerun", TRACE]),
                                          ("replay.command", ["replay", TRACE]),
                                          ("validate.command", ["validate", "x.json"]),
                                          ("run.command", ["run", "x.json"]),
                                          ("runs.command", ["runs"]), ("runs.no_arguments", [])])
def test_an_internal_error_exits_70_with_a_log(command: str, args: list[str], tmp_path: Path,
                                               monkeypatch: pytest.MonkeyPatch,
                                               capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "state"))
    monkeypatch.setattr(f"pflow_tui.cli.{command}", boom)
    assert cli.main(args) == EXIT_INTERNAL
    err = capsys.readouterr().err
    flat = " ".join(err.split())
    logs = list(log_dir().glob("crash-*.log"))
    assert log_dir() == tmp_path / "state" / "pflow-tui" / "logs" and len(logs) == 1
    assert flat.startswith("error: internal error (KeyError: ") and "[red]secret[/red]" in flat  # literal
    assert logs[0].name in flat.replace(" ", "") and "Traceback" not in err
    text = logs[0].read_text()
    assert "Traceback (most recent call last)" in text and "KeyError" in text and "command:" in text
    assert logs[0].stat().st_mode & 0o777 == 0o600 and log_dir().stat().st_mode & 0o777 == 0o700


def test_debug_shows_the_traceback(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("pflow_tui.cli.diff.command", boom)
    with pytest.raises(KeyError):
        cli.main(["diff", TRACE, TRACE, "--debug"])


def test_the_message_without_a_log_and_for_memory(tmp_path: Path) -> None:
    assert "no log file could be written" in message(RuntimeError("x"), None)
    text = message(MemoryError(), tmp_path / "c.log")
    assert text.startswith("out of memory (MemoryError)") and str(tmp_path / "c.log") in text
    long = message(ValueError("y" * 1000), None)
    assert "y" * 199 + "…" in long and "y" * 200 not in long


def test_a_log_goes_to_the_temporary_folder_when_the_state_folder_cannot_be_written(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    blocked = tmp_path / "file"
    blocked.write_text("")
    monkeypatch.setenv("XDG_STATE_HOME", str(blocked))  # a file: no folder can be made under it
    monkeypatch.setenv("TMPDIR", str(tmp_path / "tmp"))
    (tmp_path / "tmp").mkdir()
    import tempfile

    monkeypatch.setattr(tempfile, "tempdir", None)
    monkeypatch.setattr("pflow_tui.cli.diff.command", boom)
    assert cli.main(["diff", TRACE, TRACE]) == EXIT_INTERNAL
    logs = list((tmp_path / "tmp").glob("pflow-tui-*/crash-*.log"))
    assert len(logs) == 1 and logs[0].name in capsys.readouterr().err.replace("\n", "")
