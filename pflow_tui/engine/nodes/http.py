"""The ``http`` node: one HTTP request with httpx, reported as pflow's HttpNode (requests) does.

Non-2xx responses are handled failures (``error: "HTTP <code>"``). A mistake in the params
(no url, a bad method or timeout, both auth_token and api_key) fails the node without an
error edge, as pflow raises it from ``prep``. Network errors raise so that the engine retries
them (3 attempts, 1 s apart); after the last one the node writes ``error`` and takes the
``error`` action (pflow raises: docs/compatibility.md), in a batch the item's exception is a
``ValueError`` as in pflow.

As requests does: redirects are followed (at most 30; a 307 or 308 keeps its method and
body; a 303, a 302 other than on HEAD and a 301 on POST become a GET; the others go without
the body), gzip and deflate bodies are decoded, cookies set along a redirect chain are sent
on within it (never to the next request), Authorization is not sent to another host, the
``*_proxy`` variables are honoured. The timeout (seconds, a float: pflow's is an int) bounds
connecting and each wait for data.

The node runs on the run's event loop: stopping the run cancels the request at once. The
nodes of a run share one ``httpx.AsyncClient`` (``ctx.resources``), so connections to a host
are pooled and reused, and closed when the run ends. Where there is no run's loop (a worker
process, a Dask worker) each call has a client of its own. httpx is imported when a request
is made, not when the node type is registered (start-up time).
"""

from __future__ import annotations

import base64
import functools
import json
import math
import os
import time
import urllib.parse
from typing import TYPE_CHECKING, Any

from .base import NodeFailure, NodeType, Param, RunContext, abort

if TYPE_CHECKING:
    import ssl

    import httpx


class NetworkError(NodeFailure, ValueError):
    """A request that could not be made (connection, timeout): pflow's ``ValueError``."""


NetworkError.__name__ = NetworkError.__qualname__ = "ValueError"  # as recorded in errors[i].exception

METHODS = frozenset({"GET", "POST", "PUT", "DELETE", "PATCH", "HEAD", "OPTIONS"})
MAX_REDIRECTS = 30  # requests' limit
#: idle connections kept per client (no cap on open ones: a batch's max_concurrent bounds them)
KEEP_ALIVE = 64
_CLIENT = "http.client"  # its key in the run's resources
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


def _headers_dict(headers: httpx.Headers) -> dict[str, str]:
    """Response headers as a plain dict, names as the server wrote them (the first time);
    a repeated header's values are joined with ", " (requests' dict of them)."""
    out: dict[str, str] = {}
    names: dict[str, str] = {}  # lower-case name -> the name used in out
    encoding = headers.encoding
    for raw_key, raw_value in headers.raw:
        key, value = raw_key.decode(encoding), raw_value.decode(encoding)
        seen = names.setdefault(key.lower(), key)
        out[seen] = f"{out[seen]}, {value}" if seen in out else value
    return out


def _parse_body(raw: bytes, response: httpx.Response) -> tuple[Any, bool]:
    """(response, is_binary): base64 for binary types, JSON for JSON types, else text."""
    content_type = (response.headers.get("Content-Type") or "").lower()
    if any(t in content_type for t in _BINARY_TYPES):
        return base64.b64encode(raw).decode("ascii"), True
    charset = response.charset_encoding
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


class _Request:
    """What to send: method, url (query included), body, headers."""

    __slots__ = ("content", "headers", "method", "url")

    def __init__(self, method: str, url: str, content: bytes | None, headers: dict[str, str]) -> None:
        self.method, self.url, self.content, self.headers = method, url, content, headers


def _prepare(params: dict[str, Any]) -> _Request | str:
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
        data = body.encode("utf-8")  # no Content-Type: the flow's headers say what it is
    elif body is not None:
        data = json.dumps(body).encode("utf-8")
        if not any(k.lower() == "content-type" for k in headers):
            headers["Content-Type"] = "application/json"
    query = params.get("params")
    if query:
        url += ("&" if urllib.parse.urlsplit(url).query else "?") + urllib.parse.urlencode(
            query, doseq=True
        )
    return _Request(method, url, data, headers)


def _timeout(raw: Any) -> float:
    """The timeout in seconds: a positive number (pflow: an int), 30 when not given."""
    if raw is None:
        return 30
    try:
        timeout = float(raw) if not isinstance(raw, bool) else math.nan
    except (TypeError, ValueError):
        timeout = math.nan
    if not (0 < timeout < math.inf):
        raise abort(ValueError, f"Timeout must be a positive number of seconds, got: {raw}")
    return int(timeout) if timeout.is_integer() else timeout


@functools.cache
def _ssl_context() -> ssl.SSLContext:
    """One TLS context per process (certifi's CAs, or SSL_CERT_FILE / SSL_CERT_DIR): making
    one takes tens of milliseconds, and a worker process makes a client per call."""
    import httpx

    return httpx.create_ssl_context()


@functools.cache
def _no_cookies() -> type:
    import http.cookiejar

    class NoCookies(http.cookiejar.CookieJar):
        """A client's jar that keeps nothing: pflow's requests share no cookies (and looking
        at every response for them costs a third of a millisecond)."""

        def extract_cookies(self, response: Any, request: Any) -> None:
            pass

    return NoCookies


def new_client() -> httpx.AsyncClient:
    """A client as the node uses it: redirects followed by the node (as requests does), no
    cookie kept from one request to the next, connections kept alive for reuse."""
    import httpx

    return httpx.AsyncClient(
        headers={"User-Agent": "pflow-tui"}, cookies=_no_cookies()(), verify=_ssl_context(),
        follow_redirects=False,
        limits=httpx.Limits(max_connections=None, max_keepalive_connections=KEEP_ALIVE),
    )


async def _send(client: httpx.AsyncClient, req: _Request,
                timeout: float) -> tuple[httpx.Response, bytes, float]:
    """Send ``req``, following redirects: (the last response, its body, seconds until its
    headers came)."""
    import httpx

    jar: httpx.Cookies | None = None  # cookies set along the redirects, as requests keeps them
    request = client.build_request(req.method, req.url, content=req.content, headers=req.headers,
                                   timeout=timeout)
    start = time.perf_counter()
    for _ in range(MAX_REDIRECTS + 1):
        response = await client.send(request, stream=True)
        try:
            elapsed = time.perf_counter() - start
            body = await response.aread()  # (a redirect's too: its connection is then reused)
        finally:
            await response.aclose()
        following = response.next_request
        if following is None:
            return response, body, elapsed
        if "Set-Cookie" in response.headers:
            jar = jar if jar is not None else httpx.Cookies()
            jar.extract_cookies(response)
        if response.status_code not in (307, 308):  # as requests: the body goes with these only
            headers = following.headers.copy()
            for name in ("Content-Length", "Content-Type", "Transfer-Encoding"):
                headers.pop(name, None)
            following = client.build_request(following.method, following.url, headers=headers,
                                             timeout=timeout)
        if jar:
            jar.set_cookie_header(following)
        request = following
    raise httpx.TooManyRedirects(f"Exceeded {MAX_REDIRECTS} redirects.", request=request)


def _reason(exc: BaseException) -> str:
    """Why ``exc`` happened: its first OSError cause (``[Errno 111] Connection refused``), else itself."""
    import socket  # (a failure's import)

    seen: set[int] = set()
    todo: list[BaseException] = [exc]
    while todo:
        e = todo.pop(0)
        if id(e) in seen:
            continue
        seen.add(id(e))
        if isinstance(e, OSError) and e.errno is not None:
            if isinstance(e, socket.gaierror) or e.errno <= 0:
                return str(e)  # "[Errno -2] Name or service not known"
            return f"[Errno {e.errno}] {os.strerror(e.errno)}"  # asyncio: "Connect call failed (...)"
        todo.extend(getattr(e, "exceptions", ()))
        todo.extend(x for x in (e.__cause__, e.__context__) if x is not None)
    return str(exc) or type(exc).__name__


async def http_request(params: dict[str, Any], ctx: RunContext) -> dict[str, Any]:
    """Send the request; 2xx succeeds, other statuses are handled failures."""
    req = _prepare(params)
    if isinstance(req, str):
        raise abort(ValueError, req)
    timeout = _timeout(params.get("timeout", 30))
    import httpx  # start-up time: only a run with an http node pays for it

    url = params["url"]
    if not urllib.parse.urlsplit(req.url).hostname:  # requests' message; retried, as in pflow
        raise NetworkError(f"HTTP request failed: Invalid URL '{url}': No host supplied")
    try:
        if ctx.resources is not None:
            response, raw, elapsed = await _send(ctx.resources.get(_CLIENT, new_client), req, timeout)
        else:  # a worker process or a Dask worker: a client for this call
            async with new_client() as client:
                response, raw, elapsed = await _send(client, req, timeout)
    except httpx.TimeoutException as exc:
        raise NetworkError(
            f"Request to {url} timed out after {timeout} seconds. "
            "Try increasing the timeout or check if the service is responding."
        ) from exc
    except (httpx.NetworkError, httpx.RemoteProtocolError, httpx.ProxyError) as exc:
        raise NetworkError(
            f"Could not connect to {url}. Please check the URL is correct and the service "
            f"is running. ({_reason(exc)})"
        ) from exc
    except (httpx.HTTPError, httpx.InvalidURL, OSError) as exc:
        raise NetworkError(f"HTTP request failed: {exc}") from exc
    body, is_binary = _parse_body(raw, response)
    status = response.status_code
    result: dict[str, Any] = {
        "response": body,
        "response_is_binary": is_binary,
        "status_code": status,
        "response_headers": _headers_dict(response.headers),
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
        Param("timeout", "float", default=30, description="Request timeout in seconds"),
        Param("auth_token", "str", description="Bearer token for the Authorization header"),
        Param("api_key", "str", description="API key (sent in api_key_header)"),
        Param("api_key_header", "str", default="X-API-Key", description="Header for api_key"),
    ),
    outputs=("response", "response_is_binary", "status_code", "response_headers", "response_time"),
    output_types=(("response", "dict|str"), ("response_is_binary", "bool"), ("status_code", "int"),
                  ("response_headers", "dict"), ("response_time", "float"), ("error", "str")),
    description="Make an HTTP request (JSON parsed, text, or base64 for binary).",
    max_retries=3,
    wait=1.0,
)
