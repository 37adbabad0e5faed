"""Item and node status codes: the bytes of ``ItemTable.status`` and ``NodeState.status``
(no Textual here)."""

from __future__ import annotations

PENDING, RUNNING, OK, ERROR, CANCELLED, SKIPPED = range(6)
STATUS_NAMES = ("pending", "running", "ok", "error", "cancelled", "skipped")
STATUS_CODES = {name: code for code, name in enumerate(STATUS_NAMES)}
