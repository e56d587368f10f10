"""OpenAI ``chat.completion.chunk`` payloads → Anthropic Messages SSE events (pure).

One :class:`MessagesStream` per streamed answer: ``feed`` takes the payloads the chat
relay writes (chunks, or its mid-stream error payload ``{"error": …}``) and returns the
framed events; ``finish`` closes the stream. The events follow Anthropic's order:
``message_start``, then per content block ``content_block_start`` / ``…_delta`` /
``content_block_stop`` (``thinking_delta`` for ``reasoning_content``, ``text_delta`` for
``content``, ``input_json_delta`` for tool-call arguments; a block of another kind closes
the open one), then ``message_delta`` (``stop_reason`` and usage) and ``message_stop``.
A failing stream ends with an ``event: error`` frame and nothing after it. A thinking
block ends with a ``signature_delta`` of the gateway's signature
(``inbound/anthropic_signature.py``); ``stop_sequence`` is the request's stop sequence the
upstream names as the one that ended the answer (:func:`matched_stop`), else null.

Tool calls are expected one after the other, as OpenAI streams them: a fragment for a
call whose block was already closed cannot be sent any more and is dropped.
"""

from __future__ import annotations

from typing import Any

import orjson

from relaygate.inbound.anthropic_response import (
    error_frame,
    matched_stop,
    message_id,
    stop_reason,
    usage_of,
)
from relaygate.inbound.anthropic_signature import signature

__all__ = ["MessagesStream", "event"]


def event(name: str, obj: dict[str, Any]) -> bytes:
    return b"event: " + name.encode() + b"\ndata: " + orjson.dumps(obj) + b"\n\n"


class MessagesStream:
    """Per-stream state (see the module docstring). ``model`` is the model as the client
    named it; ``input_tokens`` the prompt's size known before the answer (a local count:
    the closing ``message_delta`` carries the upstream's)."""

    __slots__ = (
        "_block",
        "_failed",
        "_finish",
        "_index",
        "_input_tokens",
        "_key",
        "_model",
        "_started",
        "_stop",
        "_stops",
        "_thought",
        "_tools",
        "_usage",
    )

    def __init__(
        self,
        model: str,
        input_tokens: int = 0,
        *,
        key: bytes = b"",
        stops: tuple[str, ...] = (),
    ) -> None:
        self._model = model
        self._key = key  # the thinking signature's (inbound/anthropic_signature.py)
        self._thought: list[str] = []  # the open thinking block's text
        self._stops = stops  # the request's stop_sequences
        self._stop: str | None = None  # the one the upstream says ended the answer
        self._input_tokens = input_tokens
        self._started = False
        self._failed = False
        self._block: str | None = None  # kind of the open block: thinking | text | tool
        self._index = -1  # Anthropic index of the open (or last) block
        self._tools: dict[int, int] = {}  # OpenAI tool call index → its block index
        self._finish: str | None = None
        self._usage: dict[str, int] | None = None

    # ---------------------------------------------------------------- blocks

    def _start(self, chunk: dict[str, Any]) -> bytes:
        self._started = True
        message: dict[str, Any] = {
            "id": message_id(chunk.get("id")),
            "type": "message",
            "role": "assistant",
            "model": self._model,
            "content": [],
            "stop_reason": None,
            "stop_sequence": None,
            "usage": {"input_tokens": self._input_tokens, "output_tokens": 0},
        }
        return event("message_start", {"type": "message_start", "message": message})

    def _close(self) -> bytes:
        if self._block is None:
            return b""
        out = b""
        if self._block == "thinking" and self._key:
            sig = signature("".join(self._thought), self._key)
            out = self._delta({"type": "signature_delta", "signature": sig})
        self._thought = []
        self._block = None
        return out + event(
            "content_block_stop", {"type": "content_block_stop", "index": self._index}
        )

    def _open(self, kind: str, block: dict[str, Any]) -> bytes:
        out = self._close()
        self._index += 1
        self._block = kind
        start = {"type": "content_block_start", "index": self._index, "content_block": block}
        return out + event("content_block_start", start)

    def _delta(self, delta: dict[str, Any], index: int | None = None) -> bytes:
        at = self._index if index is None else index
        return event(
            "content_block_delta", {"type": "content_block_delta", "index": at, "delta": delta}
        )

    def _text(self, kind: str, text: str) -> bytes:
        out = b""
        if self._block != kind:
            if kind == "thinking":
                out = self._open(kind, {"type": "thinking", "thinking": "", "signature": ""})
            else:
                out = self._open(kind, {"type": "text", "text": ""})
        if kind == "thinking":
            self._thought.append(text)
            return out + self._delta({"type": "thinking_delta", "thinking": text})
        return out + self._delta({"type": "text_delta", "text": text})

    def _tool(self, call: dict[str, Any]) -> bytes:
        n = call.get("index")
        n = n if isinstance(n, int) else 0
        fn = call.get("function")
        fn = fn if isinstance(fn, dict) else {}
        args = fn.get("arguments")
        out = b""
        if n not in self._tools:
            call_id = call.get("id")
            block = {
                "type": "tool_use",
                "id": call_id if isinstance(call_id, str) and call_id else f"toolu_{n}",
                "name": str(fn.get("name") or ""),
                "input": {},
            }
            out = self._open("tool", block)
            self._tools[n] = self._index
        elif self._block != "tool" or self._tools[n] != self._index:
            return b""  # its block is closed: Anthropic has no way to add to it
        if isinstance(args, str) and args:
            out += self._delta({"type": "input_json_delta", "partial_json": args})
        return out

    # ---------------------------------------------------------------- feeding

    def _chunk(self, chunk: dict[str, Any]) -> bytes:
        out = b"" if self._started else self._start(chunk)
        usage = chunk.get("usage")
        if isinstance(usage, dict):
            self._usage = usage_of(usage)
        choices = chunk.get("choices")
        for choice in choices if isinstance(choices, list) else ():
            if not isinstance(choice, dict) or choice.get("index", 0) != 0:
                continue
            delta = choice.get("delta")
            if isinstance(delta, dict):
                reasoning = delta.get("reasoning_content")
                if isinstance(reasoning, str) and reasoning:
                    out += self._text("thinking", reasoning)
                text = delta.get("content")
                if isinstance(text, str) and text:
                    out += self._text("text", text)
                calls = delta.get("tool_calls")
                for call in calls if isinstance(calls, list) else ():
                    if isinstance(call, dict):
                        out += self._tool(call)
                fc = delta.get("function_call")
                if isinstance(fc, dict):
                    out += self._tool({"index": 0, "function": fc})
            finish = choice.get("finish_reason")
            if isinstance(finish, str) and finish:
                self._finish = finish
                self._stop = matched_stop(choice, self._stops)
        return out

    def feed(self, payloads: list[bytes]) -> bytes:
        out: list[bytes] = []
        for payload in payloads:
            if self._failed:
                break
            try:
                obj = orjson.loads(payload)
            except orjson.JSONDecodeError:
                continue
            if not isinstance(obj, dict):
                continue
            if "error" in obj and "choices" not in obj:
                self._failed = True
                out.append(error_frame(payload))
                break
            out.append(self._chunk(obj))
        return b"".join(out)

    def finish(self) -> bytes:
        if self._failed:
            return b""
        out = b"" if self._started else self._start({})
        out += self._close()
        reason = stop_reason(self._finish)
        if reason == "end_turn" and self._tools:
            reason = "tool_use"
        stop = self._stop if reason == "end_turn" else None
        if stop is not None:
            reason = "stop_sequence"
        usage = self._usage or {"input_tokens": self._input_tokens, "output_tokens": 0}
        delta = {
            "type": "message_delta",
            "delta": {"stop_reason": reason, "stop_sequence": stop},
            "usage": usage,
        }
        return out + event("message_delta", delta) + event("message_stop", {"type": "message_stop"})
