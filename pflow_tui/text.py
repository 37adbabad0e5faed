"""Showing untrusted text literally: no markup, no terminal escape sequences."""

from __future__ import annotations

import re

_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f]")


def literal(text: str) -> str:
    """``text`` with control characters (ESC, CR, BEL ...) made visible as ``\\xNN``.

    Newlines and tabs are kept. The result is still to be shown as plain text (a Rich
    ``Text`` or a Textual ``Content``), never parsed as markup.
    """
    if not _CONTROL.search(text):
        return text
    return _CONTROL.sub(lambda m: f"\\x{ord(m.group()):02x}", text)


def plural(n: int, word: str, many: str | None = None) -> str:
    """``1 node``, ``2 nodes``, ``0 nodes`` (``many``: the plural when it is not word + s)."""
    return f"{n:,} {word if n == 1 else many or word + 's'}"
