"""The one adaptor interface.

An adaptor turns an OpenAI-shaped request into an upstream HTTP request and the
upstream's bytes back into OpenAI objects and chunks. Adaptors do **no I/O**: the
relay core (``relay/transport.py``) owns the one pooled HTTP client, timeouts and
cancellation. That keeps every provider unit-testable with literal JSON/SSE.

Lifecycle of one call (see ``docs/architecture.md``)::

    adaptor.chat_request(target, body, stream)  -> UpstreamRequest
    # non-stream
    adaptor.chat_response(target, raw_bytes)    -> (openai_dict, Usage | None)
    # stream
    tr = adaptor.chat_stream(target, include_usage)
    for each upstream SSE event: tr.feed(event_name, data) -> OpenAI chunk payloads
    tr.finish()                                 -> trailing payloads (usage chunk)
    # any non-2xx
    adaptor.error(target, status, raw_bytes)    -> RelayError
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any, Protocol

import orjson

from relaygate.errors import (
    InvalidRequest,
    RateLimited,
    RelayError,
    UpstreamError,
    UpstreamRejected,
    sanitize,
)

__all__ = [
    "Adaptor",
    "StreamTranslator",
    "Target",
    "UpstreamRequest",
    "Usage",
    "error_from_status",
    "usage_chunk",
]


@dataclass(slots=True, frozen=True)
class Target:
    """Where one upstream call goes: a resolved channel, one of its keys, the upstream model."""

    channel_id: int
    provider: str  # adaptor name: "openai_compat" | "anthropic"
    profile: str  # profile name for profile-driven adaptors ("openai", "azure", "deepseek", …)
    base_url: str  # no trailing slash
    api_key: str
    upstream_model: str
    config: dict[str, Any] = field(default_factory=dict)  # channel extras (api_version, …)


@dataclass(slots=True)
class UpstreamRequest:
    url: str
    headers: dict[str, str]
    body: bytes
    method: str = "POST"
    proxy: str | None = None  # HTTP CONNECT proxy for this call (set by the relay)


@dataclass(slots=True)
class Usage:
    prompt_tokens: int = 0
    completion_tokens: int = 0
    total_tokens: int = 0
    cached_tokens: int = 0
    reasoning_tokens: int = 0

    @classmethod
    def from_openai(cls, raw: dict[str, Any]) -> Usage:
        prompt = int(raw.get("prompt_tokens") or 0)
        completion = int(raw.get("completion_tokens") or 0)
        ptd = raw.get("prompt_tokens_details") or {}
        ctd = raw.get("completion_tokens_details") or {}
        cached = int(ptd.get("cached_tokens") or raw.get("prompt_cache_hit_tokens") or 0)
        return cls(
            prompt_tokens=prompt,
            completion_tokens=completion,
            total_tokens=int(raw.get("total_tokens") or prompt + completion),
            cached_tokens=cached,
            reasoning_tokens=int(ctd.get("reasoning_tokens") or 0),
        )

    def to_openai(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "prompt_tokens": self.prompt_tokens,
            "completion_tokens": self.completion_tokens,
            "total_tokens": self.total_tokens or self.prompt_tokens + self.completion_tokens,
        }
        if self.cached_tokens:
            out["prompt_tokens_details"] = {"cached_tokens": self.cached_tokens}
        if self.reasoning_tokens:
            out["completion_tokens_details"] = {"reasoning_tokens": self.reasoning_tokens}
        return out


class StreamTranslator(Protocol):
    """Per-stream state: upstream SSE events in, OpenAI chunk JSON payloads out.

    Payloads are the bytes that follow ``data: `` (no framing, no ``[DONE]``: the
    core writes those). ``usage`` holds the last usage seen; ``error`` is set when
    the upstream reported an error inside the stream; ``done`` when it signalled
    the end (``[DONE]``, ``message_stop``, …).
    """

    usage: Usage | None
    error: RelayError | None
    done: bool

    def feed(self, event: str | None, data: bytes) -> list[bytes]: ...

    def finish(self) -> list[bytes]: ...


class Adaptor(Protocol):
    name: str

    def chat_request(
        self, target: Target, body: dict[str, Any], stream: bool
    ) -> UpstreamRequest: ...

    def chat_response(self, target: Target, raw: bytes) -> tuple[dict[str, Any], Usage | None]: ...

    def chat_stream(self, target: Target, include_usage: bool) -> StreamTranslator: ...

    def embeddings_request(self, target: Target, body: dict[str, Any]) -> UpstreamRequest: ...

    def embeddings_response(
        self, target: Target, raw: bytes
    ) -> tuple[dict[str, Any], Usage | None]: ...

    def error(self, target: Target, status: int, raw: bytes) -> RelayError: ...


def usage_chunk(chunk_id: str, model: str, created: int, usage: Usage) -> bytes:
    """The single OpenAI usage chunk (``choices: []``) sent when the client asked for it."""
    return orjson.dumps(
        {
            "id": chunk_id,
            "object": "chat.completion.chunk",
            "created": created or int(time.time()),
            "model": model,
            "choices": [],
            "usage": usage.to_openai(),
        }
    )


def error_from_status(
    status: int, message: str, *, upstream_code: str | None, secrets: tuple[str, ...]
) -> RelayError:
    """Map an upstream HTTP failure onto our hierarchy (shared by all adaptors).

    4xx caused by the request (400, 404, 413, 422) are passed on with their status;
    429 stays a rate limit; credential failures (401/403) and everything else are
    upstream errors — a client must never be told *its* key is wrong because the
    channel's key is.
    """
    clean = sanitize(message, secrets) if message else f"upstream returned HTTP {status}"
    if status == 429:
        return RateLimited(
            f"The upstream provider is rate limiting this model; retry shortly. ({clean})"
        )
    if status in (401, 403):
        return UpstreamError(
            "The upstream provider rejected this gateway channel's credentials; "
            "the operator has to fix the channel.",
            code="upstream_auth_failed",
        )
    if status in (400, 404, 409, 413, 415, 422):
        code = upstream_code if upstream_code and len(upstream_code) < 64 else None
        return UpstreamRejected(
            clean, code=code or "invalid_request_error", status=400 if status == 422 else status
        )
    if status == 402:
        return UpstreamError(
            "The upstream provider refused the call for billing reasons.",
            code="upstream_error",
        )
    return UpstreamError(f"The upstream provider failed (HTTP {status}).")


def parse_json_object(raw: bytes) -> dict[str, Any]:
    """Parse an upstream JSON body, tolerating leading blank lines (DeepSeek keep-alive)."""
    try:
        obj = orjson.loads(raw.strip())
    except orjson.JSONDecodeError as exc:
        raise UpstreamError("The upstream provider returned a malformed response.") from exc
    if not isinstance(obj, dict):
        raise UpstreamError("The upstream provider returned an unexpected response.")
    return obj


def require_messages(body: dict[str, Any]) -> list[dict[str, Any]]:
    messages = body.get("messages")
    if not isinstance(messages, list) or not messages:
        raise InvalidRequest("`messages` must be a non-empty array.", param="messages")
    return messages
