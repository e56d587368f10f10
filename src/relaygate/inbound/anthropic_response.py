"""OpenAI chat completion → Anthropic ``message``, and the gateway's errors in
Anthropic's shape (pure, no I/O).

* ``reasoning_content`` becomes a ``thinking`` block first (its signature is left empty
  here; the presenter puts the gateway's in, ``inbound/anthropic_signature.py``), then
  the text, then one ``tool_use`` block per tool call with its arguments parsed into
  ``input`` (arguments that are not a JSON object: ``{}``).
* ``finish_reason``: ``stop`` → ``end_turn`` (``stop_sequence`` when the upstream names
  which of the request's ``stop_sequences`` matched: :func:`matched_stop`), ``length`` →
  ``max_tokens``,
  ``tool_calls``/``function_call`` → ``tool_use``, ``content_filter`` → ``refusal``.
* usage: ``input_tokens`` is the prompt without cache reads (Anthropic's convention),
  ``cache_read_input_tokens`` the cache reads, ``output_tokens`` the completion.
* Errors: ``{"type": "error", "error": {"type", "message"}}``, the type picked from the
  gateway's error code, OpenAI type and status (:func:`error_type`).
"""

from __future__ import annotations

import os
from typing import Any

import orjson

__all__ = [
    "error_frame",
    "error_object",
    "error_type",
    "matched_stop",
    "message_id",
    "stop_reason",
    "to_message",
    "usage_of",
]

_STOP = {
    "stop": "end_turn",
    "length": "max_tokens",
    "tool_calls": "tool_use",
    "function_call": "tool_use",
    "content_filter": "refusal",
}


def stop_reason(finish: Any) -> str:
    return _STOP.get(finish, "end_turn") if isinstance(finish, str) else "end_turn"


def message_id(openai_id: Any) -> str:
    """``msg_…`` from a chat completion id (a random one without)."""
    if isinstance(openai_id, str) and openai_id:
        rest = openai_id.removeprefix("chatcmpl-")
        return rest if rest.startswith("msg_") else "msg_" + rest
    return "msg_" + os.urandom(12).hex()


def _int(raw: dict[str, Any], key: str) -> int:
    v = raw.get(key)
    return v if isinstance(v, int) and not isinstance(v, bool) and v > 0 else 0


def usage_of(raw: Any) -> dict[str, int]:
    """Anthropic usage from an OpenAI usage object."""
    if not isinstance(raw, dict):
        return {"input_tokens": 0, "output_tokens": 0}
    details = raw.get("prompt_tokens_details")
    cached = _int(details, "cached_tokens") if isinstance(details, dict) else 0
    prompt = _int(raw, "prompt_tokens")
    out = {"input_tokens": max(prompt - cached, 0), "output_tokens": _int(raw, "completion_tokens")}
    if cached:
        out["cache_read_input_tokens"] = min(cached, prompt)
    return out


def tool_input(arguments: Any) -> dict[str, Any]:
    if isinstance(arguments, dict):
        return arguments
    if isinstance(arguments, str) and arguments.strip():
        try:
            parsed = orjson.loads(arguments)
        except orjson.JSONDecodeError:
            return {}
        if isinstance(parsed, dict):
            return parsed
    return {}


def matched_stop(choice: dict[str, Any], stops: tuple[str, ...]) -> str | None:
    """Which of the request's stop sequences ended the answer, when the upstream says so:
    vLLM, SGLang and others put the matched string in the choice's ``stop_reason`` (some
    name it ``matched_stop``); OpenAI itself says nothing, and then it is None."""
    if not stops or choice.get("finish_reason") != "stop":
        return None
    for name in ("stop_reason", "matched_stop"):
        value = choice.get(name)
        if isinstance(value, str) and value in stops:
            return value
    return None


def to_message(obj: dict[str, Any], model: str, stops: tuple[str, ...] = ()) -> dict[str, Any]:
    """The Anthropic ``message`` for a chat completion ``obj``; ``model`` as the client
    named it; ``stops``: the request's ``stop_sequences``."""
    choices = obj.get("choices")
    choice = choices[0] if isinstance(choices, list) and choices else {}
    choice = choice if isinstance(choice, dict) else {}
    msg = choice.get("message")
    msg = msg if isinstance(msg, dict) else {}
    content: list[dict[str, Any]] = []
    reasoning = msg.get("reasoning_content")
    if isinstance(reasoning, str) and reasoning:
        content.append({"type": "thinking", "thinking": reasoning, "signature": ""})
    text = msg.get("content")
    if isinstance(text, str) and text:
        content.append({"type": "text", "text": text})
    calls = msg.get("tool_calls")
    fc = msg.get("function_call")
    if not isinstance(calls, list) and isinstance(fc, dict):
        calls = [{"id": None, "function": fc}]
    for n, call in enumerate(calls if isinstance(calls, list) else ()):
        fn = call.get("function") if isinstance(call, dict) else None
        if not isinstance(fn, dict):
            continue
        assert isinstance(call, dict)
        call_id = call.get("id")
        content.append(
            {
                "type": "tool_use",
                "id": call_id if isinstance(call_id, str) and call_id else f"toolu_{n}",
                "name": str(fn.get("name") or ""),
                "input": tool_input(fn.get("arguments")),
            }
        )
    if not content:
        content.append({"type": "text", "text": ""})
    reason = stop_reason(choice.get("finish_reason"))
    if reason == "end_turn" and any(b["type"] == "tool_use" for b in content):
        reason = "tool_use"
    stop = matched_stop(choice, stops) if reason == "end_turn" else None
    if stop is not None:
        reason = "stop_sequence"
    return {
        "id": message_id(obj.get("id")),
        "type": "message",
        "role": "assistant",
        "model": model,
        "content": content,
        "stop_reason": reason,
        "stop_sequence": stop,
        "usage": usage_of(obj.get("usage")),
    }


# ---------------------------------------------------------------- errors

_BY_CODE = {
    "model_not_found": "not_found_error",
    "unknown_url": "not_found_error",
    "object_not_found": "not_found_error",
    "insufficient_quota": "permission_error",
    "upstream_auth_failed": "api_error",
    "service_unavailable": "overloaded_error",
    "channel_busy": "rate_limit_error",
}
_BY_STATUS = {
    400: "invalid_request_error",
    401: "authentication_error",
    402: "permission_error",
    403: "permission_error",
    404: "not_found_error",
    413: "invalid_request_error",
    422: "invalid_request_error",
    429: "rate_limit_error",
    503: "overloaded_error",
    529: "overloaded_error",
}


def error_type(code: Any, openai_type: Any, status: int) -> str:
    """The Anthropic error type for one of the gateway's errors: by its code first, then
    its OpenAI type (``invalid_request_error`` stays one whatever the status the error
    table gives it), then the HTTP status (OpenAI's statuses, which are Anthropic's)."""
    if isinstance(code, str) and code in _BY_CODE:
        return _BY_CODE[code]
    if openai_type == "rate_limit_error":
        return "rate_limit_error"
    if openai_type == "permission_error":
        return "permission_error"
    if status == 401:
        return "authentication_error"
    if openai_type == "invalid_request_error" and status < 500:
        return "invalid_request_error"
    return _BY_STATUS.get(status, "api_error" if status >= 500 else "invalid_request_error")


def error_object(kind: str, message: str) -> dict[str, Any]:
    return {"type": "error", "error": {"type": kind, "message": message}}


def error_frame(payload: bytes) -> bytes:
    """An ``event: error`` frame for the chat relay's mid-stream error payload
    (``{"error": {message, type, code}}``)."""
    try:
        obj = orjson.loads(payload)
    except orjson.JSONDecodeError:
        obj = {}
    err = obj.get("error") if isinstance(obj, dict) else None
    err = err if isinstance(err, dict) else {}
    message = err.get("message")
    code = err.get("code")
    kind = error_type(code, err.get("type"), 500)
    if code == "stream_cut":
        kind = "overloaded_error"
    body = error_object(kind, message if isinstance(message, str) else "The stream failed.")
    return b"event: error\ndata: " + orjson.dumps(body) + b"\n\n"
