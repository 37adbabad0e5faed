"""Where a batch's items come from: a list, or lines read one at a time.

``batch.items`` is a template that gives a list (pflow), an inline array (pflow), or one
of these objects (pflow-tui), whose items are read line by line, never held as a list:

- ``{"lines_of": "${node.stdout}"}``: each line of a text (a string per line);
- ``{"jsonl_of": "${node.stdout}"}``: each line of a text, parsed as JSON;
- ``{"lines_file": "names.txt"}``: each line of a text file;
- ``{"jsonl_file": "rows.jsonl"}``: each line of a JSON-lines file, parsed as JSON.

Lines are split at ``\\n`` (a ``\\r`` before it is dropped); blank lines (nothing but
spaces, tabs, ``\\r``, ``\\f``, ``\\v``) are skipped. Files are UTF-8, relative to the
folder of the flow that uses them; templates in the path are resolved
(``"${dir}/rows.jsonl"``). The items are counted first (one pass, for progress and the
batch's ``count``), then read as the batch takes them; a line that is not JSON, or not
UTF-8, fails the node when it is reached, with the file and the line number.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson

from .jsontypes import json_type

#: the source keys of an items object, and what each holds
SOURCE_KEYS: dict[str, str] = {
    "lines_of": "a text whose lines are the items (e.g. \"${list.stdout}\")",
    "jsonl_of": "a text whose lines are JSON values, one item each",
    "lines_file": "a text file whose lines are the items",
    "jsonl_file": "a JSON-lines file: one JSON value per line, one item each",
}
_WS = " \t\r\n\x0b\x0c"


class ItemsError(Exception):
    """Items that cannot be read (a missing file, a line that is not JSON): the batch
    node fails with this message."""


class LineSource:
    """The items of an items object: ``len()`` counts them, iterating reads them.

    ``key`` is one of :data:`SOURCE_KEYS`; ``value`` the text (``*_of``) or the file path
    (``*_file``, relative to ``base_dir``), resolved.
    """

    def __init__(self, key: str, value: Any, base_dir: Path) -> None:
        where = f"batch.items.{key}"
        self.key = key
        self.json = key.startswith("jsonl")
        if not isinstance(value, str):
            what = "a file path" if key.endswith("_file") else "text"
            raise ItemsError(f"{where} must be {what}, got {json_type(value)}"
                             + (' (for a list, write "items": "${...}")'
                                if isinstance(value, (list, tuple)) else ""))
        self.text: str | None = None
        self.path: Path | None = None
        if key.endswith("_file"):
            self.path = (base_dir / value).resolve()
            self.shown = value
            try:
                with open(self.path, "rb") as f:
                    self.count = sum(map(bool, map(bytes.strip, f)))
            except FileNotFoundError:
                raise ItemsError(f"{where}: file not found: {value} (looked for {self.path}; "
                                 "paths are relative to the flow's folder)") from None
            except IsADirectoryError:
                raise ItemsError(f"{where}: {value} is a folder, not a file ({self.path})") from None
            except OSError as exc:
                raise ItemsError(f"{where}: cannot read {value}: {exc.strerror} ({self.path})") from None
        else:
            self.text = value
            self.shown = "the text"
            self.count = sum(1 for _, line in _text_lines(value) if line.strip(_WS))

    def __len__(self) -> int:
        return self.count

    def __iter__(self) -> Iterator[Any]:
        lines = _text_lines(self.text) if self.text is not None else self._file_lines()
        loads = orjson.loads
        for lineno, line in lines:
            if not line.strip(_WS if line.__class__ is str else None):
                continue
            if self.json:
                try:
                    yield loads(line)
                except orjson.JSONDecodeError as exc:
                    raise ItemsError(self._bad_json(lineno, line, exc)) from None
            elif line.__class__ is str:
                yield line[:-1] if line.endswith("\r") else line
            else:
                try:
                    yield line.rstrip(b"\n").removesuffix(b"\r").decode("utf-8")
                except UnicodeDecodeError as exc:
                    raise ItemsError(f"batch.items.{self.key}: {self.shown} line {lineno} is not "
                                     f"UTF-8 text (byte 0x{line[exc.start]:02x} at column "
                                     f"{exc.start + 1})") from None

    def _file_lines(self) -> Iterator[tuple[int, bytes]]:
        try:
            f = open(self.path, "rb")  # type: ignore[arg-type]  # noqa: SIM115
        except OSError as exc:  # removed since it was counted
            raise ItemsError(f"batch.items.{self.key}: cannot read {self.shown}: "
                             f"{exc.strerror} ({self.path})") from None
        with f:
            yield from enumerate(f, 1)

    def _bad_json(self, lineno: int, line: str | bytes, exc: orjson.JSONDecodeError) -> str:
        text = line.decode("utf-8", "replace") if isinstance(line, bytes) else line
        text = text.strip(_WS)
        shown = text if len(text) <= 80 else text[:77] + "..."
        where = f"line {lineno} of the text" if self.text is not None else f"{self.shown} line {lineno}"
        return (f"batch.items.{self.key}: {where} is not JSON ({exc.msg} at column {exc.colno}): "
                f"{shown}")


def _text_lines(text: str) -> Iterator[tuple[int, str]]:
    """(line number, line without its ``\\n``) of a text, without splitting it all at once."""
    start, lineno, find = 0, 1, text.find
    while True:
        end = find("\n", start)
        if end < 0:
            if start < len(text):
                yield lineno, text[start:]
            return
        yield lineno, text[start:end]
        start, lineno = end + 1, lineno + 1


__all__ = ["SOURCE_KEYS", "ItemsError", "LineSource"]
