"""Tencent Hunyuan: stream translation — Hunyuan SSE events
(``data: {"Choices":[{"Delta":…,"FinishReason":""}],"Usage":…}``, no ``[DONE]``) →
OpenAI chunk payloads."""

from __future__ import annotations

from typing import Any

from relaygate.errors import UpstreamError
from relaygate.providers.base import Target
from relaygate.providers.one_choice_stream import OneChoiceStream
from relaygate.providers.tencent_answer import (
    as_object,
    finish_reason,
    tool_calls,
    usage_from_hunyuan,
)
from relaygate.providers.tencent_errors import tencent_error

__all__ = ["TencentStreamTranslator"]


class TencentStreamTranslator(OneChoiceStream):
    """Hunyuan SSE (``data: {"Choices":[{"Delta":…,"FinishReason":""}],"Usage":…}``) →
    OpenAI chunk payloads; a non-empty ``FinishReason`` ends the stream (``done``);
    an ``Error`` (wrapped in ``Response`` or not) or an ``ErrorMsg`` sets ``error``."""

    __slots__ = ()

    def __init__(
        self, target: Target, include_usage: bool, legacy: bool, secrets: tuple[str, ...]
    ) -> None:
        super().__init__(target, include_usage, legacy, secrets, "chatcmpl-hunyuan")

    def feed(self, event: str | None, data: bytes) -> list[bytes]:
        if self.done:
            return []
        obj = self._load(data)
        if obj is None:
            return []
        wrapped = obj.get("Response")
        if isinstance(wrapped, dict):
            obj = wrapped
        if obj.get("Error") is not None:
            self.error = tencent_error(obj["Error"], self._secrets)
            return []
        bad = obj.get("ErrorMsg")
        if isinstance(bad, dict) and bad.get("Code"):
            self.error = UpstreamError(
                f"The upstream provider failed (Hunyuan error {bad.get('Code')})."
            )
            return []
        first = not self._started
        if first:
            self._begin(obj.get("Id"), obj.get("Created"))
        usage = usage_from_hunyuan(obj.get("Usage"))
        if usage is not None and (usage.total_tokens or self.usage is None):
            self.usage = usage
        choices = obj.get("Choices")
        choice = (
            choices[0]
            if isinstance(choices, list) and choices and isinstance(choices[0], dict)
            else {}
        )
        src = as_object(choice.get("Delta"))
        delta: dict[str, Any] = {}
        if first:
            delta["role"] = "assistant"
        reasoning = src.get("ReasoningContent")
        if isinstance(reasoning, str) and reasoning:
            delta["reasoning_content"] = reasoning
        content = src.get("Content")
        if isinstance(content, str) and content:
            delta["content"] = content
        calls = tool_calls(src.get("ToolCalls"), True)
        if calls:
            if self._legacy:
                call = next((c for c in calls if c["index"] == 0), None)
                if call is not None:
                    delta["function_call"] = call["function"]
            else:
                delta["tool_calls"] = calls
        reason = choice.get("FinishReason")
        finish = finish_reason(reason) if isinstance(reason, str) and reason else None
        return self._emit(delta, finish)
