"""iFlytek Spark over WebSocket: answer translation — one answer frame parsed once
(:class:`Frame`), a ``function_call`` as an OpenAI tool call, and the stream translator
(one frame per SSE event → OpenAI chunk payloads). The non-stream answer is composed in
``providers/spark_ws.py`` from the same :class:`Frame`."""

from __future__ import annotations

import time
from typing import Any

import orjson

from relaygate.errors import RelayError, UpstreamError
from relaygate.providers.base import Target, Usage, chunk_payload, chunk_prefix, usage_chunk
from relaygate.providers.legacy_functions import LegacyStream
from relaygate.providers.spark_ws_errors import MODERATION, spark_error, spark_secrets

__all__ = ["Frame", "SparkWSStream", "tool_call"]


class Frame:
    """What one answer frame says (parsed once)."""

    __slots__ = ("code", "content", "function", "last", "message", "sid", "usage")

    def __init__(self, raw: bytes) -> None:
        try:
            obj = orjson.loads(raw)
        except orjson.JSONDecodeError:
            raise UpstreamError("The upstream provider sent a malformed frame.") from None
        header = obj.get("header") if isinstance(obj, dict) else None
        if not isinstance(header, dict):
            raise UpstreamError("The upstream provider sent an unexpected frame.")
        code = header.get("code")
        self.code = code if isinstance(code, int) and not isinstance(code, bool) else 0
        self.message = str(header.get("message") or "")
        sid = header.get("sid")
        self.sid = sid if isinstance(sid, str) else ""
        self.last = header.get("status") == 2
        self.content = ""
        self.function: dict[str, Any] | None = None
        self.usage: Usage | None = None
        payload = obj.get("payload")
        if not isinstance(payload, dict):
            return
        choices = payload.get("choices")
        texts = choices.get("text") if isinstance(choices, dict) else None
        for item in texts if isinstance(texts, list) else ():
            if not isinstance(item, dict):
                continue
            content = item.get("content")
            if isinstance(content, str):
                self.content += content
            fn = item.get("function_call")
            if isinstance(fn, dict) and isinstance(fn.get("name"), str):
                self.function = fn
        usage = payload.get("usage")
        counts = usage.get("text") if isinstance(usage, dict) else None
        if isinstance(counts, dict):
            self.usage = Usage.from_openai(
                {
                    "prompt_tokens": counts.get("prompt_tokens"),
                    "completion_tokens": counts.get("completion_tokens"),
                    "total_tokens": counts.get("total_tokens"),
                }
            )


def tool_call(fn: dict[str, Any], sid: str) -> dict[str, Any]:
    """A frame's ``function_call`` as one OpenAI tool call (id from the session id)."""
    arguments = fn.get("arguments")
    if not isinstance(arguments, str):
        arguments = orjson.dumps(arguments or {}).decode()
    return {
        "id": "call_" + (sid or "spark"),
        "type": "function",
        "function": {"name": fn["name"], "arguments": arguments},
    }


class SparkWSStream:
    """One Spark answer (one frame per SSE event) → OpenAI chunk payloads."""

    __slots__ = (
        "_created",
        "_id",
        "_include_usage",
        "_legacy",
        "_model",
        "_prefix",
        "_role_sent",
        "_secrets",
        "done",
        "error",
        "usage",
    )

    def __init__(self, target: Target, include_usage: bool, legacy: bool = False) -> None:
        self.usage: Usage | None = None
        self.error: RelayError | None = None
        self.done = False
        self._include_usage = include_usage
        self._legacy = LegacyStream() if legacy else None
        self._secrets = spark_secrets(target)
        self._model = target.upstream_model
        self._created = int(time.time())
        self._id = "chatcmpl-spark"
        self._prefix: bytes | None = None
        self._role_sent = False

    def _chunk(self, delta: dict[str, Any], finish: str | None = None) -> bytes:
        if self._legacy is not None:
            choice: dict[str, Any] = {"index": 0, "delta": delta, "finish_reason": finish}
            self._legacy.choice(choice)
            delta, finish = choice["delta"], choice["finish_reason"]
        prefix = self._prefix
        if prefix is None:
            prefix = self._prefix = chunk_prefix(self._id, self._created, self._model)
        return chunk_payload(prefix, delta, finish)

    def feed(self, event: str | None, data: bytes) -> list[bytes]:
        if self.done or not data.strip():
            return []
        try:
            frame = Frame(data)
        except UpstreamError as err:
            self.error = err
            return []
        if frame.sid and not self._role_sent:
            self._id = "chatcmpl-" + frame.sid
            self._prefix = None
        out: list[bytes] = []
        if frame.code and frame.code not in MODERATION:
            self.error = spark_error(frame.code, frame.message, self._secrets)
            return out
        delta: dict[str, Any] = {}
        if not self._role_sent:
            delta["role"] = "assistant"
            self._role_sent = True
        if frame.content:
            delta["content"] = frame.content
        elif "role" in delta:
            delta["content"] = ""
        if frame.function is not None:
            call = tool_call(frame.function, frame.sid)
            delta["tool_calls"] = [{"index": 0, **call}]
        if delta:
            out.append(self._chunk(delta))
        if frame.code:  # content moderation: the answer ends here
            out.append(self._chunk({}, "content_filter"))
            self.done = True
        elif frame.last:
            if frame.usage is not None:
                self.usage = frame.usage
            out.append(self._chunk({}, "tool_calls" if frame.function is not None else "stop"))
            self.done = True
        return out

    def finish(self) -> list[bytes]:
        if self._include_usage and self.usage is not None:
            return [usage_chunk(self._id, self._model, self._created, self.usage)]
        return []
