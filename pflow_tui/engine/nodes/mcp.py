"""pflow's MCP tool nodes: ``mcp-<server>-<tool>`` calls ``tool`` of an MCP server.

The servers are pflow's: ``~/.pflow/mcp-servers.json``, ``{"mcpServers": {NAME: {"type":
"stdio", "command": ..., "args": [...], "env": {...}}}}`` (``${VAR}`` in ``env`` is read
from the environment). A node type exists for every configured stdio server and any tool
name (the server says whether it has the tool, when the node runs). The contract is pflow's
``MCPNode`` (fed939d7): the node's params are the tool's arguments (``timeout``, seconds,
default 30, is read too); one session per run (``initialize``, ``call_tool``), one attempt;
the result is the tool's ``structuredContent``, else its content (text parsed as JSON when
it is JSON; one block alone, several as a list), written to ``result`` and to
``<server>_<tool>_result``, and a dict result's keys to the node's namespace too (but ``_x``
and ``is_x``). A tool error (``isError``) writes ``error`` and ``error_details`` and takes
``error``; so does a failure to reach the server or a timeout (``MCP tool failed: ...``;
pflow takes ``default`` there, see docs/compatibility.md).

Needs the ``mcp`` package (``pip install 'pflow-tui[mcp]'``).
"""

from __future__ import annotations

import ast
import builtins
import json
import os
import re
from pathlib import Path
from typing import Any

import anyio

from .base import NodeType, RunContext, abort

PREFIX = "mcp-"
_VAR = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")


def config_path() -> Path:
    """pflow's MCP server configuration."""
    return Path("~/.pflow/mcp-servers.json").expanduser()


def servers() -> dict[str, dict[str, Any]]:
    """The configured servers (name -> config); none when the file is missing or unreadable."""
    try:
        doc = json.loads(config_path().read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    found = doc.get("mcpServers") if isinstance(doc, dict) else None
    return {k: v for k, v in found.items() if isinstance(v, dict)} if isinstance(found, dict) else {}


def split_name(name: str, known: dict[str, Any]) -> tuple[str, str] | None:
    """``mcp-<server>-<tool>`` -> (server, tool): the longest configured server name that
    fits (server names may hold '-')."""
    if not name.startswith(PREFIX):
        return None
    rest = name[len(PREFIX):]
    for server in sorted(known, key=len, reverse=True):
        if rest.startswith(server + "-") and len(rest) > len(server) + 1:
            return server, rest[len(server) + 1:]
    return None


def _expand(value: Any) -> Any:
    if isinstance(value, str):
        return _VAR.sub(lambda m: os.environ.get(m[1], ""), value)
    if isinstance(value, dict):
        return {k: _expand(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_expand(v) for v in value]
    return value


def _parse_text(text: Any) -> Any:
    """Text content parsed as JSON when it is JSON (a Python repr of a dict/list too), as pflow."""
    if isinstance(text, (dict, list)) or not isinstance(text, str):
        return text
    stripped = text.strip()
    if not stripped or stripped[0] not in '{["tfn-0123456789':
        return text
    try:
        return json.loads(stripped)
    except ValueError:
        if stripped[0] in "{[":
            try:
                parsed = ast.literal_eval(stripped)
                if isinstance(parsed, (dict, list)):
                    return parsed
            except (ValueError, SyntaxError):
                pass
        return text


def extract(result: Any) -> Any:
    """What pflow's ``MCPNode._extract_result`` makes of a ``CallToolResult``."""
    if not result:
        return None
    if getattr(result, "structuredContent", None) is not None:
        return result.structuredContent
    if getattr(result, "isError", False):
        for block in result.content or []:
            if hasattr(block, "text"):
                return {"error": str(block.text), "is_tool_error": True}
        return {"error": "Tool execution failed", "is_tool_error": True}
    contents = [_parse_text(block.text) if hasattr(block, "text") else str(block)
                for block in (getattr(result, "content", None) or [])]
    return contents[0] if len(contents) == 1 else contents


def outputs_of(server: str, tool: str, result: Any) -> dict[str, Any]:
    """The node's outputs for an extracted result (pflow's ``MCPNode.post``)."""
    if isinstance(result, dict) and result.get("is_tool_error"):
        return {"error": result.get("error", "Tool execution failed"),
                "error_details": {"server": server, "tool": tool, "is_tool_error": True}}
    out: dict[str, Any] = {"result": result}
    if isinstance(result, dict) and not result.get("error"):
        out.update({k: v for k, v in result.items() if not k.startswith(("_", "is_"))})
    out[f"{server}_{tool}_result"] = result
    return out


def unsupported_transport(name: str) -> str | None:
    """The transport of the server of ``mcp-<server>-<tool>`` when pflow-tui cannot speak it
    (pflow also speaks HTTP: ``"type": "http"``, a ``url``), else None."""
    known = servers()
    found = split_name(name, known)
    if found is None:
        return None
    config = known[found[0]]
    kind = config.get("type") or ("http" if config.get("url") else "stdio")
    return None if kind == "stdio" else str(kind)


def mcp_type(name: str) -> NodeType | None:
    """The node type ``name`` (``mcp-<server>-<tool>``) if its server is configured."""
    known = servers()
    found = split_name(name, known)
    if found is None:
        return None
    server, tool = found

    async def run(params: dict[str, Any], ctx: RunContext) -> dict[str, Any]:
        config = servers().get(server)
        if config is None:
            raise abort(KeyError, f"MCP server '{server}' not found in configuration "
                                  f"({config_path()})")
        timeout_param = params.get("timeout", 30)
        try:
            timeout = int(timeout_param)
            if timeout <= 0:
                raise ValueError
        except (TypeError, ValueError):
            raise abort(ValueError, f"Invalid 'timeout' parameter: {timeout_param!r}. Must be a positive "
                                    "integer (seconds).") from None
        arguments = {k: v for k, v in params.items() if not k.startswith("__")}
        try:
            result = await _call(config, tool, arguments, timeout)
        except TimeoutError:
            message = f"MCP tool timed out after {timeout} seconds"
        except Exception as exc:  # pflow's exec_fallback: the error is the node's output
            message = _error_text(exc)
        else:
            return outputs_of(server, tool, extract(result))
        timed_out = message.startswith("MCP tool timed out")
        return {"error": f"MCP tool failed: {message}",
                "error_details": {"server": server, "tool": tool, "timeout": timed_out}}

    return NodeType(name=name, run=run, outputs=("result",), max_retries=1,
                    description=f"Tool '{tool}' of the MCP server '{server}' (its params are the tool's "
                                "arguments)")


def _error_text(exc: BaseException) -> str:
    """The useful message of an exception, also out of an exception group (anyio's)."""
    group = getattr(builtins, "BaseExceptionGroup", ())  # Python 3.11+ (anyio's task groups)
    while isinstance(exc, group) and exc.exceptions:  # type: ignore[attr-defined]
        exc = exc.exceptions[0]  # type: ignore[attr-defined]
    return str(exc) or type(exc).__name__


async def _call(config: dict[str, Any], tool: str, arguments: dict[str, Any], timeout: int) -> Any:
    try:  # the mcp package loads (~0.3 s) only when a flow calls an MCP tool
        from mcp import ClientSession, StdioServerParameters
        from mcp.client.stdio import stdio_client
    except ImportError:
        raise RuntimeError("the mcp package is not installed: pip install 'pflow-tui[mcp]'") from None
    kind = config.get("type", "stdio") or "stdio"
    if kind != "stdio":
        raise ValueError(f"Unsupported transport type: {kind} (pflow-tui runs stdio servers)")
    env = _expand(config.get("env") or {})
    server = StdioServerParameters(command=config["command"], args=list(config.get("args") or []),
                                   env=env or None)
    with open(os.devnull, "w") as errlog, anyio.fail_after(timeout):
        async with stdio_client(server, errlog=errlog) as (read, write), \
                ClientSession(read, write) as session:
            await session.initialize()
            return await session.call_tool(tool, arguments)
