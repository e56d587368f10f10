"""The one adaptor interface.

An adaptor turns an OpenAI-shaped request into an upstream HTTP request and the
upstream's bytes back into OpenAI objects and chunks. Adaptors do **no I/O**: the
relay core (``transport/``) owns the one pooled HTTP client, timeouts and
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
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

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
    "LocalTokenSource",
    "ModelLister",
    "StreamTranslator",
    "SurfaceAdaptor",
    "Target",
    "TokenSource",
    "UpstreamRequest",
    "Usage",
    "chunk_payload",
    "chunk_prefix",
    "embeddings_list",
    "error_from_status",
    "join_texts",
    "normalize_usage",
    "number_field",
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
    #: a short-lived credential resolved by the relay through the adaptor's
    #: ``TokenSource``/``LocalTokenSource``; adaptors send it instead of ``api_key``
    token: str | None = None


@dataclass(slots=True)
class UpstreamRequest:
    url: str
    headers: dict[str, str]
    body: bytes
    method: str = "POST"
    proxy: str | None = None  # HTTP CONNECT proxy for this call (set by the relay)
    #: the client used the legacy ``functions``/``function_call`` fields: the answer must
    #: come back as ``message.function_call``; the relay passes it to
    #: ``chat_response`` / ``chat_stream`` (adaptors keep no per-request state)
    legacy_functions: bool = False
    #: (connect, first byte, idle) in seconds for this call, each None for the transport's
    #: setting; None (the usual case) for all three: set by the relay from a channel's
    #: ``config.timeouts`` (``transport/base.py``)
    timeouts: tuple[float | None, float | None, float | None] | None = None
    #: a body too large to hold in memory (a multipart upload, ``relay/multipart.py``): a
    #: factory of its chunks, called once per send (``body`` is then empty and the headers
    #: carry its ``Content-Length``); sent by the aiohttp client whatever the backend
    stream_body: Callable[[], AsyncIterator[bytes]] | None = None


def _int(value: Any) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) else 0


def normalize_usage(raw: dict[str, Any]) -> dict[str, Any]:
    """An upstream ``usage`` object in OpenAI's accounting (a copy; extras kept).

    * reasoning tokens given at the top level (``reasoning_tokens``) move under
      ``completion_tokens_details.reasoning_tokens``;
    * providers that count reasoning outside ``completion_tokens`` (xAI:
      ``total = prompt + completion + reasoning``) get the reasoning added to
      ``completion_tokens``, which then is what the provider bills, and the total
      adds up (``docs/providers.md``, "Usage").
    """
    out = dict(raw)
    prompt = _int(out.get("prompt_tokens"))
    completion = _int(out.get("completion_tokens"))
    details = out.get("completion_tokens_details")
    details = dict(details) if isinstance(details, dict) else {}
    reasoning = _int(details.get("reasoning_tokens"))
    top = out.pop("reasoning_tokens", None)
    if not reasoning and _int(top):
        reasoning = _int(top)
        details["reasoning_tokens"] = reasoning
    if details:
        out["completion_tokens_details"] = details
    total = _int(out.get("total_tokens"))
    if reasoning and total and total == prompt + completion + reasoning:
        completion += reasoning
        out["completion_tokens"] = completion
    if not total:
        out["total_tokens"] = prompt + completion
    return out


@dataclass(slots=True)
class Usage:
    """Token counts of one exchange in OpenAI's convention: ``prompt_tokens`` counts every
    input token, cache reads (``cached_tokens``) and cache writes included;
    ``completion_tokens`` counts every output token, reasoning included. The parts are
    never added again on top (``billing/prices.py`` prices each part once)."""

    prompt_tokens: int = 0
    completion_tokens: int = 0
    total_tokens: int = 0
    cached_tokens: int = 0  # prompt tokens read from the provider's cache (in prompt_tokens)
    reasoning_tokens: int = 0  # part of completion_tokens, billed at the output price
    # prompt tokens written to the provider's cache (Anthropic), also in prompt_tokens:
    cache_write_tokens: int = 0  # 5-minute writes (and writes of unknown lifetime)
    cache_write_1h_tokens: int = 0  # 1-hour writes
    # audio tokens (realtime), inside prompt_tokens and completion_tokens: billed at the
    # audio prices when the model has them (billing/prices.py token_cost)
    audio_prompt_tokens: int = 0
    audio_completion_tokens: int = 0

    @classmethod
    def from_openai(cls, raw: dict[str, Any]) -> Usage:
        """From an OpenAI-shaped usage object (normalised with :func:`normalize_usage`)."""
        raw = normalize_usage(raw)
        prompt = _int(raw.get("prompt_tokens"))
        completion = _int(raw.get("completion_tokens"))
        ptd = raw.get("prompt_tokens_details")
        ctd = raw.get("completion_tokens_details")
        ptd = ptd if isinstance(ptd, dict) else {}
        ctd = ctd if isinstance(ctd, dict) else {}
        cached = _int(ptd.get("cached_tokens")) or _int(raw.get("prompt_cache_hit_tokens"))
        return cls(
            prompt_tokens=prompt,
            completion_tokens=completion,
            total_tokens=_int(raw.get("total_tokens")) or prompt + completion,
            cached_tokens=cached,
            reasoning_tokens=_int(ctd.get("reasoning_tokens")),
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

    def chat_response(
        self, target: Target, raw: bytes, *, legacy_functions: bool = False
    ) -> tuple[dict[str, Any], Usage | None]: ...

    def chat_stream(
        self, target: Target, include_usage: bool, *, legacy_functions: bool = False
    ) -> StreamTranslator: ...

    def embeddings_request(self, target: Target, body: dict[str, Any]) -> UpstreamRequest: ...

    def embeddings_response(
        self, target: Target, raw: bytes
    ) -> tuple[dict[str, Any], Usage | None]: ...

    def error(self, target: Target, status: int, raw: bytes) -> RelayError: ...


@runtime_checkable
class SurfaceAdaptor(Protocol):
    """An adaptor that serves OpenAI's API surface beyond chat and embeddings
    (``providers/surfaces.py``): completions, images, audio, files, assistants, …"""

    def surfaces(self, target: Target) -> frozenset[str]: ...

    def surface_request(self, target: Target, call: Any) -> UpstreamRequest:
        """``call`` is a ``providers.surfaces.SurfaceCall``."""
        ...


# ---------------------------------------------------------------- token sources


@runtime_checkable
class TokenSource(Protocol):
    """An adaptor whose channel credential is exchanged for a short-lived token over HTTP
    (Baidu OAuth ``access_token``, Google service-account tokens).

    The adaptor stays free of I/O: it builds the token request and parses the
    answer; the relay sends it on the shared transport, caches the token per
    ``(channel_id, api_key)`` until shortly before it expires, and calls the
    adaptor with ``dataclasses.replace(target, token=token)``.
    """

    def token_request(self, target: Target) -> UpstreamRequest | None:
        """The HTTP request that yields a token, or ``None`` if ``target`` needs none."""
        ...

    def token_response(self, target: Target, status: int, raw: bytes) -> tuple[str, float]:
        """``(token, expires_in_seconds)`` from the token endpoint's answer; raises a
        ``RelayError`` (``UpstreamError``) when the exchange failed."""
        ...


@runtime_checkable
class LocalTokenSource(Protocol):
    """An adaptor that computes a short-lived token itself (Zhipu's HS256 JWT).

    ``now`` is the wall-clock time in seconds (``time.time()``), passed in so the
    result is deterministic in tests. Returns ``(token, expires_in_seconds)``, or
    ``None`` when ``target`` uses its key as is.
    """

    def local_token(self, target: Target, now: float) -> tuple[str, float] | None: ...


@runtime_checkable
class ModelLister(Protocol):
    """An adaptor whose provider lists its models (``/models``): model discovery
    (``POST /admin/api/channels/{id}/discover-models``) sends ``models_request`` on the
    shared transport (after the token hook, so ``target.token`` is set) and reads the
    answer with ``models_response``. ``None``: this channel's provider lists none."""

    def models_request(self, target: Target) -> UpstreamRequest | None: ...

    def models_response(self, target: Target, status: int, raw: bytes) -> list[str]:
        """The upstream model ids (as a channel's ``models`` would name them); raises a
        ``RelayError`` for an error answer (``error_from_status``)."""
        ...


def embeddings_list(
    data: list[Any], model: str, usage: Usage | None, *, index: str, vector: str
) -> dict[str, Any]:
    """OpenAI's embeddings answer from a provider's list of items that name their position
    ``index`` and their vector ``vector`` (Baidu: ``index``/``embedding``, Tencent:
    ``Index``/``Embedding``); ``usage`` as prompt and total tokens when known."""
    items: list[dict[str, Any]] = [
        {
            "object": "embedding",
            "index": item.get(index, i) if isinstance(item, dict) else i,
            "embedding": item.get(vector) if isinstance(item, dict) else [],
        }
        for i, item in enumerate(data)
    ]
    out: dict[str, Any] = {"object": "list", "data": items, "model": model}
    if usage is not None:
        out["usage"] = {"prompt_tokens": usage.prompt_tokens, "total_tokens": usage.total_tokens}
    return out


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


def chunk_prefix(chunk_id: str, created: int, model: str) -> bytes:
    """The constant head of a one-choice OpenAI chunk (``{"id":…,"choices":[{"index":0,
    "delta":``), built once per stream by translators that emit one choice per chunk."""
    return b"".join(
        (
            b'{"id":',
            orjson.dumps(chunk_id),
            b',"object":"chat.completion.chunk","created":',
            str(created).encode(),
            b',"model":',
            orjson.dumps(model),
            b',"choices":[{"index":0,"delta":',
        )
    )


def chunk_payload(prefix: bytes, delta: dict[str, Any], finish: str | None) -> bytes:
    """One chunk payload: ``prefix`` (:func:`chunk_prefix`), the delta, the finish reason."""
    tail = (
        b',"finish_reason":null}]}'
        if finish is None
        else b',"finish_reason":"%s"}]}' % finish.encode()
    )
    return prefix + orjson.dumps(delta) + tail


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


def join_texts(*texts: str) -> str:
    """The texts of merged consecutive turns, joined by a blank line (empty ones left out):
    for upstreams that need turns to alternate (Baidu v1, Tencent API 3.0)."""
    return "\n\n".join(t for t in texts if t)


def parse_json_object(raw: bytes) -> dict[str, Any]:
    """Parse an upstream JSON body, tolerating leading blank lines (DeepSeek keep-alive)."""
    try:
        obj = orjson.loads(raw.strip())
    except orjson.JSONDecodeError as exc:
        raise UpstreamError("The upstream provider returned a malformed response.") from exc
    if not isinstance(obj, dict):
        raise UpstreamError("The upstream provider returned an unexpected response.")
    return obj


def number_field(body: dict[str, Any], key: str) -> float | int | None:
    """``body[key]`` when it is a number (``None`` when absent); anything else (a bool
    included) is the client's error."""
    value = body.get(key)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise InvalidRequest(f"`{key}` must be a number.", param=key)
    return value


def require_messages(body: dict[str, Any]) -> list[dict[str, Any]]:
    messages = body.get("messages")
    if not isinstance(messages, list) or not messages:
        raise InvalidRequest("`messages` must be a non-empty array.", param="messages")
    return messages
