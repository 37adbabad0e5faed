"""The ``echo`` node: pflow's side-effect-free test node (prefix/suffix, repeat, uppercase)."""

from __future__ import annotations

from typing import Any

from .base import NodeType, Param, RunContext, abort


def echo(params: dict[str, Any], ctx: RunContext) -> dict[str, Any]:
    """Echo ``message``; ``data`` passes through unchanged (written only when not None)."""
    get = params.get
    message = get("message", "Hello, World!")
    if type(message) is not str:
        # pflow's echo fails on len() ("object of type 'int' has no len()"): the same outcome
        # (an exception, the node fails, no error edge), a clearer message
        raise abort(TypeError, f"echo message must be a string, got {type(message).__name__}")
    count = get("count", 1)
    prefix = get("prefix", "")
    suffix = get("suffix", "")
    uppercase = get("uppercase", False)
    text = f"{prefix}{message}{suffix}" if (prefix or suffix) else message
    if count > 1:
        text = " ".join([text] * count)
    if uppercase:
        text = text.upper()
    out = {
        "echo": text,
        "metadata": {
            "original_message": message,
            "count": count,
            "modified": bool(prefix or suffix or uppercase or count > 1),
        },
    }
    data = get("data")
    if data is not None:
        out["data"] = data
    return out


ECHO = NodeType(
    name="echo",
    run=echo,
    params=(
        Param("message", "str", default="Hello, World!", description="Message to echo"),
        Param("count", "int", default=1, description="Number of times to repeat"),
        Param("data", "any", description="Data passed through unchanged"),
        Param("prefix", "str", default="", description="Prefix for the message"),
        Param("suffix", "str", default="", description="Suffix for the message"),
        Param("uppercase", "bool", default=False, description="Convert to uppercase"),
    ),
    outputs=("echo", "metadata", "data"),
    output_types=(("echo", "str"), ("metadata", "dict"), ("metadata.count", "int"),
                  ("metadata.modified", "bool"), ("metadata.original_message", "str"), ("data", "any")),
    description="Echo a message (for testing and debugging flows).",
)
