"""The engine is a library: importing it (or the headless CLI) never loads Textual or Rich."""

from __future__ import annotations

import subprocess
import sys

import pytest

PROBE = """
import sys
import {modules}
bad = sorted(m for m in sys.modules if m.split(".")[0] in {banned!r})
print(",".join(bad))
"""


@pytest.mark.parametrize("modules, banned", [
    ("pflow_tui.engine.run.executor, pflow_tui.engine.trace.writer, pflow_tui.engine.registry",
     ("textual", "rich")),
    ("pflow_tui.app.model, pflow_tui.app.graph, pflow_tui.app.item_table, pflow_tui.app.status, "
     "pflow_tui.app.timeline_geometry, pflow_tui.app.worker_groups, pflow_tui.app.event_filter, "
     "pflow_tui.app.dag_layout, "
     "pflow_tui.app.runner", ("textual", "rich")),
    ("pflow_tui.cli", ("textual", "rich")),
])
def test_import_does_not_load(modules, banned):
    out = subprocess.run([sys.executable, "-c", PROBE.format(modules=modules, banned=set(banned))],
                         capture_output=True, text=True, check=True)
    assert out.stdout.strip() == ""
