"""Tencent Hunyuan: answer translation — a ``ChatCompletions`` or ``GetEmbedding``
``Response`` → the OpenAI object, and the field helpers (usage, finish reason, tool
calls) the stream translator (``providers/tencent_stream.py``) shares."""

from __future__ import annotations

import time
from typing import Any

from relaygate.errors import UpstreamError
from relaygate.providers.base import Usage, embeddings_list
from relaygate.providers.legacy_functions import to_function_call_message

__all__ = [
    "as_object",
    "chat_answer",
    "embeddings_answer",
    "finish_reason",
    "tool_calls",
    "usage_from_hunyuan",
]

_FINISH = {
    "stop": "stop",
    "length": "length",
    "tool_calls": "tool_calls",
    "sensitive": "content_filter",
    "content_filter": "content_filter",
}


def as_object(value: Any) -> dict[str, Any]:
    """``value`` if it is an object, else an empty one."""
    return value if isinstance(value, dict) else {}


def usage_from_hunyuan(raw: Any) -> Usage | None:
    """Hunyuan's ``Usage`` (``PromptTokens``, ``CompletionTokens``, ``TotalTokens``)."""
    if not isinstance(raw, dict):
        return None
    prompt = raw.get("PromptTokens")
    completion = raw.get("CompletionTokens")
    total = raw.get("TotalTokens")
    p = prompt if isinstance(prompt, int) else 0
    c = completion if isinstance(completion, int) else 0
    t = total if isinstance(total, int) and total else p + c
    return Usage(prompt_tokens=p, completion_tokens=c, total_tokens=t)


def finish_reason(raw: Any) -> str:
    """Hunyuan's ``FinishReason`` → OpenAI's (``sensitive`` → ``content_filter``)."""
    return _FINISH.get(raw, "stop") if isinstance(raw, str) else "stop"


def tool_calls(raw: Any, stream: bool) -> list[dict[str, Any]] | None:
    """Hunyuan's ``ToolCalls`` → OpenAI tool calls (with ``index`` in a stream)."""
    if not isinstance(raw, list) or not raw:
        return None
    out: list[dict[str, Any]] = []
    for i, call in enumerate(raw):
        if not isinstance(call, dict):
            continue
        fn = as_object(call.get("Function"))
        item: dict[str, Any] = {
            "id": call.get("Id") or f"call_{i}",
            "type": "function",
            "function": {"name": fn.get("Name") or "", "arguments": fn.get("Arguments") or ""},
        }
        if stream:
            index = call.get("Index")
            item = {"index": index if isinstance(index, int) else i, **item}
        out.append(item)
    return out


def chat_answer(
    resp: dict[str, Any], model: str, legacy_functions: bool
) -> tuple[dict[str, Any], Usage | None]:
    """An unwrapped ``ChatCompletions`` response → the OpenAI chat completion."""
    choices: list[dict[str, Any]] = []
    for i, ch in enumerate(resp.get("Choices") or ()):
        if not isinstance(ch, dict):
            continue
        msg = as_object(ch.get("Message"))
        message: dict[str, Any] = {"role": "assistant", "content": msg.get("Content") or ""}
        reasoning = msg.get("ReasoningContent")
        if isinstance(reasoning, str) and reasoning:
            message["reasoning_content"] = reasoning
        calls = tool_calls(msg.get("ToolCalls"), False)
        if calls:
            message["tool_calls"] = calls
        choice = {
            "index": i,
            "message": message,
            "finish_reason": "tool_calls" if calls else finish_reason(ch.get("FinishReason")),
            "logprobs": None,
        }
        if legacy_functions:
            to_function_call_message(choice)
        choices.append(choice)
    if not choices:
        raise UpstreamError("The upstream provider returned an unexpected response.")
    counts = usage_from_hunyuan(resp.get("Usage"))
    created = resp.get("Created")
    out: dict[str, Any] = {
        "id": f"chatcmpl-{resp.get('Id') or resp.get('RequestId') or 'hunyuan'}",
        "object": "chat.completion",
        "created": created if isinstance(created, int) else int(time.time()),
        "model": model,
        "choices": choices,
    }
    if counts is not None:
        out["usage"] = counts.to_openai()
    return out, counts


def embeddings_answer(resp: dict[str, Any], model: str) -> tuple[dict[str, Any], Usage | None]:
    """An unwrapped ``GetEmbedding`` response → the OpenAI embeddings list."""
    data = resp.get("Data")
    if not isinstance(data, list):
        raise UpstreamError("The upstream provider returned an unexpected response.")
    counts = usage_from_hunyuan(resp.get("Usage"))
    return embeddings_list(data, model, counts, index="Index", vector="Embedding"), counts
