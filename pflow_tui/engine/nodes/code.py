"""The ``code`` node: run a piece of Python with typed inputs, as pflow's code node does.

::

    {"id": "top", "type": "code", "params": {
        "inputs": {"rows": "${fetch.response}", "n": 3},
        "code": "rows: list\\nn: int\\nresult: list = sorted(rows)[:n]"}}

Every input must be declared in the code with a type annotation (``rows: list``), and the
code must assign an annotated ``result``. The outer type of each annotation is checked
(``list[dict]`` checks ``list``; ``int | None`` and ``Optional[int]`` accept None;
``float`` accepts int; other names, ``Any`` included, are not checked): inputs before
the code runs, ``result`` after. Outputs: ``result``, ``stdout`` and ``stderr`` (what the
code printed). A mistake in how the node is written (no annotation, a wrong type, no
``result``, a syntax error) is a handled failure: ``error``, no retry. An exception the
code raises is a failed attempt, retried like any other, with its traceback in the trace.
``timeout`` (seconds, default 30) ends a run that takes longer with ``TimeoutError``.
``requires`` lists the packages the code needs, for the reader (as in pflow: nothing
installs or checks them).

Trust: the code runs with the user's rights, like a ``shell`` node's command. The flow
file says so in the open (``"type": "code"``); nothing is imported from the flow file's
say-so otherwise. Run only flows you trust.

The type is CPU-bound: it runs in the run's process pool (all cores; a timeout or a
cancellation ends the work for good) unless the node says ``"executor": "thread"``
(cheaper to start; a timed-out or cancelled run keeps going in the background, as in
pflow, its output discarded).
"""

from __future__ import annotations

import ast
import contextlib
import hashlib
import io
import linecache
import signal
import sys
import threading
import time
import typing
from collections.abc import Iterator, Mapping
from typing import Any

from .base import NodeCancelled, NodeType, Param, RunContext

DEFAULT_TIMEOUT = 30.0
_POLL = 0.05  # seconds between looks at the cancel flag (thread mode)
_TYPES: dict[str, tuple[type, ...]] = {
    "int": (int,), "float": (int, float), "str": (str,), "bool": (bool,), "list": (list,),
    "dict": (dict,), "set": (set,), "tuple": (tuple,), "bytes": (bytes,), "None": (type(None),),
}


# --- annotations ---------------------------------------------------------------------------------

def annotations(tree: ast.Module) -> dict[str, str]:
    """Module-level annotated names (``x: T`` and ``x: T = ...``) -> the annotation's text.

    Compound statements (if, for, with, try) are looked into; functions and classes,
    which have scopes of their own, are not.
    """
    found: dict[str, str] = {}
    stack: list[ast.AST] = list(reversed(tree.body))
    while stack:
        node = stack.pop()
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef, ast.Lambda)):
            continue
        if isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name):
            found.setdefault(node.target.id, ast.unparse(node.annotation))
        elif isinstance(node, ast.stmt):
            stack.extend(reversed(list(ast.iter_child_nodes(node))))
    return found


def outer_types(annotation: str) -> tuple[type, ...] | None:
    """The types an annotation's outer type accepts, or None when it is not checked."""
    try:
        expr = ast.parse(annotation, mode="eval").body
    except SyntaxError:
        return None
    return _outer(expr)


def _outer(expr: ast.expr) -> tuple[type, ...] | None:
    if isinstance(expr, ast.Constant):
        if expr.value is None:
            return (type(None),)
        return outer_types(expr.value) if isinstance(expr.value, str) else None  # "list": a forward ref
    if isinstance(expr, ast.BinOp) and isinstance(expr.op, ast.BitOr):  # int | None
        left, right = _outer(expr.left), _outer(expr.right)
        return left + right if left is not None and right is not None else None
    if isinstance(expr, ast.Subscript):
        name = _name(expr.value)
        if name == "Optional":
            inner = _outer(expr.slice)
            return (*inner, type(None)) if inner is not None else None
        return _TYPES.get(name) if name else None  # list[dict] -> list
    name = _name(expr)
    return _TYPES.get(name) if name else None


def _name(expr: ast.expr) -> str | None:
    if isinstance(expr, ast.Name):
        return expr.id
    if isinstance(expr, ast.Attribute) and isinstance(expr.value, ast.Name) and expr.value.id == "typing":
        return expr.attr
    return None


def _type_name(value: Any) -> str:
    return "None" if value is None else type(value).__name__


def _mismatch(name: str, annotation: str, value: Any) -> str | None:
    expected = outer_types(annotation)
    if expected is None or isinstance(value, expected):
        return None
    return f"{name} is declared as {annotation} but is {_type_name(value)}"


# --- static check (pflow-tui validate) -------------------------------------------------------------

def check_code(params: Mapping[str, Any]) -> Iterator[tuple[str, str, str]]:
    """Mistakes visible in the params as written: syntax, annotations, constant input types."""
    code = params.get("code")
    if not isinstance(code, str) or "${" in code:
        return
    if not code.strip():
        yield "code", "the code is empty", 'write Python that sets result, e.g. "result: int = 1 + 1"'
        return
    try:
        tree = ast.parse(code)
    except SyntaxError as exc:
        yield "code", f"Python syntax error at line {exc.lineno}: {exc.msg}", _line_hint(code, exc.lineno)
        return
    declared = annotations(tree)
    if "result" not in declared:
        yield ("code", "the code never declares result with a type annotation",
               'assign it with its type, e.g. "result: dict = {...}" (or "result: Any = ...")')
    inputs = params.get("inputs")
    if not isinstance(inputs, dict):
        return
    for name, value in inputs.items():
        if not name.isidentifier():
            yield (f"inputs.{name}", f"'{name}' is not a Python name",
                   "name inputs like variables: letters, digits and _")
        elif name not in declared:
            yield (f"inputs.{name}", f"input '{name}' has no type annotation in the code",
                   f"declare it at the top of the code, e.g. \"{name}: {_guess(value)}\"")
        elif not (isinstance(value, str) and "${" in value) and (
                problem := _mismatch(f"input '{name}'", declared[name], value)):
            yield (f"inputs.{name}", problem,
                   f"declare \"{name}: {_type_name(value)}\" or pass a value of that type")


def _guess(value: Any) -> str:
    return "Any" if isinstance(value, str) and "${" in value else _type_name(value)


def _line_hint(code: str, lineno: int | None) -> str:
    lines = code.splitlines()
    if lineno and 0 < lineno <= len(lines):
        return f"line {lineno} is: {lines[lineno - 1].strip()[:80]}"
    return "check the code for an unclosed bracket or quote"


# --- output capture ------------------------------------------------------------------------------

class _Router(io.TextIOBase):
    """Stands in for sys.stdout / sys.stderr while code runs: each thread that captures
    writes into its own buffers, every other thread into the stream that was there."""

    def __init__(self, fallback: Any, which: int) -> None:
        self.fallback = fallback
        self.which = which

    def _target(self) -> Any:
        buffers = _captures.get(threading.get_ident())
        return self.fallback if buffers is None else buffers[self.which]

    def write(self, text: str) -> int:
        return self._target().write(text)

    def flush(self) -> None:
        self._target().flush()

    def writable(self) -> bool:
        return True

    def __getattr__(self, name: str) -> Any:
        return getattr(self.fallback, name)


_captures: dict[int, tuple[io.StringIO, io.StringIO]] = {}
_capture_lock = threading.Lock()


@contextlib.contextmanager
def _captured() -> Iterator[tuple[io.StringIO, io.StringIO]]:
    """This thread's print output, into fresh buffers (other threads are not affected)."""
    buffers = (io.StringIO(), io.StringIO())
    with _capture_lock:  # (again) when something else replaced the streams meanwhile
        if not isinstance(sys.stdout, _Router):
            sys.stdout = _Router(sys.stdout, 0)
        if not isinstance(sys.stderr, _Router):
            sys.stderr = _Router(sys.stderr, 1)
        _captures[threading.get_ident()] = buffers
    try:
        yield buffers
    finally:
        with _capture_lock:
            _captures.pop(threading.get_ident(), None)
            if not _captures:
                if isinstance(sys.stdout, _Router):
                    sys.stdout = sys.stdout.fallback
                if isinstance(sys.stderr, _Router):
                    sys.stderr = sys.stderr.fallback


# --- running -------------------------------------------------------------------------------------

class _Deadline(BaseException):
    """Raised in the code by the timer (a BaseException: ``except Exception`` in the code
    must not swallow it)."""


def _execute(compiled: Any, namespace: dict[str, Any]) -> tuple[str, str]:
    with _captured() as (out, err):
        exec(compiled, namespace)
    return out.getvalue(), err.getvalue()


def _run_timed(compiled: Any, namespace: dict[str, Any], timeout: float,
               cancel: threading.Event | None) -> tuple[str, str]:
    """Run the code; TimeoutError after ``timeout`` seconds.

    On a process's main thread (a worker of the process pool) a timer signal stops the
    code where it is. On any other thread the code runs in a thread of its own that is
    left behind at the timeout or a cancellation (Python cannot stop a thread), as pflow does.
    """
    if threading.current_thread() is threading.main_thread() and hasattr(signal, "setitimer"):
        def expire(signum: int, frame: Any) -> None:
            raise _Deadline

        previous = signal.signal(signal.SIGALRM, expire)
        signal.setitimer(signal.ITIMER_REAL, timeout)
        try:
            return _execute(compiled, namespace)
        except _Deadline:
            raise TimeoutError(f"Python code execution timed out after {timeout:g} seconds") from None
        finally:
            signal.setitimer(signal.ITIMER_REAL, 0)
            signal.signal(signal.SIGALRM, previous)
    outcome: list[Any] = []

    def target() -> None:
        try:
            outcome.append(_execute(compiled, namespace))
        except BaseException as exc:
            outcome.append(exc)

    worker = threading.Thread(target=target, name="code-node", daemon=True)
    worker.start()
    deadline = time.monotonic() + timeout
    while worker.is_alive() and (left := deadline - time.monotonic()) > 0:
        if cancel is not None and cancel.is_set():
            raise NodeCancelled("code node cancelled")
        worker.join(min(_POLL, left))
    if not outcome:
        raise TimeoutError(f"Python code execution timed out after {timeout:g} seconds")
    if isinstance(outcome[0], BaseException):
        raise outcome[0]
    return outcome[0]


def run_code(params: dict[str, Any], ctx: RunContext) -> dict[str, Any]:
    """Check the inputs against the code's annotations, run it, check ``result``."""
    code = params.get("code")
    if not isinstance(code, str) or not code.strip():
        return {"error": "Missing required 'code' parameter: Python that sets an annotated result, "
                         "e.g. \"data: list\\nresult: list = data[:10]\""}
    timeout = params.get("timeout", DEFAULT_TIMEOUT)
    if timeout is None:
        timeout = DEFAULT_TIMEOUT
    if isinstance(timeout, bool) or not isinstance(timeout, (int, float)) or timeout <= 0:
        return {"error": f"Timeout must be a positive number of seconds, got {timeout!r}"}
    inputs = params.get("inputs") or {}
    if not isinstance(inputs, dict):
        return {"error": f"'inputs' must be an object {{name: value}}, got {_type_name(inputs)}"}
    digest = hashlib.sha1(code.encode("utf-8", "surrogatepass")).hexdigest()[:8]
    filename = f"<code {digest}>"
    try:
        tree = ast.parse(code, filename)
    except SyntaxError as exc:
        return {"error": f"Python syntax error at line {exc.lineno}: {exc.msg} "
                         f"({_line_hint(code, exc.lineno)})"}
    declared = annotations(tree)
    missing = [name for name in inputs if name not in declared]
    if missing:
        hints = ", ".join(f"{name}: <type>" for name in missing)
        return {"error": f"Input(s) missing type annotation in code: {', '.join(missing)}; "
                         f"declare them at the top of the code ({hints})"}
    if "result" not in declared:
        return {"error": "Code must declare result type annotation (result: <type> = ...)"}
    for name, value in inputs.items():
        problem = _mismatch(f"Input '{name}'", declared[name], value)
        if problem:
            return {"error": f"{problem}: change the annotation to {name}: {_type_name(value)}, "
                             "convert the value, or declare it as Any"}
    namespace: dict[str, Any] = {"__builtins__": __builtins__, "__name__": "__pflow_code__",
                                 "typing": typing, "Any": typing.Any, "Optional": typing.Optional,
                                 **inputs}
    try:
        stdout, stderr = _run_timed(compile(tree, filename, "exec"), namespace, float(timeout),
                                    ctx.cancel)
    except Exception:
        # the traceback shows the code's own lines
        linecache.cache[filename] = (len(code), None, code.splitlines(keepends=True), filename)
        raise
    if "result" not in namespace:
        return {"stdout": stdout, "stderr": stderr,
                "error": "Code must set 'result' variable. Add: result = <your_value>"}
    result = namespace["result"]
    problem = _mismatch("Result", declared["result"], result)
    if problem:
        return {"stdout": stdout, "stderr": stderr,
                "error": f"{problem}: change the annotation to result: {_type_name(result)} "
                         "or convert the value"}
    return {"result": result, "stdout": stdout, "stderr": stderr}


CODE = NodeType(
    name="code",
    run=run_code,
    params=(
        Param("code", "str", required=True,
              description="Python; inputs and result declared with type annotations"),
        Param("inputs", "dict", default=None, description="variable name -> value (or template)"),
        Param("timeout", "float", default=DEFAULT_TIMEOUT, description="seconds before it is stopped"),
        Param("requires", "list", description="packages the code needs (for the reader)"),
    ),
    outputs=("result", "stdout", "stderr"),
    output_types=(("result", "any"), ("stdout", "str"), ("stderr", "str"), ("error", "str")),
    description="Run Python with typed inputs; writes result, stdout, stderr (runs in processes).",
    blocking=True,
    cpu_bound=True,
    check=check_code,
)
