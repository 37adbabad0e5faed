"""The ``read-file`` and ``write-file`` nodes, with pflow's formats and messages.

Relative paths resolve against the current working directory, as in pflow.
"""

from __future__ import annotations

import base64
import binascii
import json
import os
from typing import Any

from .base import NodeFailure, NodeType, Param, RunContext, abort

#: Extensions read as binary without trying to decode them (pflow's list).
BINARY_EXTENSIONS = frozenset(
    {
        ".png",
        ".jpg",
        ".jpeg",
        ".gif",
        ".bmp",
        ".ico",
        ".webp",
        ".pdf",
        ".zip",
        ".tar",
        ".gz",
        ".7z",
        ".rar",
        ".mp3",
        ".mp4",
        ".wav",
        ".avi",
        ".mov",
        ".exe",
        ".dll",
        ".so",
        ".dylib",
        ".woff",
        ".woff2",
        ".ttf",
        ".bin",
        ".dat",
    }
)


def _absolute(path: Any) -> str:
    """``~``-expanded, absolute, normalised path."""
    return os.path.normpath(os.path.abspath(os.path.expanduser(str(path))))


def _text_lines(path: str, encoding: str) -> list[str] | None:
    """The file's lines (newlines kept), or None if it does not decode."""
    try:
        with open(path, encoding=encoding) as f:
            return f.readlines()
    except UnicodeDecodeError:
        return None


def read_file(params: dict[str, Any], ctx: RunContext) -> dict[str, Any]:
    """Read a file: text with ``N: `` line numbers (optional), or base64 for binary."""
    if not params.get("file_path"):
        raise abort(ValueError, "Missing required 'file_path' parameter")  # pflow: from prep
    path = _absolute(params["file_path"])
    encoding = params.get("encoding") or "utf-8"
    if not os.path.exists(path):
        return {
            "error": f"Error: File '{path}' does not exist. Please check the path and try again.",
        }
    if os.path.isdir(path):
        return {"error": f"Error: '{path}' is a directory, not a file."}
    try:
        if os.path.splitext(path)[1].lower() not in BINARY_EXTENSIONS:
            lines = _text_lines(path, encoding)
            if lines is not None:
                if params.get("line_numbers", True):
                    lines = [f"{i}: {line}" for i, line in enumerate(lines, 1)]
                return {"content": "".join(lines), "content_is_binary": False, "file_path": path}
        with open(path, "rb") as f:
            raw = f.read()
    except LookupError:
        return {"error": f"Error: Unknown encoding '{encoding}'."}
    except PermissionError as exc:
        msg = f"Error: Permission denied when reading '{path}'. Check file permissions."
        raise NodeFailure(msg) from exc
    except OSError as exc:
        raise NodeFailure(f"Error: Could not read '{path}'. {exc}") from exc
    encoded = base64.b64encode(raw).decode("ascii")
    return {"content": encoded, "content_is_binary": True, "file_path": path}


def write_file(params: dict[str, Any], ctx: RunContext) -> dict[str, Any]:
    """Write (or append) text or base64-decoded bytes, creating parent directories."""
    content = params.get("content")
    if content is None:
        raise abort(ValueError, "Missing required 'content' parameter")  # pflow: from prep
    if not params.get("file_path"):
        raise abort(ValueError, "Missing required 'file_path' parameter")  # pflow: from prep
    path = _absolute(params["file_path"])
    encoding = params.get("encoding") or "utf-8"
    append = bool(params.get("append", False))
    binary = bool(params.get("content_is_binary", False))
    data: bytes | str
    if binary:
        if isinstance(content, bytes):
            data = content
        elif isinstance(content, str):
            try:
                data = base64.b64decode(content)
            except (binascii.Error, ValueError) as exc:
                return {"error": f"Invalid base64 content: {str(exc)[:100]}"}
        else:
            return {"error": "Binary content must be a base64 string"}
    elif isinstance(content, (dict, list)):
        data = json.dumps(content, ensure_ascii=False, indent=2)
    else:
        data = content if isinstance(content, str) else str(content)
    if os.path.isdir(path):
        return {"error": f"Error: '{path}' is a directory, not a file."}
    try:
        os.makedirs(os.path.dirname(path), exist_ok=True)
        mode = "a" if append else "w"
        if isinstance(data, bytes):
            with open(path, mode + "b") as f:
                f.write(data)
        else:
            with open(path, mode, encoding=encoding) as f:
                f.write(data)
    except LookupError:
        return {"error": f"Error: Unknown encoding '{encoding}'."}
    except PermissionError as exc:
        msg = (
            f"Error: Permission denied when writing to '{path}'. "
            "Check file and directory permissions."
        )
        raise NodeFailure(msg) from exc
    except OSError as exc:
        raise NodeFailure(f"Error: Could not write to '{path}'. {exc}") from exc
    if append:
        written = f"Successfully appended to '{path}'"
    elif binary:
        written = f"Successfully wrote binary file to '{path}'"
    else:
        written = f"Successfully wrote to '{path}'"
    return {"written": written}


READ_FILE = NodeType(
    name="read-file",
    run=read_file,
    params=(
        Param("file_path", "str", required=True, description="Path to the file to read"),
        Param("encoding", "str", default="utf-8", description="File encoding"),
        Param("line_numbers", "bool", default=True, description="Prefix lines with 'N: '"),
    ),
    outputs=("content", "content_is_binary", "file_path"),
    output_types=(("content", "str"), ("content_is_binary", "bool"), ("file_path", "str"), ("error", "str")),
    description="Read a file (text with line numbers, or base64 for binary).",
    blocking=True,
    max_retries=3,
    wait=0.1,
)

WRITE_FILE = NodeType(
    name="write-file",
    run=write_file,
    params=(
        Param("content", "text", required=True,
              description="Text (a dict or list from a template becomes JSON text), or base64 bytes"),
        Param("file_path", "str", required=True, description="Path to the file to write"),
        Param("encoding", "str", default="utf-8", description="File encoding"),
        Param("append", "bool", default=False, description="Append instead of overwriting"),
        Param("content_is_binary", "bool", default=False, description="Content is base64"),
    ),
    outputs=("written",),
    output_types=(("written", "bool"), ("error", "str")),
    description="Write content to a file, creating parent directories.",
    blocking=True,
    max_retries=3,
    wait=0.1,
)
