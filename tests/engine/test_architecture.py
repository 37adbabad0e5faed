"""The architecture holds statically: the import-linter contracts of pyproject.toml, every
engine module importable on its own, and no import cycle (grimp's import graph)."""

from __future__ import annotations

import importlib
import pkgutil
import shutil
import subprocess
import sys
from pathlib import Path

import grimp
import pytest

import pflow_tui.engine

ROOT = Path(__file__).resolve().parents[2]


def test_the_import_contracts_hold() -> None:
    """``lint-imports`` with the contracts of pyproject.toml (the engine imports no Textual,
    Rich, app, cli or console; the view model, runner and DAG layout no Textual)."""
    exe = shutil.which("lint-imports", path=str(Path(sys.executable).parent)) or shutil.which("lint-imports")
    assert exe, "lint-imports not found: install the test extra (pip install -e '.[test]')"
    out = subprocess.run([exe, "--no-cache", "--config", str(ROOT / "pyproject.toml")], cwd=ROOT,
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stdout + out.stderr
    assert "0 broken" in out.stdout


def engine_modules() -> list[str]:
    return sorted(m.name for m in pkgutil.walk_packages(pflow_tui.engine.__path__, "pflow_tui.engine."))


def test_every_engine_module_imports() -> None:
    names = engine_modules()
    assert {"pflow_tui.engine.ir.load", "pflow_tui.engine.python.pytrace",
            "pflow_tui.engine.paths"} <= set(names)
    for name in names:
        importlib.import_module(name)


def test_the_engine_modules_import_alone_without_textual_or_rich() -> None:
    """Fresh interpreters import the engine (the first module of each subpackage alone, then
    all): nothing fails for want of a module loaded before, neither Textual nor Rich comes along."""
    probe = ("import importlib, sys\n"
             "for name in sys.argv[1:]:\n"
             "    importlib.import_module(name)\n"
             "print(','.join(sorted(m for m in sys.modules if m.split('.')[0] in ('textual', 'rich'))))\n")
    # one interpreter per subpackage's first module and one for the rest (a few seconds in all)
    names = engine_modules()
    firsts = {n.rsplit(".", 1)[0]: n for n in reversed(names)}
    for group in [*([n] for n in sorted(firsts.values())), names]:
        out = subprocess.run([sys.executable, "-c", probe, *group], capture_output=True, text=True,
                             timeout=120)
        assert out.returncode == 0, out.stderr[-2000:]
        assert out.stdout.strip() == "", f"{group[0]}: loads {out.stdout.strip()}"


def import_cycles(package: str) -> list[list[str]]:
    """The strongly connected components (more than one module) of the package's import
    graph: each holds at least one cycle."""
    graph = grimp.build_graph(package, cache_dir=None)  # no .grimp_cache folder written
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []
    for root in sorted(graph.modules):  # Tarjan, iterative: no recursion limit to mind
        if root in index:
            continue
        work = [(root, iter(sorted(graph.find_modules_directly_imported_by(root))))]
        index[root] = low[root] = len(index)
        stack.append(root)
        on_stack.add(root)
        while work:
            v, edges = work[-1]
            w = next(edges, None)
            if w is not None:
                if w not in index:
                    index[w] = low[w] = len(index)
                    stack.append(w)
                    on_stack.add(w)
                    work.append((w, iter(sorted(graph.find_modules_directly_imported_by(w)))))
                elif w in on_stack:
                    low[v] = min(low[v], index[w])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[v])
            if low[v] == index[v]:
                component = []
                while True:
                    w = stack.pop()
                    on_stack.discard(w)
                    component.append(w)
                    if w == v:
                        break
                if len(component) > 1:
                    found.append(sorted(component))
    return found


def test_cycle_finder_finds_a_cycle(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    pkg = tmp_path / "cyc"
    pkg.mkdir()
    (pkg / "__init__.py").write_text("")
    (pkg / "a.py").write_text("from . import b\n")
    (pkg / "b.py").write_text("def f():\n    from . import a\n")  # inside a function: still a cycle
    (pkg / "c.py").write_text("from . import a\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    assert import_cycles("cyc") == [["cyc.a", "cyc.b"]]


#: the packages whose cycles are gone on every branch (ir, python, nodes, paths, plugins)
CYCLE_FREE = ("pflow_tui.engine.ir", "pflow_tui.engine.python", "pflow_tui.engine.nodes",
              "pflow_tui.engine.paths", "pflow_tui.engine.plugins", "pflow_tui.engine.registry")


def test_no_import_cycle_through_the_ir_python_and_node_packages() -> None:
    touched = [c for c in import_cycles("pflow_tui")
               if any(m == p or m.startswith(p + ".") for m in c for p in CYCLE_FREE)]
    assert touched == []


def test_no_import_cycle_in_pflow_tui() -> None:
    assert import_cycles("pflow_tui") == []
