"""Pushing a run's spans to an OpenTelemetry collector over OTLP/HTTP (JSON), no SDK needed.

:func:`push_otlp` sends the same ``TracesData`` documents the OTLP export writes, one POST
each (a line of the file: at most about 512 KiB), to ``ENDPOINT/v1/traces`` with
``Content-Type: application/json``, as the OTLP/HTTP exporters do (an endpoint with a path
of its own is used as it is). The collector's 429, 502, 503 and 504 answers are retried
(three times, waiting as ``Retry-After`` says, at most 5 s); any other answer than 2xx, or
no answer, is an :class:`~pflow_tui.engine.trace.export.ExportError` naming the endpoint
and what it said. A 2xx answer with ``partialSuccess`` is reported, not an error.
"""

from __future__ import annotations

import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

import orjson

RETRIED = frozenset({429, 502, 503, 504})
TRIES = 4  # the first POST and three retries
MAX_WAIT = 5.0  # seconds: the longest Retry-After honoured


class PushError(Exception):
    """The collector could not be reached or refused the spans."""


@dataclass
class Pushed:
    """What a push sent: requests, bytes, and what the collector rejected (partialSuccess)."""

    url: str
    requests: int = 0
    bytes: int = 0
    rejected: int = 0
    messages: list[str] = field(default_factory=list)


def traces_url(endpoint: str) -> str:
    """``http://host:4318`` -> ``http://host:4318/v1/traces``; a URL with a path is kept.
    ValueError for anything but an http(s) URL with a host."""
    parts = urllib.parse.urlsplit(endpoint.strip())
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise ValueError(f"{endpoint!r} is not an http:// or https:// URL with a host "
                         "(e.g. http://localhost:4318)")
    if parts.path in ("", "/"):
        parts = parts._replace(path="/v1/traces")
    return urllib.parse.urlunsplit(parts)


def push_otlp(lines: Iterable[bytes], endpoint: str, *, headers: Mapping[str, str] | None = None,
              timeout: float = 10.0) -> Pushed:
    """POST each ``TracesData`` line to the collector; see the module docs."""
    try:
        url = traces_url(endpoint)
    except ValueError as exc:
        raise PushError(f"--otlp-endpoint: {exc}") from None
    sent = Pushed(url)
    for line in lines:
        body = line.rstrip(b"\n")
        answer = _post(url, body, {"Content-Type": "application/json", "User-Agent": "pflow-tui",
                                   **(headers or {})}, timeout)
        sent.requests += 1
        sent.bytes += len(body)
        partial = answer.get("partialSuccess") if isinstance(answer, dict) else None
        if isinstance(partial, dict):
            rejected = partial.get("rejectedSpans")
            if isinstance(rejected, (int, str)) and str(rejected).isdigit():
                sent.rejected += int(rejected)
            if isinstance(partial.get("errorMessage"), str) and partial["errorMessage"]:
                sent.messages.append(partial["errorMessage"])
    return sent


def _post(url: str, body: bytes, headers: dict[str, str], timeout: float) -> object:
    """One POST, with the retries; the collector's JSON answer (None when it is not JSON)."""
    for attempt in range(1, TRIES + 1):
        request = urllib.request.Request(url, data=body, headers=headers, method="POST")
        try:
            with urllib.request.urlopen(request, timeout=timeout) as response:
                raw = response.read()
            try:
                return orjson.loads(raw) if raw else None
            except orjson.JSONDecodeError:
                return None
        except urllib.error.HTTPError as exc:
            said = _excerpt(exc.read())
            if exc.code in RETRIED and attempt < TRIES:
                time.sleep(_retry_after(exc.headers.get("Retry-After"), attempt))
                continue
            raise PushError(f"the collector at {url} answered HTTP {exc.code}"
                            + (f": {said}" if said else "")) from None
        except (urllib.error.URLError, TimeoutError, OSError) as exc:
            reason = getattr(exc, "reason", exc)
            raise PushError(f"cannot reach the collector at {url} ({reason}); is it running, "
                            "and listening for OTLP/HTTP (usually port 4318)?") from None
    raise AssertionError("unreachable")  # the last attempt returns or raises


def _retry_after(value: str | None, attempt: int) -> float:
    try:
        return min(MAX_WAIT, max(0.0, float(value))) if value else min(MAX_WAIT, 0.25 * 2 ** attempt)
    except ValueError:
        return min(MAX_WAIT, 0.25 * 2 ** attempt)


def _excerpt(raw: bytes, limit: int = 300) -> str:
    text = raw.decode("utf-8", "replace").strip().replace("\n", " ")
    return text if len(text) <= limit else text[:limit] + "…"
