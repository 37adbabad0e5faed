"""The ``llm`` node: an offline, deterministic provider, or a real model via ``llm``.

The offline provider (``model: "offline"``) derives its answer from the prompt alone, so
runs are reproducible. ``fail_rate`` simulates flaky providers: whether an attempt fails
is a pure function of (prompt, attempt), so a retry may succeed, always the same way.

Any other model goes through Simon Willison's ``llm`` library (the ``llm`` extra); no
``model`` means ``llm``'s default model. A flow that needs ``llm`` where it is missing or
has no default model fails validation (never a silent switch to the offline provider).
Only the options a model declares are sent (``temperature`` is not, to a model without
it; ``max_tokens`` goes by the model's own name, e.g. ``max_output_tokens``). A missing
key or an unknown model is a handled failure (the ``error`` output): a retry cannot fix it."""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import anyio
import anyio.to_thread

from .base import NodeFailure, NodeType, Param, RunContext

OFFLINE = "offline"
_CHOICES = re.compile(r"\bone of\s*:?\s*(.+)", re.IGNORECASE)
_TRIM = " \t\"'`.[](){}?!*"
_configured: str | None = None  # "" when llm's default model is usable, else why not; probed once
#: what models call the response length limit, in order of preference
MAX_TOKENS_NAMES = ("max_tokens", "max_output_tokens", "max_completion_tokens", "max_new_tokens")


def parse_json_response(text: str) -> Any:
    """JSON in ``text`` (optionally in a ``` / ```json fence) parsed, else ``text`` as is."""
    trimmed = text.strip()
    if "```" in trimmed:
        start = trimmed.find("```json") + 7 if "```json" in trimmed else trimmed.find("```") + 3
        end = trimmed.find("```", start)
        if end > start:
            trimmed = trimmed[start:end].strip()
    try:
        return json.loads(trimmed)
    except ValueError:
        return text


def _unit(text: str) -> float:
    """A stable number in [0, 1) derived from ``text``."""
    return int.from_bytes(hashlib.sha256(text.encode("utf-8")).digest()[:8], "big") / 2.0**64


def _choices(prompt: str) -> list[str]:
    """The options of the first "one of: a, b, c" line in ``prompt``."""
    for line in prompt.splitlines():
        match = _CHOICES.search(line)
        if match:
            listed = re.split(r"\.\s", match[1], maxsplit=1)[0]
            items = (c.strip(_TRIM) for c in re.split(r"[,|]|\s+or\s+", listed))
            found = [c for c in items if c]
            if found:
                return found
    return []


def offline_answer(prompt: str) -> Any:
    """The offline provider's deterministic answer to ``prompt``."""
    digest = hashlib.sha256(prompt.encode("utf-8")).hexdigest()
    choices = _choices(prompt)
    if choices:
        return choices[int(digest, 16) % len(choices)]
    if "json" in prompt.lower():
        return {"answer": f"offline {digest[:8]}", "prompt_chars": len(prompt)}
    return f"Offline answer {digest[:8]}: {' '.join(prompt.split())[:60]}"


def _words(value: Any) -> int:
    text = value if isinstance(value, str) else json.dumps(value)
    return len(text.split())


def _usage(model: str, input_tokens: int, output_tokens: int, details: dict | None = None) -> dict:
    details = details or {}
    return {
        "model": model,
        "input_tokens": input_tokens,
        "output_tokens": output_tokens,
        "total_tokens": input_tokens + output_tokens,
        "cache_creation_input_tokens": details.get("cache_creation_input_tokens", 0),
        "cache_read_input_tokens": details.get("cache_read_input_tokens", 0),
    }


def default_model_problem() -> str | None:
    """Why ``llm``'s default model cannot be used (not installed, no default model, no key),
    or None when it can. Probed once per process (importing ``llm`` takes a while)."""
    global _configured
    if _configured is None:
        try:
            import llm  # type: ignore[import-not-found]  # start-up time: only flows with llm nodes
        except ImportError:
            _configured = "the llm library is not installed (pip install 'pflow-tui[llm]')"
        else:
            try:
                model = llm.get_model()
                if getattr(model, "needs_key", None):
                    model.get_key()  # raises when no key is configured
            except Exception as exc:  # unknown default model, no key: not usable as it is
                _configured = f"llm's default model is not usable ({type(exc).__name__}: {exc})"
            else:
                _configured = ""
    return _configured or None


def check_llm(params: Mapping[str, Any]) -> Iterator[tuple[str, str, str]]:
    """No ``model``: llm's default model must be usable (else the flow fails validation)."""
    if params.get("model") in (None, ""):
        problem = default_model_problem()
        if problem is not None:
            yield ("model", f"no model given, and {problem}",
                   'give "model": "offline" for the built-in deterministic provider, or a model '
                   "id of the llm library (llm models list), or set llm's default with "
                   "llm models default NAME")


def _options(model: Any, opts: dict[str, Any]) -> dict[str, Any]:
    """The prompt options ``model`` declares: temperature only if it has one, max_tokens by
    the model's own name for it."""
    declared = set(getattr(getattr(model, "Options", None), "model_fields", None) or ())
    out: dict[str, Any] = {}
    if opts["temperature"] is not None and "temperature" in declared:
        out["temperature"] = opts["temperature"]
    if opts["max_tokens"] is not None:
        name = next((n for n in MAX_TOKENS_NAMES if n in declared), None)
        if name is not None:
            out[name] = opts["max_tokens"]
    return out


def _real_call(prompt: str, opts: dict[str, Any]) -> dict[str, Any]:
    """Prompt a real model through the ``llm`` library (blocking)."""
    try:
        import llm  # type: ignore[import-not-found]
    except ImportError as exc:
        raise NodeFailure(
            f"Model {opts['model']!r} needs the 'llm' library: install llm "
            "(pip install llm, then configure a key with 'llm keys set <provider>'), "
            "or set model to 'offline'."
        ) from exc
    try:
        model = llm.get_model(opts["model"]) if opts["model"] else llm.get_model()
        if getattr(model, "needs_key", None):
            model.get_key()
    except Exception as exc:  # UnknownModelError, NeedsKeyException: a retry cannot fix them
        return {"response": "", "llm_usage": {},
                "error": f"{type(exc).__name__}: {exc} (llm models list: the models; "
                         "llm keys set PROVIDER: a key)"}
    kwargs: dict[str, Any] = {"stream": False, **_options(model, opts)}
    if opts["system"] is not None:
        kwargs["system"] = opts["system"]
    if opts["images"]:
        kwargs["attachments"] = [
            llm.Attachment(url=i)
            if i.startswith(("http://", "https://"))
            else llm.Attachment(path=i)
            for i in opts["images"]
        ]
    response = model.prompt(prompt, **kwargs)
    text = response.text()
    usage = response.usage()
    model_id = getattr(model, "model_id", opts["model"]) or "unknown"
    llm_usage: dict[str, Any] = {}
    if usage:
        if isinstance(usage, dict):
            inp = usage.get("input", usage.get("input_tokens")) or 0
            out = usage.get("output", usage.get("output_tokens")) or 0
            llm_usage = _usage(model_id, inp, out, usage)
        else:
            inp, out = usage.input or 0, usage.output or 0
            llm_usage = _usage(model_id, inp, out, _cache_details(getattr(usage, "details", None)))
    return {"response": parse_json_response(text), "llm_usage": llm_usage}


def _cache_details(details: Any) -> dict[str, int]:
    """Cached-token counts from a provider's usage details: Anthropic's names, or OpenAI's
    ``prompt_tokens_details.cached_tokens`` (as ``cache_read_input_tokens``)."""
    if not isinstance(details, dict):
        return {}
    out = {k: details[k] for k in ("cache_creation_input_tokens", "cache_read_input_tokens")
           if isinstance(details.get(k), int)}
    prompt = details.get("prompt_tokens_details") or details.get("input_tokens_details")
    if (isinstance(prompt, dict) and isinstance(prompt.get("cached_tokens"), int)
            and "cache_read_input_tokens" not in out):
        out["cache_read_input_tokens"] = prompt["cached_tokens"]
    return out


def _images(value: Any) -> list[str] | str:
    """The image list, or an error message."""
    images = value if isinstance(value, list) else ([] if value in (None, "") else [value])
    for img in images:
        if not isinstance(img, str):
            return f"Image must be a string (URL or path), got: {type(img).__name__}"
        if not img.startswith(("http://", "https://")) and not Path(img).exists():
            return f"Image file not found: {img}"
    return images


async def run_llm(params: dict[str, Any], ctx: RunContext) -> dict[str, Any]:
    """Answer ``prompt`` offline (on the event loop) or via ``llm`` (in a worker thread)."""
    prompt = params.get("prompt")
    if not prompt:
        return {
            "response": "",
            "llm_usage": {},
            "error": "LLM node requires 'prompt' parameter. Use template syntax like "
            '"prompt": "${previous_node.output}" to wire data from other nodes.',
        }
    if not isinstance(prompt, str):
        prompt = (
            json.dumps(prompt, ensure_ascii=False)
            if isinstance(prompt, (dict, list))
            else str(prompt)
        )
    images = _images(params.get("images"))
    if isinstance(images, str):
        return {"response": "", "llm_usage": {}, "error": images}
    model = params.get("model")
    if model == OFFLINE:
        latency = float(params.get("latency") or 0.0)
        if latency > 0:
            await anyio.sleep(latency)
        if _unit(f"{prompt}|{ctx.attempt}") < float(params.get("fail_rate") or 0.0):
            raise RuntimeError(f"Simulated offline LLM failure (attempt {ctx.attempt})")
        answer = offline_answer(prompt)
        in_tokens = _words(prompt) + _words(params.get("system") or "")
        return {"response": answer, "llm_usage": _usage(OFFLINE, in_tokens, _words(answer))}
    temperature = params.get("temperature")
    opts = {
        "model": model,
        "system": params.get("system"),
        "temperature": max(0.0, min(2.0, 1.0 if temperature is None else float(temperature))),
        "max_tokens": params.get("max_tokens"),
        "images": images,
    }
    return await anyio.to_thread.run_sync(_real_call, prompt, opts)


LLM = NodeType(
    name="llm",
    run=run_llm,
    params=(
        Param("prompt", "str", required=True, description="Text prompt to send to the model"),
        Param("model", "str", description="Model id, or 'offline' for the built-in provider"),
        Param("system", "str", description="System prompt"),
        Param("temperature", "float", default=1.0,
              description="Sampling temperature (0-2), sent to models that have one"),
        Param("max_tokens", "int", description="Max response tokens"),
        Param("images", "list", description="Image URLs or file paths"),
        Param("latency", "float", default=0.0, description="Offline: seconds before answering"),
        Param("fail_rate", "float", default=0.0, description="Offline: failure probability"),
    ),
    outputs=("response", "llm_usage"),
    output_types=(("response", "any"), ("llm_usage", "dict"), *((f"llm_usage.{k}", "int") for k in (
        "cache_creation_input_tokens", "cache_read_input_tokens", "input_tokens", "output_tokens",
        "total_tokens")), ("llm_usage.model", "str")),
    description="Ask a language model (offline deterministic provider built in).",
    blocking=False,
    max_retries=3,
    wait=1.0,
    check=check_llm,
)
