"""A tiny MCP stdio server for the tests of the mcp-<server>-<tool> nodes."""

from mcp.server.fastmcp import FastMCP

server = FastMCP("tiny")


@server.tool()
def add(a: int, b: int) -> int:
    """Add two numbers."""
    return a + b


@server.tool()
def greet(name: str) -> str:
    """Plain text."""
    return f"hello {name}"


@server.tool(structured_output=False)
def listing() -> str:
    """JSON text, as content only (parsed by the node)."""
    return '{"files": ["a.txt", "b.txt"], "count": 2, "_hidden": 1}'


@server.tool()
def fail(reason: str) -> str:
    """A tool error."""
    raise ValueError(f"cannot: {reason}")


if __name__ == "__main__":
    server.run()
