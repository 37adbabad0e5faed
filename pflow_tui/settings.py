"""The user's settings: where each comes from, checked, and handed to the engine.

Each setting is taken from the first of these that gives it:

1. a flag (``--cluster``; ``--dir`` of ``runs`` and ``replay``);
2. its environment variable (``PFLOW_TUI_...``);
3. the project's file, the nearest one walking up from the working directory: a
   ``pflow-tui.toml`` (its keys at the top level), or a ``pyproject.toml`` with a
   ``[tool.pflow-tui]`` table (one without that table is passed over); both in one folder:
   ``pflow-tui.toml`` wins;
4. the user's file, ``config.toml`` in the config folder (``$PFLOW_TUI_CONFIG_DIR``, else
   ``$XDG_CONFIG_HOME/pflow-tui``, else ``~/.config/pflow-tui``); the prices also from
   ``prices.json`` there, as before;
5. the default.

A path in a file is relative to that file's folder; a path in a variable or a flag, to the
working directory. The engine reads its settings from the environment only, so
:func:`exported` puts every resolved value there for the command (and the processes it
starts), and takes it away again afterwards. See docs/configuration.md.
"""

from __future__ import annotations

import json
import os
import re
import sys
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any, NamedTuple

from .engine.problems import FlowError, Problem, did_you_mean
from .engine.trace.trust import config_dir

PROJECT_FILE = "pflow-tui.toml"
PYPROJECT = "pyproject.toml"
TABLE = "pflow-tui"  # [tool.pflow-tui]
USER_FILE = "config.toml"
PRICE_KEYS = ("input", "output", "cached_input")


class SettingsError(FlowError):
    """A settings file or variable that is bad: every problem, with the file (or
    ``environment``) as the source."""


class Bad(ValueError):
    """A value a setting does not take: what is wrong (the message) and how to fix it."""

    def __init__(self, what: str, fix: str) -> None:
        super().__init__(what)
        self.fix = fix


def _text(value: Any) -> str:
    if not isinstance(value, str) or not value.strip():
        raise Bad(f"expected a non-empty string, got {value!r}", 'write it in quotes, e.g. "name"')
    return value.strip()


def _whole(least: int) -> Callable[[Any], int]:
    def parse(value: Any) -> int:
        if isinstance(value, str) and re.fullmatch(r"\s*\d+\s*", value):
            value = int(value)
        if not isinstance(value, int) or isinstance(value, bool) or value < least:
            raise Bad(f"expected a whole number from {least}, got {value!r}",
                      f"give a number without quotes, e.g. {max(least, 4)}")
        return value
    return parse


def _cluster(value: Any) -> str:
    from .engine.run.cluster import parse_cluster  # (only when one is given: start-up time)

    try:
        return parse_cluster(_text(value))
    except ValueError as exc:
        raise Bad(str(exc), 'e.g. cluster = "tcp://10.0.0.5:8786" or "local"') from None


def _prices(value: Any) -> dict[str, dict[str, float]]:
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except ValueError:
            raise Bad("not a JSON object", 'e.g. {"gpt-4o-mini": {"input": 0.15, '
                      '"output": 0.6}}') from None
    if not isinstance(value, Mapping):
        raise Bad(f"expected a table of models, got {value!r}",
                  '[prices] then one line a model: "gpt-4o-mini" = {input = 0.15, output = 0.6}')
    table: dict[str, dict[str, float]] = {}
    for model, rates in value.items():
        if not isinstance(rates, Mapping):
            raise Bad(f"{model}: expected a table of rates, got {rates!r}",
                      f'"{model}" = {{input = 0.15, output = 0.6, cached_input = 0.075}} '
                      "(US dollars per million tokens)")
        for name, rate in rates.items():
            if name not in PRICE_KEYS:
                raise Bad(f"{model}: no rate {name!r}", did_you_mean(name, PRICE_KEYS, "the rates"))
            if not isinstance(rate, (int, float)) or isinstance(rate, bool) or rate < 0:
                raise Bad(f"{model}.{name}: expected a number of dollars from 0, got {rate!r}",
                          "US dollars per million tokens, e.g. 0.15")
        if "input" not in rates or "output" not in rates:
            raise Bad(f"{model}: needs both input and output", "e.g. {input = 0.15, output = 0.6}")
        table[str(model)] = {k: float(v) for k, v in rates.items()}
    return table


class Setting(NamedTuple):
    """One setting: its key in a file, its variable, its flag, its default, what it means."""

    key: str
    env: str
    flag: str  #: the flags that give it ("" none)
    default: Any
    meaning: str
    parse: Callable[[Any], Any]
    path: bool = False  #: a path: relative to the file that gives it
    #: its variable is checked by the engine where a flow needs it (a bad one is said then,
    #: and is no matter to a flow that does not use it), so it is taken as it is here
    engine_checks: bool = False


SETTINGS: dict[str, Setting] = {s.key: s for s in (
    Setting("trace_dir", "PFLOW_TUI_TRACE_DIR", "--dir (runs, replay)", ".pflow-tui/traces",
            "the folder runs write their traces to and `runs` lists", _text, path=True),
    Setting("keep", "PFLOW_TUI_KEEP", "", 200,
            "how many runs the trace folder keeps: after each run the oldest beyond this are "
            "removed (0: keep every run); `pflow-tui runs --prune` removes them now", _whole(0)),
    Setting("theme", "PFLOW_TUI_THEME", "", "textual-dark",
            "the app's Textual theme (e.g. textual-light, nord, gruvbox)", _text),
    Setting("processes", "PFLOW_TUI_PROCESSES", "", None,
            'how many worker processes run "executor": "process" nodes at once (default: one '
            "per core)", _whole(1), engine_checks=True),
    Setting("cluster", "PFLOW_TUI_CLUSTER", "--cluster", "local",
            'where "executor": "cluster" nodes run: a Dask scheduler tcp://HOST:PORT, or local',
            _cluster, engine_checks=True),
    Setting("prices", "PFLOW_TUI_PRICES", "", {},
            "LLM prices in US dollars per million tokens, per model: input, output, "
            "cached_input (a cost is shown only for the models named)", _prices),
)}


class Value(NamedTuple):
    """A setting's value and where it came from: ``flag --cluster``, ``env PFLOW_TUI_KEEP``,
    ``/project/pflow-tui.toml:3``, ``default``."""

    key: str
    value: Any
    source: str

    @property
    def given(self) -> bool:
        return self.source != "default"


class Settings:
    """Every setting's value and source (``values``), and the files they were read from
    (``files``: the project's, then the user's)."""

    __slots__ = ("files", "values")

    def __init__(self, values: dict[str, Value], files: tuple[Path, ...]) -> None:
        self.values = values
        self.files = files

    def __getitem__(self, key: str) -> Any:
        return self.values[key].value

    @property
    def trace_dir(self) -> Path:
        return Path(self["trace_dir"])


# --- the files --------------------------------------------------------------------------------------


class Layer(NamedTuple):
    """One settings file's table (of a pflow-tui.toml, a pyproject.toml or a config.toml)."""

    path: Path
    table: dict[str, Any]
    text: str
    section: str  #: the table's header in the file ("" the top level)


def _toml() -> Any:
    if sys.version_info >= (3, 11):
        import tomllib
    else:  # pragma: no cover (Python 3.10)
        import tomli as tomllib
    return tomllib


def _read(path: Path, section: str) -> Layer | None:
    """The settings table of ``path`` (None: a pyproject.toml without one). SettingsError: the
    file is not TOML, or its table is not a table."""
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise SettingsError(str(path), [Problem("the file", f"cannot read it ({exc.strerror})",
                                            "make it readable, or remove it")]) from None
    if section and TABLE.encode() not in raw:  # (a pyproject.toml of another tool: not parsed)
        return None
    text = raw.decode("utf-8", errors="replace")
    try:
        doc = _toml().loads(text)
    except ValueError as exc:  # tomllib.TOMLDecodeError: "... (at line 3, column 7)"
        raise SettingsError(str(path), [Problem("TOML", str(exc), "fix the syntax at that line "
                                            "(https://toml.io); strings need quotes")]) from None
    table: Any = doc.get("tool", {}).get(TABLE) if section else doc
    if table is None:
        return None
    if not isinstance(table, dict):
        raise SettingsError(str(path), [Problem(section, "is not a table", f"write it as [{section}]")])
    return Layer(path, table, text, section)


def project_layer(start: Path) -> Layer | None:
    """The nearest ``pflow-tui.toml``, or ``pyproject.toml`` with ``[tool.pflow-tui]``, in
    ``start`` or a folder above it."""
    for folder in (start, *start.parents):
        own = folder / PROJECT_FILE
        if own.is_file():
            return _read(own, "")
        pyproject = folder / PYPROJECT
        if pyproject.is_file():
            layer = _read(pyproject, f"tool.{TABLE}")
            if layer is not None:
                return layer
    return None


def user_layer() -> Layer | None:
    """The user's ``config.toml`` (in the config folder of the trace-signing key)."""
    path = config_dir() / USER_FILE
    return _read(path, "") if path.is_file() else None


def _line(layer: Layer, key: str) -> int | None:
    """The line of ``key`` in the layer's table ("line-ish": the first line that sets it)."""
    lines = layer.text.splitlines()
    start = 0
    if layer.section:
        header = re.compile(r"\s*\[\s*tool\s*\.\s*\"?pflow-tui\"?\s*\]")
        start = next((i + 1 for i, s in enumerate(lines) if header.match(s)), 0)
    sets = re.compile(rf"\s*[\"']?{re.escape(key)}[\"']?\s*(=|\.)")
    table = re.compile(rf"\s*\[\s*(tool\s*\.\s*\"?pflow-tui\"?\s*\.\s*)?{re.escape(key)}\s*[\].]")
    for i in range(start, len(lines)):
        if sets.match(lines[i]) or table.match(lines[i]):
            return i + 1
    return None


def _where(layer: Layer, key: str) -> str:
    n = _line(layer, key)
    return f"{layer.path}:{n}" if n else str(layer.path)


def _check(layer: Layer) -> dict[str, Value]:
    """The layer's values, checked; SettingsError naming the file, every bad key and its line."""
    problems: list[Problem] = []
    values: dict[str, Value] = {}
    for key, raw in layer.table.items():
        n = _line(layer, key)
        where = f"{key} (line {n})" if n else key
        setting = SETTINGS.get(key)
        if setting is None:
            problems.append(Problem(where, "no such setting",
                                    did_you_mean(key, SETTINGS, "the settings")))
            continue
        try:
            value = setting.parse(raw)
        except Bad as exc:
            problems.append(Problem(where, str(exc), exc.fix))
            continue
        if setting.path:
            value = str(layer.path.parent / Path(value).expanduser())
        values[key] = Value(key, value, _where(layer, key))
    if problems:
        name = f"{layer.path} [{layer.section}]" if layer.section else str(layer.path)
        raise SettingsError(name, problems)
    return values


# --- resolving ------------------------------------------------------------------------------------


def load(flags: Mapping[str, Any] | None = None, *, cwd: Path | None = None) -> Settings:
    """Every setting with where it came from (SettingsError: a bad file or variable)."""
    flags = flags or {}
    folder = cwd or Path.cwd()
    layers = [layer for layer in (project_layer(folder), user_layer()) if layer is not None]
    from_files: list[dict[str, Value]] = [_check(layer) for layer in layers]
    values: dict[str, Value] = {}
    problems: list[Problem] = []
    for key, setting in SETTINGS.items():
        if flags.get(key) is not None:
            values[key] = Value(key, flags[key], f"flag {setting.flag.split()[0]}")
            continue
        raw = os.environ.get(setting.env, "")
        if raw.strip():
            try:
                values[key] = Value(key, setting.parse(raw), f"env {setting.env}")
            except Bad as exc:
                if setting.engine_checks:  # (as it is: the engine says so if a flow needs it)
                    values[key] = Value(key, raw.strip(), f"env {setting.env}")
                else:
                    problems.append(Problem(f"environment variable {setting.env}",
                                            f"{raw!r}: {exc}", f"unset it, or {exc.fix}"))
            continue
        found = next((layer[key] for layer in from_files if key in layer), None)
        values[key] = found or _default(setting)
    if problems:
        raise SettingsError("environment", problems)
    return Settings(values, tuple(layer.path for layer in layers))


def _default(setting: Setting) -> Value:
    if setting.key == "prices":  # the price table of before: prices.json in the config folder
        legacy = config_dir() / "prices.json"
        if legacy.is_file():
            try:
                return Value("prices", _prices(legacy.read_text(encoding="utf-8")), str(legacy))
            except (Bad, OSError, UnicodeDecodeError):
                pass  # (as before: a prices.json that is no table is no prices)
    return Value(setting.key, setting.default, "default")


def environment(settings: Settings) -> dict[str, str]:
    """The variables that hand the settings that were given to the engine and to the
    processes a command starts."""
    out: dict[str, str] = {}
    for key, value in settings.values.items():
        if not value.given or value.value is None:
            continue
        v = value.value
        out[SETTINGS[key].env] = json.dumps(v, sort_keys=True) if isinstance(v, dict) else str(v)
    return out


@contextmanager
def exported(settings: Settings) -> Iterator[Settings]:
    """The settings in the environment while a command runs; the environment as it was after."""
    env = environment(settings)
    before = {name: os.environ.get(name) for name in env}
    os.environ.update(env)
    try:
        yield settings
    finally:
        for name, old in before.items():
            if old is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = old


def theme_problem(settings: Settings,
                  available: Mapping[str, Any] | None = None) -> SettingsError | None:
    """A theme Textual does not have, as an error naming where it was set (imports Textual's
    themes: only when the app opens, or for ``pflow-tui config``)."""
    if available is None:
        from textual.theme import BUILTIN_THEMES

        available = BUILTIN_THEMES
    value = settings.values["theme"]
    if value.value in available:
        return None
    return SettingsError(value.source, [Problem("theme", f"no theme {value.value!r}",
                                            did_you_mean(value.value, available, "the themes"))])


__all__ = ["SETTINGS", "Setting", "Settings", "SettingsError", "Value", "environment", "exported", "load",
           "project_layer", "theme_problem", "user_layer"]
