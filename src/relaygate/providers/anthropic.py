"""Anthropic Messages API adaptor (spec ``providers.md`` §3). No I/O of its own.

Request conversion lives in :mod:`anthropic_request`, the stream translator and
the shared mappings (stop reasons, usage, error types) in :mod:`anthropic_stream`.

Channel ``config`` keys: ``anthropic_version`` (default ``2023-06-01``),
``anthropic_beta`` (sent as the ``anthropic-beta`` header when set) and
``default_max_tokens`` (default 4096).

Profile ``vertex``: Claude on Google Vertex AI —
``{base}/v1/projects/{project}/locations/{location}/publishers/anthropic/models/
{model}:rawPredict`` (``:streamRawPredict``), ``Authorization: Bearer``, the body
without ``model`` and with ``anthropic_version`` (default ``vertex-2023-10-16``).
The key is a Google service-account key file (exchanged for an access token through
``google_auth.py``) or an access token; ``config`` as for Gemini's ``vertex`` profile
(``project``, ``location``, ``api_version``).
"""

from __future__ import annotations

import time
from typing import Any

import orjson

from relaygate.errors import NotImplementedByProvider, RelayError, UpstreamError
from relaygate.providers.anthropic_request import build_messages_request
from relaygate.providers.anthropic_stream import (
    AnthropicStreamTranslator,
    anthropic_error,
    finish_reason,
    usage_from_anthropic,
)
from relaygate.providers.anthropic_thinking import client_thinking_block
from relaygate.providers.base import (
    Target,
    UpstreamRequest,
    Usage,
    parse_json_object,
)
from relaygate.providers.gemini import vertex_url
from relaygate.providers.google_auth import google_token_request, google_token_response
from relaygate.providers.legacy_functions import to_function_call_message
from relaygate.providers.model_list import ids_from_data

__all__ = ["ANTHROPIC_VERSION", "AnthropicAdaptor"]

ANTHROPIC_VERSION = "2023-06-01"

_NO_EMBEDDINGS = "Anthropic has no embeddings API; use an embeddings model on another channel."


def messages_url(base_url: str) -> str:
    base = base_url.rstrip("/")
    return base + "/messages" if base.endswith("/v1") else base + "/v1/messages"


class AnthropicAdaptor:
    name = "anthropic"
    #: ``anthropic``: Anthropic's API; ``vertex``: Claude on Google Vertex AI
    profiles = ("anthropic", "vertex")

    # ------------------------------------------------------------ Vertex tokens

    def token_request(self, target: Target) -> UpstreamRequest | None:
        if target.profile != "vertex" or not target.api_key:
            return None
        return google_token_request(target.api_key)

    def token_response(self, target: Target, status: int, raw: bytes) -> tuple[str, float]:
        return google_token_response(status, raw, (target.api_key,))

    # ------------------------------------------------------------ model discovery

    def models_request(self, target: Target) -> UpstreamRequest | None:
        """``GET /v1/models?limit=1000`` (``ModelLister``); Vertex lists no Claude models."""
        if target.profile == "vertex":
            return None
        url = messages_url(target.base_url).removesuffix("/messages") + "/models?limit=1000"
        headers = {
            "x-api-key": target.token or target.api_key,
            "anthropic-version": str(target.config.get("anthropic_version") or ANTHROPIC_VERSION),
        }
        return UpstreamRequest(url, headers, b"", method="GET")

    def models_response(self, target: Target, status: int, raw: bytes) -> list[str]:
        return ids_from_data(raw)

    def chat_request(self, target: Target, body: dict[str, Any], stream: bool) -> UpstreamRequest:
        payload, legacy = build_messages_request(target, body, stream)
        if target.profile == "vertex":
            method = "streamRawPredict" if stream else "rawPredict"
            vheaders = {"content-type": "application/json"}
            credential = target.token or target.api_key
            if credential:
                vheaders["authorization"] = "Bearer " + credential
            if stream:
                vheaders["accept"] = "text/event-stream"
            return UpstreamRequest(
                url=vertex_url(target, "anthropic", method),
                headers=vheaders,
                body=orjson.dumps(payload),
                legacy_functions=legacy,
            )
        headers = {
            "x-api-key": target.token or target.api_key,
            "anthropic-version": str(target.config.get("anthropic_version") or ANTHROPIC_VERSION),
            "content-type": "application/json",
        }
        beta = target.config.get("anthropic_beta")
        if beta:
            headers["anthropic-beta"] = beta if isinstance(beta, str) else ",".join(beta)
        if stream:
            headers["accept"] = "text/event-stream"
        return UpstreamRequest(
            url=messages_url(target.base_url),
            headers=headers,
            body=orjson.dumps(payload),
            legacy_functions=legacy,
        )

    def chat_response(
        self, target: Target, raw: bytes, *, legacy_functions: bool = False
    ) -> tuple[dict[str, Any], Usage | None]:
        obj = parse_json_object(raw)
        if obj.get("type") == "error":
            raise anthropic_error(None, obj, (target.api_key,))
        blocks = obj.get("content")
        if not isinstance(blocks, list):
            raise UpstreamError("The upstream provider returned an unexpected response.")

        texts: list[str] = []
        thinking: list[str] = []
        thinking_blocks: list[dict[str, Any]] = []
        tool_calls: list[dict[str, Any]] = []
        for block in blocks:
            if not isinstance(block, dict):
                continue
            kind = block.get("type")
            if kind == "text":
                texts.append(str(block.get("text") or ""))
            elif kind == "tool_use":
                tool_calls.append(
                    {
                        "id": block.get("id"),
                        "type": "function",
                        "function": {
                            "name": block.get("name"),
                            "arguments": orjson.dumps(block.get("input") or {}).decode(),
                        },
                    }
                )
            elif kind in ("thinking", "redacted_thinking"):
                if kind == "thinking":
                    thinking.append(str(block.get("thinking") or ""))
                client_block = client_thinking_block(block)
                if client_block is not None:
                    thinking_blocks.append(client_block)
            # server_tool_use, web_search_tool_result: not representable

        message: dict[str, Any] = {
            "role": "assistant",
            "content": "".join(texts) if texts or not tool_calls else None,
        }
        if tool_calls:
            message["tool_calls"] = tool_calls
        if thinking:
            message["reasoning_content"] = "".join(thinking)
        if thinking_blocks:
            message["thinking_blocks"] = thinking_blocks  # sent back on the next turn

        raw_usage = obj.get("usage")
        usage = usage_from_anthropic(raw_usage) if isinstance(raw_usage, dict) else None
        msg_id = obj.get("id")
        model = obj.get("model")
        result: dict[str, Any] = {
            "id": "chatcmpl-" + msg_id if isinstance(msg_id, str) and msg_id else "chatcmpl-",
            "object": "chat.completion",
            "created": int(time.time()),
            "model": model if isinstance(model, str) and model else target.upstream_model,
            "choices": [
                {
                    "index": 0,
                    "message": message,
                    "finish_reason": finish_reason(obj.get("stop_reason")),
                }
            ],
        }
        if usage is not None:
            result["usage"] = usage.to_openai()
        legacy = legacy_functions
        if legacy:
            to_function_call_message(result["choices"][0])
        return result, usage

    def chat_stream(
        self, target: Target, include_usage: bool, *, legacy_functions: bool = False
    ) -> AnthropicStreamTranslator:
        legacy = legacy_functions
        return AnthropicStreamTranslator(target, include_usage, legacy)

    def embeddings_request(self, target: Target, body: dict[str, Any]) -> UpstreamRequest:
        raise NotImplementedByProvider(_NO_EMBEDDINGS)

    def embeddings_response(
        self, target: Target, raw: bytes
    ) -> tuple[dict[str, Any], Usage | None]:
        raise NotImplementedByProvider(_NO_EMBEDDINGS)

    def error(self, target: Target, status: int, raw: bytes) -> RelayError:
        obj: Any = None
        stripped = raw.strip()
        if stripped.startswith(b"{"):
            try:
                obj = orjson.loads(stripped)
            except orjson.JSONDecodeError:
                obj = None
        if not (isinstance(obj, dict) and isinstance(obj.get("error"), dict)):
            # A proxy page or plain text: keep a short plain message, never HTML.
            text = stripped[:300].decode("utf-8", "replace")
            message = "" if not text or text.startswith("<") else text
            obj = {"error": {"message": message}}
        return anthropic_error(status, obj, (target.api_key,))
