#!/usr/bin/env python3
"""Record the golden results of tests/compat/flows on the real pflow.

The goldens in tests/compat/goldens/ are what JSON-era pflow (spinje/pflow at commit
fed939d7) does with each flow of the corpus: exit status, final shared store (each node's
namespace), files written. ``tests/compat/test_goldens.py`` runs pflow-tui on the same
flows and compares; CI needs no pflow. Re-record after adding a flow or changing a case.

Build pflow once, in a venv of its own (not the project's)::

    # the mirror of spinje/pflow lacks one image blob, hence the exclude
    git --git-dir=PFLOW.git archive fed939d7 -- . ':(exclude)docs/logo' | tar -x -C /tmp/pflow-src
    python3 -m venv /tmp/pflow-venv
    /tmp/pflow-venv/bin/pip install -e /tmp/pflow-src 'mcp[cli]<2'

Then, from the repository root::

    python scripts/record_pflow_goldens.py --pflow-python /tmp/pflow-venv/bin/python [NAME ...]

Without names every flow is recorded. Each run is pflow's own CLI,
``pflow --output-format json flow.json k=v ...`` with ``PFLOW_INCLUDE_TEST_NODES=true``
and a scratch ``HOME``, in a fresh directory laid out by ``tests/compat/compat_cases.py``; a
small hook around pflow's ``WorkflowExecutorService._initialize_shared_store`` keeps the
top-level shared store and writes it as JSON when the process exits (pflow's JSON output
shows only the last node's result). ``--show NAME`` prints pflow's stdout/stderr too.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests" / "compat"))

import compat_cases as cases  # noqa: E402

DRIVER = r"""
import atexit, json, os, sys
from pflow.execution import executor_service as es
kept = []
original = es.WorkflowExecutorService._initialize_shared_store
def keep(self, *args, **kwargs):
    store = original(self, *args, **kwargs)
    if not kept:
        kept.append(store)
    return store
es.WorkflowExecutorService._initialize_shared_store = keep
def default(value):
    if isinstance(value, BaseException):
        return {"type": type(value).__name__, "message": str(value)}
    return repr(value)
def dump():
    with open(os.environ["COMPAT_STORE_DUMP"], "w") as f:
        json.dump(kept[0] if kept else {}, f, default=default)
atexit.register(dump)
from pflow.cli import cli_main
sys.argv = ["pflow", *sys.argv[1:]]
cli_main()
"""


def record(name: str, python: str, show: bool = False) -> dict:
    with tempfile.TemporaryDirectory(prefix="compat-") as tmp, tempfile.TemporaryDirectory() as home:
        workdir = Path(tmp) / "run"
        workdir.mkdir()
        opts = cases.prepare(name, workdir)
        if "pflow_settings" in opts:  # e.g. allow the git nodes, which pflow denies by default
            (Path(home) / ".pflow").mkdir()
            (Path(home) / ".pflow" / "settings.json").write_text(json.dumps(opts["pflow_settings"]))
        dump = Path(tmp) / "store.json"
        env = {**os.environ, **cases.GIT_ENV, "PFLOW_INCLUDE_TEST_NODES": "true", "HOME": home,
               "COMPAT_STORE_DUMP": str(dump)}
        if opts.get("mcp"):  # the tiny MCP server, listed into pflow's registry
            cases.write_mcp_config(Path(home), python)
            pflow = str(Path(python).with_name("pflow"))
            subprocess.run([pflow, "mcp", "sync", "tiny"], env=env, check=True, capture_output=True,
                           timeout=120)
        with cases.http_server() if opts.get("http") else contextlib.nullcontext() as base:
            proc = subprocess.run(
                [python, "-c", DRIVER, "--output-format", "json", "flow.json", *cases.args_of(opts, base)],
                cwd=workdir, env=env, input=opts.get("stdin"), text=True, capture_output=True, timeout=120)
            if show:
                print(proc.stdout, proc.stderr, sep="\n----\n")
            store = json.loads(dump.read_text()) if dump.exists() else {}
            return cases.result(proc.returncode, store, workdir)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("names", nargs="*", help="cases to record (default: all)")
    ap.add_argument("--pflow-python", default="/tmp/pflow-venv/bin/python",
                    help="the python of the venv pflow is installed in")
    ap.add_argument("--show", action="store_true", help="print pflow's output")
    opts = ap.parse_args()
    cases.GOLDENS.mkdir(exist_ok=True)
    for name in opts.names or cases.names():
        got = record(name, opts.pflow_python, opts.show)
        (cases.GOLDENS / f"{name}.json").write_text(json.dumps(got, indent=2, sort_keys=True) + "\n")
        print(f"{name}: exit {got['exit']}, {len(got['store'])} store keys, {len(got['files'])} files")
    return 0


if __name__ == "__main__":
    sys.exit(main())
