"""Checking trace events as they are read: what every reader of a trace file trusts.

A trace may come from elsewhere (a CI artifact, a colleague's failed run) and may have been
edited, cut or crafted. Every reader (replay's index, ``read_trace``, diff, export, rerun)
passes each event it decodes through :func:`check_event`: an event that is not what
``trace.schema.json`` says (a number, ``{}``, a string, ``null``, a field of the wrong type,
a ``seq`` of 10^30, a negative batch ``count``, nesting deeper than orjson reads) is
skipped and counted, and the reader says "N malformed events skipped".

The check is hand-written (a dict lookup and a few ``isinstance`` per field): per kind,
the fields readers cannot do without (``seq``, ``t``, ``kind``, ``path`` of that kind's
form; a node's ``node`` and ``type``, an end's ``status``, an item's ``index`` ...) and
the types of every field the schema names when it is there, plus bounds the readers rely
on (``seq`` and indexes fit the app's arrays, times are finite and >= 0). Fields readers
cope without (``duration``, ``attempts``, an item's ``item``) and the schema's conditional
requirements (``outputs`` when a node ended ok) are not required. Fields the schema does
not name are left alone.

Kinds in :data:`IGNORED_KINDS` are skipped silently (not counted): a ``seal`` line
(``{"kind":"seal", ..., "mac": hex}``) signs what precedes it and is no event of the run.
Any other kind this version does not know is skipped and counted.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable
from typing import Any

from ..paths import ITERATION

#: Line kinds every reader skips silently: they are no event of the run (one place for all).
IGNORED_KINDS: frozenset[str] = frozenset({"seal"})

#: Where a reader's note points at: the place that says what malformed events are.
MALFORMED_NOTE = "see docs/security.md, 'Limits and malformed files'"

MAX_SEQ = 2**53  # larger numbers are no event's seq (the app keeps seqs in 64-bit arrays)
MAX_INDEX = 2**31 - 1  # item and branch indexes (the app keeps them in 32-bit arrays)
MAX_ATTEMPTS = 65_535  # attempts (the app keeps them in 16-bit arrays)

_PATH = re.compile(r"[^.#\s]+(\.[^.#\s]+(#[1-9][0-9]*)?)*")
_RUN_PATH = re.compile(r"[^.#\s]+")
_NODE_PATH = re.compile(r"[^.#\s]+(\.[^.#\s]+(#[1-9][0-9]*)?)+")
_ITEM_PATH = re.compile(r"[^.#\s]+(\.[^.#\s]+(#[1-9][0-9]*)?)*\.iteration_(0|[1-9][0-9]*)")

END_STATUS = frozenset({"ok", "error", "skipped", "cancelled"})


def _str(v: Any) -> bool:
    return v.__class__ is str


def _int(v: Any, low: int = 0, high: int = MAX_SEQ) -> bool:
    return v.__class__ is int and low <= v <= high


def _num(v: Any) -> bool:
    """A finite number >= 0 (seconds)."""
    c = v.__class__
    if c is float:
        return v >= 0.0 and v != math.inf
    return c is int and 0 <= v <= MAX_SEQ


def _dict(v: Any) -> bool:
    return v.__class__ is dict


def _list(v: Any) -> bool:
    return v.__class__ is list


def _any(v: Any) -> bool:
    return True


def _error(v: Any) -> bool:
    if v.__class__ is not dict or not _str(v.get("type")) or not _str(v.get("message")):
        return False
    tb, node, path, internal = (v.get(k, "") for k in ("traceback", "node", "path", "internal"))
    return _str(tb) and (node is None or _str(node)) and _str(path) and \
        (internal == "" or internal.__class__ is bool)


def _status(v: Any) -> bool:
    return v.__class__ is str and v in END_STATUS


def _enum(*values: str) -> Callable[[Any], bool]:
    allowed = frozenset(values)
    return lambda v: v.__class__ is str and v in allowed


def _true(v: Any) -> bool:
    return v is True


def _attempts(v: Any) -> bool:
    return _int(v, 0, MAX_ATTEMPTS)


def _index(v: Any) -> bool:
    return _int(v, 0, MAX_INDEX)


def _batch(v: Any) -> bool:
    """A node.start's ``batch``: the types of its fields (the app sizes tables by count only
    up to the events present: see app/model.py)."""
    if v is None:
        return True
    if v.__class__ is not dict:
        return False
    count, conc, size = v.get("count"), v.get("max_concurrent"), v.get("batch_size", 1)
    return (count is None or _int(count, 0, MAX_SEQ)) and (conc is None or _int(conc, 1, MAX_SEQ)) \
        and _int(size, 1, MAX_SEQ) and v.get("parallel", False).__class__ is bool \
        and _str(v.get("as", "")) and v.get("error_handling", "fail_fast") in ("fail_fast", "continue")


def _null(v: Any) -> bool:
    return v is None


# kind: (path pattern, {field: check} required, {field: check} optional)
_Spec = tuple[re.Pattern[str], dict[str, Callable[[Any], bool]], dict[str, Callable[[Any], bool]]]
_SPECS: dict[str, _Spec] = {
    "run.start": (_RUN_PATH, {"flow": _str, "inputs": _dict, "source": _str}, {"rerun_of": _str}),
    "run.end": (_RUN_PATH, {"status": _status}, {"duration": _num, "outputs": _dict, "error": _error}),
    "node.start": (_NODE_PATH, {"node": _str, "type": _str},
                   {"cached": _true, "params": _dict, "batch": _batch}),
    "node.end": (_NODE_PATH, {"node": _str, "status": _status},
                 {"duration": _num, "cached": _true, "action": _str, "attempts": _attempts, "outputs": _dict,
                  "error": _error, "progress": _dict}),
    "item.start": (_ITEM_PATH, {"index": _index},
                   {"cached": _true, "label": _str, "params": _dict}),
    "item.end": (_ITEM_PATH, {"index": _index, "status": _status},
                 {"duration": _num, "attempts": _attempts, "cached": _true, "outputs": _dict,
                  "error": _error, "worker": _str}),
    "attempt.start": (_NODE_PATH, {"attempt": _attempts}, {"worker": _str}),
    "attempt.end": (_NODE_PATH, {"attempt": _attempts, "status": _status},
                    {"duration": _num, "error": _error, "will_retry": lambda v: v.__class__ is bool,
                     "worker": _str}),
    "branch.start": (_NODE_PATH, {"group": _str, "index": _index}, {"start": _str}),
    "branch.end": (_NODE_PATH, {"group": _str, "index": _index, "status": _status},
                   {"duration": _num, "last": _str}),
    "edge": (_PATH, {"from": _str, "to": _str, "action": _str}, {"group": _str}),
    "store.write": (_PATH, {"key": _str, "value": _any}, {"omitted": _list}),
    "warning": (_PATH, {"message": _str}, {}),
    "race": (_PATH, {"key": _str, "paths": _list, "message": _str}, {}),
    "pause": (_PATH, {"reason": _enum("start", "user", "step", "breakpoint", "failure"),
                      "breakpoint": _any}, {}),
    "resume": (_PATH, {"reason": _enum("user", "step")}, {"breakpoint": _null}),
    "wait.start": (_NODE_PATH, {"on": _enum("rate_limit", "processes", "cluster"), "attempt": _attempts,
                                "limit": _str}, {"key": _str}),
    "wait.end": (_NODE_PATH, {"on": _enum("rate_limit", "processes", "cluster"), "attempt": _attempts,
                              "status": _enum("ok", "cancelled"), "duration": _num},
                 {"key": _str, "worker": _str}),
}
KNOWN_KINDS: frozenset[str] = frozenset(_SPECS)

_MISSING = object()
# checks inlined in check_event: an exact type, a range of integers, a set of strings
_PLAIN: dict[Callable[[Any], bool], Any] = {
    _str: str, _dict: dict, _list: list, _index: range(0, MAX_INDEX + 1),
    _attempts: range(0, MAX_ATTEMPTS + 1), _status: END_STATUS}


def _compiled(fields: dict[str, Callable[[Any], bool]]) -> tuple[tuple[str, Any], ...]:
    return tuple((name, _PLAIN.get(ok, ok)) for name, ok in fields.items())


_FAST = {kind: (path, _compiled(req), _compiled(opt)) for kind, (path, req, opt) in _SPECS.items()}
_VALID_PATHS: dict[re.Pattern[str], dict[str, bool]] = {p: {} for p in
                                                         (_PATH, _RUN_PATH, _NODE_PATH, _ITEM_PATH)}
_PATH_CACHE = 50_000  # paths remembered per form (node paths repeat in every event of a node)


def _path_ok(form: re.Pattern[str], path: str) -> bool:
    """Whether ``path`` has the form (a small cache: the same paths come again and again;
    an item path is its node's path, cached, and ``iteration_N``)."""
    if form is _ITEM_PATH:
        head, _, leaf = path.rpartition(".")
        digits = leaf[len(ITERATION):]
        if not leaf.startswith(ITERATION) or not digits.isascii() or not digits.isdigit() \
                or (digits[0] == "0" and digits != "0"):
            return False
        form, path = _PATH, head
    seen = _VALID_PATHS[form]
    ok = seen.get(path)
    if ok is None:
        ok = form.fullmatch(path) is not None
        if len(seen) >= _PATH_CACHE:
            seen.clear()
        seen[path] = ok
    return ok


def check_event(e: Any) -> str | None:
    """Why ``e`` (a decoded event line) is no event readers may use, or None when it is one.

    An ignored kind (:data:`IGNORED_KINDS`) gives ``"ignored"``: skip it, count nothing.
    """
    if e.__class__ is not dict:
        return f"not an object ({type(e).__name__})"
    kind = e.get("kind")
    spec = _FAST.get(kind) if kind.__class__ is str else None
    if spec is None:
        if kind.__class__ is str and kind in IGNORED_KINDS:
            return "ignored"
        return "no kind" if kind is None else "unknown kind"
    seq, t, path = e.get("seq"), e.get("t"), e.get("path")
    if seq.__class__ is not int or not 1 <= seq <= MAX_SEQ:
        return "seq is not an integer from 1 to 2^53"
    if t.__class__ is float:
        if not 0.0 <= t < math.inf:
            return "t is not a time in seconds"
    elif t.__class__ is not int or not 0 <= t <= MAX_SEQ:
        return "t is not a time in seconds"
    if path.__class__ is not str or not _path_ok(spec[0], path):
        return f"path is not a {kind} path"
    get, missing = e.get, _MISSING
    for required, fields in ((True, spec[1]), (False, spec[2])):
        for name, ok in fields:
            v = get(name, missing)
            if v is missing:
                if required:
                    return f"{name} is missing"
                continue
            c = ok.__class__  # (inlined: a call per field would double the cost)
            if c is type:
                bad = v.__class__ is not ok
            elif c is range:
                bad = v.__class__ is not int or v not in ok
            elif c is frozenset:
                bad = v.__class__ is not str or v not in ok
            else:
                bad = not ok(v)
            if bad:
                return f"{name} is of the wrong type"
    return None


def is_event(e: Any) -> bool:
    """Whether ``e`` is an event readers may use (ignored kinds are not)."""
    return check_event(e) is None


def malformed_note(n: int) -> str:
    """"N malformed events skipped" (what every reader says)."""
    return f"{n:,} malformed event{'s' if n != 1 else ''} skipped"
