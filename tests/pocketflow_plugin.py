"""A pytest plugin that runs every test inside ``pflow_tui.trace(...)``.

Used by tests/engine/test_pocketflow_suite.py to run PocketFlow's own test suite with every
flow traced: ``python -m pytest -p pocketflow_plugin <their tests>`` with this folder on
PYTHONPATH and PFLOW_TUI_TRACE_DIR naming where the traces go (one file per test, more
beside it when a test runs several flows).
"""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest

import pflow_tui


@pytest.fixture(autouse=True)
def _traced(request: pytest.FixtureRequest):
    folder = Path(os.environ.get("PFLOW_TUI_TRACE_DIR", ".pflow-tui/suite-traces"))
    name = re.sub(r"[^A-Za-z0-9_.-]+", "_", request.node.nodeid)
    with pflow_tui.trace(folder / f"{name}.json"):
        yield
