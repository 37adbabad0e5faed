"""The ``http`` node: one HTTP request with urllib, reported as pflow's HttpNode does.

Non-2xx responses are handled failures (``error: "HTTP <code>"``). A mistake in the params
(no url, a bad method or timeout, both auth_token and api_key) fails the node without an
error edge, as pflow raises it from ``prep``. Network errors raise so that the engine retries
them (3 attempts, 1 s apart); after the last one the node writes ``error`` and takes the
``error`` action (pflow raises: docs/compatibility.md), in a batch the item's exception is a
``ValueError`` as in pflow.
"""

from __future__ import annotations

import base64
import json
import time
import urllib.error
import urllib.parse
import urllib.request
from email.message import Message
from typing import Any

from .base import NodeFailure, NodeType, Param, RunContext, abort


class NetworkError(NodeFailure, ValueError):
    """A request that could not be made (connection, timeout): pflow's ``ValueError``."""


NetworkError.__name__ = NetworkError.__qualname__ = "ValueError"  # as recorded in errors[i].exception


class _NoFormType(urllib.request.HTTPHandler):
    """urllib gives a text body ``application/x-www-form-urlencoded``; pflow (requests) sends
    no Content-Type for it: the flow's headers say what it is."""

    def http_request(self, request: urllib.request.Request) -> urllib.request.Request:
        request = super().http_request(request)
        if getattr(request, "no_form_type", False):
            request.remove_header("Content-type")
        return request


class _NoFormTypeS(urllib.request.HTTPSHandler):
    def https_request(self, request: urllib.request.Request) -> urllib.request.Request:
        request = super().https_request(request)
        if getattr(request, "no_form_type", False):
            request.remove_header("Content-type")
        return request

METHODS = frozenset({"GET", "POST", "PUT", "DELETE", "PATCH", "HEAD", "OPTIONS"})
_BINARY_TYPES = (
    "image/",
    "video/",
    "audio/",
    "application/pdf",
    "application/octet-stream",
    "application/zip",
    "application/gzip",
    "application/x-tar",
)


def _headers_dict(headers: Message) -> dict[str, str]:
    """Response headers as a plain dict; repeated headers are joined with ", "."""
    out: dict[str, str] = {}
    for key, value in headers.items():
        out[key] = f"{out[key]}, {value}" if key in out else value
    return out


def _parse_body(raw: bytes, headers: Message) -> tuple[Any, bool]:
    """(response, is_binary): base64 for binary types, JSON for JSON types, else text."""
    content_type = (headers.get("Content-Type") or "").lower()
    if any(t in content_type for t in _BINARY_TYPES):
        return base64.b64encode(raw).decode("ascii"), True
    charset = headers.get_content_charset()
    try:
        text = raw.decode(charset or "utf-8", errors="replace" if charset else "strict")
    except (UnicodeDecodeError, LookupError):
        return base64.b64encode(raw).decode("ascii"), True
    if "json" in content_type:
        try:
            return json.loads(text), False
        except ValueError:
            return text, False
    return text, False


def _prepare(params: dict[str, Any]) -> urllib.request.Request | str:
    """The request to send, or a validation error message."""
    url = params.get("url")
    if not url or not isinstance(url, str):
        return "HTTP node requires 'url' parameter"
    if urllib.parse.urlsplit(url).scheme.lower() not in ("http", "https"):
        return f"Unsupported URL scheme in '{url}' (use http:// or https://)"
    body = params.get("body")
    method = (params.get("method") or ("POST" if body else "GET")).upper()
    if method not in METHODS:
        return f"Invalid HTTP method '{method}'. Allowed: {', '.join(sorted(METHODS))}"
    headers = {str(k): str(v) for k, v in (params.get("headers") or {}).items()}
    auth_token, api_key = params.get("auth_token"), params.get("api_key")
    if auth_token and api_key:
        return "Cannot specify both auth_token and api_key - they are mutually exclusive"
    if auth_token:
        headers["Authorization"] = f"Bearer {auth_token}"
    if api_key:
        headers[params.get("api_key_header") or "X-API-Key"] = str(api_key)
    data: bytes | None = None
    if isinstance(body, bytes):
        data = body
    elif isinstance(body, str):
        data = body.encode("utf-8")
    elif body is not None:
        data = json.dumps(body).encode("utf-8")
        if not any(k.lower() == "content-type" for k in headers):
            headers["Content-Type"] = "application/json"
    if not any(k.lower() == "user-agent" for k in headers):
        headers["User-Agent"] = "pflow-tui"
    query = params.get("params")
    if query:
        url += ("&" if urllib.parse.urlsplit(url).query else "?") + urllib.parse.urlencode(
            query, doseq=True
        )
    request = urllib.request.Request(url, data=data, headers=headers, method=method)
    if data is not None and not any(k.lower() == "content-type" for k in headers):
        request.no_form_type = True  # type: ignore[attr-defined]
    return request


def http_request(params: dict[str, Any], ctx: RunContext) -> dict[str, Any]:
    """Send the request; 2xx succeeds, other statuses are handled failures."""
    request = _prepare(params)
    if isinstance(request, str):
        raise abort(ValueError, request)
    raw_timeout = params.get("timeout", 30)
    try:
        timeout = 30 if raw_timeout is None else int(raw_timeout)
    except (TypeError, ValueError):
        timeout = 0
    if timeout <= 0:
        raise abort(ValueError, f"Timeout must be a positive integer, got: {raw_timeout}")
    url = params["url"]
    opener = urllib.request.build_opener(_NoFormType, _NoFormTypeS)  # honours *_proxy env vars
    start = time.perf_counter()
    try:
        try:
            response = opener.open(request, timeout=timeout)
        except urllib.error.HTTPError as exc:  # non-2xx: still a response
            response = exc
        elapsed = time.perf_counter() - start
        with response:
            status = response.status if response.status is not None else response.getcode()
            headers = response.headers
            raw = response.read()
    except (TimeoutError, urllib.error.URLError) as exc:
        if isinstance(exc, TimeoutError) or isinstance(exc.reason, TimeoutError):
            raise NetworkError(
                f"Request to {url} timed out after {timeout} seconds. "
                "Try increasing the timeout or check if the service is responding."
            ) from exc
        raise NetworkError(
            f"Could not connect to {url}. Please check the URL is correct and the service "
            f"is running. ({exc.reason})"
        ) from exc
    except OSError as exc:
        raise NetworkError(f"HTTP request failed: {exc}") from exc
    body, is_binary = _parse_body(raw, headers)
    result: dict[str, Any] = {
        "response": body,
        "response_is_binary": is_binary,
        "status_code": status,
        "response_headers": _headers_dict(headers),
        "response_time": elapsed,
    }
    if not 200 <= status < 300:
        result["error"] = f"HTTP {status}"
    return result


HTTP = NodeType(
    name="http",
    run=http_request,
    params=(
        Param("url", "str", required=True, description="API endpoint to call"),
        Param("method", "str", description="HTTP method (GET, or POST when a body is given)"),
        Param("body", "any", description="Payload: dict/list sent as JSON, str as is"),
        Param("headers", "dict", description="Additional headers"),
        Param("params", "dict", description="Query parameters"),
        Param("timeout", "int", default=30, description="Request timeout in seconds"),
        Param("auth_token", "str", description="Bearer token for the Authorization header"),
        Param("api_key", "str", description="API key (sent in api_key_header)"),
        Param("api_key_header", "str", default="X-API-Key", description="Header for api_key"),
    ),
    outputs=("response", "response_is_binary", "status_code", "response_headers", "response_time"),
    output_types=(("response", "dict|str"), ("response_is_binary", "bool"), ("status_code", "int"),
                  ("response_headers", "dict"), ("response_time", "float"), ("error", "str")),
    description="Make an HTTP request (JSON parsed, text, or base64 for binary).",
    blocking=True,
    max_retries=3,
    wait=1.0,
)
