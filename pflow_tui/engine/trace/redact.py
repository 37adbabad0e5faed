"""Secrets and private files: what a run never writes down, and who may read what it writes.

A run's events, its trace header and footer, and what the console and the app show are
*redacted* at one place, where the events are emitted (:class:`Redactor`, used by
:class:`~pflow_tui.engine.trace.events.Emitter` and by ``executor.run_flow``); the running nodes
still get the real values. Redacted are (see docs/security.md):

- text under a key whose name looks secret (:func:`secret_key`): ``authorization``,
  ``*token*``, ``*secret*``, ``*password*``, ``*api_key*`` / ``*apikey*`` / ``*api-key*``,
  ``cookie``, ``set-cookie`` (any case, at any depth: http ``headers``, shell ``env``);
- the values of the flow's inputs declared ``"secret": true`` and of the inputs filled from
  an environment variable;
- any of those values (4 characters or more) found inside other recorded text: a command
  that interpolated a token, a stdout that echoes it.

Each becomes ``«redacted:NAME»`` (NAME: the input or the key). A re-run reads NAME again from
the environment or from ``NAME=VALUE`` on the command line (:func:`unredact`).

Trace folders this process creates are 0700, trace files and their side files 0600,
whatever the umask (:func:`private_dirs`, :func:`open_private`).
"""

from __future__ import annotations

import os
import re
import threading
from collections.abc import Iterable, Mapping
from typing import Any

from .writer import dumps

MIN_VALUE = 4  # shorter secret values are not searched for inside other text (noise)
MIN_ENV_VALUE = 8  # the same for the variables of the environment with secret-looking names
_SECRET_KEY = re.compile(r"authorization|token|secret|password|passwd|api[_-]?key", re.I)
_SECRET_EXACT = frozenset(("cookie", "set-cookie"))
MARK_RE = re.compile(r"«redacted:([^»]*)»")
_MAX_DEPTH = 200  # deeper than this, a value is searched as JSON text
_SCALARS = frozenset((int, float, bool, type(None)))


def mark(name: str) -> str:
    """The text that stands for the secret called ``name``."""
    return f"«redacted:{name}»"


_keys: dict[str, bool] = {}  # key -> secret_key(key) (the same keys recur)


def secret_key(key: str) -> bool:
    """Whether values under ``key`` are secret by their name."""
    found = _keys.get(key)
    if found is None:
        found = bool(_SECRET_KEY.search(key)) or key.lower() in _SECRET_EXACT
        if len(_keys) < 10_000:
            _keys[key] = found
    return found


class Redactor:
    """The secrets of one run, and how to take them out of what is recorded.

    ``names``: inputs whose value is secret whatever its type (declared ``secret``, or
    filled from the environment); they are redacted by name in ``inputs`` and the store's
    top level, and their text values wherever they appear.
    """

    def __init__(self, names: Mapping[str, Any] | None = None) -> None:
        self._values: dict[str, str] = {}  # secret text -> its name
        self._pattern: re.Pattern[str] | None = None
        self._lock = threading.Lock()
        self.names: set[str] = set()
        self.version = 0  # grows with every new secret value
        for name, value in (names or {}).items():
            self.add_input(name, value)

    # --- what is secret ---

    def add_input(self, name: str, value: Any) -> None:
        """Input ``name`` is secret: its value, and every text inside it."""
        self.names.add(name)
        self.add_values(value, name)

    def add_values(self, value: Any, name: str) -> None:
        """Every text in ``value`` (and a number's digits) is a secret called ``name``."""
        if isinstance(value, str):
            self.add(value, name)
        elif isinstance(value, (int, float)) and not isinstance(value, bool):
            self.add(str(value), name)
        elif isinstance(value, dict):
            for v in value.values():
                self.add_values(v, name)
        elif isinstance(value, (list, tuple)):
            for v in value:
                self.add_values(v, name)

    def add(self, value: str, name: str) -> None:
        """``value`` is secret: found inside any recorded text, it is replaced by ``«redacted:name»``."""
        if len(value) < MIN_VALUE or value in self._values or MARK_RE.fullmatch(value):
            return
        with self._lock:
            self._values.setdefault(value, name)
            self._pattern = None
            self.version += 1

    def _regex(self) -> re.Pattern[str] | None:
        pattern = self._pattern
        if pattern is None and self._values:
            with self._lock:
                alternatives = sorted(self._values, key=len, reverse=True)
                pattern = self._pattern = re.compile("|".join(map(re.escape, alternatives)))
        return pattern

    # --- redacting ---

    def text(self, value: str) -> str:
        """``value`` with every secret in it replaced."""
        pattern = self._regex()
        if pattern is None or not pattern.search(value):
            return value
        values = self._values
        return pattern.sub(lambda m: mark(values.get(m.group(0), "secret")), value)

    def scrub(self, value: Any, *, templates: bool = False) -> Any:
        """``value`` with its secrets replaced: the same object when it holds none, else a
        copy (only the containers on the way to a secret are copied).

        ``templates``: a flow as written (the trace header): text with a ``${...}`` template
        under a secret key is kept (it is where the secret comes from, not the secret).
        """
        before = self.version
        out = self._scrub(value, templates, 0)
        if self.version != before:  # a secret found on the way: look again at what came before it
            out = self._scrub(out, templates, 0)
        return out

    def _scrub(self, value: Any, templates: bool, depth: int) -> Any:
        # the hot path of every event: class checks, no calls for plain scalars
        cls = value.__class__
        if cls in _SCALARS:
            return value
        if cls is str or isinstance(value, str):
            return self.text(value) if self._values else value
        if cls is dict or isinstance(value, dict):
            if depth >= _MAX_DEPTH:
                return self._as_text(value)
            changed: dict[Any, Any] | None = None
            keys = _keys
            for k, v in value.items():
                vc = v.__class__
                if vc in _SCALARS:
                    continue
                if vc is str:
                    secret = keys.get(k)
                    if secret is None:
                        secret = secret_key(k) if isinstance(k, str) else False
                    if secret and v:
                        if (templates and "${" in v) or MARK_RE.fullmatch(v):
                            new: Any = self.text(v) if self._values else v
                        else:
                            self.add(v, k)
                            new = mark(k)
                    elif self._values:
                        new = self.text(v)
                    else:
                        continue
                else:
                    new = self._scrub(v, templates, depth + 1)
                if new is not v:
                    if changed is None:
                        changed = dict(value)
                    changed[k] = new
            return value if changed is None else changed
        if cls is list or cls is tuple or isinstance(value, (list, tuple)):
            if depth >= _MAX_DEPTH:
                return self._as_text(value)
            out: list[Any] | None = None
            for i, v in enumerate(value):
                if v.__class__ in _SCALARS:
                    continue
                new = self._scrub(v, templates, depth + 1)
                if new is not v:
                    if out is None:
                        out = list(value)
                    out[i] = new
            return value if out is None else out
        return value

    def _as_text(self, value: Any) -> Any:
        """A value nested too deep to walk: its JSON text, when a secret is in it."""
        text = dumps(value).decode("utf-8", "replace")
        redacted = self.text(text)
        return value if redacted == text else redacted

    def inputs(self, inputs: Mapping[str, Any]) -> dict[str, Any]:
        """A run's inputs as recorded: a secret input's whole value is replaced."""
        out = {k: mark(k) if k in self.names and v is not None else v for k, v in inputs.items()}
        return self.scrub(out)

    def store(self, store: Mapping[str, Any]) -> dict[str, Any]:
        """A store as recorded (the inputs are at its top level)."""
        return self.inputs(store)

    def event(self, event: dict[str, Any]) -> dict[str, Any]:
        """An event as recorded (the sinks get this copy; the engine keeps the original)."""
        kind = event.get("kind")
        if kind == "store.write":
            key, value = event.get("key"), event.get("value")
            if key in self.names and value is not None:
                event = {**event, "value": mark(key)}
            elif isinstance(key, str) and isinstance(value, str) and value and secret_key(key) \
                    and not MARK_RE.fullmatch(value):  # {"api_key": ...} written to the store
                self.add(value, key)
                event = {**event, "value": mark(key)}
        elif kind == "run.start" and isinstance(event.get("inputs"), dict):
            event = {**event, "inputs": self.inputs(event["inputs"])}
        return self.scrub(event)


def run_redactor(spec: Any, inputs: Mapping[str, Any],
                 environ: Mapping[str, str] | None = None) -> Redactor:
    """The redactor of a run of ``spec`` with ``inputs``: its secret inputs, the defaults of
    the inputs declared secret (the flow as written holds them), and the environment's
    variables with secret-looking names (a shell command inherits them: ``echo $GH_TOKEN``)."""
    redactor = Redactor(input_secrets(spec, inputs))
    for name, decl in spec.inputs.items():
        if getattr(decl, "secret", False) and decl.has_default:
            redactor.add_values(decl.default, name)
    environment_secrets(redactor, environ)
    return redactor


def environment_secrets(redactor: Redactor, environ: Mapping[str, str] | None = None) -> None:
    """Every environment variable whose name looks secret is a secret of the run (values of 8
    characters or more: ``DISABLE_TOKEN_CHECK=true`` would redact every "true")."""
    for name, value in (os.environ if environ is None else environ).items():
        if len(value) >= MIN_ENV_VALUE and secret_key(name):
            redactor.add(value, name)


def input_secrets(spec: Any, inputs: Mapping[str, Any]) -> dict[str, Any]:
    """The inputs of a run that are secret: declared ``"secret": true`` in the flow, or
    filled from the environment (``prepare_inputs`` notes those in ``inputs.from_env``)."""
    names = {n for n, d in spec.inputs.items() if getattr(d, "secret", False)}
    names.update(getattr(inputs, "from_env", ()))
    return {n: inputs.get(n) for n in names if n in inputs}


# --- re-reading redacted values -----------------------------------------------------------------

def marks_in(value: Any) -> set[str]:
    """The names of the secrets redacted in ``value`` (as recorded in a trace)."""
    text = dumps_text(value)
    return set(MARK_RE.findall(text)) if "«redacted:" in text else set()


def dumps_text(value: Any) -> str:
    return dumps(value).decode("utf-8", "replace")


def unredact(value: Any, secrets: Mapping[str, str]) -> Any:
    """``value`` with every ``«redacted:NAME»`` replaced by ``secrets[NAME]`` (text)."""
    if isinstance(value, str):
        if "«redacted:" not in value:
            return value
        whole = MARK_RE.fullmatch(value)
        if whole and whole.group(1) in secrets:
            return secrets[whole.group(1)]
        return MARK_RE.sub(lambda m: secrets.get(m.group(1), m.group(0)), value)
    if isinstance(value, dict):
        return {k: unredact(v, secrets) for k, v in value.items()}
    if isinstance(value, list):
        return [unredact(v, secrets) for v in value]
    return value


def find_secrets(names: Iterable[str], given: Mapping[str, Any],
                 environ: Mapping[str, str] | None = None) -> tuple[dict[str, str], list[str]]:
    """(name -> value, names found nowhere) for the redacted names of a re-run: from
    ``NAME=VALUE`` on the command line (``given``) first, else the environment."""
    environ = os.environ if environ is None else environ
    found: dict[str, str] = {}
    missing: list[str] = []
    for name in sorted(names):
        if name in given and isinstance(given[name], str):
            found[name] = given[name]
        elif name in environ:
            found[name] = environ[name]
        else:
            missing.append(name)
    return found, missing
