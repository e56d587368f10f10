"""Anthropic Messages SSE → OpenAI ``chat.completion.chunk`` payloads.

Also home of the mappings shared with the non-stream path: stop reasons, usage and
error types. The translator keeps per-event work small: every chunk shares one
pre-serialised prefix (id, created, model) and only the delta is serialised.
"""

from __future__ import annotations

import time
from typing import Any

import orjson

from relaygate.errors import RelayError, UpstreamError
from relaygate.providers.base import (
    Target,
    Usage,
    chunk_payload,
    chunk_prefix,
    error_from_status,
    usage_chunk,
)

__all__ = [
    "AnthropicStreamTranslator",
    "anthropic_error",
    "finish_reason",
    "usage_from_anthropic",
]

_FINISH_REASONS = {
    "end_turn": "stop",
    "stop_sequence": "stop",
    "pause_turn": "stop",
    "max_tokens": "length",
    "model_context_window_exceeded": "length",
    "tool_use": "tool_calls",
    "refusal": "content_filter",
}

# Anthropic error type → the HTTP status it is documented with (used for in-band errors).
_ERROR_STATUS = {
    "invalid_request_error": 400,
    "authentication_error": 401,
    "billing_error": 402,
    "permission_error": 403,
    "not_found_error": 404,
    "request_too_large": 413,
    "rate_limit_error": 429,
    "api_error": 500,
    "timeout_error": 504,
    "overloaded_error": 529,
}


def finish_reason(stop_reason: Any) -> str:
    return _FINISH_REASONS.get(stop_reason, "stop") if isinstance(stop_reason, str) else "stop"


def _int(raw: dict[str, Any], key: str) -> int:
    value = raw.get(key)
    return value if isinstance(value, int) else 0


def usage_from_anthropic(raw: dict[str, Any]) -> Usage:
    """Anthropic's ``input_tokens`` excludes cache reads and writes; OpenAI's
    ``prompt_tokens`` (and so :class:`Usage`) includes both.

    Cache writes are ``cache_creation_input_tokens``, split by lifetime in
    ``cache_creation.ephemeral_5m_input_tokens`` / ``ephemeral_1h_input_tokens`` when the
    upstream sends the split; without it every write counts as a 5-minute write (the
    default lifetime, and the cheaper of the two prices)."""
    cached = _int(raw, "cache_read_input_tokens")
    split = raw.get("cache_creation")
    split = split if isinstance(split, dict) else {}
    write_1h = _int(split, "ephemeral_1h_input_tokens")
    written = _int(raw, "cache_creation_input_tokens") or (
        _int(split, "ephemeral_5m_input_tokens") + write_1h
    )
    write_1h = min(write_1h, written)
    prompt = _int(raw, "input_tokens") + cached + written
    completion = _int(raw, "output_tokens")
    return Usage(
        prompt_tokens=prompt,
        completion_tokens=completion,
        total_tokens=prompt + completion,
        cached_tokens=cached,
        cache_write_tokens=written - write_1h,
        cache_write_1h_tokens=write_1h,
    )


def anthropic_error(status: int | None, obj: Any, secrets: tuple[str, ...]) -> RelayError:
    """Map an Anthropic error body (``{"type":"error","error":{type,message}}``).

    ``status`` is the HTTP status when there is one, ``None`` for an error that
    arrived inside a 200 (stream event or body); the error type then picks it.
    """
    err = obj.get("error") if isinstance(obj, dict) else None
    kind = err.get("type") if isinstance(err, dict) else None
    message = err.get("message") if isinstance(err, dict) else None
    if not isinstance(kind, str):
        kind = None
    if not isinstance(message, str):
        message = ""
    if status is None:
        status = _ERROR_STATUS.get(kind or "", 500)
    if status == 529 or kind == "overloaded_error":
        return UpstreamError("The upstream provider is overloaded; retry shortly.")
    return error_from_status(status, message, upstream_code=kind, secrets=secrets)


class AnthropicStreamTranslator:
    """One Anthropic stream → OpenAI chunk payloads (see ``base.StreamTranslator``)."""

    __slots__ = (
        "_chunk_id",
        "_created",
        "_include_usage",
        "_legacy",
        "_model",
        "_next_tool",
        "_prefix",
        "_secrets",
        "_thinking",
        "_tool_blocks",
        "_usage_raw",
        "done",
        "error",
        "usage",
    )

    def __init__(self, target: Target, include_usage: bool, legacy: bool = False) -> None:
        self.usage: Usage | None = None
        self.error: RelayError | None = None
        self.done = False
        self._include_usage = include_usage
        self._secrets = (target.api_key,)
        self._chunk_id = "chatcmpl-anthropic"
        self._model = target.upstream_model
        self._created = int(time.time())
        self._prefix: bytes | None = None
        self._next_tool = 0  # OpenAI tool_calls index: counts tool calls, not blocks
        self._tool_blocks: dict[int, int] = {}  # Anthropic block index → tool call index
        self._usage_raw: dict[str, Any] = {}
        self._legacy = legacy  # answer in the legacy function_call shape
        # the open thinking block: Anthropic block index, text pieces, signature
        self._thinking: tuple[int, list[str], list[str]] | None = None

    # ------------------------------------------------------------ emitting

    def _chunk(self, delta: dict[str, Any], finish: str | None = None) -> bytes:
        prefix = self._prefix
        if prefix is None:
            prefix = self._prefix = chunk_prefix(self._chunk_id, self._created, self._model)
        return chunk_payload(prefix, delta, finish)

    def _record_usage(self, raw: Any) -> None:
        if not isinstance(raw, dict):
            return
        self._merge_counts(self._usage_raw, raw)
        self.usage = usage_from_anthropic(self._usage_raw)

    @classmethod
    def _merge_counts(cls, known: dict[str, Any], raw: dict[str, Any]) -> None:
        for key, value in raw.items():
            # a later zero (some relays omit real counts) must not erase a known one
            if isinstance(value, int) and key.endswith("_tokens") and (value or key not in known):
                known[key] = value
            elif key == "cache_creation" and isinstance(value, dict):  # the 5m/1h split
                inner = known.get(key)
                if not isinstance(inner, dict):
                    inner = known[key] = {}
                cls._merge_counts(inner, value)

    # ------------------------------------------------------------ feeding

    def feed(self, event: str | None, data: bytes) -> list[bytes]:
        data = data.strip()
        if not data:
            return []
        try:
            obj = orjson.loads(data)
        except orjson.JSONDecodeError:
            self.error = UpstreamError("The upstream provider sent a malformed stream event.")
            return []
        if not isinstance(obj, dict):
            return []
        kind = obj.get("type") or event

        if kind == "content_block_delta":
            return self._block_delta(obj)
        if kind == "content_block_start":
            return self._block_start(obj)
        if kind == "message_start":
            return self._message_start(obj)
        if kind == "message_delta":
            delta = obj.get("delta")
            self._record_usage(obj.get("usage"))
            stop = delta.get("stop_reason") if isinstance(delta, dict) else None
            if stop is None:
                return []
            finish = finish_reason(stop)
            if self._legacy and finish == "tool_calls":
                finish = "function_call"
            return [self._chunk({}, finish)]
        if kind == "content_block_stop":
            return self._block_stop(obj)
        if kind == "message_stop":
            self.done = True
        elif kind == "error":
            self.error = anthropic_error(None, obj, self._secrets)
        return []  # ping, content_block_stop, message_stop, error, unknown

    def _message_start(self, obj: dict[str, Any]) -> list[bytes]:
        message = obj.get("message")
        if isinstance(message, dict):
            msg_id = message.get("id")
            if isinstance(msg_id, str) and msg_id:
                self._chunk_id = "chatcmpl-" + msg_id
            model = message.get("model")
            if isinstance(model, str) and model:
                self._model = model
            self._prefix = None
            self._record_usage(message.get("usage"))
        return [self._chunk({"role": "assistant", "content": ""})]

    def _block_start(self, obj: dict[str, Any]) -> list[bytes]:
        block = obj.get("content_block")
        if not isinstance(block, dict):
            return []
        kind = block.get("type")
        if kind == "tool_use":
            index = self._next_tool
            self._next_tool += 1
            block_index = obj.get("index")
            if isinstance(block_index, int):
                self._tool_blocks[block_index] = index
            initial = block.get("input")
            arguments = orjson.dumps(initial).decode() if initial else ""
            if self._legacy:
                if index != 0:
                    return []  # the legacy shape carries one call
                fc = {"name": block.get("name"), "arguments": arguments}
                return [self._chunk({"function_call": fc})]
            call = {
                "index": index,
                "id": block.get("id"),
                "type": "function",
                "function": {"name": block.get("name"), "arguments": arguments},
            }
            return [self._chunk({"tool_calls": [call]})]
        if kind == "text":
            text = block.get("text")
            return [self._chunk({"content": text})] if isinstance(text, str) and text else []
        if kind == "thinking":
            text = block.get("thinking")
            pieces = [text] if isinstance(text, str) and text else []
            block_index = obj.get("index")
            signature = block.get("signature")
            sig = [signature] if isinstance(signature, str) and signature else []
            self._thinking = (block_index if isinstance(block_index, int) else -1, pieces, sig)
            if pieces:
                return [self._chunk({"reasoning_content": text})]
            return []
        if kind == "redacted_thinking":
            data = block.get("data")
            if isinstance(data, str) and data:
                red = {"type": "redacted_thinking", "data": data}
                return [self._chunk({"thinking_blocks": [red]})]
        return []  # empty starts, server tools and their results

    def _block_stop(self, obj: dict[str, Any]) -> list[bytes]:
        """At the end of a thinking block, the whole block (text and signature) once."""
        open_block = self._thinking
        if open_block is None or obj.get("index") not in (open_block[0], None):
            return []
        self._thinking = None
        _, pieces, signature = open_block
        block = {"type": "thinking", "thinking": "".join(pieces), "signature": "".join(signature)}
        return [self._chunk({"thinking_blocks": [block]})]

    def _block_delta(self, obj: dict[str, Any]) -> list[bytes]:
        delta = obj.get("delta")
        if not isinstance(delta, dict):
            return []
        kind = delta.get("type")
        if kind == "text_delta":
            text = delta.get("text")
            return [self._chunk({"content": text})] if isinstance(text, str) and text else []
        if kind == "input_json_delta":
            partial = delta.get("partial_json")
            block_index = obj.get("index")
            index = self._tool_blocks.get(block_index) if isinstance(block_index, int) else None
            if index is None or not isinstance(partial, str) or not partial:
                return []  # server_tool_use input, or the empty first fragment
            if self._legacy:
                if index != 0:
                    return []
                return [self._chunk({"function_call": {"arguments": partial}})]
            return [
                self._chunk({"tool_calls": [{"index": index, "function": {"arguments": partial}}]})
            ]
        if kind == "thinking_delta":
            text = delta.get("thinking")
            if isinstance(text, str) and text:
                if self._thinking is not None:
                    self._thinking[1].append(text)
                return [self._chunk({"reasoning_content": text})]
            return []
        if kind == "signature_delta":
            signature = delta.get("signature")
            if self._thinking is not None and isinstance(signature, str):
                self._thinking[2].append(signature)
        return []  # citations_delta, unknown

    def finish(self) -> list[bytes]:
        if self._include_usage and self.usage is not None:
            return [usage_chunk(self._chunk_id, self._model, self._created, self.usage)]
        return []
