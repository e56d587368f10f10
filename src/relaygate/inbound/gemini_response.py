"""OpenAI chat completion → Gemini ``GenerateContentResponse``, and errors in Google's
shape (pure, no I/O).

* each choice → a candidate: ``reasoning_content`` first as a ``{"text", "thought": true}``
  part, then the text, then one ``functionCall`` part per tool call (``args`` parsed,
  ``id`` kept, a ``thoughtSignature`` from ``extra_content.google``);
* ``finish_reason``: ``stop``/``tool_calls`` → ``STOP``, ``length`` → ``MAX_TOKENS``,
  ``content_filter`` → ``SAFETY``, anything else → ``OTHER``;
* usage → ``usageMetadata``: ``candidatesTokenCount`` is the completion without the
  reasoning tokens, which are ``thoughtsTokenCount`` (as Gemini counts them);
* an error → ``{"error": {"code", "message", "status"}}`` with Google's status names.
"""

from __future__ import annotations

from typing import Any

import orjson

from relaygate.errors import (
    AuthError,
    InvalidRequest,
    ModelNotFound,
    NotFound,
    NotImplementedByProvider,
    PolicyError,
    QuotaExceeded,
    RateLimited,
    RelayError,
    ServiceUnavailable,
    UpstreamTimeout,
)

__all__ = [
    "candidate",
    "error_body",
    "finish_reason",
    "function_call_part",
    "google_status",
    "response_body",
    "usage_metadata",
]

_FINISH = {
    "stop": "STOP",
    "tool_calls": "STOP",
    "function_call": "STOP",
    "length": "MAX_TOKENS",
    "content_filter": "SAFETY",
}

#: our error classes → Google's status names (checked in order, after the codes)
_KINDS: tuple[tuple[type[RelayError], str], ...] = (
    (AuthError, "UNAUTHENTICATED"),
    (PolicyError, "PERMISSION_DENIED"),
    (QuotaExceeded, "RESOURCE_EXHAUSTED"),
    (RateLimited, "RESOURCE_EXHAUSTED"),
    (ModelNotFound, "NOT_FOUND"),
    (NotFound, "NOT_FOUND"),
    (NotImplementedByProvider, "UNIMPLEMENTED"),
    (ServiceUnavailable, "UNAVAILABLE"),
    (UpstreamTimeout, "DEADLINE_EXCEEDED"),
    (InvalidRequest, "INVALID_ARGUMENT"),
)
#: error codes (ours, or an upstream's) → status names, checked first
_CODES = {
    "invalid_api_key": "UNAUTHENTICATED",
    "no_api_key": "UNAUTHENTICATED",
    "insufficient_quota": "RESOURCE_EXHAUSTED",
    "rate_limit_exceeded": "RESOURCE_EXHAUSTED",
    "model_not_found": "NOT_FOUND",
    "upstream_timeout": "DEADLINE_EXCEEDED",
    "stream_cut": "UNAVAILABLE",
    "service_unavailable": "UNAVAILABLE",
    "request_timeout": "DEADLINE_EXCEEDED",
}
#: HTTP statuses → status names, the last resort
_STATUSES = {
    400: "INVALID_ARGUMENT",
    401: "UNAUTHENTICATED",
    402: "PERMISSION_DENIED",
    403: "PERMISSION_DENIED",
    404: "NOT_FOUND",
    408: "DEADLINE_EXCEEDED",
    409: "ABORTED",
    413: "INVALID_ARGUMENT",
    415: "INVALID_ARGUMENT",
    429: "RESOURCE_EXHAUSTED",
    499: "CANCELLED",
    501: "UNIMPLEMENTED",
    503: "UNAVAILABLE",
    504: "DEADLINE_EXCEEDED",
}


def finish_reason(reason: Any) -> str:
    return _FINISH.get(reason, "OTHER") if isinstance(reason, str) else "OTHER"


def google_status(err: RelayError, status: int) -> str:
    """Google's status name for ``err`` answered with HTTP ``status``."""
    if err.code in _CODES:
        return _CODES[err.code]
    for kind, name in _KINDS:
        if isinstance(err, kind):
            return name
    upstream = err.upstream_status if err.upstream_status is not None else status
    if 400 <= upstream < 500:
        return _STATUSES.get(upstream, "INVALID_ARGUMENT")
    return _STATUSES.get(upstream, "INTERNAL")


def error_body(err: RelayError, status: int) -> bytes:
    """``err`` as Google's error object (``code`` is the HTTP status sent)."""
    return orjson.dumps(
        {"error": {"code": status, "message": err.message, "status": google_status(err, status)}}
    )


def stream_error(payload: dict[str, Any]) -> dict[str, Any]:
    """The error of a stream that failed mid-way (OpenAI's ``{"error": {...}}`` chunk) in
    Google's shape."""
    err = payload.get("error")
    err = err if isinstance(err, dict) else {}
    code = err.get("code")
    message = err.get("message")
    name = _CODES.get(code, "INTERNAL") if isinstance(code, str) else "INTERNAL"
    http = {"UNAVAILABLE": 503, "DEADLINE_EXCEEDED": 504, "RESOURCE_EXHAUSTED": 429}
    return {
        "error": {
            "code": http.get(name, 400 if name == "INVALID_ARGUMENT" else 500),
            "message": message if isinstance(message, str) else "The stream failed.",
            "status": name,
        }
    }


def _args(arguments: Any) -> dict[str, Any]:
    if isinstance(arguments, dict):
        return arguments
    if isinstance(arguments, str) and arguments.strip():
        try:
            value = orjson.loads(arguments)
        except orjson.JSONDecodeError:
            return {}
        return value if isinstance(value, dict) else {}
    return {}


def function_call_part(call: dict[str, Any]) -> dict[str, Any] | None:
    """One OpenAI tool call as a ``functionCall`` part (None: not a function call)."""
    fn = call.get("function")
    if not isinstance(fn, dict):
        return None
    fc: dict[str, Any] = {"name": fn.get("name") or "", "args": _args(fn.get("arguments"))}
    if isinstance(call.get("id"), str) and call["id"]:
        fc["id"] = call["id"]
    part: dict[str, Any] = {"functionCall": fc}
    extra = call.get("extra_content")
    google = extra.get("google") if isinstance(extra, dict) else None
    if isinstance(google, dict) and isinstance(google.get("thought_signature"), str):
        part["thoughtSignature"] = google["thought_signature"]
    return part


def candidate(msg: dict[str, Any], reason: Any, index: int) -> dict[str, Any]:
    """A candidate from one choice's message and finish reason."""
    parts: list[dict[str, Any]] = []
    reasoning = msg.get("reasoning_content")
    if isinstance(reasoning, str) and reasoning:
        parts.append({"text": reasoning, "thought": True})
    text = msg.get("content")
    if isinstance(text, str) and text:
        parts.append({"text": text})
    calls = msg.get("tool_calls")
    for call in calls if isinstance(calls, list) else ():
        part = function_call_part(call) if isinstance(call, dict) else None
        if part is not None:
            parts.append(part)
    if not parts:
        parts.append({"text": ""})
    out: dict[str, Any] = {"content": {"parts": parts, "role": "model"}, "index": index}
    if reason is not None:
        out["finishReason"] = finish_reason(reason)
    return out


def usage_metadata(usage: Any) -> dict[str, Any] | None:
    if not isinstance(usage, dict):
        return None
    prompt = _int(usage.get("prompt_tokens"))
    completion = _int(usage.get("completion_tokens"))
    details = usage.get("completion_tokens_details")
    thoughts = _int(details.get("reasoning_tokens")) if isinstance(details, dict) else 0
    out: dict[str, Any] = {
        "promptTokenCount": prompt,
        "candidatesTokenCount": max(completion - thoughts, 0),
        "totalTokenCount": _int(usage.get("total_tokens")) or prompt + completion,
    }
    if thoughts:
        out["thoughtsTokenCount"] = thoughts
    prompt_details = usage.get("prompt_tokens_details")
    cached = _int(prompt_details.get("cached_tokens")) if isinstance(prompt_details, dict) else 0
    if cached:
        out["cachedContentTokenCount"] = cached
    return out


def _int(value: Any) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) else 0


def response_body(obj: dict[str, Any]) -> dict[str, Any]:
    """A whole chat completion as a ``GenerateContentResponse``."""
    candidates = []
    for i, choice in enumerate(obj.get("choices") or ()):
        if not isinstance(choice, dict):
            continue
        msg = choice.get("message")
        index = choice.get("index")
        msg = msg if isinstance(msg, dict) else {}
        index = index if isinstance(index, int) else i
        candidates.append(candidate(msg, choice.get("finish_reason") or "stop", index))
    out: dict[str, Any] = {"candidates": candidates}
    usage = usage_metadata(obj.get("usage"))
    if usage is not None:
        out["usageMetadata"] = usage
    if isinstance(obj.get("model"), str):
        out["modelVersion"] = obj["model"]
    if isinstance(obj.get("id"), str):
        out["responseId"] = obj["id"]
    return out
