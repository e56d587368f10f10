"""Local token counting, for when the upstream reports no usage: a stream cut by a
disconnect or a crash, or a provider that omits usage (llama.cpp's server).

The tokenizer is a real BPE (``quicktok``) whose vocabulary ships inside the installed
wheel: nothing is downloaded at run time. The vocabulary is ``RELAYGATE_TOKENIZER``:
``cl100k_base`` by default (33 MiB per worker; exact for gpt-4 / gpt-3.5), or
``o200k_base`` (64 MiB; exact for the gpt-4o / o-series family, fewer tokens for Chinese).
For other vendors' models either is an estimate (docs/billing.md). It is loaded on first
use.

Streams are counted incrementally, chunk by chunk as they are delivered
(:class:`StreamMeter`); the answer is never buffered to be counted.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import orjson
import quicktok

from relaygate.errors import InvalidRequest

__all__ = [
    "ENCODINGS",
    "StreamMeter",
    "count_completion",
    "count_input",
    "count_prompt",
    "count_text",
    "count_value",
    "usage_chunk",
    "use_encoding",
]

ENCODINGS = ("cl100k_base", "o200k_base")
_encoding_name = "cl100k_base"
_counter: Callable[[str], int] | None = None


def use_encoding(name: str) -> None:
    """Choose the vocabulary (before the first count; the app calls this at start-up)."""
    global _encoding_name, _counter
    if name not in ENCODINGS:
        raise ValueError(f"RELAYGATE_TOKENIZER must be one of {', '.join(ENCODINGS)}, not {name!r}")
    if name != _encoding_name:
        _encoding_name, _counter = name, None


def _count(text: str) -> int:
    global _counter
    counter = _counter
    if counter is None:
        counter = _counter = quicktok.get_encoding(_encoding_name).count
    return int(counter(text))


#: tokens OpenAI adds per message (role and separators) and per reply (priming)
PER_MESSAGE = 3
PER_REPLY = 3
#: a rough charge for an image part: OpenAI's low-detail tile cost
IMAGE_TOKENS = 85


def count_text(text: str) -> int:
    return _count(text) if text else 0


def _content_tokens(content: Any) -> int:
    if isinstance(content, str):
        return _count(content) if content else 0
    n = 0
    if isinstance(content, list):
        for part in content:
            if not isinstance(part, dict):
                continue
            text = part.get("text")
            if isinstance(text, str):
                n += _count(text)
            elif part.get("type") in ("image_url", "input_image", "image", "input_audio"):
                n += IMAGE_TOKENS
    return n


def _json_tokens(value: Any) -> int:
    """Tokens of a JSON value as it will be sent. A value the encoder refuses (nested
    deeper than it allows) could not be sent upstream either: the client's error, said
    here, before billing (relay/attempt.py ``build_request`` says the same)."""
    try:
        return _count(orjson.dumps(value).decode())
    except (orjson.JSONEncodeError, RecursionError):
        raise InvalidRequest(
            "The request body is nested too deeply or holds values that cannot be sent on."
        ) from None


def count_prompt(body: dict[str, Any]) -> int:
    """Tokens of a chat request's prompt: messages (text parts, names, tool calls and
    tool results), tool definitions and the reply priming — OpenAI's counting recipe."""
    n = PER_REPLY
    messages = body.get("messages")
    if isinstance(messages, list):
        for m in messages:
            if not isinstance(m, dict):
                continue
            n += PER_MESSAGE + _content_tokens(m.get("content"))
            name = m.get("name")
            if isinstance(name, str):
                n += _count(name) + 1
            calls = m.get("tool_calls")
            if isinstance(calls, list) and calls:
                n += _json_tokens(calls)
            fc = m.get("function_call")
            if isinstance(fc, dict):
                n += _json_tokens(fc)
    for field in ("tools", "functions"):
        defs = body.get(field)
        if isinstance(defs, list) and defs:
            n += _json_tokens(defs)
    return n + count_input(body)


def count_input(body: dict[str, Any]) -> int:
    """Tokens of an embeddings request's ``input``: strings counted, token ids as given."""
    return count_value(body.get("input"))


def count_value(inp: Any) -> int:
    """Tokens of a string, an array of strings, or token arrays (a completions ``prompt``,
    an embeddings ``input``): strings counted, token ids as given."""
    if isinstance(inp, str):
        return _count(inp)
    n = 0
    if isinstance(inp, list):
        for x in inp:
            if isinstance(x, str):
                n += _count(x)
            elif isinstance(x, int):
                n += 1
            elif isinstance(x, list):
                n += len(x)
    return n


def count_completion(obj: dict[str, Any]) -> int:
    """Completion tokens of a non-streamed chat answer that came without usage: the
    text, reasoning and tool calls of every choice."""
    n = 0
    for choice in obj.get("choices") or ():
        msg = choice.get("message") if isinstance(choice, dict) else None
        if not isinstance(msg, dict):
            continue
        for field in ("content", "reasoning_content"):
            text = msg.get(field)
            if isinstance(text, str) and text:
                n += _count(text)
        calls = msg.get("tool_calls")
        if isinstance(calls, list) and calls:
            n += _count(orjson.dumps(calls).decode())
    return n


def usage_chunk(meter: StreamMeter, model: str, usage: dict[str, Any]) -> bytes:
    """The final ``include_usage`` chunk (empty ``choices``) for a stream whose upstream
    sent no usage: the client asked for it and gets it, counted locally."""
    return orjson.dumps(
        {
            "id": meter.id or "chatcmpl-relaygate",
            "object": "chat.completion.chunk",
            "created": meter.created,
            "model": meter.model or model,
            "choices": [],
            "usage": usage,
        }
    )


class StreamMeter:
    """Counts the completion tokens of a stream as its chunks are delivered: the text of
    ``delta.content``, ``delta.reasoning_content`` and tool-call arguments. One parse of
    each chunk (skipped for chunks that carry no text) and one tokenizer call."""

    __slots__ = ("chunks", "created", "id", "model", "tokens")

    def __init__(self) -> None:
        self.tokens = 0
        self.chunks = 0
        self.id: str | None = None  # of the stream's chunks, for a synthesized usage chunk
        self.model: str | None = None
        self.created = 0

    def feed(self, payload: bytes) -> int:
        """Count one delivered chunk payload; returns the tokens it added."""
        self.chunks += 1
        # bytes.find, not ``in`` (which first tries an integer and clears the TypeError)
        if payload.find(b'"content"') == -1 and payload.find(b'"arguments"') == -1:
            return 0
        try:
            obj = orjson.loads(payload)
        except orjson.JSONDecodeError:
            return 0
        if not isinstance(obj, dict):
            return 0
        if self.id is None:
            sid, model, created = obj.get("id"), obj.get("model"), obj.get("created")
            self.id = sid if isinstance(sid, str) else ""
            self.model = model if isinstance(model, str) else None
            self.created = created if isinstance(created, int) else 0
        n = 0
        for choice in obj.get("choices") or ():
            if not isinstance(choice, dict):
                continue
            delta = choice.get("delta")
            if not isinstance(delta, dict):
                continue
            text = delta.get("content")  # the two text fields unrolled: once per chunk
            if isinstance(text, str) and text:
                n += _count(text)
            text = delta.get("reasoning_content")
            if isinstance(text, str) and text:
                n += _count(text)
            calls = delta.get("tool_calls")
            if isinstance(calls, list):
                for call in calls:
                    fn = call.get("function") if isinstance(call, dict) else None
                    if isinstance(fn, dict):
                        for key in ("name", "arguments"):
                            v = fn.get(key)
                            if isinstance(v, str) and v:
                                n += _count(v)
        self.tokens += n
        return n
