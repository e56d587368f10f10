"""Gemini ``GenerateContentResponse`` → OpenAI objects and chunks, errors, usage.

Shared by the non-stream answer and the stream translator:

* text parts → ``content``; parts with ``"thought": true`` → ``reasoning_content``;
* ``functionCall`` parts → ``tool_calls`` (Gemini's ``id`` when it gives one, else a
  synthesised ``call_…``); a part's ``thoughtSignature`` goes to the client in
  ``tool_calls[i].extra_content.google.thought_signature`` and must come back on the
  next turn (``gemini_request.py``);
* ``finishReason``: ``STOP`` → ``stop`` (``tool_calls`` when the turn has calls),
  ``MAX_TOKENS`` → ``length``, the safety family → ``content_filter``;
* a blocked prompt (``promptFeedback.blockReason``, no candidates) is answered as a
  completion with empty content and ``finish_reason: "content_filter"``, as OpenAI
  clients already handle a filtered answer (not as an error);
* usage: ``prompt_tokens = promptTokenCount (+ toolUsePromptTokenCount)``,
  ``completion_tokens = candidatesTokenCount + thoughtsTokenCount``,
  ``reasoning_tokens = thoughtsTokenCount``, ``cached_tokens =
  cachedContentTokenCount``. In a stream it is cumulative on every chunk; the last
  one wins.

Gemini's stream has no end marker: the translator sets ``done`` when every
candidate has reported its ``finishReason`` (or the prompt was blocked).
"""

from __future__ import annotations

import os
import time
from typing import Any

import orjson

from relaygate.errors import RelayError, UpstreamError
from relaygate.providers.base import Target, Usage, error_from_status, usage_chunk
from relaygate.providers.legacy_functions import LegacyStream

__all__ = [
    "GeminiStreamTranslator",
    "finish_reason",
    "google_error",
    "message_parts",
    "usage_from_gemini",
]

_FINISH = {
    "STOP": "stop",
    "MAX_TOKENS": "length",
    "SAFETY": "content_filter",
    "RECITATION": "content_filter",
    "BLOCKLIST": "content_filter",
    "PROHIBITED_CONTENT": "content_filter",
    "SPII": "content_filter",
    "IMAGE_SAFETY": "content_filter",
    "LANGUAGE": "content_filter",
}

#: Google error ``status`` → the HTTP status it stands for (errors inside a stream)
_STATUS = {
    "INVALID_ARGUMENT": 400,
    "FAILED_PRECONDITION": 400,
    "OUT_OF_RANGE": 400,
    "UNAUTHENTICATED": 401,
    "PERMISSION_DENIED": 403,
    "NOT_FOUND": 404,
    "ALREADY_EXISTS": 409,
    "RESOURCE_EXHAUSTED": 429,
    "CANCELLED": 499,
    "INTERNAL": 500,
    "UNAVAILABLE": 503,
    "DEADLINE_EXCEEDED": 504,
}
#: ``ErrorInfo.reason`` values that mean the channel's credentials are bad, whatever
#: the HTTP status (an invalid API key arrives as 400 INVALID_ARGUMENT)
_CREDENTIAL_REASONS = frozenset(
    {
        "API_KEY_INVALID",
        "API_KEY_EXPIRED",
        "API_KEY_SERVICE_BLOCKED",
        "API_KEY_HTTP_REFERRER_BLOCKED",
        "API_KEY_IP_ADDRESS_BLOCKED",
        "ACCESS_TOKEN_EXPIRED",
        "ACCESS_TOKEN_TYPE_UNSUPPORTED",
        "CONSUMER_INVALID",
        "CONSUMER_SUSPENDED",
        "SERVICE_DISABLED",
    }
)


def _int(raw: dict[str, Any], key: str) -> int:
    value = raw.get(key)
    return value if isinstance(value, int) and not isinstance(value, bool) else 0


def finish_reason(reason: Any, has_calls: bool) -> str:
    mapped = _FINISH.get(reason, "stop") if isinstance(reason, str) else "stop"
    return "tool_calls" if has_calls and mapped == "stop" else mapped


def usage_from_gemini(raw: dict[str, Any]) -> Usage:
    prompt = _int(raw, "promptTokenCount") + _int(raw, "toolUsePromptTokenCount")
    thoughts = _int(raw, "thoughtsTokenCount")
    completion = _int(raw, "candidatesTokenCount") + thoughts
    return Usage(
        prompt_tokens=prompt,
        completion_tokens=completion,
        total_tokens=prompt + completion,
        cached_tokens=_int(raw, "cachedContentTokenCount"),
        reasoning_tokens=thoughts,
    )


def google_error(status: int | None, obj: Any, secrets: tuple[str, ...]) -> RelayError:
    """A Google error body (``{"error": {code, message, status, details}}``) → our error.

    ``status`` is the HTTP status, ``None`` for an error inside a 200 stream (then the
    body's ``code`` or ``status`` picks it)."""
    err = obj.get("error") if isinstance(obj, dict) else None
    if isinstance(obj, list) and obj and isinstance(obj[0], dict):  # a JSON-array stream
        err = obj[0].get("error")
    err = err if isinstance(err, dict) else {}
    message = err.get("message") if isinstance(err, dict) else None
    message = message if isinstance(message, str) else ""
    kind = err.get("status")
    kind = kind if isinstance(kind, str) else None
    if status is None:
        code = err.get("code")
        status = (
            code if isinstance(code, int) and 400 <= code <= 599 else _STATUS.get(kind or "", 500)
        )
    details = err.get("details")
    for detail in details if isinstance(details, list) else ():
        if isinstance(detail, dict) and detail.get("reason") in _CREDENTIAL_REASONS:
            status = 401
    if kind == "UNAUTHENTICATED":
        status = 401
    return error_from_status(
        status, message, upstream_code=kind.lower() if kind else None, secrets=secrets
    )


def _call_id() -> str:
    return "call_" + os.urandom(12).hex()


def message_parts(parts: Any) -> tuple[str, str, list[dict[str, Any]], bool]:
    """``(text, reasoning, tool_calls, any_text)`` of a candidate's parts."""
    texts: list[str] = []
    thoughts: list[str] = []
    calls: list[dict[str, Any]] = []
    any_text = False
    for part in parts if isinstance(parts, list) else ():
        if not isinstance(part, dict):
            continue
        fc = part.get("functionCall")
        if isinstance(fc, dict):
            calls.append(_tool_call(fc, part.get("thoughtSignature")))
            continue
        text = part.get("text")
        if isinstance(text, str):
            if part.get("thought") is True:
                thoughts.append(text)
            else:
                texts.append(text)
                any_text = True
    return "".join(texts), "".join(thoughts), calls, any_text


def _tool_call(fc: dict[str, Any], signature: Any) -> dict[str, Any]:
    call_id = fc.get("id")
    call: dict[str, Any] = {
        "id": call_id if isinstance(call_id, str) and call_id else _call_id(),
        "type": "function",
        "function": {
            "name": fc.get("name") if isinstance(fc.get("name"), str) else "",
            "arguments": orjson.dumps(fc.get("args") or {}).decode(),
        },
    }
    if isinstance(signature, str) and signature:
        call["extra_content"] = {"google": {"thought_signature": signature}}
    return call


class GeminiStreamTranslator:
    """One Gemini SSE stream → OpenAI chunk payloads (see ``base.StreamTranslator``)."""

    __slots__ = (
        "_calls",
        "_chunk_id",
        "_created",
        "_finished",
        "_include_usage",
        "_legacy",
        "_model",
        "_secrets",
        "_seen",
        "_started",
        "done",
        "error",
        "usage",
    )

    def __init__(self, target: Target, include_usage: bool, legacy: bool = False) -> None:
        self.usage: Usage | None = None
        self.error: RelayError | None = None
        self.done = False
        self._include_usage = include_usage
        self._secrets = (target.api_key, target.token or "")
        self._chunk_id = ""
        self._model = target.upstream_model
        self._created = int(time.time())
        self._started: set[int] = set()  # candidates that got their role delta
        self._calls: dict[int, int] = {}  # candidate index → tool calls so far
        self._seen: set[int] = set()
        self._finished: set[int] = set()
        self._legacy = LegacyStream() if legacy else None

    def _chunk(self, choices: list[dict[str, Any]]) -> bytes:
        if self._legacy is not None:
            for choice in choices:
                self._legacy.choice(choice)
        return orjson.dumps(
            {
                "id": self._chunk_id,
                "object": "chat.completion.chunk",
                "created": self._created,
                "model": self._model,
                "choices": choices,
            }
        )

    def feed(self, event: str | None, data: bytes) -> list[bytes]:
        if self.done or not data.strip():
            return []
        try:
            obj = orjson.loads(data)
        except orjson.JSONDecodeError:
            self.error = UpstreamError("The upstream provider sent a malformed stream event.")
            return []
        if isinstance(obj, list) and len(obj) == 1:
            obj = obj[0]
        if not isinstance(obj, dict):
            return []
        if "error" in obj:
            self.error = google_error(None, obj, self._secrets)
            return []
        if not self._chunk_id:
            rid = obj.get("responseId")
            self._chunk_id = "chatcmpl-" + (rid if isinstance(rid, str) and rid else "gemini")
            version = obj.get("modelVersion")
            if isinstance(version, str) and version:
                self._model = version
        raw_usage = obj.get("usageMetadata")
        if isinstance(raw_usage, dict):
            self.usage = usage_from_gemini(raw_usage)
        candidates = obj.get("candidates")
        choices: list[dict[str, Any]] = []
        if isinstance(candidates, list) and candidates:
            for cand in candidates:
                if isinstance(cand, dict):
                    choice = self._candidate(cand)
                    if choice is not None:
                        choices.append(choice)
            if self._seen and self._seen <= self._finished:
                self.done = True
        else:
            feedback = obj.get("promptFeedback")
            if isinstance(feedback, dict) and feedback.get("blockReason"):
                choices.append(
                    {
                        "index": 0,
                        "delta": {"role": "assistant", "content": ""},
                        "finish_reason": "content_filter",
                    }
                )
                self.done = True
        return [self._chunk(choices)] if choices else []

    def _candidate(self, cand: dict[str, Any]) -> dict[str, Any] | None:
        index = cand.get("index")
        index = index if isinstance(index, int) else 0
        self._seen.add(index)
        content = cand.get("content")
        parts = content.get("parts") if isinstance(content, dict) else None
        text, reasoning, calls, any_text = message_parts(parts)
        delta: dict[str, Any] = {}
        if index not in self._started:
            self._started.add(index)
            delta["role"] = "assistant"
        if reasoning:
            delta["reasoning_content"] = reasoning
        if any_text:
            delta["content"] = text
        if calls:
            base = self._calls.get(index, 0)
            for k, call in enumerate(calls):
                call["index"] = base + k
            self._calls[index] = base + len(calls)
            delta["tool_calls"] = calls
        reason = cand.get("finishReason")
        finish = None
        if isinstance(reason, str) and reason and reason != "FINISH_REASON_UNSPECIFIED":
            finish = finish_reason(reason, self._calls.get(index, 0) > 0)
            self._finished.add(index)
        if not delta and finish is None:
            return None
        return {"index": index, "delta": delta, "finish_reason": finish}

    def finish(self) -> list[bytes]:
        if not self._include_usage or self.usage is None:
            return []
        return [
            usage_chunk(self._chunk_id or "chatcmpl-gemini", self._model, self._created, self.usage)
        ]
