"""Retention: the trace folder keeps the newest ``keep`` runs (docs/configuration.md).
After each run the oldest beyond that are removed; ``pflow-tui runs --prune`` removes them
now and says which."""

from __future__ import annotations

import sys
from pathlib import Path

from ..engine.trace.runs import RunRecord, prune_runs
from ..engine.trace.writer import trace_dir
from ..settings import Settings
from ..text import plural


def prune_after_run(settings: Settings, *, verbose: bool = False) -> list[RunRecord]:
    """Prune the trace folder to ``keep`` runs (``verbose``: say how many went)."""
    removed = prune_runs(trace_dir(), settings["keep"])
    if removed and verbose:
        sys.stderr.write(f"pruned {plural(len(removed), 'old run')} (keep = {settings['keep']})\n")
    return removed


def prune_now(folder: Path, settings: Settings) -> int:
    """``runs --prune``: remove the runs beyond ``keep`` and list them on stdout; 0."""
    from rich.console import Console
    from rich.text import Text

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
