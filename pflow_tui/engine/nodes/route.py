"""The ``route`` node type: choose the next edge from a value (loops, agents, switches).

PocketFlow nodes pick their successor by the action their ``post`` returns; pflow's JSON
nodes only ever return ``default`` or ``error``. A ``route`` node returns ``value`` (as
text) as its action, e.g. the answer of an ``llm`` node that decides what to do next.
With ``cases``, a value outside them takes ``otherwise`` instead.
"""

from __future__ import annotations

from typing import Any

from ..ir.templates import to_text
from .base import NodeType, Param, RunContext


def route(params: dict[str, Any], ctx: RunContext) -> dict[str, Any]:
    value = params.get("value")
    action = to_text(value).strip()
    cases = params.get("cases")
    if isinstance(cases, list) and cases and action not in [to_text(c) for c in cases]:
        action = to_text(params.get("otherwise", "default"))
    return {"action": action or "default", "value": value}


ROUTE = NodeType(
    name="route",
    run=route,
    params=(
        Param("value", "any", required=True, description="the action to take, e.g. ${decide.response}"),
        Param("cases", "list", description="the actions expected; others take 'otherwise'"),
        Param("otherwise", "str", default="default", description="the action for other values"),
    ),
    outputs=("action", "value"),
    description="Take the edge named by a value (a decision made by an earlier node).",
    action_key="action",
)
