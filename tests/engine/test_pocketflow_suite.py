"""PocketFlow's own test suite passes, unchanged, with every flow it runs traced.

The suite ships in PocketFlow's source distribution on PyPI: the test downloads the sdist
of the installed version (pip), runs its tests/ with tests/pocketflow_plugin.py wrapping
every test in ``pflow_tui.trace(...)``, and checks that every trace it wrote is valid.
Without access to the package index it is skipped.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tarfile
from importlib.metadata import version
from pathlib import Path

import jsonschema
import orjson
import pytest

from pflow_tui.engine.trace.writer import trace_schema

TESTS = Path(__file__).parents[1]


@pytest.fixture(scope="module")
def suite(tmp_path_factory: pytest.TempPathFactory) -> Path:
    where = tmp_path_factory.mktemp("pocketflow-sdist")
    wanted = f"pocketflow=={version('pocketflow')}"
    got = subprocess.run([sys.executable, "-m", "pip", "download", "--quiet", "--no-deps",
                          "--no-binary", ":all:", wanted, "-d", str(where)],
                         capture_output=True, text=True, timeout=300)
    archives = list(where.glob("pocketflow-*.tar.gz"))
    if got.returncode != 0 or not archives:
        pytest.skip(f"cannot download PocketFlow's sdist ({wanted}): {got.stderr.strip()[-300:]}")
    with tarfile.open(archives[0]) as tar:
        if hasattr(tarfile, "data_filter"):  # Python 3.11.4+: no links or paths out of ``where``
            tar.extractall(where, filter="data")
        else:
            tar.extractall(where)
    root = next(where.glob("pocketflow-*/tests")).parent
    return root


@pytest.mark.slow
def test_pocketflows_suite_passes_traced(suite: Path, tmp_path: Path) -> None:
    traces = tmp_path / "traces"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(TESTS), os.environ.get("PYTHONPATH", "")]),
           "PFLOW_TUI_TRACE_DIR": str(traces)}
    done = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "pocketflow_plugin",
                           "-p", "no:cacheprovider", "tests"], cwd=suite, env=env,
                          capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-2000:]
    assert " passed" in done.stdout and "failed" not in done.stdout
    validator = jsonschema.Draft202012Validator(trace_schema())
    files = sorted(traces.glob("*.json"))
    assert len(files) >= 40  # nearly every test runs a flow
    kinds: set[str] = set()
    for path in files:
        doc = orjson.loads(path.read_bytes())
        errors = [e.message for e in validator.iter_errors(doc)]
        assert not errors, f"{path.name}: {errors[:3]}"
        kinds.update(e["kind"] for e in doc["events"])
    assert {"node.start", "item.start", "attempt.end", "edge", "store.write", "run.end"} <= kinds
