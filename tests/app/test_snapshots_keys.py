"""Interaction snapshots for keys: the help screen, and the event filter typed from the DAG.

Keys are pressed as a terminal sends them (``?``, ``/``), on recorded runs of the samples."""

from __future__ import annotations

from test_snapshots import app_for, settle
from textual.pilot import Pilot

from pflow_tui.app.screens.confirm import Confirm


class TestHelp:
    def test_help_opened_with_question_mark(self, snap_compare):
        assert snap_compare(app_for("parallel_batch_failures"), press=["?"], terminal_size=(120, 36),
                            run_before=settle)


class TestConfirm:
    def test_the_question_before_quitting_a_live_run(self, snap_compare):
        async def ask(pilot: Pilot) -> None:
            await settle(pilot)
            pilot.app.push_screen(Confirm("Quit while the run is going?",
                                          "It ends as interrupted (exit code 130); its trace is kept."))
            await settle(pilot)

        assert snap_compare(app_for("sequential_batch"), terminal_size=(100, 30), run_before=ask)


class TestFilter:
    def test_slash_from_the_dag_then_status_error(self, snap_compare):
        assert snap_compare(app_for("parallel_batch_failures"), press=[*"/status:error"],
                            terminal_size=(120, 36), run_before=settle)

    def test_an_unknown_kind_is_named_with_a_did_you_mean(self, snap_compare):
        assert snap_compare(app_for("parallel_batch_failures"), press=[*"/kind:itm.end"],
                            terminal_size=(120, 36), run_before=settle)

    def test_enter_goes_back_to_the_filtered_events(self, snap_compare):
        assert snap_compare(app_for("parallel_batch_failures"),
                            press=[*"/kind:item.end status:error", "enter"], terminal_size=(120, 36),
                            run_before=settle)
