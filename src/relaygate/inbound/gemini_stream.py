"""OpenAI chat-completion chunks → Gemini ``streamGenerateContent`` chunks (pure, no I/O).

Gemini streams ``GenerateContentResponse`` objects: as SSE ``data:`` frames with
``?alt=sse``, else as one JSON array written piece by piece. Text and reasoning deltas
go out as they come (reasoning as ``thought`` parts); tool calls, streamed by OpenAI in
argument fragments, are gathered and sent whole in the last chunk, which also carries
the ``finishReason`` and the ``usageMetadata`` (the usage chunk comes after the finish
reason, so the last chunk waits for :meth:`GeminiStream.finish`). An error chunk
becomes Google's error object and ends the stream.
"""

from __future__ import annotations

from typing import Any

import orjson

from relaygate.inbound.gemini_response import (
    finish_reason,
    function_call_part,
    stream_error,
    usage_metadata,
)

__all__ = ["GeminiStream"]


class _Choice:
    __slots__ = ("calls", "reason")

    def __init__(self) -> None:
        self.calls: dict[int, dict[str, Any]] = {}  # tool-call index → call gathered
        self.reason: str | None = None


class GeminiStream:
    """One stream's translation. ``sse``: SSE frames, else the pieces of a JSON array."""

    def __init__(self, *, sse: bool) -> None:
        self.sse = sse
        self._choices: dict[int, _Choice] = {}
        self._usage: dict[str, Any] | None = None
        self._model: str | None = None
        self._id: str | None = None
        self._sent = 0  # objects written
        self._failed = False

    def feed(self, payloads: list[bytes]) -> bytes:
        """The frames for a batch of OpenAI chunk payloads."""
        out: list[bytes] = []
        for raw in payloads:
            if self._failed:
                break
            try:
                chunk = orjson.loads(raw)
            except orjson.JSONDecodeError:
                continue
            if not isinstance(chunk, dict):
                continue
            if isinstance(chunk.get("error"), dict):
                self._failed = True
                out.append(self._frame(stream_error(chunk)))
                continue
            obj = self._chunk(chunk)
            if obj is not None:
                out.append(self._frame(obj))
        return b"".join(out)

    def finish(self) -> bytes:
        """The last frames: the gathered calls, finish reasons and usage (and the JSON
        array's end)."""
        body = b""
        if not self._failed:
            candidates = []
            for index in sorted(self._choices):
                state = self._choices[index]
                parts = [
                    p
                    for p in (function_call_part(c) for _, c in sorted(state.calls.items()))
                    if p is not None
                ]
                cand: dict[str, Any] = {
                    "content": {"parts": parts or [{"text": ""}], "role": "model"},
                    "index": index,
                }
                cand["finishReason"] = finish_reason(state.reason or "stop")
                candidates.append(cand)
            if not candidates:
                candidates.append(
                    {
                        "content": {"parts": [{"text": ""}], "role": "model"},
                        "finishReason": "STOP",
                        "index": 0,
                    }
                )
            body = self._frame(self._envelope({"candidates": candidates}, final=True))
        if self.sse:
            return body
        return body + b"]" if self._sent else b"[]"

    def _frame(self, obj: dict[str, Any]) -> bytes:
        data = orjson.dumps(obj)
        self._sent += 1
        if self.sse:
            return b"data: " + data + b"\r\n\r\n"
        return (b"[" if self._sent == 1 else b",\r\n") + data

    def _envelope(self, obj: dict[str, Any], *, final: bool = False) -> dict[str, Any]:
        if final and self._usage is not None:
            obj["usageMetadata"] = self._usage
        if self._model is not None:
            obj["modelVersion"] = self._model
        if self._id is not None:
            obj["responseId"] = self._id
        return obj

    def _chunk(self, chunk: dict[str, Any]) -> dict[str, Any] | None:
        if isinstance(chunk.get("model"), str) and chunk["model"]:
            self._model = chunk["model"]
        if self._id is None and isinstance(chunk.get("id"), str) and chunk["id"]:
            self._id = chunk["id"]
        usage = usage_metadata(chunk.get("usage"))
        if usage is not None:
            self._usage = usage
        candidates = []
        for i, choice in enumerate(chunk.get("choices") or ()):
            if not isinstance(choice, dict):
                continue
            index = choice.get("index")
            index = index if isinstance(index, int) else i
            state = self._choices.setdefault(index, _Choice())
            if isinstance(choice.get("finish_reason"), str):
                state.reason = choice["finish_reason"]
            delta = choice.get("delta")
            if not isinstance(delta, dict):
                continue
            parts: list[dict[str, Any]] = []
            reasoning = delta.get("reasoning_content")
            if isinstance(reasoning, str) and reasoning:
                parts.append({"text": reasoning, "thought": True})
            text = delta.get("content")
            if isinstance(text, str) and text:
                parts.append({"text": text})
            _gather(state, delta.get("tool_calls"))
            if parts:
                candidates.append({"content": {"parts": parts, "role": "model"}, "index": index})
        if not candidates:
            return None
        return self._envelope({"candidates": candidates})


def _gather(state: _Choice, calls: Any) -> None:
    """Add one delta's tool-call fragments to the calls gathered so far."""
    for j, frag in enumerate(calls if isinstance(calls, list) else ()):
        if not isinstance(frag, dict):
            continue
        index = frag.get("index")
        index = index if isinstance(index, int) else j
        call = state.calls.setdefault(
            index, {"id": "", "type": "function", "function": {"name": "", "arguments": ""}}
        )
        if isinstance(frag.get("id"), str) and frag["id"]:
            call["id"] = frag["id"]
        if isinstance(frag.get("extra_content"), dict):
            call["extra_content"] = frag["extra_content"]
        fn = frag.get("function")
        if isinstance(fn, dict):
            if isinstance(fn.get("name"), str) and fn["name"]:
                call["function"]["name"] = fn["name"]
            if isinstance(fn.get("arguments"), str):
                call["function"]["arguments"] += fn["arguments"]
