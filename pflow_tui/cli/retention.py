"""Retention: the trace folder keeps the newest ``keep`` runs (docs/configuration.md).
After each run the oldest beyond that are removed; ``pflow-tui runs --prune`` removes them
now and says which."""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from ..engine.trace.writer import trace_dir
from ..settings import Settings
from ..text import plural

if TYPE_CHECKING:
    from ..engine.trace.runs import RunRecord


def prune_after_run(settings: Settings, *, verbose: bool = False) -> list[RunRecord]:
    """Prune the trace folder to ``keep`` runs (``verbose``: say how many went)."""
    folder, keep = trace_dir(), settings["keep"]
    if keep <= 0 or _at_most(folder, keep):
        return []  # (the usual case, told by names alone: the list of runs is not imported)
    from ..engine.trace.runs import prune_runs

    removed = prune_runs(folder, keep)
    if removed and verbose:
        sys.stderr.write(f"pruned {plural(len(removed), 'old run')} (keep = {settings['keep']})\n")
    return removed


def _at_most(folder: Path, keep: int) -> bool:
    """Whether ``folder`` holds at most ``keep`` ``*.json`` files (then no run is pruned)."""
    try:
        with os.scandir(folder) as entries:
            return sum(e.name.endswith(".json") for e in entries) <= keep
    except OSError:
        return True


def prune_now(folder: Path, settings: Settings) -> int:
    """``runs --prune``: remove the runs beyond ``keep`` and list them on stdout; 0."""
    from rich.console import Console
    from rich.text import Text

    from ..engine.trace.runs import prune_runs
    from ..text import literal

    keep = settings.values["keep"]
    console = Console(highlight=False)
    where = "" if keep.source == "default" else f", {keep.source}"
    if keep.value <= 0:
        console.print(Text(f"keep = 0{where}: every run is kept, nothing removed", "dim"))
        return 0
    removed = prune_runs(folder, keep.value)
    for record in removed:
        console.print(Text.assemble(("removed ", "dim"), literal(str(record.path))))
    console.print(Text(f"{plural(len(removed), 'run')} removed from {literal(str(folder))}/ "
                       f"(keep = {keep.value}{where})", "dim"))
    return 0
